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
    toolbox.register("mate", macro.mate)  # optional NEAT-style crossover; the paper has none

(or use ``macro.SPACE.individual()``, the same class made without ``deap.creator``).
"""
from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Iterable, Optional

import networkx as nx
import torch
from torch import nn

from ..graph import InvalidGraphError, architecture_key
from ..options import ADD_NODE_SPLITS  # declared where --help reads it
from ..networks import MacroNet
from ..ops import Shape
from .space import Space, check_limit

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

def init_genome(container: Callable[..., MacroGenome] = MacroGenome, n_layers: int = 4,
                split: str = "enabled") -> MacroGenome:
    """A fresh genome: input -> output, then ``n_layers`` add-node mutations (paper: 4)
    splitting connections by the rule ``split``
    (:data:`~deapnas.options.ADD_NODE_SPLITS`)."""
    genome = container()
    for _ in range(n_layers):
        mut_add_node(genome, split=split)
    return genome


def mut_add_node(genome: MacroGenome, layers: tuple = LAYERS, split: str = "enabled"
                 ) -> tuple[MacroGenome]:
    """Split a random connection, one of those the rule ``split`` allows
    (:data:`~deapnas.options.ADD_NODE_SPLITS`):
    disable it and route it through a new node with a random layer."""
    if split not in ADD_NODE_SPLITS:
        raise ValueError(f"split must be one of {', '.join(ADD_NODE_SPLITS)}, not {split!r}")
    enabled = [c for c in genome.connections if c.enabled] if split == "enabled" else []
    connection = random.choice(enabled or genome.connections)
    connection.enabled = False
    node = genome.new_node_id()
    genome.layers[node] = random.choice(layers)
    innovation = genome.new_innovation()
    genome.connections += [Connection(connection.source, node, True, innovation),
                           Connection(node, connection.target, True, innovation + 1)]
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
           p_layer: float = 0.5, layers: tuple = LAYERS, split: str = "enabled"
           ) -> tuple[MacroGenome]:
    """The paper's mutation: add a node with ``p_add`` (splitting a connection by the rule
    ``split``, see :data:`~deapnas.options.ADD_NODE_SPLITS`), leave intact with ``p_identity``,
    otherwise mutate one gene: a layer gene with ``p_layer``, else a connection gene (the paper
    does not say how the two share its ``p_mutate``; an even split is the default)."""
    if not 0 <= p_add + p_identity <= 1:
        raise ValueError("p_add + p_identity must lie in [0, 1]")
    draw = random.random()
    if draw < p_add:
        return mut_add_node(individual, layers, split)
    if draw < p_add + p_identity:
        return individual,
    if random.random() < p_layer:
        return mut_layer(individual, layers)
    return mut_toggle(individual)


# -- crossover (an extension: the paper uses mutation only) ----------------------------------
#
# NEAT aligns genes by innovation number, which NEAT keeps globally: the same structural
# mutation gets the same number in every genome. Here innovation numbers and node ids are only
# counters of one genome (max + 1), so node 4 of one genome and node 4 of another may split
# different connections. Crossover therefore aligns genes by a *global key* derived from each
# node's history: the input and the output are their own keys, and a node made by splitting the
# connection u -> v is keyed by (key(u), key(v), rank), the rank counting earlier splits of that
# same connection in its genome (keys are numbered per comparison, so they stay small integers).
# A connection's global innovation key is (key(source), key(target)). Every connection but
# input -> output is one of the two a split created, so a node's key names its two connections,
# and a set of node keys closed under origins *is* a genome's structure.

_NOT_GROWN = "crossover needs genomes grown by init_genome, mutate and mate"


def _origins(genome: MacroGenome) -> dict[int, tuple[int, int]]:
    """``node -> (source, target)`` of the connection each node split, in order of creation.

    A split creates (source, node) and (node, target), and every later connection at the node
    has a larger innovation number, so a node's first incoming and first outgoing connection
    (by innovation) are the ones its split created."""
    innovations = {c.innovation for c in genome.connections}
    pairs = {(c.source, c.target) for c in genome.connections}
    if not len(innovations) == len(pairs) == len(genome.connections) == \
            1 + 2 * len(genome.layers) or (INPUT, OUTPUT) not in pairs:
        raise ValueError(_NOT_GROWN + " (an input -> output gene, two connection genes per "
                         "layer, unique innovation numbers)")
    first_in, first_out = {}, {}
    for connection in sorted(genome.connections, key=lambda c: c.innovation):
        first_in.setdefault(connection.target, connection)
        first_out.setdefault(connection.source, connection)
    origins = {n: (first_in[n].source, first_out[n].target) for n in genome.layers
               if n in first_in and n in first_out}
    stray = [n for n in genome.layers if origins.get(n) not in pairs]
    if stray:
        raise ValueError(_NOT_GROWN + f" (nodes {stray} split no connection)")
    return dict(sorted(origins.items(), key=lambda item: first_in[item[0]].innovation))


def node_keys(*genomes: MacroGenome) -> list[dict[int, int]]:
    """Global keys of the nodes of ``genomes``, numbered together: in the returned dicts (one
    per genome, ``node -> key``), equal keys mean the same structural mutation whatever the node
    ids. The input and the output keep their ids as keys."""
    return _aligned(*genomes)[0]


def _aligned(*genomes: MacroGenome) -> tuple[list[dict[int, int]], dict]:
    """The genomes' node keys (see :func:`node_keys`) and, for every key, the keys of the
    source and target of the connection its node split."""
    splits: dict = {}
    keys = [_keys(genome, splits) for genome in genomes]
    return keys, {key: split[:2] for split, key in splits.items()}


def _keys(genome: MacroGenome, splits: dict) -> dict[int, int]:
    """Keys of one genome's nodes (input, output, then in order of creation); ``splits`` maps
    ``(source key, target key, rank)`` to a key and is extended with this genome's splits."""
    keys = {INPUT: INPUT, OUTPUT: OUTPUT}
    ranks: Counter = Counter()
    for node, (source, target) in _origins(genome).items():
        if source not in keys or target not in keys:
            raise ValueError(_NOT_GROWN + f" (node {node} split a connection made after it)")
        split = (keys[source], keys[target])
        keys[node] = splits.setdefault((*split, ranks[split]), len(splits))
        ranks[split] += 1
    return keys


