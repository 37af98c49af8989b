"""One compiler from a ``networkx.DiGraph`` in the conventions of :mod:`deapnas.graph` to a
``torch.nn.Module``, for every search space.

Where inputs meet, they are brought to the smallest spatial size among them (adaptive average
pooling); a sum also brings them to the smallest channel count (1x1 convolution), a concat keeps
every channel. The graph is pruned and its shapes are inferred before anything is built; a graph
that cannot become a network raises :class:`~deapnas.graph.InvalidGraphError`, saying why.
"""
from __future__ import annotations

from typing import Sequence

import networkx as nx
import torch
from torch import nn

from .graph import InvalidGraphError, inputs_of, output_of, predecessors, prune
from .ops import Shape, get_op

COMBINES = ("sum", "concat")


def _merged_shape(in_shapes: Sequence[Shape], combine: str) -> Shape:
    h = min(s[1] for s in in_shapes)
    w = min(s[2] for s in in_shapes)
    if combine == "sum":
        return (min(s[0] for s in in_shapes), h, w)
    if combine == "concat":
        return (sum(s[0] for s in in_shapes), h, w)
    raise InvalidGraphError(f"combine must be one of {COMBINES}, not {combine!r}")


def infer_shapes(graph: nx.DiGraph, input_shapes: Sequence[Shape]) -> dict:
    """Output ``(c, h, w)`` of every node of the pruned graph, computed without building it."""
    return _infer_pruned(prune(graph), input_shapes)


def _infer_pruned(graph: nx.DiGraph, input_shapes: Sequence[Shape]) -> dict:
    inputs = inputs_of(graph)
    if len(input_shapes) != len(inputs):
        raise InvalidGraphError(f"{len(inputs)} inputs but {len(input_shapes)} input shapes")
    shapes = {node: _input_shape(shape) for node, shape in zip(inputs, input_shapes)}
    for node in nx.topological_sort(graph):
        if node in shapes:
            continue
        attrs = graph.nodes[node]
        try:
            merged = _merged_shape([shapes[p] for p in predecessors(graph, node)],
                                   attrs.get("combine", "sum"))
            op = get_op(attrs.get("op", "identity"))
            shapes[node] = op.output_shape(merged, **attrs.get("args", {}))
        except (KeyError, ValueError, TypeError) as error:
            raise _node_error(node, error) from None
    return shapes


def _input_shape(shape) -> Shape:
    """``shape`` as a tuple, checked to be ``(channels, height, width)`` of positive sizes."""
    try:
        valid = len(shape) == 3 and min(shape) > 0
    except TypeError:  # not a sequence of numbers
        valid = False
    if not valid:
        raise InvalidGraphError(f"input shape {shape!r} is not (channels, height, width) with "
                                "positive sizes; give e.g. (1, 28, 28), without the batch size")
    return tuple(shape)


def _node_error(node, error: Exception) -> InvalidGraphError:
    reason = error.args[0] if isinstance(error, KeyError) and error.args else error
    return InvalidGraphError(f"node {node!r}: {reason}")


