"""The live view: ``--tensorboard DIR`` writes each evaluation and the logbook's statistics to
TensorBoard event files while the search runs."""
import csv
import json

import pytest

from deapnas import live, runner
from deapnas.cli import main
from deapnas.rundir import HISTORY, LOGBOOK

from conftest import NB201_METRIC, interrupt_evaluation


def table_search(out, csv_path, *extra: str) -> list[str]:
    return ["search", "--algorithm", "re", "--space", "nb201", "--dataset", "nb201",
            "--table", str(csv_path), "--metric", NB201_METRIC, "--evaluations", "30",
            "--population", "10", "--sample-size", "3", "--out", str(out), "--quiet", *extra]


def scalars(directory, tag: str) -> dict[int, float]:
    """``{step: value}`` of one scalar of the event files in ``directory``, each step written
    once."""
    accumulator = pytest.importorskip(
        "tensorboard.backend.event_processing.event_accumulator").EventAccumulator(
        str(directory), size_guidance={"scalars": 0}, purge_orphaned_data=False)
    accumulator.Reload()
    events = accumulator.Scalars(tag)
    assert len({event.step for event in events}) == len(events), f"{tag}: a step written twice"
    return {event.step: event.value for event in events}


def test_tensorboard_scalars_match_the_history_and_the_logbook(tmp_path, nb201_csv):
    pytest.importorskip("tensorboard")
    out, view = tmp_path / "run", tmp_path / "tensorboard"
    assert main(table_search(out, nb201_csv, "--tensorboard", str(view))) == 0
    assert list(view.glob("events.out.tfevents.*")), "no event file written"
    history = [json.loads(line) for line in (out / HISTORY).read_text().splitlines()]
    assert scalars(view, "evaluation/fitness") == pytest.approx(
        {r["evaluation"]: r["fitness"][0] for r in history})
    with open(out / LOGBOOK) as handle:
        logbook = list(csv.DictReader(handle))
    assert len(logbook) > 1
    for column in ("max", "avg", "nevals"):
        assert scalars(view, f"logbook/{column}") == pytest.approx(
            {i: float(row[column]) for i, row in enumerate(logbook)})
    recorded = json.loads((out / "config.json").read_text())
    assert recorded["run"]["tensorboard"] == str(view)  # a resume writes there too


def test_a_resumed_search_goes_on_writing_to_the_same_view(tmp_path, nb201_csv, monkeypatch):
    """Ctrl-C at evaluation 18, then ``deapnas resume``: the view holds every evaluation once
    and the whole logbook, as the run directory does."""
    pytest.importorskip("tensorboard")
    out, view = tmp_path / "run", tmp_path / "tensorboard"
    restore = interrupt_evaluation(monkeypatch, 18)
    assert main(table_search(out, nb201_csv, "--tensorboard", str(view))) == 130
    restore()
    assert main(["resume", str(out), "--quiet"]) == 0
    history = [json.loads(line) for line in (out / HISTORY).read_text().splitlines()]
    assert len(history) == 30
    assert scalars(view, "evaluation/fitness") == pytest.approx(
        {r["evaluation"]: r["fitness"][0] for r in history})
    with open(out / LOGBOOK) as handle:
        logbook = list(csv.DictReader(handle))
    assert scalars(view, "logbook/max") == pytest.approx(
        {i: float(row["max"]) for i, row in enumerate(logbook)})


def test_tensorboard_missing_is_refused_before_anything_is_written(tmp_path, nb201_csv,
                                                                   monkeypatch, capsys):
    monkeypatch.setattr(live, "available", lambda: False)  # a machine without the package
    out = tmp_path / "run"
    assert main(table_search(out, nb201_csv, "--tensorboard", str(tmp_path / "tb"))) == 2
    error = capsys.readouterr().err
    assert "pip install 'deapnas[tensorboard]'" in error and "--tensorboard" in error
    assert not out.exists() and not (tmp_path / "tb").exists()


def test_tensorboard_is_not_part_of_the_run_fingerprint():
    """A resume may write its live view elsewhere (or nowhere) without being refused."""
    config, _ = runner.settings(runner.get_method("re"), "tiny")
    plain = config.fingerprint()
    config.tensorboard = "somewhere"
    assert config.fingerprint() == plain
