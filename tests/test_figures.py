"""The measured figures the docs print cannot go stale: the deterministic ones (tiny-run picks,
parameter counts, test accuracies, NAS-Bench-201 table searches, parity tables, invalid macro
genomes, what the docs' examples print or find) are measured again and compared with the
committed ``docs/figures`` files by the function that the scripts' ``--check`` runs
(``figures.differences``); timings are never compared."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))  # the scripts import their sibling figures.py

import figures  # noqa: E402
import parity  # noqa: E402
import tiny_runs  # noqa: E402
from deapnas.published import METHODS  # noqa: E402

HEADER = ["data", "test accuracy", "search CPU seconds"]


@pytest.fixture
def figures_in(tmp_path, monkeypatch):
    """``docs/figures`` in a temporary folder, for the figures these tests write."""
    monkeypatch.setattr(figures, "FIGURES", tmp_path)
    return tmp_path


def test_differences_name_each_changed_figure_and_never_a_timing(figures_in):
    figures.write_table("tiny", HEADER, [["digits", 0.9, 12.5], ["train wall seconds", 2, 3]],
                        {"runs": {"pick": "a", "wall_seconds": 3}})
    same = {"header": HEADER, "rows": [["digits", 0.9, 80.1], ["train wall seconds", 5, 6]],
            "runs": {"pick": "a", "wall_seconds": 9}}
    assert figures.differences("tiny", same) == []  # only timings changed

    changed = {"header": HEADER, "rows": [["digits", 0.8, 12.5], ["MNIST", 0.7, 1.0],
                                          ["train wall seconds", 2, 3]],
               "runs": {"pick": "b", "wall_seconds": 3}}
    assert figures.differences("tiny", changed) == [
        "docs/figures/tiny.json: rows[0].test accuracy: committed 0.9, measured now 0.8",
        "docs/figures/tiny.json: rows[1].data: committed '(none)', measured now 'MNIST'",
        "docs/figures/tiny.json: rows[1].test accuracy: committed '(none)', measured now 0.7",
        "docs/figures/tiny.json: runs.pick: committed 'a', measured now 'b'"]


def test_check_writes_nothing_and_a_missing_file_says_how_to_make_it(figures_in):
    assert figures.table_or_check("tiny", HEADER, [["digits", 0.9, 1.0]], check=True) == [
        f"{figures_in / 'tiny.json'} does not exist: write it by running the script without "
        "--check"]
    assert list(figures_in.iterdir()) == []
    assert figures.table_or_check("tiny", HEADER, [["digits", 0.9, 1.0]]) == []
    assert (figures_in / "tiny.csv").read_text() == \
        "data,test accuracy,search CPU seconds\ndigits,0.9,1.0\n"
    assert figures.table_or_check("tiny", HEADER, [["digits", 0.8, 1.0]], check=True) == [
        "docs/figures/tiny.json: rows[0].test accuracy: committed 0.9, measured now 0.8"]
    assert "0.9" in (figures_in / "tiny.csv").read_text()  # checked, not rewritten


def stale(name: str, header: list[str], rows: list[list], results: dict) -> list[str]:
    return figures.differences(name, {"header": header, "rows": rows, **results})


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("method, part", [(method, part) for method, runs in
                                          tiny_runs.RUNS.items() for part in runs])
def test_the_tiny_runs_and_table_searches_the_docs_print_still_hold(method, part):
    """A method's tiny search and final training on digits or MNIST, or its NAS-Bench-201
    table searches, run again: the same picks, parameter counts, fitness and test accuracies
    as the committed ``docs/figures/tiny_METHOD_PART.json`` or ``nb201_METHOD.json``."""
    if not tiny_runs.parts([method], [part]):
        pytest.skip(f"{tiny_runs.PARTS[part]} is absent")
    assert stale(*tiny_runs.measure(method, part)) == []


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_the_parity_tables_the_docs_print_still_hold(method):
    if not (figures.FIGURES / f"parity_{method}.json").exists():
        pytest.skip(f"no committed parity table for {method} (benchmarks/parity.py {method})")
    assert [line for name, header, rows in parity.tables(method)
            for line in stale(name, header, rows, {})] == []


@pytest.mark.slow
@pytest.mark.parametrize("script", ["bench_macro_validity.py", "example_output.py"])
def test_the_other_deterministic_figures_still_hold(script):
    """Their own ``--check``: the invalid macro genomes by setting, the branching ones by
    add-node rule and the counts behind the parameter cap, what the docs' example script
    prints, and the pick of the docs' example search method (its evaluation that first found
    it too)."""
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), "--check"],
                          capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(
                              [str(ROOT), os.environ.get("PYTHONPATH", "")])})
    assert done.returncode == 0, done.stdout + done.stderr
