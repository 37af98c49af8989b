"""A run directory received from someone else, or damaged: what opening it may and may not do.
Reading a directory imports nothing it names, every JSON field it holds is checked (one test per
damaged field: exit status 2 and a one-line message naming the file and the field, no
traceback), and nothing it holds leaks to the terminal (file contents, escape codes) or gives
unsafe advice. Each case is a real directory made by a real search of the NAS-Bench-201 table.
"""
import io
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from deapnas import methods, report
from deapnas import export as export_module
from deapnas.cli import main
from deapnas.fitness import TableEvaluator
from deapnas.rundir import BEST, CHECKPOINT, CONFIG, HISTORY, PARETO, read_history

from conftest import NB201_METRIC, NB201_REPORT, interrupt_call

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "docs" / "examples"


def search(csv, out, *extra) -> int:
    return main(["search", "--space", "nb201", "--dataset", "nb201", "--table", str(csv),
                 "--metric", NB201_METRIC, "--report", NB201_REPORT, "--evaluations", "40",
                 "--population", "10", "--checkpoint-every", "10", "--checkpoint-gap", "0",
                 "--out", str(out), "--quiet", *extra])


def interrupted(csv, out, after: int = 25) -> None:
    """A table search stopped like Ctrl-C after ``after`` evaluations (checkpoint at 20)."""
    with pytest.MonkeyPatch.context() as patch:
        interrupt_call(patch, TableEvaluator, "__call__", after + 1)
        assert search(csv, out) == 130


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """Run directories made once: an interrupted search, a finished one, and a finished search
    of two objectives (with ``pareto.json``)."""
    from conftest import NB201_CSV
    if not NB201_CSV.exists():
        pytest.skip(f"NAS-Bench-201 table not found at {NB201_CSV}")
    root = tmp_path_factory.mktemp("made")
    interrupted(NB201_CSV, root / "interrupted")
    assert search(NB201_CSV, root / "finished") == 0
    assert search(NB201_CSV, root / "pareto", "--objectives", "accuracy,params") == 0
    return root


@pytest.fixture
def copy(made, tmp_path):
    """``copy(name)``: a fresh copy of one of the made run directories."""
    def make(name: str) -> Path:
        return Path(shutil.copytree(made / name, tmp_path / name))
    return make


