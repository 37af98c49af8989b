"""Regularized (aging) evolution for macro NAS (Kyriakides & Margaritis, 2020), also run on the
NAS-Bench-201 cells: ``deapnas search --algorithm re``.

The loop is :func:`deapnas.algorithms.regularized_evolution`; the final pick is the paper's,
:func:`deapnas.algorithms.best_average`; :func:`final_evaluator` is the paper's final training
of a macro pick, what ``deapnas train`` runs.
"""
from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from deap import base, tools

from .. import limits
from ..algorithms import (best_average, best_nondominated, regularized_evolution,
                          sel_best_of_sample)
from ..guided import GuidanceOptions, guide
from ..options import ADD_NODE_SPLITS, RunConfig, TrainingOptions, option
from .method import Method, final_training_of

if TYPE_CHECKING:  # the machinery is imported where it is used, so --help stays light
    from ..data import Dataset
    from ..fitness import TrainEvaluator


@dataclass
class Options(TrainingOptions, GuidanceOptions):
    """Regularized evolution; the defaults are the paper's (P = 100, S = 25, 10 epochs of Adam,
    C = 64 channels; a final training of 20 epochs at C = 256 with flips and random erasing),
    proxy guidance off, except three choices that change the search distribution, whose
    defaults stay deapnas's so that runs made before them resume unchanged: S distinct
    individuals, add-node splitting enabled connections, padded convolutions. The ``paper``
    preset sets the paper's (with replacement, ``any``, ``valid``)."""

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
    parents_with_replacement: bool = option(False, "draw the sample of S with replacement, as "
                                            "Real et al. and the macro paper's authors do "
                                            "(default: S distinct individuals)")
    add_node_split: str = option("enabled", "macro: the add-node mutation splits an enabled "
                                 "connection (fresh genomes are chains) or any connection, "
                                 "disabled ones too (the authors' rule: fresh genomes branch)",
                                 choices=ADD_NODE_SPLITS)
    final_epochs: int = option(20, "deapnas train (macro): epochs of the final training "
                               "(paper: 20)", minimum=1, maximum=limits.MAX_EPOCHS)
    final_channels: int = option(256, "deapnas train (macro): width C of the final network "
                                 "(paper: 256, and 128)", minimum=1,
                                 maximum=limits.MAX_CHANNELS)
    no_flip: bool = option(False, "deapnas train (macro): no random horizontal flips (the "
                           "paper flips)")
    random_erasing: float = option(0.5, "deapnas train (macro): probability of random erasing "
                                   "per image (paper: used; 0.5, the authors' value; 0: none)",
                                   minimum=0, maximum=1)

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
    if run.space.name == "macro":
        register_macro_operators(toolbox, run.individual, options.add_node_split)
    guide(toolbox, run)
    toolbox.register("select", sel_best_of_sample, sample_size=options.sample_size,
                     best=best_nondominated if run.multi_objective else None,
                     replace=options.parents_with_replacement)
    _, logbook = regularized_evolution(
        toolbox.population(n=options.population), toolbox,
        cycles=run.config.evaluations - options.population, stats=run.stats,
        halloffame=run.halloffame, verbose=False, journal=run.journal,
        children_per_step=options.children_per_step)
    return logbook


def register_macro_operators(toolbox: base.Toolbox, individual: type, split: str) -> None:
    """Register the macro space's ``individual``, ``population`` and ``mutate`` on
    ``toolbox`` with the add-node rule ``split`` (:data:`deapnas.options.ADD_NODE_SPLITS`)."""
    from ..spaces import macro
    toolbox.register("individual", macro.init_genome, individual, split=split)
    toolbox.register("population", tools.initRepeat, list, toolbox.individual)
    toolbox.register("mutate", macro.mutate, split=split)


def pick(run):
    """The best mean fitness among architectures evaluated at least ``min_evaluations`` times,
    under the run's fitness weights (with several objectives, the first one decides, the others
    break ties: see :func:`~deapnas.algorithms.best_average`)."""
    chosen = best_average(run.history(), run.options.min_evaluations, run.weights)
    first = run.config.objective_names[0]
    if chosen is not None and first != "accuracy":  # then the mean is not an accuracy
        chosen["metric"] = f"mean {first}"
    return chosen


def final_evaluator(options: Options, data: Dataset, device: str = "auto", seed: int = 0,
                    epochs: Optional[int] = None, channels: Optional[int] = None
                    ) -> TrainEvaluator:
    """The paper's final training of a macro pick (its Sec. 4): the network rebuilt at
    ``final_channels`` (or ``channels``) with the search's other network options, no parameter
    cap (the search's cap bounds candidates, not the final network), trained for
    ``final_epochs`` (or ``epochs``) with horizontal flips and random erasing, by the search's
    optimizer, learning rate, batch size and weight decay."""
    from ..augment import Augment
    from ..fitness import TrainEvaluator
    from ..spaces import macro
    from ..training import Recipe
    network = {**macro.SPACE.network_kwargs(options), "channels": channels or
               options.final_channels}
    augment = Augment(flip=not options.no_flip, erasing=options.random_erasing)
    recipe = Recipe(epochs=epochs or options.final_epochs, batch_size=options.batch_size,
                    optimizer=options.optimizer, lr=options.lr,
                    weight_decay=options.weight_decay, augment=augment)
    return TrainEvaluator(functools.partial(macro.build_network, **network), data,
                          recipe=recipe, device=device, seed=seed,
                          deterministic=options.deterministic)


METHOD = Method(
    "re", Options, search, pick,
    presets={"paper": dict(dataset="fashion-mnist", evaluations=500, conv_padding="valid",
                           parents_with_replacement=True, add_node_split="any"),
             "tiny": dict(dataset="digits", evaluations=200, population=25, sample_size=5,
                          epochs=4, batch_size=64, channels=32, cells=1,
                          clamp_pools=True, final_channels=32, no_flip=True)},
    spaces=("macro", "nb201"), multi_objective=True,
    final_training=final_training_of(final_evaluator, spaces=("macro",)),
    description="regularized (aging) evolution (Real et al., 2019), the macro search of "
                "Kyriakides & Margaritis (2020)")
