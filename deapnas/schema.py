"""What each JSON file of a run directory must hold, and the one function that checks it.

A run directory may come from someone else, or be damaged or edited, so every JSON value read
from it is checked against a small declarative schema before it is used: its type, whether it
must be there, its range. A value that does not fit is a
:class:`~deapnas.safefiles.RunDirectoryError` that names the file, the record and the field::

    runs/x/history.jsonl line 3: fitness must be a list of numbers or null, not a string; ...

Objects may hold keys their schema does not name (a later version may add some); the keys it
names are checked.
"""
from __future__ import annotations

import math
import typing
from dataclasses import dataclass, replace
from typing import Any, Mapping, Optional

from . import options as opts
from .options import RunConfig


class SchemaError(ValueError):
    """A JSON value that does not fit its schema (raised as a ``RunDirectoryError`` by
    :func:`check`'s callers; the message names the field)."""


@dataclass(frozen=True)
class Field:
    """One JSON value: the Python types ``json`` reads it as, and its constraints.

    :param kinds: the types it may have (``int`` never accepts a ``bool``; ``float`` accepts
        an ``int``); empty: any JSON value.
    :param required: whether an object must hold it.
    :param null: whether it may be ``null``.
    :param minimum: the smallest number allowed (for a list: the fewest items).
    :param maximum: the largest number allowed.
    :param items: the schema of each item of a list.
    :param fields: the schema of an object's named keys.
    :param values: the schema of every value of an object whose keys are free.
    :param one_of: keys of an object of which exactly one holds a value (the others null).
    :param describe: what it must be, in words (default: from ``kinds``).
    """

    kinds: tuple[type, ...] = ()
    required: bool = True
    null: bool = False
    minimum: Optional[float] = None
    maximum: Optional[float] = None
    items: Optional["Field"] = None
    fields: Optional[Mapping[str, "Field"]] = None
    values: Optional["Field"] = None
    one_of: tuple[str, ...] = ()
    describe: Optional[str] = None


def anything(**constraints: Any) -> Field:
    """Any JSON value, null included unless ``null=False``."""
    return Field(**{"null": True, **constraints})


def integer(**constraints: Any) -> Field:
    """A whole number (never ``true`` or ``false``)."""
    return Field((int,), describe="a whole number", **constraints)


def number(**constraints: Any) -> Field:
    """A finite number, whole or not."""
    return Field((float,), describe="a finite number", **constraints)


def text(**constraints: Any) -> Field:
    """A string."""
    return Field((str,), describe="a string", **constraints)


def boolean(**constraints: Any) -> Field:
    """``true`` or ``false``."""
    return Field((bool,), describe="true or false", **constraints)


def listing(items: Field, **constraints: Any) -> Field:
    """A list whose items all fit ``items`` (``minimum``: the fewest items)."""
    return Field((list,), items=items, describe=f"a list of {_plural(items)}", **constraints)


def record(fields: Mapping[str, Field], **constraints: Any) -> Field:
    """An object with named keys (others are allowed and left unchecked)."""
    return Field((dict,), fields=fields, describe="an object", **constraints)


def mapping(values: Field = Field(null=True), **constraints: Any) -> Field:
    """An object whose keys are free and whose values all fit ``values``."""
    return Field((dict,), values=values, describe="an object", **constraints)


def optional(field: Field) -> Field:
    """``field``, which an object may leave out."""
    return replace(field, required=False)


_KINDS = {int: integer, float: number, str: text, bool: boolean}


def of_options(cls: type) -> Field:
    """The object an options dataclass is saved as (:func:`deapnas.options.as_dict`): each
    declared field of its type, or null where the field is ``Optional``; a field left out
    takes its default, as :func:`deapnas.options.from_dict` gives it. Ranges and choices are
    :func:`deapnas.options.check`'s."""
    kinds, hints = opts.types(cls), typing.get_type_hints(cls)
    return record({f.name: _KINDS.get(kinds[f.name], anything)(
        required=False, null=type(None) in typing.get_args(hints[f.name]))
        for f in opts.fields(cls)})


def check(value: Any, field: Field, name: str = "") -> None:
    """Raise :class:`SchemaError` naming the first part of ``value`` (found under ``name``)
    that does not fit ``field``."""
    label = name or "the file"
    if value is None:
        if not field.null:
            raise SchemaError(f"{label} must be {_described(field)}, not null")
        return
    if field.kinds and not _has_kind(value, field.kinds):
        raise SchemaError(f"{label} must be {_described(field)}, not {_kind_of(value)}")
    if isinstance(value, float) and float in field.kinds and not math.isfinite(value):
        raise SchemaError(f"{label} must be a finite number, not {value}")
    _check_range(value, field, label)
    if isinstance(value, list) and field.items is not None:
        for index, item in enumerate(value):
            check(item, field.items, f"{name}[{index}]")
    if isinstance(value, dict):
        for key, inner in (field.fields or {}).items():
            if key in value:
                check(value[key], inner, f"{name}.{key}" if name else key)
            elif inner.required:
                raise SchemaError(f"{name + '.' if name else ''}{key} is missing")
        if field.values is not None:
            for key, inner_value in value.items():
                check(inner_value, field.values, f"{name}.{key}" if name else key)
        given = [key for key in field.one_of if value.get(key) is not None]
        if field.one_of and len(given) != 1:
            prefix = f"{name}." if name else ""
            raise SchemaError(f"exactly one of {' and '.join(prefix + k for k in field.one_of)} "
                              f"must be given, not {len(given)}")


