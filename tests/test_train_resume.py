"""``deapnas train`` keeps its whole state after every epoch (``train-state.pt``) and continues
an interrupted training to the weights and test accuracy of an uninterrupted one; it logs every
epoch to ``train.jsonl``, and ``deapnas show`` draws them (``training.png``)."""
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from deapnas import fitness
from deapnas.cli import main
from deapnas.report import TRAIN_LOG, TRAIN_PLOT, TRAIN_STATE, read_training_log
from deapnas.rundir import read_json

#: A tiny regularized-evolution search on the macro space (digits), cheap to train.
RE_SEARCH = ["search", "--evaluations", "4", "--population", "4", "--sample-size", "2",
             "--epochs", "1", "--channels", "4", "--batch-size", "256", "--lr", "0.01",
             "--quiet"]
#: A tiny RENAS search whose final training (its own recipe: SGD on a cosine schedule,
#: augmentation, auxiliary head, dropout and drop-path) is cheap: one cell per stage, one
#: batch per epoch.
RENAS_SEARCH = ["search", "--algorithm", "renas", "--evaluations", "4", "--population", "2",
                "--sample-size", "2", "--blocks", "1", "--channels", "2", "--cells", "1",
                "--epochs", "1", "--batch-size", "50", "--train-per-class", "5",
                "--final-batch-size", "2048", "--final-cells", "1", "--final-channels", "4",
                "--drop-path", "0.2", "--cutout", "2", "--quiet"]
EPOCHS = 12  # the real kill lands after the second epoch, long before the last one


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """Finished tiny searches, by method: ``{"re": DIR, "renas": DIR}``, never trained."""
    root = tmp_path_factory.mktemp("searched")
    runs = {"re": root / "re", "renas": root / "renas"}
    for name, argv in (("re", RE_SEARCH), ("renas", RENAS_SEARCH)):
        assert main([*argv, "--out", str(runs[name])]) == 0
    return runs


def copy_of(run: Path, tmp_path: Path, name: str) -> Path:
    out = tmp_path / name
    shutil.copytree(run, out)
    return out


