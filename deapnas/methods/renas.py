"""RENAS: reinforced evolutionary neural architecture search (Chen et al., 2019).

Evolution by tournament selection in which the *worst* individual of each sample dies (not the
oldest, as in aging evolution), with a learned mutation operator and parameter inheritance:

- :func:`renas`, the loop (the paper's Algorithm 1);
- :class:`~deapnas.controller.MutationController`, the reinforced mutation (register it as
  ``toolbox.mutate`` / ``toolbox.update``; :func:`~deapnas.controller.mut_layout` is the
  paper's random-mutation baseline);
- :class:`WeightStore`, the trained weights of the population's members, from which children
  inherit every parameter whose name and shape match and are fine-tuned for one pass over the
  training data, new parameters at 10x the learning rate (0.01 vs 0.001);
- :func:`retrain_population`, the final step: the population retrained from scratch and the
  best (on the validation split) picked.

A tabular search (NAS-Bench-201) runs the same loop without a weight store.
"""
from __future__ import annotations

import os
import random
from operator import attrgetter
from pathlib import Path
from typing import Any, Iterable, Optional

from deap import tools

from ..algorithms import assign

#: Per-evaluation attributes the loop sets on an individual (see TrainEvaluator).
_TRAINING_ATTRIBUTES = ("inherit_from", "save_to", "epochs")


class WeightStore:
    """The trained weights of a run's individuals, one file per evaluation in ``directory``.

    Each evaluation writes its network's weights to a new file named by the individual's birth
    number (``individual.save_to``, written by the evaluator); a child starts from its
    parent's file (``inherit_from``) and trains ``finetune_epochs`` (paper: one pass over the
    training data); the file of an individual removed from the population is deleted. A file is
    never overwritten, so the paths in a checkpoint stay valid: a resumed run's children
    inherit exactly the weights they would have inherited. The directory must be reachable by
    every evaluation worker (paths travel on the individuals).
    """

    def __init__(self, directory: str | os.PathLike, finetune_epochs: int = 1):
        if finetune_epochs < 1:
            raise ValueError(f"finetune_epochs must be at least 1, not {finetune_epochs}")
        self.directory, self.finetune_epochs = Path(directory), finetune_epochs
        self.directory.mkdir(parents=True, exist_ok=True)

    def path(self, number: int) -> str:
        """The weights file of the individual born ``number``-th."""
        return os.fspath(self.directory / f"{number:06d}.pt")

    def attach(self, individual, number: int, parent: Any = None) -> None:
        """Set where ``individual`` saves its weights and, when ``parent`` has weights (it was
        trained without failing), where it starts from and how long it is fine-tuned."""
        individual.save_to = self.path(number)
        if parent is not None and self.has_weights(parent):
            individual.inherit_from = parent.save_to
            individual.epochs = self.finetune_epochs

    @staticmethod
    def has_weights(individual) -> bool:
        """Whether ``individual`` was trained and saved its weights."""
        return (getattr(individual, "save_to", None) is not None and individual.fitness.valid
                and getattr(individual, "info", {}).get("reason") is None)

    @staticmethod
    def release(individual) -> None:
        """Delete the weights file of an individual that left the population (if any)."""
        if getattr(individual, "save_to", None):
            Path(individual.save_to).unlink(missing_ok=True)


