"""The macro regularized-evolution paper's own network (Kyriakides & Margaritis, 2020): REMNet.

The paper draws REMNet and describes it ("4 convolutions of increasing kernel size", a pool,
then "two CONV_3.H layers branching out after the pooling operation") but prints no genome; the
authors' ``train_best_architecture.py`` (github.com/GeorgeKyriakides/nord) lists its genes. They
are transcribed below in the authors' notation (their node and innovation numbers, their output
node 9999, each layer gene an index into their list of the twelve layer choices, whose order
differs from :data:`deapnas.spaces.macro.LAYERS`) and read by :func:`from_authors` into a
:class:`~deapnas.spaces.macro.MacroGenome` through the space's ``from_json``.

The paper reports 791,338 parameters at C = 128 and "3.1 million" at C = 256 on Fashion-MNIST
(28 x 28 x 1, 10 classes); both match only unpadded convolutions, the paper preset's
``conv_padding="valid"``.
"""
from __future__ import annotations

from ..spaces import macro
from . import PublishedNetwork

#: The authors' order of the twelve layer choices (their genome's ``layers_list``): a layer
#: gene holds an index into it.
AUTHORS_LAYERS = ("CONV_2.H", "CONV_3.H", "CONV_5.H", "POOL_2.A", "POOL_3.A", "POOL_5.A",
                  "CONV_2.N", "CONV_3.N", "CONV_5.N", "POOL_2.M", "POOL_3.M", "POOL_5.M")
#: The authors' input and output node numbers.
AUTHORS_INPUT, AUTHORS_OUTPUT = -2, 9999

#: REMNet's connection genes as the authors list them: ``innovation: (source, target,
#: enabled)``.
REMNET_CONNECTIONS = {
    1028: (-2, 9999, False), 1030: (-2, 1029, False), 1031: (1029, 9999, False),
    1033: (1029, 1032, True), 1034: (1032, 9999, True), 1036: (-2, 1035, False),
    1037: (1035, 1029, False), 1039: (1035, 1038, True), 1040: (1038, 1029, False),
    1302: (1038, 1301, True), 1303: (1301, 1029, True), 1305: (-2, 1304, True),
    1306: (1304, 1035, True), 1308: (1029, 1307, True), 1309: (1307, 9999, True)}
#: REMNet's layer genes as the authors list them: ``node: index into AUTHORS_LAYERS``.
REMNET_NODES = {1029: 5, 1032: 1, 1035: 6, 1038: 7, 1301: 8, 1304: 6, 1307: 1}

#: Fashion-MNIST's images and classes, on which the paper counts REMNet's parameters.
FASHION_MNIST = ((1, 28, 28), 10)


def from_authors(connections: dict, nodes: dict) -> macro.MacroGenome:
    """A genome in the authors' notation (``connections``: ``innovation: (source, target,
    enabled)``; ``nodes``: ``node: layer index``, see :data:`AUTHORS_LAYERS`) as deapnas's
    :class:`~deapnas.spaces.macro.MacroGenome`: the same node and innovation numbers, their
    output node 9999 renumbered to deapnas's -1."""
    def node(number: int) -> int:
        return macro.OUTPUT if number == AUTHORS_OUTPUT else number
    return macro.from_json({
        "layers": {str(n): AUTHORS_LAYERS[index] for n, index in nodes.items()},
        "connections": [[node(source), node(target), enabled, innovation]
                        for innovation, (source, target, enabled) in connections.items()]})


def remnet() -> macro.MacroGenome:
    """REMNet's genome (the authors' ``train_best_architecture.py``)."""
    return from_authors(REMNET_CONNECTIONS, REMNET_NODES)


def build_remnet(channels: int, padding: str = "valid"):
    """REMNet as deapnas builds it for Fashion-MNIST at width C = ``channels``."""
    return macro.build_network(remnet(), *FASHION_MNIST, channels=channels, padding=padding)


_SOURCE = "Kyriakides & Margaritis (2020), Sec. 4; genes: the authors' train_best_architecture.py"

NETWORKS = [
    PublishedNetwork("REMNet, C = 128", _SOURCE, 791_338, "791,338",
                     lambda: build_remnet(128)),
    PublishedNetwork("REMNet, C = 256", _SOURCE, 3_100_000, "3.1 M",
                     lambda: build_remnet(256),
                     why="the paper's \"3.1 million\" is this count cut (not rounded) to one "
                         "decimal; the count at C = 128 matches exactly"),
    PublishedNetwork("REMNet, C = 128, same-padded convolutions", _SOURCE, 791_338, "791,338",
                     lambda: build_remnet(128, padding="same"),
                     why="deapnas's default padding keeps the 28 x 28 size, so the flattened "
                         "output and the first fully connected layer are larger: the paper's "
                         "count needs conv_padding=valid"),
]
