"""The local device pool: serial-equal results in order, dead and slow workers, SIGTERM."""
import functools
import json
import math
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from deapnas import runner
from deapnas.algorithms import regularized_evolution
from deapnas.data import load_dataset
from deapnas.fitness import TableEvaluator, TrainEvaluator
from deapnas.methods import get_method
from deapnas.parallel import DevicePool, device_slots
from deapnas.rundir import CHECKPOINT, read_history
from deapnas.spaces import macro, nb201
from deapnas.training import torch_threads

from conftest import NB201_METRIC, chain_genome, nb201_toolbox as toolbox_on

WORST = -math.inf  # what a failed candidate gets under a maximising fitness


def square_slowly(x):
    time.sleep(0.05 * (5 - x % 5))  # later items finish first
    return x * x


class Saboteur:
    """Evaluates from the table, but the worker evaluating ``victim`` dies (SIGKILL) or hangs."""

    def __init__(self, table, victim, hang=False):
        self.table, self.victim, self.hang = table, victim, hang

    def __call__(self, cell):
        if nb201.arch_string(cell) == self.victim:
            if self.hang:
                time.sleep(600)
            os.kill(os.getpid(), signal.SIGKILL)
        return self.table(cell)


@pytest.fixture(scope="module")
def pool():
    with DevicePool(2, "cpu", timeout=8) as pool:
        yield pool


def test_slots_share_the_cores_and_spread_over_devices():
    slots = device_slots(3, "cuda:0,cuda:1")
    assert [s.device for s in slots] == ["cuda:0", "cuda:1", "cuda:0"]
    cpu = device_slots(2, "cpu")
    assert len(cpu) == 2 and all(s.threads >= 1 for s in cpu)
    with pytest.raises(ValueError, match="at least 1"):
        device_slots(0, "cpu")


def torch_thread_count(_):
    import torch
    return torch.get_num_threads()


def test_threads_asked_for_are_what_workers_and_the_search_process_train_on():
    assert [s.threads for s in device_slots(2, "cpu", threads=3)] == [3, 3]
    assert [s.threads for s in device_slots(2, "cuda:0,cpu", threads=3)] == [1, 3]
    with pytest.raises(ValueError, match="threads must be at least 1"):
        device_slots(2, "cpu", threads=0)
    with DevicePool(2, "cpu", threads=3) as threaded:
        assert list(threaded.map(torch_thread_count, range(4))) == [3] * 4
    before = torch_thread_count(None)
    with torch_threads(before + 2):
        assert torch_thread_count(None) == before + 2
    assert torch_thread_count(None) == before


def searched_fitnesses(out, workers: int) -> list:
    from deapnas.cli import main
    assert main(["search", "--preset", "tiny", "--evaluations", "6", "--population", "4",
                 "--sample-size", "2", "--device", "cpu", "--threads", "2",
                 "--workers", str(workers), "--out", str(out), "--quiet"]) == 0
    assert json.loads((out / "config.json").read_text())["run"]["threads"] == 2
    return [(r["genome"], r["fitness"]) for r in read_history(out)]


def test_the_same_seed_and_threads_give_the_same_search_with_one_or_two_workers(tmp_path):
    """On two threads per evaluation, in this process and in each of two workers: without
    ``--threads`` the one would train on torch's default, the others on a share of the cores,
    and the fitness values would differ in their last digits."""
    assert searched_fitnesses(tmp_path / "one", 1) == searched_fitnesses(tmp_path / "two", 2)


def test_results_come_back_in_input_order(pool):
    assert list(pool.map(square_slowly, range(10))) == [x * x for x in range(10)]


def test_training_in_the_pool_equals_training_in_process(pool):
    data = load_dataset("digits", seed=0)
    evaluate = TrainEvaluator(functools.partial(macro.build_network, channels=8), data,
                              epochs=1, device="cpu")
    genomes = [chain_genome("CONV_3.N"), chain_genome("CONV_2.H")]
    serial = [evaluate(g) for g in genomes]
    pooled = list(pool.map(evaluate, genomes))
    assert [r[0] for r in pooled] == [r[0] for r in serial]
    assert [r.info["reason"] for r in pooled] == [r.info["reason"] for r in serial]


def evolve(toolbox, seed=3):
    random.seed(seed)
    population, _ = regularized_evolution(toolbox.population(n=10), toolbox, cycles=30,
                                          verbose=False, children_per_step=2)
    return [(nb201.arch_string(ind), ind.fitness.values, ind.info.get("reason"))
            for ind in population]