def _kept(ind1, ind2) -> tuple[bool, bool]:
    """Whose unmatched genes a child inherits: the fitter parent's, or both parents' when
    neither fitness dominates the other (equal, incomparable or not yet valid)."""
    fit1, fit2 = getattr(ind1, "fitness", None), getattr(ind2, "fitness", None)
    if fit1 is None or fit2 is None or not (fit1.valid and fit2.valid):
        return True, True
    if fit1.dominates(fit2):
        return True, False
    if fit2.dominates(fit1):
        return False, True
    return True, True


def _genes(genome: MacroGenome, keys: dict) -> tuple[dict, dict]:
    """The genome's layer genes by node key (in order of creation) and its connections'
    enabled flags by connection key."""
    layers = {k: genome.layers[n] for n, k in keys.items() if n in genome.layers}
    enabled = {(keys[c.source], keys[c.target]): c.enabled for c in genome.connections}
    return layers, enabled


def _inherit(key, *parents: dict):
    """A gene from a random parent among those that have it."""
    return random.choice([genes[key] for genes in parents if key in genes])


def _child(base: tuple, other: tuple, origins: dict, keep_base: bool, keep_other: bool
           ) -> tuple[dict, list]:
    """The layer and connection genes of the child that replaces ``base``: the nodes the parents
    share, plus the unmatched nodes of each parent kept; every shared gene from a random parent.
    ``base`` and ``other`` are ``(genome, node keys)``; ``origins`` maps a key to the keys of
    the connection it split.

    ``base``'s nodes keep their ids and the others get new ones; innovation numbers are
    renumbered in order of creation (a node's connections right after those of its origin), as
    :func:`mut_add_node` numbers them, so the child's keys are the keys it was built from."""
    base_layers, base_enabled = _genes(*base)
    other_layers, other_enabled = _genes(*other)
    keys = [k for k in base_layers if keep_base or k in other_layers]
    keys += [k for k in other_layers if keep_other and k not in base_layers]
    base_ids = {k: n for n, k in base[1].items()}
    ids = {k: base_ids[k] for k in [INPUT, OUTPUT, *keys] if k in base_ids}
    for k in keys:
        ids.setdefault(k, max(ids.values()) + 1)
    layers = {ids[k]: _inherit(k, base_layers, other_layers) for k in keys}
    connections = [Connection(INPUT, OUTPUT, _inherit((INPUT, OUTPUT), base_enabled,
                                                      other_enabled), 0)]
    for number, k in enumerate(keys):
        source, target = origins[k]
        for innovation, pair in enumerate([(source, k), (k, target)], 2 * number + 1):
            enabled = _inherit(pair, base_enabled, other_enabled)
            connections.append(Connection(ids[pair[0]], ids[pair[1]], enabled, innovation))
    return dict(sorted(layers.items())), connections


