"""The command line's start-up, before and after: CPU seconds (user + system, the process and
its children) of ``deapnas --help``, ``deapnas search --help`` and ``deapnas show`` on a
finished table search, for this checkout and for an older commit, side by side in one run.

    python benchmarks/bench_startup.py [--old-commit e23f02f] [--old PATH] [--repeats 5]
        [--table ../shared/data/nas-bench-201/nb201.csv] [--write]

The older commit is checked out in a temporary ``git worktree`` (removed afterwards) unless
``--old`` names a checkout. Each command runs ``--repeats`` times in a fresh interpreter
(``python -m deapnas``, the checkout first on ``PYTHONPATH``); the median is reported. CPU
seconds, not wall time: on a loaded machine they are what the command itself costs.
``--write`` keeps the table in ``docs/figures/startup.csv`` and ``.json`` (the runs page shows
it).
"""
import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

from figures import write_table

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT.parent / "shared" / "data" / "nas-bench-201" / "nb201.csv"
METRIC = "cifar10valid_xvalid_acc_200ep_mean"


def cpu_seconds(checkout: Path, argv: list[str], cwd: Path) -> float:
    """User + system seconds of ``python -m deapnas ARGV`` run from ``checkout``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-m", "deapnas", *argv], cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(checkout)})
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def commands(checkout: Path, table: Path, work: Path) -> dict[str, list[str]]:
    """The commands timed, by name; ``show``'s table search is made with ``checkout``."""
    run = work / "table-run"
    subprocess.run([sys.executable, "-m", "deapnas", "search", "--space", "nb201", "--dataset",
                    "nb201", "--table", str(table), "--metric", METRIC, "--evaluations", "200",
                    "--population", "20", "--out", str(run), "--quiet"],
                   cwd=work, check=True, stdout=subprocess.DEVNULL,
                   env={**os.environ, "PYTHONPATH": str(checkout)})
    return {"deapnas --help": ["--help"], "deapnas search --help": ["search", "--help"],
            "deapnas show (finished table search)": ["show", str(run)]}


@contextmanager
def old_checkout(path: Path | None, commit: str):
    """``path``, or a temporary worktree of ``commit``."""
    if path is not None:
        yield path
        return
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "old"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), commit],
                       check=True, capture_output=True)
        try:
            yield tree
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
                           check=True, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old-commit", default="e23f02f")
    parser.add_argument("--old", type=Path, help="a checkout of the older commit")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--table", type=Path, default=TABLE)
    parser.add_argument("--write", action="store_true", help="to docs/figures/startup.*")
    args = parser.parse_args()
    medians: dict[str, dict[str, float]] = {}
    with old_checkout(args.old, args.old_commit) as old, tempfile.TemporaryDirectory() as tmp:
        for label, checkout in (("before", old), ("after", ROOT)):
            work = Path(tmp) / label
            work.mkdir()
            for name, argv in commands(checkout, args.table, work).items():
                times = [cpu_seconds(checkout, argv, work) for _ in range(args.repeats)]
                medians.setdefault(name, {})[label] = round(statistics.median(times), 2)
    header = ["command", f"CPU seconds before ({args.old_commit})", "CPU seconds after"]
    rows = [[name, m["before"], m["after"]] for name, m in medians.items()]
    width = max(len(name) for name in medians)
    print(f"{'command':<{width}} {'before':>8} {'after':>8}  (CPU seconds, median of "
          f"{args.repeats})")
    for name, before, after in rows:
        print(f"{name:<{width}} {before:>8.2f} {after:>8.2f}")
    if args.write:
        print("wrote", write_table("startup", header, rows,
                                   {"repeats": args.repeats, "old commit": args.old_commit}))


if __name__ == "__main__":
    main()
