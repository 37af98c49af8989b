"""An experiment script's final training resumes per epoch through the code of ``deapnas
train`` (``experiment.final_training``): killed mid-way and run again, the script ends with the
weights and test accuracy of an uninterrupted run."""
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from deapnas.retraining import TRAIN_STATE, read_training_log

from test_train_resume import kill_after_epochs

ROOT = Path(__file__).resolve().parents[1]
EPOCHS = 12  # the kill lands after the second epoch, long before the last
#: ``experiments/regularized_evolution_macro.py --tiny`` made cheap: 4 one-epoch evaluations
#: of 4-channel networks, then the pick's final training at 4 channels.
REMACRO = [str(ROOT / "experiments" / "regularized_evolution_macro.py"), "--tiny",
           "--population", "4", "--sample-size", "2", "--cycles", "0", "--epochs", "1",
           "--channels", "4", "--train-per-class", "10", "--min-evaluations", "1",
           "--batch-size", "256", "--final-channels", "4", "--final-epochs", str(EPOCHS),
           "--device", "cpu", "--quiet"]


def experiment(out: Path) -> subprocess.Popen:
    """The script in a process of its own, on one thread (as the run it is compared with)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, *REMACRO, "--out", str(out)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def printed_test_accuracy(process: subprocess.Popen) -> str:
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err
    return re.search(r"retrained .* test accuracy [0-9.]+", out).group()


def weights(out: Path) -> dict:
    return torch.load(out / TRAIN_STATE, weights_only=True)["model"]


@pytest.mark.filterwarnings("ignore:A class named:RuntimeWarning")
def test_a_killed_experiment_continues_its_final_training_to_the_uninterrupted_result(tmp_path):
    straight, broken = tmp_path / "straight", tmp_path / "broken"
    reference = experiment(straight)
    killed = experiment(broken)
    kill_after_epochs(killed, broken, 2)
    assert killed.returncode == -signal.SIGKILL
    before = read_training_log(broken)
    assert 2 <= len(before) < EPOCHS

    expected = printed_test_accuracy(reference)
    assert printed_test_accuracy(experiment(broken)) == expected
    after = read_training_log(broken)
    assert after[:len(before)] == before  # continued: the epochs done before were not redone
    assert [r["epoch"] for r in after] == list(range(1, EPOCHS + 1))
    mine, theirs = weights(broken), weights(straight)
    assert mine.keys() == theirs.keys()
    assert all(torch.equal(mine[k], theirs[k]) for k in mine)

    # finished: the same command prints the same result again, training nothing
    assert printed_test_accuracy(experiment(broken)) == expected
    assert read_training_log(broken) == after
