"""Training-time augmentation of device-resident batches: random crops, horizontal flips,
AutoAugment, Cutout and random erasing, as final trainings use them (NASGEP's CIFAR training,
Alves & de Oliveira, 2020, Sec. IV-A; the macro paper's Fashion-MNIST training, Kyriakides &
Margaritis, 2020).

deapnas keeps every dataset on the device as normalised float tensors (:mod:`deapnas.data`),
so augmentation works on a batch there, after it is cut from the split and before the network
sees it. An :class:`Augment` is an option of the training :class:`~deapnas.training.Recipe`;
:func:`~deapnas.training.train_epoch` applies it to every training batch (never to the
validation or test split)::

    recipe = Recipe(epochs=300, batch_size=128, optimizer="sgd", lr=0.025, schedule="cosine",
                    augment=Augment(crop_padding=4, flip=True, autoaugment="cifar10",
                                    cutout=16))

The steps run in the order of the AutoAugment paper's CIFAR pipeline (Cubuk et al., 2019):
crop, flip, AutoAugment, Cutout; then random erasing, which torchvision's and the macro paper's
authors' pipelines apply last, after normalisation.

- **Random crop**: the image padded by ``crop_padding`` pixels of black on every side, then a
  crop of the original size at a random offset.
- **Horizontal flip** with probability 1/2.
- **AutoAugment**: torchvision's :class:`~torchvision.transforms.AutoAugment` with the learned
  policy named (``"cifar10"``, ``"imagenet"`` or ``"svhn"``), one random sub-policy per image.
  AutoAugment's operations (contrast, solarize, posterize, equalize...) are defined on 8-bit
  images, so each batch is mapped to ``uint8`` and back: each channel's range over the training
  split, ``[low, high]``, becomes ``[0, 255]``. The data were normalised from ``[0, 1]`` by an
  affine map per channel, so where a channel holds both a black and a white pixel somewhere in
  the training split (CIFAR, MNIST, digits), this recovers the original 8-bit values.
- **Cutout** (DeVries & Taylor, 2017): a square of ``cutout`` pixels, centred anywhere in the
  image (so it may be cut off at the border), is set to zero, the mean after normalisation.
- **Random erasing** (Zhong et al., 2020), with probability ``erasing`` per image: a rectangle
  of a random area (2 % to 33 % of the image's) and aspect ratio (0.3 to 3.3), placed wholly
  inside the image at a random position, is set to zero. As in torchvision's
  :class:`~torchvision.transforms.RandomErasing`, up to ten draws of area and ratio are tried
  and the first that fits is used; an image where none fits is left as it is (the ratio is
  drawn uniformly, as the authors' copy of it does, where torchvision draws its logarithm).

Black, for the crop's padding, is each channel's ``low``. Every random draw comes from the
training's shuffle generator, except AutoAugment's, which come from torch's global generator
(seeded per evaluation by :class:`~deapnas.fitness.TrainEvaluator`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from .options import AUTOAUGMENT_POLICIES

#: AutoAugment's learned policies, by name.
POLICIES = AUTOAUGMENT_POLICIES


@dataclass(frozen=True)
class Augment:
    """Which augmentations a training applies (see the module documentation).

    :param crop_padding: pad by this many pixels and crop back at random (0: no crop).
    :param flip: flip horizontally with probability 1/2.
    :param autoaugment: the AutoAugment policy (:data:`POLICIES`), or None.
    :param cutout: side of the square cut out of each image (0: none).
    :param erasing: probability of random erasing per image (0: none).
    """

    crop_padding: int = 0
    flip: bool = False
    autoaugment: Optional[str] = None
    cutout: int = 0
    erasing: float = 0.0

    def __post_init__(self):
        if self.crop_padding < 0 or self.cutout < 0:
            raise ValueError(f"crop_padding and cutout must be >= 0, not {self.crop_padding} "
                             f"and {self.cutout}")
        if not 0 <= self.erasing <= 1:
            raise ValueError(f"erasing is a probability, in [0, 1], not {self.erasing}")
        if self.autoaugment is not None and self.autoaugment not in POLICIES:
            raise ValueError(f"autoaugment must be one of {', '.join(POLICIES)} or None, not "
                             f"{self.autoaugment!r}")

    def __call__(self, x: torch.Tensor, bounds: tuple[torch.Tensor, torch.Tensor],
                 generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """The augmented batch ``x`` (N x C x H x W); ``bounds`` are the training split's
        per-channel ``(low, high)`` (:func:`pixel_bounds`)."""
        low, high = bounds
        if self.crop_padding:
            x = random_crop(x, self.crop_padding, low, generator)
        if self.flip:
            x = random_flip(x, generator)
        if self.autoaugment is not None:
            x = auto_augment(x, self.autoaugment, low, high)
        if self.cutout:
            x = cutout(x, self.cutout, generator)
        if self.erasing:
            x = random_erasing(x, self.erasing, generator)
        return x


def pixel_bounds(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each channel's smallest and largest value in the images ``x``, shaped ``C x 1 x 1``."""
    return x.amin(dim=(0, 2, 3))[:, None, None], x.amax(dim=(0, 2, 3))[:, None, None]


