"""The method registry and what every method gets from it: a user's own method through the
CLI with resume, DEAP's own loops resumed by replay, random search, worker-independence,
seeds, and the classes of restored individuals."""
import functools
import json
import random
from dataclasses import dataclass
from pathlib import Path

import pytest
from deap import algorithms as deap_algorithms, base, creator, tools

from deapnas import runner
from deapnas.algorithms import evaluate_invalid, random_search, regularized_evolution
from deapnas.cli import main
from deapnas.data import load_dataset
from deapnas.fitness import TableEvaluator, TrainEvaluator
from deapnas.methods import Method, available, get_method, register_method
from deapnas.options import option
from deapnas.parallel import DevicePool
from deapnas.journal import Journal
from deapnas.rundir import BEST, CHECKPOINT, read_history
from deapnas.spaces import macro, nb201
from deapnas.training import evaluation_seed

from conftest import (NB201_METRIC, NB201_REPORT, chain_genome, interrupt_evaluation,
                      nb201_toolbox, without_clock)

EXAMPLES = Path(__file__).resolve().parents[1] / "docs" / "examples"

creator.create("FitnessMin", base.Fitness, weights=(-1.0,))
creator.create("MinCell", list, fitness=creator.FitnessMin)


def table_args(csv, out, *extra):
    return ["search", "--space", "nb201", "--dataset", "nb201", "--table", str(csv), "--metric",
            NB201_METRIC, "--report", NB201_REPORT, "--out", str(out), "--quiet", *extra]


def test_the_documented_user_method_runs_and_resumes_through_the_cli(nb201_csv, tmp_path,
                                                                     monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(EXAMPLES))
    spec = ["--algorithm", "generational_method:METHOD", "--evaluations", "120",
            "--tournament", "4"]
    assert main(table_args(nb201_csv, tmp_path / "straight", *spec)) == 0
    restore = interrupt_evaluation(monkeypatch, 57)
    assert main(table_args(nb201_csv, tmp_path / "broken", *spec)) == 130
    assert "deapnas resume" in capsys.readouterr().err
    assert len(read_history(tmp_path / "broken")) == 56
    restore()
    assert main(["resume", str(tmp_path / "broken"), "--quiet"]) == 0
    assert without_clock(read_history(tmp_path / "broken")) == \
        without_clock(read_history(tmp_path / "straight"))
    best = [json.loads((tmp_path / d / BEST).read_text()) for d in ("straight", "broken")]
    assert best[0] == best[1] and best[0]["method"] == "generational"
    assert main(["show", str(tmp_path / "broken")]) == 0
    assert "generational on the nb201 space" in capsys.readouterr().out


