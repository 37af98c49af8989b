"""``--dry-run`` and ``--calibrate``: a run's cost worked out before anything runs, and nothing
written (deapnas.estimate)."""
import re

import pytest
from torch import nn

from deapnas.cli import main
from deapnas.estimate import Phase, measure
from deapnas.rundir import BEST

from conftest import NB201_METRIC

#: Each method's paper preset: a line of its dry run that counts its trainings.
PAPER_COUNTS = {
    "re": "candidate trainings: 500",
    "minigen": "network trainings on the mini dataset: 15 to 1,035",  # --generations 100
    "nasgep": "one-epoch model trainings: 10,000",
    "egnas": "ES candidate scorings: 8,960",  # 35 ES steps of 1 + N·(λ + 1), λ = 50
    "renas": "children: 1,960",
}


def listing(folder):
    """Every path under ``folder`` with its size and modification time."""
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*"))}


@pytest.mark.parametrize("algorithm", PAPER_COUNTS)
def test_paper_preset_dry_run_prints_the_estimate_and_writes_nothing(algorithm, tmp_path,
                                                                    monkeypatch, capsys):
    cwd, data_dir, out = tmp_path / "cwd", tmp_path / "no-data", tmp_path / "out"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    assert main(["search", "--algorithm", algorithm, "--preset", "paper", "--dry-run",
                 "--data-dir", str(data_dir), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert PAPER_COUNTS[algorithm] in printed
    assert "FLOPs per image" in printed and "peak activation memory" in printed
    assert re.search(r"total [\d.]+ [kMGTP] FLOPs", printed)
    assert "MISSING" in printed and "--download" in printed  # the paper's data is not here
    assert "final training" in printed  # what `deapnas train` will cost afterwards
    assert not out.exists() and not data_dir.exists() and list(cwd.iterdir()) == []


def test_flops_and_activations_of_a_small_network_match_a_hand_count():
    def build():
        return nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(18, 10))

    network = measure(build, (1, 5, 5))
    conv = 2 * (2 * 3 * 3) * (1 * 3 * 3)  # 2 FLOPs per multiply-add, 18 outputs of 9 inputs
    linear = 2 * 18 * 10
    assert network.flops == conv + linear == 684
    # float32 tensors made per image: the convolution's 2x3x3 output, the ReLU's copy of it and
    # the linear layer's 10 logits; flattening is a view
    assert network.activation_bytes == 4 * (18 + 18 + 10)
    assert network.params == (2 * 9 + 2) + (18 * 10 + 10)
    phase = Phase("trainings", (7, 7), "", [network], epochs=3, images=100, scored=40)
    assert phase.flops_per_training == 684 * (3 * 100 * 3 + 40)
    assert phase.flops == (7 * phase.flops_per_training,) * 2


def test_calibrate_turns_the_flops_of_a_digits_search_into_hours(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["search", "--preset", "tiny", "--dry-run", "--calibrate", "--device",
                 "cpu"]) == 0
    printed = capsys.readouterr().out
    hours = [float(h) for h in re.findall(r"total [^\n]*about ([\d.e-]+) hours", printed)]
    assert len(hours) == 2 and all(h > 0 for h in hours)
    assert "FLOP/s" in printed and "data: digits: present" in printed
    assert list(tmp_path.iterdir()) == []


def test_table_search_dry_run_counts_look_ups(nb201_csv, tmp_path, capsys):
    argv = ["search", "--space", "nb201", "--dataset", "nb201", "--table", str(nb201_csv),
            "--metric", NB201_METRIC, "--evaluations", "30", "--population", "10",
            "--out", str(tmp_path / "out"), "--dry-run", "--calibrate"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "nothing is trained, so nothing was timed" in printed
    assert "table look-ups: 30" in printed and f"the table {nb201_csv}: present" in printed
    assert "nothing is trained" in printed and not (tmp_path / "out").exists()


def test_table_dry_run_checks_the_columns(nb201_csv, tmp_path, capsys):
    assert main(["search", "--space", "nb201", "--dataset", "nb201", "--table", str(nb201_csv),
                 "--metric", NB201_METRIC[:-2], "--evaluations", "30", "--population", "10",
                 "--out", str(tmp_path / "out"), "--dry-run"]) == 2
    assert f"did you mean '{NB201_METRIC}'" in capsys.readouterr().err


def test_dry_run_refuses_what_a_search_would_refuse(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["search", "--evaluations", "5", "--population", "10", "--dry-run",
                 "--out", str(out)]) == 2
    assert "must be at least --population" in capsys.readouterr().err
    (out / "someone's").mkdir(parents=True)
    assert main(["search", "--dry-run", "--out", str(out)]) == 2
    assert "is not a deapnas run" in capsys.readouterr().err


def test_train_dry_run_measures_the_pick_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["search", "--evaluations", "4", "--population", "3", "--sample-size", "2",
                 "--epochs", "1", "--out", str(out), "--quiet"]) == 0
    before = listing(tmp_path)
    capsys.readouterr()
    assert main(["train", str(out), "--dry-run", "--epochs", "7"]) == 0
    printed = capsys.readouterr().out
    assert "the pick of best.json" in printed and "7 epoch(s) of 1,437 images" in printed
    assert listing(tmp_path) == before and (out / BEST).exists()
