"""The operation registry: every graph node names an operation registered here.

An operation is a factory ``build(c_in, **args) -> nn.Module`` plus, optionally, a shape rule
``shape((c, h, w), **args) -> (c, h, w)``.  The compiler asks the shape rule for a node's output
shape before anything is built; an operation registered without one has its shape found by
running it once on PyTorch's ``meta`` device (no memory, no arithmetic).

Users add their own operations with :func:`register_op`::

    deapnas.ops.register_op("conv7", lambda c_in: nn.Conv2d(c_in, c_in, 7, padding=3))
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch
from torch import nn

from .options import CONV_PADDINGS

Shape = tuple[int, int, int]
ShapeRule = Callable[..., Shape]


@dataclass(frozen=True)
class Op:
    """A registered operation: how to build it and, optionally, how it changes a shape."""

    name: str
    build: Callable[..., nn.Module]
    shape: Optional[ShapeRule] = None

    def output_shape(self, in_shape: Shape, **args) -> Shape:
        """Output ``(c, h, w)`` for input ``in_shape``; raises ``ValueError`` if it is empty."""
        if self.shape is not None:
            out = tuple(int(v) for v in self.shape(in_shape, **args))
        else:
            out = _probe_shape(self, in_shape, args)
        if min(out) <= 0:
            raise ValueError(f"spatial size collapses to zero: {self.name} turns "
                             f"{_fmt(in_shape)} into {_fmt(out)}")
        return out


OPS: dict[str, Op] = {}


def register_op(name: str, build: Callable[..., nn.Module], shape: Optional[ShapeRule] = None,
                *, replace: bool = False) -> Op:
    """Register ``build(c_in, **args) -> nn.Module`` under ``name``; return the :class:`Op`."""
    if name in OPS and not replace:
        raise ValueError(f"operation {name!r} is already registered; pass replace=True to override")
    OPS[name] = Op(name, build, shape)
    return OPS[name]


def get_op(name: str) -> Op:
    """The operation registered under ``name``, with a readable error for an unknown one."""
    try:
        return OPS[name]
    except KeyError:
        raise KeyError(f"unknown operation {name!r}; registered: {', '.join(sorted(OPS))}") from None


def _probe_shape(op: Op, in_shape: Shape, args: dict) -> Shape:
    with torch.device("meta"):
        module = op.build(in_shape[0], **args).eval()  # eval: batch norm takes a batch of one
        try:
            out = module(torch.empty(1, *in_shape))
        except RuntimeError as error:  # torch reports a collapsed size as a RuntimeError
            raise ValueError(f"{op.name} cannot take {_fmt(in_shape)}: {error}") from None
    return tuple(out.shape[1:])


def _fmt(shape) -> str:
    return "x".join(str(v) for v in shape)


# -- shape rules -----------------------------------------------------------------------------

def same_shape(in_shape: Shape, **_) -> Shape:
    """The output has the input's shape (identity, stride-1 same-padded ops)."""
    return in_shape


