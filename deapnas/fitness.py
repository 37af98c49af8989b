"""Fitness functions: callables registered as ``toolbox.evaluate``.

Both evaluators return an :class:`Evaluation`: the fitness tuple DEAP expects, carrying what was
measured in ``.info`` (parameters, training time, epochs, and the reason a candidate failed).
The information travels inside the returned value, so it survives a process-pool ``map`` where
only return values come back; :func:`deapnas.algorithms.assign` copies it onto the individual.

A candidate that cannot be built or trained gets :data:`WORST` and a reason; it never stops a
search.
"""
from __future__ import annotations

import copy
import csv
import math
import os
import time
from contextlib import contextmanager
from typing import Any, Callable, Optional

import torch
from torch import nn

from .data import Dataset, Split, batches
from .graph import InvalidGraphError
from .networks import count_parameters

#: The fitness of a candidate that could not be built, trained or looked up.
WORST = 0.0


class Evaluation(tuple):
    """A fitness tuple with an ``info`` dict of measurements (kept through pickling)."""

    def __new__(cls, values, **info: Any):
        evaluation = super().__new__(cls, values)
        evaluation.info = info
        return evaluation

    def __reduce__(self):
        return _evaluation, (tuple(self), self.info)


def _evaluation(values, info):
    return Evaluation(values, **info)


def failure(reason: str, **info: Any) -> Evaluation:
    """The worst fitness, with the reason the candidate failed."""
    return Evaluation((WORST,), reason=reason, **info)


class CandidateFailure(Exception):
    """A training run that cannot produce a fitness; the message is the recorded reason."""


