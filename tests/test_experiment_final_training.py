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
#: ``experiments/minigen.py --tiny`` on the bundled digits made cheap: 3 one-epoch networks of
#: width 8 on 2 images per class, then two finalists trained on the training split.
MINIGEN = [str(ROOT / "experiments" / "minigen.py"), "--tiny", "--dataset", "digits",
           "--population", "3", "--keep", "2", "--generations", "0", "--epochs", "1",
           "--train-per-class", "2", "--widths", "8", "--finalists", "2",
           "--final-epochs", str(EPOCHS), "--batch-size", "256", "--device", "cpu", "--quiet"]
#: Per script: its command, the folders of its final trainings (the kill lands in the last),
#: and what it prints of their results.
SCRIPTS = {"re": (REMACRO, [""], r"retrained .* test accuracy [0-9.]+"),
           "minigen": (MINIGEN, ["finalist-1", "finalist-2"], r"finalists trained[\s\S]*")}


def experiment(script: str, out: Path) -> subprocess.Popen:
    """The script in a process of its own, on one thread (as the run it is compared with)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, *SCRIPTS[script][0], "--out", str(out)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def printed_result(script: str, process: subprocess.Popen) -> str:
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err
    return re.search(SCRIPTS[script][2], out).group()


def weights(out: Path) -> dict:
    return torch.load(out / TRAIN_STATE, weights_only=True)["model"]


@pytest.mark.filterwarnings("ignore:A class named:RuntimeWarning")
@pytest.mark.parametrize("script", SCRIPTS)
def test_a_killed_experiment_continues_its_final_training_to_the_uninterrupted_result(
        script, tmp_path):
    straight, broken = tmp_path / "straight", tmp_path / "broken"
    trainings = SCRIPTS[script][1]
    reference = experiment(script, straight)
    killed = experiment(script, broken)
    kill_after_epochs(killed, broken / trainings[-1], 2)
    assert killed.returncode == -signal.SIGKILL
    before = {folder: read_training_log(broken / folder) for folder in trainings}
    assert 2 <= len(before[trainings[-1]]) < EPOCHS

    expected = printed_result(script, reference)
    assert printed_result(script, experiment(script, broken)) == expected
    for folder in trainings:
        after = read_training_log(broken / folder)
        # continued: the epochs done before were not redone
        assert after[:len(before[folder])] == before[folder]
        assert [r["epoch"] for r in after] == list(range(1, EPOCHS + 1))
        mine, theirs = weights(broken / folder), weights(straight / folder)
        assert mine.keys() == theirs.keys()
        assert all(torch.equal(mine[k], theirs[k]) for k in mine)

    # finished: the same command prints the same result again, training nothing
    logs = {folder: read_training_log(broken / folder) for folder in trainings}
    assert printed_result(script, experiment(script, broken)) == expected
    assert {folder: read_training_log(broken / folder) for folder in trainings} == logs
