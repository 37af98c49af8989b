"""What a search space is: the :class:`Space` record that names a genome family's functions, and
:func:`check_limit`, with which a space checks what it reads. The registry of spaces,
:mod:`deapnas.spaces`, imports the built-in spaces, which import this module: imports run one
way.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional, Sequence

from .. import limits
from ..individuals import individual_class


@dataclass(frozen=True)
class Space:
    """A genome family and the functions that work on it.

    :param name: the name used by ``--space`` and recorded in run directories.
    :param genome: the genome's base class (``list``, :class:`~deapnas.spaces.macro.MacroGenome`
        ...); :meth:`individual` adds a DEAP fitness to it.
    :param init: ``init(container) -> genome``, a random genome made with ``container``.
    :param mutate: ``mutate(individual) -> (individual,)``, DEAP's contract.
    :param to_graph: ``to_graph(genome) -> networkx.DiGraph`` in the compiler's conventions.
    :param build_network: ``build_network(genome, input_shape, num_classes, **network)``.
    :param key: ``key(genome) -> str | None``, equal for genomes that encode the same
        architecture (None for one that encodes none).
    :param to_json: ``to_json(genome)``, a JSON-ready readable form; ``from_json(data,
        container)`` is its inverse.
    :param mate: ``mate(a, b) -> (a, b)`` when the space has a crossover.
    :param cells: ``cells(genome) -> {name: graph}`` for a genome of several cells (normal and
        reduction...), drawn side by side; default ``{"": to_graph(genome)}``.
    :param network_options: the run options ``build_network`` takes, each mapped to its keyword
        (``{"channels": "channels", "cells": "cells_per_stage"}``).
    """

    name: str
    genome: type
    init: Callable[..., Any]
    mutate: Callable[..., tuple]
    to_graph: Callable[[Any], Any]
    build_network: Callable[..., Any]
    key: Callable[[Any], Optional[str]]
    to_json: Callable[[Any], Any]
    from_json: Callable[..., Any]
    mate: Optional[Callable[..., tuple]] = None
    cells: Optional[Callable[[Any], dict]] = None
    network_options: Mapping[str, str] = field(default_factory=dict)
    description: str = ""

    def individual(self, weights: Sequence[float] = (1.0,)) -> type:
        """The individual class of this space for fitness ``weights`` (cached: one class per
        space and weights, at module level in :mod:`deapnas.individuals`)."""
        return individual_class(self.genome, weights)

    def network_kwargs(self, options: Any) -> dict:
        """The ``build_network`` keywords taken from the attributes of ``options``."""
        return {keyword: getattr(options, name) for name, keyword in self.network_options.items()
                if getattr(options, name, None) is not None}

    def graphs(self, genome) -> dict:
        """``{name: graph}`` of the genome's cells (one unnamed graph for most spaces)."""
        return self.cells(genome) if self.cells is not None else {"": self.to_graph(genome)}

    def describe(self, genome) -> dict:
        """``{"genome": to_json(genome), "key": key(genome)}``, what a run records."""
        return {"genome": self.to_json(genome), "key": self.key(genome)}


def check_limit(what: str, value: int, limit: str) -> None:
    """Raise ``ValueError`` when ``value`` exceeds :mod:`deapnas.limits`'s ``limit`` (a name such
    as ``"MAX_CHANNELS"``); ``what`` names the field (``"cell 3: channels"``). Spaces check what
    they read with it, before anything is built."""
    maximum = getattr(limits, limit)
    if value > maximum:
        raise ValueError(f"{what} {value} exceeds the limit of {maximum} "
                         f"(deapnas.limits.{limit})")
