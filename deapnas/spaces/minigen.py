"""MiniGen's modular encoding (Zhang, Ebadi & Jing, 2024, "MiniGen: Efficient Evolutionary
Search for Convolutional Neural Networks", section III-B).

A genome is the paper's list of cells, each ``[c_i, b_i, action_list_i]``::

    [['.', 1, ['identity', '3*3 conv', '3*3 conv']],
     [256, 1, ['3*3 avgpool', '3*3 maxpool', '3*3 dil conv', '3*3 dil conv']],
     [40, 1, ['3*3 avgpool', '3*3 dil conv', '5*5 dconv']],
     [128, 1, ['5*5 dconv', '3*3 conv']],
     [64, 1, ['1*7-7*1 conv', '3*3 avgpool', '3*3 avgpool']]]

so it prints and serialises as the paper writes it, and it is a plain list (of lists), a DEAP
list individual::

    creator.create("Individual", minigen.MiniGenGenome, fitness=creator.FitnessMax)
    toolbox.register("individual", minigen.init_genome, creator.Individual)
    toolbox.register("mate", minigen.mate)
    toolbox.register("mutate", minigen.mutate)

Cell 0 is the *input cell*: its channel flow is fixed (image channels -> 32 -> 64, written
``'.'``), one block, and two actions drawn from :data:`INPUT_OPERATIONS`, or three when the
first is ``'identity'``. Cells 1.. are *normal cells*: ``c_i`` from :data:`CHANNELS`, ``b_i``
blocks (1 in the paper's search; more in its scaled-up encodings), 2 to 4 actions from the nine
:data:`OPERATIONS`.

How an encoding becomes a network (:func:`to_graph`), including the choices the paper leaves
open:

- every action is a node of a chain; a block is the action list once, a cell ``b_i`` blocks;
- an action list that starts with ``'identity'`` makes its block residual: the rest of the
  list, summed with the block's input (a 1x1 convolution when the shape changes, as in the
  input cell), and no activation after the sum (the paper names none);
- a normal cell whose width ``c_i`` differs from the width it receives starts with a 1x1
  convolution to ``c_i`` (the paper says every action of the cell works at ``c_i`` and is silent
  on how the width changes between cells; pools cannot change it);
- every operation but identity is followed by BatchNorm and ReLU (pools too, as the paper
  says); ``'1*7-7*1 conv'`` is one operation, so one BatchNorm-ReLU after its second conv;
  ``'3*3 dil conv'`` is a full 3x3 convolution with dilation 2 (paper, Table I), or with
  ``build_network(..., dilated_conv="separable")`` a depthwise-separable one, as the authors'
  code makes it; pools are 3x3, stride 1, padded by 1, and average pooling
  ignores the padding;
- the spatial size never changes (the paper: "remains unchanged ... 32 by 32"); the head is
  global average pooling and one linear layer giving logits (no softmax: the loss takes logits).

:func:`cells` gives each cell's part of the graph apart, for ``deapnas show`` to draw side by
side; a width change is labelled as the 1x1 convolution it is.
"""
from __future__ import annotations

import hashlib
import json
import random
from collections import OrderedDict
from typing import Callable, Optional, Sequence

import networkx as nx
from deap import tools
from torch import nn

from ..compiler import compile_graph
from ..methods.minigen_options import (CHANNELS, DILATED_CONVS,  # declared where --help reads them
                                       INITIAL_OPERATIONS)
from ..networks import GlobalAveragePool
from ..ops import Shape, conv_shape, register_op, same_shape
from .space import Space, check_limit

IDENTITY = "identity"
#: The nine operations of the paper's Table I, as the encoding writes them.
OPERATIONS = ("3*3 dconv", "5*5 dconv", "3*3 conv", "5*5 conv", "1*7-7*1 conv", "3*3 dil conv",
              IDENTITY, "3*3 maxpool", "3*3 avgpool")
