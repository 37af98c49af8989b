"""RayMap on a local Ray: order, one load per actor, a real search, dead and slow actors."""
import importlib
import json
import math
import os
import pickle
import random
import signal
import sys
import time
import uuid

import pytest

ray = pytest.importorskip("ray")

from deap import base, creator  # noqa: E402


from deapnas.algorithms import regularized_evolution  # noqa: E402
from deapnas.cli import main  # noqa: E402
from deapnas.cluster import RayMap  # noqa: E402
from deapnas.fitness import TableEvaluator  # noqa: E402
from deapnas.parallel import WorkerError  # noqa: E402
from deapnas.rundir import CONFIG, read_history  # noqa: E402
from deapnas.safefiles import RunDirectoryError  # noqa: E402
from deapnas.spaces import nb201  # noqa: E402

from conftest import NB201_CSV, NB201_METRIC, nb201_toolbox  # noqa: E402

WORST = -math.inf  # what a failed candidate gets under a maximising fitness

# Ray's workers cannot import this module (tests/ is not on their path), so the functions below
# travel by value, as functions defined in a script's __main__ do.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    """One local Ray instance for the module, sized for a two-core machine."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def square(x):
    return x * x


def fail_on_two(x):
    if x == 2:
        raise ValueError("two is not allowed")
    return x


def refuse_on_two(x):
    if x == 2:
        raise RunDirectoryError("runs/x/models/m3-e2.pt is missing: restore it")
    return x


def die_on_two(x):
    if x == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    return x


def hang_on_one(x):
    if x == 1:
        time.sleep(60)
    return x


def nap(seconds):
    time.sleep(seconds)
    return seconds


def wait_for(item):
    """0 at once; for a path, "released" once the file exists ("never released" after 60 s)."""
    if item == 0:
        return 0
    for _ in range(600):
        if os.path.exists(item):
            return "released"
        time.sleep(0.1)
    return "never released"


class Loaded:
    """A function that tells which load of it answered: every unpickling is a new load."""

    def __init__(self):
        self.load, self.device = None, None

    def __setstate__(self, state):
        self.__dict__.update(state, load=uuid.uuid4().hex)

    def for_device(self, device):
        self.device = device
        return self

    def __call__(self, x):
        return os.getpid(), self.load, self.device, x


def test_results_equal_the_builtin_map_in_order():
    with RayMap() as raymap:
        assert len(raymap) == 2
        assert list(raymap.map(square, range(30))) == list(map(square, range(30)))
        assert list(raymap.map(square, [])) == []
        with pytest.raises(WorkerError, match="item 2 raised"):
            list(raymap.map(fail_on_two, range(4)))
        assert list(raymap.map(square, range(4))) == [0, 1, 4, 9]  # still usable
        with pytest.raises(RunDirectoryError, match="^runs/x/models/m3-e2.pt is missing"):
            list(raymap.map(refuse_on_two, range(4)))  # a run directory's error, as itself
        with pytest.raises(TypeError, match="cannot be pickled"):
            pickle.dumps(raymap)
    with pytest.raises(RuntimeError, match="closed"):
        raymap.map(square, [1])


def test_a_result_comes_as_soon_as_it_and_those_before_it_are_done(tmp_path):
    marker = str(tmp_path / "release")
    with RayMap() as raymap:
        list(raymap.map(nap, [0, 0]))  # the actors are up
        results = raymap.map(wait_for, [0, marker])
        assert next(results) == 0  # while item 1 still waits for the marker
        open(marker, "w").close()
        assert next(results) == "released"  # a map that waited for all would never release


def test_a_map_interrupted_midway_leaves_the_actors_usable():
    with RayMap(retries=2) as raymap:
        list(raymap.map(nap, [0, 0]))  # the actors are up
        for _ in range(3):  # the actor busy or just done is killed; the next map must not use it
            results = raymap.map(nap, [0, 0.002, 30])  # until it has restarted
            assert next(results) == 0
            results.close()
            assert list(raymap.map(square, range(6))) == [0, 1, 4, 9, 16, 25]

def test_the_function_is_loaded_once_per_actor_and_retargeted():
    function = Loaded()
    with RayMap() as raymap:
        first = list(raymap.map(function, range(20)))
        second = list(raymap.map(function, range(20)))
    assert [r[3] for r in first + second] == list(range(20)) * 2
    loads = {(pid, load) for pid, load, _, _ in first + second}
    pids = {pid for pid, _ in loads}
    assert len(loads) == len(pids) <= 2  # one load per actor process, kept across maps
    assert {device for _, _, device, _ in first} == {"cpu"}


