"""The run directory's cost per evaluation as a search grows: table searches of increasing
length (NAS-Bench-201 look-ups take microseconds, so what is timed is the loop, the history and
the checkpoints). A flat cost per evaluation gives ratios near 1.

    python benchmarks/bench_journal.py [--table ../shared/data/nas-bench-201/nb201.csv]
        [--lengths 400 2000 20000] [--write]

``--write`` keeps the figures in ``docs/figures/journal.json`` (the runs page includes it).

It drives ``deapnas.cli.main`` only, so the same script times an older checkout too
(``PYTHONPATH=/path/to/old/checkout python benchmarks/bench_journal.py``).
"""
import argparse
import contextlib
import io
import tempfile
import time
from pathlib import Path

from deapnas.cli import main

from figures import write_figures

TABLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "nas-bench-201" / "nb201.csv"


def seconds(table: Path, evaluations: int, out: Path) -> float:
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # the summaries
        code = main(["search", "--space", "nb201", "--dataset", "nb201", "--table", str(table),
                    "--metric", "cifar10valid_xvalid_acc_200ep_mean", "--evaluations",
                    str(evaluations), "--population", "25", "--out", str(out), "--quiet"])
    assert code == 0
    return time.perf_counter() - start


def main_() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", type=Path, default=TABLE)
    parser.add_argument("--lengths", type=int, nargs="+", default=[400, 2000, 20000])
    parser.add_argument("--write", action="store_true", help="to docs/figures/journal.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        seconds(args.table, 50, Path(tmp) / "warm-up")
        per = {n: seconds(args.table, n, Path(tmp) / f"run{n}") / n for n in args.lengths}
    first = args.lengths[0]
    print(f"{'evaluations':>12} {'ms per evaluation':>18} {'ratio to ' + str(first):>14}")
    for n, cost in per.items():
        print(f"{n:>12} {1000 * cost:>18.3f} {cost / per[first]:>14.2f}")
    if args.write:
        print("wrote", write_figures("journal", {
            "ms per evaluation (whole search, table load included)":
                {str(n): round(1000 * cost, 3) for n, cost in per.items()}}))


if __name__ == "__main__":
    main_()
