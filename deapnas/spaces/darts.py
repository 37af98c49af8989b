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

:func:`build_network` builds DARTS' evaluation network (:class:`DartsNetwork`, DARTS'
``NetworkCIFAR``), in which EG-NAS retrains its pick and :mod:`deapnas.published.egnas` builds
the published genotypes.
"""
from __future__ import annotations

import random
from typing import Callable, Optional, Sequence

import networkx as nx
import torch
from torch import nn

from ..compiler import compile_graph
from ..networks import AuxiliaryHead, GlobalAveragePool
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


def cell_inputs(c_prev_prev: int, c_prev: int, channels: int, reduction_prev: bool,
                affine: bool = True) -> tuple[nn.Module, nn.Module]:
    """DARTS' preprocessing of a cell's two inputs to the cell's width: the output of the cell
    before the previous one through :class:`FactorizedReduce` when the previous cell reduced
    (it is then twice the size), else through ReLU, 1x1 convolution, BatchNorm; the previous
    cell's output through ReLU, 1x1 convolution, BatchNorm. ``affine``: whether the batch norms
    learn a scale and shift (DARTS: in the evaluation network, not in the search network)."""
    def relu_conv_bn(c_in: int) -> nn.Module:
        return nn.Sequential(nn.ReLU(), nn.Conv2d(c_in, channels, 1, bias=False),
                             nn.BatchNorm2d(channels, affine=affine))

    first = (FactorizedReduce(c_prev_prev, channels, affine) if reduction_prev else
             relu_conv_bn(c_prev_prev))
    return first, relu_conv_bn(c_prev)


def skeleton(layers: int) -> list[tuple[bool, bool]]:
    """``(reduction, reduction_prev)`` of each of DARTS' ``layers`` cells: the reduction cells
    sit at ``layers // 3`` and ``2 * layers // 3`` (DARTS' search and evaluation networks)."""
    reductions = (layers // 3, 2 * layers // 3)
    return [(index in reductions, index - 1 in reductions) for index in range(layers)]


class DartsCell(nn.Module):
    """One cell of DARTS' evaluation network: :func:`cell_inputs`, then the genotype's cell
    compiled at ``width`` (``body``, a :class:`~deapnas.graph.GraphModule`, where drop-path
    acts)."""

    def __init__(self, genotype: Genotype, kind: str, c_prev_prev: int, c_prev: int,
                 width: int, reduction_prev: bool, size: tuple[int, int]):
        super().__init__()
        self.preprocess0, self.preprocess1 = cell_inputs(c_prev_prev, c_prev, width,
                                                         reduction_prev)
        self.body = compile_graph(to_graph(genotype, kind), [(width, *size)] * 2)

    @property
    def output_shape(self) -> Shape:
        return self.body.output_shape

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        return self.body(self.preprocess0(s0), self.preprocess1(s1))


class DartsNetwork(nn.Module):
    """DARTS' evaluation network (``NetworkCIFAR`` of Liu et al., 2019), which EG-NAS retrains:
    a stem of one 3x3 convolution to 3C channels and BatchNorm, ``layers`` cells (reductions at
    1/3 and 2/3 of the depth, each doubling the width; every cell reads the two previous
    outputs through :func:`cell_inputs`), global average pooling and a linear classifier.

    With ``auxiliary``, DARTS' auxiliary classifier (:class:`~deapnas.networks.AuxiliaryHead`)
    reads the output of the second reduction cell, and in training the network returns
    ``(logits, auxiliary logits)``; DARTS counts parameters without it
    (:func:`~deapnas.networks.inference_parameters`).
    """

    def __init__(self, genotype: Genotype, input_shape: Shape, num_classes: int,
                 channels: int = 36, layers: int = 20, auxiliary: bool = False):
        super().__init__()
        stem = 3 * channels
        self.stem = nn.Sequential(nn.Conv2d(input_shape[0], stem, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(stem))
        shapes = [(stem, *input_shape[1:])] * 2
        self.cells = nn.ModuleList()
        width = channels
        for index, (reduction, reduction_prev) in enumerate(skeleton(layers)):
            width *= 2 if reduction else 1
            cell = DartsCell(genotype, "reduce" if reduction else "normal", shapes[-2][0],
                             shapes[-1][0], width, reduction_prev, shapes[-1][1:])
            self.cells.append(cell)
            shapes.append(cell.output_shape)
            if reduction:
                self.auxiliary_after = index
        self.classifier = nn.Sequential(GlobalAveragePool(), nn.Linear(shapes[-1][0],
                                                                       num_classes))
        self.auxiliary = (AuxiliaryHead(shapes[self.auxiliary_after + 2][0], num_classes)
                          if auxiliary else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        s0 = s1 = self.stem(x)
        auxiliary = None
        for index, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1)
            if self.auxiliary is not None and self.training and index == self.auxiliary_after:
                auxiliary = self.auxiliary(s1)
        logits = self.classifier(s1)
        return logits if auxiliary is None else (logits, auxiliary)


def build_network(genotype: Genotype, input_shape: Shape, num_classes: int,
                  channels: int = 36, layers: int = 20, auxiliary: bool = False
                  ) -> DartsNetwork:
    """DARTS' evaluation network (:class:`DartsNetwork`) of ``layers`` cells (DARTS
    retraining: C = 36, 20 cells) with reduction cells at 1/3 and 2/3 of the depth, so
    ``layers`` must be 3k + 2; with ``auxiliary``, DARTS' auxiliary classifier after the second
    reduction."""
    if layers < 2 or (layers - 2) % 3:
        raise ValueError(f"layers must be 3k + 2 (2, 5, 8, ..., 20) so that the two reduction "
                         f"cells sit at 1/3 and 2/3 of the depth, not {layers}")
    return DartsNetwork(genotype, input_shape, num_classes, channels, layers, auxiliary)


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
