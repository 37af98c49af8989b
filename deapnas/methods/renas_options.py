"""RENAS as the registry lists it: its options, presets and hooks (:data:`METHOD`), declared
apart from its machinery (:mod:`deapnas.methods.renas`, torch and the controller), which the
hooks import when the search runs, so that ``deapnas search --help`` imports none of it."""
from __future__ import annotations

from dataclasses import dataclass

from .. import limits
from ..options import RunConfig, TrainingOptions, option
from .method import Later, Method, final_training_of

MACHINERY = "deapnas.methods.renas"


@dataclass
class Options(TrainingOptions):
    """RENAS's settings: the paper's where it gives them (Chen et al., 2019, §4.3 and §5.1),
    otherwise the documented choices (see ``docs/methods/renas.rst``)."""

    epochs: int = option(20, "epochs of training from scratch: the first population and the "
                         "final retraining (not given in the paper; 20 is its own "
                         "from-scratch evaluation, §5.3)", minimum=1, maximum=limits.MAX_EPOCHS)
    optimizer: str = option("sgd", "the optimizer (SGD with momentum 0.9, as the paper trains)",
                            choices=("adam", "sgd"))
    lr: float = option(0.01, "learning rate of training from scratch and of a child's new "
                       "parameters (paper: 0.01)", positive=True, maximum=limits.MAX_LR)
    weight_decay: float = option(3e-4, "L2 weight decay (the paper's CIFAR-10 value)",
                                 minimum=0, maximum=1)
    channels: int = option(24, "F, filters of the first cells (paper's search: 24)",
                           minimum=1, maximum=limits.MAX_CHANNELS)
    stem_multiplier: int = option(3, "nasnet: the stem of the search and final networks has "
                                  "this times F filters (NASNet's CIFAR-10 network, which the "
                                  "paper builds, and the authors' code: 3F)", minimum=1,
                                  maximum=limits.MAX_CHANNELS)
    cells: int = option(2, "N, cells per stage (paper's search: 2)",
                        minimum=1, maximum=limits.MAX_CELLS)
    population: int = option(20, "population P", minimum=2, maximum=limits.MAX_POPULATION)
    sample_size: int = option(5, "sample size S: the best of S becomes the parent, the worst "
                              "dies (not given in the paper; AmoebaNet's S/P = 1/4)",
                              minimum=2, maximum=limits.MAX_POPULATION)
    blocks: int = option(5, "B, blocks per cell of the nasnet space",
                         minimum=1, maximum=limits.MAX_BLOCKS)
    mutation: str = option("controller", "controller: the reinforced mutation; random: the same "
                           "actions drawn uniformly (the paper's EA baseline)",
                           choices=("controller", "random"))
    finetune_epochs: int = option(1, "epochs a child is fine-tuned from its parent's weights "
                                  "(paper: one pass over the training data)",
                                  minimum=1, maximum=limits.MAX_EPOCHS)
    new_lr_factor: float = option(10.0, "a child's inherited parameters train at --lr divided "
                                  "by this (paper: 10, i.e. 0.001)",
                                  minimum=1, maximum=limits.MAX_FACTOR)
    val_fraction: float = option(0.1, "share of the training images held out for validation "
                                 "(paper: 5,000 of CIFAR-10's 50,000)", positive=True,
                                 maximum=0.5)
    search_augment: bool = option(True, "train the search's candidates (first population, "
                                  "children, retraining) on random crops (--crop-padding) and, "
                                  "unless --no-flip, horizontal flips (paper §5.1.1; Cutout only "
                                  "in the final training)")
    train_per_class: int = option(0, "train candidates on a stratified subset of this many "
                                  "training images per class (0: all of them)",
                                  minimum=0, maximum=limits.MAX_PER_CLASS)
    controller_size: int = option(100, "the controller's embedding and LSTM sizes (paper: 100)",
                                  minimum=1, maximum=limits.MAX_CONTROLLER_SIZE)
    controller_lr: float = option(1e-3, "the controller's Adam learning rate (paper: 0.001)",
                                  positive=True, maximum=limits.MAX_LR)
    temperature: float = option(5.0, "the controller's logits are divided by it (paper: 5.0)",
                                positive=True, maximum=limits.MAX_FACTOR)
    tanh_constant: float = option(2.5, "then squashed to C tanh(logits) (paper: 2.5)",
                                  positive=True, maximum=limits.MAX_FACTOR)
    entropy_weight: float = option(0.1, "weight of the decisions' entropy added to the reward "
                                   "(paper: 0.1)", minimum=0, maximum=limits.MAX_FACTOR)
    final_epochs: int = option(630, "final training (nasnet): epochs of the final network, what "
                               "`deapnas train` runs (paper: 630)",
                               minimum=1, maximum=limits.MAX_EPOCHS)
    final_batch_size: int = option(128, "final training: batch size (paper: 128)",
                                   minimum=1, maximum=limits.MAX_BATCH_SIZE)
    final_lr: float = option(0.05, "final training: initial learning rate (SGD, momentum 0.9, "
                             "cosine schedule, --weight-decay; paper: 0.05)",
                             positive=True, maximum=limits.MAX_LR)
    final_channels: int = option(32, "final training: F, filters of the first cells (paper: 32)",
                                 minimum=1, maximum=limits.MAX_CHANNELS)
    final_cells: int = option(6, "final training: N, cells per stage (paper: 6)",
                              minimum=1, maximum=limits.MAX_CELLS)
    crop_padding: int = option(4, "final training and --search-augment: random crops after "
                               "padding this many pixels (paper: 32x32 crops of 40x40; 0: none)",
                               minimum=0, maximum=limits.MAX_PIXELS)
    no_flip: bool = option(False, "final training and --search-augment: no random horizontal "
                           "flips")
    cutout: int = option(16, "final training: side of the Cutout square (paper: cutout, its "
                         "length not given; 16 is Cutout's CIFAR-10 value; 0: none)",
                         minimum=0, maximum=limits.MAX_PIXELS)
    auxiliary_weight: float = option(0.4, "final training: weight of the auxiliary classifier "
                                     "at 2/3 of the depth (paper: 0.4; 0: none)",
                                     minimum=0, maximum=limits.MAX_FACTOR)
    drop_path: float = option(0.5, "final training: drop-path rate, raised linearly from 0 over "
                              "the epochs (paper: 0.5)", minimum=0, maximum=0.9)
    final_dropout: float = option(0.5, "final training: dropout before the classifier (paper: "
                                  "0.5)", minimum=0, maximum=0.9)
    baseline_decay: float = option(0.95, "the REINFORCE baseline is a moving average keeping "
                                   "this fraction at each reward (not given in the paper)",
                                   minimum=0, maximum=0.999)

    def validate(self, config: RunConfig) -> None:
        if self.sample_size > self.population:
            raise ValueError(f"--sample-size must lie between 2 and --population "
                             f"({self.population})")
        first = first_evaluations(self.population, config.tabular)
        if config.evaluations is None or config.evaluations < first:
            raise ValueError(
                f"renas needs --evaluations of at least {first}: the first population "
                + ("is" if config.tabular else "and its final retraining are")
                + f" part of the budget (P = {self.population})")


def first_evaluations(population: int, tabular: bool) -> int:
    """Evaluations that are not children: the first population, and its final retraining in a
    trained search."""
    return population if tabular else 2 * population


METHOD = Method(
    "renas", Options, Later(MACHINERY, "search"), Later(MACHINERY, "pick"),
    presets={"paper": dict(dataset="cifar10", evaluations=2000, population=20, blocks=5,
                           channels=24, cells=2, val_fraction=0.1, search_augment=True,
                           stem_multiplier=3),
             "tiny": dict(dataset="digits", evaluations=20, population=5, sample_size=3,
                          blocks=3, channels=8, cells=1, epochs=5, batch_size=32, lr=0.1,
                          search_augment=False, final_epochs=15, final_channels=8,
                          final_cells=2, crop_padding=1, no_flip=True, cutout=0,
                          drop_path=0.0)},
    spaces=("nasnet", "nb201"), evaluator=Later(MACHINERY, "evaluator"),
    final_training=final_training_of(Later(MACHINERY, "final_evaluator"), spaces=("nasnet",)),
    description="reinforced evolution: a learned mutation controller and parameter "
                "inheritance (Chen et al., 2019)")