def resolve_device(device: str = "auto") -> torch.device:
    """``"auto"`` is the first CUDA device when there is one, else the CPU."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device)


class TrainEvaluator:
    """Train a candidate on the training split and return ``(validation accuracy,)``.

    :param build: ``build(individual, input_shape, num_classes) -> nn.Module``, e.g.
        ``functools.partial(macro.build_network, channels=64)``.
    :param data: the dataset; only its train and validation splits are used here.
    :param epochs: training epochs per candidate.
    :param optimizer: ``"adam"`` or ``"sgd"`` (momentum 0.9); ``lr`` its learning rate.
    :param device: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda:1"``...
    :param seed: base seed; a candidate's ``eval_seed`` attribute, when set, is added to it, so
        an algorithm can give repeated evaluations of one architecture independent draws.
    :param deterministic: use only deterministic kernels (identical candidates score identically
        on a GPU too, at some cost in speed).
    :param max_params: candidates with more parameters fail before any memory is allocated.
    """

    def __init__(self, build: Callable[..., nn.Module], data: Dataset, epochs: int = 10,
                 batch_size: int = 128, optimizer: str = "adam", lr: float = 1e-3,
                 weight_decay: float = 0.0, device: str = "auto", seed: int = 0,
                 deterministic: bool = False, max_params: Optional[int] = None):
        if optimizer not in ("adam", "sgd"):
            raise ValueError(f"optimizer must be 'adam' or 'sgd', not {optimizer!r}")
        if epochs < 1 or batch_size < 1:
            raise ValueError("epochs and batch_size must be at least 1")
        self.build, self.data = build, data
        self.epochs, self.batch_size = epochs, batch_size
        self.optimizer, self.lr, self.weight_decay = optimizer, lr, weight_decay
        self.device = resolve_device(device)
        self.seed, self.deterministic, self.max_params = seed, deterministic, max_params
        if deterministic:  # cuBLAS needs a fixed workspace to be deterministic; set before use
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        self._on_device: Optional[Dataset] = None

    def __getstate__(self):  # a pickled evaluator moves its data to its new device itself
        return {**self.__dict__, "_on_device": None}

    def for_device(self, device: str) -> "TrainEvaluator":
        """A copy that trains on ``device`` (how a pool worker pinned to a device uses it)."""
        clone = copy.copy(self)
        clone.device, clone._on_device = resolve_device(device), None
        return clone

    @property
    def device_data(self) -> Dataset:
        """The dataset as tensors resident on the evaluation device (moved once)."""
        if self._on_device is None:
            self._on_device = self.data.to(self.device)
        return self._on_device

    def network(self, individual) -> nn.Module:
        """The candidate's network on the evaluation device, after the parameter cap check."""
        shape, classes = self.data.input_shape, self.data.num_classes
        params = count_parameters(lambda: self.build(individual, shape, classes))
        if self.max_params is not None and params > self.max_params:
            raise CandidateFailure(f"{params} parameters exceed the cap of {self.max_params}")
        with torch.device(self.device):
            return self.build(individual, shape, classes)

    def __call__(self, individual) -> Evaluation:
        seed = self.seed + getattr(individual, "eval_seed", 0)
        start = time.perf_counter()
        info: dict[str, Any] = {"params": None, "epochs": 0}
        try:
            with self._seeded(seed):
                net = self.network(individual)
                info["params"] = sum(p.numel() for p in net.parameters())
                data = self.device_data
                info["epochs"] = self.fit(net, data.train, self.epochs)
                accuracy = self.accuracy(net, data.val)
        except (InvalidGraphError, CandidateFailure) as error:
            return failure(str(error), train_seconds=time.perf_counter() - start, **info)
        except RuntimeError as error:
            if not _is_out_of_memory(error):
                raise
            _release_cuda_memory()
            return failure("out of memory", train_seconds=time.perf_counter() - start, **info)
        return Evaluation((accuracy,), reason=None, train_seconds=time.perf_counter() - start,
                          **info)

    def fit(self, net: nn.Module, split: Split, epochs: int) -> int:
        """Train ``net`` in place on ``split``; the number of epochs run.

        Losses are summed on the device and read back once per epoch; a non-finite loss raises
        :class:`CandidateFailure`.
        """
        optimizer = self._make_optimizer(net)
        generator = torch.Generator(split.x.device).manual_seed(torch.initial_seed() % 2**63)
        net.train()
        for epoch in range(1, epochs + 1):
            total = torch.zeros((), device=split.x.device)
            for x, y in batches(split, self.batch_size, shuffle=True, generator=generator):
                loss = nn.functional.cross_entropy(net(x), y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += loss.detach()
            if not math.isfinite(total.item()):
                raise CandidateFailure(f"non-finite training loss in epoch {epoch}")
        return epochs

    @torch.no_grad()
    def accuracy(self, net: nn.Module, split: Split) -> float:
        """Top-1 accuracy of ``net`` on ``split`` (in [0, 1])."""
        net.eval()
        correct = torch.zeros((), dtype=torch.long, device=split.x.device)
        for x, y in batches(split, 4 * self.batch_size, shuffle=False):
            correct += (net(x).argmax(1) == y).sum()
        return correct.item() / len(split)

    def _make_optimizer(self, net: nn.Module) -> torch.optim.Optimizer:
        if self.optimizer == "sgd":
            return torch.optim.SGD(net.parameters(), self.lr, momentum=0.9,
                                   weight_decay=self.weight_decay)
        return torch.optim.Adam(net.parameters(), self.lr, weight_decay=self.weight_decay)

    @contextmanager
    def _seeded(self, seed: int):
        """Seed torch for one evaluation without disturbing the caller's random state."""
        cuda = [self.device.index or 0] if self.device.type == "cuda" else []
        previous = torch.are_deterministic_algorithms_enabled()
        with torch.random.fork_rng(devices=cuda):
            torch.manual_seed(seed)
            torch.use_deterministic_algorithms(self.deterministic or previous)
            try:
                yield
            finally:
                torch.use_deterministic_algorithms(previous)


def _is_out_of_memory(error: RuntimeError) -> bool:
    text = str(error)
    return isinstance(error, torch.cuda.OutOfMemoryError) or "out of memory" in text or \
        "can't allocate memory" in text


def _release_cuda_memory() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class TableEvaluator:
    """Look a candidate up in a benchmark table (a CSV, one row per architecture).

    :param path: the CSV file, e.g. NAS-Bench-201's ``nb201.csv``.
    :param key: ``key(individual) -> str``, the value of ``key_column`` for the candidate
        (``deapnas.spaces.nb201.arch_string`` for NAS-Bench-201).
    :param metric: the column used as fitness (e.g. ``cifar10valid_xvalid_acc_200ep_mean``).
    :param report: a column recorded beside it for the final report, never used for selection
        (e.g. ``cifar10_test_acc_200ep``).

    Values are returned in the table's own units (NAS-Bench-201: percent).
    """

    def __init__(self, path: str | os.PathLike, key: Callable[[Any], str], metric: str,
                 report: Optional[str] = None, key_column: str = "arch_str"):
        self.path, self.key, self.metric, self.report = os.fspath(path), key, metric, report
        self.rows = _read_table(self.path, key_column, [metric] + ([report] if report else []))

    def __call__(self, individual) -> Evaluation:
        row = self.rows.get(self.key(individual))
        if row is None:
            return failure(f"{self.key(individual)} is not in {self.path}")
        info = {"reason": None}
        if self.report:
            info[self.report] = row[1]
        return Evaluation((row[0],), **info)


def _read_table(path: str, key_column: str, columns: list[str]) -> dict[str, tuple]:
    """``{key: (float(column) for column in columns)}`` with readable errors."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"benchmark table {path!r} does not exist")
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        missing = [c for c in [key_column, *columns] if c not in header]
        if missing:
            raise ValueError(f"{path} has no column {', '.join(missing)}; its columns: "
                             f"{', '.join(header)}")
        return {row[key_column]: tuple(float(row[c]) for c in columns) for row in reader}
