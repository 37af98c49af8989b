"""Run directories that never lose or silently change data (issue 24, "Data lost or silently
wrong"): method files are deleted only once the state they belong to is restored and checked;
every file a checkpoint needs is recorded with its SHA-256 and checked when it is restored;
``deapnas train`` writes ``model.pt`` and ``train.json`` as one unit; ``search --out`` leaves a
folder that is not a run alone; the lock is taken before anything is checked or written. Each
case is a real run directory on disk, driven through ``deapnas.cli.main`` or a real process.
"""
import functools
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import deapnas
from deapnas import runner
from deapnas.cli import main
from deapnas.data import load_dataset, mini_dataset
from deapnas.fitness import TrainEvaluator
from deapnas.methods import nasgep
from deapnas.methods.minigen import MINI_FILE
from deapnas.parallel import DevicePool
from deapnas.journal import Journal
from deapnas.rundir import BEST, CHECKPOINT, CONFIG, HISTORY, read_history, read_json
from deapnas.safefiles import RunDirectoryError
from deapnas.spaces import macro
from deapnas.weight_store import WeightStore

from conftest import (NB201_METRIC, NB201_REPORT, chain_genome, interrupt_call,
                      interrupt_evaluation, single_thread, without_clock)

pytestmark = pytest.mark.usefixtures("one_thread")


# -- helpers --------------------------------------------------------------------------------------

def comparable(directory: Path) -> list[dict]:
    """The history without what the clock decides (elapsed, training seconds)."""
    return [{**r, "info": {k: v for k, v in r["info"].items() if k != "train_seconds"}}
            for r in without_clock(read_history(directory))]


def snapshot(directory: Path) -> dict:
    """Every file under ``directory`` but the ``lock`` (which names whoever takes it): its
    bytes and modification time."""
    return {p.relative_to(directory).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(directory.rglob("*")) if p.is_file() and p.name != "lock"}


def interrupt_training(monkeypatch, at: int) -> None:
    """Every TrainEvaluator raises KeyboardInterrupt at the ``at``-th training from now (the
    methods' evaluators are TrainEvaluators, however they are made)."""
    interrupt_call(monkeypatch, TrainEvaluator, "__call__", at)


def interrupt_replay(monkeypatch, at: int) -> None:
    """The journal raises KeyboardInterrupt at its ``at``-th replayed evaluation (a kill while
    a resume replays the history)."""
    interrupt_call(monkeypatch, Journal, "_replay", at)


def resume(out: Path, capsys) -> tuple[int, str]:
    code = main(["resume", str(out), "--quiet"])
    return code, capsys.readouterr().err


# NASGEP: 2 models, 8 epoch-trainings, a checkpoint at every generation (test_nasgep.py's run)
NASGEP_RUN = ["--algorithm", "nasgep", "--evaluations", "8", "--population", "2",
              "--reductions", "2", "--batch-size", "64", "--checkpoint-every", "1",
              "--checkpoint-gap", "0", "--quiet"]
# RENAS: 4 individuals trained on digits, 12 evaluations (test_renas.py's run)
RENAS_RUN = ["--algorithm", "renas", "--evaluations", "12", "--population", "4",
             "--sample-size", "2", "--blocks", "2", "--channels", "4", "--epochs", "1",
             "--batch-size", "50", "--train-per-class", "10", "--checkpoint-every", "3",
             "--checkpoint-gap", "0", "--quiet"]
RUNS = {"nasgep": NASGEP_RUN, "renas": RENAS_RUN}
#: Where each method keeps the files its checkpoints need.
STATE_FOLDERS = {"nasgep": (nasgep.MODELS, nasgep.STORE), "renas": ("weights",)}


def method_search(method: str, out: Path) -> int:
    torch.manual_seed(0)
    return main(["search", "--out", str(out), *RUNS[method]])


def state_files(directory: Path, method: str) -> dict:
    """The method's state files in ``directory`` (name: bytes)."""
    return {f"{folder}/{p.name}": p.read_bytes() for folder in STATE_FOLDERS[method]
            for p in sorted((directory / folder).glob("*.pt"))}


