"""Summaries that cannot be misread: each number named for what it is, the direction of a
minimised fitness said, a compound fitness never called "best" without saying what it is."""
import json

import pytest

from deapnas.cli import main
from deapnas.methods import egnas

from conftest import NB201_METRIC, NB201_REPORT

pytestmark = pytest.mark.usefixtures("one_thread")


def egnas_table_search(csv, out) -> int:
    return main(["search", "--algorithm", "egnas", "--space", "nb201", "--dataset", "nb201",
                 "--table", str(csv), "--metric", NB201_METRIC, "--report", NB201_REPORT,
                 "--evaluations", "30", "--samplings", "2", "--popsize", "4", "--out", str(out)])


def test_an_egnas_table_search_names_its_compound_fitness_and_says_lower_is_better(
        nb201_csv, tmp_path, capsys):
    out = tmp_path / "run"
    assert egnas_table_search(nb201_csv, out) == 0
    searched = capsys.readouterr()
    assert "(lower is better)" in searched.err  # the progress bar's best
    assert main(["show", str(out)]) == 0
    shown = capsys.readouterr().out
    fitness_line = next(line for line in shown.splitlines() if "best single fitness" in line)
    assert "compound fitness ζ·(1 − accuracy) ∓ η·similarity to α, lower is better" \
        in fitness_line  # L is the validation error in table mode, not a cross-entropy
    assert "cross-entropy" not in shown and "CE" not in shown
    assert f"{NB201_METRIC} " in shown  # the pick's own number, under the table's name


def test_an_egnas_supernet_search_calls_its_pick_s_number_the_supernet_accuracy(tmp_path,
                                                                                 capsys):
    out = tmp_path / "run"
    assert main(["search", "--algorithm", "egnas", "--space", "nb201", "--epochs", "2",
                 "--cells", "1", "--out", str(out), "--quiet"]) == 0
    assert json.loads((out / "best.json").read_text())["metric"] == egnas.SUPERNET_ACCURACY
    capsys.readouterr()
    assert main(["show", str(out)]) == 0
    shown = capsys.readouterr().out
    assert "compound fitness ζ·cross-entropy ∓ η·similarity to α, lower is better" in shown
    assert egnas.SUPERNET_ACCURACY in shown and "validation accuracy" not in shown


def test_a_maximised_fitness_is_named_and_said_to_be_better_higher(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["search", "--evaluations", "2", "--population", "2", "--sample-size", "1",
                 "--epochs", "1", "--channels", "4", "--out", str(out), "--quiet"]) == 0
    assert main(["show", str(out)]) == 0
    assert "(validation accuracy, higher is better)" in capsys.readouterr().out
