"""The faults deapnas survives, one test each: what a user can do to a run directory, to its
inputs and to a running search, and what deapnas answers. Every test drives the real command
(``deapnas.cli.main``) on real files in a temporary directory; most search the NAS-Bench-201
table, which takes a second.
"""
import json
import os
import pickle
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from deapnas.cli import main
from deapnas.fitness import TableEvaluator
from deapnas.journal import Journal
from deapnas.rng import random_states, set_random_states
from deapnas.rundir import BEST, CHECKPOINT, CONFIG, HISTORY, Lock, read_history
from deapnas.safefiles import RunDirectoryError
from deapnas.spaces import nb201

from conftest import NB201_METRIC, NB201_REPORT, interrupt_call, without_clock

ROOT = Path(__file__).resolve().parents[1]


def search(csv, out, *extra):
    return main(["search", "--space", "nb201", "--dataset", "nb201", "--table", str(csv),
                 "--metric", NB201_METRIC, "--report", NB201_REPORT, "--evaluations", "150",
                 "--population", "20", "--checkpoint-every", "40", "--checkpoint-gap", "0",
                 "--out", str(out), "--quiet", *extra])


def interrupted_run(csv, out, after: int):
    """A search of the table stopped (like Ctrl-C) after ``after`` evaluations."""
    with pytest.MonkeyPatch.context() as patch:
        interrupt_call(patch, TableEvaluator, "__call__", after + 1)
        assert search(csv, out) == 130
    assert len(read_history(out)) == after


@pytest.fixture
def straight(nb201_csv, tmp_path):
    """The history of the uninterrupted search."""
    assert search(nb201_csv, tmp_path / "straight") == 0
    return without_clock(read_history(tmp_path / "straight"))


def resume(out, capsys=None):
    code = main(["resume", str(out), "--quiet"])
    return code, (capsys.readouterr().err if capsys else "")


# -- silent corruption and loss ---------------------------------------------------------------------

def test_a_deleted_checkpoint_is_rebuilt_by_replaying_the_history(nb201_csv, tmp_path, straight):
    out = tmp_path / "run"
    interrupted_run(nb201_csv, out, 100)
    (out / CHECKPOINT).unlink()
    assert resume(out)[0] == 0
    assert without_clock(read_history(out)) == straight  # 150 records, not 100 + 150


def test_a_deleted_history_is_refused(nb201_csv, tmp_path, capsys):
    out = tmp_path / "run"
    interrupted_run(nb201_csv, out, 100)
    (out / HISTORY).unlink()
    code, err = resume(out, capsys)
    assert code == 2 and "written after 80 evaluations" in err and "holds 0" in err


def test_lines_cut_from_the_history_are_refused(nb201_csv, tmp_path, capsys):
    out = tmp_path / "run"
    interrupted_run(nb201_csv, out, 100)
    lines = (out / HISTORY).read_text().splitlines(keepends=True)
    (out / HISTORY).write_text("".join(lines[:30] + lines[60:]))
    code, err = resume(out, capsys)
    assert code == 2 and "line 31 should hold evaluation 31" in err
    (out / HISTORY).write_text("".join(lines[:50]))
    code, err = resume(out, capsys)
    assert code == 2 and "written after 80 evaluations" in err and "holds 50" in err


def test_an_edited_config_is_refused_naming_the_setting(nb201_csv, tmp_path, capsys):
    out = tmp_path / "run"
    interrupted_run(nb201_csv, out, 100)
    config = json.loads((out / CONFIG).read_text())
    config["run"]["metric"] = "cifar100_valtest_acc_200ep_mean"
    (out / CONFIG).write_text(json.dumps(config))
    code, err = resume(out, capsys)
    assert code == 2 and "metric: 'cifar10valid_xvalid_acc_200ep_mean' -> " in err
    assert len(read_history(out)) == 100  # a failed resume loses nothing
    (out / CHECKPOINT).unlink()  # without the checkpoint, the history itself refuses it
    code, err = resume(out, capsys)
    assert code == 2 and "recorded under other settings" in err


def test_evaluations_beyond_the_checkpoint_survive_a_failed_resume(nb201_csv, tmp_path,
                                                                   straight):
    out = tmp_path / "run"
    interrupted_run(nb201_csv, out, 100)  # checkpoint at 80, 20 evaluations beyond it
    before = (out / HISTORY).read_text()
    (out / CONFIG).rename(out / "config.saved")
    assert main(["resume", str(out)]) == 2
    (out / "config.saved").rename(out / CONFIG)
    assert (out / HISTORY).read_text() == before
    assert resume(out)[0] == 0 and without_clock(read_history(out)) == straight