#: The input cell's choices (the paper lists "5*5 conv" twice; it is one choice).
INPUT_OPERATIONS = (IDENTITY, "3*3 conv", "3*3 dconv", "5*5 conv", "5*5 dconv")
#: The input cell's operations that change the width (all its choices but identity).
INPUT_CONVOLUTIONS = INPUT_OPERATIONS[1:]
#: The input cell's fixed channel flow after the image: image -> 32 -> 64.
INPUT_FLOW = (32, 64)
#: The number of actions of a random normal cell, inclusive (the authors' code).
ACTIONS = (2, 4)
#: The input cell's written channel size: not a choice.
FIXED = "."


class MiniGenGenome(list):
    """A MiniGen encoding: a list of cells ``[c_i, b_i, [action, ...]]``, cell 0 the input cell.

    Plain data (lists, strings, ints): it copies, pickles and prints as the paper writes it.
    """


# -- operations (registered in the shared op registry under mg_ names) -------------------------

def conv_bn_relu(c_in: int, channels: int, kernel: int, dilation: int = 1) -> nn.Module:
    """A size-keeping k x k convolution (optionally dilated), then BatchNorm and ReLU."""
    padding = dilation * (kernel - 1) // 2
    return nn.Sequential(nn.Conv2d(c_in, channels, kernel, padding=padding, dilation=dilation,
                                   bias=False),
                         nn.BatchNorm2d(channels), nn.ReLU())


def separable_bn_relu(c_in: int, channels: int, kernel: int, dilation: int = 1) -> nn.Module:
    """A depthwise-separable convolution (k x k per channel, optionally dilated, then 1x1),
    BatchNorm, ReLU."""
    return nn.Sequential(nn.Conv2d(c_in, c_in, kernel, padding=dilation * (kernel - 1) // 2,
                                   dilation=dilation, groups=c_in, bias=False),
                         nn.Conv2d(c_in, channels, 1, bias=False),
                         nn.BatchNorm2d(channels), nn.ReLU())


