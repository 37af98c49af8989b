"""RENAS's own network (Chen et al., 2019): RENASNet, the cell of its Fig. 3, at the paper's
CIFAR-10 size (N = 6, F = 32: 3.5 M parameters, its Table 1).

The paper draws the cell; the authors' released code (github.com/yukang2017/RENAS,
``symbol_renasnet.py``, the list ``renasnet``, used as both the normal and the reduction cell)
spells it as ``[operation, input]`` pairs, which :data:`RENASNET` writes in the nasnet space's
``[i1, i2, o1, o2]`` blocks (input 0 is the cell before the previous one, 1 the previous cell,
k >= 2 block k - 2).
"""
from __future__ import annotations

from torch import nn

from ..methods.renas import Options
from ..spaces import nasnet
from . import PublishedNetwork

#: RENASNet's cell: five blocks ``[i1, i2, o1, o2]``.
RENASNET = [[0, 1, "sep_conv_5x5", "sep_conv_3x3"],
            [1, 1, "identity", "sep_conv_3x3"],
            [0, 0, "sep_conv_3x3", "avg_pool_3x3"],
            [1, 0, "sep_conv_5x5", "sep_conv_3x3"],
            [2, 2, "identity", "sep_conv_3x3"]]

#: CIFAR-10's images and classes.
CIFAR10 = ((3, 32, 32), 10)


def final_network(cell: list, stem_multiplier: int | None = None, auxiliary: bool = False
                  ) -> nn.Module:
    """``cell`` (blocks as :func:`~deapnas.spaces.nasnet.from_json` reads them) in RENAS's
    final CIFAR-10 network at the method's paper settings (:class:`~deapnas.methods.renas.
    Options`: N = 6, F = 32, a stem of 3F, dropout before the classifier), with the auxiliary
    head only if ``auxiliary``: only training uses it, and parameter counts leave it out."""
    options = Options()
    return nasnet.build_network(
        nasnet.from_json(cell), *CIFAR10, channels=options.final_channels,
        cells_per_stage=options.final_cells, dropout=options.final_dropout,
        stem_multiplier=stem_multiplier or options.stem_multiplier, auxiliary=auxiliary)


NETWORKS = [
    PublishedNetwork(
        "RENASNet (N = 6, F = 32)", "Chen et al. (2019), Fig. 3 and Table 1", 3.5e6, "3.5 M",
        lambda: final_network(RENASNET),
        why="the authors' released cell in NASNet's CIFAR-10 skeleton (stem of 3F); no "
            "auxiliary head. The authors' code also adds the cell's input c-2 to each normal "
            "cell's output and makes a stride-2 identity a max pool (deapnas: a 1x1 "
            "convolution)"),
    PublishedNetwork(
        "RENASNet (N = 6, F = 32), stem of F", "Chen et al. (2019), Fig. 3 and Table 1", 3.5e6,
        "3.5 M", lambda: final_network(RENASNET, stem_multiplier=1),
        why="as above with --stem-multiplier 1: the stem's width hardly changes the count"),
    PublishedNetwork(
        "RENASNet (N = 6, F = 32), with the auxiliary head",
        "Chen et al. (2019), Fig. 3 and Table 1", 3.5e6, "3.5 M",
        lambda: final_network(RENASNET, auxiliary=True),
        why="the network deapnas train trains (--auxiliary-weight above 0): the first row with "
            "the auxiliary classifier at 2/3 of the depth, which serves training only; the "
            "paper's count, like NASNet's, leaves it out"),
]