def test_a_second_writer_is_refused_and_named(nb201_csv, tmp_path, capsys):
    out = tmp_path / "run"
    interrupted_run(nb201_csv, out, 100)
    lock = Lock(out).acquire()
    try:
        code, err = resume(out, capsys)
        assert code == 2 and f"is in use by pid {os.getpid()}" in err
        assert search(nb201_csv, out) == 2 and "already holds a run" in capsys.readouterr().err
        assert main(["show", str(out)]) == 0
        assert f"the search is running (pid {os.getpid()}" in capsys.readouterr().out
    finally:
        lock.release()
    assert resume(out)[0] == 0


def test_a_lock_left_by_a_dead_process_does_not_block(nb201_csv, tmp_path, straight):
    out = tmp_path / "run"
    interrupted_run(nb201_csv, out, 60)
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from pathlib import Path;"
                               "from deapnas.rundir import Lock; Lock(Path(sys.argv[1])).acquire();"
                               "print('held', flush=True); time.sleep(600)", str(out)],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert "pid" in (out / "lock").read_text()  # the file stays, naming the dead holder
    assert resume(out)[0] == 0 and without_clock(read_history(out)) == straight


def test_measurements_cannot_overwrite_the_record(tmp_path):
    from deapnas.fitness import Evaluation
    cell = nb201.SPACE.individual()(["none"] * 6)
    with Journal(tmp_path, nb201.SPACE) as journal:
        journal._record(cell, Evaluation((1.5,), reason=None, fitness=[9], key="forged",
                                         evaluation=77))
    record = read_history(tmp_path)[0]
    assert record["fitness"] == [1.5] and record["key"] == nb201.arch_string(cell)
    assert record["evaluation"] == 1 and record["info"] == {"fitness": [9], "key": "forged",
                                                            "evaluation": 77}


def test_random_states_round_trip_through_json():
    import random
    import numpy as np
    import torch
    states = json.loads(json.dumps(random_states()))
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    set_random_states(states)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


# -- security -------------------------------------------------------------------------------------

class Payload:
    def __reduce__(self):
        return (os.system, (f"touch {PLANTED}",))


PLANTED = Path("/tmp/deapnas-planted-payload-ran")


def test_a_planted_pickle_in_the_run_directory_never_runs(nb201_csv, tmp_path, capsys):
    PLANTED.unlink(missing_ok=True)
    out = tmp_path / "run"
    interrupted_run(nb201_csv, out, 100)
    (out / "checkpoint.pkl").write_bytes(pickle.dumps(Payload()))  # the old format: ignored
    checkpoint = json.loads((out / CHECKPOINT).read_text())
    import hashlib
    planted = out / "checkpoint-80.pt"
    planted.write_bytes(pickle.dumps({"t0": Payload()}))
    checkpoint["tensors"] = {"file": planted.name,
                             "sha256": hashlib.sha256(planted.read_bytes()).hexdigest()}
    (out / CHECKPOINT).write_text(json.dumps(checkpoint))
    code, err = resume(out, capsys)
    assert code == 2 and "holds something other than tensors and is refused" in err
    assert not PLANTED.exists()


# -- failing well -----------------------------------------------------------------------------------

class SlowStart:
    """Takes 1.5 s to prepare in a worker, then evaluates instantly (or hangs on -1)."""

    def prepare(self):
        time.sleep(1.5)

    def __call__(self, x):
        if x < 0:
            time.sleep(60)
        return (float(x),)


def test_the_time_limit_counts_the_evaluation_not_the_workers_warm_up():
    from deapnas.parallel import DevicePool
    with DevicePool(1, "cpu", timeout=1.0) as pool:
        results = list(pool.map(SlowStart(), [1, 2, -1, 3, 4]))
    assert [r[0] for r in results[:2]] == [1.0, 2.0] and results[3:] == [(3.0,), (4.0,)]
    assert "exceeded the time limit of 1 s" in results[2].info["reason"]


