"""The journal of any DEAP loop (:meth:`deapnas.journal.Journal.wrap`): a rerun of a script whose
evaluator's settings changed is refused, naming them, before anything is replayed or
evaluated; a replay says how many evaluations it replayed; ``deapnas show`` reads the journal's
directory; a loop given a journal that does not wrap its toolbox refuses to start."""
import functools
import json
import random

import pytest
from deap import algorithms as deap_algorithms
from deap import base, tools

from conftest import NB201_METRIC, nb201_toolbox, without_clock
from deapnas.algorithms import evaluate_invalid, regularized_evolution
from deapnas.cli import main
from deapnas.fitness import TableEvaluator, TrainEvaluator, failure
from deapnas.journal import Journal
from deapnas.rundir import HISTORY, SETTINGS, read_history
from deapnas.safefiles import RunDirectoryError
from deapnas.spaces import macro, nb201

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def table(nb201_csv):
    return TableEvaluator(nb201_csv, nb201.arch_string, NB201_METRIC)


def macro_toolbox(evaluator) -> base.Toolbox:
    """The getting-started script's toolbox: macro genomes, mutation only."""
    toolbox = base.Toolbox()
    toolbox.register("individual", macro.init_genome, macro.SPACE.individual(), n_layers=2)
    toolbox.register("population", tools.initRepeat, list, toolbox.individual)
    toolbox.register("mutate", macro.mutate)
    toolbox.register("select", tools.selTournament, tournsize=2)
    toolbox.register("evaluate", evaluator)
    return toolbox


def weighted_toolbox(evaluator, weights: tuple) -> base.Toolbox:
    """:func:`nb201_toolbox` for individuals of the given fitness weights."""
    toolbox = nb201_toolbox(evaluator)
    toolbox.register("individual", nb201.init_cell, nb201.SPACE.individual(weights))
    toolbox.register("population", tools.initRepeat, list, toolbox.individual)
    return toolbox


def count_evaluations(toolbox) -> dict:
    """Count the evaluations that reach the toolbox's own map (replayed ones do not)."""
    counter, inner = {"n": 0}, toolbox.map

    def counting_map(function, items):
        for item in inner(function, items):
            counter["n"] += 1
            yield item
    toolbox.register("map", counting_map)
    return counter


def interrupt_after(toolbox, evaluations: int) -> None:
    """Make the toolbox's map raise KeyboardInterrupt when it is asked for one more evaluation
    than ``evaluations`` (a crash mid-run, the evaluator unchanged)."""
    counter = {"n": 0}

    def interrupting_map(function, items):
        for item in items:
            counter["n"] += 1
            if counter["n"] > evaluations:
                raise KeyboardInterrupt
            yield function(item)
    toolbox.register("map", interrupting_map)


def easimple(directory, toolbox, seed: int = 0, **wrap) -> list:
    random.seed(seed)
    with Journal(directory, macro.SPACE) as journal:
        journal.wrap(toolbox, **wrap)
        population, _ = deap_algorithms.eaSimple(toolbox.population(n=3), toolbox, cxpb=0.0,
                                                 mutpb=1.0, ngen=1, verbose=False)
    return population


# -- the evaluator's settings are the run's ------------------------------------------------------

def test_a_rerun_with_fewer_training_epochs_is_refused_naming_epochs(digits, tmp_path):
    """The issue's case: an evaluator trained at 6 epochs, interrupted, run again at 1 epoch."""
    def evaluator(epochs):
        return TrainEvaluator(functools.partial(macro.build_network, channels=4), digits,
                              epochs=epochs, batch_size=256, device="cpu")

    toolbox = macro_toolbox(evaluator(6))
    interrupt_after(toolbox, 2)
    with pytest.raises(KeyboardInterrupt):
        easimple(tmp_path, toolbox)
    recorded = (tmp_path / HISTORY).read_bytes()
    assert len(read_history(tmp_path)) == 2

    toolbox = macro_toolbox(evaluator(1))
    evaluated = count_evaluations(toolbox)
    with pytest.raises(RunDirectoryError, match=r"recipe\.epochs: 6 -> 1") as refused:
        easimple(tmp_path, toolbox)
    assert str(tmp_path / SETTINGS) in str(refused.value)
    assert "config.json" not in str(refused.value)  # a journal directory has none
    assert evaluated["n"] == 0 and (tmp_path / HISTORY).read_bytes() == recorded