def resize(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Average-pool ``x`` to the spatial ``size``: with exact windows when the size divides
    (``avg_pool2d``, whose backward is deterministic on CUDA), else adaptively."""
    height, width = x.shape[-2:]
    if (height, width) == tuple(size):
        return x
    if height % size[0] == 0 and width % size[1] == 0:
        return nn.functional.avg_pool2d(x, (height // size[0], width // size[1]))
    return nn.functional.adaptive_avg_pool2d(x, tuple(size))


class Merge(nn.Module):
    """Brings several inputs to one spatial size (and, for a sum, one channel count) and merges."""

    def __init__(self, in_shapes: Sequence[Shape], combine: str):
        super().__init__()
        self.combine = combine
        out_c, h, w = _merged_shape(in_shapes, combine)
        self.size = (h, w)
        self.project = nn.ModuleList(
            nn.Conv2d(c, out_c, 1, bias=False) if combine == "sum" and c != out_c else nn.Identity()
            for c, _, _ in in_shapes)

    def forward(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        resized = [resize(x, self.size) for x in inputs]
        projected = [p(x) for p, x in zip(self.project, resized)]
        if self.combine == "concat":
            return torch.cat(projected, dim=1)
        return torch.stack(projected).sum(0) if len(projected) > 1 else projected[0]

    def extra_repr(self) -> str:
        return f"{self.combine} to {self.size[0]}x{self.size[1]}"


def drop_path(x: torch.Tensor, rate: float) -> torch.Tensor:
    """Drop-path (Larsson et al., 2017): each sample of ``x`` is zeroed with probability
    ``rate`` and the others are scaled by ``1 / (1 - rate)``, so the expectation is ``x``."""
    keep = 1.0 - rate
    mask = torch.empty((len(x),) + (1,) * (x.dim() - 1), dtype=x.dtype, device=x.device)
    return x * mask.bernoulli_(keep) / keep


class GraphModule(nn.Module):
    """A compiled graph: one merge-then-op module per node, run in topological order.

    :ivar drop_path: while training, the output of every node whose op is not ``identity`` goes
        through :func:`drop_path` at this rate, as DARTS-style cells drop their operations
        (0, the default: never); :func:`deapnas.networks.set_drop_path` sets it.
    """

    def __init__(self, graph: nx.DiGraph, input_shapes: Sequence[Shape]):
        super().__init__()
        self.graph = prune(graph)
        self.shapes = _infer_pruned(self.graph, input_shapes)
        self.inputs = inputs_of(self.graph)
        self.output = output_of(self.graph)
        self.order = [n for n in nx.topological_sort(self.graph) if n not in self.inputs]
        self.sources = {n: predecessors(self.graph, n) for n in self.order}
        self.droppable = {n for n in self.order
                          if self.graph.nodes[n].get("op", "identity") != "identity"}
        self.drop_path = 0.0
        self.merges = nn.ModuleDict()
        self.ops = nn.ModuleDict()
        self.keys = self._keys(self.order, self.ops)
        for node in self.order:
            attrs = self.graph.nodes[node]
            in_shapes = [self.shapes[p] for p in self.sources[node]]
            combine = attrs.get("combine", "sum")
            merged = _merged_shape(in_shapes, combine)
            self.merges[self.keys[node]] = Merge(in_shapes, combine)
            try:
                self.ops[self.keys[node]] = get_op(attrs.get("op", "identity")).build(
                    merged[0], **attrs.get("args", {}))
            except (KeyError, ValueError, TypeError) as error:  # e.g. a bad op argument
                raise _node_error(node, error) from None

    @staticmethod
    def _keys(nodes, modules: nn.ModuleDict) -> dict:
        """A distinct module name per node: its name with dots replaced, suffixed with ``_``
        where that would collide with another node's (``"a.b"`` and ``"a_b"``, ``1`` and ``"1"``)
        or with an attribute of the (empty) ``modules`` dict (``"keys"``)."""
        keys: dict = {}
        for node in nodes:
            key = str(node).replace(".", "_") or "_"
            while key in keys.values() or hasattr(modules, key):
                key += "_"
            keys[node] = key
        return keys

    @property
    def output_shape(self) -> Shape:
        """``(c, h, w)`` of the output node."""
        return self.shapes[self.output]

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        values = dict(zip(self.inputs, inputs))
        for node in self.order:
            key = self.keys[node]
            merged = self.merges[key]([values[p] for p in self.sources[node]])
            values[node] = self.ops[key](merged)
            if self.drop_path and self.training and node in self.droppable:
                values[node] = drop_path(values[node], self.drop_path)
        return values[self.output]


def compile_graph(graph: nx.DiGraph, input_shapes: Sequence[Shape]) -> GraphModule:
    """Compile ``graph`` for inputs of ``input_shapes`` (each ``(c, h, w)``) into a module.

    Modules are created on torch's current default device, so ``with torch.device("meta"):``
    builds one without allocating memory (that is how parameters are counted before training).
    """
    return GraphModule(graph, input_shapes)
