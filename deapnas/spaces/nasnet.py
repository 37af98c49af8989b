"""The NASNet-like block-cell space that RENAS searches (Chen et al., 2019, §3 and §5.1.4).

A cell holds B blocks. Block b takes two inputs ``i1, i2``, applies one operation to each
(``o1, o2``) and adds the results. An input is one of the two previous cells' outputs or the
output of an earlier block of the same cell; the operations are the six of :data:`OPS`. The
outputs of the blocks that no other block uses are concatenated to form the cell's output.

There is one cell type (the paper: "We use only one cell type"): the network stacks it as
normal cells (stride 1) and as reduction cells, where every operation applied to one of the
cell's two inputs has stride 2 and the cell therefore halves the size; the width doubles at
each reduction (:class:`~deapnas.networks.CellNetwork`: stem, 3 stages of N cells, F filters).

A genome is a flat list of 4B tokens, ``[i1, i2, o1, o2]`` per block. An input token is an int:
``0`` is the output of the cell before the previous one (c-2), ``1`` that of the previous cell
(c-1) and ``k >= 2`` the output of block ``k - 2``; block b (from 0) may take 0 .. b + 1. An
operation token is a name in :data:`OPS`. Register it as any DEAP list representation::

    creator.create("Individual", list, fitness=creator.FitnessMax)
    toolbox.register("individual", nasnet.init_cell, creator.Individual, blocks=5)
    toolbox.register("mutate", nasnet.mutate)   # the paper's random-mutation baseline

Operations (§5.1.4, as NASNet): convolutions are ReLU -> conv -> BN; a separable convolution
is applied twice, without BN or ReLU between its depthwise and pointwise parts (the op
``nasnet_sep_conv``, registered here); 1x1 convolutions match shapes (the cell inputs are
brought to the cell's width by :class:`~deapnas.networks.Adapt`; an identity applied with
stride 2 becomes a 1x1 ReLU-conv-BN of stride 2).
"""
from __future__ import annotations

from typing import Callable, Sequence

import networkx as nx
from torch import nn

from ..controller import GenomeLayout, init_layout, mut_layout
from ..graph import architecture_key
from ..networks import CellNetwork
from ..ops import Shape, conv_shape, register_op
from .space import Space, check_limit

OPS = ("sep_conv_3x3", "sep_conv_5x5", "sep_conv_7x7", "avg_pool_3x3", "max_pool_3x3",
       "identity")
#: Input tokens below this refer to the two previous cells; the rest to earlier blocks.
CELL_INPUTS = 2
SLOTS = ("i1", "i2", "o1", "o2")


def sep_conv(c_in: int, kernel: int, stride: int = 1) -> nn.Module:
    """NASNet's separable convolution applied twice: (ReLU -> depthwise k x k -> pointwise 1x1
    -> BN) x 2, the stride on the first depthwise convolution; the width is kept."""
    layers = []
    for step_stride in (stride, 1):
        layers += [nn.ReLU(),
                   nn.Conv2d(c_in, c_in, kernel, step_stride, kernel // 2, groups=c_in,
                             bias=False),
                   nn.Conv2d(c_in, c_in, 1, bias=False), nn.BatchNorm2d(c_in)]
    return nn.Sequential(*layers)


register_op("nasnet_sep_conv", sep_conv, conv_shape)


def op_node(name: str, stride: int = 1) -> dict:
    """Graph node attributes of operation ``name`` applied with ``stride``."""
    if name.startswith("sep_conv_"):
        return {"op": "nasnet_sep_conv", "args": {"kernel": int(name[-1]), "stride": stride}}
    if name.endswith("_pool_3x3"):
        return {"op": "pool", "args": {"kind": name[:3], "kernel": 3, "stride": stride,
                                       "padding": 1}}
    if name == "identity":
        return ({"op": "identity"} if stride == 1 else
                {"op": "relu_conv_bn", "args": {"kernel": 1, "stride": stride}})
    raise ValueError(f"unknown operation {name!r}; choose one of {', '.join(OPS)}")


# -- the genome --------------------------------------------------------------------------------

