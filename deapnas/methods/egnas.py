"""EG-NAS (Cai et al., AAAI 2024): ``deapnas search --algorithm egnas --space darts|nb201``.

Gradient descent trains a supernet's weights; CMA-ES moves its architecture weights α (the
algorithm is :mod:`deapnas.evolutionary_gradient`). Two modes:

- **supernet** (``--dataset digits|mnist|cifar10...``): a PC-DARTS supernet of the DARTS cells
  (``--space darts``) or of the NAS-Bench-201 cell (``--space nb201``) is trained on one half of
  the training images while the ES scores candidate α on the other half (``--val-fraction``).
  ``--evaluations`` counts candidate scorings. With ``--space nb201``, ``--table CSV --report
  COLUMNS`` looks the final cell up in the benchmark for the report.
- **table-only** (``--space nb201 --dataset nb201 --table CSV --metric COLUMN``): no supernet;
  each candidate's argmax cell is looked up in the table (``--evaluations`` counts look-ups),
  to study the ES itself in seconds.

The pick is the architecture derived from the final α (DARTS' rule for ``darts``, the strongest
operation per edge for ``nb201``), written to ``best.json`` as a genome of the searched space,
so that ``deapnas show`` draws it and ``deapnas train`` retrains it. The run directory records
each candidate by its vector (exactly, so that a resumed run replays it) and by the key of the
architecture it derives (:class:`AlphaRecords`).
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch
from deap import tools

from ..augment import Augment
from ..data import Dataset
from ..evolutionary_gradient import (SEARCH_RECIPE, Candidate, CMASampling,
                                     SupernetEvaluator, TableScorer, egnas, initial_alpha)
from ..fitness import TableEvaluator, TrainEvaluator
from ..individuals import individual_class
from ..networks import check_parameters, count_parameters
from ..options import RunConfig
from ..spaces import Space, darts, nb201
from ..supernet import (NB201_LAYOUT, DartsSupernet, NB201Supernet, SupernetTraining,
                        darts_layout, derive_darts, derive_nb201)
from ..training import Recipe, deterministic_kernels, resolve_device
from .egnas_options import METHOD, SUPERNET_CELLS, Options, supernet_cells  # noqa: F401 (re-exported)


def search_recipe(options: Options) -> Recipe:
    """PC-DARTS' weight training (:data:`~deapnas.evolutionary_gradient.SEARCH_RECIPE`) with
    the options' epochs, batch size, optimizer, learning rate, weight decay and the crops and
    flips of the training images (none when both are off)."""
    augment = Augment(crop_padding=options.search_crop_padding, flip=options.search_flip)
    return replace(SEARCH_RECIPE, epochs=options.epochs, batch_size=options.batch_size,
                   optimizer=options.optimizer, lr=options.lr,
                   weight_decay=options.weight_decay,
                   augment=augment if augment != Augment() else None)


def final_recipe(options: Options, epochs: Optional[int] = None) -> Recipe:
    """DARTS' retraining (Liu et al., 2019), which EG-NAS follows: SGD with momentum 0.9 on a
    cosine schedule, weight decay 3e-4, gradients clipped to norm 5, crops, flips, Cutout,
    the auxiliary head's loss and drop-path, for ``epochs`` (default ``final_epochs``)."""
    augment = Augment(crop_padding=options.crop_padding, flip=not options.no_flip,
                      cutout=options.cutout)
    return Recipe(epochs=epochs or options.final_epochs, batch_size=options.final_batch_size,
                  optimizer="sgd", lr=options.final_lr, momentum=0.9, weight_decay=3e-4,
                  schedule="cosine", grad_clip=5.0, augment=augment,
                  auxiliary_weight=options.auxiliary_weight, drop_path=options.drop_path)


def final_evaluator(options: Options, data: Dataset, device: str = "auto", seed: int = 0,
                    epochs: Optional[int] = None, channels: Optional[int] = None
                    ) -> TrainEvaluator:
    """The derived genotype's DARTS network at ``final_channels`` (or ``channels``) and
    ``final_cells``, with the auxiliary head when its loss has a weight, trained by
    :func:`final_recipe`."""
    build = functools.partial(darts.build_network, channels=channels or options.final_channels,
                              layers=options.final_cells,
                              auxiliary=options.auxiliary_weight > 0)
    return TrainEvaluator(build, data, recipe=final_recipe(options, epochs), device=device,
                          seed=seed)


def derivation(space: str, options: Options) -> Callable[[np.ndarray], Any]:
    """α -> the architecture it derives, a genome of ``space``."""
    if space == "darts":
        return functools.partial(derive_darts, layout=darts_layout(options.edge_normalisation))
    return derive_nb201


# -- the run's hooks ------------------------------------------------------------------------------

@dataclass(frozen=True)
class AlphaRecords:
    """How a run directory records EG-NAS's candidates, vectors of architecture weights: the
    vector itself as the genome (floats written exactly, so that a resumed run's replay
    compares them), and as key the key of the architecture it derives in ``space``."""

    space: Space
    derive: Callable[[np.ndarray], Any]

    def individual(self, weights: Sequence[float] = (-1.0,)) -> type:
        return individual_class(list, tuple(weights))

    def to_json(self, vector: Sequence[float]) -> list[float]:
        return [float(v) for v in vector]

    def from_json(self, data: list, container: Callable[[list], Any] = list) -> Any:
        return container(data)

    def key(self, vector: Sequence[float]) -> str:
        return self.space.key(self.derive(np.asarray(vector, dtype=np.float64)))

    def describe(self, vector: Sequence[float]) -> dict:
        return {"genome": self.to_json(vector), "key": self.key(vector)}


