"""NASGEP's published network (Alves & de Oliveira, 2020): the normal and the reduction cell of
its best CIFAR-10 model, drawn in its Figs. 4 and 5, at the final training's settings (C = 64
initial channels, N = 3 normal cells per stage, CIFAR-10's 32x32 images and 10 classes).

The paper prints no encoding, only the two trees. A cell has a head of 4 functions (``add``,
``cat``) and 5 genes; a gene a head of 1 and a tail of 2. That splits each drawn tree in one way
only: the four ``cat``/``+`` nodes nearest the root are the cell's functions, and each subtree
below them is a gene (a convolution of a convolution of an input, a sum of two terminals, or a
single convolution terminal). :data:`CELLS` writes them in the space's JSON, the genes named in
the order their subtrees appear; tail symbols that do not code repeat a coding one. In the
reduction cell every convolution that reads an input has stride 2, as Fig. 5's caption says and
as the space builds reduction genes.
"""
from __future__ import annotations

from torch import nn

from ..spaces import nasgep as space
from . import PublishedNetwork

#: Figs. 4 and 5 as a NASGEP model: the normal cell
#: cat(cat(add(nA, nB), nC), cat(nD, nE)) and the reduction cell
#: cat(cat(cat(rA, rB), rC), add(rD, rE)).
CELLS = {
    "normal": "cat cat cat add | nC nD nE nA nB",
    "reduction": "cat cat add cat | rC rD rE rA rB",
    "genes": {
        "nA": "dep5x5 | dep1x7_h1 dep1x7_h1",    # dep 5x5 (dep 1x7 (h(i-1)))
        "nB": "add | h2 dep7x1_h1",              # h(i-2) + dep 7x1 (h(i-1))
        "nC": "sep7x1_h2 | h2 h2",               # sep 7x1 (h(i-2))
        "nD": "isep1x7 | sep5x5_h1 sep5x5_h1",   # isep 1x7 (sep 5x5 (h(i-1)))
        "nE": "add | dep5x5_h2 h2",              # dep 5x5 (h(i-2)) + h(i-2)
        "rA": "add | isep3x3_h1 sep3x3_h2",      # isep 3x3/2 (h(i-1)) + sep 3x3/2 (h(i-2))
        "rB": "isep3x3 | sep5x5_h1 sep5x5_h1",   # isep 3x3 (sep 5x5/2 (h(i-1)))
        "rC": "add | isep1x7_h1 sep1x7_h1",      # isep 1x7/2 (h(i-1)) + sep 1x7/2 (h(i-1))
        "rD": "sep1x7 | isep5x5_h1 isep5x5_h1",  # sep 1x7 (isep 5x5/2 (h(i-1)))
        "rE": "isep1x7 | isep7x1_h1 isep7x1_h1",  # isep 1x7 (isep 7x1/2 (h(i-1)))
    },
}
#: The final training's network (Sec. IV-A): 64 initial channels, N = 3; CIFAR-10.
CHANNELS, CELLS_PER_STAGE, CIFAR10 = 64, 3, ((3, 32, 32), 10)


def model() -> space.Model:
    """The published cells as a model of the NASGEP space."""
    return space.from_json(CELLS)


def cifar10_network() -> nn.Module:
    """The published cells in the final training's CIFAR-10 network."""
    return space.build_network(model(), *CIFAR10, channels=CHANNELS,
                               cells_per_stage=CELLS_PER_STAGE)


NETWORKS = [
    PublishedNetwork(
        "best CIFAR-10 cells (Figs. 4, 5), C = 64, N = 3",
        "Alves & de Oliveira (2020), Figs. 4 and 5; Tables I and II",
        3.62e6, "3.62 M ± 0.18", cifar10_network,
        why="the paper's figure is the mean (± std) over the models of its five runs, not "
            "this model's count. A cell of 4 concatenated genes is 4C wide, and deapnas "
            "brings each cell input back to the stage width with its own ReLU-1x1 "
            "convolution-BN (2 per cell; their share of the count: the table of parts); the "
            "paper says only that a point-wise convolution is applied"),
]
