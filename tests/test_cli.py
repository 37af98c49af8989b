"""The deapnas command end to end: search, show, train, resume, and its error messages."""
import json
import subprocess
import sys

import pytest

from deapnas.cli import build_parser, main, search_settings
from deapnas.rundir import BEST, CHECKPOINT, CONFIG, HISTORY, LOGBOOK, read_history

from conftest import NB201_METRIC, NB201_REPORT


def test_help_explains_every_option(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["search", "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for option in ("--algorithm", "--space", "--dataset", "--data-dir", "--download", "--table",
                   "--metric", "--report", "--evaluations", "--time-limit", "--epochs",
                   "--seed", "--device", "--out", "--preset"):
        assert option in text


@pytest.mark.parametrize("argv, message", [
    (["search", "--dataset", "nb201"], "give its CSV with --table"),
    (["search", "--evaluations", "3", "--population", "5"], "must be at least --population"),
    (["search", "--sample-size", "50"], "--sample-size must lie between"),
    (["search", "--table", "x.csv", "--space", "macro", "--metric", "m"], "--space nb201"),
    (["search", "--dataset", "mnist", "--data-dir", "{tmp}"], "download"),
    (["search", "--dataset", "idx", "--data-dir", "{tmp}/nothing"], "does not exist"),
    (["resume", "{tmp}"], "not a deapnas run directory"),
    (["show", "{tmp}"], "not a deapnas run directory"),
])
def test_bad_input_gets_a_clear_message_not_a_traceback(argv, message, tmp_path, capsys):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv] + ["--quiet"] * (argv[0] == "search")
    out = tmp_path / "run"
    assert main(argv + (["--out", str(out)] if argv[0] == "search" else [])) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists()  # a refused search leaves nothing behind


def test_unknown_choice_is_rejected(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["search", "--dataset", "imagenet"])
    assert exit_.value.code == 2 and "invalid choice" in capsys.readouterr().err
    assert main(["search", "--algorithm", "sgd"]) == 2
    assert "unknown method 'sgd'; choose one of" in capsys.readouterr().err


def test_table_search_show_and_refusal_to_overwrite(nb201_csv, tmp_path, capsys):
    out = tmp_path / "nb"
    argv = ["search", "--space", "nb201", "--dataset", "nb201", "--table", str(nb201_csv),
            "--metric", NB201_METRIC, "--report", NB201_REPORT, "--evaluations", "60",
            "--population", "10", "--out", str(out), "--quiet"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert NB201_REPORT in printed and "best architecture" in printed
    for name in (CONFIG, HISTORY, CHECKPOINT, LOGBOOK, BEST):
        assert (out / name).exists(), name
    assert main(["show", str(out)]) == 0
    assert (out / "fitness.png").stat().st_size > 1000 and (out / "best.png").exists()
    assert main(argv) == 2 and "holds a finished search" in capsys.readouterr().err
    assert main(["train", str(out)]) == 2  # a table has no network to train


def test_digits_search_writes_the_run_and_trains_the_pick(tmp_path, capsys):
    out = tmp_path / "digits"
    assert main(["search", "--evaluations", "10", "--population", "5", "--sample-size", "3",
                 "--epochs", "6", "--lr", "0.005", "--out", str(out), "--quiet"]) == 0
    history = read_history(out)
    assert len(history) == 10 and all("params" in r["info"] and "train_seconds" in r["info"]
                                    for r in history)
    best = json.loads((out / BEST).read_text())
    assert best["fitness"] > 0.5 and best["params"] > 0
    assert "validation" not in capsys.readouterr().err
    assert main(["train", str(out), "--epochs", "3"]) == 0
    trained = json.loads((out / "train.json").read_text())
    assert trained["test_accuracy"] > 0.5 and (out / "model.pt").exists()


def test_time_limit_stops_breeding(nb201_csv, tmp_path):
    out = tmp_path / "timed"
    assert main(["search", "--space", "nb201", "--dataset", "nb201", "--table", str(nb201_csv),
                 "--metric", NB201_METRIC, "--evaluations", "100000", "--population", "10",
                 "--time-limit", "1", "--out", str(out), "--quiet"]) == 0
    assert 10 <= len(read_history(out)) < 100000


def test_installed_command_runs_as_a_process():
    result = subprocess.run([sys.executable, "-m", "deapnas.cli", "search", "--help"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "regularized" in result.stdout


@pytest.mark.slow
def test_search_on_real_mnist_images_reaches_95_percent(mnist_dir, tmp_path):
    out = tmp_path / "mnist"
    assert main(["search", "--dataset", "idx", "--data-dir", str(mnist_dir), "--evaluations",
                 "3", "--population", "3", "--sample-size", "2", "--epochs", "2", "--channels", "16",
                 "--out", str(out), "--quiet"]) == 0
    best = json.loads((out / BEST).read_text())
    assert best["fitness"] >= 0.95, best


@pytest.mark.parametrize("argv, no_flip", [([], True), (["--flip"], False),
                                           (["--flip", "--no-flip"], True)])
def test_a_negative_yes_no_option_has_a_positive_form(argv, no_flip):
    """The tiny preset of NASGEP turns flips off (``--no-flip``); ``--flip`` turns them back on."""
    args = build_parser().parse_args(["search", "--algorithm", "nasgep", *argv])
    _, options = search_settings(args)
    assert options.no_flip is no_flip
