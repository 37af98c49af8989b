"""Speed-up of parallel evaluation, measured side by side in one run (a script, not a test).

Runs the same search, N children bred per step, with 1 worker (in-process) and with N worker
processes (a DevicePool of CPU slots), and prints wall time, evaluations per second and the
ratio. The in-process run trains on torch's default thread count and each worker on its share
of the cores, so their fitness values (and from them the picks) may differ in the last digits
(see docs/parallel.rst). Two searches: the default digits search (training) and
the NAS-Bench-201 table search (look-ups, where process overhead dominates).

    python benchmarks/bench_parallel.py                 # both, 1 vs 2 workers
    python benchmarks/bench_parallel.py --evaluations 60 --skip-table
    python benchmarks/bench_parallel.py --write          # docs/figures/parallel.csv

"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from deapnas.methods import get_method
from deapnas.runner import settings, start

TABLE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "nas-bench-201" / \
    "nb201.csv"


def timed_search(given: dict) -> tuple[float, dict]:
    """Wall time of one whole search (dataset loading and worker start-up included)."""
    with tempfile.TemporaryDirectory() as out:
        config, options = settings(get_method("re"), "tiny", out=str(Path(out) / "run"),
                                   device="cpu", **given)
        begin = time.perf_counter()
        best = start(config, options, progress=False)
        return time.perf_counter() - begin, best


def compare(name: str, given: dict, workers: int) -> list:
    """Run the search with 1 and ``workers`` workers; print and return the row of the table
    the docs show (wall seconds each, and the speed-up)."""
    rows = []
    for n in (1, workers):
        seconds, best = timed_search({**given, "workers": n, "children_per_step": workers})
        rows.append((n, seconds, best["evaluations"] / seconds, best["fitness"]))
    print(f"\n{name}")
    print(f"  {'workers':>7} {'seconds':>9} {'evals/s':>9} {'best fitness':>13}")
    for n, seconds, rate, fitness in rows:
        print(f"  {n:>7} {seconds:>9.2f} {rate:>9.2f} {fitness:>13.4f}")
    print(f"  speed-up (wall time, 1 worker / {workers} workers): {rows[0][1] / rows[1][1]:.2f}x")
    return [name, f"{rows[0][1]:.2f}", f"{rows[1][1]:.2f}", f"{rows[0][1] / rows[1][1]:.2f}x"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--evaluations", type=int, default=200,
                        help="digits search budget (the default search's by default)")
    parser.add_argument("--table-evaluations", type=int, default=300)
    parser.add_argument("--skip-table", action="store_true")
    parser.add_argument("--write", action="store_true",
                        help="write the table to docs/figures/parallel.csv (and .json)")
    args = parser.parse_args()

    rows = [compare(f"default digits search, {args.evaluations} evaluations",
                    {"evaluations": args.evaluations}, args.workers)]
    if args.skip_table or not TABLE.exists():
        print(f"\n(table search skipped: {TABLE} {'absent' if not TABLE.exists() else ''})")
    else:
        rows.append(compare(f"NAS-Bench-201 table search, {args.table_evaluations} evaluations",
                            {"space": "nb201", "dataset": "nb201", "table": str(TABLE),
                             "metric": "cifar10valid_xvalid_acc_200ep_mean",
                             "evaluations": args.table_evaluations}, args.workers))
    if args.write:
        from figures import write_table
        header = ["search", "1 worker (s)", f"{args.workers} workers (s)", "speed-up"]
        print("written to", write_table("parallel", header, rows))


if __name__ == "__main__":
    main()