def _check_range(value: Any, field: Field, label: str) -> None:
    if isinstance(value, list):
        if field.minimum is not None and len(value) < field.minimum:
            raise SchemaError(f"{label} must have at least {field.minimum} item(s), not "
                              f"{len(value)}")
        return
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return
    if field.minimum is not None and value < field.minimum:
        raise SchemaError(f"{label} must be at least {field.minimum}, not {value}")
    if field.maximum is not None and value > field.maximum:
        raise SchemaError(f"{label} must be at most {field.maximum}, not {value}")


def _has_kind(value: Any, kinds: tuple[type, ...]) -> bool:
    if isinstance(value, bool):
        return bool in kinds
    if isinstance(value, int) and float in kinds:
        return True
    return isinstance(value, kinds)


def _kind_of(value: Any) -> str:
    return {bool: "true or false", int: "a whole number", float: "a number", str: "a string",
            list: "a list", dict: "an object"}.get(type(value), type(value).__name__)


def _described(field: Field) -> str:
    text = field.describe or "a JSON value"
    return f"{text} or null" if field.null else text


def _plural(field: Field) -> str:
    words = {"a whole number": "whole numbers", "a finite number": "numbers",
             "a string": "strings", "true or false": "true or false values",
             "an object": "objects"}
    return words.get(field.describe or "", "values")


# -- the files ------------------------------------------------------------------------------------

#: ``config.json``; its ``options`` are checked against the method's options once the method
#: is known (:func:`of_options`).
CONFIG = record({"format": integer(), "deapnas": optional(text()), "method": text(),
                 "run": of_options(RunConfig), "options": mapping(),
                 "typed": optional(mapping(text()))})

#: One line of ``history.jsonl``: a valid evaluation has a fitness and no reason, a failed one
#: a reason and no fitness.
EVALUATION = record({
    "evaluation": integer(minimum=1), "genome": anything(),
    "key": optional(text(null=True)), "eval_seed": optional(integer()),
    "fitness": listing(number(), minimum=1, null=True), "reason": text(null=True),
    "info": optional(mapping()), "elapsed": optional(number(minimum=0)),
    "config": optional(text(null=True))}, one_of=("fitness", "reason"))

#: ``checkpoint.json`` (the loop's own ``state`` is checked as it is decoded and used).
CHECKPOINT = record({
    "format": integer(), "evaluations": integer(minimum=0), "elapsed": number(minimum=0),
    "config": mapping(null=True),
    "random": record({"python": listing(anything(), minimum=3),
                      "numpy": mapping(), "torch": text(),
                      "cuda": optional(listing(text()))}),
    "tensors": record({"file": text(), "sha256": text()}, null=True),
    "logbook": record({"records": integer(minimum=0), "header": listing(anything(), null=True)},
                      null=True),
    "state": mapping()})

#: ``best.json``, the method's pick.
BEST = record({
    "method": text(), "space": optional(text()), "genome": anything(null=False), "key":
    optional(text(null=True)), "fitness": number(), "metric": text(),
    "params": optional(integer(minimum=0, null=True)), "evaluations": integer(minimum=0),
    "times_evaluated": optional(integer(minimum=1)), "fallback": optional(boolean()),
    "chosen_by": optional(text()), "report": optional(mapping(number(null=True)))})

#: ``pareto.json``, the front of a search of several objectives.
PARETO = record({"objectives": listing(text(), minimum=1), "front": listing(record({
    "evaluation": integer(minimum=1), "key": text(null=True),
    "fitness": listing(number(), minimum=1)}))})

#: A value of ``train.json``'s ``network``: a keyword of the space's ``build_network``.
PLAIN = Field((int, float, str, bool), null=True,
              describe="a plain value (a number, a string, true, false)")

#: How the images a network trained on were normalised (:class:`deapnas.data.Normalisation`).
NORMALISATION = record({"scale": number(minimum=0), "mean": listing(number(), minimum=1),
                        "std": listing(number(minimum=0), minimum=1)})

#: ``train.json``, what ``deapnas train`` measured.
TRAINED = record({
    "epochs": integer(minimum=1), "channels": optional(integer(minimum=1, null=True)),
    "network": optional(mapping(PLAIN, null=True)),
    "input_shape": listing(integer(minimum=1), minimum=1),
    "num_classes": integer(minimum=1), "test_accuracy": number(minimum=0, maximum=1),
    "params": integer(minimum=0), "test_images": integer(minimum=0),
    "normalisation": optional(NORMALISATION)})

#: One line of ``train.jsonl``: one epoch of ``deapnas train``.
EPOCH = record({"epoch": integer(minimum=1), "loss": number(),
                "train_accuracy": number(minimum=0, maximum=1), "seconds": number(minimum=0)})
