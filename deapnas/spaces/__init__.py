"""Search spaces: one module per genome family, each described by one :class:`Space` object.

A :class:`Space` gathers what the rest of deapnas needs to know about a genome family: its
genome class, how to make a random genome, its variation operators, how a genome becomes a
graph and a network, the identity of the architecture it encodes, and its readable JSON form.
The functions stay ordinary module-level functions of the space module (register them in a
toolbox directly, as with ``deap.gp``); the object only names them. Add a space of your own
with :func:`register_space`.

:class:`Space` is declared in :mod:`deapnas.spaces.space`, which the space modules import; this
module imports them and registers each one's ``SPACE``, so that imports run one way.
"""
from __future__ import annotations

from ..options import suggest, wrong_type
from . import darts, macro, minigen, nasgep, nasnet, nb201
from .space import Space, check_limit

__all__ = ["Space", "check_limit", "SPACES", "register_space", "get_space"]


SPACES: dict[str, Space] = {}


def register_space(space: Space, *, replace: bool = False) -> Space:
    """Make ``space`` available by name (``--space NAME``, run directories)."""
    if not isinstance(space, Space):
        raise wrong_type("register_space(space)", space, "a deapnas.spaces.Space")
    if space.name in SPACES and not replace:
        raise ValueError(f"space {space.name!r} is already registered; pass replace=True")
    SPACES[space.name] = space
    return space


def get_space(name: str) -> Space:
    """The space registered under ``name``."""
    if not isinstance(name, str):
        raise wrong_type("get_space(name)", name, "a space's name, e.g. 'nb201'")
    try:
        return SPACES[name]
    except KeyError:
        raise ValueError(f"unknown space {name!r}{suggest(name, list(SPACES))}; choose one of "
                         f"{', '.join(SPACES)}") from None


for _built_in in (darts, macro, minigen, nasgep, nasnet, nb201):
    register_space(_built_in.SPACE)
