"""A run directory received from a stranger cannot make deapnas write, truncate or delete
anything outside it: each test plants a symbolic link (or a name) that points out of a real run
directory at a victim file or folder, runs the real command, and checks that the victim is
untouched, content and modification time. Also: a full disk while saving weights, and the
temporary files a fault or a kill leaves behind.
"""
import json
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from deapnas.cli import main
from deapnas.fitness import TableEvaluator, TrainEvaluator
from deapnas.methods import nasgep
from deapnas.methods.renas import WeightFiles
from deapnas.parallel import DevicePool
from deapnas.rundir import CHECKPOINT, HISTORY, LOCK, LOGBOOK, LOGBOOK_LINES
from deapnas.safefiles import RunDirectoryError
from deapnas.weights import save_weights
from deapnas.weight_store import WeightStore

from conftest import NB201_CSV, NB201_METRIC, interrupt_call, single_thread

VICTIM = b"precious data outside the run directory, no newline at the end"


def interrupted(argv: list, evaluator: type, after: int) -> None:
    """Run ``deapnas search argv`` until the ``after+1``-th call of ``evaluator`` (like
    Ctrl-C there)."""
    with pytest.MonkeyPatch.context() as patch, single_thread():
        interrupt_call(patch, evaluator, "__call__", after + 1)
        assert main(argv) == 130


@pytest.fixture(scope="module")
def table_runs(tmp_path_factory):
    """``(interrupted, finished)``: a table search stopped after 30 evaluations, and one run
    to its end."""
    if not NB201_CSV.exists():
        pytest.skip(f"NAS-Bench-201 table not found at {NB201_CSV}")
    root = tmp_path_factory.mktemp("table")
    interrupted(table_search(root / "interrupted"), TableEvaluator, 30)
    assert main(table_search(root / "finished")) == 0
    return root / "interrupted", root / "finished"


def table_search(out) -> list:
    """The arguments of a NAS-Bench-201 table search: a second's work."""
    return ["search", "--space", "nb201", "--dataset", "nb201", "--table", str(NB201_CSV),
            "--metric", NB201_METRIC, "--evaluations", "60", "--population", "10",
            "--checkpoint-every", "20", "--checkpoint-gap", "0", "--out", str(out), "--quiet"]


@pytest.fixture(scope="module")
def started(tmp_path_factory):
    """Tiny NASGEP and RENAS searches on digits, each stopped at its first training (after
    its first checkpoint): ``{method: run directory}``."""
    root = tmp_path_factory.mktemp("started")
    interrupted(["search", "--algorithm", "nasgep", "--evaluations", "8", "--population", "2",
                 "--reductions", "2", "--batch-size", "64", "--out", str(root / "nasgep"),
                 "--quiet"], TrainEvaluator, 0)
    interrupted(["search", "--algorithm", "renas", "--evaluations", "12", "--population", "4",
                 "--sample-size", "2", "--blocks", "2", "--channels", "4", "--epochs", "1",
                 "--batch-size", "50", "--train-per-class", "10", "--out", str(root / "renas"),
                 "--quiet"], TrainEvaluator, 0)
    return {"nasgep": root / "nasgep", "renas": root / "renas"}


def copy(run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run, tmp_path / "run", symlinks=True))


def victim_file(tmp_path: Path, content: bytes = VICTIM) -> Path:
    path = tmp_path / "outside" / "victim"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(content)
    return path


def victim_folder(tmp_path: Path) -> Path:
    """A folder outside the run holding files named like a run's weights."""
    folder = tmp_path / "outside" / "folder"
    folder.mkdir(parents=True)
    for name in ("000000.pt", "000001.pt", "m0-e1.pt", "notes.txt"):
        (folder / name).write_bytes(VICTIM + name.encode())
    return folder


def link(path: Path, target: Path) -> None:
    """Make ``path`` a symbolic link to ``target``, replacing what is there."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
    path.symlink_to(target)


def snapshot(path: Path) -> dict:
    """``path`` and everything under it: each one's bytes (files) and modification time."""
    paths = [path, *sorted(path.rglob("*"))] if path.is_dir() else [path]
    return {str(p): (p.read_bytes() if p.is_file() else None, p.stat().st_mtime_ns)
            for p in paths}