def test_pooled_search_equals_the_serial_search(pool, nb201_csv):
    table = TableEvaluator(nb201_csv, nb201.arch_string, NB201_METRIC)
    serial = evolve(toolbox_on(table))
    toolbox = toolbox_on(table)
    toolbox.register("map", pool.map)
    assert evolve(toolbox) == serial


@pytest.mark.parametrize("hang, reason", [(False, "worker died (killed by signal 9)"),
                                          (True, "exceeded the time limit of 8 s")])
def test_a_dead_or_stuck_worker_costs_only_its_candidate(pool, nb201_csv, hang, reason):
    table = TableEvaluator(nb201_csv, nb201.arch_string, NB201_METRIC)
    random.seed(3)
    victim = nb201.arch_string(toolbox_on(table).population(n=10)[4])
    toolbox = toolbox_on(Saboteur(table, victim, hang))
    toolbox.register("map", pool.map)
    population = evolve(toolbox)  # the search goes on past the victim
    assert len(population) == 10
    victims = [r for r in population if r[0] == victim]
    others = [r for r in population if r[0] != victim]
    assert all(r[1] == (WORST,) and r[2] == reason for r in victims)
    assert all(r[2] is None and r[1][0] > 0 for r in others)


def die_once(marker):
    """Kill the worker the first time (leaving a marker file), succeed the second."""
    if not os.path.exists(marker):
        open(marker, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)
    return "second attempt"


def test_a_killed_worker_can_be_retried(tmp_path):
    with DevicePool(1, "cpu", retries=1) as pool:
        assert list(pool.map(die_once, [str(tmp_path / "marker")])) == ["second attempt"]


def reciprocal(x):
    return 1 / x


def test_an_exception_in_the_function_is_raised_not_hidden(pool):
    with pytest.raises(Exception, match="ZeroDivisionError"):
        list(pool.map(reciprocal, [0]))
    assert list(pool.map(abs, [-2])) == [2]  # the pool still works afterwards


def test_closed_pool_refuses_work():
    pool = DevicePool(1, "cpu")
    pool.close()
    with pytest.raises(RuntimeError, match="closed"):
        pool.map(abs, [1])


def test_sigterm_leaves_a_resumable_run(tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "deapnas.cli", "search", "--evaluations", "30",
               "--population", "6", "--epochs", "1", "--channels", "8", "--checkpoint-every",
               "5", "--checkpoint-gap", "0", "--out", str(out), "--quiet"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while len(read_history(out)) < 10 and time.monotonic() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130 and "deapnas resume" in err
    assert (out / CHECKPOINT).exists()
    interrupted = len(read_history(out))
    assert 10 <= interrupted < 30
    resumed = subprocess.run([sys.executable, "-m", "deapnas.cli", "resume", str(out)],
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    history = read_history(out)
    assert [r["evaluation"] for r in history] == list(range(1, 31))
    assert json.loads((out / "best.json").read_text())["evaluations"] == 30


WARMED_FIRST_EVALUATION = """
import random, sys
from deapnas import runner
from deapnas.methods import get_method
from deapnas.parallel import warm_up
method = get_method("re")
run = runner.Run(*runner.settings(method, "tiny", device="cpu"), method)
warm_up(run.evaluator)
random.seed(0)
before = set(sys.modules)
run.evaluator(run.space.init())
print(sorted(set(sys.modules) - before))
"""


def test_a_warmed_up_evaluator_imports_nothing_at_its_first_candidate():
    """torch imports its compiler stack (a second or more of CPU) at the first optimizer built:
    the warm-up takes that, not the first candidate's train_seconds or time limit."""
    done = subprocess.run([sys.executable, "-c", WARMED_FIRST_EVALUATION], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_a_search_in_its_own_process_warms_its_evaluator_up_first(nb201_csv, tmp_path,
                                                                   monkeypatch):
    warmed = []
    monkeypatch.setattr(runner, "warm_up", warmed.append)
    config, options = runner.settings(get_method("re"), space="nb201", dataset="nb201",
                                      table=str(nb201_csv), metric=NB201_METRIC,
                                      evaluations=30, population=10, sample_size=5,
                                      out=str(tmp_path / "run"))
    runner.start(config, options, progress=False)
    assert len(warmed) == 1 and isinstance(warmed[0], TableEvaluator)
