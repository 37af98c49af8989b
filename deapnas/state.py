"""A search loop's state as data: JSON for everything readable, tensors on their own.

:func:`encode` turns the keyword arguments a loop hands to ``journal.checkpoint(**state)`` into
a JSON-ready structure plus a dict of tensors; :func:`decode` turns them back. Nothing is
pickled, so restoring a state received from someone else runs none of their code: individuals
are rebuilt through their space's ``from_json``, tensors are read with
``torch.load(weights_only=True)``.

What a state may hold, and how it is written:

- JSON values (dicts with string keys, lists, strings, numbers, booleans, None) as they are;
  tuples and dicts with other keys are marked so that they come back as they were;
- individuals (anything with a DEAP ``fitness``): the space's ``to_json`` of the genome, the
  fitness values (None while invalid) and the instance attributes that ``from_json`` does not
  restore by itself (``eval_seed``, ``info``, a birth generation...), which must be state too;
- ``deap.tools.Logbook``: its header, records and chapters;
- torch tensors (state dicts, optimizer states) and numpy arrays: stored as tensors;
- numpy scalars: as Python numbers.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import torch
from deap import base, tools

_MARK = "$"


class StateError(ValueError):
    """A state that cannot be written or read back; the message names the offending part."""


def encode(state: Any, space: Any, container: type) -> tuple[Any, dict[str, torch.Tensor]]:
    """``(json_ready, tensors)`` for ``state``, whose individuals belong to ``space`` (a
    :class:`~deapnas.spaces.Space`) and are rebuilt as ``container``."""
    tensors: dict[str, torch.Tensor] = {}
    return _Encoder(space, container, tensors).encode(state, "state"), tensors


def decode(data: Any, tensors: dict[str, torch.Tensor], space: Any, container: type) -> Any:
    """Inverse of :func:`encode`: individuals come back as ``container`` instances made by the
    space's ``from_json``."""
    return _Decoder(tensors, lambda genome: space.from_json(genome, container)).decode(data)


class _Encoder:
    def __init__(self, space: Any, container: type, tensors: dict):
        self.space, self.container, self.tensors = space, container, tensors

    def encode(self, value: Any, where: str) -> Any:
        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, (int, float)):
            return self._number(value)
        if isinstance(value, np.generic):
            return self._number(value.item())
        if isinstance(value, (torch.Tensor, np.ndarray)):
            return self._tensor(value)
        if isinstance(value, tools.Logbook):
            return {_MARK + "logbook": self._logbook(value, where)}
        if isinstance(getattr(value, "fitness", None), base.Fitness):
            return {_MARK + "individual": self._individual(value, where)}
        if isinstance(value, dict):
            return self._dict(value, where)
        if isinstance(value, tuple):
            return {_MARK + "tuple": [self.encode(v, f"{where}[{i}]") for i, v in enumerate(value)]}
        if isinstance(value, list):
            return [self.encode(v, f"{where}[{i}]") for i, v in enumerate(value)]
        raise StateError(f"{where} is a {type(value).__name__}, which a checkpoint cannot hold: "
                         "hand over JSON values, individuals, logbooks, tensors or arrays")

    @staticmethod
    def _number(value):
        if isinstance(value, float) and not math.isfinite(value):
            return {_MARK + "float": repr(value)}
        return value

    def _tensor(self, value) -> dict:
        name = f"t{len(self.tensors)}"
        if isinstance(value, np.ndarray):
            self.tensors[name] = torch.from_numpy(np.ascontiguousarray(value)).clone()
            return {_MARK + "ndarray": name}
        self.tensors[name] = value.detach().cpu().clone()
        return {_MARK + "tensor": name}

    def _dict(self, value: dict, where: str) -> dict:
        if all(isinstance(k, str) and not k.startswith(_MARK) for k in value):
            return {k: self.encode(v, f"{where}[{k!r}]") for k, v in value.items()}
        return {_MARK + "dict": [[self.encode(k, where), self.encode(v, f"{where}[{k!r}]")]
                                 for k, v in value.items()]}

    def _logbook(self, logbook: tools.Logbook, where: str) -> dict:
        return {"header": logbook.header,
                "records": [self.encode(r, f"{where} record {i}") for i, r in enumerate(logbook)],
                "chapters": {name: self._logbook(chapter, f"{where} chapter {name}")
                             for name, chapter in logbook.chapters.items()}}

    def _individual(self, individual, where: str) -> dict:
        """The genome's JSON, the fitness, and every attribute ``from_json`` does not restore."""
        fitness = individual.fitness
        genome = self.space.to_json(individual)
        restored = vars(self.space.from_json(genome, self.container))
        attributes = {k: v for k, v in vars(individual).items()
                      if k != "fitness" and not (k in restored and restored[k] == v)}
        return {"genome": genome,
                "fitness": [self._number(v) for v in fitness.values] if fitness.valid else None,
                "attributes": self.encode(attributes, f"{where} attributes")}


class _Decoder:
    def __init__(self, tensors: dict, rebuild: Callable[[Any], Any]):
        self.tensors, self.rebuild = tensors, rebuild

    def decode(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.decode(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, inner), = value.items()
            if key.startswith(_MARK):
                return self._marked(key[1:], inner)
        return {k: self.decode(v) for k, v in value.items()}

    def _marked(self, kind: str, inner: Any) -> Any:
        if kind == "float":
            return float(inner)
        if kind == "tuple":
            return tuple(self.decode(v) for v in inner)
        if kind == "dict":
            return {self.decode(k): self.decode(v) for k, v in inner}
        if kind in ("tensor", "ndarray"):
            if inner not in self.tensors:
                raise StateError(f"the checkpoint's tensor file lacks tensor {inner!r}")
            tensor = self.tensors[inner]
            return tensor.numpy() if kind == "ndarray" else tensor
        if kind == "logbook":
            return self._logbook(inner)
        if kind == "individual":
            return self._individual(inner)
        raise StateError(f"unknown entry {_MARK}{kind} in a checkpoint")

    def _logbook(self, data: dict) -> tools.Logbook:
        logbook = tools.Logbook()
        logbook.header = data["header"]
        logbook.extend(self.decode(r) for r in data["records"])
        for name, chapter in data["chapters"].items():
            logbook.chapters[name] = self._logbook(chapter)
        return logbook

    def _individual(self, data: dict):
        individual = self.rebuild(data["genome"])
        for name, value in self.decode(data["attributes"]).items():
            setattr(individual, name, value)
        if data["fitness"] is not None:
            individual.fitness.values = tuple(self.decode(v) for v in data["fitness"])
        return individual
