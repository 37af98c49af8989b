"""EG-NAS as the registry lists it: its options, presets and hooks (:data:`METHOD`), declared
apart from its machinery (:mod:`deapnas.methods.egnas`, torch and the ES), which the hooks
import when the search runs, so that ``deapnas search --help`` imports none of it."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from .. import limits
from ..options import ES_UPDATES, RunConfig, TrainingOptions, option
from .method import Later, Method, final_training_of

MACHINERY = "deapnas.methods.egnas"


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
                         "by 1 + ξ every step)", choices=ES_UPDATES)
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


def fitness_name(config: RunConfig) -> str:
    """What a candidate's fitness is (Eq. 7, minimised): ζ·L ∓ η·similarity to the current α,
    where L is the supernet's cross-entropy, or in table-only mode the validation error
    1 − accuracy of ``--metric``."""
    loss = "(1 − accuracy)" if config.tabular else "cross-entropy"
    return f"compound fitness ζ·{loss} ∓ η·similarity to α"


METHOD = Method(
    "egnas", Options, Later(MACHINERY, "search"), Later(MACHINERY, "pick"),
    presets={"paper": dict(dataset="cifar10"),
             "tiny": dict(dataset="digits", epochs=12, warmup=1, batch_size=64, channels=8,
                          cells=5, samplings=2, popsize=4, search_crop_padding=1,
                          search_flip=False, final_epochs=15, final_batch_size=64,
                          final_channels=16, final_cells=5, crop_padding=1, no_flip=True,
                          cutout=0)},
    spaces=("darts", "nb201"), weights=(-1.0,), evaluator=Later(MACHINERY, "evaluator"),
    records=Later(MACHINERY, "records"),
    final_training=final_training_of(Later(MACHINERY, "final_evaluator"), spaces=("darts",)),
    fitness_name=fitness_name,
    description="EG-NAS (Cai et al., 2024): CMA-ES on a PC-DARTS supernet's architecture "
                "weights, gradient descent on its weights")