def resume(run: Path, capsys) -> tuple[int, str]:
    with single_thread():
        code = main(["resume", str(run), "--quiet"])
    return code, capsys.readouterr().err


# -- links to files -------------------------------------------------------------------------------

def test_a_linked_lock_is_refused_and_its_target_kept(table_runs, tmp_path, capsys):
    run, victim = copy(table_runs[0], tmp_path), victim_file(tmp_path)
    link(run / LOCK, victim)
    before = snapshot(victim)
    code, err = resume(run, capsys)
    assert snapshot(victim) == before
    assert code == 2 and f"{run / LOCK} is a symbolic link" in err


def test_a_dangling_history_link_creates_nothing_outside(table_runs, tmp_path, capsys):
    run, target = copy(table_runs[0], tmp_path), tmp_path / "outside" / "history.jsonl"
    target.parent.mkdir()
    link(run / HISTORY, target)
    code, err = resume(run, capsys)
    assert not target.exists() and list(target.parent.iterdir()) == []
    assert code == 2 and f"{run / HISTORY} is a symbolic link" in err


def test_a_linked_history_is_not_truncated_by_a_refused_resume(table_runs, tmp_path, capsys):
    run, victim = copy(table_runs[0], tmp_path), victim_file(tmp_path)  # no complete line
    link(run / HISTORY, victim)
    before = snapshot(victim)
    code, err = resume(run, capsys)
    assert snapshot(victim) == before
    assert code == 2 and f"{run / HISTORY} is a symbolic link" in err


@pytest.mark.parametrize("name", [".best.json.tmp", LOGBOOK, LOGBOOK_LINES, CHECKPOINT])
def test_linked_run_files_are_never_written_through(table_runs, tmp_path, capsys, name):
    run = copy(table_runs[0], tmp_path)
    own = run / name
    victim = victim_file(tmp_path, own.read_bytes() if own.exists() else VICTIM)
    link(own, victim)
    before = snapshot(victim)
    code, err = resume(run, capsys)
    assert snapshot(victim) == before
    if name != ".best.json.tmp":  # a leftover temporary name is deleted, never written
        assert code == 2 and f"{own} is a symbolic link" in err


@pytest.mark.parametrize("picture", ["fitness.png", "best.png"])
def test_show_never_draws_through_a_link(table_runs, tmp_path, capsys, picture):
    run, victim = copy(table_runs[1], tmp_path), victim_file(tmp_path)
    link(run / picture, victim)
    before = snapshot(victim)
    code = main(["show", str(run)])
    assert snapshot(victim) == before
    assert code == 2 and f"{run / picture} is a symbolic link" in capsys.readouterr().err


# -- links to folders -----------------------------------------------------------------------------

@pytest.mark.parametrize("method, name", [("renas", "weights"), ("nasgep", nasgep.MODELS),
                                          ("nasgep", nasgep.STORE)])
def test_a_linked_weights_folder_receives_and_loses_nothing(started, tmp_path, capsys, method,
                                                            name):
    run, victim = copy(started[method], tmp_path), victim_folder(tmp_path)
    link(run / name, victim)
    before = snapshot(victim)
    code, err = resume(run, capsys)
    assert snapshot(victim) == before
    assert code == 2 and f"{run / name} is a symbolic link" in err


def test_export_never_writes_into_a_linked_folder(trained, tmp_path, capsys):
    run, victim = copy(trained, tmp_path), victim_folder(tmp_path)
    link(run / "export", victim)
    before = snapshot(victim)
    code = main(["export", str(run)])
    assert snapshot(victim) == before
    assert code == 2 and f"{run / 'export'} is a symbolic link" in capsys.readouterr().err


