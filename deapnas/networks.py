"""Skeletons that turn compiled graphs into classifiers.

- :class:`MacroNet`: a whole-network graph followed by the macro paper's three fully connected
  layers.
- :class:`CellNetwork`: a stem, stages of stacked cells joined by reductions, global average
  pooling and a linear classifier; cells are graphs with one input (NAS-Bench-201) or two (the
  outputs of the two previous cells, as in DARTS-style spaces). DARTS' retraining aids are
  options: an auxiliary classifier (:class:`AuxiliaryHead`) and drop-path
  (:func:`set_drop_path`).
"""
from __future__ import annotations

import math
from typing import Callable, Optional, Sequence, Union

import networkx as nx
import torch
from torch import nn

from .compiler import GraphModule, compile_graph, resize
from .graph import inputs_of
from .limits import MAX_PARAMETERS
from .ops import Shape, relu_conv_bn


def count_parameters(build: Union[Callable[[], nn.Module], nn.Module]) -> int:
    """Parameters of the module ``build()`` returns, built on the meta device (no memory used).

    Equals ``sum(p.numel() for p in build().parameters())`` of a real build. A module already
    built may be passed instead of its builder; its parameters are then counted as they are.
    """
    if isinstance(build, nn.Module):
        return sum(p.numel() for p in build.parameters())
    if not callable(build):
        raise TypeError("count_parameters takes an nn.Module or a function that builds one "
                        f"(e.g. lambda: build_network(...)), not {type(build).__name__}")
    with torch.device("meta"):
        return sum(p.numel() for p in build().parameters())


def check_parameters(build: Callable[[], nn.Module], what: str, advice: str) -> int:
    """:func:`count_parameters` of ``build`` (nothing allocated), or a ``ValueError`` naming
    ``what`` and giving ``advice`` when the network would have more than
    :data:`~deapnas.limits.MAX_PARAMETERS`: the guard before building a network that a file or
    a setting describes."""
    count = count_parameters(build)
    if count > MAX_PARAMETERS:
        raise ValueError(f"{what} makes a network of {count:,} parameters, more than the limit "
                         f"of {MAX_PARAMETERS:,} (deapnas.limits.MAX_PARAMETERS); {advice}")
    return count


