"""The NAS-Bench-201 cell space (Dong & Yang, 2020): a cell of 4 nodes whose 6 edges each carry
one of 5 operations, 15,625 cells in all.

A genome is a list of 6 operation names in the benchmark's edge order (node 1 <- 0; node 2 <- 0,
1; node 3 <- 0, 1, 2), so it is a DEAP list individual::

    creator.create("Individual", list, fitness=creator.FitnessMax)
    toolbox.register("individual", nb201.init_cell, creator.Individual)
    toolbox.register("mutate", nb201.mutate)

The cell is used two ways: compiled and trained inside the benchmark's skeleton
(:func:`build_network`), or looked up in the benchmark's table by its official string
(:func:`arch_string`, with :class:`deapnas.fitness.TableEvaluator`).
"""
from __future__ import annotations

import random
from typing import TYPE_CHECKING, Callable, Optional, Sequence

import networkx as nx

from .space import Space

if TYPE_CHECKING:  # torch: imported where a network is built (looking a cell up needs none)
    from ..networks import CellNetwork
    from ..ops import Shape

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
#: (from node, to node) of each edge, in the order of the official architecture string.
EDGES = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))

#: Compiler node attributes (op, args) of each operation.
NODE_OPS = {
    "none": {"op": "zero"},
    "skip_connect": {"op": "identity"},
    "nor_conv_1x1": {"op": "relu_conv_bn", "args": {"kernel": 1}},
    "nor_conv_3x3": {"op": "relu_conv_bn", "args": {"kernel": 3}},
    "avg_pool_3x3": {"op": "pool", "args": {"kind": "avg", "kernel": 3, "stride": 1,
                                            "padding": 1}},
}


def init_cell(container: Callable[[list], Sequence[str]] = list) -> Sequence[str]:
    """A cell with an operation drawn uniformly for every edge."""
    return container(random.choice(OPS) for _ in EDGES)


def mutate(individual: list, ops: Sequence[str] = OPS) -> tuple[list]:
    """Change the operation of one random edge to a different one (the benchmark's REA)."""
    edge = random.randrange(len(individual))
    individual[edge] = random.choice([op for op in ops if op != individual[edge]])
    return individual,


def arch_string(cell: Sequence[str]) -> str:
    """The official string, e.g. ``|nor_conv_3x3~0|+|none~0|skip_connect~1|+|...|``."""
    nodes = []
    for target in (1, 2, 3):
        nodes.append("|" + "|".join(f"{op}~{source}" for op, (source, to) in zip(cell, EDGES)
                                    if to == target) + "|")
    return "+".join(nodes)


def from_arch_string(text: str, container: Optional[Callable[[list], Sequence[str]]] = None
                     ) -> Sequence[str]:
    """Inverse of :func:`arch_string`; raises ``ValueError`` on a malformed string.

    The cell is made with ``container``; by default that is ``SPACE.individual()``, a list with
    an (invalid) maximised DEAP fitness, ready for a toolbox, an evaluator and a hall of fame.
    Pass ``list`` for a plain list or your own ``creator`` class for other fitness weights."""
    ops = [token.split("~")[0] for token in text.replace("+", "").split("|") if token]
    if len(ops) != len(EDGES) or any(op not in OPS for op in ops):
        raise ValueError(f"not a NAS-Bench-201 architecture string: {text!r}")
    if arch_string(ops) != text:
        raise ValueError(f"edges out of the official order in {text!r}")
    return (container or SPACE.individual())(ops)


def to_graph(cell: Sequence[str]) -> nx.DiGraph:
    """The cell as a compiler graph: an op node per edge and the nodes 1-3 summing their
    incoming edges.

    A ``none`` edge is kept as a ``zero`` op, as in the benchmark: it adds nothing, but it keeps
    the ops before it in the network, so every cell builds (even one whose output gets only
    ``none`` edges) and parameter counts equal the benchmark table's."""
    graph = nx.DiGraph(inputs=[0], output=3)
    graph.add_node(0)
    graph.add_nodes_from((node, {"op": "identity", "combine": "sum"}) for node in (1, 2, 3))
    for op, (source, target) in zip(cell, EDGES):
        edge = f"{source}{target}:{op}"
        graph.add_node(edge, label=op, **NODE_OPS[op])
        graph.add_edges_from([(source, edge), (edge, target)])
    return graph


def build_network(cell: Sequence[str], input_shape: Shape, num_classes: int,
                  channels: int = 16, cells_per_stage: int = 5) -> CellNetwork:
    """The benchmark's network: stem, 3 stages of ``cells_per_stage`` cells joined by residual
    reductions, global pooling, linear (benchmark: C = 16, N = 5)."""
    from ..networks import CellNetwork

    return CellNetwork(input_shape, num_classes, to_graph(cell), channels=channels,
                       cells_per_stage=cells_per_stage)


def key(cell: Sequence[str]) -> str:
    """The official string identifies the architecture."""
    return arch_string(cell)


def to_json(cell: Sequence[str]) -> str:
    """The official architecture string."""
    return arch_string(cell)


def from_json(data: str, container: Optional[Callable[[list], Sequence[str]]] = None
              ) -> Sequence[str]:
    """Inverse of :func:`to_json` (the same default container as :func:`from_arch_string`)."""
    return from_arch_string(data, container)


SPACE = Space(
    "nb201", list, init_cell, mutate, to_graph, build_network, key, to_json, from_json,
    network_options={"channels": "channels", "cells": "cells_per_stage"},
    description="NAS-Bench-201 cells (Dong & Yang, 2020), trained or looked up in the table")