def edit_json(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def edit_history(directory: Path, line: int, change) -> None:
    records = [json.loads(text) for text in (directory / HISTORY).read_text().splitlines()]
    change(records[line - 1])
    (directory / HISTORY).write_text("".join(json.dumps(r) + "\n" for r in records))


def refused(capsys, argv) -> str:
    """Run the command (a resume without its progress bar); assert it is refused with one
    line and no traceback; that line."""
    code = main([*argv, "--quiet"] if argv[0] == "resume" else argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


# -- imports chosen by the directory --------------------------------------------------------------

PLANTED_MODULE = """
from pathlib import Path
Path({marker!r}).write_text("the planted module ran")
"""


def test_a_method_named_by_the_directory_is_never_imported(copy, tmp_path):
    zen, planted = copy("finished"), tmp_path / "planted-run"
    shutil.copytree(zen, planted)
    edit_json(zen / CONFIG, lambda c: c.update(method="this:x"))
    edit_json(planted / CONFIG, lambda c: c.update(method="planted:METHOD"))
    marker = tmp_path / "marker"
    (tmp_path / "planted.py").write_text(PLANTED_MODULE.format(marker=str(marker)))
    (planted / "train.json").write_text("{}")
    (planted / "model.pt").write_bytes(b"")
    driver = ("import sys; from deapnas.cli import main; "
              "print([main([c, d]) for d in sys.argv[1:] for c in "
              "('show', 'resume', 'train', 'export')])")
    done = subprocess.run([sys.executable, "-c", driver, str(zen), str(planted)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": f".{os.pathsep}{ROOT}"})
    said = done.stdout + done.stderr
    assert done.stdout.strip().splitlines()[-1] == str([2] * 8), said
    assert "Beautiful is better than ugly" not in said
    assert not marker.exists()
    assert "names the method 'planted:METHOD', which deapnas imports only when you name it " \
           "yourself" in done.stderr and "add `--algorithm planted:METHOD`" in done.stderr
    assert "Traceback" not in said


def test_the_documented_user_method_resumes_when_the_user_names_it(nb201_csv, tmp_path,
                                                                   monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(EXAMPLES))
    monkeypatch.setattr(methods, "IMPORTED", {})
    spec = "generational_method:METHOD"
    real, calls = TableEvaluator.__call__, [0]

    def interrupting(self, individual):
        calls[0] += 1
        if calls[0] == 57:
            raise KeyboardInterrupt
        return real(self, individual)

    monkeypatch.setattr(TableEvaluator, "__call__", interrupting)
    out = tmp_path / "run"
    assert search(nb201_csv, out, "--algorithm", spec, "--evaluations", "120",
                  "--tournament", "4") == 130
    assert f"continue with `deapnas resume {out} --algorithm {spec}`" in capsys.readouterr().err
    monkeypatch.setattr(TableEvaluator, "__call__", real)
    monkeypatch.setattr(methods, "IMPORTED", {})  # a new process: nothing named yet
    err = refused(capsys, ["resume", str(out)])
    assert f"add `--algorithm {spec}` to the command" in err
    assert len(read_history(out)) == 56
    assert main(["show", str(out), "--algorithm", spec]) == 0
    assert f"continue it with `deapnas resume {out} --algorithm {spec}`" in \
        capsys.readouterr().out
    monkeypatch.setattr(methods, "IMPORTED", {})
    assert main(["resume", str(out), "--quiet", "--algorithm", spec]) == 0
    assert len(read_history(out)) == 120 and (out / BEST).exists()
    monkeypatch.setattr(methods, "IMPORTED", {})
    assert main(["show", str(out), "--algorithm", spec]) == 0
    assert "generational on the nb201 space" in capsys.readouterr().out



# -- damaged fields -------------------------------------------------------------------------------

def _without(*keys):
    def change(data):
        for key in keys[:-1]:
            data = data[key]
        del data[keys[-1]]
    return change


def _setting(value, *keys):
    def change(data):
        for key in keys[:-1]:
            data = data[key]
        data[keys[-1]] = value
    return change


DAMAGED_FILES = [  # (made run, file, change, commands, what the message says)
    ("interrupted", CONFIG, _without("run"), ("resume", "show"), "run is missing"),
    ("interrupted", CONFIG, _setting("0", "run", "seed"), ("resume", "show"),
     "run.seed must be a whole number, not a string"),
    ("interrupted", CONFIG, _setting(-3, "options", "population"), ("resume", "show"),
     "--population must be at least"),
    ("interrupted", CONFIG, _setting(["re"], "method"), ("resume", "show"),
     "method must be a string, not a list"),
    ("interrupted", CONFIG, _setting("this:x", "run", "algorithm"), ("resume", "show"),
     "run.algorithm 'this:x' is not the method 're'"),
    ("interrupted", CHECKPOINT, _without("random"), ("resume",), "random is missing"),
    ("interrupted", CHECKPOINT, _setting("20", "evaluations"), ("resume",),
     "evaluations must be a whole number, not a string"),
    ("interrupted", CHECKPOINT, _without("state", "population"), ("resume",),
     "state.population is missing"),
    ("interrupted", CHECKPOINT, _without("state"), ("resume",), "state is missing"),
    ("interrupted", CHECKPOINT, _setting({"python": [3]}, "random"), ("resume",),
     "random.python must have at least 3 item(s), not 1"),
    ("finished", BEST, _setting("0.9", "fitness"), ("show",),
     "fitness must be a finite number, not a string"),
    ("finished", BEST, _without("metric"), ("show",), "metric is missing"),
    ("pareto", PARETO, _setting("high", "front", 0, "fitness"), ("show",),
     "front[0].fitness must be a list of numbers, not a string"),
    ("pareto", PARETO, _without("objectives"), ("show",), "objectives is missing"),
]


@pytest.mark.parametrize("made_run, name, change, commands, message", DAMAGED_FILES,
                         ids=[f"{f}-{m}" for _, f, _, _, m in DAMAGED_FILES])
def test_a_damaged_field_is_named_without_a_traceback(copy, capsys, made_run, name, change,
                                                      commands, message):
    out = copy(made_run)
    edit_json(out / name, change)
    for command in commands:
        err = refused(capsys, [command, str(out)])
        assert f"{out / name}: " in err and message in err, err


@pytest.mark.parametrize("change, message", [
    (_without("fitness"), "line 3: fitness is missing"),
    (_setting("0.9", "fitness"), "line 3: fitness must be a list of numbers or null, not a "
                                 "string"),
    (_setting(None, "fitness"), "line 3: exactly one of fitness and reason must be given"),
    (_setting([], "fitness"), "line 3: fitness must have at least 1 item(s), not 0"),
    (_setting("3", "evaluation"), "line 3: evaluation must be a whole number"),
])
def test_a_damaged_history_record_is_named_by_resume_and_show(copy, capsys, change, message):
    out = copy("interrupted")
    edit_history(out, 3, change)
    for command in ("resume", "show"):
        err = refused(capsys, [command, str(out)])
        assert f"{out / HISTORY} {message}" in err, err


TRAINED = {"epochs": 1, "channels": 4, "network": {"channels": 4, "cells_per_stage": 1},
           "input_shape": [3, 8, 8], "num_classes": 10, "test_accuracy": 0.5, "params": 1,
           "test_images": 1}


def trained(directory: Path, weights: bytes, **changes) -> None:
    """``train.json`` (a tiny NAS-Bench-201 network, with ``changes``) and ``model.pt``, as
    ``deapnas train`` would leave them beside a table search's pick."""
    (directory / "train.json").write_text(json.dumps({**TRAINED, **changes}))
    (directory / "model.pt").write_bytes(weights)


@pytest.mark.parametrize("changes, message", [
    (dict(input_shape=None), "input_shape must be a list of whole numbers, not null"),
    (dict(num_classes="10"), "num_classes must be a whole number, not a string"),
    (dict(network={"channels": [4]}), "network.channels must be a plain value (a number, a "
                                      "string, true, false) or null, not a list"),
    (dict(network={"bogus": 1}), "network.bogus is not a setting of this space's network"),
])
def test_a_damaged_training_result_is_named_by_export(copy, capsys, changes, message):
    out = copy("finished")
    trained(out, b"", **changes)
    err = refused(capsys, ["export", str(out)])
    assert f"{out / 'train.json'}: {message}" in err, err


def test_weights_of_another_network_are_named_by_export(copy, capsys):
    out = copy("finished")
    buffer = io.BytesIO()
    torch.save({"weight": torch.zeros(2)}, buffer)
    trained(out, buffer.getvalue())
    err = refused(capsys, ["export", str(out)])
    assert f"{out / 'model.pt'} does not hold the weights of the network" in err


# -- small leaks ----------------------------------------------------------------------------------

def test_a_file_named_as_the_table_is_not_printed(copy, capsys, tmp_path):
    out, secret = copy("interrupted"), tmp_path / "secret.txt"
    secret.write_text("root:s3cr3t-t0ken:0:0\nmore secrets\n")
    edit_json(out / CONFIG, _setting(str(secret), "run", "table"))
    err = refused(capsys, ["resume", str(out)])
    assert f"{secret} has no column" in err and "s3cr3t" not in err


def test_a_misspelt_table_column_is_still_suggested(nb201_csv, tmp_path, capsys):
    code = search(nb201_csv, tmp_path / "run", "--metric", NB201_METRIC + "x")
    err = capsys.readouterr().err
    assert code == 2 and f"(did you mean {NB201_METRIC!r} or " in err


def test_escape_codes_in_a_directory_never_reach_the_terminal(copy, capsys):
    out = copy("finished")
    edit_json(out / BEST, _setting("\x1b[2J\x1b[31mmetric\x1b[0m\r", "metric"))
    assert main(["show", str(out)]) == 0
    said = capsys.readouterr().out
    assert "\x1b" not in said and "\r" not in said
    assert "\\x1b[2J\\x1b[31mmetric\\x1b[0m\\r" in said


class Payload:
    def __reduce__(self):
        return (os.system, ("true",))


def test_an_unsafe_weights_file_is_refused_without_advising_an_unsafe_load(copy, capsys):
    out = copy("finished")
    trained(out, pickle.dumps({"weight": Payload()}))
    err = refused(capsys, ["export", str(out)])
    assert f"{out / 'model.pt'} holds objects other than tensors" in err
    assert "weights_only" not in err and "trusted" not in err
    assert not (out / "export").exists()


def _terminated_during(monkeypatch, module, name):
    """Make ``module.name`` receive a real SIGTERM when called, then carry on."""
    real = getattr(module, name)

    def terminated(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, terminated)


@pytest.mark.parametrize("command, module, name, says", [
    ("show", report, "plots", "the run is unchanged"),
    ("train", report, "load_run", "every finished epoch is saved"),
    ("export", export_module, "training_result", "export may be incomplete"),
])
def test_an_interrupted_command_says_what_it_left(copy, capsys, monkeypatch, command, module,
                                                  name, says):
    out = copy("finished")
    previous = signal.getsignal(signal.SIGTERM)
    _terminated_during(monkeypatch, module, name)
    try:
        assert main([command, str(out)]) == 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    err = capsys.readouterr().err
    assert says in err and f"`deapnas {command} {out}` again" in err
    assert "every finished evaluation is saved" not in err and "deapnas resume" not in err