def blocks_of(cell: Sequence) -> list[list]:
    """The cell's blocks, ``[[i1, i2, o1, o2], ...]``, after checking every token; a
    ``ValueError`` says which token is wrong."""
    if not cell or len(cell) % len(SLOTS):
        raise ValueError(f"a nasnet cell has 4 tokens per block (i1, i2, o1, o2), "
                         f"not {len(cell)} tokens")
    check_limit("blocks:", len(cell) // len(SLOTS), "MAX_BLOCKS")
    blocks = [list(cell[i:i + len(SLOTS)]) for i in range(0, len(cell), len(SLOTS))]
    for b, block in enumerate(blocks):
        for slot, token in zip(SLOTS, block):
            is_input = slot.startswith("i")
            allowed = input_choices(b) if is_input else OPS
            if token not in allowed or is_input and type(token) is not int:
                raise ValueError(f"block {b} {slot}={token!r}: choose one of {list(allowed)}")
    return blocks


def input_choices(block: int) -> tuple[int, ...]:
    """The input tokens block ``block`` (from 0) may take: the two previous cells and the
    blocks before it."""
    return tuple(range(CELL_INPUTS + block))


def layout(blocks: int = 5) -> GenomeLayout:
    """The genome's layout for :class:`~deapnas.controller.MutationController`: per block, its
    two input positions (choices: the two previous cells and the earlier blocks) and its two
    operation positions."""
    choices, inputs = [], []
    for b in range(blocks):
        inputs += [len(choices), len(choices) + 1]
        choices += [input_choices(b)] * 2 + [OPS] * 2
    return GenomeLayout(tuple(choices),
                        tuple(tuple(range(4 * b, 4 * b + 4)) for b in range(blocks)),
                        frozenset(inputs), CELL_INPUTS)


def init_cell(container: Callable[[list], Sequence] = list, blocks: int = 5) -> Sequence:
    """A cell with every input and operation drawn uniformly (the paper's random
    initialisation; B = 5): :func:`~deapnas.controller.init_layout` of its :func:`layout`."""
    if blocks < 1:
        raise ValueError(f"blocks must be at least 1, not {blocks}")
    return init_layout(container, layout(blocks))


def mutate(individual: list) -> tuple[list]:
    """The paper's random mutation (its EA baseline): in every block, one of i1, i2, o1, o2
    drawn uniformly takes a different value drawn uniformly (the controller's actions made at
    random, :func:`~deapnas.controller.mut_layout`)."""
    return mut_layout(individual, layout(len(blocks_of(individual))))


# -- cell -> graph -> network ------------------------------------------------------------------

def to_graph(cell: Sequence, reduction: bool = False) -> nx.DiGraph:
    """The cell as a compiler graph with inputs ``c-2``, ``c-1``, output ``out``.

    Each operation is a node named ``b{block}_{slot}_{operation}`` and each block a node summing
    its two; ``out`` concatenates the blocks no block uses. With ``reduction`` the operations on
    the cell inputs have stride 2. Operation names are in the node names, hence in the
    parameter names, so a child whose operation changed inherits nothing for it, while one
    whose input changed inherits everything.
    """
    graph = nx.DiGraph(inputs=["c-2", "c-1"], output="out")
    graph.add_nodes_from(["c-2", "c-1"])
    sources = ["c-2", "c-1"]
    used = set()
    for b, (i1, i2, o1, o2) in enumerate(blocks_of(cell)):
        block = f"b{b}"
        graph.add_node(block, op="identity", combine="sum")
        for slot, source, name in (("1", i1, o1), ("2", i2, o2)):
            stride = 2 if reduction and source < CELL_INPUTS else 1
            node = f"{block}_{slot}_{name}"
            graph.add_node(node, label=op_label(name, stride), **op_node(name, stride))
            graph.add_edges_from([(sources[source], node), (node, block)])
            used.add(source)
        sources.append(block)
    graph.add_node("out", op="identity", combine="concat")
    graph.add_edges_from((block, "out") for k, block in enumerate(sources)
                         if k >= CELL_INPUTS and k not in used)
    return graph


def op_label(name: str, stride: int = 1) -> str:
    """How a drawing names operation ``name`` applied with ``stride``: a stride-2 operation
    says so, and an identity at stride 2 is the 1x1 convolution it becomes."""
    if stride == 1:
        return name
    return ("conv_1x1" if name == "identity" else name) + f" stride {stride}"


def cells(cell: Sequence) -> dict[str, nx.DiGraph]:
    """The cell as the network uses it: a normal cell and a reduction cell (stride 2 on the
    operations applied to the cell's inputs); ``deapnas show`` draws them side by side."""
    return {"normal": to_graph(cell), "reduction": to_graph(cell, reduction=True)}


def build_network(cell: Sequence, input_shape: Shape, num_classes: int, channels: int = 24,
                  cells_per_stage: int = 2, auxiliary: bool = False,
                  dropout: float = 0.0, stem_multiplier: int = 1) -> CellNetwork:
    """The search network: a 3x3 convolution stem of ``stem_multiplier`` x F filters, three
    stages of ``cells_per_stage`` normal cells with the cell as a stride-2 reduction cell
    between stages, global pooling, linear (search: F = 24, N = 2; final CIFAR-10 network:
    F = 32, N = 6, with an auxiliary classifier at 2/3 of the depth and dropout 0.5 before the
    classifier; NASNet's CIFAR-10 stem, which RENAS uses, has 3F filters)."""
    return CellNetwork(input_shape, num_classes, to_graph(cell),
                       reduction=to_graph(cell, reduction=True), channels=channels,
                       cells_per_stage=cells_per_stage, auxiliary=auxiliary, dropout=dropout,
                       stem_channels=stem_multiplier * channels)


def key(cell: Sequence) -> str:
    """Equal for cells that compile to the same network (blocks whose two halves are swapped,
    for instance)."""
    return architecture_key(to_graph(cell))


def to_json(cell: Sequence) -> list[list]:
    """``[[i1, i2, o1, o2], ...]``, one list per block."""
    return blocks_of(cell)


def from_json(data: Sequence[Sequence], container: Callable[[list], Sequence] = list
              ) -> Sequence:
    """Inverse of :func:`to_json`; a ``ValueError`` names a malformed block, or more blocks
    than :data:`~deapnas.limits.MAX_BLOCKS`."""
    check_limit("blocks:", len(data), "MAX_BLOCKS")
    tokens = [token for block in data for token in block]
    if any(len(block) != len(SLOTS) for block in data):
        raise ValueError(f"every block is [i1, i2, o1, o2]; got {data!r}")
    blocks_of(tokens)
    return container(tokens)


SPACE = Space(
    "nasnet", list, init_cell, mutate, to_graph, build_network, key, to_json, from_json,
    cells=cells, network_options={"channels": "channels", "cells": "cells_per_stage",
                                   "stem_multiplier": "stem_multiplier"},
    description="NASNet-like cells of B blocks, one cell type used for reduction with stride 2 "
                "(RENAS, Chen et al., 2019)")
