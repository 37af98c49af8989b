"""Training shared by every method: optimizers with parameter groups, schedules, one epoch of
training, accuracy, and weights saved and loaded safely.

The pieces are small functions so that a method composes the recipe it needs::

    recipe = Recipe(optimizer="sgd", lr=0.1, schedule="cosine", epochs=10, grad_clip=5.0)
    optimizer = make_optimizer(param_groups(net, inherited=loaded), recipe)
    schedule = make_schedule(optimizer, recipe)
    for epoch in range(recipe.epochs):
        train_epoch(net, data.train, optimizer, recipe, generator)
        schedule.step()
    accuracy(net, data.val)

Weights go to disk and come back with :func:`~deapnas.weights.save_weights` and
:func:`~deapnas.weights.load_weights` (see :mod:`deapnas.weights`). :func:`load_matching`
copies every tensor whose name and shape match (parameter inheritance, weight sharing) and
reports which ones it took.
"""
from __future__ import annotations

import math
import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterable, Iterator, Optional

import numpy as np
import torch
from torch import nn

from .augment import Augment, pixel_bounds
from .data import Split, batches

OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("constant", "cosine")


class CandidateFailure(Exception):
    """A training run that cannot produce a fitness; the message is the recorded reason."""


@dataclass
class Recipe:
    """How a network is trained.

    :param epochs: epochs of training.
    :param batch_size: images per step.
    :param optimizer: ``"adam"`` or ``"sgd"`` (with ``momentum``, Nesterov if ``nesterov``).
    :param lr: the learning rate (of inherited parameters, see ``new_lr_factor``).
    :param weight_decay: L2 penalty.
    :param schedule: ``"constant"`` or ``"cosine"`` (annealed to ``min_lr`` over ``epochs``,
        stepped once per epoch).
    :param grad_clip: clip the gradients' global norm to this value (None: no clipping).
    :param new_lr_factor: learning rate multiplier of the parameters a network did *not*
        inherit (RENAS trains new parameters at 10x the rate of inherited ones).
    :param augment: the augmentation of every training batch (crops, flips, AutoAugment,
        Cutout: :class:`~deapnas.augment.Augment`; DARTS retrains with
        ``Augment(crop_padding=4, flip=True, cutout=16)``), None for none.
    :param auxiliary_weight: weight of the auxiliary classifier's loss, for a network that
        returns ``(logits, auxiliary logits)`` in training (DARTS: 0.4).
    :param drop_path: the drop-path rate of the cells' operations at the last epoch, raised
        linearly from 0 (:func:`deapnas.networks.set_drop_path`; DARTS: 0.2).
    """

    epochs: int = 10
    batch_size: int = 128
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    schedule: str = "constant"
    min_lr: float = 0.0
    grad_clip: Optional[float] = None
    new_lr_factor: float = 1.0
    augment: Optional[Augment] = None
    auxiliary_weight: float = 0.4
    drop_path: float = 0.0

    def __post_init__(self):
        problems = [
            (self.epochs >= 1, f"epochs must be at least 1, not {self.epochs}"),
            (self.batch_size >= 1, f"batch_size must be at least 1, not {self.batch_size}"),
            (self.optimizer in OPTIMIZERS,
             f"optimizer must be one of {', '.join(OPTIMIZERS)}, not {self.optimizer!r}"),
            (math.isfinite(self.lr) and self.lr > 0, f"lr must be positive, not {self.lr}"),
            (0 <= self.momentum < 1, f"momentum must lie in [0, 1), not {self.momentum}"),
            (math.isfinite(self.weight_decay) and self.weight_decay >= 0,
             f"weight_decay must be >= 0, not {self.weight_decay}"),
            (self.schedule in SCHEDULES,
             f"schedule must be one of {', '.join(SCHEDULES)}, not {self.schedule!r}"),
            (0 <= self.min_lr <= self.lr, f"min_lr must lie in [0, lr], not {self.min_lr}"),
            (self.grad_clip is None or self.grad_clip > 0,
             f"grad_clip must be positive, not {self.grad_clip}"),
            (math.isfinite(self.new_lr_factor) and self.new_lr_factor > 0,
             f"new_lr_factor must be positive, not {self.new_lr_factor}"),
            (math.isfinite(self.auxiliary_weight) and self.auxiliary_weight >= 0,
             f"auxiliary_weight must be >= 0, not {self.auxiliary_weight}"),
            (0 <= self.drop_path < 1, f"drop_path must lie in [0, 1), not {self.drop_path}"),
        ]
        for ok, message in problems:
            if not ok:
                raise ValueError(message)


