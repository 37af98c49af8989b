"""The DARTS cell space (Liu, Simonyan & Yang, 2019): a normal and a reduction cell, each with
two inputs (the outputs of the two previous cells, numbered 0 and 1) and four intermediate nodes
(2 to 5); every intermediate node sums two operations applied to earlier nodes, and the cell
outputs the concatenation of its intermediate nodes.

A genome is a :class:`Genotype`, printed in the DARTS format::

    Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ...], normal_concat=[2, 3, 4, 5],
             reduce=[('max_pool_3x3', 0), ...], reduce_concat=[2, 3, 4, 5])

``normal[2 * i]`` and ``normal[2 * i + 1]`` are the ``(operation, input)`` pairs of node
``2 + i``. Register it like any DEAP representation::

    creator.create("Individual", darts.Genotype, fitness=creator.FitnessMax)
    toolbox.register("individual", darts.init_genotype, creator.Individual)
    toolbox.register("mutate", darts.mutate)

The module registers three operations of the DARTS papers in :mod:`deapnas.ops`; they are
generic convolution blocks that any space may use: ``darts_sep_conv`` (separable convolution,
applied twice), ``darts_dil_conv`` (dilated depthwise-separable convolution) and
``darts_factorized_reduce`` (a stride-2 1x1 convolution in two offset halves).
"""
from __future__ import annotations

import random
from typing import Callable, Optional, Sequence

import networkx as nx
import torch
from torch import nn

from ..networks import CellNetwork
from ..ops import Shape, conv_shape, register_op
from .space import Space

#: The operations of the DARTS search (the supernet's columns, in the DARTS order).
OPS = ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5",
       "dil_conv_3x3", "dil_conv_5x5")
#: The operations a derived cell may hold (``none`` is never selected).
CELL_OPS = OPS[1:]
NODES = 4
#: The inputs of each intermediate node, in the order of the 14 edges of a cell.
EDGES = tuple((source, node) for node in range(2, 2 + NODES) for source in range(node))
CONCAT = tuple(range(2, 2 + NODES))
CELLS = ("normal", "reduce")


# -- the DARTS operations -----------------------------------------------------------------------

def sep_conv(c_in: int, kernel: int, stride: int = 1, channels: Optional[int] = None,
             affine: bool = True) -> nn.Module:
    """DARTS' separable convolution, applied twice: (ReLU, depthwise k x k, pointwise 1 x 1,
    BatchNorm) x 2; only the first depthwise convolution strides."""
    channels = channels or c_in
    padding = (kernel - 1) // 2

    def half(c_from: int, c_to: int, step: int) -> list[nn.Module]:
        return [nn.ReLU(), nn.Conv2d(c_from, c_from, kernel, step, padding, groups=c_from,
                                     bias=False),
                nn.Conv2d(c_from, c_to, 1, bias=False), nn.BatchNorm2d(c_to, affine=affine)]

    return nn.Sequential(*half(c_in, c_in, stride), *half(c_in, channels, 1))


def dil_conv(c_in: int, kernel: int, stride: int = 1, dilation: int = 2,
             channels: Optional[int] = None, affine: bool = True) -> nn.Module:
    """DARTS' dilated convolution: ReLU, depthwise k x k with ``dilation``, pointwise 1 x 1,
    BatchNorm."""
    channels = channels or c_in
    return nn.Sequential(
        nn.ReLU(), nn.Conv2d(c_in, c_in, kernel, stride, dilation * (kernel - 1) // 2, dilation,
                             groups=c_in, bias=False),
        nn.Conv2d(c_in, channels, 1, bias=False), nn.BatchNorm2d(channels, affine=affine))