def test_the_clean_ups_never_delete_through_a_linked_folder(tmp_path):
    run, victim = tmp_path / "run", victim_folder(tmp_path)
    run.mkdir()
    for name in ("models", "store", "weights"):
        link(run / name, victim)
    (run / "own-models").mkdir()
    before, nothing = snapshot(victim), {"population": [], "halloffame": [], "store_index": {}}
    with pytest.raises(RunDirectoryError, match="symbolic link"):
        nasgep.remove_stale(nothing, run / "models")
    with pytest.raises(RunDirectoryError, match="symbolic link"):
        nasgep.remove_stale(nothing, run / "own-models", run / "store")
    with pytest.raises(RunDirectoryError, match="symbolic link"):
        WeightStore(run / "store").stale([{}])
    with pytest.raises(RunDirectoryError, match="symbolic link"):
        WeightFiles(run / "weights").prune([])
    assert snapshot(victim) == before


def test_a_linked_weights_file_is_not_read(tmp_path):
    outside = save_weights(tmp_path / "outside" / "weights.pt", {"weight": torch.ones(3)})
    store = tmp_path / "run" / "store"
    store.mkdir(parents=True)
    link(store / "0123abcd.pt", outside)
    with pytest.raises(RunDirectoryError, match="0123abcd.pt is a symbolic link"):
        WeightStore(store).load("0123abcd.pt")


# -- names ----------------------------------------------------------------------------------------

def test_a_model_id_that_climbs_out_of_the_run_is_refused(started, tmp_path, capsys):
    run = copy(started["nasgep"], tmp_path)
    saved = json.loads((run / CHECKPOINT).read_text())
    saved["state"]["population"][0]["$individual"]["attributes"]["model_id"] = "../../victim"
    (run / CHECKPOINT).write_text(json.dumps(saved))
    before = snapshot(tmp_path)
    code, err = resume(run, capsys)
    outside = {p: v for p, v in snapshot(tmp_path).items() if not p.startswith(str(run))}
    assert outside == {p: v for p, v in before.items() if not p.startswith(str(run))}
    assert code == 2 and "'../../victim'" in err


# -- resource faults ------------------------------------------------------------------------------

def test_a_full_disk_while_saving_weights_stops_cleanly(tmp_path):
    """MiniGen saves its mini dataset (tensors, through torch.save) before any evaluation;
    files may grow to 20 kB here, the mini dataset needs more."""
    out, limit = tmp_path / "run", 20_000

    def small_files():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    result = subprocess.run(
        [sys.executable, "-m", "deapnas.cli", "search", "--algorithm", "minigen",
         "--train-per-class", "50", "--evaluations", "4", "--out", str(out), "--quiet"],
        capture_output=True, text=True, timeout=300, preexec_fn=small_files)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"no space left to write {out / 'mini-dataset.pt'}" in result.stderr
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def save_on_a_small_disk(path: str) -> None:
    """Save 40 kB of weights to ``path`` in a process whose files may grow to 10 kB."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (10_000, resource.RLIM_INFINITY))
    save_weights(path, {"weight": torch.zeros(10_000)})


def test_a_full_disk_in_a_worker_reaches_the_search_as_itself(tmp_path):
    with DevicePool(1, "cpu") as pool, \
            pytest.raises(RunDirectoryError, match="no space left to write .*model.pt"):
        list(pool.map(save_on_a_small_disk, [str(tmp_path / "model.pt")]))
    assert list(tmp_path.iterdir()) == []


def test_temporary_files_left_by_a_kill_are_removed_on_resume(table_runs, tmp_path, capsys):
    run = copy(table_runs[0], tmp_path)
    (run / "models").mkdir()
    leftovers = [run / ".checkpoint.json.tmp", run / ".best.json.4242.tmp",
                 run / ".history.jsonl.1f2e3d4c.tmp", run / "models" / ".m0-e1.pt.4242.tmp"]
    for path in leftovers:
        path.write_bytes(b"half written")
    assert resume(run, capsys)[0] == 0
    assert not [p for p in leftovers if p.exists()]
    assert (run / "models").is_dir() and (run / "best.json").exists()
