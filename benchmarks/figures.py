"""Where a benchmark's measured figures go: ``docs/figures/NAME.json``, each with the command
that measured it, the deapnas commit, the machine and the date, so that a docs page includes
the file instead of numbers typed by hand.

A figure whose name (a key of the results, a table column, or the first cell of a table row)
contains ``seconds`` is a timing:
it is written, shown and never compared; every other figure is deterministic on a CPU and
:func:`differences` compares it with the committed file (``--check`` of the scripts, and
``tests/test_figures.py``)."""
import csv
import datetime
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

FIGURES = Path(__file__).resolve().parents[1] / "docs" / "figures"
#: What a timing's name contains: timings are reported, never compared.
TIMING = "seconds"


def write_figures(name: str, results: dict) -> Path:
    """``results`` with where and how they were measured, to ``docs/figures/NAME.json``."""
    root = Path(__file__).resolve().parents[1]
    commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip() or "unknown"
    record = {"command": " ".join(["python", *sys.argv]),
              "commit": commit,
              "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()}",
              "date": datetime.date.today().isoformat(),
              "results": results}
    FIGURES.mkdir(exist_ok=True)
    path = FIGURES / f"{name}.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path


def write_table(name: str, header: list[str], rows: list[list], results: dict | None = None) -> Path:
    """A table a docs page shows: ``docs/figures/NAME.csv`` (the rows, for ``csv-table``'s
    ``:file:``) beside ``docs/figures/NAME.json`` (the same rows with where and how they were
    measured, and any further ``results``)."""
    path = write_figures(name, {"header": header, "rows": rows, **(results or {})})
    with open(FIGURES / f"{name}.csv", "w", newline="") as handle:
        csv.writer(handle).writerows([header, *rows])
    return path


def table_or_check(name: str, header: list[str], rows: list[list], results: dict | None = None,
                   check: bool = False) -> list[str]:
    """:func:`write_table` (no differences), or, with ``check``, the :func:`differences` of
    the table from the committed one, written nowhere; says which on the terminal."""
    if not check:
        print(f"{name} -> {write_table(name, header, rows, results)}")
        return []
    found = differences(name, {"header": header, "rows": rows, **(results or {})})
    print(f"{name}: {'changed' if found else 'unchanged'}", *found, sep="\n  ")
    return found


def differences(name: str, results: dict) -> list[str]:
    """Where ``results``, measured again, differ from the committed ``docs/figures/NAME.json``:
    one line per figure (its path in the results, a table row's cells named by the header
    column), timings (see the module's docstring) left out; none when the figures still
    hold, one saying so when there is no committed file."""
    path = FIGURES / f"{name}.json"
    if not path.exists():
        return [f"{path} does not exist: write it by running the script without --check"]
    old = dict(_figures(json.loads(path.read_text())["results"]))
    new = dict(_figures(json.loads(json.dumps(results))))
    return [f"docs/figures/{name}.json: {figure}: committed {old.get(figure, '(none)')!r}, "
            f"measured now {new.get(figure, '(none)')!r}"
            for figure in sorted(old.keys() | new.keys()) if old.get(figure) != new.get(figure)]


def _figures(results, path: str = ""):
    """``(path, value)`` of every figure in ``results`` but its timings; the rows of a table
    (``header`` and ``rows``) by column name."""
    if isinstance(results, dict) and isinstance(results.get("rows"), list) and "header" in results:
        results = {**{k: v for k, v in results.items() if k != "rows"},
                   "rows": [dict(zip(results["header"], row)) for row in results["rows"]
                            if not (row and TIMING in str(row[0]))]}
    if isinstance(results, dict):
        items = results.items()
    elif isinstance(results, list):
        items = ((f"[{i}]", value) for i, value in enumerate(results))
    else:
        yield path, results
        return
    for key, value in items:
        if TIMING not in str(key):
            yield from _figures(value, f"{path}.{key}" if path and not key.startswith("[")
                                else f"{path}{key}")
