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

from .. import limits
from ..augment import Augment
from ..data import Dataset
from ..evolutionary_gradient import (SEARCH_RECIPE, UPDATES, Candidate, CMASampling,
                                     SupernetEvaluator, TableScorer, egnas, initial_alpha)
from ..fitness import TableEvaluator, TrainEvaluator
from ..individuals import individual_class
from ..networks import check_parameters, count_parameters
from ..options import RunConfig, TrainingOptions, option
from ..spaces import Space, darts, nb201
from ..supernet import (NB201_LAYOUT, DartsSupernet, NB201Supernet, SupernetTraining,
                        darts_layout, derive_darts, derive_nb201)
from ..training import Recipe, deterministic_kernels, resolve_device
from .method import Method, final_training_of

#: Supernet cells when ``--cells`` is not given: DARTS' 8 in all, NAS-Bench-201's 5 per stage.
SUPERNET_CELLS = {"darts": 8, "nb201": 5}


@dataclass
class Options(TrainingOptions):
    """EG-NAS; every default is the paper's (CIFAR-10 search: 50 epochs, 15 of warm-up, batch
    256, C = 16, N = 5, λ = 50, ξ = 0.6, ζ = 1.0, η = 0.4), or PC-DARTS' where EG-NAS says it
    follows it (weight training, K = 4)."""

    epochs: int = option(50, "search epochs: one pass of weight training each, and an ES step "
                         "after each of the epochs past --warmup",
                         minimum=1, maximum=limits.MAX_EPOCHS)
    batch_size: int = option(256, "batch size of the weight training",
                             minimum=1, maximum=limits.MAX_BATCH_SIZE)
    optimizer: str = option("sgd", "optimizer of the weight training (momentum 0.9, cosine "
                            "schedule, gradients clipped to norm 5)", choices=("adam", "sgd"))
    lr: float = option(0.1, "learning rate of the weight training (PC-DARTS, batch 256)",
                       positive=True, maximum=limits.MAX_LR)
    weight_decay: float = option(3e-4, "weight decay of the weight training", minimum=0,
                                 maximum=1)
    channels: int = option(16, "supernet width C (the first cells' channels)",
                           minimum=1, maximum=limits.MAX_CHANNELS)
    cells: Optional[int] = option(None, "supernet cells: darts, in all (3k + 2: the derived "
                                  "genotype is retrained at this depth); nb201, per stage "
                                  "(unset: darts 8, nb201 5)", minimum=1, maximum=limits.MAX_CELLS)
    val_fraction: float = option(0.5, "share of the training images that score candidates "
                                 "(the other share trains the weights)", positive=True,
                                 maximum=0.9)
    warmup: int = option(15, "epochs of weight training only, before the first ES step",
                         minimum=0, maximum=limits.MAX_EPOCHS)
    samplings: int = option(5, "samplings N: CMA-ES runs per ES step",
                            minimum=1, maximum=limits.MAX_POPULATION)
    popsize: int = option(50, "CMA-ES population λ (the ablation's final choice and the "
                          "authors' code; the implementation details say 25)",
                          minimum=2, maximum=limits.MAX_POPULATION)
    iterations: int = option(1, "CMA-ES generations per sampling (the paper's cost N·λ per "
                             "step is one)", minimum=1, maximum=limits.MAX_POPULATION)
    step_size: float = option(0.6, "step size ξ: α moves this fraction of the way to the chosen "
                              "direction s (--update literal: α ← α + ξ·s)", positive=True,
                              maximum=1.0)
    update: str = option("convex", "how α moves towards the chosen direction s: convex, "
                         "α + ξ·(s − α); literal, α + ξ·s as Eq. 8 prints it (α then grows "
                         "by 1 + ξ every step)", choices=UPDATES)
    zeta: float = option(1.0, "ζ, weight of the cross-entropy in the fitness",
                         minimum=0, maximum=limits.MAX_FACTOR)
    eta: float = option(0.4, "η, weight of the similarity to α in the fitness (Eq. 7; 0 turns "
                        "the similarity term off)", minimum=0, maximum=limits.MAX_FACTOR)
    sigma: float = option(1.0, "σ of the first ES step (CMA-ES's initial step size), divided "
                          "by 1 + the step's index", positive=True, maximum=limits.MAX_FACTOR)
    spread: Optional[float] = option(None, "spread of the samplings' starts around α, "
                                     "α + spread·y (unset: σ, the paper's x_n = α + σ·y; the "
                                     "authors' code: 0.01)", positive=True,
                                     maximum=limits.MAX_FACTOR)
    sigma_min: float = option(0.02, "floor of σ", positive=True, maximum=limits.MAX_FACTOR)
    bound: float = option(3.0, "α and every candidate stay in [-bound, bound]",
                          positive=True, maximum=limits.MAX_FACTOR)
    search_crop_padding: int = option(4, "supernet training: random crops after padding this "
                                      "many pixels (0: none; DARTS, PC-DARTS and the authors: "
                                      "4)", minimum=0, maximum=limits.MAX_PIXELS)
    search_flip: bool = option(True, "supernet training: random horizontal flips (DARTS, "
                               "PC-DARTS and the authors)")
    partial: int = option(4, "PC-DARTS' K: each edge mixes 1/K of the channels",
                          minimum=1, maximum=limits.MAX_CHANNELS)
    edge_normalisation: bool = option(False, "PC-DARTS' edge normalisation (darts): α also "
                                      "weighs each edge")
    score_batches: int = option(1, "batches of validation images that score each ES step's "
                                "candidates (the same ones for all of them)",
                                minimum=1, maximum=limits.MAX_BATCH_SIZE)
    score_batch_size: int = option(256, "images per scoring batch",
                                   minimum=1, maximum=limits.MAX_BATCH_SIZE)
    final_epochs: int = option(600, "final training: epochs of the pick's training from scratch, "
                               "what `deapnas train` runs (EG-NAS: DARTS' retraining)",
                               minimum=1, maximum=limits.MAX_EPOCHS)
    final_batch_size: int = option(96, "final training: batch size",
                                   minimum=1, maximum=limits.MAX_BATCH_SIZE)
    final_lr: float = option(0.025, "final training: initial learning rate (EG-NAS: SGD, "
                             "momentum 0.9, cosine, weight decay 3e-4, gradients clipped to 5)",
                             positive=True, maximum=limits.MAX_LR)
    final_channels: int = option(36, "final training: width C",
                                 minimum=1, maximum=limits.MAX_CHANNELS)
    final_cells: int = option(20, "final training: cells (darts: 3k + 2 in all; nasnet: N per "
                              "stage)", minimum=2, maximum=limits.MAX_CELLS)
    crop_padding: int = option(4, "final training: random crops after padding this many "
                               "pixels (0: none)", minimum=0, maximum=limits.MAX_PIXELS)
    no_flip: bool = option(False, "final training: no random horizontal flips")
    cutout: int = option(16, "final training: side of the Cutout square (0: none)",
                         minimum=0, maximum=limits.MAX_PIXELS)
    auxiliary_weight: float = option(0.4, "final training: weight of the loss of an auxiliary "
                                     "classifier at 2/3 of the depth (0: none)",
                                     minimum=0, maximum=limits.MAX_FACTOR)
    drop_path: float = option(0.2, "final training: drop-path rate, raised linearly from 0 over "
                              "the epochs", minimum=0, maximum=0.9)

    def validate(self, config: RunConfig) -> None:
        cells = supernet_cells(self, config.space)
        problems = [
            (config.tabular or self.warmup < self.epochs,
             f"--warmup {self.warmup} leaves no ES step in --epochs {self.epochs}"),
            (not config.tabular or config.evaluations or self.warmup < self.epochs,
             f"the table-only mode runs --epochs - --warmup ES steps ({self.epochs} - "
             f"{self.warmup}), or as many as --evaluations allows: give one of them"),
            (config.tabular or config.space != "darts" or (cells - 2) % 3 == 0,
             f"--cells {cells}: a DARTS network has 3k + 2 cells (2, 5, 8, ..., 20), so that "
             "its reductions sit at 1/3 and 2/3 of the depth"),
            (config.tabular or self.channels % self.partial == 0,
             f"--partial {self.partial} must divide --channels {self.channels}"),
            (config.tabular or (config.workers == 1 and not config.ray and not
                                config.ray_address),
             "EG-NAS scores candidates with the supernet of the search process: use "
             "--workers 1 and no --ray"),
            (self.sigma_min <= self.sigma, f"--sigma-min {self.sigma_min} exceeds --sigma "
                                           f"{self.sigma}"),
            ((self.final_cells - 2) % 3 == 0,
             f"--final-cells {self.final_cells}: a DARTS network has 3k + 2 cells (2, 5, 8, ..., "
             "20)"),
        ]
        for ok, message in problems:
            if not ok:
                raise ValueError(message)


