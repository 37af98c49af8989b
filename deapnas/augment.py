"""Augmentation of image batches where they lie (on the GPU, say), for training: random crops of
zero-padded images and horizontal flips (the standard CIFAR augmentation), and cutout (DeVries &
Taylor, 2017), as DARTS retrains its networks (Liu et al., 2019). Each image gets its own draw;
every draw comes from the given generator, so a seeded training run augments reproducibly.

The images are normalised already, so padding and cutout fill with zeros, the mean image
value (DARTS pads the raw image with black and cuts out after normalising, as here).
"""
from __future__ import annotations

from typing import Optional

import torch
from torch.nn import functional


def _draw(count: int, high: int, like: torch.Tensor,
          generator: Optional[torch.Generator]) -> torch.Tensor:
    """``count`` integers in ``[0, high)`` on ``like``'s device."""
    return torch.randint(0, high, (count,), device=like.device, generator=generator)


def random_crop(x: torch.Tensor, padding: int,
                generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Each image padded by ``padding`` zero pixels on every side, then cropped back to its
    size at a random offset."""
    n, _, h, w = x.shape
    padded = functional.pad(x, (padding,) * 4)
    rows = _draw(n, 2 * padding + 1, x, generator)[:, None] + torch.arange(h, device=x.device)
    cols = _draw(n, 2 * padding + 1, x, generator)[:, None] + torch.arange(w, device=x.device)
    batch = torch.arange(n, device=x.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]] \
        .permute(0, 3, 1, 2).contiguous()


def horizontal_flip(x: torch.Tensor, generator: Optional[torch.Generator] = None
                    ) -> torch.Tensor:
    """Each image mirrored left to right with probability 1/2."""
    flip = _draw(len(x), 2, x, generator).bool()
    return torch.where(flip[:, None, None, None], x.flip(3), x)


def cutout(x: torch.Tensor, length: int, generator: Optional[torch.Generator] = None
           ) -> torch.Tensor:
    """Each image with a ``length`` x ``length`` square zeroed around a random centre (the
    square is clipped at the borders, as DeVries & Taylor's)."""
    n, _, h, w = x.shape
    half = length // 2

    def inside(size: int) -> torch.Tensor:  # n x size: which rows (columns) the square covers
        centre = _draw(n, size, x, generator)[:, None]
        index = torch.arange(size, device=x.device)
        return (index >= centre - half) & (index < centre + half)

    rows, cols = inside(h), inside(w)
    return x.masked_fill((rows[:, :, None] & cols[:, None, :])[:, None], 0.0)


def augment(x: torch.Tensor, crop_padding: int = 0, flip: bool = False, cutout_length: int = 0,
            generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """``x`` randomly cropped (``crop_padding`` > 0), flipped (``flip``) and cut out
    (``cutout_length`` > 0), in that order (DARTS: 4, True, 16)."""
    if crop_padding:
        x = random_crop(x, crop_padding, generator)
    if flip:
        x = horizontal_flip(x, generator)
    if cutout_length:
        x = cutout(x, cutout_length, generator)
    return x