def test_a_partials_changed_argument_is_named(nb201_csv, table, tmp_path):
    def scaled(cell, scale):
        return tuple(scale * v for v in table(cell))

    for scale in (1, 2):
        toolbox = nb201_toolbox(functools.partial(scaled, scale=scale))
        random.seed(3)
        with Journal(tmp_path, nb201.SPACE) as journal:
            if scale == 1:
                journal.wrap(toolbox)
                evaluate_invalid(toolbox.population(n=3), toolbox)
            else:
                with pytest.raises(RunDirectoryError, match=r"keywords\.scale: 1 -> 2"):
                    journal.wrap(toolbox)
    assert len(read_history(tmp_path)) == 3


def test_explicit_settings_replace_the_evaluators_description(table, tmp_path):
    """``settings=`` fingerprints what the script says matters: the same settings with another
    evaluator object replay, other settings are refused."""
    toolbox = nb201_toolbox(table)
    random.seed(3)
    with Journal(tmp_path, nb201.SPACE) as journal:
        journal.wrap(toolbox, settings={"table": "nb201", "lr": 0.1})
        evaluate_invalid(toolbox.population(n=3), toolbox)

    toolbox = nb201_toolbox(lambda cell: table(cell))  # another function, same settings
    evaluated = count_evaluations(toolbox)
    random.seed(3)
    with Journal(tmp_path, nb201.SPACE) as journal:
        journal.wrap(toolbox, settings={"table": "nb201", "lr": 0.1})
        evaluate_invalid(toolbox.population(n=3), toolbox)
    assert evaluated["n"] == 0  # all three replayed

    with Journal(tmp_path, nb201.SPACE) as journal, \
            pytest.raises(RunDirectoryError, match=r"evaluator\.lr: 0\.1 -> 0\.2"):
        journal.wrap(toolbox, settings={"table": "nb201", "lr": 0.2})


def test_other_fitness_weights_are_refused(table, tmp_path):
    for weights in ((1.0,), (-1.0,)):
        toolbox = weighted_toolbox(table, weights)
        random.seed(3)
        with Journal(tmp_path, nb201.SPACE) as journal:
            journal.wrap(toolbox)
            population = toolbox.population(n=3)
            if weights == (1.0,):
                evaluate_invalid(population, toolbox)
            else:
                with pytest.raises(RunDirectoryError, match=r"weights: \[1\.0\] -> \[-1\.0\]"):
                    evaluate_invalid(population, toolbox)
    assert len(read_history(tmp_path)) == 3


def test_records_made_under_other_settings_are_refused_when_the_settings_file_is_gone(
        table, tmp_path):
    """Each record keeps a digest of the settings, as a CLI run's do: deleting journal.json does
    not let a changed evaluator mix two runs, and the error names the file that exists."""
    for scale in (1, 2):
        toolbox = nb201_toolbox(table)
        random.seed(3)
        with Journal(tmp_path, nb201.SPACE) as journal:
            journal.wrap(toolbox, settings={"scale": scale})
            if scale == 1:
                evaluate_invalid(toolbox.population(n=3), toolbox)
                (tmp_path / SETTINGS).unlink()
            else:
                with pytest.raises(RunDirectoryError, match="evaluation 1 was recorded under "
                                                            "other settings") as refused:
                    evaluate_invalid(toolbox.population(n=3), toolbox)
                assert str(tmp_path / SETTINGS) in str(refused.value)
                assert "config.json" not in str(refused.value)
    assert len(read_history(tmp_path)) == 3


def test_a_damaged_settings_file_is_refused_naming_the_field(table, tmp_path):
    (tmp_path / SETTINGS).write_text(json.dumps({"evaluator": {}, "weights": ["x"]}))
    with Journal(tmp_path, nb201.SPACE) as journal, \
            pytest.raises(RunDirectoryError, match=r"journal\.json is damaged: its \"weights\""):
        journal.wrap(nb201_toolbox(table))


# -- the replay says so ---------------------------------------------------------------------------

def test_a_replay_says_how_many_evaluations_it_replayed(table, tmp_path, capsys):
    def run(interrupt=None):
        toolbox = nb201_toolbox(table)
        if interrupt is not None:
            interrupt_after(toolbox, interrupt)
        random.seed(11)
        with Journal(tmp_path, nb201.SPACE) as journal:
            journal.wrap(toolbox)
            deap_algorithms.eaSimple(toolbox.population(n=6), toolbox, cxpb=0.0, mutpb=0.9,
                                     ngen=3, verbose=False)

    with pytest.raises(KeyboardInterrupt):
        run(interrupt=8)
    assert "replayed" not in capsys.readouterr().err
    run()
    assert f"replayed 8 evaluations recorded in {tmp_path / HISTORY}" in capsys.readouterr().err


