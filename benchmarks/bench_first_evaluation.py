"""What a fresh process's first candidate costs against the same candidate evaluated again: a
new Python process builds the default search's evaluator (macro space, digits, tiny preset) and
warms it up as ``deapnas search --workers 1`` does before its first candidate
(``deapnas.parallel.warm_up``, when the checkout has it), then trains one candidate several
times with the same seed. One-off costs that land on the first evaluation (imports, first kernel calls)
show as a ratio well above 1; with the warm-up covering them the ratio is near 1. Each
process trains on one thread and the times are CPU seconds of the process
(``time.process_time``), which a shared machine's other work disturbs far less than wall time.

    python benchmarks/bench_first_evaluation.py [--repeats 3] [--times 4] [--write]

``--write`` keeps the figures in ``docs/figures/first_evaluation.json``.

Each process is started with ``sys.executable``, so the same script times an older checkout
too (``PYTHONPATH=/path/to/old/checkout python benchmarks/bench_first_evaluation.py``).
"""
import argparse
import json
import statistics
import subprocess
import sys

from figures import write_figures

WORKER = """
import json, random, sys, time
import torch
torch.set_num_threads(1)
from deapnas import runner
from deapnas.methods import get_method
method = get_method("re")
run = runner.Run(*runner.settings(method, "tiny"), method)
evaluate = run.evaluator
try:
    from deapnas.parallel import warm_up
    warm_up(evaluate)
except ImportError:  # an older checkout evaluated its first candidate cold
    pass
random.seed(int(sys.argv[1]))
genome = run.space.init()
seconds = []
for _ in range(int(sys.argv[2])):
    start = time.process_time()
    evaluate(genome)
    seconds.append(time.process_time() - start)
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
    parser.add_argument("--write", action="store_true",
                        help="to docs/figures/first_evaluation.json")
    args = parser.parse_args()
    print(f"{'process':>8} {'first (CPU s)':>14} {'median of the rest (CPU s)':>27} {'ratio':>6}")
    rows = []
    for seed in range(args.repeats):
        first, *rest = evaluation_seconds(seed, args.times)
        later = statistics.median(rest)
        print(f"{seed:>8} {first:>14.3f} {later:>27.3f} {first / later:>6.2f}")
        rows.append({"first CPU s": round(first, 3), "median of the rest CPU s": round(later, 3),
                     "ratio": round(first / later, 2)})
    if args.write:
        print("wrote", write_figures("first_evaluation", {"processes": rows}))


if __name__ == "__main__":
    main()