def resolve_device(device: str = "auto") -> torch.device:
    """``"auto"`` is the first CUDA device when there is one, else the CPU; an unknown or
    unavailable device is a ``ValueError`` that says what exists."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise ValueError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from None
    if resolved.type == "cuda":
        count = torch.cuda.device_count()
        if count == 0:
            raise ValueError(f"device {device!r} asked for, but CUDA is not available here; "
                             "use --device cpu (or auto)")
        if (resolved.index or 0) >= count:
            raise ValueError(f"device {device!r} does not exist: this machine has {count} "
                             f"CUDA device(s), cuda:0 to cuda:{count - 1}")
    elif resolved.type != "cpu":
        raise ValueError(f"device {device!r} is not supported; use auto, cpu, cuda or cuda:N")
    return resolved


@contextmanager
def deterministic_kernels(enabled: bool, cublas_workspace: str = ":4096:8") -> Iterator[None]:
    """Only deterministic kernels inside when ``enabled`` (cuBLAS then needs a fixed workspace,
    set unless the environment has one); the setting outside is restored on exit.

    torch's switch is touched only when it changes: its first call imports torch's operator
    tables (about a second of CPU), which would otherwise land on a process's first candidate.
    """
    if not enabled or torch.are_deterministic_algorithms_enabled():
        yield
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", cublas_workspace)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(False)


@contextmanager
def torch_threads(count: Optional[int]) -> Iterator[None]:
    """Torch on ``count`` CPU threads in this process for the block, the count restored after
    it (``None``: left as it is). A fitness trained on the CPU depends on the count in its last
    digits, since sums split across threads round differently: runs compared with each other,
    in a process or in a pool's workers, must use the same count."""
    if count is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def evaluation_seed(run_seed: int, eval_seed: int = 0) -> int:
    """The torch seed of one evaluation, mixed from the run's seed and the candidate's own, so
    that runs with different seeds never train from the same initialisation."""
    return int(np.random.SeedSequence([run_seed, eval_seed]).generate_state(1, np.uint64)[0]
               % 2**63)


def param_groups(net: nn.Module, inherited: Iterable[str] = (), lr: float = 1e-3,
                 new_lr_factor: float = 1.0) -> list[dict]:
    """Optimizer parameter groups: the ``inherited`` parameters (by name) at ``lr``, every
    other parameter at ``lr * new_lr_factor``. Empty groups are left out."""
    inherited = set(inherited)
    old, new = [], []
    for name, parameter in net.named_parameters():
        (old if name in inherited else new).append(parameter)
    groups = [{"params": old, "lr": lr, "name": "inherited"},
              {"params": new, "lr": lr * new_lr_factor, "name": "new"}]
    return [group for group in groups if group["params"]]


def make_optimizer(groups: list[dict] | Iterable[nn.Parameter], recipe: Recipe
                   ) -> torch.optim.Optimizer:
    """The recipe's optimizer over ``groups`` (see :func:`param_groups`) or plain parameters."""
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(groups, recipe.lr, momentum=recipe.momentum,
                               nesterov=recipe.nesterov and recipe.momentum > 0,
                               weight_decay=recipe.weight_decay)
    return torch.optim.Adam(groups, recipe.lr, weight_decay=recipe.weight_decay)


def make_schedule(optimizer: torch.optim.Optimizer, recipe: Recipe
                  ) -> torch.optim.lr_scheduler.LRScheduler:
    """The recipe's learning-rate schedule, stepped once per epoch."""
    if recipe.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, recipe.epochs,
                                                          eta_min=recipe.min_lr)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0)


def train_epoch(net: nn.Module, split: Split, optimizer: torch.optim.Optimizer, recipe: Recipe,
                generator: Optional[torch.Generator] = None) -> float:
    """One pass of ``net`` over ``split`` in shuffled batches; the mean training loss (see
    :func:`train_epoch_measured`, which this is, for the training accuracy too)."""
    return train_epoch_measured(net, split, optimizer, recipe, generator)[0]


