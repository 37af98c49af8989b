"""Search spaces: one module per genome family, each offering the same functions.

Every space module provides ``mutate``, ``to_graph``, ``build_network``, ``key`` (the identity
of the architecture a genome compiles to), ``to_json`` / ``from_json`` (a readable genome) and an
initialiser taking the individual's class (``macro.init_genome``, ``nb201.init_cell``).
"""
from __future__ import annotations

from types import ModuleType

from . import macro, nb201

SPACES: dict[str, ModuleType] = {"macro": macro, "nb201": nb201}
INITIALISERS = {"macro": macro.init_genome, "nb201": nb201.init_cell}


def get_space(name: str) -> ModuleType:
    """The space module registered under ``name``."""
    try:
        return SPACES[name]
    except KeyError:
        raise ValueError(f"unknown space {name!r}; choose one of {', '.join(SPACES)}") from None
