"""Regularized (aging) evolution for macro NAS (Kyriakides & Margaritis, 2020), also run on the
NAS-Bench-201 cells: ``deapnas search --algorithm re``.

The loop is :func:`deapnas.algorithms.regularized_evolution`; the final pick is the paper's,
:func:`deapnas.algorithms.best_average`.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

from deap import tools

from .. import limits
from ..algorithms import (best_average, best_nondominated, regularized_evolution,
                          sel_best_of_sample)
from ..guided import GuidanceOptions, guide
from ..options import RunConfig, TrainingOptions, option
from .method import Method


@dataclass
class Options(TrainingOptions, GuidanceOptions):
    """Regularized evolution; every default is the paper's (P = 100, S = 25, 10 epochs of Adam,
    C = 64 channels), proxy guidance off."""

    population: int = option(100, "population P", minimum=1, maximum=limits.MAX_POPULATION)
    sample_size: int = option(25, "sample size S: the parent is the best of S individuals "
                              "drawn at random (S = 1 is the paper's random-search baseline)",
                              minimum=1, maximum=limits.MAX_POPULATION)
    children_per_step: int = option(1, "children bred and evaluated together per step (1: the "
                                    "paper's sequential algorithm; more keeps several workers "
                                    "busy; results depend on it, never on --workers)",
                                    minimum=1, maximum=limits.MAX_POPULATION)
    min_evaluations: int = option(5, "the pick is the best mean among architectures evaluated "
                                  "at least this often", minimum=1, maximum=limits.MAX_POPULATION)

    def validate(self, config: RunConfig) -> None:
        if self.sample_size > self.population:
            raise ValueError(f"--sample-size must lie between 1 and --population "
                             f"({self.population})")
        if config.evaluations is None or config.evaluations < self.population:
            raise ValueError(f"--evaluations ({config.evaluations}) must be at least "
                             f"--population ({self.population}): the first population is part "
                             "of the budget")


def search(run) -> tools.Logbook:
    """Aging evolution over ``run.config.evaluations`` evaluations, the first population
    included."""
    options = run.options
    if run.workers > options.children_per_step:
        warnings.warn(f"{run.workers} workers but only {options.children_per_step} child(ren) "
                      "per step: raise --children-per-step to keep the workers busy",
                      stacklevel=2)
    toolbox = run.toolbox()
    guide(toolbox, run)
    toolbox.register("select", sel_best_of_sample, sample_size=options.sample_size,
                     best=best_nondominated if run.multi_objective else None)
    _, logbook = regularized_evolution(
        toolbox.population(n=options.population), toolbox,
        cycles=run.config.evaluations - options.population, stats=run.stats,
        halloffame=run.halloffame, verbose=False, journal=run.journal,
        children_per_step=options.children_per_step)
    return logbook


def pick(run):
    """The best mean fitness among architectures evaluated at least ``min_evaluations`` times."""
    return best_average(run.history(), run.options.min_evaluations)


METHOD = Method(
    "re", Options, search, pick,
    presets={"paper": dict(dataset="fashion-mnist", evaluations=500),
             "tiny": dict(dataset="digits", evaluations=200, population=25, sample_size=5,
                          epochs=4, batch_size=64, channels=32, cells=1,
                          clamp_pools=True)},
    spaces=("macro", "nb201"), multi_objective=True,
    description="regularized (aging) evolution (Real et al., 2019), the macro search of "
                "Kyriakides & Margaritis (2020)")