@pytest.fixture(scope="module", params=["nasgep", "renas"])
def runs(request, tmp_path_factory):
    """``(method, straight, broken)``: a tiny search run to its end, and the same search
    interrupted at its 7th training (6 evaluations in the history, a checkpoint before)."""
    method, root = request.param, tmp_path_factory.mktemp(request.param)
    with single_thread():
        assert method_search(method, root / "straight") == 0
        with pytest.MonkeyPatch.context() as patch:
            interrupt_training(patch, 7)
            assert method_search(method, root / "broken") == 130
    assert len(read_history(root / "broken")) == 6
    return method, root / "straight", root / "broken"


@pytest.fixture
def broken(runs, tmp_path):
    """A copy of the interrupted run, to damage."""
    method, straight, original = runs
    shutil.copytree(original, tmp_path / "run")
    return method, straight, tmp_path / "run"


# -- a deleted checkpoint: nothing is deleted before the state catches up -------------------------

def test_a_deleted_checkpoint_is_rebuilt_from_the_history_and_keeps_every_file(broken, capsys):
    method, straight, out = broken
    (out / CHECKPOINT).unlink()
    assert resume(out, capsys)[0] == 0
    assert comparable(out) == comparable(straight)
    assert read_json(out / BEST) == read_json(straight / BEST)
    assert (out / "logbook.csv").read_text() == (straight / "logbook.csv").read_text()
    lines = [(d / "logbook.jsonl").read_text().splitlines() for d in (out, straight)]
    shorter, longer = sorted(lines, key=len)  # each holds the records up to its last checkpoint
    assert shorter and longer[:len(shorter)] == shorter  # none twice
    # the files of the final state, as the uninterrupted run keeps them: none lost, none extra
    assert state_files(out, method).keys() == state_files(straight, method).keys()


def test_a_resume_stopped_while_it_replays_deletes_nothing_and_the_checkpoint_goes_back(
        broken, monkeypatch, capsys):
    method, straight, out = broken
    saved = (out / CHECKPOINT).read_bytes()
    (out / CHECKPOINT).unlink()
    before = snapshot(out)
    assert state_files(out, method)  # weights, model states, store entries are there
    interrupt_replay(monkeypatch, 3)
    assert resume(out, capsys)[0] == 130
    monkeypatch.undo()
    assert snapshot(out) == before  # no file deleted, written or changed
    (out / CHECKPOINT).write_bytes(saved)  # putting the checkpoint back still works
    assert resume(out, capsys)[0] == 0
    assert comparable(out) == comparable(straight)
    assert read_json(out / BEST) == read_json(straight / BEST)


# -- missing state files are named, with what to do -----------------------------------------------

def test_a_deleted_state_file_is_named_with_the_state_that_needs_it(broken, capsys):
    method, _, out = broken
    needed = sorted(read_json(out / CHECKPOINT)["files"])
    assert needed and all(name.split("/")[0] in STATE_FOLDERS[method] for name in needed)
    (out / needed[0]).unlink()
    before = snapshot(out)
    code, err = resume(out, capsys)
    assert code == 2 and f"{out / needed[0]} is missing" in err
    assert "state after" in err and "restore it from a copy" in err
    assert "Errno" not in err and "Traceback" not in err
    assert snapshot(out) == before


def test_state_files_missing_beside_a_deleted_checkpoint_are_named(broken, capsys):
    method, _, out = broken
    (out / CHECKPOINT).unlink()
    for name in state_files(out, method):
        (out / name).unlink()
    code, err = resume(out, capsys)
    assert code == 2 and " is missing" in err and "restore it from a copy" in err
    assert "Errno" not in err and "Traceback" not in err


# -- swapped or altered state files are refused ---------------------------------------------------

@pytest.mark.parametrize("runs", ["renas"], indirect=True)
def test_rotated_renas_weight_files_are_refused(runs, tmp_path, capsys):
    _, _, original = runs
    out = tmp_path / "run"
    shutil.copytree(original, out)
    files = [f"weights/{number:06d}.pt" for number in range(4)]  # the first population's
    contents = [(out / name).read_bytes() for name in files]
    for name, content in zip(files, contents[1:] + contents[:1]):
        (out / name).write_bytes(content)
    code, err = resume(out, capsys)
    assert code == 2 and f"{out / files[0]} is not the file the checkpoint was made with" in err
    assert "put the run's own file back" in err
    assert sorted(read_json(out / CHECKPOINT)["files"]) == files  # the checkpoint's population