def records(run) -> AlphaRecords:
    """The run directory describes candidates by vector and derived architecture."""
    return AlphaRecords(run.space, derivation(run.space.name, run.options))


def evaluator(run):
    """A :class:`~deapnas.evolutionary_gradient.TableScorer` (table-only mode), or a
    :class:`~deapnas.evolutionary_gradient.SupernetEvaluator` around a new supernet whose
    weights are drawn from the run's seed, on the run's device."""
    options, config = run.options, run.config
    if config.tabular:
        table = TableEvaluator(config.table, nb201.key, config.metric, config.report_columns)
        return TableScorer(table, derive_nb201, options.zeta, options.eta)
    data, device = run.data, resolve_device(config.first_device)

    def build() -> torch.nn.Module:
        return make_supernet(run.space.name, data.input_shape, data.num_classes, options)

    with torch.random.fork_rng(devices=[]):  # built on the CPU: the same weights anywhere
        check_parameters(build, f"the supernet of --channels {options.channels} and --cells "
                         f"{supernet_cells(options, run.space.name)}", "lower them")
        torch.manual_seed(config.seed)
        supernet = build()
    return SupernetEvaluator(supernet.to(device), data.val.to(device), options.score_batches,
                             options.score_batch_size, options.zeta, options.eta)


def make_supernet(space: str, input_shape: tuple[int, int, int], num_classes: int,
                  options: Options) -> torch.nn.Module:
    """The supernet of ``space`` at the options' width, depth and partial channels."""
    cells = supernet_cells(options, space)
    if space == "darts":
        return DartsSupernet(input_shape, num_classes, options.channels, cells, options.partial,
                             options.edge_normalisation)
    return NB201Supernet(input_shape, num_classes, options.channels, cells, options.partial)


def search(run) -> tools.Logbook:
    """Algorithm 1 of the paper through :func:`~deapnas.evolutionary_gradient.egnas`, on the
    supernet, or on the table (``epochs - warmup`` ES steps, or as many as ``--evaluations``
    allows)."""
    options, config = run.options, run.config
    toolbox = run.toolbox()
    toolbox.register("strategy", CMASampling, popsize=options.popsize,
                     iterations=options.iterations, bound=options.bound)
    loop = functools.partial(egnas, toolbox=toolbox, samplings=options.samplings,
                             step_size=options.step_size, sigma=options.sigma,
                             sigma_min=options.sigma_min, spread=options.spread,
                             update=options.update, seed=config.seed, stats=run.stats,
                             verbose=False, journal=run.journal)
    if config.tabular:
        alpha, logbook = loop(None, epochs=table_steps(config, options), warmup=0,
                              alpha=initial_alpha(NB201_LAYOUT.size, config.seed))
    else:
        scorer = run.evaluator
        training = SupernetTraining(scorer.supernet, run.data.train.to(scorer.data.x.device),
                                    search_recipe(options), seed=config.seed)
        with deterministic_kernels(options.deterministic):
            alpha, logbook = loop(training, epochs=options.epochs, warmup=options.warmup)
    run.result = {"alpha": alpha}
    return logbook


def table_steps(config: RunConfig, options: Options) -> int:
    """ES steps of the table-only mode: ``epochs - warmup``, or enough for ``--evaluations``
    look-ups (an ES step makes 1 + N·(λ·iterations + 1))."""
    if config.evaluations is None:
        return options.epochs - options.warmup
    per_step = 1 + options.samplings * (options.popsize * options.iterations + 1)
    return math.ceil(config.evaluations / per_step)


#: What the supernet mode's pick reports: the supernet's accuracy (shared weights) at the final
#: α on the scoring share of the training images, not a trained network's validation accuracy.
SUPERNET_ACCURACY = "supernet accuracy at the final α (shared weights, scoring images)"


def pick(run) -> dict:
    """The architecture derived from the final α; its fitness is the table's ``--metric``
    (table-only mode) or the supernet's accuracy at the final α on the whole validation share,
    and its ``params`` those of the architecture's network at the supernet's width and depth
    (``--channels``, :func:`supernet_cells`)."""
    alpha = np.asarray(run.result["alpha"], dtype=np.float64)
    space = run.space
    architecture = derivation(space.name, run.options)(alpha)
    record = {"genome": space.to_json(architecture), "key": space.key(architecture)}
    if run.config.tabular:
        return {**record, "fitness": list(run.evaluator.table(architecture)), "info": {},
                "chosen_by": "derived from the final architecture weights, looked up"}
    scorer = run.evaluator
    whole = SupernetEvaluator(scorer.supernet, scorer.data, batch_size=scorer.batch_size,
                              batches=math.ceil(len(scorer.data) / scorer.batch_size))
    scored = whole(Candidate(alpha.tolist()))
    data = run.data
    at_supernet = replace(run.options, cells=supernet_cells(run.options, space.name))
    params = count_parameters(lambda: space.build_network(
        architecture, data.input_shape, data.num_classes, **space.network_kwargs(at_supernet)))
    return {**record, "fitness": [scored.info["accuracy"]], "info": {"params": params},
            "metric": SUPERNET_ACCURACY,
            "chosen_by": "derived from the final architecture weights; the supernet's accuracy "
                         "at them"}
