"""Search methods: each one a loop plus a small description of its options, registered by name.

A :class:`Method` names what ``deapnas search --algorithm NAME`` needs:

- ``options``: a dataclass of the method's own settings, declared with
  :func:`deapnas.options.option` (defaults are the paper's; an optional
  ``validate(self, config)`` method checks combinations);
- ``search(run) -> logbook``: builds its toolbox from ``run.toolbox()`` and runs its loop
  (see :class:`deapnas.runner.Run`);
- ``pick(run) -> dict``: the final architecture (default: the best single evaluation);
- ``evaluator(run)``: the fitness function, when the method has its own (default: a training
  run or a table look-up made from the shared settings and the method's training options);
- ``records(run)``: the space the run directory describes its evaluations in, when the
  individuals evaluated are not genomes of the searched space (EG-NAS scores vectors of
  architecture weights);
- ``final_training(config, options, data, epochs=, channels=)``: the evaluator ``deapnas train``
  retrains the pick with, when the method has a final training of its own (augmentation,
  schedule, width; default: the search's training options);
- ``presets``: named settings, ``"paper"`` and ``"tiny"`` at least, covering both the shared
  :class:`~deapnas.options.RunConfig` fields and the method's options.

A hook may be a :class:`Later`, a function imported when first called: the built-in methods
are declared in light modules (``egnas_options``...: options, presets, hooks) apart from their
machinery (``egnas``...: torch, the loop), so that listing them, ``deapnas search --help``,
imports neither torch nor any method's loop.

Register one with :func:`register_method`, or make it installable through the entry point
group ``deapnas.methods``, or name it on the command line as ``package.module:ATTRIBUTE``.
A run directory records its method's name, and :func:`recorded_method` finds it again without
importing anything the directory names: a ``package.module:ATTRIBUTE`` method is imported only
when the user names it.

:class:`Method` is declared in :mod:`deapnas.methods.method`, which the method modules import;
this module imports their declarations and registers each one's ``METHOD``, so that imports
run one way.
"""
from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import shlex
from typing import Any, Mapping

from ..options import RunConfig, flag, suggest, types, wrong_type
from . import (egnas_options, minigen_options, nasgep_options, random_search, regularized,
               renas_options)
from .method import Later, Method, final_training_of

__all__ = ["Method", "Later", "final_training_of", "METHODS", "IMPORTED", "register_method", "get_method",
           "recorded_method", "available"]

ENTRY_POINTS = "deapnas.methods"


METHODS: dict[str, Method] = {}

#: Methods imported as ``package.module:ATTRIBUTE`` because the user named them, by that name.
IMPORTED: dict[str, Method] = {}


def register_method(method: Method, *, replace: bool = False) -> Method:
    """Make ``method`` available as ``deapnas search --algorithm NAME``."""
    if not isinstance(method, Method):
        raise wrong_type("register_method(method)", method, "a deapnas.methods.Method")
    _check_fields(method)
    if method.name in METHODS and not replace:
        raise ValueError(f"method {method.name!r} is already registered; pass replace=True")
    _check_shared_options(method)
    METHODS[method.name] = method
    return method


def _check_fields(method: Method) -> None:
    """Refuse a :class:`Method` whose fields are not of the kinds the runner uses."""
    call = f"register_method: Method {method.name!r}"
    if not isinstance(method.name, str) or not method.name:
        raise wrong_type("register_method: Method(name)", method.name, "a non-empty name")
    if not (isinstance(method.options, type) and dataclasses.is_dataclass(method.options)):
        raise wrong_type(f"{call}, options", method.options,
                         "the class of its options, a dataclass declared with "
                         "deapnas.options.option (not an instance)")
    for name in ("search", "pick", "evaluator", "records", "final_training"):
        value = getattr(method, name)
        if (value is not None or name == "search") and not callable(value):
            raise wrong_type(f"{call}, {name}", value, "a function")
    if not isinstance(method.presets, Mapping) or not all(
            isinstance(p, Mapping) for p in method.presets.values()):
        raise wrong_type(f"{call}, presets", method.presets,
                         "a dict of named settings, e.g. {'tiny': {'evaluations': 50}}")
    if isinstance(method.spaces, str):
        raise wrong_type(f"{call}, spaces", method.spaces,
                         f"a tuple of space names, e.g. ({method.spaces!r},)")


def _check_shared_options(method: Method) -> None:
    """The command line has one flag per option name, so an option that other registered
    methods (or the run settings) also declare must have the same type in all of them."""
    declared = types(method.options)
    for other in [RunConfig] + [m.options for m in METHODS.values() if m.name != method.name]:
        for name, kind in types(other).items():
            if name in declared and declared[name] is not kind:
                owner = "the run settings" if other is RunConfig else other.__qualname__
                raise ValueError(
                    f"{method.name}'s option {flag(name)} is a {declared[name].__name__}, but "
                    f"{owner} declares {flag(name)} as a {kind.__name__}: an option shared by "
                    "methods must mean the same thing; rename one of them")


def get_method(name: str) -> Method:
    """The method registered as ``name``, installed under the entry point group
    ``deapnas.methods``, or importable as ``package.module:ATTRIBUTE``."""
    if not isinstance(name, str):
        raise wrong_type("get_method(name)", name, "a method's name, e.g. 're'")
    if name in METHODS:
        return METHODS[name]
    if ":" in name:
        if name not in IMPORTED:
            IMPORTED[name] = _import(name)
        return IMPORTED[name]
    for entry in importlib.metadata.entry_points(group=ENTRY_POINTS):
        if entry.name == name:
            return register_method(_checked(entry.load(), name))
    raise ValueError(f"unknown method {name!r}{suggest(name, available())}; choose one of "
                     f"{', '.join(available())}, or name your own as package.module:ATTRIBUTE")


def recorded_method(name: str, where: str) -> Method:
    """The method a run directory names (in ``where``): registered or installed under ``name``,
    or named as ``package.module:ATTRIBUTE`` earlier in this process by the user (on the
    command line, or with :func:`get_method`). A directory's word alone imports nothing."""
    if ":" in name and name not in IMPORTED:
        raise ValueError(f"{where} names the method {name!r}, which deapnas imports only when "
                         "you name it yourself: if you trust that module, add `--algorithm "
                         f"{shlex.quote(name)}` to the command (in Python, call "
                         "deapnas.methods.get_method with it first)")
    try:
        return get_method(name)
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from None


def available() -> list[str]:
    """The names of the registered and installed methods."""
    installed = [e.name for e in importlib.metadata.entry_points(group=ENTRY_POINTS)]
    return list(dict.fromkeys([*METHODS, *installed]))


def _import(spec: str) -> Method:
    module_name, _, attribute = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(f"cannot import {module_name!r} for --algorithm {spec} ({error}); is "
                         "its folder on PYTHONPATH (e.g. PYTHONPATH=. deapnas ...)?") from None
    try:
        return _checked(getattr(module, attribute), spec)
    except AttributeError:
        raise ValueError(f"{module_name} has no attribute {attribute!r}") from None


def _checked(method: Any, spec: str) -> Method:
    if not isinstance(method, Method):
        raise ValueError(f"{spec} is a {type(method).__name__}, not a deapnas.methods.Method")
    return method


for _built_in in (egnas_options, minigen_options, nasgep_options, random_search, regularized,
                  renas_options):
    register_method(_built_in.METHOD)
