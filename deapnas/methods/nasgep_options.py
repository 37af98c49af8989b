"""NASGEP as the registry lists it: its options, presets and hooks (:data:`METHOD`), declared
apart from its machinery (:mod:`deapnas.methods.nasgep`, torch and the loop), which the hooks
import when the search runs, so that ``deapnas search --help`` imports none of it. The default
head lengths of its space (:data:`GENE_HEAD`, :data:`CELL_HEAD`) are declared here too, for the
same reason."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

from .. import limits
from ..options import AUTOAUGMENT_POLICIES, RunConfig, TrainingOptions, option
from .method import Later, Method, final_training_of

if TYPE_CHECKING:
    from ..training import Recipe

MACHINERY = "deapnas.methods.nasgep"

#: Heads of the genes and of the cells of :mod:`deapnas.spaces.nasgep` (tails: head + 1).
GENE_HEAD, CELL_HEAD = 1, 4


COMPONENT_FITNESS = ("best", "mean")
#: How a child model gets its reduction cell (step 5c): by tournament among the living cells
#: (the paper), or the cell bred for it.
CHILD_REDUCTIONS = ("tournament", "bred")


@dataclass
class Options(TrainingOptions):
    """NASGEP's settings. Defaults: the paper's search (Sec. IV-A; the fitness is the accuracy
    on 5,000 of CIFAR-10's 50,000 training images) and final training, with Ferreira's operator
    rates. ``epochs`` is E_max, the epochs after which a model retires."""

    epochs: int = option(10, "E_max: epochs after which a model retires",
                         minimum=1, maximum=limits.MAX_EPOCHS)
    batch_size: int = option(512, "batch size of the search",
                             minimum=1, maximum=limits.MAX_BATCH_SIZE)
    optimizer: str = option("sgd", "the optimizer (cosine schedule)", choices=("adam", "sgd"))
    lr: float = option(0.1, "initial learning rate of the search",
                       positive=True, maximum=limits.MAX_LR)
    weight_decay: float = option(5e-4, "L2 weight decay", minimum=0, maximum=1)
    channels: int = option(16, "initial channels of the search networks",
                           minimum=1, maximum=limits.MAX_CHANNELS)
    cells: int = option(3, "N, normal cells per stage", minimum=1, maximum=limits.MAX_CELLS)
    max_params: int = option(300_000, "models with more parameters fail without training "
                             "(0: no cap)", minimum=0, maximum=limits.MAX_PARAMETERS)
    momentum: float = option(0.9, "SGD momentum", minimum=0, maximum=0.999)
    val_fraction: float = option(0.1, "share of the training images held out for the fitness "
                                 "(paper: 5,000 of 50,000)", positive=True, maximum=0.9)
    population: int = option(10, "P_i, models per generation",
                             minimum=2, maximum=limits.MAX_POPULATION)
    reductions: int = option(10, "P_r, initial reduction cells (not given: P_i)",
                             minimum=1, maximum=limits.MAX_POPULATION)
    genes: int = option(50, "P_g, initial genes of each pool", minimum=1, maximum=limits.MAX_GENES)
    max_genes: int = option(100, "P_g^max, the size at which a gene pool stops growing",
                            minimum=1, maximum=limits.MAX_GENES)
    min_new_genes: int = option(2, "C_g^min, new genes per pool and generation, at least",
                                minimum=0, maximum=limits.MAX_GENES)
    max_new_genes: int = option(10, "C_g^max, new genes per pool and generation, at most",
                                minimum=0, maximum=limits.MAX_GENES)
    cell_head: int = option(CELL_HEAD, "head of the cells (tail: head + 1)",
                            minimum=1, maximum=limits.MAX_HEAD)
    gene_head: int = option(GENE_HEAD, "head of the genes (tail: head + 1)",
                            minimum=1, maximum=limits.MAX_HEAD)
    bonus_factor: float = option(0.75, "T_c = bonus_factor x T_g: a model at T_c or above "
                                 "trains a bonus epoch", minimum=0, maximum=limits.MAX_FACTOR)
    tournament_size: int = option(3, "contestants of each tournament (not given)",
                                  minimum=1, maximum=limits.MAX_POPULATION)
    component_fitness: str = option("best", "a gene's or reduction cell's fitness: the best or "
                                    "the mean fitness of the models using it (not given)",
                                    choices=COMPONENT_FITNESS)
    kill_untried: bool = option(False, "also kill unused genes no model has used yet")
    child_reduction: str = option("tournament", "step 5c: a child's reduction cell is won by "
                                  "tournament among the living reduction cells (the paper), "
                                  "or is the cell bred for that child (bred)",
                                  choices=CHILD_REDUCTIONS)
    conv_inputs: str = option("both", "the cell inputs a convolution terminal may read: "
                              "both, or only h1 = h(i-1) or h2 = h(i-2) (not given)",
                              choices=("both", "h1", "h2"))
    mutation_rate: Optional[float] = option(None, "point mutation rate per symbol (unset: "
                                            "two mutations per chromosome)", minimum=0,
                                            maximum=1)
    is_transposition: float = option(0.1, "IS transposition rate", minimum=0, maximum=1)
    ris_transposition: float = option(0.1, "RIS transposition rate", minimum=0, maximum=1)
    max_transposon: int = option(3, "IS and RIS elements are 1 to this many symbols long",
                                 minimum=1, maximum=limits.MAX_HEAD)
    one_point: float = option(0.3, "one-point recombination rate", minimum=0, maximum=1)
    two_point: float = option(0.3, "two-point recombination rate", minimum=0, maximum=1)
    no_sharing: bool = option(False, "turn weight sharing off (the paper's ablation)")
    final_channels: int = option(64, "initial channels of the final training",
                                 minimum=1, maximum=limits.MAX_CHANNELS)
    final_epochs: int = option(300, "epochs of the final training",
                               minimum=1, maximum=limits.MAX_EPOCHS)
    final_batch_size: int = option(128, "batch size of the final training",
                                   minimum=1, maximum=limits.MAX_BATCH_SIZE)
    final_lr: float = option(0.025, "initial learning rate of the final training",
                             positive=True, maximum=limits.MAX_LR)
    crop_padding: int = option(4, "final training: random crops after padding this many "
                               "pixels (0: none; not given)", minimum=0, maximum=limits.MAX_PIXELS)
    no_flip: bool = option(False, "final training: no random horizontal flips")
    autoaugment: str = option("cifar10", "final training: the AutoAugment policy",
                              choices=AUTOAUGMENT_POLICIES + ("none",))
    cutout: int = option(16, "final training: side of the Cutout square (0: none)",
                         minimum=0, maximum=limits.MAX_PIXELS)
    drop_path: float = option(0.0, "final training: drop-path rate, raised linearly from 0 "
                              "over the epochs (the paper's rate, 0.1, "
                              "is in its ablation; its published result uses none)",
                              minimum=0, maximum=0.9)

    def validate(self, config: RunConfig) -> None:
        """Combinations of settings that cannot work, with what to do."""
        if self.min_new_genes > self.max_new_genes:
            raise ValueError(f"--min-new-genes ({self.min_new_genes}) must not exceed "
                             f"--max-new-genes ({self.max_new_genes})")
        if self.genes > self.max_genes:
            raise ValueError(f"--genes ({self.genes}) must not exceed --max-genes "
                             f"({self.max_genes})")
        if config.evaluations is None and config.time_limit is None:
            raise ValueError("nasgep runs until --evaluations (epoch-trainings; the paper's 24 "
                             f"Titan Xp hours: about {PAPER_EVALUATIONS:,}) or --time-limit is "
                             "spent: give one")

    @classmethod
    def tiny(cls, **overrides: Any) -> "Options":
        """The ``tiny`` preset's options (:data:`TINY`), with ``overrides``."""
        return cls(**{**TINY, **overrides})

    @property
    def input_terminals(self) -> tuple[str, ...]:
        """``conv_inputs`` as a tuple of input names."""
        return ("h1", "h2") if self.conv_inputs == "both" else (self.conv_inputs,)

    @property
    def rates(self) -> dict:
        """The operator rates, as :func:`deapnas.gep.reproduce` takes them."""
        return dict(mutation=self.mutation_rate, is_transposition=self.is_transposition,
                    ris_transposition=self.ris_transposition,
                    lengths=tuple(range(1, self.max_transposon + 1)),
                    one_point=self.one_point, two_point=self.two_point)

    def recipe(self) -> Recipe:
        """The search: SGD with momentum, cosine schedule over E_max epochs (one model's whole
        life, one epoch per evaluation)."""
        from ..training import Recipe  # torch: imported by the search, not by --help

        return Recipe(epochs=self.epochs, batch_size=self.batch_size, optimizer=self.optimizer,
                      lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay,
                      schedule="cosine")

    def final_recipe(self, epochs: Optional[int] = None) -> Recipe:
        """The final training (``epochs`` instead of ``final_epochs`` when given): the search's
        optimizer, momentum and weight decay, batch 128, lr 0.025 on a cosine schedule, random
        crops and flips, AutoAugment and Cutout, drop-path rising to ``drop_path``."""
        from ..augment import Augment  # torch: imported by the training, not by --help
        from ..training import Recipe

        augment = Augment(crop_padding=self.crop_padding, flip=not self.no_flip, cutout=self.cutout,
                          autoaugment=None if self.autoaugment == "none" else self.autoaugment)
        return Recipe(epochs=epochs or self.final_epochs, batch_size=self.final_batch_size,
                      optimizer=self.optimizer, lr=self.final_lr, momentum=self.momentum,
                      weight_decay=self.weight_decay, schedule="cosine", augment=augment,
                      drop_path=self.drop_path)


#: The paper preset's budget in epoch-trainings: what the paper's 24 hours on a Titan Xp buy,
#: estimated by ``benchmarks/nasgep_budget.py`` (docs/figures/nasgep_budget.json) from the
#: work of an epoch-training of the paper's search networks. Counting evaluations, not
#: seconds, gives every card the paper's compute.
PAPER_EVALUATIONS = 10_000

#: The ``tiny`` preset's options: 4 models of 4 channels, one cell per stage, cells of 3 genes
#: (head 2), 3 epochs each in batches of 32, small gene pools; a final training of 30 epochs at
#: 16 channels with crops of 1 pixel, Cutout 4 and no flips (digits are not mirror images),
#: long and wide enough for the pick to learn digits through AutoAugment and Cutout.
TINY = dict(population=4, reductions=4, genes=8, max_genes=16, min_new_genes=2,
            max_new_genes=4, cell_head=2, epochs=3, channels=4, cells=1, batch_size=32,
            val_fraction=0.2, final_channels=16, final_epochs=30, final_batch_size=32,
            crop_padding=1, no_flip=True, cutout=4)


METHOD = Method(
    "nasgep", Options, Later(MACHINERY, "search"),
    presets={"paper": dict(dataset="cifar10", evaluations=PAPER_EVALUATIONS),
             "tiny": dict(dataset="digits", evaluations=30, **TINY)},
    spaces=("nasgep",), tabular=False, evaluator=Later(MACHINERY, "evaluator"),
    final_training=final_training_of(Later(MACHINERY, "final_evaluator")),
    description="gene expression programming of cells from a pool of genes, three "
                "populations, weight sharing (Alves & de Oliveira, 2020)")
