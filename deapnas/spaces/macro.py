"""The macro search space of Kyriakides & Margaritis (2020): DeepNEAT-style layer and connection
genes describing a whole convolutional network.

A genome holds *layer genes* (node id -> one of the 12 layer choices of the paper's Table 1) and
*connection genes* (source, target, enabled flag, innovation number). Node ids grow in order of
addition; the input is node -2 and the output node -1. Every connection is created by splitting
another, so a genome is always a directed acyclic graph.

Register it in a toolbox like any DEAP representation::

    creator.create("FitnessMax", base.Fitness, weights=(1.0,))
    creator.create("Individual", macro.MacroGenome, fitness=creator.FitnessMax)
    toolbox.register("individual", macro.init_genome, creator.Individual)
    toolbox.register("mutate", macro.mutate)

(or use ``macro.SPACE.individual()``, the same class made without ``deap.creator``).
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable, Iterable, Optional

import networkx as nx
from torch import nn

from ..graph import InvalidGraphError, architecture_key
from ..networks import MacroNet
from ..ops import Shape
from . import Space, register_space

INPUT, OUTPUT = -2, -1

#: The 12 layer choices (paper, Table 1): convolutions with C/2 (H) or C (N) filters and
#: average (A) or max (M) pools, each with kernel 2, 3 or 5.
LAYERS = tuple(f"CONV_{k}.{w}" for w in "HN" for k in (2, 3, 5)) + \
    tuple(f"POOL_{k}.{p}" for p in "AM" for k in (2, 3, 5))


@dataclass
class Connection:
    """A connection gene."""

    source: int
    target: int
    enabled: bool = True
    innovation: int = 0


class MacroGenome:
    """Layer genes and connection genes; plain data, cheap to copy and pickle."""

    def __init__(self, layers: Optional[dict] = None,
                 connections: Optional[Iterable[Connection]] = None):
        self.layers: dict[int, str] = dict(layers or {})
        self.connections: list[Connection] = list(connections or
                                                  [Connection(INPUT, OUTPUT, True, 0)])

    def new_node_id(self) -> int:
        return max(self.layers, default=-1) + 1

    def new_innovation(self) -> int:
        return max((c.innovation for c in self.connections), default=-1) + 1

    def __eq__(self, other) -> bool:
        return isinstance(other, MacroGenome) and to_json(self) == to_json(other)

    __hash__ = None  # mutable, like a DEAP list individual

    def __repr__(self) -> str:
        links = ", ".join(f"{c.source}->{c.target}" + ("" if c.enabled else " (off)")
                          for c in self.connections)
        layers = ", ".join(f"{n}:{layer}" for n, layer in sorted(self.layers.items()))
        return f"{type(self).__name__}(layers=[{layers}], connections=[{links}])"


# -- initialisation and variation (DEAP operator contracts) ----------------------------------

def init_genome(container: Callable[..., MacroGenome] = MacroGenome, n_layers: int = 4
                ) -> MacroGenome:
    """A fresh genome: input -> output, then ``n_layers`` add-node mutations (paper: 4)."""
    genome = container()
    for _ in range(n_layers):
        mut_add_node(genome)
    return genome


def mut_add_node(genome: MacroGenome, layers: tuple = LAYERS) -> tuple[MacroGenome]:
    """Split a random enabled connection (any connection if none is enabled): disable it and
    route it through a new node with a random layer."""
    candidates = [c for c in genome.connections if c.enabled] or genome.connections
    split = random.choice(candidates)
    split.enabled = False
    node = genome.new_node_id()
    genome.layers[node] = random.choice(layers)
    innovation = genome.new_innovation()
    genome.connections += [Connection(split.source, node, True, innovation),
                           Connection(node, split.target, True, innovation + 1)]
    return genome,


def mut_layer(genome: MacroGenome, layers: tuple = LAYERS) -> tuple[MacroGenome]:
    """Re-draw one random layer gene as a *different* layer choice."""
    if genome.layers:
        node = random.choice(sorted(genome.layers))
        genome.layers[node] = random.choice([c for c in layers if c != genome.layers[node]])
    return genome,


def mut_toggle(genome: MacroGenome) -> tuple[MacroGenome]:
    """Flip the enabled flag of one random connection gene."""
    connection = random.choice(genome.connections)
    connection.enabled = not connection.enabled
    return genome,


def mutate(individual: MacroGenome, p_add: float = 0.25, p_identity: float = 0.05,
           p_layer: float = 0.5, layers: tuple = LAYERS) -> tuple[MacroGenome]:
    """The paper's mutation: add a node with ``p_add``, leave intact with ``p_identity``,
    otherwise mutate one gene: a layer gene with ``p_layer``, else a connection gene (the paper
    does not say how the two share its ``p_mutate``; an even split is the default)."""
    if not 0 <= p_add + p_identity <= 1:
        raise ValueError("p_add + p_identity must lie in [0, 1]")
    draw = random.random()
    if draw < p_add:
        return mut_add_node(individual, layers)
    if draw < p_add + p_identity:
        return individual,
    if random.random() < p_layer:
        return mut_layer(individual, layers)
    return mut_toggle(individual)


# -- genome -> graph -> network --------------------------------------------------------------

def layer_node(layer: str, channels: int, dropout: float = 0.1) -> dict:
    """Graph node attributes for a layer choice such as ``"CONV_3.H"`` or ``"POOL_5.M"``."""
    kind, spec = layer.split("_")
    kernel, variant = spec.split(".")
    if kind == "CONV":
        width = channels // 2 if variant == "H" else channels
        return {"op": "conv_relu6_bn", "args": {"kernel": int(kernel), "channels": width,
                                                "dropout": dropout}}
    return {"op": "pool", "args": {"kind": {"A": "avg", "M": "max"}[variant],
                                   "kernel": int(kernel)}}


def to_graph(genome: MacroGenome, channels: int = 64, dropout: float = 0.1) -> nx.DiGraph:
    """The genome's enabled connections as a compiler graph (see :mod:`deapnas.graph`);
    ``channels`` is the paper's C, ``dropout`` the Dropout2d rate after each convolution."""
    graph = nx.DiGraph(inputs=[INPUT], output=OUTPUT)
    graph.add_node(INPUT)
    for node, layer in sorted(genome.layers.items()):
        graph.add_node(node, label=layer, **layer_node(layer, channels, dropout))
    graph.add_node(OUTPUT, op="identity", combine="sum")
    graph.add_edges_from((c.source, c.target) for c in genome.connections if c.enabled)
    return graph