def supernet_cells(options: Options, space: str) -> int:
    """``--cells``, or the space's own supernet depth (:data:`SUPERNET_CELLS`)."""
    return options.cells or SUPERNET_CELLS.get(space, SUPERNET_CELLS["darts"])


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


def fitness_name(config: RunConfig) -> str:
    """What a candidate's fitness is (Eq. 7, minimised): ζ·L ∓ η·similarity to the current α,
    where L is the supernet's cross-entropy, or in table-only mode the validation error
    1 − accuracy of ``--metric``."""
    loss = "(1 − accuracy)" if config.tabular else "cross-entropy"
    return f"compound fitness ζ·{loss} ∓ η·similarity to α"


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


METHOD = Method(
    "egnas", Options, search, pick,
    presets={"paper": dict(dataset="cifar10"),
             "tiny": dict(dataset="digits", epochs=12, warmup=1, batch_size=64, channels=8,
                          cells=5, samplings=2, popsize=4, search_crop_padding=1,
                          search_flip=False, final_epochs=15, final_batch_size=64,
                          final_channels=16, final_cells=5, crop_padding=1, no_flip=True,
                          cutout=0)},
    spaces=("darts", "nb201"), weights=(-1.0,), evaluator=evaluator, records=records,
    final_training=final_training_of(final_evaluator, spaces=("darts",)),
    fitness_name=fitness_name,
    description="EG-NAS (Cai et al., 2024): CMA-ES on a PC-DARTS supernet's architecture "
                "weights, gradient descent on its weights")
