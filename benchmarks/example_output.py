"""What a docs example prints or finds, and the time it takes, for the page that shows it.

    python benchmarks/example_output.py [NAME ...] [--check]

runs each example (by default every one) in a process of its own on one CPU thread, so that
its figures are deterministic: a script of :data:`SCRIPTS` (``docs/examples/NAME.py``), whose
output goes to ``docs/figures/example_NAME.txt`` (for ``literalinclude``), or a search method
of :data:`SEARCHES`, which ``deapnas search`` runs on seed 0 with the options its page shows.
``docs/figures/example_NAME.csv`` (and ``.json``, which also holds a script's output) is the
table of its figures: a search's command, its pick, the pick's fitness and the evaluation that
first found it; the CPU seconds (user + system: what an unloaded machine needs at most) and
wall seconds of each. ``--check`` runs the examples and compares their figures with the
committed files instead (timings are never compared). An example whose data is absent is
skipped with a message.
"""
import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from figures import FIGURES, table_or_check

from deapnas.rundir import read_best, read_history

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES_FOLDER = ROOT / "docs" / "examples"
SHARED = ROOT.parent / "shared" / "data"
TABLE = SHARED / "nas-bench-201" / "nb201.csv"
#: The examples run as scripts: their output is what they print.
SCRIPTS = ("deap_macro_search",)
#: The examples that are search methods: the ``deapnas search`` options that their page shows,
#: and the data they need.
SEARCHES = {"generational_method": (
    ("--algorithm", "generational_method:METHOD", "--space", "nb201", "--dataset", "nb201",
     "--table", str(TABLE), "--metric", "cifar10valid_xvalid_acc_200ep_mean",
     "--evaluations", "200", "--tournament", "4"), TABLE)}
EXAMPLES = (*SCRIPTS, *SEARCHES)
SEED = 0


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_python(arguments: list[str]) -> tuple[list[str], float, float]:
    """The lines ``python ARGUMENTS`` prints (the examples' folder on its path, one torch
    thread), its CPU and its wall seconds; a failed run ends the script with its errors."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(
        [str(ROOT), str(EXAMPLES_FOLDER), os.environ.get("PYTHONPATH", "")])}
    cpu, wall = children_cpu_seconds(), time.perf_counter()
    done = subprocess.run([sys.executable, *arguments], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"python {' '.join(arguments)}: exit {done.returncode}\n{done.stderr}")
    return (done.stdout.splitlines(), round(children_cpu_seconds() - cpu, 1),
            round(time.perf_counter() - wall, 1))


def timings(cpu: float, wall: float) -> list[list]:
    return [["CPU seconds", cpu], ["wall seconds", wall]]


def script_figures(name: str) -> tuple[list[list], dict]:
    """The rows and results of the script ``docs/examples/NAME.py``: its timings, and its
    output."""
    output, cpu, wall = run_python([str(EXAMPLES_FOLDER / f"{name}.py")])
    return timings(cpu, wall), {"output": output}


def search_figures(name: str) -> tuple[list[list], dict]:
    """The rows and results of the search method ``name`` run on seed 0: its command, its pick,
    the pick's fitness, the evaluation that first found it, and the timings."""
    options = [*SEARCHES[name][0], "--seed", str(SEED)]
    with tempfile.TemporaryDirectory() as folder:
        _, cpu, wall = run_python(["-m", "deapnas.cli", "search", *options, "--quiet",
                                   "--out", folder])
        best, history = read_best(folder), read_history(folder)
    found = {"pick": best["genome"], "metric": best["metric"],
             "fitness": round(best["fitness"], 2), "evaluations": best["evaluations"],
             "first_found_at": next(record["evaluation"] for record in history
                                    if record["key"] == best["key"])}
    command = " ".join(["deapnas search", *options]).replace(str(SHARED), "../shared/data")
    rows = [["command", f"``PYTHONPATH=docs/examples {command}``"],
            ["the pick", f"``{found['pick']}``"],
            [f"its fitness ({found['metric']})", found["fitness"]],
            ["the evaluation that first found it", found["first_found_at"]],
            ["evaluations", found["evaluations"]], *timings(cpu, wall)]
    return rows, found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help=f"{', '.join(EXAMPLES)} (default: all)")
    parser.add_argument("--check", action="store_true",
                        help="compare with the committed figures instead of writing them")
    args = parser.parse_args()
    if set(args.names) - set(EXAMPLES):
        parser.error(f"choose among {', '.join(EXAMPLES)}")
    changed = []
    for name in args.names or EXAMPLES:
        if name in SEARCHES and not SEARCHES[name][1].exists():
            print(f"{name}: skipped, {SEARCHES[name][1]} is absent", file=sys.stderr)
            continue
        rows, results = (search_figures if name in SEARCHES else script_figures)(name)
        changed += table_or_check(f"example_{name}", ["figure", "value"], rows, results,
                                  check=args.check)
        if name in SCRIPTS and not args.check:
            (FIGURES / f"example_{name}.txt").write_text("\n".join(results["output"]) + "\n")
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main())