def build_network(genome: MacroGenome, input_shape: Shape, num_classes: int,
                  channels: int = 64, dropout: float = 0.1,
                  head_activation: Callable[[], nn.Module] = nn.ReLU) -> MacroNet:
    """The trainable network of a genome: its graph followed by the three-layer FC head
    (``head_activation`` between the FC layers; the paper names none)."""
    return MacroNet(to_graph(genome, channels, dropout), input_shape, num_classes,
                    head_activation)


def key(genome: MacroGenome) -> Optional[str]:
    """Identity of the network a genome compiles to (None when it compiles to none)."""
    try:
        return architecture_key(to_graph(genome))
    except InvalidGraphError:
        return None


def to_json(genome: MacroGenome) -> dict:
    """A readable, JSON-serialisable form of the genome."""
    return {"layers": {str(n): layer for n, layer in sorted(genome.layers.items())},
            "connections": [[c.source, c.target, c.enabled, c.innovation]
                            for c in genome.connections]}


def from_json(data: dict, container: Callable[..., MacroGenome] = MacroGenome) -> MacroGenome:
    """Inverse of :func:`to_json`."""
    genome = container()
    genome.layers = {int(n): layer for n, layer in data["layers"].items()}
    genome.connections = [Connection(*c) for c in data["connections"]]
    return genome


SPACE = register_space(Space(
    "macro", MacroGenome, init_genome, mutate, to_graph, build_network, key, to_json, from_json,
    network_options={"channels": "channels"},
    description="DeepNEAT-style whole networks (Kyriakides & Margaritis, 2020)"))
