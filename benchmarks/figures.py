"""Where a benchmark's measured figures go: ``docs/figures/NAME.json``, each with the command
that measured it, the deapnas commit, the machine and the date, so that a docs page includes
the file instead of numbers typed by hand."""
import csv
import datetime
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

FIGURES = Path(__file__).resolve().parents[1] / "docs" / "figures"


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
