"""Each method's own step in a NAS-Bench-201 table search, before and after: CPU milliseconds
per evaluation of whole table searches with ``--algorithm re``, ``renas`` and ``egnas``, and of
the step each method adds to the loop (RENAS's mutation controller: sampling a mutation and the
REINFORCE update; EG-NAS's table-only ES: making, asking and telling each CMA-ES), for this
checkout and for an older commit, side by side in one run.

    python benchmarks/bench_table_steps.py [--old-commit cfe18f7] [--old PATH]
        [--lengths 400 2000] [--algorithms re renas egnas] [--repeats 3]
        [--table ../shared/data/nas-bench-201/nb201.csv] [--write]

The older commit is checked out in a temporary ``git worktree`` unless ``--old`` names a
checkout. Each checkout is measured in a fresh interpreter (this script again, the checkout
first on ``PYTHONPATH``) that warms up with a 30-evaluation search of each algorithm, then
times ``deapnas.cli.main`` (the default ``--checkpoint-gap``; reading the table included)
``--repeats`` times; the medians are reported. The
step is timed by wrapping the methods that make it (``MutationController.mutate`` and
``update``; ``CMASampling``'s constructor, ``generate``, ``update``, ``replay`` and ``mean``).
CPU seconds (user + system, every thread), not wall time: on a loaded machine they are what
the search itself costs. ``--write`` keeps the table in ``docs/figures/table_steps.csv`` and
``.json`` (the runs page shows it).
"""
import argparse
import contextlib
import functools
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_startup import METRIC, TABLE, old_checkout
from figures import write_table

#: The methods timed as each algorithm's step: (module, class, method names).
STEPS = {"renas": ("deapnas.controller", "MutationController", ("mutate", "update")),
         "egnas": ("deapnas.evolutionary_gradient", "CMASampling",
                   ("__init__", "generate", "update", "replay", "mean"))}


def timed_step(algorithm: str) -> list[float]:
    """Wrap ``algorithm``'s step methods (see :data:`STEPS`) so that they add their CPU seconds
    to the returned one-element list."""
    spent = [0.0]
    if algorithm not in STEPS:
        return spent
    module, owner, names = STEPS[algorithm]
    cls = getattr(__import__(module, fromlist=[owner]), owner)
    for name in names:
        setattr(cls, name, _adding_to(spent, getattr(cls, name)))
    return spent


def _adding_to(spent: list[float], method):
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        start = time.process_time()
        try:
            return method(*args, **kwargs)
        finally:
            spent[0] += time.process_time() - start
    return wrapper


def search(algorithm: str, table: Path, evaluations: int, out: Path) -> float:
    """CPU seconds of one table search."""
    from deapnas.cli import main
    start = time.process_time()
    with contextlib.redirect_stdout(io.StringIO()):
        code = main(["search", "--space", "nb201", "--dataset", "nb201", "--table", str(table),
                     "--metric", METRIC, "--algorithm", algorithm, "--evaluations",
                     str(evaluations), "--out", str(out), "--quiet"])
    assert code == 0, f"{algorithm} search of {evaluations} evaluations failed"
    return time.process_time() - start


def measure(algorithms: list[str], lengths: list[int], table: Path, repeats: int) -> dict:
    """``{algorithm: {length: [search ms, step ms]}}`` per evaluation, the medians of
    ``repeats`` searches, in this interpreter."""
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for algorithm in algorithms:
            search(algorithm, table, 30, Path(tmp) / f"{algorithm}-warm-up")
            spent = timed_step(algorithm)
            for n in lengths:
                searches, steps = [], []
                for repeat in range(repeats):
                    spent[0] = 0.0
                    out = Path(tmp) / f"{algorithm}-{n}-{repeat}"
                    searches.append(1000 * search(algorithm, table, n, out) / n)
                    steps.append(1000 * spent[0] / n)
                results.setdefault(algorithm, {})[n] = [statistics.median(searches),
                                                        statistics.median(steps)]
    return results


def measure_in(checkout: Path, algorithms: list[str], lengths: list[int], table: Path,
               repeats: int) -> dict:
    """:func:`measure` in a fresh interpreter that imports deapnas from ``checkout``."""
    done = subprocess.run(
        [sys.executable, __file__, "--measure", "--table", str(table), "--repeats",
         str(repeats), "--lengths", *map(str, lengths), "--algorithms", *algorithms],
        check=True, capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": f"{checkout}{os.pathsep}{Path(__file__).parent}"})
    return {algorithm: {int(n): figures for n, figures in by_length.items()}
            for algorithm, by_length in json.loads(done.stdout.splitlines()[-1]).items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old-commit", default="cfe18f7")
    parser.add_argument("--old", type=Path, help="a checkout of the older commit")
    parser.add_argument("--lengths", type=int, nargs="+", default=[400, 2000])
    parser.add_argument("--algorithms", nargs="+", default=["re", "renas", "egnas"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--table", type=Path, default=TABLE)
    parser.add_argument("--write", action="store_true", help="to docs/figures/table_steps.*")
    parser.add_argument("--measure", action="store_true",
                        help="(internal) measure in this interpreter, print JSON")
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.algorithms, args.lengths, args.table, args.repeats)))
        return
    with old_checkout(args.old, args.old_commit) as old:
        before = measure_in(old, args.algorithms, args.lengths, args.table, args.repeats)
    after = measure_in(Path(__file__).resolve().parents[1], args.algorithms, args.lengths,
                       args.table, args.repeats)
    header = ["algorithm", "evaluations", f"search before ({args.old_commit})", "search after",
              f"step before ({args.old_commit})", "step after"]
    rows = [[algorithm, n, *(round(figures[algorithm][n][0], 3) for figures in (before, after)),
             *(round(figures[algorithm][n][1], 3) if algorithm in STEPS else ""
               for figures in (before, after))]
            for algorithm in args.algorithms for n in args.lengths]
    print(f"CPU ms per evaluation (median of {args.repeats}): {', '.join(header)}")
    for row in rows:
        print(" ".join(f"{value:>10}" for value in row))
    if args.write:
        print("wrote", write_table("table_steps", header, rows,
                                   {"unit": "CPU milliseconds per evaluation",
                                    "repeats": args.repeats, "old commit": args.old_commit}))


if __name__ == "__main__":
    main()
