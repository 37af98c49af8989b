"""Aging evolution's semantics, the final pick, and resume equivalence (on the real table)."""
import json
import random

import pytest
from deap import algorithms as deap_algorithms, tools

from deapnas import runner
from deapnas.algorithms import (best_average, evaluate_invalid, regularized_evolution,
                                sel_best_of_sample)
from deapnas.fitness import TableEvaluator
from deapnas.methods import get_method
from deapnas.journal import Journal
from deapnas.rundir import HISTORY, read_history
from deapnas.spaces import nb201

from conftest import (NB201_METRIC, NB201_REPORT, interrupt_evaluation, nb201_toolbox,
                      without_clock)


@pytest.fixture
def toolbox(nb201_csv):
    return nb201_toolbox(TableEvaluator(nb201_csv, nb201.arch_string, NB201_METRIC))


def test_aging_removes_the_oldest_whatever_its_fitness(toolbox):
    random.seed(1)
    population = toolbox.population(n=10)
    evaluate_invalid(population, toolbox)
    final, logbook = regularized_evolution(list(population), toolbox, cycles=10, verbose=False)
    assert len(final) == 10 and len(logbook) == 11
    assert not any(ind is old for ind in final for old in population)  # all 10 aged out
    assert all(ind.fitness.valid for ind in final)


def test_children_are_mutated_clones_of_the_best_of_the_sample(toolbox):
    random.seed(2)
    population = toolbox.population(n=6)
    evaluate_invalid(population, toolbox)
    toolbox.register("select", sel_best_of_sample, sample_size=6)  # the whole population
    best = max(population, key=lambda ind: ind.fitness)
    final, _ = regularized_evolution(list(population), toolbox, cycles=1, verbose=False)
    child = final[-1]
    assert child is not best and sum(a != b for a, b in zip(child, best)) == 1
    assert hasattr(child, "eval_seed")


def test_sample_size_one_is_uniform_random_selection(toolbox):
    random.seed(3)
    population = toolbox.population(n=4)
    evaluate_invalid(population, toolbox)
    picks = [id(sel_best_of_sample(population, 1, sample_size=1)[0]) for _ in range(4000)]
    counts = [picks.count(id(ind)) for ind in population]
    assert all(850 < c < 1150 for c in counts)
    with pytest.raises(ValueError, match="sample_size"):
        sel_best_of_sample(population, 1, sample_size=5)


def test_regularized_evolution_improves_on_the_table(toolbox):
    random.seed(4)
    population = toolbox.population(n=20)
    hof = tools.HallOfFame(1)
    final, logbook = regularized_evolution(population, toolbox, cycles=280, halloffame=hof,
                                           verbose=False)
    assert hof[0].fitness.values[0] > 91.0  # within 0.7 of the optimum 91.61 of 15,625 cells


def test_deap_own_mu_plus_lambda_runs_on_the_genome(toolbox):
    random.seed(5)
    population = toolbox.population(n=8)
    toolbox.register("select", tools.selBest)
    stats = tools.Statistics(lambda ind: ind.fitness.values[0])
    stats.register("max", max)
    hof = tools.HallOfFame(2)
    final, logbook = deap_algorithms.eaMuPlusLambda(population, toolbox, mu=8, lambda_=8,
                                                   cxpb=0.0, mutpb=1.0, ngen=5, stats=stats,
                                                   halloffame=hof, verbose=False)
    assert len(logbook) == 6 and logbook[-1]["max"] >= logbook[0]["max"]


def test_best_average_prefers_robust_architectures():
    history = ([{"key": "lucky", "fitness": [0.99], "reason": None}] +
               [{"key": "steady", "fitness": [f], "reason": None} for f in (.9, .92, .91, .9, .93)]
               + [{"key": None, "fitness": [0.0], "reason": "no path"}])
    pick = best_average(history, min_evaluations=5)
    assert pick["key"] == "steady" and pick["times_evaluated"] == 5 and not pick["fallback"]
    assert pick["mean_fitness"] == pytest.approx(0.912)
    fallback = best_average(history, min_evaluations=6)
    assert fallback["key"] == "lucky" and fallback["fallback"]
    assert best_average([{"key": None, "fitness": [0.0], "reason": "x"}]) is None


def table_config(csv, out, **overrides):
    """``(config, options)`` of an aging-evolution search on the NAS-Bench-201 table."""
    settings = dict(space="nb201", dataset="nb201", table=str(csv), metric=NB201_METRIC,
                    report=NB201_REPORT, evaluations=300, population=30, sample_size=10,
                    out=str(out), checkpoint_every=25, checkpoint_gap=0)
    return runner.settings(get_method("re"), **{**settings, **overrides})


@pytest.mark.parametrize("stop_at, crash, every", [
    (17, KeyboardInterrupt, 25),   # Ctrl-C in the first population
    (42, KeyboardInterrupt, 25),   # just after it
    (137, KeyboardInterrupt, 25),  # later, with evaluations beyond the last checkpoint
    (20, SystemExit, 1000),        # a hard stop before any periodic checkpoint was due
])
def test_interrupted_run_resumes_to_the_uninterrupted_result(nb201_csv, tmp_path, monkeypatch,
                                                             stop_at, crash, every):
    expected = runner.start(*table_config(nb201_csv, tmp_path / "straight"), progress=False)

    restore = interrupt_evaluation(monkeypatch, stop_at, crash)
    with pytest.raises(crash):
        runner.start(*table_config(nb201_csv, tmp_path / "broken", checkpoint_every=every),
                     progress=False)
    assert len(read_history(tmp_path / "broken")) == stop_at - 1  # nothing evaluated is lost
    restore()
    resumed = runner.resume(tmp_path / "broken", progress=False)

    assert resumed == expected
    assert without_clock(read_history(tmp_path / "broken")) == \
        without_clock(read_history(tmp_path / "straight"))
    assert (tmp_path / "broken" / "logbook.csv").read_text() == \
        (tmp_path / "straight" / "logbook.csv").read_text()


def test_checkpoints_keep_a_gap_in_seconds_as_well_as_a_count(nb201_csv, tmp_path, monkeypatch):
    """A table look-up costs far less than a checkpoint: with a gap in seconds, a fast search
    writes its first checkpoint only (the history holds the rest), with the same result."""
    written, real = [], Journal.write_checkpoint
    monkeypatch.setattr(Journal, "write_checkpoint",
                        lambda self, state: (written.append(self.evaluations), real(self, state)))
    results = {}
    for gap in (0, 3600):
        written.clear()
        config, options = table_config(nb201_csv, tmp_path / f"gap{gap}", checkpoint_every=1,
                                       checkpoint_gap=gap, evaluations=100)
        results[gap] = runner.start(config, options, progress=False)
        if gap:
            assert written == [0]
        else:  # the first, then one before each of the 70 cycles
            assert written[0] == 0 and len(written) == 71
    assert results[0] == results[3600]


def test_table_search_reports_the_test_accuracy_of_its_pick(nb201_csv, tmp_path):
    best = runner.start(*table_config(nb201_csv, tmp_path / "run"), progress=False)
    assert best["evaluations"] == 300 and best["fitness"] > 90.5
    assert 93.0 < best["report"][NB201_REPORT] <= 94.3734  # the table's optimum
    lines = (tmp_path / "run" / HISTORY).read_text().splitlines()
    assert len(lines) == 300 and json.loads(lines[0])["genome"].startswith("|")