def _uniform(n: int, x: torch.Tensor, generator: Optional[torch.Generator]) -> torch.Tensor:
    return torch.rand(n, device=x.device, generator=generator)


def _offsets(n: int, count: int, x: torch.Tensor, generator) -> torch.Tensor:
    """``n`` random integers in ``[0, count)``."""
    return torch.randint(count, (n,), device=x.device, generator=generator)


def random_crop(x: torch.Tensor, padding: int, fill: torch.Tensor,
                generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Each image padded by ``padding`` pixels of ``fill`` (per channel, ``C x 1 x 1``) and
    cropped back to its size at a random offset."""
    n, _, height, width = x.shape
    padded = nn.functional.pad(x - fill, (padding,) * 4) + fill
    top = _offsets(n, 2 * padding + 1, x, generator)
    left = _offsets(n, 2 * padding + 1, x, generator)
    rows = (top[:, None] + torch.arange(height, device=x.device))[:, :, None]
    columns = (left[:, None] + torch.arange(width, device=x.device))[:, None, :]
    images = torch.arange(n, device=x.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[images, rows, columns].permute(0, 3, 1, 2)


def random_flip(x: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Each image flipped left-right with probability 1/2."""
    flipped = _uniform(len(x), x, generator) < 0.5
    return torch.where(flipped[:, None, None, None], x.flip(3), x)


def cutout(x: torch.Tensor, size: int, generator: Optional[torch.Generator] = None
           ) -> torch.Tensor:
    """Each image with a ``size`` x ``size`` square set to zero, centred at a random pixel
    (DeVries & Taylor, 2017)."""
    n, _, height, width = x.shape
    centre_y, centre_x = _offsets(n, height, x, generator), _offsets(n, width, x, generator)
    start_y, start_x = centre_y - size // 2, centre_x - size // 2
    ys, xs = torch.arange(height, device=x.device), torch.arange(width, device=x.device)
    inside_y = (ys >= start_y[:, None]) & (ys < (start_y + size)[:, None])
    inside_x = (xs >= start_x[:, None]) & (xs < (start_x + size)[:, None])
    square = inside_y[:, :, None] & inside_x[:, None, :]
    return x.masked_fill(square[:, None], 0.0)


#: Random erasing's range of the erased area (a fraction of the image's) and of its aspect
#: ratio, and how many draws of the two it tries (Zhong et al.'s and torchvision's defaults).
ERASING_AREA, ERASING_RATIO, ERASING_ATTEMPTS = (0.02, 0.33), (0.3, 3.3), 10


def random_erasing(x: torch.Tensor, probability: float,
                   generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Each image, with ``probability``, with a random rectangle set to zero (Zhong et al.,
    2020; see the module documentation): every draw for the whole batch at once."""
    n, _, height, width = x.shape
    draws = (n, ERASING_ATTEMPTS)
    area = height * width * _between(ERASING_AREA, draws, x, generator)
    ratio = _between(ERASING_RATIO, draws, x, generator)
    tall, wide = (area * ratio).sqrt().round().long(), (area / ratio).sqrt().round().long()
    fits = (tall < height) & (wide < width)
    first = fits.int().argmax(dim=1, keepdim=True)  # the first draw that fits (0 if none does)
    tall, wide = tall.gather(1, first)[:, 0], wide.gather(1, first)[:, 0]
    erase = fits.any(dim=1) & (_uniform(n, x, generator) < probability)
    top = (_uniform(n, x, generator) * (height - tall + 1)).long()
    left = (_uniform(n, x, generator) * (width - wide + 1)).long()
    ys, xs = torch.arange(height, device=x.device), torch.arange(width, device=x.device)
    inside_y = (ys >= top[:, None]) & (ys < (top + tall)[:, None])
    inside_x = (xs >= left[:, None]) & (xs < (left + wide)[:, None])
    rectangle = inside_y[:, :, None] & inside_x[:, None, :] & erase[:, None, None]
    return x.masked_fill(rectangle[:, None], 0.0)


def _between(bounds: tuple[float, float], shape: tuple, x: torch.Tensor,
             generator: Optional[torch.Generator]) -> torch.Tensor:
    """Uniform draws in ``[low, high)``, shaped ``shape``."""
    low, high = bounds
    return low + (high - low) * torch.rand(shape, device=x.device, generator=generator)


def auto_augment(x: torch.Tensor, policy: str, low: torch.Tensor, high: torch.Tensor
                 ) -> torch.Tensor:
    """AutoAugment (Cubuk et al., 2019) with torchvision's ``policy``, a sub-policy drawn for
    each image, on the images mapped from ``[low, high]`` to 8 bits and back."""
    from torchvision.transforms import AutoAugment, AutoAugmentPolicy

    transform = AutoAugment(AutoAugmentPolicy(policy))
    scale = (high - low).clamp_min(1e-8)
    images = ((x - low) / scale * 255).round().clamp(0, 255).to(torch.uint8)
    augmented = torch.stack([transform(image) for image in images])
    return augmented.to(x.dtype) / 255 * scale + low
