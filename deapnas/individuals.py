"""Fitness and individual classes made without ``deap.creator``.

DEAP scripts make their classes with ``creator.create``, which puts them in the shared
``deap.creator`` namespace. deapnas never does that itself (its names would collide with the
ones users create, and every unpickling of a creator class rebinds the name to a new class).
Instead::

    Fitness = fitness_class((1.0, -1.0))        # maximise the first objective, minimise the second
    Individual = individual_class(list, (1.0,))  # a list with a maximising ``fitness``

Both calls are cached, so asking twice gives the same class, and the classes pickle as the call
that makes them: unpickling one (in a checkpoint, in a worker process) yields that same class
object, and ``isinstance`` keeps working across processes and restores.

Users' own ``creator`` classes work everywhere deapnas takes an individual.
"""
from __future__ import annotations

import copyreg
import functools
import math
from typing import Sequence

from deap import base


class _Made(type):
    """Metaclass of the classes made here: remembers the call that made each one."""


copyreg.pickle(_Made, lambda cls: cls._made_by)


def _name(weights: tuple) -> str:
    return "_".join(("max" if w > 0 else "min") + (f"{abs(w):g}" if abs(w) != 1 else "")
                    for w in weights).replace(".", "d")


def _weights(weights: Sequence[float]) -> tuple[float, ...]:
    weights = tuple(float(w) for w in weights)
    if not weights or any(w == 0 or not math.isfinite(w) for w in weights):
        raise ValueError(f"fitness weights must be finite and non-zero, not {weights}")
    return weights


def fitness_class(weights: Sequence[float] = (1.0,)) -> type[base.Fitness]:
    """The ``deap.base.Fitness`` subclass with these ``weights`` (positive: maximised,
    negative: minimised, as in DEAP)."""
    return _fitness_class(_weights(weights))


def individual_class(genome: type, weights: Sequence[float] = (1.0,)) -> type:
    """``genome`` (a list, a :class:`~deapnas.spaces.macro.MacroGenome`, ...) with a
    ``fitness`` attribute of :func:`fitness_class` ``(weights)``, as
    ``creator.create(name, genome, fitness=...)`` would make it."""
    return _individual_class(genome, _weights(weights))


@functools.cache
def _fitness_class(weights: tuple[float, ...]) -> type[base.Fitness]:
    return _Made(f"Fitness_{_name(weights)}", (base.Fitness,), {
        "weights": weights, "__module__": __name__, "_made_by": (fitness_class, (weights,))})


@functools.cache
def _individual_class(genome: type, weights: tuple[float, ...]) -> type:
    fitness = _fitness_class(weights)

    def __init__(self, *args, **kwargs):
        genome.__init__(self, *args, **kwargs)
        self.fitness = fitness()

    return _Made(f"{genome.__name__[:1].upper()}{genome.__name__[1:]}Individual_{_name(weights)}", (genome,), {
        "__init__": __init__, "fitness": fitness, "__module__": __name__,
        "_made_by": (individual_class, (genome, weights))})


def worst_values(weights: Sequence[float]) -> tuple[float, ...]:
    """The worst possible fitness values under ``weights``: ``-inf`` for each maximised
    objective, ``+inf`` for each minimised one."""
    return tuple(-math.inf if w > 0 else math.inf for w in weights)
