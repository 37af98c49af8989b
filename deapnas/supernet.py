"""Weight-sharing supernets whose forward pass takes the architecture weights explicitly.

``supernet(x, alpha)`` mixes, on every edge of every cell, all candidate operations weighted by
the softmax of that edge's row of ``alpha`` (DARTS, Liu et al., 2019). Because ``alpha`` is an
argument and not a parameter, one supernet scores any number of candidate vectors without being
copied: that is what an evolution strategy over ``alpha`` (EG-NAS) needs.

- :class:`DartsSupernet`: the DARTS search network (8 cells, reductions at 1/3 and 2/3 of the
  depth, 4 intermediate nodes and 14 edges per cell, the 8 DARTS operations including ``none``)
  with PC-DARTS partial channel connections (Xu et al., 2020): each edge computes its mixture on
  1/K of the channels, passes the rest through, and shuffles the channels; PC-DARTS' edge
  normalisation is an option. It derives a :class:`deapnas.spaces.darts.Genotype`.
- :class:`NB201Supernet`: the NAS-Bench-201 skeleton (Dong & Yang, 2020) with one mixed cell of
  6 edges and 5 operations; it derives a NAS-Bench-201 cell (a list of 6 operation names).

``alpha`` is one flat vector; :class:`AlphaLayout` maps it to and from its named blocks of
``(edge, operation)`` weights. :class:`SupernetTraining` trains a supernet's weights at a given
``alpha`` with the shared training code. Every operation is built from the shared registry
(:mod:`deapnas.ops`). All batch normalisations use the statistics of the batch they see, in
training and in evaluation alike (no running averages), so a forward pass is a pure function of
the weights, ``alpha`` and the batch: scoring a candidate never changes the supernet.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

import numpy as np
import torch
from torch import nn

from .data import Split
from .networks import GlobalAveragePool, ResidualReduction
from .ops import Shape, get_op
from .spaces import darts, nb201
from .training import Recipe, make_optimizer, make_schedule, param_groups, train_epoch

Array = np.ndarray | torch.Tensor


@dataclass(frozen=True)
class AlphaLayout:
    """The blocks of a flat architecture vector, laid end to end in order: each block has a
    name and a shape (``(edges, operations)`` for operation weights, ``(edges,)`` for edge
    weights) and is stored row-major."""

    blocks: tuple[tuple[str, tuple[int, ...]], ...]

    @property
    def size(self) -> int:
        """The length of the flat vector."""
        return sum(math.prod(shape) for _, shape in self.blocks)

    def split(self, alpha: Array) -> dict[str, Array]:
        """``{name: block}``, each block a view of ``alpha`` (NumPy or torch) in its shape."""
        if alpha.shape != (self.size,):
            raise ValueError(f"alpha must be a flat vector of {self.size} weights, "
                             f"not of shape {tuple(alpha.shape)}")
        parts, start = {}, 0
        for name, shape in self.blocks:
            end = start + math.prod(shape)
            parts[name] = alpha[start:end].reshape(shape)
            start = end
        return parts

    def join(self, parts: Mapping[str, Array]) -> np.ndarray:
        """The flat vector (float64) of blocks given by name; inverse of :meth:`split`."""
        missing = [name for name, _ in self.blocks if name not in parts]
        if missing:
            raise ValueError(f"blocks {missing} are missing; the layout has "
                             f"{[name for name, _ in self.blocks]}")
        flat = []
        for name, shape in self.blocks:
            block = np.asarray(parts[name], dtype=np.float64)
            if block.shape != shape:
                raise ValueError(f"block {name!r} must have shape {shape}, not {block.shape}")
            flat.append(block.ravel())
        return np.concatenate(flat)

    def position(self, name: str, *index: int) -> int:
        """Where entry ``index`` (e.g. ``edge, op``) of block ``name`` sits in the flat vector."""
        start = 0
        for block, shape in self.blocks:
            if block == name:
                return start + int(np.ravel_multi_index(index, shape))
            start += math.prod(shape)
        raise KeyError(f"no block {name!r}; the layout has {[b for b, _ in self.blocks]}")


def darts_layout(edge_normalisation: bool = False) -> AlphaLayout:
    """The layout of :class:`DartsSupernet`'s ``alpha``: blocks ``normal`` and ``reduce`` of
    shape ``(14, 8)`` (edges in :data:`deapnas.spaces.darts.EDGES` order, operations in
    :data:`deapnas.spaces.darts.OPS` order), then, with PC-DARTS' edge normalisation, one
    weight per edge in ``normal_edges`` and ``reduce_edges``."""
    edges = (len(darts.EDGES), len(darts.OPS))
    blocks = [("normal", edges), ("reduce", edges)]
    if edge_normalisation:
        blocks += [("normal_edges", edges[:1]), ("reduce_edges", edges[:1])]
    return AlphaLayout(tuple(blocks))


#: The layout of :class:`NB201Supernet`'s ``alpha``: one block ``cell`` of shape ``(6, 5)``.
NB201_LAYOUT = AlphaLayout((("cell", (len(nb201.EDGES), len(nb201.OPS))),))


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Interleave the channels of ``groups`` equal groups (ShuffleNet; PC-DARTS uses it so that
    every channel takes its turn in the mixed part)."""
    n, c, h, w = x.shape
    return x.reshape(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


def _batch_statistics(module: nn.Module) -> nn.Module:
    """Make every batch normalisation inside ``module`` use batch statistics only."""
    for norm in module.modules():
        if isinstance(norm, nn.BatchNorm2d):
            norm.track_running_stats = False
            norm.running_mean = norm.running_var = norm.num_batches_tracked = None
    return module


class MixedEdge(nn.Module):
    """One supernet edge: the weighted sum of every candidate operation (PC-DARTS partial
    channels: on the first 1/``partial`` of the channels; the others pass through, max-pooled
    where the edge strides, and the channels are shuffled).

    :param specs: ``{op name: compiler node attributes}`` of the candidates, in ``alpha``'s
        column order; ``none`` adds nothing and is not computed (its weight still counts in
        the softmax).
    :param normalise_pools: follow each pooling by a batch norm without affine parameters
        (DARTS does, so that pooled and convolved outputs mix on one scale).
    """

    def __init__(self, channels: int, specs: Mapping[str, dict], partial: int = 1,
                 stride: int = 1, normalise_pools: bool = False):
        super().__init__()
        if channels % partial:
            raise ValueError(f"partial channels K = {partial} must divide the width "
                             f"{channels}; choose channels as a multiple of K")
        self.partial, self.stride = partial, stride
        self.columns = [i for i, name in enumerate(specs) if name != "none"]
        self.ops = nn.ModuleList()
        for name, spec in specs.items():
            if name == "none":
                continue
            op = get_op(spec["op"]).build(channels // partial, **spec.get("args", {}))
            if spec["op"] == "pool" and normalise_pools:
                op = nn.Sequential(op, nn.BatchNorm2d(channels // partial, affine=False))
            self.ops.append(op)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        mixed_channels = x.shape[1] // self.partial
        part = x[:, :mixed_channels].contiguous()  # one copy instead of one in every op
        mixed = sum(weights[i] * op(part) for i, op in zip(self.columns, self.ops))
        if self.partial == 1:
            return mixed
        rest = x[:, mixed_channels:]
        if self.stride > 1:
            rest = nn.functional.max_pool2d(rest, self.stride, self.stride, ceil_mode=True)
        return channel_shuffle(torch.cat([mixed, rest], dim=1), self.partial)


def _darts_specs(stride: int) -> dict[str, dict]:
    """The DARTS search operations: no affine parameters in their batch norms (DARTS)."""
    return {name: ({"op": "zero"} if name == "none" else darts.node_spec(name, stride, False))
            for name in darts.OPS}


class DartsSearchCell(nn.Module):
    """A DARTS cell of mixed edges: both inputs preprocessed to the cell's width, each
    intermediate node the sum of its edges from every earlier node, the output the
    concatenation of the intermediate nodes."""

    def __init__(self, c_prev_prev: int, c_prev: int, channels: int, reduction: bool,
                 reduction_prev: bool, partial: int):
        super().__init__()
        self.preprocess0, self.preprocess1 = darts.cell_inputs(c_prev_prev, c_prev, channels,
                                                               reduction_prev, affine=False)
        self.edges = nn.ModuleList(
            MixedEdge(channels, _darts_specs(stride), partial, stride, normalise_pools=True)
            for stride in (2 if reduction and source < 2 else 1 for source, _ in darts.EDGES))

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor,
                edge_weights: Optional[torch.Tensor]) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        start = 0
        for _ in range(darts.NODES):
            outputs = [self.edges[start + j](h, weights[start + j]) for j, h in enumerate(states)]
            if edge_weights is not None:
                scale = torch.softmax(edge_weights[start:start + len(outputs)], dim=0)
                outputs = [s * out for s, out in zip(scale, outputs)]
            states.append(sum(outputs))
            start += len(outputs)
        return torch.cat(states[2:], dim=1)


class DartsSupernet(nn.Module):
    """The DARTS search network with PC-DARTS partial channels, ``forward(x, alpha)``.

    :param channels: width of the first cells (EG-NAS: 16); the stem has 3x as many.
    :param layers: cells (8), reduction cells at ``layers // 3`` and ``2 * layers // 3``.
    :param partial: PC-DARTS' K (4): the share 1/K of the channels each edge mixes.
    :param edge_normalisation: PC-DARTS' edge normalisation: ``alpha`` also holds a weight
        per edge (blocks ``normal_edges`` and ``reduce_edges``); each node sums its edges
        weighted by their softmax, and derivation ranks edges by that times the op weight.

    ``alpha`` has the blocks ``normal`` and ``reduce`` of shape ``(14, 8)``: one row per edge
    in :data:`deapnas.spaces.darts.EDGES` order, one column per operation in
    :data:`deapnas.spaces.darts.OPS` order.
    """

    def __init__(self, input_shape: Shape, num_classes: int, channels: int = 16,
                 layers: int = 8, partial: int = 4, edge_normalisation: bool = False):
        super().__init__()
        stem = 3 * channels
        self.stem = nn.Sequential(nn.Conv2d(input_shape[0], stem, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(stem))
        c_prev_prev, c_prev, width = stem, stem, channels
        self.cells = nn.ModuleList()
        self.kinds = []
        for reduction, reduction_prev in darts.skeleton(layers):
            width *= 2 if reduction else 1
            self.cells.append(DartsSearchCell(c_prev_prev, c_prev, width, reduction,
                                              reduction_prev, partial))
            self.kinds.append("reduce" if reduction else "normal")
            c_prev_prev, c_prev = c_prev, darts.NODES * width
        self.classifier = nn.Sequential(GlobalAveragePool(), nn.Linear(c_prev, num_classes))
        self.layout = darts_layout(edge_normalisation)
        _batch_statistics(self)

    def forward(self, x: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        parts = self.layout.split(alpha)
        weights = {cell: torch.softmax(parts[cell], dim=-1) for cell in darts.CELLS}
        s0 = s1 = self.stem(x)
        for kind, cell in zip(self.kinds, self.cells):
            s0, s1 = s1, cell(s0, s1, weights[kind], parts.get(f"{kind}_edges"))
        return self.classifier(s1)

    def derive(self, alpha: Array) -> darts.Genotype:
        """The DARTS genotype of ``alpha`` (see :func:`derive_darts`)."""
        return derive_darts(_numpy(alpha), self.layout)


class NB201SearchCell(nn.Module):
    """The NAS-Bench-201 cell with a mixed operation on each of its 6 edges."""

    def __init__(self, channels: int, partial: int):
        super().__init__()
        self.edges = nn.ModuleList(MixedEdge(channels, nb201.NODE_OPS, partial)
                                   for _ in nb201.EDGES)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for target in (1, 2, 3):
            nodes.append(sum(self.edges[i](nodes[source], weights[i])
                             for i, (source, to) in enumerate(nb201.EDGES) if to == target))
        return nodes[-1]


class NB201Supernet(nn.Module):
    """The NAS-Bench-201 skeleton of mixed cells, ``forward(x, alpha)``: stem, 3 stages of
    ``cells_per_stage`` cells joined by residual reductions, BN-ReLU, pooling, linear.

    ``alpha`` has one block ``cell`` of shape ``(6, 5)``: a row per edge in
    :data:`deapnas.spaces.nb201.EDGES` order, a column per operation in
    :data:`deapnas.spaces.nb201.OPS` order. ``partial`` is PC-DARTS' K (1: every channel, as
    in the benchmark's own weight-sharing searches).
    """

    def __init__(self, input_shape: Shape, num_classes: int, channels: int = 16,
                 cells_per_stage: int = 5, partial: int = 1):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(input_shape[0], channels, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(channels))
        self.cells = nn.ModuleList()
        width = channels
        for stage in range(3):
            if stage > 0:
                self.cells.append(ResidualReduction(width, 2 * width))
                width *= 2
            self.cells.extend(NB201SearchCell(width, partial) for _ in range(cells_per_stage))
        self.classifier = nn.Sequential(nn.BatchNorm2d(width), nn.ReLU(), GlobalAveragePool(),
                                        nn.Linear(width, num_classes))
        self.layout = NB201_LAYOUT
        _batch_statistics(self)

    def forward(self, x: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        weights = torch.softmax(self.layout.split(alpha)["cell"], dim=-1)
        x = self.stem(x)
        for block in self.cells:
            x = block(x, weights) if isinstance(block, NB201SearchCell) else block(x)
        return self.classifier(x)

    def derive(self, alpha: Array) -> list[str]:
        """The NAS-Bench-201 cell of ``alpha`` (see :func:`derive_nb201`)."""
        return derive_nb201(_numpy(alpha), self.layout)


# -- training the weights -----------------------------------------------------------------------

class AtAlpha(nn.Module):
    """The supernet with α fixed: what the shared training loop trains."""

    def __init__(self, supernet: nn.Module, alpha: torch.Tensor):
        super().__init__()
        self.supernet = supernet
        self.register_buffer("alpha", alpha)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.supernet(x, self.alpha)


class SupernetTraining:
    """A supernet's weights ω trained one pass over the training split at a time, at a given
    α, with the shared training code (the gradient half of EG-NAS); the state of that training
    as tensors (:meth:`state_dict`) for checkpoints.

    :param recipe: optimizer, schedule (stepped once per pass) and clipping;
        ``recipe.epochs`` is the schedule's length (EG-NAS:
        :data:`deapnas.evolutionary_gradient.SEARCH_RECIPE`).
    :param seed: seeds the generator that shuffles the training batches.
    """

    def __init__(self, supernet: nn.Module, data: Split, recipe: Recipe, seed: int = 0):
        self.supernet, self.data, self.recipe = supernet, data, recipe
        self.optimizer = make_optimizer(param_groups(supernet, lr=recipe.lr), recipe)
        self.schedule = make_schedule(self.optimizer, recipe)
        self.generator = torch.Generator(data.x.device).manual_seed(seed)

    def epoch(self, alpha: np.ndarray) -> float:
        """One pass of SGD on ω over the training split at ``alpha``; the mean loss."""
        at_alpha = AtAlpha(self.supernet, torch.as_tensor(
            alpha, dtype=torch.float32, device=self.data.x.device))
        loss = train_epoch(at_alpha, self.data, self.optimizer, self.recipe, self.generator)
        self.schedule.step()
        return loss

    def state_dict(self) -> dict:
        """ω, the optimizer's and the schedule's state and the shuffling generator's state."""
        return {"weights": self.supernet.state_dict(), "optimizer": self.optimizer.state_dict(),
                "schedule": self.schedule.state_dict(), "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        """Continue from a :meth:`state_dict`."""
        self.supernet.load_state_dict(state["weights"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.generator.set_state(state["generator"])


# -- derivation ---------------------------------------------------------------------------------

def _numpy(alpha: Array) -> np.ndarray:
    return alpha.detach().cpu().double().numpy() if isinstance(alpha, torch.Tensor) else \
        np.asarray(alpha, dtype=np.float64)


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def darts_cell(weights: np.ndarray, edge_weights: Optional[np.ndarray] = None,
               ops: Sequence[str] = darts.OPS) -> list[tuple[str, int]]:
    """DARTS' derivation of one cell from its ``(14, ops)`` operation weights: on every edge
    the strongest operation other than ``none``; for every node the two incoming edges whose
    strongest such operation is strongest (weights are the softmax over each edge's row; with
    PC-DARTS edge normalisation, times the softmax of ``edge_weights`` over the node's edges).
    A node's two pairs are listed strongest first, as DARTS prints them; ties go to the
    earlier operation and the earlier edge."""
    probabilities = _softmax(np.asarray(weights, dtype=np.float64))
    candidates = [i for i, name in enumerate(ops) if name != "none"]
    strongest = probabilities[:, candidates].max(axis=1)
    best_op = [ops[candidates[int(np.argmax(row[candidates]))]] for row in probabilities]
    pairs, start = [], 0
    for node in range(2, 2 + darts.NODES):
        edges = np.arange(start, start + node)
        strength = strongest[edges]
        if edge_weights is not None:
            strength = strength * _softmax(np.asarray(edge_weights[edges], dtype=np.float64))
        chosen = edges[np.argsort(-strength, kind="stable")[:2]]
        pairs += [(best_op[e], darts.EDGES[e][0]) for e in chosen]
        start += node
    return pairs


def derive_darts(alpha: np.ndarray, layout: Optional[AlphaLayout] = None) -> darts.Genotype:
    """The DARTS genotype of a flat ``alpha`` laid out as :class:`DartsSupernet`'s
    (``layout``; default :func:`darts_layout` without edge normalisation)."""
    parts = (layout or darts_layout()).split(np.asarray(alpha, dtype=np.float64))
    normal, reduce = (darts_cell(parts[cell], parts.get(f"{cell}_edges"))
                      for cell in darts.CELLS)
    return darts.Genotype(normal=normal, reduce=reduce)


def derive_nb201(alpha: np.ndarray, layout: Optional[AlphaLayout] = None) -> list[str]:
    """The NAS-Bench-201 cell of a flat ``alpha``: the strongest operation on every edge
    (``none`` included, a benchmark operation like any other)."""
    weights = (layout or NB201_LAYOUT).split(np.asarray(alpha, dtype=np.float64))["cell"]
    return [nb201.OPS[int(i)] for i in weights.argmax(axis=1)]
