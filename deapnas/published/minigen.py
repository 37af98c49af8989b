"""MiniGen's ten networks (Zhang, Ebadi & Jing, 2024, Table III), rebuilt by deapnas.

The paper reports the ten networks' sizes and accuracies in its Table III and points to the
authors' repository (https://github.com/yqjing/Neural_architecture_search, README) for their
encodings, listed there in the order of Table III's index (the README's network n is Index
n - 1). Both write the input cell's channel size as a number (``128``; the authors' code mutates
it although it is ignored); :func:`deapnas.spaces.minigen.from_json` reads that notation.

Each network is built for CIFAR-10 (3 x 32 x 32 images, 10 classes) two ways:

- :func:`authors_network`, the way the authors' code builds it: ``'3*3 dil conv'``
  depthwise-separable and the normal cells with the blocks 1, 2, 3, 4 that the authors'
  encoding generator gives them (the printed encodings say 1);
- :func:`printed_network`, the encoding as printed, read as the paper describes it: one block
  per cell and Table I's full dilated convolution.
"""
from __future__ import annotations

import copy
from functools import partial

from torch import nn

from ..spaces import minigen
from . import PublishedNetwork

SOURCE = "Zhang, Ebadi & Jing (2024), Table III; encodings from the authors' README"
#: The blocks b_i the authors' encoding generator gives the five cells.
AUTHORS_BLOCKS = (1, 1, 2, 3, 4)
#: CIFAR-10's images and classes, the paper's final settings.
IMAGES, CLASSES = (3, 32, 32), 10

#: Table III's index -> (the encoding as the authors' README prints it, the parameters in
#: millions Table III reports).
ENCODINGS = {
    0: ([[24, 1, ['identity', '5*5 conv', '5*5 conv']],
         [256, 1, ['3*3 dil conv', '3*3 conv']],
         [40, 1, ['3*3 maxpool', '3*3 dil conv', '3*3 avgpool']],
         [128, 1, ['5*5 conv', '3*3 maxpool', '3*3 avgpool']],
         [64, 1, ['identity', '3*3 avgpool']]], 2.4),
    1: ([[128, 1, ['identity', '3*3 conv', '3*3 conv']],
         [256, 1, ['3*3 avgpool', '3*3 maxpool', '3*3 dil conv', '3*3 dil conv']],
         [40, 1, ['3*3 avgpool', '3*3 dil conv', '5*5 dconv']],
         [128, 1, ['5*5 dconv', '3*3 conv']],
         [64, 1, ['1*7-7*1 conv', '3*3 avgpool', '3*3 avgpool']]], 0.9),
    2: ([[128, 1, ['identity', '5*5 conv', '5*5 conv']],
         [256, 1, ['3*3 dconv', '3*3 maxpool', '3*3 dil conv', '3*3 dconv']],
         [40, 1, ['identity', '3*3 conv', '5*5 dconv']],
         [128, 1, ['5*5 dconv', '3*3 conv']],
         [40, 1, ['5*5 dconv', '3*3 dconv', '3*3 avgpool']]], 1.1),
    3: ([[128, 1, ['identity', '5*5 conv', '3*3 dconv']],
         [128, 1, ['3*3 conv', '5*5 dconv']],
         [80, 1, ['identity', '3*3 dconv']],
         [256, 1, ['3*3 maxpool', '3*3 avgpool', '3*3 conv']],
         [256, 1, ['5*5 dconv', '5*5 conv']]], 5.3),
    4: ([[128, 1, ['identity', '3*3 conv', '5*5 dconv']],
         [40, 1, ['3*3 conv', '5*5 dconv']],
         [128, 1, ['5*5 dconv', '5*5 dconv', '5*5 dconv']],
         [256, 1, ['1*7-7*1 conv', '5*5 dconv', '3*3 dconv']],
         [256, 1, ['identity', '3*3 conv', '5*5 dconv']]], 4.0),
    5: ([[40, 1, ['identity', '3*3 conv', '5*5 dconv']],
         [40, 1, ['identity', '3*3 maxpool']],
         [40, 1, ['3*3 dil conv', '3*3 avgpool']],
         [256, 1, ['identity', '3*3 avgpool', '3*3 avgpool', '1*7-7*1 conv']],
         [40, 1, ['5*5 dconv', '3*3 conv', '3*3 maxpool']]], 1.9),
    6: ([[24, 1, ['identity', '3*3 conv', '5*5 conv']],
         [256, 1, ['1*7-7*1 conv', '3*3 dconv']],
         [80, 1, ['3*3 dil conv', '3*3 conv']],
         [256, 1, ['3*3 conv', '3*3 maxpool', '3*3 avgpool', '1*7-7*1 conv']],
         [24, 1, ['identity', '3*3 maxpool']]], 5.4),
    7: ([[24, 1, ['identity', '3*3 dconv', '5*5 dconv']],
         [128, 1, ['3*3 maxpool', '3*3 dil conv']],
         [64, 1, ['5*5 dconv', '3*3 dil conv']],
         [128, 1, ['identity', '1*7-7*1 conv', '3*3 conv']],
         [64, 1, ['3*3 avgpool', '3*3 maxpool']]], 0.9),
    8: ([[256, 1, ['identity', '3*3 conv', '5*5 conv']],
         [40, 1, ['identity', '3*3 maxpool']],
         [80, 1, ['3*3 avgpool', '3*3 avgpool']],
         [128, 1, ['3*3 dil conv', '5*5 dconv', '3*3 maxpool']],
         [80, 1, ['3*3 conv', '1*7-7*1 conv', '3*3 dil conv', '5*5 conv']]], 0.9),
    9: ([[80, 1, ['identity', '3*3 conv', '5*5 conv']],
         [128, 1, ['identity', '3*3 avgpool']],
         [256, 1, ['5*5 dconv', '5*5 dconv']],
         [256, 1, ['1*7-7*1 conv', '5*5 dconv', '3*3 avgpool']],
         [64, 1, ['3*3 conv', '5*5 dconv', '3*3 avgpool']]], 3.0),
}
#: The networks whose count deapnas reproduces within Table III's rounding (0.05 M).
MATCHING = (1,)


def authors_network(encoding: list) -> nn.Module:
    """``encoding`` (the paper's notation) built as the authors' code builds it: the blocks of
    :data:`AUTHORS_BLOCKS` and depthwise-separable dilated convolutions."""
    cells = copy.deepcopy(encoding)
    for cell, blocks in zip(cells, AUTHORS_BLOCKS):
        cell[1] = blocks
    return minigen.build_network(minigen.from_json(cells), IMAGES, CLASSES,
                                 dilated_conv="separable")


def printed_network(encoding: list) -> nn.Module:
    """``encoding`` built as printed, with the paper's Table I (full dilated convolutions)."""
    return minigen.build_network(minigen.from_json(encoding), IMAGES, CLASSES)


def _why(index: int, authors: bool) -> str:
    if not authors:
        return ("as printed: one block per cell, full dilated convolutions (Table I); the "
                "authors' code built more")
    if index in MATCHING:
        return "the authors' blocks 1, 2, 3, 4 and separable dilated convolutions"
    return ("the authors' blocks and separable dilated convolutions; no reading of the printed "
            "encoding gives Table III's count (see the page)")


NETWORKS = [
    PublishedNetwork(
        name=f"Index {index}{'' if authors else ', as printed'}", source=SOURCE,
        paper_parameters=millions * 1e6, reported_as=f"{millions} M",
        build=partial(authors_network if authors else printed_network, encoding),
        why=_why(index, authors))
    for authors in (True, False) for index, (encoding, millions) in ENCODINGS.items()]