def conv_shape(in_shape: Shape, channels: Optional[int] = None, stride: int = 1,
               padding: str = "same", kernel: int = 1, **_) -> Shape:
    """A convolution: ``channels`` out; ``"same"`` padding divides the spatial size by
    ``stride``, ``"valid"`` (no padding, stride 1) shrinks it by ``kernel - 1``."""
    c, h, w = in_shape
    if padding == "valid":
        return (channels or c, h - kernel + 1, w - kernel + 1)
    return (channels or c, -(-h // stride), -(-w // stride))


def pool_shape(in_shape: Shape, kernel: int, stride: Optional[int] = None, padding: int = 0,
               clamp: bool = False, **_) -> Shape:
    """An unpadded-by-default pooling window: floor((h + 2p - k) / s) + 1 (with ``clamp``, the
    window and its default stride first shrink to the size of an input smaller than ``k``)."""
    _check_clamp(clamp, padding)
    c, h, w = in_shape
    out = []
    for size in (h, w):
        window = min(kernel, size) if clamp else kernel
        out.append((size + 2 * padding - window) // (stride or window) + 1)
    return (c, *out)


def _check_clamp(clamp: bool, padding: int) -> None:
    if clamp and padding:
        raise ValueError("a clamped pool takes no padding (clamp=True with padding=0)")


# -- the built-in operations -----------------------------------------------------------------

class Zero(nn.Module):
    """Outputs zeros shaped like the input (NAS-Bench-201 and DARTS 'none')."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


def conv_relu6_bn(c_in: int, kernel: int, channels: int, dropout: float = 0.1,
                  padding: str = "same") -> nn.Module:
    """Macro-space convolution: Conv -> ReLU6 -> BatchNorm -> Dropout2d.

    ``padding="same"`` zero-pads to keep the size, an even kernel one pixel more on the right
    and bottom than on the left and top; ``"valid"`` pads nothing, so a k x k kernel shrinks
    the input by k - 1 (and one larger than its input leaves nothing: see :func:`conv_shape`).
    """
    if padding not in CONV_PADDINGS:
        raise ValueError(f"padding must be one of {', '.join(CONV_PADDINGS)}, not {padding!r}")
    before, after = ((kernel - 1) // 2, kernel // 2) if padding == "same" else (0, 0)
    return nn.Sequential(nn.ZeroPad2d((before, after, before, after)),
                         nn.Conv2d(c_in, channels, kernel), nn.ReLU6(),
                         nn.BatchNorm2d(channels), nn.Dropout2d(dropout))


def relu_conv_bn(c_in: int, kernel: int, channels: Optional[int] = None, stride: int = 1,
                 dilation: int = 1) -> nn.Module:
    """ReLU -> Conv -> BatchNorm, padded to keep the size at stride 1 (NAS-Bench-201 'nor_conv')."""
    channels = channels or c_in
    padding = dilation * (kernel - 1) // 2
    return nn.Sequential(nn.ReLU(), nn.Conv2d(c_in, channels, kernel, stride, padding, dilation,
                                              bias=False), nn.BatchNorm2d(channels))


def pool(c_in: int, kind: str, kernel: int, stride: Optional[int] = None, padding: int = 0,
         clamp: bool = False) -> nn.Module:
    """Average or max pooling; the stride defaults to the kernel (a downsampling pool).

    With ``clamp``, a window larger than its input shrinks to the input's height or width (and
    so does a default stride), so the output keeps at least one pixel per dimension; inputs at
    least as large as the kernel are pooled exactly as without it."""
    if kind not in ("avg", "max"):
        raise ValueError(f"pool kind must be 'avg' or 'max', not {kind!r}")
    _check_clamp(clamp, padding)
    if clamp:
        return ClampedPool(kind, kernel, stride)
    stride = stride or kernel
    if kind == "avg":
        return nn.AvgPool2d(kernel, stride, padding, count_include_pad=False)
    return nn.MaxPool2d(kernel, stride, padding)


class ClampedPool(nn.Module):
    """Unpadded pooling whose window (and default stride) never exceeds the input's size."""

    def __init__(self, kind: str, kernel: int, stride: Optional[int] = None):
        super().__init__()
        self.kind, self.kernel, self.stride = kind, kernel, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        window = tuple(min(self.kernel, size) for size in x.shape[-2:])
        stride = self.stride or window
        if self.kind == "avg":
            return nn.functional.avg_pool2d(x, window, stride)
        return nn.functional.max_pool2d(x, window, stride)

    def extra_repr(self) -> str:
        return f"{self.kind}, kernel_size={self.kernel}, stride={self.stride or 'kernel'}, clamped"


register_op("identity", lambda c_in: nn.Identity(), same_shape)
register_op("zero", lambda c_in: Zero(), same_shape)
register_op("conv_relu6_bn", conv_relu6_bn, conv_shape)
register_op("relu_conv_bn", relu_conv_bn, conv_shape)
register_op("pool", pool, pool_shape)
