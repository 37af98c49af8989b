"""Cheap fitness on trained candidates: proxy guidance at equal wall time, early termination at
an equal number of evaluations, for regularized evolution on digits (and on the shared MNIST
images when they are present).

    python benchmarks/bench_trained_guidance.py --seeds 3 --time-limit 120 --evaluations 40 --write

Guidance: plain RE, RE whose first population is the best of ``--warmup-samples`` random
genomes by synflow, and the same with each child the best of 4 mutants by synflow, each given
the same ``--time-limit`` (the proxy's cost is inside it). Reported per arm: evaluations done,
the best validation accuracy seen, and the pick's (``best.json``) validation accuracy.

Early termination: RE with and without ``--stop-below-rank 5`` for the same ``--evaluations``.
Reported per arm: epochs trained in all, wall seconds, and the pick's validation accuracy.

Arms run interleaved seed by seed, so that a shared machine's load falls on all of them alike.
Every run goes through the ``deapnas`` command, as a user would run it.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from deapnas.rundir import BEST, read_history

MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"

GUIDANCE = {"re": [],
            "re + synflow warm-up": ["--warmup-proxy", "synflow"],
            "re + synflow warm-up, 4 proposals": ["--warmup-proxy", "synflow", "--proposals", "4"]}
TERMINATION = {"re": [], "re + early termination (rank 5)": ["--stop-below-rank", "5"]}


def datasets() -> dict[str, list[str]]:
    found = {"digits": []}
    if (MNIST / "t10k-images-idx3-ubyte.gz").exists():
        found["mnist (shared t10k images)"] = ["--dataset", "idx", "--data-dir", str(MNIST)]
    return found


def search(arguments: list[str], seed: int) -> dict:
    """One ``deapnas search`` in a fresh folder: its history, pick and wall seconds."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "run"
        command = [sys.executable, "-m", "deapnas", "search", "--workers", "1", "--quiet",
                   "--seed", str(seed), "--out", str(out), *arguments]
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        seconds = time.perf_counter() - start
        history = read_history(out)
        best = json.loads((out / BEST).read_text())
    trained = [record for record in history if record["reason"] is None]
    return {"evaluations": len(history),
            "best_seen": max(record["fitness"][0] for record in trained),
            "pick": best["fitness"],
            "epochs": sum(record["info"].get("epochs", 0) for record in history),
            "seconds": seconds}


def mean_se(values: list[float]) -> list[float]:
    spread = statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else 0.0
    return [statistics.fmean(values), spread]


def compare(arms: dict[str, list[str]], common: list[str], seeds: int) -> dict:
    runs = {arm: [] for arm in arms}
    for seed in range(seeds):
        for arm, extra in arms.items():
            runs[arm].append(search([*common, *extra], seed))
            print(f"  seed {seed} {arm}: {runs[arm][-1]}", flush=True)
    return {arm: {key: mean_se([run[key] for run in found]) for key in found[0]}
            for arm, found in runs.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--time-limit", type=float, default=120.0,
                        help="wall seconds of each guidance run")
    parser.add_argument("--evaluations", type=int, default=40,
                        help="evaluations of each early-termination run")
    parser.add_argument("--write", action="store_true", help="write docs/figures/trained_guidance.json")
    options = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    results = {"seeds": options.seeds, "time_limit": options.time_limit,
               "evaluations": options.evaluations, "statistic": "mean and standard error over seeds",
               "datasets": {}}
    for name, data in datasets().items():
        print(f"{name}: guidance at {options.time_limit:g} s each", flush=True)
        guidance = compare(GUIDANCE, [*data, "--time-limit", str(options.time_limit),
                                      "--evaluations", "100000"], options.seeds)
        print(f"{name}: early termination at {options.evaluations} evaluations", flush=True)
        termination = compare(TERMINATION, [*data, "--evaluations", str(options.evaluations)],
                              options.seeds)
        results["datasets"][name] = {"guidance": guidance, "early_termination": termination}
    print(json.dumps(results, indent=2))
    if options.write:
        from figures import write_figures
        print("written to", write_figures("trained_guidance", results))


if __name__ == "__main__":
    main()