def test_a_search_on_ray_equals_the_same_search_with_the_builtin_map():
    if not NB201_CSV.exists():
        pytest.skip(f"NAS-Bench-201 table not found at {NB201_CSV}")
    toolbox = nb201_toolbox(TableEvaluator(NB201_CSV, nb201.arch_string, NB201_METRIC),
                            sample_size=3)

    def search():
        random.seed(7)
        population = toolbox.population(n=8)
        final, logbook = regularized_evolution(population, toolbox, cycles=20, verbose=False,
                                               children_per_step=2)
        return [(list(ind), ind.fitness.values, ind.info) for ind in final], logbook

    expected, expected_log = search()
    with RayMap() as raymap:
        toolbox.register("map", raymap.map)
        result, log = search()
    assert result == expected
    assert [r["nevals"] for r in log] == [r["nevals"] for r in expected_log]
    assert all(info["reason"] is None and values[0] > WORST for _, values, info in result)


def test_a_dead_worker_costs_only_its_item():
    with RayMap(workers=1) as raymap:
        start = time.monotonic()
        results = list(raymap.map(die_on_two, range(5)))
        print(f"killed actor: map of 5 took {time.monotonic() - start:.1f} s")
    assert results[:2] == [0, 1] and results[3:] == [3, 4]  # run by the restarted actor
    assert results[2] == (WORST,)
    assert results[2].info["reason"].startswith("worker died")


def test_an_item_past_the_time_limit_fails_and_the_map_goes_on():
    with RayMap(workers=1, timeout=1) as raymap:
        list(raymap.map(hang_on_one, [0]))  # the actor is up
        start = time.monotonic()
        results = list(raymap.map(hang_on_one, range(4)))
        print(f"timed-out actor: map of 4 took {time.monotonic() - start:.1f} s")
    assert results[0] == 0 and results[2:] == [2, 3]
    assert results[1] == (WORST,)
    assert results[1].info["reason"] == "exceeded the time limit of 1 s"


def fails_once(item):
    """Dies or hangs the first time it is given an item, answers the next (a marker file)."""
    how, marker = item
    if not os.path.exists(marker):
        open(marker, "w").close()
        if how == "die":
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(60)
    return how


def test_retries_give_a_dead_or_slow_item_another_attempt(tmp_path):
    items = [("die", str(tmp_path / "die")), ("hang", str(tmp_path / "hang"))]
    with RayMap(timeout=4, retries=1) as raymap:
        assert list(raymap.map(fails_once, items)) == ["die", "hang"]


def test_without_ray_the_error_says_what_to_install(monkeypatch):
    import deapnas

    monkeypatch.setitem(sys.modules, "ray", None)
    monkeypatch.delitem(sys.modules, "deapnas.cluster")
    monkeypatch.setattr(deapnas, "cluster", deapnas.cluster)
    cluster = importlib.import_module("deapnas.cluster")
    with pytest.raises(ImportError, match=r"pip install deapnas\[ray\]"):
        cluster.RayMap()


def test_deapnas_search_runs_through_ray_and_records_the_backend(tmp_path):
    if not NB201_CSV.exists():
        pytest.skip(f"NAS-Bench-201 table not found at {NB201_CSV}")
    out = tmp_path / "ray-run"
    assert main(["search", "--ray", "--workers", "2", "--space", "nb201", "--dataset", "nb201",
                 "--table", str(NB201_CSV), "--metric", NB201_METRIC, "--evaluations", "30",
                 "--population", "10", "--children-per-step", "2", "--out", str(out),
                 "--quiet"]) == 0
    assert json.loads((out / CONFIG).read_text())["run"]["ray"] is True
    assert len(read_history(out)) == 30


def test_individuals_survive_deap_rebinding_their_class():
    creator.create("RebindFitness", base.Fitness, weights=(1.0,))
    creator.create("RebindCell", list, fitness=creator.RebindFitness)
    cell = creator.RebindCell(["none"] * 6)
    pickle.loads(pickle.dumps(cell))  # unpickling makes deap.creator rebind the class's name
    with RayMap(1) as raymap:
        assert list(raymap.map(len, [cell])) == [6]
