"""MiniGen as the registry lists it: its options, presets and hooks (:data:`METHOD`), declared
apart from its machinery (:mod:`deapnas.methods.minigen`, torch and the loop), which the hooks
import when the search runs, so that ``deapnas search --help`` imports none of it. The
default widths of its space (:data:`CHANNELS`) are declared here too, for the same reason."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from .. import limits
from ..options import MINI_SCORE_SOURCES, TrainingOptions, option
from .method import Later, Method

MACHINERY = "deapnas.methods.minigen"

#: The widths a normal cell of :mod:`deapnas.spaces.minigen` draws from (missing from the
#: paper's text; the authors' code).
CHANNELS = (24, 40, 64, 80, 128, 256)


#: How a random action list is drawn (:func:`deapnas.spaces.minigen.init_genome`, and P_b's regenerated lists):
#: ``"uniform"``, every position uniform over the cell's choices (a leading identity, which
#: makes the block residual, has probability 1/5 in the input cell and 1/9 in a normal cell);
#: ``"authors"``, as the authors' code: a leading identity with probability 1/2, the other
#: positions uniform over the choices but identity. The paper is silent.
INITIAL_OPERATIONS = ("uniform", "authors")
#: What ``'3*3 dil conv'`` builds: ``"full"``, a 3x3 convolution with dilation 2 (the paper's
#: Table I), or ``"separable"``, a depthwise-separable one (the authors' code).
DILATED_CONVS = ("full", "separable")

#: How a network's ``eval_seed`` is chosen at birth (see :func:`~deapnas.methods.minigen.ea_minigen`).
SEEDINGS = ("encoding", "fixed", "fresh")
#: Which networks above the win threshold count as winners (see :func:`~deapnas.methods.minigen.ea_minigen`): every
#: member of a generation, or only each generation's best (the authors' code).
WINNER_RULES = ("every", "best")

#: The mini dataset's file in the run directory.
MINI_FILE = "mini-dataset.pt"
#: What the final pick maximises among the winners (see :func:`~deapnas.methods.minigen.pick_network`).
PICKS = ("accuracy", "ratio")
#: The paper preset's budget in generations after the first: four of the paper's 25-generation
#: rounds (it found its ten winners within one), since the stop rule alone never ends a search
#: whose networks never pass the win threshold.
PAPER_GENERATIONS = 100


@dataclass
class Options(TrainingOptions):
    """MiniGen; every default is the paper's (sections III-C and IV): n = 15, k = 5, decay
    0.01, restarts after 25 generations (keep the top 5 when the best exceeds 35 %), stop when
    10 networks exceed 40 %, 20 epochs on 100 images per class, scored on 10 per class,
    deterministic training, P_c = 0.3, P_o = 0.5, P_b = 0.2."""

    epochs: int = option(20, "training epochs per network on the mini training set (E_mini)",
                         minimum=1, maximum=limits.MAX_EPOCHS)
    max_params: int = option(0, "networks with more parameters fail without training (0: no "
                             "cap, as in the paper)", minimum=0, maximum=limits.MAX_PARAMETERS)
    deterministic: bool = option(True, "only deterministic kernels, so that an encoding always "
                                 "scores the same and a survivor's score is looked up, not "
                                 "retrained")
    population: int = option(15, "population n", minimum=2, maximum=limits.MAX_POPULATION)
    keep: int = option(5, "networks k kept by their score ps each generation and at a restart",
                       minimum=1, maximum=limits.MAX_POPULATION)
    decay: float = option(0.01, "ps's penalty per generation of a network's age (eq. 1)",
                          minimum=0, maximum=limits.MAX_FACTOR)
    temperature: float = option(1.0, "temperature of the softmax that draws parents (eq. 2 as "
                                "printed and the authors' code: 1, on accuracies as fractions, "
                                "nearly uniform; 0.01 reads it in percent)",
                                positive=True, maximum=limits.MAX_FACTOR)
    restart_period: int = option(25, "generations per round; then a restart",
                                 minimum=1, maximum=limits.MAX_EVALUATIONS)
    restart_threshold: float = option(0.35, "a round whose best accuracy exceeds this keeps its "
                                      "top k at the restart; else a random population (an "
                                      "accuracy: a fraction)", minimum=0, maximum=1)
    win_threshold: float = option(0.40, "a network whose mean accuracy exceeds this is a winner "
                                  "(a fraction)", minimum=0, maximum=1)
    wins_needed: int = option(10, "stop once this many distinct networks won",
                              minimum=1, maximum=limits.MAX_EVALUATIONS)
    count_winners: str = option("every", "which networks above --win-threshold win: every "
                                "member of a generation (the paper's text), or only each "
                                "generation's best (the authors' code)", choices=WINNER_RULES)
    generations: Optional[int] = option(None, "stop after this many generations after the first "
                                        "(unset: the paper's stop rule and --evaluations)",
                                        minimum=0, maximum=limits.MAX_EVALUATIONS)
    train_per_class: int = option(100, "mini training set: images per class",
                                  minimum=1, maximum=limits.MAX_PER_CLASS)
    score_per_class: int = option(10, "mini scoring set: images per class",
                                  minimum=1, maximum=limits.MAX_PER_CLASS)
    score_from: str = option("train", "where the scoring images come from: the training split "
                             "(disjoint from the mini training set), or the test split as in "
                             "the paper (the search then selects on test images)",
                             choices=MINI_SCORE_SOURCES)
    mini_dataset: Optional[str] = option(None, "a mini dataset saved by another run (its "
                                         f"{MINI_FILE}), so that runs compare on the same images "
                                         "(unset: drawn from --seed)")
    widths: str = option(",".join(map(str, CHANNELS)), "the channel sizes c_i a normal "
                         "cell draws from, comma-separated (the authors' code's list)")
    cell_blocks: str = option("1,1,1,1,1", "b_i of each cell, comma-separated, the input cell's (1) "
                         "first: more cells or blocks scale the networks up (section IV-C)")
    min_actions: int = option(2, "fewest operations in a normal cell's action list",
                              minimum=1, maximum=limits.MAX_ACTIONS)
    max_actions: int = option(4, "most operations in a normal cell's action list",
                              minimum=1, maximum=limits.MAX_ACTIONS)
    p_channels: float = option(0.3, "P_c: a cell's width is redrawn", minimum=0, maximum=1)
    p_op: float = option(0.5, "P_o: each operation is redrawn", minimum=0, maximum=1)
    p_actions: float = option(0.2, "P_b: a cell's whole action list is regenerated", minimum=0,
                              maximum=1)
    cell_swap: float = option(0.5, "uniform crossover: each cell comes from the second parent "
                              "with this probability", minimum=0, maximum=1)
    initial_operations: str = option("authors", "how random action lists are drawn: the "
                                     "authors' (a leading identity, a residual block, half the "
                                     "time) or uniform over each position's choices (identity "
                                     "leads 1/5 of input cells, 1/9 of normal cells); the paper "
                                     "is silent", choices=INITIAL_OPERATIONS)
    dilated_conv: str = option("full", "what '3*3 dil conv' builds: a full 3x3 convolution "
                               "with dilation 2 (the paper's Table I) or a depthwise-separable "
                               "one (the authors' code)", choices=DILATED_CONVS)
    repeat_parents: bool = option(False, "a child's two parents may be one network drawn twice "
                                  "(the paper draws 'two parent networks')")
    seeding: str = option("encoding", "each network's training seed: derived from its encoding "
                          "(an encoding always trains the same), 0 for all, or a fresh draw",
                          choices=SEEDINGS)
    pick_by: str = option("accuracy", "the final pick among the winners: the best mean "
                          "accuracy, or the best accuracy per parameter (Table III's order)",
                          choices=PICKS)
    final_epochs: int = option(340, "final training: epochs of `deapnas train`'s training of "
                               "the pick on the full data, with the search's recipe (paper: "
                               "340)", minimum=1, maximum=limits.MAX_EPOCHS)

    def validate(self, config) -> None:
        parents = 1 if self.repeat_parents else 2
        if not parents <= self.keep < self.population:
            raise ValueError(f"--keep must lie between {parents} (the parents of a child) and "
                             f"--population - 1 ({self.population - 1}), not {self.keep}")
        if self.min_actions > self.max_actions:
            raise ValueError(f"--min-actions ({self.min_actions}) exceeds --max-actions "
                             f"({self.max_actions})")
        if config.objective_names[0] != "accuracy":
            raise ValueError("minigen scores networks by their accuracy: --objectives must "
                             "start with accuracy (e.g. accuracy,params)")
        self.operators()

    def operators(self) -> dict:
        """The keywords of :func:`register_operators` these options give."""
        blocks = _integers(self.cell_blocks, "--cell-blocks", limits.MAX_BLOCKS)
        if len(blocks) > limits.MAX_CELLS:
            raise ValueError(f"--cell-blocks lists {len(blocks)} cells, more than the limit of "
                             f"{limits.MAX_CELLS} (deapnas.limits.MAX_CELLS)")
        if blocks[0] != 1:
            raise ValueError(f"--cell-blocks must start with the input cell's 1, not "
                             f"{self.cell_blocks}")
        return dict(blocks=blocks, channels=_integers(self.widths, "--widths", limits.MAX_CHANNELS),
                    actions=(self.min_actions, self.max_actions), p_channels=self.p_channels,
                    p_op=self.p_op, p_actions=self.p_actions, indpb=self.cell_swap,
                    temperature=self.temperature, distinct_parents=not self.repeat_parents,
                    initial=self.initial_operations)


def _integers(text: str, flag: str, maximum: int) -> tuple[int, ...]:
    """``"24,40,64"`` as ``(24, 40, 64)``; a ``ValueError`` naming ``flag`` otherwise, or for a
    value above ``maximum``."""
    try:
        values = tuple(int(part) for part in text.split(","))
    except ValueError:
        values = ()
    if not values or min(values) < 1 or max(values) > maximum:
        raise ValueError(f"{flag} takes positive integers up to {maximum} separated by commas "
                         f"(e.g. 24,40,64), not {text!r}")
    return values


#: What a MiniGen fitness is: the accuracy on the mini dataset's scoring images.
FITNESS_NAME = "mini-set accuracy"

METHOD = Method(
    "minigen", Options, Later(MACHINERY, "search"), Later(MACHINERY, "pick"),
    presets={"paper": dict(dataset="cifar10", generations=PAPER_GENERATIONS),
             "tiny": dict(dataset="digits", evaluations=60, population=10, keep=5, epochs=10,
                          batch_size=20, train_per_class=30, score_per_class=10,
                          widths="8,16,24,32", restart_period=5, restart_threshold=0.8,
                          win_threshold=0.9, wins_needed=8, final_epochs=20)},
    spaces=("minigen",), tabular=False, multi_objective=True,
    evaluator=Later(MACHINERY, "evaluator"),
    fitness_name=FITNESS_NAME,
    description="MiniGen: a genetic search on a stratified mini dataset with an age-decayed "
                "score (Zhang et al., 2024)")