def test_an_option_of_another_method_is_refused_naming_both(tmp_path, capsys):
    assert main(["search", "--algorithm", "random", "--sample-size", "3", "--out",
                 str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "--sample-size is not an option of random (it belongs to re, renas)" in err
    assert not (tmp_path / "x").exists()


def test_the_settings_of_a_python_script_refuse_options_as_the_command_line_does():
    with pytest.raises(ValueError) as refused:
        runner.settings(get_method("random"), "tiny", sample_size=3, no_such_option=1)
    assert str(refused.value) == ("--no-such-option is not an option of random; --sample-size "
                                  "is not an option of random (it belongs to re, renas)")


@dataclass
class _Clashing:
    population: str = option("ten", "a population given in words")


def test_an_option_another_method_declares_with_another_type_is_refused():
    with pytest.raises(ValueError, match="--population is a str, but .* declares --population "
                                         "as a int"):
        register_method(Method("clash", _Clashing, lambda run: None))
    assert "clash" not in available()


def test_registering_a_method_twice_needs_replace():
    method = get_method("re")
    with pytest.raises(ValueError, match="already registered"):
        register_method(method)
    with pytest.raises(ValueError, match="unknown method 'nope'"):
        get_method("nope")
    with pytest.raises(ValueError, match="PYTHONPATH"):
        get_method("no_such_module:METHOD")


def test_deap_easimple_resumes_by_replay_to_the_same_result(nb201_csv, tmp_path):
    table = TableEvaluator(nb201_csv, nb201.arch_string, NB201_METRIC)

    def run(directory, interrupt_at=None):
        toolbox = nb201_toolbox(table)
        toolbox.register("select", tools.selTournament, tournsize=3)
        if interrupt_at is not None:  # a crash in the evaluation, the evaluator unchanged
            counter = {"n": 0}

            def interrupting_map(function, cells):
                for cell in cells:
                    counter["n"] += 1
                    if counter["n"] == interrupt_at:
                        raise KeyboardInterrupt
                    yield function(cell)
            toolbox.register("map", interrupting_map)
        hof = tools.HallOfFame(3)
        random.seed(11)
        with Journal(directory, nb201.SPACE) as journal:
            journal.wrap(toolbox)
            population, _ = deap_algorithms.eaSimple(toolbox.population(n=12), toolbox,
                                                     cxpb=0.0, mutpb=0.9, ngen=8,
                                                     halloffame=hof, verbose=False)
        return [list(i) for i in population], [list(i) for i in hof]

    expected = run(tmp_path / "straight")
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "broken", interrupt_at=40)
    recorded = len(read_history(tmp_path / "broken"))
    assert recorded == 39
    assert run(tmp_path / "broken") == expected  # the first 39 replayed, not looked up again
    assert without_clock(read_history(tmp_path / "broken")) == \
        without_clock(read_history(tmp_path / "straight"))


def test_replay_refuses_a_changed_run(nb201_csv, tmp_path):
    table = TableEvaluator(nb201_csv, nb201.arch_string, NB201_METRIC)
    for seed in (1, 2):
        toolbox = nb201_toolbox(table)
        random.seed(seed)
        with Journal(tmp_path, nb201.SPACE) as journal:
            journal.wrap(toolbox)
            population = toolbox.population(n=5)
            if seed == 2:
                with pytest.raises(ValueError, match="recorded .* the code, the options or the "
                                                     "data changed"):
                    evaluate_invalid(population, toolbox)
            else:
                evaluate_invalid(population, toolbox)
    assert len(read_history(tmp_path)) == 5  # nothing was lost or appended


def test_restored_individuals_are_instances_of_the_runners_class(nb201_csv, tmp_path):
    config, options = runner.settings(get_method("re"), space="nb201", dataset="nb201",
                                      table=str(nb201_csv), metric=NB201_METRIC,
                                      evaluations=40, population=10, sample_size=5,
                                      out=str(tmp_path), checkpoint_gap=0)
    runner.start(config, options, progress=False)
    individual = nb201.SPACE.individual()
    with Journal(tmp_path, nb201.SPACE) as journal:
        state = journal.restore()
    assert state is not None and state["population"]
    assert all(type(ind) is individual for ind in state["population"])
    assert all(ind.fitness.valid and isinstance(ind.eval_seed, int) for ind in state["population"])


def test_random_search_samples_every_candidate_independently(nb201_csv):
    table = TableEvaluator(nb201_csv, nb201.arch_string, NB201_METRIC)
    toolbox = nb201_toolbox(table)
    toolbox.register("mutate", lambda ind: pytest.fail("random search must not mutate"))
    random.seed(5)
    hof = tools.HallOfFame(1)
    batch, logbook = random_search(toolbox, 400, halloffame=hof, verbose=False,
                                   batch_size=4)
    assert len(batch) == 4 and logbook[-1]["evaluations"] == 400 and len(logbook) == 100
    random.seed(5)
    drawn = [tuple(toolbox.individual()) for _ in range(400)]
    # every edge's operation is uniform over the 5 ops, independently of the others
    for edge in range(6):
        counts = [sum(cell[edge] == op for cell in drawn) for op in nb201.OPS]
        assert all(50 < c < 110 for c in counts), counts
    assert hof[0].fitness.values[0] > 89


@pytest.fixture(scope="module")
def pool():
    with DevicePool(2, "cpu") as pool:
        yield pool


def test_aging_evolution_gives_the_same_result_with_one_and_two_workers(pool):
    data = load_dataset("digits", seed=0)
    evaluate = TrainEvaluator(functools.partial(macro.build_network, channels=8), data,
                              epochs=1, device="cpu")
    toolbox = base.Toolbox()
    toolbox.register("individual", macro.init_genome, macro.SPACE.individual())
    toolbox.register("population", tools.initRepeat, list, toolbox.individual)
    toolbox.register("mutate", macro.mutate)
    toolbox.register("select", lambda pop, k: [max(random.sample(pop, 2),
                                                    key=lambda i: i.fitness) for _ in range(k)])
    toolbox.register("evaluate", evaluate)

    def evolve(mapper):
        toolbox.register("map", mapper)
        random.seed(2)
        population, _ = regularized_evolution(toolbox.population(n=4), toolbox, cycles=4,
                                              verbose=False, children_per_step=2)
        return [(macro.to_json(i), i.fitness.values) for i in population]

    assert evolve(map) == evolve(pool.map)


def test_evaluation_seeds_differ_between_runs_and_candidates():
    seeds = {evaluation_seed(run, candidate) for run in range(20) for candidate in range(50)}
    assert len(seeds) == 1000
    assert evaluation_seed(3, 7) == evaluation_seed(3, 7)


def test_initial_population_trains_from_distinct_seeds(nb201_csv):
    toolbox = nb201_toolbox(TableEvaluator(nb201_csv, nb201.arch_string, NB201_METRIC))
    random.seed(0)
    population = toolbox.population(n=20)
    evaluate_invalid(population, toolbox)
    assert len({ind.eval_seed for ind in population}) == 20


def test_update_alias_sees_every_evaluated_child(nb201_csv):
    toolbox = nb201_toolbox(TableEvaluator(nb201_csv, nb201.arch_string, NB201_METRIC))
    seen = []
    toolbox.register("update", lambda individuals: seen.extend(
        ind.fitness.valid for ind in individuals))
    random.seed(1)
    regularized_evolution(toolbox.population(n=5), toolbox, cycles=7, verbose=False)
    assert seen == [True] * 12


def test_failures_are_worst_under_a_minimising_fitness(nb201_csv):
    table = TableEvaluator(nb201_csv, lambda cell: "|missing~0|", NB201_METRIC)
    cell = creator.MinCell(["none"] * 6)
    result = table(cell)
    assert result == (float("inf"),) and "not in" in result.info["reason"]
    cell.fitness.values = result
    better = creator.MinCell(["none"] * 6)
    better.fitness.values = (1e9,)
    assert better.fitness > cell.fitness


def _die(cell):
    import os
    import signal
    os.kill(os.getpid(), signal.SIGKILL)


def test_a_dead_worker_gives_the_worst_value_for_the_items_weights(pool):
    cells = [creator.MinCell(["none"] * 6), nb201.SPACE.individual()(["none"] * 6)]
    results = list(pool.map(_die, cells))
    assert results[0] == (float("inf"),) and results[1] == (float("-inf"),)
    assert all("worker died" in r.info["reason"] for r in results)


class Scale:
    """A function whose result depends on an attribute that changes between maps."""

    def __init__(self, factor):
        self.factor = factor

    def __call__(self, x):
        return x * self.factor


def test_a_changed_function_is_never_served_stale_by_the_pool(pool):
    scale = Scale(2)
    assert list(pool.map(scale, [1, 2, 3])) == [2, 4, 6]
    scale.factor = 10  # the same object, changed in the main process
    assert list(pool.map(scale, [1, 2, 3])) == [10, 20, 30]
    data = load_dataset("digits", seed=0)
    evaluate = TrainEvaluator(functools.partial(macro.build_network, channels=8), data,
                              epochs=1, device="cpu")
    genome = chain_genome("CONV_3.N", "POOL_2.M")
    first = list(pool.map(evaluate, [genome]))[0]
    evaluate.recipe.epochs = 3
    assert list(pool.map(evaluate, [genome]))[0] == evaluate(genome) != first


def test_options_have_documented_paper_defaults_and_presets():
    for name in ("re", "random"):
        method = get_method(name)
        assert {"paper", "tiny"} <= set(method.presets)
        options = method.options()
        assert options.epochs == 10 and options.channels == 64 and options.batch_size == 128
    assert get_method("re").options().population == 100
    assert get_method("re").options().sample_size == 25


@dataclass
class _Empty:
    unused: int = option(1, "nothing", minimum=0)


def test_a_user_method_registered_in_python_gets_a_run(nb201_csv, tmp_path):
    seen = {}

    def search(run):
        seen["space"], seen["weights"] = run.space.name, run.individual.fitness.weights
        toolbox = run.toolbox()
        population = toolbox.population(n=6)
        evaluate_invalid(population, toolbox)
        logbook = tools.Logbook()
        logbook.record(evaluations=6)
        return logbook

    register_method(Method("six", _Empty, search, spaces=("nb201",)), replace=True)
    config, options = runner.settings(get_method("six"), dataset="nb201", table=str(nb201_csv),
                                      metric=NB201_METRIC, out=str(tmp_path))
    best = runner.start(config, options, progress=False)
    assert seen == {"space": "nb201", "weights": (1.0,)}
    assert best["evaluations"] == 6 and (tmp_path / CHECKPOINT).exists() is False
