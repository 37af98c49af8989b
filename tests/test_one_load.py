"""Each command reads each file of a run directory (and the --table CSV) once, and passes what
it read on: before, ``deapnas show`` parsed ``config.json`` four times and ``history.jsonl``
and ``best.json`` three times (once for the summary, again for every plot), ``deapnas
export`` read ``train.json`` three times and ``best.json`` twice, a table search with
``--report`` parsed its CSV twice, and ``deapnas resume`` checked the device and the table
before seeing that the run was finished.

The reads are counted where every one of them goes through: Python's ``open``."""
import builtins
import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from deapnas.cli import main
from deapnas.rundir import BEST, CONFIG, HISTORY, TRAINED

from conftest import NB201_METRIC, NB201_REPORT


@pytest.fixture
def reads(monkeypatch) -> Counter:
    """How often each file name is opened for reading while the test runs."""
    counted, real = Counter(), builtins.open

    def counting(file, mode="r", *args, **kwargs):
        if "r" in mode and not isinstance(file, int):
            counted[Path(file).name] += 1
        return real(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", counting)
    return counted


def table_search(csv: Path, out: Path, *extra: str) -> list[str]:
    return ["search", "--space", "nb201", "--dataset", "nb201", "--table", str(csv), "--metric",
            NB201_METRIC, "--evaluations", "12", "--population", "4", "--sample-size", "2",
            "--out", str(out), "--quiet", *extra]


def test_show_reads_each_file_of_the_run_once(nb201_csv, tmp_path, reads):
    out = tmp_path / "run"
    assert main(table_search(nb201_csv, out)) == 0
    reads.clear()
    assert main(["show", str(out)]) == 0
    assert reads[CONFIG] == reads[HISTORY] == reads[BEST] == 1, reads
    assert (out / "fitness.png").exists() and (out / "best.png").exists()


def test_show_of_a_two_objective_run_reads_its_pareto_front_once(nb201_csv, tmp_path, reads,
                                                                 capsys):
    out = tmp_path / "run"
    assert main(table_search(nb201_csv, out, "--objectives", "accuracy,params")) == 0
    reads.clear()
    capsys.readouterr()
    assert main(["show", str(out)]) == 0
    assert reads["pareto.json"] == reads[HISTORY] == 1, reads
    assert "Pareto front" in capsys.readouterr().out and (out / "pareto.png").exists()


def test_a_table_search_reads_its_table_once_for_the_search_and_the_report(nb201_csv, tmp_path,
                                                                          reads):
    out = tmp_path / "run"
    assert main(table_search(nb201_csv, out, "--report", NB201_REPORT)) == 0
    assert reads[nb201_csv.name] == 2, reads  # its header, then its rows, once
    report = json.loads((out / BEST).read_text())["report"]
    assert isinstance(report[NB201_REPORT], float)


def test_export_reads_the_pick_and_its_training_once(trained, tmp_path, reads):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    reads.clear()
    assert main(["export", str(run)]) == 0
    assert reads[BEST] == reads[TRAINED] == reads[CONFIG] == 1, reads
    assert (run / "export" / "model.pt2").exists()


def test_resume_of_a_finished_run_says_so_before_checking_its_settings(trained, tmp_path,
                                                                      capsys):
    """A finished run whose device is not on this machine: before, resume said the device was
    missing (a finished run needs none)."""
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    config = json.loads((run / CONFIG).read_text())
    config["run"]["device"] = "cuda:99"
    (run / CONFIG).write_text(json.dumps(config))
    assert main(["resume", str(run)]) == 2
    err = capsys.readouterr().err
    assert "holds a finished search" in err and "cuda:99" not in err
