"""The run directory's cost per evaluation as a search grows: table searches of increasing
length (NAS-Bench-201 look-ups take microseconds, so what is timed is the loop, the history and
the checkpoints). A flat cost per evaluation gives ratios near 1.

    python benchmarks/bench_journal.py [--table ../shared/data/nas-bench-201/nb201.csv]

It drives ``deapnas.cli.main`` only, so the same script times an older checkout too
(``PYTHONPATH=/path/to/old/checkout python benchmarks/bench_journal.py``).
"""
import argparse
import tempfile
import time
from pathlib import Path

from deapnas.cli import main

TABLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "nas-bench-201" / "nb201.csv"


def seconds(table: Path, evaluations: int, out: Path) -> float:
    start = time.perf_counter()
    code = main(["search", "--space", "nb201", "--dataset", "nb201", "--table", str(table),
                 "--metric", "cifar10valid_xvalid_acc_200ep_mean", "--evaluations",
                 str(evaluations), "--population", "25", "--out", str(out), "--quiet"])
    assert code == 0
    return time.perf_counter() - start


def main_() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", type=Path, default=TABLE)
    parser.add_argument("--lengths", type=int, nargs="+", default=[300, 1000, 4000])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        seconds(args.table, 50, Path(tmp) / "warm-up")
        per = {n: seconds(args.table, n, Path(tmp) / f"run{n}") / n for n in args.lengths}
    first = args.lengths[0]
    print(f"{'evaluations':>12} {'ms per evaluation':>18} {'ratio to ' + str(first):>14}")
    for n, cost in per.items():
        print(f"{n:>12} {1000 * cost:>18.3f} {cost / per[first]:>14.2f}")


if __name__ == "__main__":
    main_()