def factorized_bn_relu(c_in: int, channels: int, kernel: int = 7) -> nn.Module:
    """A 1 x k convolution followed by a k x 1 one, then BatchNorm and ReLU."""
    return nn.Sequential(nn.Conv2d(c_in, channels, (1, kernel), padding=(0, kernel // 2),
                                   bias=False),
                         nn.Conv2d(channels, channels, (kernel, 1), padding=(kernel // 2, 0),
                                   bias=False),
                         nn.BatchNorm2d(channels), nn.ReLU())


def pool_bn_relu(c_in: int, kind: str) -> nn.Module:
    """3x3 max or average pooling at stride 1 (size kept), then BatchNorm and ReLU."""
    pools = {"max": lambda: nn.MaxPool2d(3, 1, 1),
             "avg": lambda: nn.AvgPool2d(3, 1, 1, count_include_pad=False)}
    if kind not in pools:
        raise ValueError(f"pool kind must be 'max' or 'avg', not {kind!r}")
    return nn.Sequential(pools[kind](), nn.BatchNorm2d(c_in), nn.ReLU())


def identity_or_projection(c_in: int, channels: int) -> nn.Module:
    """The identity, or a 1x1 convolution when the width must change to ``channels``."""
    return nn.Identity() if c_in == channels else nn.Conv2d(c_in, channels, 1)


register_op("mg_conv", conv_bn_relu, conv_shape)
register_op("mg_separable", separable_bn_relu, conv_shape)
register_op("mg_factorized", factorized_bn_relu, conv_shape)
register_op("mg_pool", pool_bn_relu, same_shape)
register_op("mg_identity", identity_or_projection, conv_shape)

#: Graph node (op and arguments, less the width) of each encoded operation.
_NODES = {
    "3*3 dconv": ("mg_separable", {"kernel": 3}),
    "5*5 dconv": ("mg_separable", {"kernel": 5}),
    "3*3 conv": ("mg_conv", {"kernel": 3}),
    "5*5 conv": ("mg_conv", {"kernel": 5}),
    "1*7-7*1 conv": ("mg_factorized", {"kernel": 7}),
    "3*3 dil conv": ("mg_conv", {"kernel": 3, "dilation": 2}),
    IDENTITY: ("mg_identity", {}),
    "3*3 maxpool": ("mg_pool", {"kind": "max"}),
    "3*3 avgpool": ("mg_pool", {"kind": "avg"}),
}


def operation_node(operation: str, channels: int) -> dict:
    """Graph node attributes of an encoded operation producing ``channels`` channels (pools
    keep the width they receive)."""
    op, args = _NODES[operation]
    return {"op": op, "args": args if op == "mg_pool" else {**args, "channels": channels},
            "label": operation}


# -- random encodings and variation (DEAP operator contracts) ----------------------------------

def random_input_actions(initial: str = "uniform") -> list[str]:
    """An input cell's action list: a first choice among the five (drawn as ``initial`` says,
    see :data:`INITIAL_OPERATIONS`), then convolutions to make the 32 -> 64 flow (two after a
    leading identity, one otherwise)."""
    first = _leading(initial, INPUT_OPERATIONS, INPUT_CONVOLUTIONS)
    return _complete_input_actions([first])


def _complete_input_actions(actions: list[str]) -> list[str]:
    """Bring an input cell's list to its rule, keeping its leading action and, in order, as
    many of its other actions as fit: one more after a convolution, two after an identity,
    drawn at random when missing."""
    size = 3 if actions[0] == IDENTITY else 2
    missing = max(size - len(actions), 0)
    return actions[:size] + [random.choice(INPUT_CONVOLUTIONS) for _ in range(missing)]


def random_actions(actions: tuple[int, int] = ACTIONS, initial: str = "uniform") -> list[str]:
    """A normal cell's action list: a uniform length in ``actions``, operations drawn as
    ``initial`` says (:data:`INITIAL_OPERATIONS`): uniform among the nine, or the authors' way
    (a leading identity with probability 1/2, counted in the length, at least one operation
    after it, the others among the eight operations but identity)."""
    length = random.randint(*actions)
    if initial == "uniform":
        return [random.choice(OPERATIONS) for _ in range(length)]
    others = [op for op in OPERATIONS if op != IDENTITY]
    first = _leading(initial, OPERATIONS, others)
    rest = max(length - 1, 1) if first == IDENTITY else length - 1
    return [first] + [random.choice(others) for _ in range(rest)]


def _leading(initial: str, choices: Sequence[str], others: Sequence[str]) -> str:
    """A list's first operation: uniform among ``choices``, or the authors' way: identity
    with probability 1/2, else uniform among ``others``."""
    if initial not in INITIAL_OPERATIONS:
        raise ValueError(f"initial must be one of {', '.join(INITIAL_OPERATIONS)}, not "
                         f"{initial!r}")
    if initial == "uniform":
        return random.choice(choices)
    return IDENTITY if random.random() < 0.5 else random.choice(others)


def init_genome(container: Callable[..., list] = MiniGenGenome, blocks: Sequence[int] = (1,) * 5,
                channels: Sequence[int] = CHANNELS, actions: tuple[int, int] = ACTIONS,
                initial: str = "uniform") -> list:
    """A random encoding with one cell per entry of ``blocks`` (its ``b_i``; the input cell's
    must be 1), widths from ``channels``, normal cells of ``actions`` operations, action lists
    drawn as ``initial`` says (:data:`INITIAL_OPERATIONS`)."""
    if not blocks or blocks[0] != 1 or any(b < 1 for b in blocks):
        raise ValueError(f"blocks must start with the input cell's 1 and be positive, "
                         f"not {tuple(blocks)}")
    cells = [[FIXED, 1, random_input_actions(initial)]]
    cells += [[random.choice(channels), b, random_actions(actions, initial)] for b in blocks[1:]]
    return container(cells)


def mate(ind1: list, ind2: list, indpb: float = 0.5) -> tuple[list, list]:
    """Uniform crossover per cell: each cell position is swapped between the two encodings with
    probability ``indpb`` (the paper: each cell comes from either parent at random). Cells keep
    their position, so an input cell stays an input cell."""
    return tools.cxUniform(ind1, ind2, indpb)


def mutate(individual: list, p_channels: float = 0.3, p_op: float = 0.5, p_actions: float = 0.2,
           channels: Sequence[int] = CHANNELS, actions: tuple[int, int] = ACTIONS,
           initial: str = "uniform") -> tuple[list]:
    """The paper's three levels of mutation, applied to every cell (section III-C3b):

    - ``p_channels`` (P_c): the cell's width is redrawn from ``channels`` (normal cells);
    - ``p_op`` (P_o): each operation is redrawn from the cell's choices (for the input cell,
      the leading position from its five, the others from its convolutions; a list whose
      leading identity came or went is completed to the input cell's rule);
    - ``p_actions`` (P_b): the whole action list is regenerated, drawn as ``initial`` says
      (:data:`INITIAL_OPERATIONS`).

    Cells are replaced, never changed in place, so an encoding sharing cells with another
    (a shallow copy) leaves the other untouched.
    """
    for index, (width, blocks, operations) in enumerate(individual):
        if index == 0:
            operations = _complete_input_actions(
                [_redraw(op, INPUT_OPERATIONS if i == 0 else INPUT_CONVOLUTIONS, p_op)
                 for i, op in enumerate(operations)])
            if random.random() < p_actions:
                operations = random_input_actions(initial)
        else:
            if random.random() < p_channels:
                width = random.choice(channels)
            operations = [_redraw(op, OPERATIONS, p_op) for op in operations]
            if random.random() < p_actions:
                operations = random_actions(actions, initial)
        individual[index] = [width, blocks, operations]
    return individual,


def _redraw(operation: str, choices: Sequence[str], probability: float) -> str:
    return random.choice(choices) if random.random() < probability else operation


# -- validation, encoding -> graph -> network --------------------------------------------------

def validate(genome: Sequence) -> None:
    """Raise ``ValueError`` saying what is wrong when ``genome`` is not a MiniGen encoding, or
    one larger than :mod:`deapnas.limits` allows (cells, blocks, actions, widths, operations in
    all), so that a crafted encoding is refused before it is built."""
    if not genome:
        raise ValueError("a MiniGen encoding needs at least the input cell")
    check_limit("cells:", len(genome), "MAX_CELLS")
    for index, cell in enumerate(genome):
        if not isinstance(cell, (list, tuple)) or len(cell) != 3:
            raise ValueError(f"cell {index} must be [channels, blocks, actions], not {cell!r}")
        width, blocks, operations = cell
        if not isinstance(operations, (list, tuple)) or not operations:
            raise ValueError(f"cell {index}: the action list must be a non-empty list")
        if index == 0:
            _validate_input_cell(width, blocks, list(operations))
            continue
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise ValueError(f"cell {index}: channels must be a positive int, not {width!r}")
        if isinstance(blocks, bool) or not isinstance(blocks, int) or blocks < 1:
            raise ValueError(f"cell {index}: blocks must be a positive int, not {blocks!r}")
        check_limit(f"cell {index}: channels", width, "MAX_CHANNELS")
        check_limit(f"cell {index}: blocks", blocks, "MAX_BLOCKS")
        check_limit(f"cell {index}: actions", len(operations), "MAX_ACTIONS")
        unknown = [op for op in operations if op not in OPERATIONS]
        if unknown:
            raise ValueError(f"cell {index}: unknown operations {unknown}; choose from "
                             f"{', '.join(OPERATIONS)}")
    check_limit("operations in all (blocks x actions):",
                sum(blocks * len(operations) for _, blocks, operations in genome), "MAX_NODES")


def _validate_input_cell(width, blocks, operations: list) -> None:
    if width != FIXED or blocks != 1:
        raise ValueError(f"the input cell's channels are fixed (write {FIXED!r}) and it has one "
                         f"block: [{FIXED!r}, 1, actions], not [{width!r}, {blocks!r}, ...]")
    size = 3 if operations[0] == IDENTITY else 2
    rest = operations[1:] if operations[0] == IDENTITY else operations
    if (len(operations) != size or operations[0] not in INPUT_OPERATIONS
            or any(op not in INPUT_CONVOLUTIONS for op in rest)):
        raise ValueError(f"the input cell's actions must be two of {list(INPUT_CONVOLUTIONS)}, "
                         f"after 'identity' or not, not {operations}")


def to_graph(genome: Sequence) -> nx.DiGraph:
    """The encoding as a compiler graph (see :mod:`deapnas.graph`): one chain of nodes, block
    after block, with a skip node and a sum node for each residual block. Node names are
    ``"c<cell>.b<block>.<position>"``; ``"c<cell>.in"`` brings a normal cell to its width."""
    validate(genome)
    graph = nx.DiGraph(inputs=["input"])
    graph.add_node("input")
    last = _add_block(graph, "input", None, "c0.b0", genome[0][2], INPUT_FLOW)
    received = INPUT_FLOW[-1]
    for index, (width, blocks, operations) in enumerate(genome[1:], start=1):
        last = _add_width_change(graph, last, f"c{index}.in", received, width)
        for block in range(blocks):
            last = _add_block(graph, last, width, f"c{index}.b{block}", operations,
                              [width] * len(operations))
        received = width
    graph.graph["output"] = last
    return graph


def _add_width_change(graph: nx.DiGraph, source: str, node: str, received: Optional[int],
                      width: int) -> str:
    """Add ``node`` after ``source``: the identity, or a 1x1 convolution from ``received``
    channels (None: the image's) to ``width``, labelled as what it is."""
    label = IDENTITY if received == width else f"1x1 conv {received or ''}->{width}"
    graph.add_node(node, **{**operation_node(IDENTITY, width), "label": label})
    graph.add_edge(source, node)
    return node


def cells(genome: Sequence) -> dict[str, nx.DiGraph]:
    """Each cell of the encoding as a graph of its own, for drawing side by side
    (``deapnas show``): ``{"input": ..., "#1 256-channel": ..., ...}``, each with an input
    node feeding the cell's first nodes and an output node after its last ones;
    a width change to the same width and an identity skip are drawn as edges, not as boxes."""
    whole = to_graph(genome)
    drawings = {}
    for index, (width, blocks, _) in enumerate(genome):
        members = [n for n in whole if n.startswith(f"c{index}.")]
        graph = nx.DiGraph(whole.subgraph(members), inputs=["input"], output="output")
        graph.add_nodes_from(["input", ("output", {"op": "identity"})])
        graph.add_edges_from(("input", n) for n in members
                             if any(p not in members for p in whole.predecessors(n)))
        graph.add_edges_from((n, "output") for n in members
                             if not any(s in members for s in whole.successors(n)))
        name = "input" if index == 0 else f"#{index} {width}-channel" + \
            (f" {blocks}-block" if blocks > 1 else "")
        drawings[name] = _without_identities(graph)
    return drawings


def _without_identities(graph: nx.DiGraph) -> nx.DiGraph:
    """``graph`` with each node that changes nothing (a width change to the same width, a
    residual block's skip at its width) replaced by edges from its input to its outputs, so
    that a drawing shows no box that is not a layer."""
    for node in [n for n, attrs in graph.nodes(data=True) if attrs.get("label") == IDENTITY]:
        graph.add_edges_from((source, target) for source in graph.predecessors(node)
                             for target in graph.successors(node))
        graph.remove_node(node)
    return graph


def _add_block(graph: nx.DiGraph, source: str, received: Optional[int], name: str,
               operations: Sequence[str], widths: Sequence[int]) -> str:
    """Add one block's chain after ``source`` (which gives ``received`` channels, None for the
    image), the i-th operation after a leading identity (if any) producing ``widths[i]``
    channels; the block's output node."""
    residual = operations[0] == IDENTITY
    chain = operations[1:] if residual else operations
    last = source
    for position, (operation, channels) in enumerate(zip(chain, widths)):
        node = f"{name}.{position}"
        graph.add_node(node, **operation_node(operation, channels))
        graph.add_edge(last, node)
        last = node
    if not residual:
        return last
    skip = _add_width_change(graph, source, f"{name}.skip", received, widths[len(chain) - 1])
    total = f"{name}.sum"
    graph.add_node(total, op="identity", combine="sum", label="residual")
    graph.add_edges_from([(last, total), (skip, total)])
    return total


def build_network(genome: Sequence, input_shape: Shape, num_classes: int,
                  dilated_conv: str = "full") -> nn.Module:
    """The trainable network: the compiled encoding (size kept throughout), global average
    pooling, one linear layer; it returns logits. ``dilated_conv`` says what ``'3*3 dil conv'``
    builds (:data:`DILATED_CONVS`)."""
    if dilated_conv not in DILATED_CONVS:
        raise ValueError(f"dilated_conv must be one of {', '.join(DILATED_CONVS)}, not "
                         f"{dilated_conv!r}")
    graph = to_graph(genome)
    if dilated_conv == "separable":
        for _, node in graph.nodes(data=True):
            if node.get("label") == "3*3 dil conv":
                node["op"] = "mg_separable"
    body = compile_graph(graph, [input_shape])
    return nn.Sequential(OrderedDict(body=body, pool=GlobalAveragePool(),
                                     classifier=nn.Linear(body.output_shape[0], num_classes)))


def to_json(genome: Sequence) -> list:
    """The encoding as the paper writes it: ``[[c, b, [actions]], ...]`` (plain lists)."""
    return [[width, blocks, list(operations)] for width, blocks, operations in genome]


def from_json(data: Sequence, container: Callable[..., list] = MiniGenGenome) -> list:
    """Inverse of :func:`to_json`; a ``ValueError`` says what is wrong with invalid data. The
    input cell's channel size may be written as a positive number, as the paper and the
    authors' encodings write it (``128``; ``inf`` in the authors' logs): its flow is fixed
    whatever is written, so it reads as ``'.'``."""
    validate(_fixed_input_width(data))
    return container(to_json(_fixed_input_width(data)))


def _fixed_input_width(data: Sequence) -> Sequence:
    """``data`` with its input cell's channel size written ``'.'`` when it is a number."""
    if not data or not isinstance(data[0], (list, tuple)) or len(data[0]) != 3:
        return data
    width = data[0][0]
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not width > 0:
        return data
    return [[FIXED, *data[0][1:]], *data[1:]]


def key(genome: Sequence) -> str:
    """The encoding's compact JSON text: equal encodings, equal keys."""
    return json.dumps(to_json(genome), separators=(",", ":"))


def network_seed(genome_key: str) -> int:
    """A 31-bit seed derived from an architecture key: the same encoding always trains from the
    same seed (the paper's determinism), different encodings from unrelated ones."""
    return int.from_bytes(hashlib.sha256(genome_key.encode()).digest()[:4], "big") >> 1


SPACE = Space(
    "minigen", MiniGenGenome, init_genome, mutate, to_graph, build_network, key, to_json,
    from_json, mate=mate, cells=cells, network_options={"dilated_conv": "dilated_conv"},
    description="MiniGen's five-cell [c_i, b_i, action list] encoding (Zhang et al., 2024)")
