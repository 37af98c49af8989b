"""Search loops shared by several methods, written like DEAP's ``algorithms.py``: plain
functions over toolbox aliases, taking ``(population, toolbox, ..., stats=None,
halloffame=None, verbose=...)`` and returning ``(population, logbook)``.

Evaluations go through ``toolbox.map(toolbox.evaluate, ...)``; when the toolbox has an
``update`` alias it is called with the newly evaluated individuals (DEAP's ask/tell convention),
so a learned operator can observe their fitness.

Each loop also takes an optional ``journal`` (:class:`deapnas.journal.Journal`, or anything with the
same three methods): :func:`restore_state` once at the start returns the state of the last
checkpoint (or None), and ``journal.checkpoint(**state)`` at every safe point hands the loop's
state over and says whether to go on. Recording evaluations is not the loop's business: the
journal wraps ``toolbox.map`` (``journal.wrap(toolbox)``), and a loop refuses a journal that
does not wrap its toolbox, which would record nothing. Without a journal the loops are plain
in-memory algorithms.
"""
from __future__ import annotations

import random
from collections import defaultdict, deque
from statistics import fmean
from typing import Any, Callable, Iterable, Optional, Sequence

from deap import tools


def restore_state(journal, toolbox) -> Optional[dict]:
    """The state a loop starts from: ``journal.restore()``, the state of the last checkpoint
    (None for a fresh run, or without a journal).

    A journal records only the evaluations made through a toolbox it wraps
    (``journal.wraps(toolbox)``); a loop given another toolbox would checkpoint a run whose
    history stays empty, so that is refused with a ``ValueError`` before anything is evaluated.
    """
    if journal is None:
        return None
    if not journal.wraps(toolbox):
        raise ValueError("the journal does not wrap this loop's toolbox, so it would record no "
                         "evaluation and the run could not resume: call journal.wrap(toolbox) "
                         "before the loop (after registering the toolbox's evaluate and map)")
    return journal.restore()


def assign(individual, evaluation) -> None:
    """Set the fitness from ``evaluation`` and keep its measurements in ``individual.info``."""
    individual.fitness.values = evaluation
    individual.info = dict(getattr(evaluation, "info", {}))


def evaluate_invalid(individuals: Iterable, toolbox) -> int:
    """Evaluate the individuals without a valid fitness through ``toolbox.map``; the count.

    An individual without an ``eval_seed`` gets a fresh one first, so that every candidate
    trains from its own initialisation. Results are assigned as ``map`` yields them; then
    ``toolbox.update(evaluated)`` is called when the toolbox has it.
    """
    invalid = [ind for ind in individuals if not ind.fitness.valid]
    for individual in invalid:
        if not hasattr(individual, "eval_seed"):
            individual.eval_seed = random.getrandbits(31)
    for individual, evaluation in zip(invalid, toolbox.map(toolbox.evaluate, invalid)):
        assign(individual, evaluation)
    if invalid and hasattr(toolbox, "update"):
        toolbox.update(invalid)
    return len(invalid)


def sel_best_of_sample(individuals: Sequence, k: int, sample_size: int,
                       best: Callable[[list], Any] = None, replace: bool = False) -> list:
    """Aging evolution's selection: ``k`` times, draw ``sample_size`` individuals uniformly,
    distinct ones unless ``replace`` (Real et al. and the macro paper's authors draw with
    replacement), and keep the best, by default the fittest (for several objectives pass
    ``best=best_nondominated``)."""
    if not 1 <= sample_size <= len(individuals):
        raise ValueError(f"sample_size must lie in [1, {len(individuals)}], not {sample_size}")
    best = best or (lambda sample: max(sample, key=lambda ind: ind.fitness))
    draw = random.choices if replace else random.sample
    return [best(draw(list(individuals), k=sample_size)) for _ in range(k)]


def best_nondominated(sample: list):
    """The individual NSGA-II ranks first in ``sample`` (non-dominated, then most isolated)."""
    return tools.selNSGA2(sample, 1)[0]


def regularized_evolution(population: list, toolbox, cycles: int, stats=None,
                          halloffame: Optional[tools.HallOfFame] = None,
                          verbose: bool = __debug__, journal=None, children_per_step: int = 1
                          ) -> tuple[list, tools.Logbook]:
    """Aging (regularized) evolution (Real et al., 2019; Kyriakides & Margaritis, 2020).

    Toolbox aliases: ``select`` (register :func:`sel_best_of_sample` with the sample size S),
    ``mutate``, ``clone``, ``evaluate``, ``map``, and ``update`` when registered.

    The population is evaluated; then each cycle selects a parent with ``toolbox.select``,
    evaluates its mutated clone, appends it and removes the *oldest* individual, whatever its
    fitness. Mutation is the only variation. Each child gets a fresh ``eval_seed`` so that
    architectures evaluated again are trained from independent initialisations.

    With ``children_per_step`` = k > 1, each step selects k parents from the same population,
    evaluates their k children together through ``toolbox.map`` (so k workers have work),
    then appends them and ages out the k oldest, one cycle per child. k = 1 is the sequential
    algorithm exactly. The result depends on k, never on how many workers evaluate.

    :returns: the final population (oldest first) and the logbook (one record per cycle,
        cycle 0 being the initial population).
    """
    logbook = tools.Logbook()
    logbook.header = ["cycle", "nevals"] + (stats.fields if stats else [])
    saved = restore_state(journal, toolbox)
    if saved is not None:
        population, logbook = saved["population"], saved["logbook"]
        restore_halloffame(halloffame, saved)
    population = deque(population)

    if not logbook:  # the first population is not evaluated yet
        if journal is not None:
            journal.checkpoint(population=list(population), logbook=logbook, halloffame=[])
        nevals = evaluate_invalid(population, toolbox)
        _record(logbook, population, stats, halloffame, verbose, cycle=0, nevals=nevals)

    cycle = logbook[-1]["cycle"]
    while cycle < cycles:
        if journal is not None and not journal.checkpoint(
                population=list(population), logbook=logbook, halloffame=list(halloffame or [])):
            break
        parents = toolbox.select(population, min(children_per_step, cycles - cycle))
        children = [toolbox.mutate(toolbox.clone(parent))[0] for parent in parents]
        for child in children:
            del child.fitness.values
            child.eval_seed = random.getrandbits(31)
        evaluate_invalid(children, toolbox)
        for child in children:
            cycle += 1
            population.append(child)
            population.popleft()
            _record(logbook, [child], stats, halloffame, verbose, cycle=cycle, nevals=1,
                    population=population)
    return list(population), logbook


