"""Random search: every candidate drawn independently from the space's initialiser, the baseline
of the NAS-Bench-201 paper (Dong & Yang, 2020): ``deapnas search --algorithm random``.

(The macro paper's "random search" is aging evolution with sample size 1: ``--algorithm re
--sample-size 1``. NASGEP's "random sampling" baseline, its Table I, is ``--space nasgep``:
random models of the space's own initialiser.)
"""
from __future__ import annotations

from dataclasses import dataclass

from deap import tools

from .. import limits
from ..algorithms import random_search
from ..options import RunConfig, TrainingOptions, option
from .method import Method


@dataclass
class Options(TrainingOptions):
    """Random search; how candidates are trained follows the macro paper's defaults."""

    candidates_per_step: int = option(1, "candidates drawn and evaluated together (more keeps "
                                      "several workers busy; results depend on it, never on "
                                      "--workers)", minimum=1, maximum=limits.MAX_POPULATION)

    def validate(self, config: RunConfig) -> None:
        if config.evaluations is None:
            raise ValueError("random search needs --evaluations, its budget")


def search(run) -> tools.Logbook:
    """Draw and evaluate ``run.config.evaluations`` independent candidates."""
    toolbox = run.toolbox()
    _, logbook = random_search(toolbox, run.config.evaluations, stats=run.stats,
                               halloffame=run.halloffame, verbose=False, journal=run.journal,
                               batch_size=run.options.candidates_per_step)
    return logbook


METHOD = Method(
    "random", Options, search,
    presets={"paper": dict(dataset="fashion-mnist", evaluations=500, conv_padding="valid"),
             "tiny": dict(dataset="digits", evaluations=200, epochs=4, batch_size=64,
                          channels=32, cells=1,
                          clamp_pools=True)},
    spaces=("macro", "nb201", "nasgep"), multi_objective=True,
    description="random search: independent samples from the space")