def renas(population: list, toolbox, steps: int, sample_size: int,
          weights: Optional[WeightStore] = None, stats: Optional[tools.Statistics] = None,
          halloffame: Optional[tools.HallOfFame] = None, verbose: bool = __debug__,
          journal=None) -> tuple[list, tools.Logbook]:
    """RENAS's evolution (Chen et al., 2019, Algorithm 1).

    Toolbox aliases: ``mutate``, ``clone``, ``evaluate``, ``map``; ``update`` when registered
    (called with each scored child: the mutation controller learns from it); ``state_dict`` /
    ``load_state_dict`` when registered (the state of a learned operator, checkpointed with the
    loop's).

    ::

        evaluate the population
        repeat steps times:
            S <- sample_size individuals drawn at random from the population
            parent, worst <- the best and the worst of S
            remove worst from the population (its weights file is deleted)
            child <- mutate(clone(parent)), starting from parent's weights
            evaluate child (fine-tune, score on the validation split); update([child])
            add child to the population

    With ``weights`` (a :class:`WeightStore`), every evaluation saves its trained weights and
    a child inherits its parent's, fine-tuned for the store's ``finetune_epochs``; the
    evaluator trains the parameters it did not inherit at ``new_lr_factor`` times its learning
    rate (:class:`~deapnas.fitness.TrainEvaluator` with ``lr=0.001, new_lr_factor=10``).
    Without, each child trains from scratch for the evaluator's epochs (tabular fitness needs
    no weights). Each evaluation gets a fresh ``eval_seed``.

    :param steps: children made (the paper's #E).
    :param sample_size: S, at least 2 (the paper leaves it open).
    :returns: the final population and the logbook (one record per step, step 0 being the
        initial population; ``stats`` are compiled on the population).
    """
    logbook = tools.Logbook()
    logbook.header = ["step", "nevals"] + (stats.fields if stats else [])
    saved = journal.restore() if journal is not None else None
    if saved is None:
        for number, individual in enumerate(population):
            _prepare(individual, number, weights)
        born = len(population)
    else:
        population, logbook, born = saved["population"], saved["logbook"], saved["born"]
        if halloffame is not None:
            halloffame.update(saved["halloffame"])
        if hasattr(toolbox, "load_state_dict"):
            toolbox.load_state_dict(saved["operators"])
    population = list(population)
    if not 2 <= sample_size <= len(population):
        raise ValueError(f"sample_size must lie in [2, {len(population)}] (the population "
                         f"size): the best and the worst of a sample must differ, "
                         f"not {sample_size}")

    if not logbook:  # the first population is not evaluated yet
        if not _checkpoint(journal, toolbox, population, logbook, halloffame, born):
            return population, logbook
        invalid = [ind for ind in population if not ind.fitness.valid]
        _evaluate(invalid, toolbox, update=True)
        _record(logbook, population, stats, halloffame, population, verbose, step=0,
                nevals=len(invalid))

    step = logbook[-1]["step"]
    while step < steps and _checkpoint(journal, toolbox, population, logbook, halloffame, born):
        ranked = sorted(random.sample(population, sample_size), key=attrgetter("fitness"))
        worst, parent = ranked[0], ranked[-1]
        population = [ind for ind in population if ind is not worst]
        child = toolbox.mutate(toolbox.clone(parent))[0]
        del child.fitness.values
        _prepare(child, born, weights, parent)
        born += 1
        _evaluate([child], toolbox, update=True)
        population.append(child)
        if weights is not None:
            weights.release(worst)
        step += 1
        _record(logbook, population, stats, halloffame, [child], verbose, step=step, nevals=1)
    return population, logbook


def _prepare(individual, number: int, weights: Optional[WeightStore], parent: Any = None
             ) -> None:
    """Ready ``individual`` for evaluation: :func:`_fresh`, then, with a weight store, the
    weights it saves and inherits."""
    _fresh(individual)
    if weights is not None:
        weights.attach(individual, number, parent)


def _fresh(individual) -> None:
    """A new ``eval_seed``, and no weights to save or inherit (a clone carries its parent's)."""
    individual.eval_seed = random.getrandbits(31)
    for name in _TRAINING_ATTRIBUTES:
        vars(individual).pop(name, None)


def _evaluate(individuals: list, toolbox, update: bool = False) -> None:
    """Score ``individuals`` through ``toolbox.map(toolbox.evaluate, ...)``; then, with
    ``update``, hand them to ``toolbox.update`` when the toolbox has it."""
    for individual, evaluation in zip(individuals, toolbox.map(toolbox.evaluate, individuals)):
        assign(individual, evaluation)
    if update and individuals and hasattr(toolbox, "update"):
        toolbox.update(individuals)


def _checkpoint(journal, toolbox, population, logbook, halloffame, born: int) -> bool:
    """Hand the loop's state to the journal; whether the search may go on."""
    if journal is None:
        return True
    state = dict(population=list(population), logbook=logbook,
                 halloffame=list(halloffame or []), born=born)
    if hasattr(toolbox, "state_dict"):
        state["operators"] = toolbox.state_dict()
    return journal.checkpoint(**state)


def _record(logbook, population, stats, halloffame, new: Iterable, verbose: bool, **fields
            ) -> None:
    if halloffame is not None:
        halloffame.update(new)
    logbook.record(**fields, **(stats.compile(population) if stats else {}))
    if verbose:
        print(logbook.stream)


def retrain_population(population: Iterable, toolbox, epochs: Optional[int] = None
                       ) -> tuple[Any, list]:
    """The paper's final step (§4.3): retrain every member of the final population from
    scratch (no inherited weights, a fresh ``eval_seed``) with ``toolbox.evaluate`` and take
    the one with the best fitness, which is measured on the validation split.

    :param epochs: training epochs of each (default: the evaluator's own).
    :returns: ``(best, retrained)``, the retrained clones carrying their new fitness.
    """
    retrained = [toolbox.clone(ind) for ind in population]
    for individual in retrained:
        del individual.fitness.values
        vars(individual).pop("mutation", None)
        _fresh(individual)
        if epochs is not None:
            individual.epochs = epochs
    _evaluate(retrained, toolbox)
    return max(retrained, key=attrgetter("fitness")), retrained