def deapnas_train(out: Path, *extra: str) -> subprocess.Popen:
    """``deapnas train`` in a process of its own, on one thread (as every training compared
    with it: sums split across threads round differently)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                          os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "-m", "deapnas.cli", "train", str(out), "--quiet",
                             *extra], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def finished(process: subprocess.Popen) -> str:
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err
    return out


def epochs_logged(out: Path) -> int:
    try:
        return len((out / TRAIN_LOG).read_bytes().splitlines())
    except FileNotFoundError:
        return 0


def kill_after_epochs(process: subprocess.Popen, out: Path, epochs: int) -> None:
    """SIGKILL ``process`` as soon as ``train.jsonl`` records ``epochs`` epochs."""
    deadline = time.monotonic() + 600
    while epochs_logged(out) < epochs:
        assert process.poll() is None, process.communicate()[1]
        assert time.monotonic() < deadline, "the training logged no epochs"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()


def assert_same_training(out: Path, reference: Path) -> None:
    """The same weights, tensor by tensor, and the same test accuracy."""
    mine = torch.load(out / "model.pt", weights_only=True)
    theirs = torch.load(reference / "model.pt", weights_only=True)
    assert mine.keys() == theirs.keys()
    assert all(torch.equal(mine[k], theirs[k]) for k in mine), \
        [k for k in mine if not torch.equal(mine[k], theirs[k])]
    assert read_json(out / "train.json")["test_accuracy"] == \
        read_json(reference / "train.json")["test_accuracy"]


def test_re_killed_mid_training_continues_to_the_uninterrupted_result(searched, tmp_path):
    straight, broken = copy_of(searched["re"], tmp_path, "straight"), \
        copy_of(searched["re"], tmp_path, "broken")
    reference = deapnas_train(straight, "--epochs", str(EPOCHS))
    killed = deapnas_train(broken, "--epochs", str(EPOCHS))
    kill_after_epochs(killed, broken, 2)
    assert killed.returncode == -signal.SIGKILL
    before = read_training_log(broken)
    assert 2 <= len(before) < EPOCHS and (broken / TRAIN_STATE).exists()
    assert not (broken / "train.json").exists() and not (broken / "model.pt").exists()
    assert "test accuracy" in finished(deapnas_train(broken))  # with its own --epochs
    finished(reference)
    assert_same_training(broken, straight)
    after = read_training_log(broken)
    assert after[:len(before)] == before  # continued: the epochs done before were not redone
    assert [r["epoch"] for r in after] == list(range(1, EPOCHS + 1))
    assert read_json(broken / "train.json")["epochs"] == EPOCHS
    assert not (broken / TRAIN_STATE).exists()  # finished: model.pt holds its result
    assert not list(broken.glob(".*.tmp"))


def interrupt_epoch(monkeypatch, at: int) -> dict:
    """Interrupt (as Ctrl-C does) the ``at``-th epoch of training; counts the epochs run."""
    real, calls = fitness.train_epoch_measured, {"n": 0}

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == at:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(fitness, "train_epoch_measured", interrupted)
    return calls


@pytest.mark.usefixtures("one_thread")
def test_renas_final_training_interrupted_continues_and_refuses_other_settings(
        searched, tmp_path, monkeypatch, capsys):
    straight, broken = copy_of(searched["renas"], tmp_path, "straight"), \
        copy_of(searched["renas"], tmp_path, "broken")
    assert main(["train", str(straight), "--epochs", "4", "--quiet"]) == 0
    interrupt_epoch(monkeypatch, 3)  # two epochs are saved
    assert main(["train", str(broken), "--epochs", "4"]) == 130
    assert "every finished epoch is saved" in capsys.readouterr().err
    monkeypatch.undo()
    saved = (broken / TRAIN_STATE).read_bytes()
    assert len(read_training_log(broken)) == 2
    assert main(["show", str(broken)]) == 0
    assert (f"unfinished training: 2 of 4 epochs done ({broken / TRAIN_STATE}); continue it "
            f"with `deapnas train {broken}`") in capsys.readouterr().out

    for other, change in ((["--epochs", "6"], "epochs: 4 -> 6"),
                          (["--channels", "8"], "channels: 4 -> 8")):
        assert main(["train", str(broken), *other]) == 2
        err = capsys.readouterr().err
        assert f"{broken / TRAIN_STATE} holds an unfinished training (2 epochs done)" in err
        assert change in err and f"delete {broken / TRAIN_STATE}" in err
        assert (broken / TRAIN_STATE).read_bytes() == saved
        assert not (broken / "model.pt").exists()

    epochs = interrupt_epoch(monkeypatch, 0)  # counts, never interrupts
    assert main(["train", str(broken), "--epochs", "4", "--quiet"]) == 0
    assert epochs["n"] == 2  # the third and fourth epochs only
    assert_same_training(broken, straight)
    assert [r["epoch"] for r in read_training_log(broken)] == [1, 2, 3, 4]


def test_train_logs_each_epoch_and_show_draws_the_curve(searched, tmp_path, capsys):
    out = copy_of(searched["re"], tmp_path, "run")
    assert main(["train", str(out), "--epochs", "3"]) == 0
    assert "3/3" in capsys.readouterr().err  # the progress bar of the epochs
    records = read_training_log(out)
    assert [r["epoch"] for r in records] == [1, 2, 3]
    assert all(r.keys() == {"epoch", "loss", "train_accuracy", "seconds"} for r in records)
    assert all(r["loss"] > 0 and 0 <= r["train_accuracy"] <= 1 and r["seconds"] >= 0
               for r in records)
    assert main(["show", str(out)]) == 0
    assert f"wrote {out / TRAIN_PLOT}" in capsys.readouterr().out
    assert (out / TRAIN_PLOT).stat().st_size > 10_000

    (out / TRAIN_LOG).write_text('{"epoch": 1, "loss": "low"}\n')
    assert main(["show", str(out)]) == 2
    assert f"{out / TRAIN_LOG} line 1: " in capsys.readouterr().err


def test_a_damaged_training_state_is_refused_with_what_to_do(searched, tmp_path, capsys):
    out = copy_of(searched["re"], tmp_path, "run")
    for content in (b"not a torch file", None):
        if content is None:  # a weights file, but no training state
            torch.save({"model": {}}, out / TRAIN_STATE)
        else:
            (out / TRAIN_STATE).write_bytes(content)
        assert main(["train", str(out), "--epochs", "2"]) == 2
        err = capsys.readouterr().err
        assert str(out / TRAIN_STATE) in err and "delete it to start the training afresh" in err
        assert not (out / "model.pt").exists()
    (out / TRAIN_STATE).unlink()
    assert main(["train", str(out), "--epochs", "2", "--quiet"]) == 0


@pytest.mark.parametrize("name", [TRAIN_STATE, TRAIN_LOG, TRAIN_PLOT])
def test_the_training_files_are_never_written_or_read_through_a_link(searched, tmp_path, capsys,
                                                                     name):
    out = copy_of(searched["re"], tmp_path, "run")
    if name == TRAIN_PLOT:  # show draws it once train.jsonl exists
        assert main(["train", str(out), "--epochs", "1", "--quiet"]) == 0
    victim = tmp_path / "victim"
    victim.write_bytes(b"not the run's")
    os.utime(victim, (1_000_000_000, 1_000_000_000))
    (out / name).unlink(missing_ok=True)
    (out / name).symlink_to(victim)
    command = ["show", str(out)] if name == TRAIN_PLOT else \
        ["train", str(out), "--epochs", "1", "--quiet"]
    assert main(command) == 2
    assert f"{out / name} is a symbolic link" in capsys.readouterr().err
    assert victim.read_bytes() == b"not the run's" and victim.stat().st_mtime == 1_000_000_000