def random_search(toolbox, evaluations: int, stats=None,
                  halloffame: Optional[tools.HallOfFame] = None, verbose: bool = __debug__,
                  journal=None, batch_size: int = 1) -> tuple[list, tools.Logbook]:
    """Random search: every candidate drawn independently by ``toolbox.individual`` (the
    baseline of the NAS-Bench-201 paper, Dong & Yang, 2020).

    Toolbox aliases: ``individual``, ``evaluate``, ``map``, and ``update`` when registered.

    Candidates are drawn and evaluated ``batch_size`` at a time (so several workers have
    work); the result does not depend on how many workers evaluate.

    :returns: the last batch and the logbook (one record per batch, statistics over the batch);
        give a ``halloffame`` to keep the best candidates.
    """
    logbook = tools.Logbook()
    logbook.header = ["evaluations", "nevals"] + (stats.fields if stats else [])
    saved = restore_state(journal, toolbox)
    if saved is not None:
        logbook = saved["logbook"]
        restore_halloffame(halloffame, saved)
    done = logbook[-1]["evaluations"] if logbook else 0
    batch: list = []
    while done < evaluations:
        if journal is not None and not journal.checkpoint(
                logbook=logbook, halloffame=list(halloffame or [])):
            break
        batch = [toolbox.individual() for _ in range(min(batch_size, evaluations - done))]
        done += evaluate_invalid(batch, toolbox)
        _record(logbook, batch, stats, halloffame, verbose, evaluations=done, nevals=len(batch))
    return batch, logbook


def restore_halloffame(halloffame: Optional[tools.HallOfFame], saved: dict) -> None:
    """Make ``halloffame`` (when given) hold what the checkpoint ``saved`` kept in it, as every
    loop does on resuming (:func:`restore_state`)."""
    if halloffame is not None:
        halloffame.clear()
        halloffame.update(saved["halloffame"])


def _record(logbook, new, stats, halloffame, verbose, population=None, **fields) -> None:
    """Update the hall of fame with the new individuals and log the population's statistics."""
    if halloffame is not None:
        halloffame.update(new)
    logbook.record(**fields, **(stats.compile(population or new) if stats else {}))
    if verbose:
        print(logbook.stream)


def fitnesses_by_architecture(history: Iterable[dict]) -> tuple[dict[str, list[tuple]], dict]:
    """``({key: [fitness of each evaluation]}, {key: first record})`` over the valid records of
    ``history`` that name their architecture (``key``), in order of evaluation: what a pick by
    mean fitness groups."""
    fitnesses, first = defaultdict(list), {}
    for record in history:
        if record.get("reason") is None and record.get("key") is not None:
            fitnesses[record["key"]].append(tuple(record["fitness"]))
            first.setdefault(record["key"], record)
    return fitnesses, first


def scores_by_architecture(history: Iterable[dict]) -> tuple[dict[str, list[float]], dict]:
    """Like :func:`fitnesses_by_architecture`, each evaluation's first fitness value only."""
    fitnesses, first = fitnesses_by_architecture(history)
    return {key: [values[0] for values in group] for key, group in fitnesses.items()}, first


def best_average(history: Iterable[dict], min_evaluations: int = 5,
                 weights: Sequence[float] = (1.0,)) -> Optional[dict]:
    """The macro paper's final pick: the architecture with the best *mean* fitness among those
    evaluated at least ``min_evaluations`` times.

    ``history`` holds one record per evaluation with ``key`` (the architecture's identity),
    ``fitness`` (a list) and ``reason`` (None unless it failed). "Best" follows the fitness
    ``weights`` (DEAP's: positive maximises, negative minimises). With several objectives the
    means are compared objective by objective in the order of ``weights``: the best mean of the
    first objective, ties broken by the next; such an architecture is never dominated, so the
    pick lies on the Pareto front of the architectures' means. When no architecture was
    evaluated that often (short runs), the best mean over all architectures is taken instead
    and the result says so with ``"fallback": True``. ``mean_fitness`` is the mean of the first
    objective, ``mean_values`` the means of all of them.
    """
    fitnesses, records = fitnesses_by_architecture(history)
    if not fitnesses:
        return None
    means = {key: [fmean(values) for values in zip(*group)] for key, group in fitnesses.items()}
    eligible = [k for k, group in fitnesses.items() if len(group) >= min_evaluations]
    pool = eligible or list(fitnesses)
    best = max(pool, key=lambda k: ([w * m for w, m in zip(weights, means[k])],
                                    len(fitnesses[k])))
    return {**records[best], "mean_fitness": means[best][0], "mean_values": means[best],
            "times_evaluated": len(fitnesses[best]), "fallback": not eligible}