# -- deapnas show ---------------------------------------------------------------------------------

def test_show_reads_a_journal_directory(table, tmp_path, capsys):
    def evaluate(cell):
        return failure("no skip allowed", cell) if cell[0] == "skip_connect" else table(cell)

    toolbox = nb201_toolbox(evaluate)
    random.seed(5)
    with Journal(tmp_path, nb201.SPACE) as journal:
        journal.wrap(toolbox)
        population = toolbox.population(n=8)
        population[0][0] = "skip_connect"
        evaluate_invalid(population, toolbox)
    history = read_history(tmp_path)
    failed = [r for r in history if r["reason"]]
    best = max((r for r in history if not r["reason"]), key=lambda r: r["fitness"][0])
    capsys.readouterr()

    assert main(["show", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"journal {tmp_path}" in out and "evaluations: 8" in out
    assert f"{len(failed)} of 8 candidates could not be built or trained" in out
    assert f"  {len(failed)} x no skip allowed" in out
    assert f"({best['fitness'][0]:.4f}) at evaluation {best['evaluation']}: {best['key']}" in out
    assert (tmp_path / "fitness.png").stat().st_size > 0
    assert f"wrote {tmp_path / 'fitness.png'}" in out


def test_show_takes_the_lowest_fitness_as_best_when_it_is_minimised(table, tmp_path, capsys):
    toolbox = weighted_toolbox(table, (-1.0,))
    random.seed(5)
    with Journal(tmp_path, nb201.SPACE) as journal:
        journal.wrap(toolbox)
        evaluate_invalid(toolbox.population(n=6), toolbox)
    lowest = min(read_history(tmp_path), key=lambda r: r["fitness"][0])
    assert main(["show", str(tmp_path)]) == 0
    assert f"({lowest['fitness'][0]:.4f}) at evaluation {lowest['evaluation']}" in \
        capsys.readouterr().out


# -- a journal that records nothing ---------------------------------------------------------------

def test_a_loop_refuses_a_journal_that_does_not_wrap_its_toolbox(table, tmp_path):
    toolbox = nb201_toolbox(table)
    evaluated = count_evaluations(toolbox)
    random.seed(0)
    with Journal(tmp_path, nb201.SPACE) as journal, \
            pytest.raises(ValueError, match=r"call journal\.wrap\(toolbox\) before the loop"):
        regularized_evolution(toolbox.population(n=5), toolbox, 10, verbose=False,
                              journal=journal)
    assert evaluated["n"] == 0
    assert read_history(tmp_path) == [] and not (tmp_path / "checkpoint.json").exists()


def test_a_map_registered_after_wrap_is_refused_too(table, tmp_path):
    toolbox = nb201_toolbox(table)
    with Journal(tmp_path, nb201.SPACE) as journal:
        journal.wrap(toolbox)
        toolbox.register("map", map)  # the recording map is gone
        with pytest.raises(ValueError, match=r"call journal\.wrap\(toolbox\)"):
            regularized_evolution(toolbox.population(n=5), toolbox, 10, verbose=False,
                                  journal=journal)


def test_a_wrapped_loop_resumes_from_its_checkpoint(table, tmp_path):
    """With the toolbox wrapped, deapnas's loop checkpoints under the evaluator's settings and
    an interrupted run ends as the uninterrupted one."""
    def run(directory, interrupt=None):
        toolbox = nb201_toolbox(table)
        if interrupt is not None:
            interrupt_after(toolbox, interrupt)
        random.seed(2)
        with Journal(directory, nb201.SPACE, checkpoint_every=3) as journal:
            journal.wrap(toolbox)
            population, _ = regularized_evolution(toolbox.population(n=5), toolbox, 12,
                                                  verbose=False, journal=journal)
        return [list(i) for i in population]

    expected = run(tmp_path / "straight")
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "broken", interrupt=11)
    assert run(tmp_path / "broken") == expected
    assert without_clock(read_history(tmp_path / "broken")) == \
        without_clock(read_history(tmp_path / "straight"))
