"""Where a benchmark's measured figures go: ``docs/figures/NAME.json``, each with the command
that measured it, the deapnas commit, the machine and the date, so that a docs page includes
the file instead of numbers typed by hand."""
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
