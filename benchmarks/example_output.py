"""What a docs example prints, and the time it takes, for the page that shows the example.

    python benchmarks/example_output.py [NAME ...] [--check]

runs ``docs/examples/NAME.py`` (by default every example in :data:`EXAMPLES`) in a process of
its own on one CPU thread, so that its output is deterministic, and writes its output to
``docs/figures/example_NAME.txt`` (for ``literalinclude``) and its CPU seconds (user + system:
what an unloaded machine needs at most) and wall seconds to ``docs/figures/example_NAME.csv``
(and ``.json``, which also holds the output). ``--check`` runs the examples and compares their
output with the committed files instead (timings are never compared).
"""
import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from figures import FIGURES, table_or_check

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ("deap_macro_search",)


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_example(name: str) -> tuple[list[str], float, float]:
    """The lines ``docs/examples/NAME.py`` prints, its CPU and its wall seconds."""
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    cpu, wall = children_cpu_seconds(), time.perf_counter()
    done = subprocess.run([sys.executable, str(ROOT / "docs" / "examples" / f"{name}.py")],
                          env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"docs/examples/{name}.py: exit {done.returncode}\n{done.stderr}")
    return (done.stdout.splitlines(), round(children_cpu_seconds() - cpu, 1),
            round(time.perf_counter() - wall, 1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help=f"{', '.join(EXAMPLES)} (default: all)")
    parser.add_argument("--check", action="store_true",
                        help="compare with the committed output instead of writing it")
    args = parser.parse_args()
    if set(args.names) - set(EXAMPLES):
        parser.error(f"choose among {', '.join(EXAMPLES)}")
    changed = []
    for name in args.names or EXAMPLES:
        output, cpu, wall = run_example(name)
        changed += table_or_check(f"example_{name}", ["figure", "value"],
                                  [["CPU seconds", cpu], ["wall seconds", wall]],
                                  {"output": output}, check=args.check)
        if not args.check:
            (FIGURES / f"example_{name}.txt").write_text("\n".join(output) + "\n")
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main())
