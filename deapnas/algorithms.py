"""The search loops, written like DEAP's ``algorithms.py``: one readable function per method,
calling only toolbox aliases (``evaluate``, ``map``, ``select``, ``mutate``, ``clone``), taking
``(population, toolbox, ..., stats=None, halloffame=None, verbose=...)`` and returning
``(population, logbook)``.

Each loop also takes an optional ``journal`` (:class:`deapnas.run.Journal`) that records every
evaluation as it completes and checkpoints the loop's state, so an interrupted search resumes
exactly where it stopped. Without a journal the loops are plain in-memory algorithms.
"""
from __future__ import annotations

import random
from collections import defaultdict, deque
from statistics import fmean
from typing import Iterable, Optional, Sequence

from deap import tools


def assign(individual, evaluation) -> None:
    """Set the fitness from ``evaluation`` and keep its measurements in ``individual.info``."""
    individual.fitness.values = evaluation
    individual.info = dict(getattr(evaluation, "info", {}))


def evaluate_invalid(individuals: Iterable, toolbox, journal=None) -> int:
    """Evaluate the individuals without a valid fitness through ``toolbox.map``; the count.

    Results are assigned (and journaled) one by one as ``map`` yields them; evaluations that a
    resumed journal already holds are replayed instead of being recomputed.
    """
    invalid = [ind for ind in individuals if not ind.fitness.valid]
    todo = [ind for ind in invalid if journal is None or not journal.replay(ind)]
    for individual, evaluation in zip(todo, toolbox.map(toolbox.evaluate, todo)):
        assign(individual, evaluation)
        if journal is not None:
            journal.record(individual)
    return len(invalid)


def sel_best_of_sample(individuals: Sequence, k: int, sample_size: int) -> list:
    """Aging evolution's selection: ``k`` times, draw ``sample_size`` distinct individuals
    uniformly and keep the fittest. ``sample_size=1`` makes the search a random search."""
    if not 1 <= sample_size <= len(individuals):
        raise ValueError(f"sample_size must lie in [1, {len(individuals)}], not {sample_size}")
    return [max(random.sample(list(individuals), sample_size), key=lambda ind: ind.fitness)
            for _ in range(k)]


def regularized_evolution(population: list, toolbox, cycles: int, stats=None,
                          halloffame: Optional[tools.HallOfFame] = None,
                          verbose: bool = __debug__, journal=None, children_per_step: int = 1
                          ) -> tuple[list, tools.Logbook]:
    """Aging (regularized) evolution (Real et al., 2019; Kyriakides & Margaritis, 2020).

    The population is evaluated; then each cycle selects a parent with ``toolbox.select``
    (register :func:`sel_best_of_sample` with the sample size S), evaluates its mutated clone,
    appends it and removes the *oldest* individual, whatever its fitness. Mutation is the only
    variation. Each child gets a fresh ``eval_seed`` so that architectures evaluated again are
    trained from independent initialisations.

    With ``children_per_step`` = k > 1 (set it to the number of parallel workers), each step
    selects k parents from the same population, evaluates their k children together through
    ``toolbox.map``, then appends them and ages out the k oldest, one cycle per child. This is
    the synchronous counterpart of the original paper's asynchronous workers; k = 1 is the
    sequential algorithm exactly.

    :returns: the final population (oldest first) and the logbook (one record per cycle,
        cycle 0 being the initial population).
    """
    logbook = tools.Logbook()
    logbook.header = ["cycle", "nevals"] + (stats.fields if stats else [])
    saved = journal.restore() if journal is not None else None
    if saved is not None:
        population, logbook = saved["population"], saved["logbook"]
        if halloffame is not None:
            halloffame.update(saved["halloffame"])
    population = deque(population)

    if not logbook:  # the first population is not evaluated yet
        _checkpoint(journal, population, logbook, halloffame)
        nevals = evaluate_invalid(population, toolbox, journal)
        _record(logbook, population, stats, halloffame, verbose, cycle=0, nevals=nevals)

    cycle = logbook[-1]["cycle"]
    while cycle < cycles:
        if journal is not None:
            _checkpoint(journal, population, logbook, halloffame)
            if journal.exhausted():
                break
        parents = toolbox.select(population, min(children_per_step, cycles - cycle))
        children = [toolbox.mutate(toolbox.clone(parent))[0] for parent in parents]
        for child in children:
            del child.fitness.values
            child.eval_seed = random.getrandbits(31)
        evaluate_invalid(children, toolbox, journal)
        for child in children:
            cycle += 1
            population.append(child)
            population.popleft()
            _record(logbook, [child], stats, halloffame, verbose, cycle=cycle, nevals=1,
                    population=population)
    return list(population), logbook


def _checkpoint(journal, population, logbook, halloffame) -> None:
    """Hand the loop's state to the journal (no-op without one)."""
    if journal is not None:
        journal.checkpoint(population=list(population), logbook=logbook,
                           halloffame=list(halloffame or []))


def _record(logbook, new, stats, halloffame, verbose, population=None, **fields) -> None:
    """Update the hall of fame with the new individuals and log the population's statistics."""
    if halloffame is not None:
        halloffame.update(new)
    logbook.record(**fields, **(stats.compile(population or new) if stats else {}))
    if verbose:
        print(logbook.stream)


def best_average(history: Iterable[dict], min_evaluations: int = 5) -> Optional[dict]:
    """The paper's final pick: the architecture with the best *mean* fitness among those
    evaluated at least ``min_evaluations`` times.

    ``history`` holds one record per evaluation with ``key`` (the architecture's identity),
    ``fitness`` (a list) and ``reason`` (None unless it failed). When no architecture was
    evaluated that often (short runs), the best mean over all architectures is taken instead
    and the result says so with ``"fallback": True``.
    """
    scores, records = defaultdict(list), {}
    for record in history:
        if record.get("reason") is None and record.get("key") is not None:
            scores[record["key"]].append(record["fitness"][0])
            records.setdefault(record["key"], record)
    if not scores:
        return None
    eligible = [k for k, s in scores.items() if len(s) >= min_evaluations]
    pool = eligible or list(scores)
    best = max(pool, key=lambda k: (fmean(scores[k]), len(scores[k])))
    return {**records[best], "mean_fitness": fmean(scores[best]),
            "times_evaluated": len(scores[best]), "fallback": not eligible}