def mate(ind1: MacroGenome, ind2: MacroGenome) -> tuple[MacroGenome, MacroGenome]:
    """NEAT-style crossover (Stanley & Miikkulainen, 2002), an extension of the macro method
    (its paper uses mutation only).

    Genes are aligned by their global keys (see :func:`node_keys`): genes in both parents are
    inherited from either parent at random, one draw per gene (a layer choice, an enabled
    flag); disjoint and excess genes from the fitter parent only, or from both when neither
    fitness dominates the other (equal, incomparable, or not evaluated). Each child replaces its
    parent in place (DEAP's contract; fitness untouched); the two differ in their random draws.

    Every connection of a genome runs from an earlier to a later position on a line on which a
    split node lies halfway between the ends of the connection it split; the keys fix those
    positions for all genomes alike, so any mix of two genomes' genes is acyclic too."""
    (keys1, keys2), origins = _aligned(ind1, ind2)
    first, second = (ind1, keys1), (ind2, keys2)
    keep1, keep2 = _kept(ind1, ind2)
    child1 = _child(first, second, origins, keep1, keep2)
    child2 = _child(second, first, origins, keep2, keep1)
    ind1.layers, ind1.connections = child1
    ind2.layers, ind2.connections = child2
    return ind1, ind2


# -- genome -> graph -> network --------------------------------------------------------------

def layer_node(layer: str, channels: int, dropout: float = 0.1, clamp_pools: bool = False,
               padding: str = "same") -> dict:
    """Graph node attributes for a layer choice such as ``"CONV_3.H"`` or ``"POOL_5.M"``
    (``clamp_pools`` and ``padding``: see :func:`to_graph`)."""
    kind, spec = layer.split("_")
    kernel, variant = spec.split(".")
    if kind == "CONV":
        width = channels // 2 if variant == "H" else channels
        args = {"kernel": int(kernel), "channels": width, "dropout": dropout}
        return {"op": "conv_relu6_bn",
                "args": {**args, "padding": padding} if padding != "same" else args}
    args = {"kind": {"A": "avg", "M": "max"}[variant], "kernel": int(kernel)}
    return {"op": "pool", "args": {**args, "clamp": True} if clamp_pools else args}


def to_graph(genome: MacroGenome, channels: int = 64, dropout: float = 0.1,
             clamp_pools: bool = False, padding: str = "same") -> nx.DiGraph:
    """The genome's enabled connections as a compiler graph (see :mod:`deapnas.graph`);
    ``channels`` is the paper's C, ``dropout`` the Dropout2d rate after each convolution.

    ``clamp_pools`` (a departure from the paper, off by default): a pool whose input is smaller
    than its kernel pools the whole input instead, giving a 1x1 map where the paper's pool
    would leave nothing, so small images (8x8 digits) lose far fewer candidates. Pools of inputs
    at least as large as their kernel are unchanged.

    ``padding`` of the convolutions: ``"same"`` (the default) keeps the size, ``"valid"`` (the
    paper's, whose parameter counts match only unpadded convolutions) shrinks it by the kernel
    minus one, and a kernel larger than its input then makes the genome invalid, as such a
    pool does."""
    graph = nx.DiGraph(inputs=[INPUT], output=OUTPUT)
    graph.add_node(INPUT)
    for node, layer in sorted(genome.layers.items()):
        graph.add_node(node, label=layer,
                       **layer_node(layer, channels, dropout, clamp_pools, padding))
    graph.add_node(OUTPUT, op="identity", combine="sum")
    graph.add_edges_from((c.source, c.target) for c in genome.connections if c.enabled)
    return graph


