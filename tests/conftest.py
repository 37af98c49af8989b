"""Shared test helpers, and the real data beside the checkout (../shared/data), skipped when
absent."""
import os
import random
from pathlib import Path

import pytest
import torch
from deap import base, tools

from deapnas import runner
from deapnas.algorithms import sel_best_of_sample
from deapnas.cli import main
from deapnas.data import Dataset, load_dataset
from deapnas.fitness import TableEvaluator
from deapnas.spaces import macro, nb201
from deapnas.training import torch_threads

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
MNIST_DIR = SHARED / "mnist"
NB201_CSV = SHARED / "nas-bench-201" / "nb201.csv"
NB201_METRIC = "cifar10valid_xvalid_acc_200ep_mean"
NB201_REPORT = "cifar10_test_acc_200ep"


def chain_genome(*layers: str) -> macro.MacroGenome:
    """A macro genome whose layers are connected input -> layer... -> output in order."""
    nodes = [macro.INPUT, *range(len(layers)), macro.OUTPUT]
    return macro.MacroGenome(layers=dict(enumerate(layers)), connections=[
        macro.Connection(a, b, True, i) for i, (a, b) in enumerate(zip(nodes, nodes[1:]))])


def nb201_toolbox(evaluate, sample_size: int = 5) -> base.Toolbox:
    """Aging evolution on NAS-Bench-201 cells with the given fitness function."""
    toolbox = base.Toolbox()
    toolbox.register("individual", nb201.init_cell, nb201.SPACE.individual())
    toolbox.register("population", tools.initRepeat, list, toolbox.individual)
    toolbox.register("mutate", nb201.mutate)
    toolbox.register("select", sel_best_of_sample, sample_size=sample_size)
    toolbox.register("evaluate", evaluate)
    return toolbox


def without_clock(records: list[dict]) -> list[dict]:
    """History records without their wall-clock ``elapsed``, to compare two runs."""
    return [{k: v for k, v in r.items() if k != "elapsed"} for r in records]


def interrupt_call(monkeypatch, owner: type, name: str, at: int,
                   crash: type = KeyboardInterrupt) -> None:
    """Make the ``at``-th call of ``owner.name`` from now raise ``crash`` (Ctrl-C there, by
    default): every ``TrainEvaluator.__call__``, say, however the evaluator was made."""
    real, calls = getattr(owner, name), {"n": 0}

    def interrupted(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == at:
            raise crash
        return real(self, *args, **kwargs)

    monkeypatch.setattr(owner, name, interrupted)


def interrupt_evaluation(monkeypatch, at: int, crash: type = KeyboardInterrupt):
    """Make the runner's evaluator raise ``crash`` at its ``at``-th call; returns a function
    that undoes it."""
    real, calls = runner.make_evaluator, {"n": 0}

    def interrupting(*args, **kwargs):
        evaluate = real(*args, **kwargs)

        def wrapper(individual):
            calls["n"] += 1
            if calls["n"] == at:
                raise crash
            return evaluate(individual)
        return wrapper

    monkeypatch.setattr(runner, "make_evaluator", interrupting)
    return lambda: monkeypatch.setattr(runner, "make_evaluator", real)


@pytest.fixture
def seeded():
    """The test draws from a fixed seed and leaves the global random state as it found it
    (use it module-wide with ``pytestmark = pytest.mark.usefixtures("seeded")``)."""
    state = random.getstate()
    random.seed(1234)
    yield
    random.setstate(state)


@pytest.fixture(scope="module")
def digits() -> Dataset:
    """scikit-learn's digits, split with seed 0."""
    return load_dataset("digits", seed=0)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A tiny finished search on digits (macro space) whose pick ``deapnas train`` trained for
    one epoch."""
    out = tmp_path_factory.mktemp("trained") / "run"
    assert main(["search", "--evaluations", "4", "--population", "4", "--sample-size", "2",
                 "--epochs", "1", "--channels", "8", "--out", str(out), "--quiet"]) == 0
    assert main(["train", str(out), "--epochs", "1"]) == 0
    return out


@pytest.fixture(scope="module")
def nb201_table() -> TableEvaluator:
    """The NAS-Bench-201 table keyed by architecture string: validation fitness, test report."""
    if not NB201_CSV.exists():
        pytest.skip(f"NAS-Bench-201 table not found at {NB201_CSV}")
    return TableEvaluator(NB201_CSV, nb201.arch_string, NB201_METRIC, NB201_REPORT)


@pytest.fixture
def nb201_csv() -> Path:
    if not NB201_CSV.exists():
        pytest.skip(f"NAS-Bench-201 table not found at {NB201_CSV}")
    return NB201_CSV


@pytest.fixture
def mnist_dir() -> Path:
    if not (MNIST_DIR / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip(f"shared MNIST images not found in {MNIST_DIR}")
    return MNIST_DIR


def pytest_configure(config):
    """Torch on one thread in the test process and in the commands it starts: the tests'
    networks are tiny, and on a busy two-core machine two threads contend (three epochs of an
    11,374-parameter NAS-Bench-201 network on 300 digits took 19.8 s on two threads against
    2.7 s on one). Pool workers set their own count (``parallel.Slot.threads``)."""
    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def pytest_collection_modifyitems(config, items):
    """Tests marked ``gpu`` are skipped, with the reason, on machines without CUDA."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def single_thread():
    """Torch on one thread, the thread count restored afterwards. Many tiny kernels run fastest
    so (two threads contend on a shared machine), and runs compared with each other must use
    the same count (:func:`~deapnas.training.torch_threads`)."""
    return torch_threads(1)


@pytest.fixture
def one_thread():
    """:func:`single_thread` for a test (``pytest.mark.usefixtures("one_thread")``)."""
    with single_thread():
        yield