def train_epoch_measured(net: nn.Module, split: Split, optimizer: torch.optim.Optimizer,
                         recipe: Recipe, generator: Optional[torch.Generator] = None,
                         bounds: Optional[tuple[torch.Tensor, torch.Tensor]] = None
                         ) -> tuple[float, float]:
    """One pass of ``net`` over ``split`` in shuffled batches; ``(mean training loss, training
    accuracy)``, the accuracy that of the batches as trained on (augmented, the network in
    training mode), in [0, 1].

    The recipe's ``augment`` transforms each batch (drawing from ``generator``) within the
    split's pixel ``bounds`` (:func:`~deapnas.augment.pixel_bounds`, found here when not given:
    a training of several epochs finds them once and passes them on); a network
    that returns ``(logits, auxiliary logits)`` adds ``recipe.auxiliary_weight`` times the
    auxiliary loss. Losses and correct predictions are summed on the device and read back
    once, at the end: a non-finite loss raises :class:`CandidateFailure`.
    """
    net.train()
    total = torch.zeros((), device=split.x.device)
    correct = torch.zeros((), dtype=torch.long, device=split.x.device)
    if recipe.augment is not None and bounds is None:
        bounds = pixel_bounds(split.x)
    for x, y in batches(split, recipe.batch_size, shuffle=True, generator=generator):
        if recipe.augment is not None:
            x = recipe.augment(x, bounds, generator)
        output = net(x)
        loss = _loss(output, y, recipe.auxiliary_weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if recipe.grad_clip is not None:
            nn.utils.clip_grad_norm_(net.parameters(), recipe.grad_clip)
        optimizer.step()
        total += loss.detach() * len(y)
        correct += (_logits(output).detach().argmax(1) == y).sum()
    images = max(len(split), 1)
    mean = total.item() / images
    if not math.isfinite(mean):
        raise CandidateFailure("non-finite training loss")
    return mean, correct.item() / images


def _logits(output: torch.Tensor | tuple) -> torch.Tensor:
    """The logits of a network's output, without the auxiliary ones when there are some."""
    return output[0] if isinstance(output, tuple) else output


def _loss(output: torch.Tensor | tuple, y: torch.Tensor, auxiliary_weight: float
          ) -> torch.Tensor:
    """Cross-entropy of the logits, plus the weighted auxiliary one when there is one."""
    if isinstance(output, tuple):
        logits, auxiliary = output
        return nn.functional.cross_entropy(logits, y) + \
            auxiliary_weight * nn.functional.cross_entropy(auxiliary, y)
    return nn.functional.cross_entropy(output, y)


@torch.no_grad()
def accuracy(net: nn.Module, split: Split, batch_size: int = 512) -> float:
    """Top-1 accuracy of ``net`` on ``split``, in [0, 1]."""
    net.eval()
    correct = torch.zeros((), dtype=torch.long, device=split.x.device)
    for x, y in batches(split, batch_size, shuffle=False):
        correct += (net(x).argmax(1) == y).sum()
    return correct.item() / max(len(split), 1)


def shuffle_generator(split: Split) -> torch.Generator:
    """A generator on the split's device seeded from torch's current seed (so a seeded
    evaluation shuffles reproducibly)."""
    return torch.Generator(split.x.device).manual_seed(torch.initial_seed() % 2**63)


def random_states(generator: torch.Generator) -> dict:
    """Every random state a training draws from: torch's (the CPU's, and the current CUDA
    device's when ``generator`` is on one: dropout, drop-path) and ``generator``'s (shuffling,
    augmentation), as tensors, with the kind of device they belong to."""
    states = {"device": generator.device.type, "torch": torch.get_rng_state(),
              "generator": generator.get_state()}
    if generator.device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(generator.device)
    return states


def restore_random_states(states: dict, generator: torch.Generator) -> None:
    """Put back the :func:`random_states` saved by a training on the same kind of device as
    ``generator``; those of another kind are left alone (a CUDA generator's state means
    nothing to the CPU's), and the training goes on from the random states it has."""
    if states.get("device") != generator.device.type:
        return
    torch.set_rng_state(states["torch"].cpu())
    generator.set_state(states["generator"].cpu())
    if "cuda" in states:
        torch.cuda.set_rng_state(states["cuda"].cpu(), generator.device)


def load_matching(net: nn.Module, state: dict) -> list[str]:
    """Copy into ``net`` every entry of ``state`` whose name and shape match one of ``net``'s
    parameters or buffers; the names copied. Everything else keeps its initialisation."""
    own = net.state_dict()
    matched = {name: tensor for name, tensor in state.items()
               if name in own and isinstance(tensor, torch.Tensor)
               and tensor.shape == own[name].shape}
    net.load_state_dict(matched, strict=False)
    return sorted(matched)
