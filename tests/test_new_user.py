"""What a new user meets (issue 21): errors that suggest what was meant and say what to do,
the docs' own example method, ``--help`` as it groups and labels options, and public entry
points that say what to pass. Each case runs the real command (``deapnas.cli.main``, or a
process where the test needs one) on real run directories.
"""
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from deapnas.cli import main
from deapnas.fitness import TrainEvaluator
from deapnas.methods import Method, get_method, register_method
from deapnas.options import RunConfig, flag, option
from deapnas.runner import resume, start
from deapnas.spaces import get_space, register_space
from deapnas.rundir import BEST, CONFIG, read_history

from conftest import NB201_METRIC

ROOT = Path(__file__).resolve().parents[1]


def error_of(argv, capsys) -> str:
    """The command's stderr, once it exited with status 2 (by return or by argparse)."""
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    assert code == 2
    return capsys.readouterr().err


def table_search(csv, out, *extra) -> list:
    return ["search", "--space", "nb201", "--dataset", "nb201", "--table", str(csv),
            "--metric", NB201_METRIC, "--evaluations", "12", "--population", "4",
            "--sample-size", "2", "--out", str(out), "--quiet", *extra]


# -- errors that suggest ----------------------------------------------------------------------

@pytest.mark.parametrize("argv, meant", [
    (["search", "--epoch", "3"], "did you mean --epochs?"),
    (["search", "--sample_size", "5"], "did you mean --sample-size?"),
    (["train", "somewhere", "--epoch", "3"], "did you mean --epochs?"),
    (["search", "--algorithm", "RE"], "did you mean re?"),
    (["search", "--space", "NB201"], "did you mean nb201?"),
    (["serach"], "did you mean search?"),
    (["search", "--dataset", "Digits"], "did you mean digits?"),
])
def test_a_misspelt_option_choice_or_command_gets_a_short_usage_and_a_suggestion(
        argv, meant, tmp_path, capsys):
    err = error_of(argv + ["--out", str(tmp_path / "run")] * (argv[1:2] == ["--algorithm"]),
                   capsys)
    assert meant in err and "Traceback" not in err
    assert len(err.splitlines()) <= 2  # not every option's usage
    assert not (tmp_path / "run").exists()


def test_export_of_a_folder_that_is_not_a_run_says_so(tmp_path, capsys):
    err = error_of(["export", str(tmp_path)], capsys)
    assert f"{tmp_path} is not a deapnas run directory (no {CONFIG})" in err
    assert "final pick" not in err


def test_search_into_a_finished_run_says_what_to_do_instead_of_resume(nb201_csv, tmp_path,
                                                                       capsys):
    out = tmp_path / "run"
    assert main(table_search(nb201_csv, out)) == 0 and (out / BEST).exists()
    capsys.readouterr()
    err = error_of(table_search(nb201_csv, out), capsys)
    assert "finished search" in err and "deapnas resume" not in err
    assert f"deapnas show {out}" in err and "another --out" in err


def test_a_table_with_a_method_that_cannot_search_nb201_names_those_that_can(nb201_csv,
                                                                            tmp_path, capsys):
    err = error_of(["search", "--algorithm", "minigen", "--table", str(nb201_csv), "--report",
                    NB201_METRIC, "--out", str(tmp_path / "run")], capsys)
    assert "minigen cannot search" in err and "--table works with --space nb201" not in err
    assert "methods that take a table: egnas, random, re, renas" in err
    assert not (tmp_path / "run").exists()


def test_ctrl_c_while_the_command_starts_prints_no_traceback(tmp_path):
    """The `deapnas` command's entry point (deapnas.__main__): a Ctrl-C inside torch's C++
    start-up aborted the process with "terminate called ... KeyboardInterrupt"."""
    process = subprocess.Popen([sys.executable, "-m", "deapnas", "show", str(tmp_path)],
                               cwd=ROOT, stderr=subprocess.PIPE, text=True)
    time.sleep(0.4)  # Python is up; deapnas is importing torch
    process.send_signal(signal.SIGINT)
    err = process.communicate(timeout=120)[1]
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert process.returncode in (130, -signal.SIGINT)


def test_the_time_limit_holds_within_the_first_population(tmp_path, capsys, monkeypatch):
    """Before, the first population (20 trainings here) was evaluated whole, whatever the
    limit; now no evaluation starts once the limit is spent. Each training takes at least
    0.3 s here, so that the 20 cannot fit in the limit however fast the machine is."""
    real = TrainEvaluator.__call__
    monkeypatch.setattr(TrainEvaluator, "__call__",
                        lambda self, individual: (time.sleep(0.3), real(self, individual))[1])
    out, limit = tmp_path / "run", 2.0
    assert main(["search", "--epochs", "1", "--population", "20", "--sample-size", "3",
                 "--evaluations", "40", "--time-limit", str(limit), "--out", str(out),
                 "--quiet"]) == 0
    history = read_history(out)
    assert len(history) < 20 and (out / BEST).exists()
    assert all(r["elapsed"] < limit for r in history[:-1])  # each started before the limit
    assert "best architecture" in capsys.readouterr().out
    assert main(["show", str(out)]) == 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="warns on a machine without a GPU")
def test_the_paper_preset_on_a_cpu_warns_once_about_its_cost(tmp_path, capsys):
    main(["search", "--preset", "paper", "--data-dir", str(tmp_path / "none"),
          "--out", str(tmp_path / "run"), "--quiet"])  # stops at the missing dataset
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "--preset paper is sized for GPUs" in warnings[0]
    assert "Paper-scale searches" in warnings[0]
    assert "Paper-scale searches" in (ROOT / "docs" / "cli.rst").read_text()