class MacroNet(nn.Module):
    """A macro-search network: the compiled graph, then FC(n/4) -> FC(n/8) -> FC(classes).

    ``n`` is the number of features the graph outputs. ``head_activation`` (ReLU by default)
    sits between the fully connected layers: the paper does not name one, and without one three
    linear layers collapse into one.
    """

    def __init__(self, graph: nx.DiGraph, input_shape: Shape, num_classes: int,
                 head_activation: Callable[[], nn.Module] = nn.ReLU):
        super().__init__()
        self.body = compile_graph(graph, [input_shape])
        features = math.prod(self.body.output_shape)
        fc1 = max(features // 4, 1)
        fc2 = max(fc1 // 2, 1)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(features, fc1), head_activation(),
                                  nn.Linear(fc1, fc2), head_activation(),
                                  nn.Linear(fc2, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


class ResidualReduction(nn.Module):
    """NAS-Bench-201's reduction block: a stride-2 residual block that doubles the width."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.branch = nn.Sequential(relu_conv_bn(c_in, 3, c_out, stride=2),
                                    relu_conv_bn(c_out, 3, c_out))
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, 2, ceil_mode=True),
                                      nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.branch(x) + self.shortcut(x)


class Resize(nn.Module):
    """Average pooling to a fixed spatial size (:func:`deapnas.compiler.resize`)."""

    def __init__(self, size: Sequence[int]):
        super().__init__()
        self.size = tuple(size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return resize(x, self.size)


class GlobalAveragePool(nn.Module):
    """The mean over the spatial dimensions, N x C x H x W -> N x C (deterministic on CUDA,
    unlike ``AdaptiveAvgPool2d``'s backward)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((2, 3))


class Adapt(nn.Module):
    """Brings a cell input to the cell's width and spatial size: ReLU -> 1x1 conv -> BN, with
    stride 2 when the input comes from before a reduction, then average pooling to the exact
    size where no stride gives it (15x15 before a reduction to 7x7). Identity when nothing
    differs."""

    def __init__(self, shape: Shape, target: Shape):
        super().__init__()
        stride = max(shape[1] // target[1], 1)
        self.body = (nn.Identity() if shape == target else
                     relu_conv_bn(shape[0], 1, target[0], stride=stride))
        if shape != target and (-(-shape[1] // stride), -(-shape[2] // stride)) != target[1:]:
            self.body = nn.Sequential(self.body, Resize(target[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def _latest(states: Sequence, arity: int) -> list:
    """A cell's inputs: the last ``arity`` states, the first one repeated while there are fewer
    (the stem feeds both inputs of the first cell)."""
    sources = list(states[-arity:])
    return [sources[0]] * (arity - len(sources)) + sources


class Cell(nn.Module):
    """A compiled cell graph with its inputs adapted to the cell's width."""

    def __init__(self, graph: nx.DiGraph, previous: Sequence[Shape], width: int):
        super().__init__()
        arity = len(inputs_of(graph))
        sources = _latest(previous, arity)
        target = (width, *sources[-1][1:])
        self.arity = arity
        self.adapt = nn.ModuleList(Adapt(s, target) for s in sources)
        self.body = compile_graph(graph, [target] * arity)

    @property
    def output_shape(self) -> Shape:
        return self.body.output_shape

    def forward(self, states: Sequence[torch.Tensor]) -> torch.Tensor:
        sources = _latest(states, self.arity)
        return self.body(*(adapt(x) for adapt, x in zip(self.adapt, sources)))


class AuxiliaryHead(nn.Module):
    """DARTS' auxiliary classifier (from Inception, Szegedy et al., 2015), used in training
    only: ReLU, average pooling to 2x2, 1x1 convolution to 128 channels, BN, ReLU, 2x2
    convolution to 768, BN, ReLU, linear. DARTS pools CIFAR's 8x8 maps with a 5x5 window at
    stride 3, which gives 2x2; here maps of any size are pooled to 2x2 (:class:`Resize`: 4x4
    windows on 8x8 maps)."""

    def __init__(self, channels: int, num_classes: int):
        super().__init__()
        self.features = nn.Sequential(
            nn.ReLU(), Resize((2, 2)), nn.Conv2d(channels, 128, 1, bias=False),
            nn.BatchNorm2d(128), nn.ReLU(), nn.Conv2d(128, 768, 2, bias=False),
            nn.BatchNorm2d(768), nn.ReLU(), nn.Flatten())
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def inference_parameters(net: nn.Module) -> int:
    """The parameters ``net`` predicts with: all but an auxiliary classifier's, which serves
    training only (DARTS and RENAS count their networks so)."""
    return sum(p.numel() for name, p in net.named_parameters()
               if not name.startswith("auxiliary."))


def set_drop_path(net: nn.Module, rate: float) -> None:
    """Drop-path (Larsson et al., 2017, as DARTS retrains) in every compiled graph of ``net``:
    in training, the output of every operation but the identity is zeroed for a sample with
    probability ``rate`` and divided by 1 - ``rate`` otherwise
    (:attr:`GraphModule.drop_path <deapnas.compiler.GraphModule>`). Call it again to change the
    rate (DARTS raises it linearly over the epochs); 0 turns it off. Nothing changes in
    evaluation mode, nor in the network's parameters."""
    for module in net.modules():
        if isinstance(module, GraphModule):
            module.drop_path = rate


class CellNetwork(nn.Module):
    """Stem, ``stages`` stages of ``cells_per_stage`` normal cells, a reduction between stages,
    then BN-ReLU, global average pooling and a linear classifier.

    ``normal`` and ``reduction`` are cell graphs; each is compiled at the stage's width (the
    width doubles at every reduction). Without a ``reduction`` graph the stages are joined by
    NAS-Bench-201's residual reduction block. A reduction graph receives inputs at the doubled
    width and full size, and must itself halve the size (stride-2 ops on its input edges).

    With ``auxiliary``, an :class:`AuxiliaryHead` reads the output of the last reduction (at
    2/3 of the depth, as in DARTS), and in training the network returns ``(logits, auxiliary
    logits)``; :func:`deapnas.training.train_epoch` weighs the second loss. ``dropout`` is the
    rate of a dropout before the classifier (RENAS: 0.5). The stem has ``stem_channels``
    filters (default: ``channels``; NASNet and DARTS: 3 x ``channels``), which the first cells
    bring to their width. Drop-path is off until :func:`set_drop_path` sets a rate.
    """

    def __init__(self, input_shape: Shape, num_classes: int, normal: nx.DiGraph,
                 reduction: Optional[nx.DiGraph] = None, channels: int = 16,
                 cells_per_stage: int = 5, stages: int = 3, auxiliary: bool = False,
                 dropout: float = 0.0, stem_channels: Optional[int] = None):
        super().__init__()
        if auxiliary and stages < 2:
            raise ValueError("an auxiliary head reads the last reduction: it needs stages >= 2")
        stem = stem_channels or channels
        self.stem = nn.Sequential(nn.Conv2d(input_shape[0], stem, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(stem))
        shapes = [(stem, *input_shape[1:])]
        self.cells = nn.ModuleList()
        width = channels
        for stage in range(stages):
            if stage > 0:
                width *= 2
                block = (Cell(reduction, shapes, width) if reduction is not None else
                         ResidualReduction(shapes[-1][0], width))
                self.cells.append(block)
                shapes.append(block.output_shape if reduction is not None else
                              (width, -(-shapes[-1][1] // 2), -(-shapes[-1][2] // 2)))
                self.auxiliary_after = len(self.cells) - 1
            for _ in range(cells_per_stage):
                cell = Cell(normal, shapes, width)
                self.cells.append(cell)
                shapes.append(cell.output_shape)
        self.head = nn.Sequential(nn.BatchNorm2d(shapes[-1][0]), nn.ReLU(),
                                  GlobalAveragePool(),
                                  *([nn.Dropout(dropout)] if dropout else []),
                                  nn.Linear(shapes[-1][0], num_classes))
        self.auxiliary = (AuxiliaryHead(shapes[self.auxiliary_after + 1][0], num_classes)
                          if auxiliary else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        states, auxiliary = [self.stem(x)], None
        for index, block in enumerate(self.cells):
            states.append(block(states) if isinstance(block, Cell) else block(states[-1]))
            if self.auxiliary is not None and self.training and index == self.auxiliary_after:
                auxiliary = self.auxiliary(states[-1])
        logits = self.head(states[-1])
        return logits if auxiliary is None else (logits, auxiliary)