@pytest.mark.parametrize("runs", ["nasgep"], indirect=True)
def test_an_altered_nasgep_store_entry_is_refused(runs, tmp_path, capsys):
    _, _, original = runs
    out = tmp_path / "run"
    shutil.copytree(original, out)
    entries = sorted(n for n in read_json(out / CHECKPOINT)["files"] if n.startswith("store/"))
    assert entries
    altered = out / entries[0]
    units = torch.load(altered, weights_only=True)
    for state in units.values():
        for tensor in state.values():
            if tensor.is_floating_point():
                tensor.mul_(-1.0)
    torch.save(units, altered)  # same content-hash name, other weights
    code, err = resume(out, capsys)
    assert code == 2 and f"{altered} is not the file the checkpoint was made with" in err


def test_a_store_entry_is_checked_against_its_content_hash(tmp_path):
    store = WeightStore(tmp_path)
    name = store.put({"conv@4": {"weight": torch.ones(2, 2)}})
    torch.save({"conv@4": {"weight": torch.zeros(2, 2)}}, store.path(name))
    with pytest.raises(ValueError, match="does not hold the weights its name"):
        store.load(name)


MINIGEN_RUN = ["--algorithm", "minigen", "--quiet", "--population", "4", "--keep", "2",
               "--epochs", "1", "--batch-size", "50", "--train-per-class", "5",
               "--score-per-class", "3", "--widths", "4,8", "--evaluations", "12",
               "--checkpoint-every", "2"]