def test_a_search_whose_candidates_all_fail_stops_early_and_says_why(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["search", "--max-params", "1", "--epochs", "1", "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "the first 25 candidates all failed" in err
    assert "exceed the cap of 1" in err and "Traceback" not in err
    assert len(read_history(out)) == 25
    assert main(["show", str(out)]) == 0
    assert "every candidate failed" in capsys.readouterr().out
    assert main(["train", str(out)]) == 2 and "no final pick" in capsys.readouterr().err


def test_a_table_in_another_key_format_is_refused_before_searching(tmp_path, capsys):
    table = tmp_path / "other.csv"
    table.write_text("arch_str,acc\nconv-conv-pool,90.0\n")
    code = main(["search", "--space", "nb201", "--dataset", "nb201", "--table", str(table),
                 "--metric", "acc", "--out", str(tmp_path / "run"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "none of 5 random architectures is in" in err
    assert not (tmp_path / "run").exists()


def test_a_history_line_cut_mid_write_is_dropped_and_evaluated_again(nb201_csv, tmp_path,
                                                                     straight, capsys):
    out = tmp_path / "run"
    interrupted_run(nb201_csv, out, 100)
    text = (out / HISTORY).read_text()
    (out / HISTORY).write_text(text + text.splitlines(keepends=True)[0][:57])
    code, err = resume(out, capsys)
    assert code == 0 and "deapnas resume: warning: " in err and "cut off mid-write" in err
    assert without_clock(read_history(out)) == straight


def test_a_damaged_history_line_is_named(nb201_csv, tmp_path, capsys):
    out = tmp_path / "run"
    assert search(nb201_csv, out) == 0
    lines = (out / HISTORY).read_text().splitlines(keepends=True)
    lines[41] = lines[41][:60] + "\n"
    (out / HISTORY).write_text("".join(lines))
    assert main(["show", str(out)]) == 2
    assert f"{out / HISTORY} line 42 is damaged" in capsys.readouterr().err


@pytest.mark.parametrize("content", [b"", b"\x80\x04garbage", b'{"format": 2, "evaluat'])
def test_a_damaged_checkpoint_is_named(nb201_csv, tmp_path, capsys, content):
    out = tmp_path / "run"
    interrupted_run(nb201_csv, out, 50)
    (out / CHECKPOINT).write_bytes(content)
    code, err = resume(out, capsys)
    assert code == 2 and f"{out / CHECKPOINT} is not a valid checkpoint" in err
    assert "Traceback" not in err


def test_a_damaged_config_is_named(nb201_csv, tmp_path, capsys):
    out = tmp_path / "run"
    interrupted_run(nb201_csv, out, 50)
    (out / CONFIG).write_text('{"format": 2, "method": "re", "run": {"sed": 1}')
    code, err = resume(out, capsys)
    assert code == 2 and f"{out / CONFIG} is not a valid run configuration" in err
    (out / CONFIG).write_text('{"format": 2, "method": "re", "run": {"sed": 1}, "options": {}}')
    code, err = resume(out, capsys)
    assert code == 2 and "settings sed that RunConfig does not know" in err


@pytest.mark.parametrize("argv, message", [
    (["--lr", "-1"], "--lr must be positive, not -1.0"),
    (["--lr", "nan"], "--lr must be a finite number"),
    (["--seed", "-1"], "--seed must be at least 0, not -1"),
    (["--channels", "0"], "--channels must be at least 1, not 0"),
    (["--cells", "0"], "--cells must be at least 1, not 0"),
    (["--retries", "-1"], "--retries must be at least 0, not -1"),
    (["--min-evaluations", "-1"], "--min-evaluations must be at least 1, not -1"),
    (["--checkpoint-every", "0"], "--checkpoint-every must be at least 1, not 0"),
    (["--max-params", "-1"], "--max-params must be at least 0, not -1"),
    (["--evaluations", "0"], "--evaluations must be at least 1, not 0"),
    (["--device", "bogus"], "unknown device 'bogus'"),
    (["--device", "cuda:7"], "cuda"),
    (["--epochs", "0"], "--epochs must be at least 1, not 0"),
])
def test_every_option_is_checked_before_anything_is_written(tmp_path, capsys, argv, message):
    out = tmp_path / "run"
    assert main(["search", *argv, "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err, err
    assert not out.exists()


def test_train_refuses_a_bad_epoch_count_and_keeps_the_model(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "model.pt").write_bytes(b"weights")
    with pytest.raises(SystemExit) as exit_:
        main(["train", str(out), "--epochs", "-3"])
    assert exit_.value.code == 2 and "must be at least 1" in capsys.readouterr().err
    assert (out / "model.pt").read_bytes() == b"weights"


def test_an_unusable_out_is_refused_before_loading_data(tmp_path, capsys):
    afile = tmp_path / "a-file"
    afile.write_text("x")
    readonly = tmp_path / "readonly"
    readonly.mkdir()
    readonly.chmod(0o500)
    cases = [(afile, "is a file"), (afile / "below", "is a file")]
    if os.geteuid() != 0:  # root may write anywhere
        cases.append((readonly / "run", "cannot write"))
    for out, message in cases:
        assert main(["search", "--out", str(out), "--quiet"]) == 2
        assert message in capsys.readouterr().err


def test_a_full_disk_stops_cleanly_and_the_run_resumes(nb201_csv, tmp_path, straight):
    out = tmp_path / "run"
    limit = 40_000  # bytes any one file may grow to: the history outgrows it

    def small_files():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    result = subprocess.run(
        [sys.executable, "-m", "deapnas.cli", "search", "--space", "nb201", "--dataset",
         "nb201", "--table", str(nb201_csv), "--metric", NB201_METRIC, "--report",
         NB201_REPORT, "--evaluations", "150", "--population", "20", "--checkpoint-every",
         "40", "--checkpoint-gap", "0", "--out", str(out), "--quiet"],
        capture_output=True, text=True, timeout=120, preexec_fn=small_files)
    assert result.returncode == 2 and "no space left to write" in result.stderr
    assert "deapnas resume" in result.stderr and "Traceback" not in result.stderr
    assert 0 < len(read_history(out)) < 150
    assert resume(out)[0] == 0 and without_clock(read_history(out)) == straight


@pytest.mark.parametrize("body, message", [
    ("arch_str,acc\n{a},91.0\n{a},92.0\n", "row 3: arch_str '{a}' appears twice"),
    ("arch_str,acc\n{a},\n", "row 2 column acc: '' is not a number"),
    ("arch_str,acc,other\n{a},91.0\n{b}", "row 3 ends before column acc"),
])
def test_broken_tables_are_named_by_row_and_column(tmp_path, capsys, body, message):
    a = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
    b = "|skip_connect~0|+|none~0|none~1|+|none~0|none~1|none~2|"
    table = tmp_path / "t.csv"
    table.write_text(body.format(a=a, b=b))
    code = main(["search", "--space", "nb201", "--dataset", "nb201", "--table", str(table),
                 "--metric", "acc", "--evaluations", "2", "--population", "2",
                 "--sample-size", "1", "--out", str(tmp_path / "run"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and f"{table} {message.format(a=a)}" in err, err


def test_a_binary_table_is_named(tmp_path, capsys):
    table = tmp_path / "t.csv"
    table.write_bytes(bytes(range(256)) * 4)
    assert main(["search", "--space", "nb201", "--dataset", "nb201", "--table", str(table),
                 "--metric", "acc", "--out", str(tmp_path / "run"), "--quiet"]) == 2
    assert f"{table} is not a readable CSV table" in capsys.readouterr().err


def test_relative_paths_resume_from_another_directory(nb201_csv, tmp_path, monkeypatch,
                                                      capsys):
    monkeypatch.chdir(nb201_csv.parent)
    out = tmp_path / "run"
    interrupted_run(nb201_csv.name, out, 60)  # the table named relative to the cwd
    monkeypatch.chdir(tmp_path)
    assert resume(out)[0] == 0
    assert json.loads((out / CONFIG).read_text())["run"]["table"] == str(nb201_csv)
    assert main(["show", str(out)]) == 0
    assert f"table {nb201_csv.name} (" in capsys.readouterr().out


def test_interrupting_the_start_up_says_nothing_was_written(tmp_path, monkeypatch, capsys):
    from deapnas import runner

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "make_evaluator", interrupted)
    assert main(["search", "--out", str(tmp_path / "run"), "--quiet"]) == 130
    assert "before the search started; nothing was written" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_show_reads_a_finished_run_even_with_a_cut_last_line(nb201_csv, tmp_path, capsys):
    out = tmp_path / "run"
    assert search(nb201_csv, out) == 0
    with open(out / HISTORY, "a") as handle:
        handle.write('{"evaluation": 151, "gen')
    assert main(["show", str(out)]) == 0
    assert "evaluations: 150 of 150" in capsys.readouterr().out


def test_resuming_a_finished_run_is_refused(nb201_csv, tmp_path, capsys):
    out = tmp_path / "run"
    assert search(nb201_csv, out) == 0
    code, err = resume(out, capsys)
    assert code == 2 and "holds a finished search" in err
    assert (out / BEST).exists()


def test_journal_errors_are_value_errors_the_cli_reports():
    assert issubclass(RunDirectoryError, ValueError)