class FactorizedReduce(nn.Module):
    """Halves the spatial size without discarding pixels: ReLU, then two 1x1 stride-2
    convolutions, the second shifted by one pixel, concatenated, then BatchNorm. (DARTS' skip
    connection in a reduction cell.) Odd sizes are padded, so the output is ceil(h / 2)."""

    def __init__(self, c_in: int, channels: Optional[int] = None, affine: bool = True):
        super().__init__()
        channels = channels or c_in
        self.relu = nn.ReLU()
        self.even = nn.Conv2d(c_in, channels // 2, 1, 2, bias=False)
        self.odd = nn.Conv2d(c_in, channels - channels // 2, 1, 2, bias=False)
        self.bn = nn.BatchNorm2d(channels, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        shifted = nn.functional.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:]
        return self.bn(torch.cat([self.even(x), self.odd(shifted)], dim=1))


def _halved(in_shape: Shape, channels: Optional[int] = None, **_) -> Shape:
    return conv_shape(in_shape, channels, stride=2)


register_op("darts_sep_conv", sep_conv, conv_shape)
register_op("darts_dil_conv", dil_conv, conv_shape)
register_op("darts_factorized_reduce", FactorizedReduce, _halved)


def node_spec(op: str, stride: int = 1, affine: bool = True) -> dict:
    """Compiler node attributes (``op``, ``args``) of the DARTS operation ``op`` at ``stride``
    (2 on the edges a reduction cell takes from its inputs)."""
    pool = {"kernel": 3, "stride": stride, "padding": 1}
    specs = {
        "max_pool_3x3": {"op": "pool", "args": {"kind": "max", **pool}},
        "avg_pool_3x3": {"op": "pool", "args": {"kind": "avg", **pool}},
        "skip_connect": ({"op": "identity", "args": {}} if stride == 1 else
                         {"op": "darts_factorized_reduce", "args": {"affine": affine}}),
        "sep_conv_3x3": {"op": "darts_sep_conv", "args": {"kernel": 3, "stride": stride,
                                                          "affine": affine}},
        "sep_conv_5x5": {"op": "darts_sep_conv", "args": {"kernel": 5, "stride": stride,
                                                          "affine": affine}},
        "dil_conv_3x3": {"op": "darts_dil_conv", "args": {"kernel": 3, "stride": stride,
                                                          "affine": affine}},
        "dil_conv_5x5": {"op": "darts_dil_conv", "args": {"kernel": 5, "stride": stride,
                                                          "affine": affine}},
    }
    if op not in specs:
        raise ValueError(f"{op!r} is not an operation of a DARTS cell; use one of "
                         f"{', '.join(CELL_OPS)}")
    return specs[op]


# -- the genotype -------------------------------------------------------------------------------

class Genotype:
    """A DARTS genotype: ``(operation, input)`` pairs of the normal and the reduction cell, two
    per intermediate node, and the nodes each cell concatenates into its output."""

    def __init__(self, normal: Sequence = (), normal_concat: Sequence[int] = CONCAT,
                 reduce: Sequence = (), reduce_concat: Sequence[int] = CONCAT):
        self.normal = [(str(op), int(source)) for op, source in normal]
        self.reduce = [(str(op), int(source)) for op, source in reduce]
        self.normal_concat = [int(n) for n in normal_concat]
        self.reduce_concat = [int(n) for n in reduce_concat]

    def cell(self, name: str) -> tuple[list, list]:
        """The pairs and the concatenated nodes of cell ``"normal"`` or ``"reduce"``."""
        if name not in CELLS:
            raise ValueError(f"cell must be one of {', '.join(CELLS)}, not {name!r}")
        return getattr(self, name), getattr(self, f"{name}_concat")

    def __eq__(self, other) -> bool:
        return isinstance(other, Genotype) and to_json(self) == to_json(other)

    __hash__ = None  # mutable, like a DEAP list individual

    def __repr__(self) -> str:
        return (f"Genotype(normal={self.normal}, normal_concat={self.normal_concat}, "
                f"reduce={self.reduce}, reduce_concat={self.reduce_concat})")


def _random_cell() -> list[tuple[str, int]]:
    pairs = []
    for node in range(2, 2 + NODES):
        pairs += [(random.choice(CELL_OPS), source) for source in random.sample(range(node), 2)]
    return pairs


def init_genotype(container: Callable[..., Genotype] = Genotype) -> Genotype:
    """A random genotype: every node takes two distinct earlier nodes, each through an
    operation drawn uniformly from :data:`CELL_OPS`."""
    return container(normal=_random_cell(), reduce=_random_cell())


def mutate(individual: Genotype, p_op: float = 0.5) -> tuple[Genotype]:
    """Change one random pair of one random cell: its operation with probability ``p_op``,
    otherwise its input (to an earlier node that the node's other pair does not use; the
    operation changes instead where no such node exists)."""
    pairs = getattr(individual, random.choice(CELLS))
    slot = random.randrange(len(pairs))
    op, source = pairs[slot]
    node, other = 2 + slot // 2, pairs[slot ^ 1][1]
    inputs = [n for n in range(node) if n not in (source, other)]
    if random.random() < p_op or not inputs:
        pairs[slot] = (random.choice([o for o in CELL_OPS if o != op]), source)
    else:
        pairs[slot] = (op, random.choice(inputs))
    return individual,


# -- genotype -> graph -> network ---------------------------------------------------------------

def to_graph(genotype: Genotype, cell: str = "normal", affine: bool = True) -> nx.DiGraph:
    """One cell of the genotype as a compiler graph with two inputs (0: the cell before the
    previous one, 1: the previous one): an op node per pair, the intermediate nodes 2-5 summing
    their pairs, and ``"out"`` concatenating the cell's concat nodes. In the reduction cell the
    operations fed by the inputs have stride 2."""
    pairs, concat = genotype.cell(cell)
    graph = nx.DiGraph(inputs=[0, 1], output="out")
    graph.add_nodes_from([0, 1])
    graph.add_nodes_from((node, {"op": "identity", "combine": "sum"})
                         for node in range(2, 2 + len(pairs) // 2))
    for slot, (op, source) in enumerate(pairs):
        target = 2 + slot // 2
        stride = 2 if cell == "reduce" and source < 2 else 1
        name = f"{target}.{slot % 2}:{op}"
        graph.add_node(name, label=op_label(op, stride), **node_spec(op, stride, affine))
        graph.add_edges_from([(source, name), (name, target)])
    graph.add_node("out", op="identity", combine="concat")
    graph.add_edges_from((node, "out") for node in concat)
    return graph


def op_label(op: str, stride: int = 1) -> str:
    """How a drawing names ``op`` applied with ``stride``: a stride-2 operation says so, and a
    skip connection at stride 2 is the factorized reduction (two 1x1 convolutions of stride 2)
    it becomes."""
    if stride == 1:
        return op
    return ("factorized_reduce" if op == "skip_connect" else op) + f" stride {stride}"


def cells(genotype: Genotype) -> dict[str, nx.DiGraph]:
    """``{"normal": graph, "reduce": graph}``: both cells, as ``deapnas show`` draws them."""
    return {name: to_graph(genotype, name) for name in CELLS}


def build_network(genotype: Genotype, input_shape: Shape, num_classes: int,
                  channels: int = 36, layers: int = 20, auxiliary: bool = False
                  ) -> CellNetwork:
    """The network of ``layers`` cells (DARTS retraining: C = 36, 20 cells) with reduction
    cells at 1/3 and 2/3 of the depth, so ``layers`` must be 3k + 2; with ``auxiliary``, DARTS'
    auxiliary classifier after the second reduction (see :class:`~deapnas.networks.CellNetwork`)."""
    if layers < 2 or (layers - 2) % 3:
        raise ValueError(f"layers must be 3k + 2 (2, 5, 8, ..., 20) so that the two reduction "
                         f"cells sit at 1/3 and 2/3 of the depth, not {layers}")
    return CellNetwork(input_shape, num_classes, to_graph(genotype, "normal"),
                       to_graph(genotype, "reduce"), channels=channels,
                       cells_per_stage=(layers - 2) // 3, auxiliary=auxiliary)


def key(genotype: Genotype) -> str:
    """The DARTS-format string of the genotype with each node's two pairs sorted (their order
    does not change the network)."""
    canonical = Genotype(_node_sorted(genotype.normal), sorted(genotype.normal_concat),
                         _node_sorted(genotype.reduce), sorted(genotype.reduce_concat))
    return repr(canonical)


def _node_sorted(pairs: list) -> list:
    return [pair for i in range(0, len(pairs), 2) for pair in sorted(pairs[i:i + 2])]


def to_json(genotype: Genotype) -> dict:
    """``{"normal": [[op, input], ...], "normal_concat": [...], "reduce": ..., ...}``."""
    return {"normal": [list(pair) for pair in genotype.normal],
            "normal_concat": list(genotype.normal_concat),
            "reduce": [list(pair) for pair in genotype.reduce],
            "reduce_concat": list(genotype.reduce_concat)}


def from_json(data: dict, container: Callable[..., Genotype] = Genotype) -> Genotype:
    """Inverse of :func:`to_json`; raises ``ValueError`` on anything that is not a DARTS
    genotype."""
    try:
        genotype = container(normal=data["normal"], normal_concat=data["normal_concat"],
                             reduce=data["reduce"], reduce_concat=data["reduce_concat"])
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"not a DARTS genotype ({error!r}): expected normal, reduce, "
                         f"normal_concat and reduce_concat, pairs as [op, input]") from None
    for name in CELLS:
        _check_cell(name, *genotype.cell(name))
    return genotype


def _check_cell(name: str, pairs: list, concat: list) -> None:
    if len(pairs) != 2 * NODES:
        raise ValueError(f"the {name} cell needs {2 * NODES} pairs, not {len(pairs)}")
    for slot, (op, source) in enumerate(pairs):
        node = 2 + slot // 2
        if op not in CELL_OPS:
            raise ValueError(f"{name} pair {slot}: unknown operation {op!r}; use one of "
                             f"{', '.join(CELL_OPS)}")
        if not 0 <= source < node:
            raise ValueError(f"{name} pair {slot}: node {node} cannot take input {source}")
    if not concat or any(n not in CONCAT for n in concat):
        raise ValueError(f"{name}_concat must list nodes among {list(CONCAT)}, not {concat}")


SPACE = Space(
    "darts", Genotype, init_genotype, mutate, to_graph, build_network, key, to_json, from_json,
    cells=cells, network_options={"channels": "channels", "cells": "layers"},
    description="DARTS normal and reduction cells (Liu et al., 2019); EG-NAS derives them")