def build_network(genome: MacroGenome, input_shape: Shape, num_classes: int,
                  channels: int = 64, dropout: float = 0.1,
                  head_activation: Callable[[], nn.Module] = nn.ReLU,
                  clamp_pools: bool = False, padding: str = "same") -> MacroNet:
    """The trainable network of a genome: its graph followed by the three-layer FC head
    (``head_activation`` between the FC layers; the paper names none; ``clamp_pools`` and the
    convolutions' ``padding``: see :func:`to_graph`)."""
    return MacroNet(to_graph(genome, channels, dropout, clamp_pools, padding), input_shape,
                    num_classes, head_activation)


def network_graph(genome: MacroGenome, input_shape: Shape, num_classes: int,
                  channels: int = 64, dropout: float = 0.1, clamp_pools: bool = False,
                  padding: str = "same") -> nx.DiGraph:
    """The whole network :func:`build_network` makes, as a graph to draw (never to compile):
    :func:`to_graph` at width ``channels``, each convolution labelled with its filters, its
    output flattened, then the fully connected head, each layer labelled with its size and its
    parameters (the head often holds most of them)."""
    with torch.device("meta"):  # shapes and sizes only: nothing is allocated
        net = build_network(genome, input_shape, num_classes, channels, dropout,
                            clamp_pools=clamp_pools, padding=padding)
    graph = to_graph(genome, channels, dropout, clamp_pools, padding)
    for node, attrs in graph.nodes(data=True):
        if attrs.get("op") == "conv_relu6_bn":
            attrs["label"] += f" {attrs['args']['channels']} filters"
    features = net.head[1].in_features
    graph.nodes[OUTPUT]["label"] = f"flatten {features:,} features"
    last = OUTPUT
    linears = [layer for layer in net.head if isinstance(layer, nn.Linear)]
    for index, layer in enumerate(linears, 1):
        relu = ", ReLU" if index < len(linears) else ""
        parameters = sum(p.numel() for p in layer.parameters())
        node = f"fc{index}"
        graph.add_node(node, op="linear", label=f"FC {layer.in_features:,}->"
                                                f"{layer.out_features:,}{relu} "
                                                f"({parameters:,} parameters)")
        graph.add_edge(last, node)
        last = node
    graph.add_node("logits")
    graph.add_edge(last, "logits")
    graph.graph["output"] = "logits"
    return graph


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
    """Inverse of :func:`to_json`; a ``ValueError`` says which layer gene is not one, or what
    exceeds :mod:`deapnas.limits` (layers, connections, kernel sizes)."""
    check_limit("layers:", len(data["layers"]), "MAX_NODES")
    check_limit("connections:", len(data["connections"]), "MAX_CONNECTIONS")
    genome = container()
    genome.layers = {int(n): layer for n, layer in data["layers"].items()}
    for node, layer in genome.layers.items():
        _check_layer(node, layer)
    genome.connections = [Connection(*c) for c in data["connections"]]
    return genome


def _check_layer(node: int, layer) -> None:
    """A layer gene written ``CONV_<k>.H|N`` or ``POOL_<k>.A|M``, its kernel ``k`` within
    :data:`~deapnas.limits.MAX_KERNEL`."""
    kind, _, spec = str(layer).partition("_")
    kernel, _, variant = spec.partition(".")
    if variant not in {"CONV": "HN", "POOL": "AM"}.get(kind, "") or len(variant) != 1 \
            or not (kernel.isascii() and kernel.isdigit()) or int(kernel) < 1:
        raise ValueError(f"layer {node}: {layer!r} is not a layer gene such as {LAYERS[0]!r} "
                         f"or {LAYERS[-1]!r}")
    check_limit(f"layer {node}: kernel", int(kernel), "MAX_KERNEL")


SPACE = Space(
    "macro", MacroGenome, init_genome, mutate, to_graph, build_network, key, to_json, from_json,
    mate=mate, network_options={"channels": "channels", "clamp_pools": "clamp_pools",
                                "conv_padding": "padding"},
    description="DeepNEAT-style whole networks (Kyriakides & Margaritis, 2020)")