def test_a_mini_dataset_of_another_seed_is_refused(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    interrupt_evaluation(monkeypatch, 3)
    assert main(["search", "--out", str(out), *MINIGEN_RUN]) == 130
    monkeypatch.undo()
    other = tmp_path / "other.pt"  # the same counts, drawn from seed 7
    mini_dataset(load_dataset("digits", seed=7), 5, 3, seed=7, path=other)
    shutil.copyfile(other, out / MINI_FILE)
    code, err = resume(out, capsys)
    assert code == 2 and f"{out / MINI_FILE} is not the file the checkpoint was made with" in err
    assert read_json(out / CHECKPOINT)["files"].keys() == {MINI_FILE}


# -- deapnas train: model.pt and train.json as one unit -------------------------------------------

def test_a_training_stopped_between_its_two_files_leaves_no_mismatched_pair(trained, tmp_path,
                                                                            monkeypatch, capsys):
    out = tmp_path / "run"
    shutil.copytree(trained, out)
    from deapnas import report
    write = report.write_json

    def stopped_before_train_json(path, data):
        if Path(path).name == "train.json":
            raise KeyboardInterrupt  # killed after model.pt was replaced
        return write(path, data)

    monkeypatch.setattr(report, "write_json", stopped_before_train_json)
    assert main(["train", str(out), "--epochs", "2"]) == 130
    monkeypatch.undo()
    capsys.readouterr()
    assert main(["export", str(out)]) == 2
    assert f"run `deapnas train {out}`" in capsys.readouterr().err
    assert not (out / "export").exists()
    assert main(["train", str(out), "--epochs", "2"]) == 0  # training again mends it
    assert read_json(out / "train.json")["epochs"] == 2 and deapnas.load_model(out)


def test_a_model_that_train_json_does_not_describe_is_refused(trained, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(trained, out)
    state = torch.load(out / "model.pt", weights_only=True)
    torch.save({k: torch.zeros_like(v) for k, v in state.items()}, out / "model.pt")
    with pytest.raises(ValueError, match="is not the model .* describes"):
        deapnas.load_model(out)
    assert main(["export", str(out)]) == 2
    assert "run `deapnas train" in capsys.readouterr().err
    assert main(["show", str(out)]) == 0  # show reports it, and the rest of the run
    assert f"trained model: {out / 'model.pt'} is not the model" in capsys.readouterr().out
    assert main(["show", str(trained)]) == 0
    assert "trained: test accuracy " in capsys.readouterr().out


def test_train_holds_the_lock_while_it_trains(trained, tmp_path, monkeypatch):
    out = tmp_path / "run"
    shutil.copytree(trained, out)
    real, second = TrainEvaluator.train_and_test, {}

    def with_a_second_training(evaluator, *args, **kwargs):
        second["run"] = subprocess.run([sys.executable, "-m", "deapnas.cli", "train", str(out),
                                        "--epochs", "1"], capture_output=True, text=True,
                                       timeout=300)
        return real(evaluator, *args, **kwargs)

    monkeypatch.setattr(TrainEvaluator, "train_and_test", with_a_second_training)
    assert main(["train", str(out), "--epochs", "2"]) == 0
    assert second["run"].returncode == 2 and "is in use by pid" in second["run"].stderr
    assert read_json(out / "train.json")["epochs"] == 2 and deapnas.load_model(out)


# -- search --out and the lock --------------------------------------------------------------------

def table_search(csv, out, *extra) -> int:
    return main(["search", "--space", "nb201", "--dataset", "nb201", "--table", str(csv),
                 "--metric", NB201_METRIC, "--report", NB201_REPORT, "--evaluations", "60",
                 "--population", "10", "--checkpoint-every", "20", "--checkpoint-gap", "0",
                 "--out", str(out), "--quiet", *extra])


def test_search_into_a_folder_that_is_not_a_run_is_refused_untouched(nb201_csv, tmp_path,
                                                                     capsys):
    out = tmp_path / "mine"
    (out / "weights").mkdir(parents=True)
    (out / "checkpoint-1.pt").write_bytes(b"my checkpoint")
    (out / "logbook.csv").write_text("my,logbook\n1,2\n")
    (out / "weights" / "best.pt").write_bytes(b"my weights")
    before = snapshot(out)
    assert table_search(nb201_csv, out) == 2
    err = capsys.readouterr().err
    assert "is not a deapnas run" in err and "checkpoint-1.pt" in err and "choose a new" in err
    assert snapshot(out) == before
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint-1.pt", "logbook.csv", "weights"]


def hold_lock(directory: Path) -> subprocess.Popen:
    """A process that holds ``directory``'s lock until it is killed."""
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from pathlib import Path;"
                               "from deapnas.rundir import Lock;"
                               "held = Lock(Path(sys.argv[1])).acquire();"
                               "print('held', flush=True); time.sleep(600)", str(directory)],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_search_racing_another_into_one_out_writes_nothing(nb201_csv, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    holder = hold_lock(out)  # the other search has the folder and has not written yet
    try:
        assert table_search(nb201_csv, out) == 2
        assert f"is in use by pid {holder.pid}" in capsys.readouterr().err
        assert sorted(p.name for p in out.iterdir()) == ["lock"]  # no config.json
    finally:
        holder.kill()
        holder.wait()
    assert table_search(nb201_csv, out) == 0  # free again: the folder holds only the lock


def test_two_resumes_cannot_both_finish_a_run(nb201_csv, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    restore = interrupt_evaluation(monkeypatch, 31)
    assert table_search(nb201_csv, out) == 130
    restore()
    real, other = runner.make_evaluator, {}

    def another_resume_meanwhile(*args):
        if "run" not in other:  # a second resume, started while this one loads its data
            other["run"] = subprocess.run([sys.executable, "-m", "deapnas.cli", "resume",
                                           str(out), "--quiet"], capture_output=True,
                                          text=True, timeout=300)
        return real(*args)

    monkeypatch.setattr(runner, "make_evaluator", another_resume_meanwhile)
    assert main(["resume", str(out), "--quiet"]) == 0
    assert other["run"].returncode == 2 and "is in use by pid" in other["run"].stderr
    assert len(read_history(out)) == 60 and (out / BEST).exists()
    assert resume(out, capsys)[0] == 2  # and now it is finished
    assert (out / CONFIG).exists() and (out / HISTORY).exists()


def test_a_missing_state_file_in_a_pool_worker_reaches_the_search_as_itself(tmp_path, digits):
    """Not a WorkerError traceback: the same message as in the search's own process."""
    evaluate = TrainEvaluator(functools.partial(macro.build_network, channels=8), digits,
                              epochs=1, device="cpu")
    genome = chain_genome("CONV_3.N")
    genome.inherit_from = str(tmp_path / "m3-e2.pt")
    with DevicePool(1, "cpu") as pool, \
            pytest.raises(RunDirectoryError, match="m3-e2.pt is missing: it holds the trained"):
        list(pool.map(evaluate, [genome]))
