"""Search spaces: one module per genome family, each described by one :class:`Space` object.

A :class:`Space` gathers what the rest of deapnas needs to know about a genome family: its
genome class, how to make a random genome, its variation operators, how a genome becomes a
graph and a network, the identity of the architecture it encodes, and its readable JSON form.
The functions stay ordinary module-level functions of the space module (register them in a
toolbox directly, as with ``deap.gp``); the object only names them. Add a space of your own
with :func:`register_space`.

:class:`Space` is declared in :mod:`deapnas.spaces.space`, which the space modules import; this
module names the built-in ones and imports each (its ``SPACE``) when the space is first asked
for, so that imports run one way and reading a run of one space (``deapnas show``) imports
no other space, nor torch where the space builds its networks only when asked to.
"""
from __future__ import annotations

import importlib
from typing import Iterator, Mapping

from ..options import suggest, wrong_type
from .space import Space, check_limit

__all__ = ["Space", "check_limit", "SPACES", "BUILT_IN", "register_space", "get_space"]

#: The built-in spaces: each is the ``SPACE`` of the module of this package of its name.
BUILT_IN = ("darts", "macro", "minigen", "nasgep", "nasnet", "nb201")


class _Registry(Mapping):
    """The spaces by name (:data:`SPACES`): the built-in ones, each imported when first asked
    for, and those registered with :func:`register_space`."""

    def __init__(self) -> None:
        self._spaces: dict[str, Space] = {}

    def __getitem__(self, name: str) -> Space:
        if name not in self._spaces and name in BUILT_IN:
            self._spaces[name] = importlib.import_module(f"{__name__}.{name}").SPACE
        return self._spaces[name]

    def __contains__(self, name: object) -> bool:
        return name in BUILT_IN or name in self._spaces

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys([*BUILT_IN, *self._spaces]))

    def __len__(self) -> int:
        return len(set(BUILT_IN) | set(self._spaces))

    def register(self, space: Space) -> None:
        self._spaces[space.name] = space


#: The spaces by name: every built-in one (imported when first looked up) and those registered.
SPACES: Mapping[str, Space] = _Registry()


def register_space(space: Space, *, replace: bool = False) -> Space:
    """Make ``space`` available by name (``--space NAME``, run directories)."""
    if not isinstance(space, Space):
        raise wrong_type("register_space(space)", space, "a deapnas.spaces.Space")
    if space.name in SPACES and not replace:
        raise ValueError(f"space {space.name!r} is already registered; pass replace=True")
    SPACES.register(space)
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
