"""What a fresh process's first candidate costs against the same candidate evaluated again: a
new Python process builds the default search's evaluator (macro space, digits, tiny preset),
warms it up as a pool worker does (``prepare``), then trains one candidate several times with
the same seed. One-off costs that land on the first evaluation (imports, first kernel calls)
show as a ratio well above 1; with the warm-up covering them the ratio is near 1.

    python benchmarks/bench_first_evaluation.py [--repeats 3] [--times 4]

Each process is started with ``sys.executable``, so the same script times an older checkout
too (``PYTHONPATH=/path/to/old/checkout python benchmarks/bench_first_evaluation.py``).
"""
import argparse
import json
import statistics
import subprocess
import sys

WORKER = """
import json, random, sys, time
from deapnas import runner
from deapnas.methods import get_method
method = get_method("re")
run = runner.Run(*runner.settings(method, "tiny"), method)
evaluate = run.evaluator
evaluate.prepare()
random.seed(int(sys.argv[1]))
genome = run.space.init()
seconds = []
for _ in range(int(sys.argv[2])):
    start = time.perf_counter()
    evaluate(genome)
    seconds.append(time.perf_counter() - start)
print(json.dumps(seconds))
"""


def evaluation_seconds(seed: int, times: int) -> list[float]:
    done = subprocess.run([sys.executable, "-c", WORKER, str(seed), str(times)], check=True,
                          capture_output=True, text=True)
    return json.loads(done.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes (genome seeds)")
    parser.add_argument("--times", type=int, default=4, help="evaluations per process")
    args = parser.parse_args()
    print(f"{'process':>8} {'first (s)':>10} {'median of the rest (s)':>23} {'ratio':>6}")
    for seed in range(args.repeats):
        first, *rest = evaluation_seconds(seed, args.times)
        later = statistics.median(rest)
        print(f"{seed:>8} {first:>10.3f} {later:>23.3f} {first / later:>6.2f}")


if __name__ == "__main__":
    main()