# -- the docs' own example ----------------------------------------------------------------------

def test_the_docs_example_method_without_a_table_is_refused_not_trained_unsized(tmp_path,
                                                                             monkeypatch,
                                                                             capsys):
    """Its options do not extend TrainingOptions: it used to train NB201 networks of the
    generic default size (64 channels, 10 epochs), none of it in config.json."""
    monkeypatch.syspath_prepend(str(ROOT / "docs" / "examples"))
    out = tmp_path / "run"
    err = error_of(["search", "--algorithm", "generational_method:METHOD", "--space", "nb201",
                    "--evaluations", "20", "--population", "4", "--out", str(out), "--quiet"],
                   capsys)
    assert "generational" in err and "TrainingOptions" in err and "--table" in err
    assert not out.exists()


# -- --help ---------------------------------------------------------------------------------------

def help_groups(parser) -> dict[str, str]:
    """``deapnas search --help`` as ``{group title: its text}``."""
    groups, title = {}, ""
    for line in parser.commands["search"].format_help().splitlines():
        if line and not line.startswith(" ") and line.endswith(":"):
            title = line[:-1]
        groups[title] = groups.get(title, "") + line + "\n"
    return groups


def test_help_groups_options_several_methods_share_as_shared_naming_them():
    from deapnas.cli import build_parser
    groups = help_groups(build_parser())
    shared = next(text for title, text in groups.items() if title.startswith("shared by"))
    for shared_flag in ("--population", "--sample-size", "--final-epochs", "--no-flip"):
        listed = re.compile(rf"^\s+{shared_flag}\b", re.M)  # where the option is listed, not
        assert listed.search(shared)                       # a help text that mentions it
        assert not any(listed.search(text) for title, text in groups.items()
                       if title.endswith(" options"))
    assert " ".join(shared.split()).count("re: 25 (paper 100)") == 1  # --population's re
    assert "--warmup" in groups["egnas options"] and "--keep" in groups["minigen options"]


def test_help_shows_a_negated_flag_default_as_the_flag_not_true_or_false():
    from deapnas.cli import build_parser
    text = " ".join(build_parser().commands["search"].format_help().split())
    assert "--no-flip (paper --flip)" in text and "True (paper False)" not in text


@dataclass
class LambdaOptions:
    lambda_: int = option(10, "offspring per generation", minimum=1, maximum=1000)


def test_a_user_method_without_a_paper_preset_and_a_keyword_field(monkeypatch):
    """Its own defaults are not labelled "(paper ...)", and ``lambda_`` is ``--lambda``."""
    from deapnas import methods
    from deapnas.cli import build_parser, search_settings
    method = Method("plus", LambdaOptions, lambda run: None, spaces=("nb201",),
                    presets={"tiny": {"lambda_": 2}})
    monkeypatch.setitem(methods.METHODS, "plus", method)
    parser = build_parser()
    group = help_groups(parser)["plus options"]
    assert "--lambda LAMBDA" in group and "--lambda-" not in group
    assert "[default: 2]" in group and "paper" not in group
    args = parser.parse_args(["search", "--algorithm", "plus", "--lambda", "3"])
    _, options = search_settings(args)
    assert options.lambda_ == 3
    assert flag("lambda_") == "--lambda"


# -- public entry points say what to pass ---------------------------------------------------------

def test_a_journal_given_a_describe_function_says_to_pass_the_space(tmp_path):
    """The signature of older versions, Journal(directory, describe): before, an
    AttributeError ('function' object has no attribute 'individual')."""
    from deapnas.journal import Journal
    with pytest.raises(TypeError, match=r"Journal\(directory, space\): got the function "
                                        r"describe; pass the space of the individuals"):
        Journal(tmp_path / "run", describe)
    assert not (tmp_path / "run").exists()
    with pytest.raises(TypeError, match="pass a path"):
        Journal(None, get_space("nb201"))


def describe(individual) -> dict:
    return {"genome": list(individual)}


@pytest.mark.parametrize("call, message", [
    (lambda: get_space(get_space("nb201")), r"get_space\(name\): got a Space; pass a space's "
                                            "name, e.g. 'nb201'"),
    (lambda: get_method(get_method("re")), r"get_method\(name\): got a Method; pass a method's "
                                           "name"),
    (lambda: register_space("nb201"), r"register_space\(space\): got str 'nb201'; pass a "
                                      r"deapnas.spaces.Space"),
    (lambda: register_method(Method("mine", LambdaOptions(), print)),
     "options: got LambdaOptions .*; pass the class of its options"),
    (lambda: register_method(Method("mine", LambdaOptions, search=None)),
     "search: got NoneType None; pass a function"),
    (lambda: register_method(Method("mine", LambdaOptions, print, spaces="nb201")),
     r"spaces: got str 'nb201'; pass a tuple of space names, e.g. \('nb201',\)"),
    (lambda: start({"algorithm": "re"}, None), r"start\(config, options\): got dict"),
    (lambda: start(RunConfig(), LambdaOptions()), "pass re's options"),
    (lambda: resume(3), r"resume\(directory\): got int 3; pass a path"),
])
def test_public_entry_points_refuse_the_wrong_kind_of_argument_saying_what_to_pass(call,
                                                                                   message):
    with pytest.raises(TypeError, match=message):
        call()


def test_the_changelog_announces_the_changes_for_whom_and_what_to_do():
    text = (ROOT / "CHANGELOG.md").read_text()
    for change in ("Journal(directory, space)", "--checkpoint-gap", "journal.json",
                   "--algorithm", "restore_state", "TimeUp", "deapnas.limits"):
        assert change in text, change
