"""Options as dataclasses with documented defaults and range checks, in the manner of pycma's
``CMAOptions``: one dataclass for the settings every run shares (:class:`RunConfig`), one
(:class:`TrainingOptions`) that methods training their candidates extend, two
(:class:`FinalTrainingOptions`, :class:`FinalRecipeOptions`) for the final training of their
pick, and one per method.

Declare each field with :func:`option`: its default, one line of help, and its valid range or
choices; give every number an upper bound (:mod:`deapnas.limits` names the shared ones), so
that no setting can ask for more than a machine holds. :func:`check` enforces them with messages
that name the command-line flag and the range; the command line is generated from the same
fields, so the two never disagree.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import os
import typing
from dataclasses import dataclass
from typing import Any, Iterable, Optional, Sequence

from . import limits

#: The datasets :func:`deapnas.data.load_dataset` loads, named here, where the command line
#: lists them without importing torch.
DATASETS: tuple[str, ...] = ("digits", "mnist", "fashion-mnist", "cifar10", "cifar100", "idx")
#: Dataset names that stand for a benchmark table (given with ``--table``).
TABLE_DATASETS = ("nb201",)
#: Where a mini dataset's scoring subset may come from (see :func:`deapnas.data.mini_dataset`).
MINI_SCORE_SOURCES: tuple[str, ...] = ("train", "test")
#: AutoAugment's learned policies, by name (see :mod:`deapnas.augment`).
AUTOAUGMENT_POLICIES: tuple[str, ...] = ("cifar10", "imagenet", "svhn")
#: The zero-cost proxies of :data:`deapnas.proxies.PROXIES`, named here for the same reason.
PROXY_NAMES: tuple[str, ...] = ("synflow", "naswot", "jacob_cov", "snip", "grad_norm", "params",
                                "flops")
#: The proxies that read only the shape of the minibatch, never its images or labels.
DATA_FREE = frozenset({"synflow", "params", "flops"})
#: The paddings of a macro-space convolution: keep the size, or none (the macro paper's).
CONV_PADDINGS: tuple[str, ...] = ("same", "valid")
#: Which connections the macro space's add-node mutation may split: only ``"enabled"`` ones
#: (deapnas's default; any one while none is enabled), so a fresh genome is always a chain, or
#: ``"any"`` connection, disabled ones too (the authors' code), which re-opens disabled paths
#: as parallel branches.
ADD_NODE_SPLITS: tuple[str, ...] = ("enabled", "any")
#: EG-NAS's updates of α by the chosen direction s (Eq. 8; :func:`deapnas.evolutionary_gradient.egnas`):
#: ``convex``, α ← α + ξ·(s − α), α moves the fraction ξ of the way to s; ``literal``,
#: α ← α + ξ·s, as the paper prints it (α grows by the factor 1 + ξ at every step, since s
#: lies near α).
ES_UPDATES: tuple[str, ...] = ("convex", "literal")
#: The objectives an evaluator can return (``--objectives``), and their DEAP weights (maximised:
#: +1).
OBJECTIVES = {"accuracy": 1.0, "params": -1.0, "train_seconds": -1.0}


def objective_weights(objectives: Iterable[str]) -> tuple[float, ...]:
    """The fitness weights of ``objectives`` (names in :data:`OBJECTIVES`)."""
    objectives = tuple(objectives)
    unknown = [o for o in objectives if o not in OBJECTIVES]
    if unknown or not objectives or len(set(objectives)) < len(objectives):
        raise ValueError(f"objectives must be distinct names among {', '.join(OBJECTIVES)}, "
                         f"not {', '.join(objectives) or 'none'}")
    return tuple(OBJECTIVES[o] for o in objectives)


def option(default: Any, help: str, *, minimum: Optional[float] = None,
           maximum: Optional[float] = None, choices: Optional[Sequence] = None,
           positive: bool = False) -> Any:
    """A dataclass field with its help text and constraints (``positive``: strictly > 0)."""
    metadata = {"help": help, "minimum": minimum, "maximum": maximum, "choices": choices,
                "positive": positive}
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def override(base: type, name: str, default: Any = dataclasses.MISSING,
             help: Optional[str] = None) -> Any:
    """The option ``name`` that the options class ``base`` declares, with another ``default``
    or ``help``: how a method's options redeclare a shared option where the method differs
    (its paper's value), the range and choices staying where the option is declared."""
    declared = base.__dataclass_fields__[name]
    meta = declared.metadata
    return option(declared.default if default is dataclasses.MISSING else default,
                  help or meta["help"], minimum=meta["minimum"], maximum=meta["maximum"],
                  choices=meta["choices"], positive=meta["positive"])


def flag(name: str) -> str:
    """The command-line flag of a field: ``sample_size`` -> ``--sample-size``; a trailing
    underscore, which keeps a field clear of a Python keyword, is dropped (``lambda_`` ->
    ``--lambda``)."""
    return "--" + name.rstrip("_").replace("_", "-")


def suggest(word: str, choices: Sequence[str]) -> str:
    """``" (did you mean X?)"`` for the choice ``word`` most likely meant (another case,
    ``_`` for ``-``, a letter or two off), or ``""`` when none is close."""
    by_case = {c.lower(): c for c in choices}
    for spelling in (word, word.replace("_", "-")):
        if spelling.lower() in by_case:
            return f" (did you mean {by_case[spelling.lower()]}?)"
    close = difflib.get_close_matches(word.replace("_", "-"), list(choices), n=1, cutoff=0.75)
    return f" (did you mean {close[0]}?)" if close else ""


def wrong_type(call: str, value: Any, expected: str) -> TypeError:
    """The ``TypeError`` of a public function given the wrong kind of argument: where, what it
    got and what to pass (``expected``)."""
    if isinstance(value, type):
        got = f"the class {value.__qualname__}"
    elif callable(value):
        got = f"the function {getattr(value, '__qualname__', repr(value))}"
    else:
        shown = repr(value)
        got = f"{type(value).__name__} {shown}" if len(shown) <= 40 else \
            f"a {type(value).__name__}"
    return TypeError(f"{call}: got {got}; pass {expected}")


def check_path(call: str, value: Any) -> None:
    """Refuse a ``value`` that is not a path (a ``str`` or an ``os.PathLike``)."""
    if not isinstance(value, (str, os.PathLike)):
        raise wrong_type(call, value, "a path (str or pathlib.Path)")


def fields(options: Any) -> list[dataclasses.Field]:
    """The fields of an options dataclass (or instance) declared with :func:`option`."""
    return [f for f in dataclasses.fields(options) if "help" in f.metadata]


def types(options: Any) -> dict[str, Any]:
    """``{field name: type}`` with ``Optional[X]`` reduced to ``X``."""
    cls = options if isinstance(options, type) else type(options)
    hints = typing.get_type_hints(cls)
    return {name: _unwrap(hint) for name, hint in hints.items()}


def _unwrap(hint: Any) -> Any:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if typing.get_origin(hint) in (typing.Union, getattr(typing, "UnionType", None)) \
        and len(args) == 1 else hint


def check(options: Any) -> None:
    """Raise ``ValueError`` for the first field outside its declared range or choices; the
    message names the flag and the range (:mod:`deapnas.limits` holds the upper bounds)."""
    kinds = types(options)
    for f in fields(options):
        value, meta = getattr(options, f.name), f.metadata
        if value is None:
            continue
        name = flag(f.name)
        if kinds.get(f.name) in (int, float) and (isinstance(value, bool) or not
                                                  isinstance(value, (int, float))):
            raise ValueError(f"{name} must be a number, not {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, not {value}")
        if meta["choices"] is not None and value not in meta["choices"]:
            raise ValueError(f"{name} must be one of {', '.join(map(str, meta['choices']))}, "
                             f"not {value!r}")
        if meta["positive"] and value <= 0:
            raise ValueError(f"{name} must be positive, not {value} ({allowed(f)})")
        if meta["minimum"] is not None and value < meta["minimum"]:
            raise ValueError(f"{name} must be at least {meta['minimum']}, not {value} "
                             f"({allowed(f)})")
        if meta["maximum"] is not None and value > meta["maximum"]:
            raise ValueError(f"{name} must be at most {meta['maximum']}, not {value} "
                             f"({allowed(f)})")


def allowed(field: dataclasses.Field) -> str:
    """A field's range in words, for errors and help: ``allowed: 1 to 4096``."""
    meta = field.metadata
    low = "above 0" if meta["positive"] else meta["minimum"]
    if low is None:
        return f"allowed: at most {meta['maximum']}"
    return f"allowed: {low} to {meta['maximum']}" if meta["maximum"] is not None \
        else f"allowed: {low} or more"


def as_dict(options: Any) -> dict:
    """The declared fields and their values (JSON-ready when the values are)."""
    return {f.name: getattr(options, f.name) for f in fields(options)}


def from_dict(cls: type, values: dict, where: str) -> Any:
    """``cls(**values)``, with a readable error for unknown or missing fields."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{where} has settings {', '.join(unknown)} that {cls.__qualname__} "
                         "does not know; it was made by another version or edited")
    try:
        return cls(**values)
    except TypeError as error:
        raise ValueError(f"{where}: {error}") from None


@dataclass
class RunConfig:
    """The settings every search shares, whatever its method."""

    algorithm: str = option("re", "the search method (see `deapnas search --help`)")
    space: Optional[str] = option(None, "the search space (unset: the method's own)")
    dataset: str = option("digits", "digits is bundled; idx reads IDX files from --data-dir; "
                          "nb201 is the benchmark table given by --table",
                          choices=DATASETS + TABLE_DATASETS)
    data_dir: Optional[str] = option(None, "where datasets are read from")
    download: bool = option(False, "download a torchvision dataset that is missing")
    table: Optional[str] = option(None, "a benchmark CSV: fitness is looked up, not trained")
    metric: Optional[str] = option(None, "the --table column used as fitness")
    report: Optional[str] = option(None, "--table columns reported for the pick, comma-separated "
                                   "(e.g. the CIFAR-10, CIFAR-100 and ImageNet16-120 test "
                                   "accuracies), never used to select (also for an nb201 search "
                                   "trained on images)")
    objectives: str = option("accuracy", "what the search optimises, comma-separated: accuracy "
                             "(maximised), params, train_seconds (minimised); several make a "
                             "multi-objective search (NSGA-II ranking) with its Pareto front "
                             "in pareto.json")
    fitness: Optional[str] = option(None, "proxy:NAME scores each candidate's untrained "
                                    "network with a zero-cost proxy instead of training it "
                                    "(training-free search; unset: trained or looked up)",
                                    choices=tuple(f"proxy:{name}" for name in PROXY_NAMES))
    evaluations: Optional[int] = option(None, "evaluations in all (the method's budget unit; "
                                        "unset: the method's own stopping rule)",
                                        minimum=1, maximum=limits.MAX_EVALUATIONS)
    time_limit: Optional[float] = option(None, "stop after this many seconds of search, "
                                         "counted across resumes",
                                         positive=True, maximum=limits.MAX_SECONDS)
    seed: int = option(0, "random seed of the run", minimum=0, maximum=2**32 - 1)
    device: str = option("auto", "auto, cpu, cuda, cuda:1, ...; with --workers a list such as "
                         "cuda:0,cuda:1 spreads the workers over those devices")
    workers: int = option(1, "evaluations at once: worker processes pinned to devices (or Ray "
                          "actors with --ray); 1 evaluates in this process",
                          minimum=1, maximum=limits.MAX_WORKERS)
    threads: Optional[int] = option(None, "torch CPU threads of each evaluation, in this "
                                    "process and in each worker (unset: torch's default here, "
                                    "the cores shared evenly in a pool); a CPU fitness depends "
                                    "on it in its last digits, so the same seed and --threads "
                                    "give the same search with any --workers",
                                    minimum=1, maximum=limits.MAX_THREADS)
    eval_timeout: Optional[float] = option(None, "seconds one evaluation may take before its "
                                           "worker is killed and the candidate fails",
                                           positive=True, maximum=limits.MAX_SECONDS)
    retries: int = option(0, "further attempts for a candidate whose worker died or timed out",
                          minimum=0, maximum=limits.MAX_RETRIES)
    ray: bool = option(False, "evaluate on Ray (a local instance unless --ray-address)")
    ray_address: Optional[str] = option(None, "address of a running Ray cluster")
    out: Optional[str] = option(None, "run directory (unset: runs/ALGORITHM-SPACE-DATASET-seedSEED)")
    checkpoint_every: int = option(10, "evaluations between checkpoints",
                                   minimum=1, maximum=limits.MAX_EVALUATIONS)
    checkpoint_gap: float = option(2.0, "seconds at least between two checkpoints, whatever "
                                   "--checkpoint-every says: evaluations cheaper than a "
                                   "checkpoint (table look-ups) are replayed from the history "
                                   "instead (0: by count alone)",
                                   minimum=0, maximum=limits.MAX_SECONDS)
    tensorboard: Optional[str] = option(None, "a live view: write the logbook's statistics and "
                                        "each evaluation to TensorBoard event files in this "
                                        "folder as the search runs, to open with `tensorboard "
                                        "--logdir` (needs the tensorboard package: pip install "
                                        "'deapnas[tensorboard]')")

    #: Settings that may change when a run is resumed (where and how fast it runs).
    FREE = ("device", "workers", "threads", "eval_timeout", "retries", "ray", "ray_address", "out",
            "download", "data_dir", "checkpoint_every", "checkpoint_gap", "tensorboard")
    #: Settings added after runs were made: left out of the fingerprint while unset, so that
    #: a run made before they existed still resumes.
    LATER = ("fitness",)

    @property
    def tabular(self) -> bool:
        """Whether the fitness is looked up in ``--table`` (``--dataset nb201``). A search
        trained on another dataset may still name a ``--table``: it serves only the
        ``--report`` of the pick."""
        return self.dataset in TABLE_DATASETS

    @property
    def first_device(self) -> str:
        """The first of ``device``'s list: where the search process itself trains."""
        return self.device.split(",")[0]

    @property
    def report_columns(self) -> tuple[str, ...]:
        """``report`` as a tuple of column names (empty when unset)."""
        return tuple(c.strip() for c in (self.report or "").split(",") if c.strip())

    @property
    def objective_names(self) -> tuple[str, ...]:
        """``objectives`` as a tuple of names."""
        return tuple(o.strip() for o in self.objectives.split(",") if o.strip())

    def fingerprint(self) -> dict:
        """The settings a resumed run must share with the checkpoint it resumes."""
        return {k: v for k, v in as_dict(self).items()
                if k not in self.FREE and not (k in self.LATER and v is None)}


@dataclass
class TrainingOptions:
    """How each candidate is trained (methods that train candidates extend this)."""

    epochs: int = option(10, "training epochs per candidate", minimum=1, maximum=limits.MAX_EPOCHS)
    batch_size: int = option(128, "batch size", minimum=1, maximum=limits.MAX_BATCH_SIZE)
    optimizer: str = option("adam", "the optimizer", choices=("adam", "sgd"))
    lr: float = option(1e-3, "learning rate", positive=True, maximum=limits.MAX_LR)
    weight_decay: float = option(0.0, "L2 weight decay", minimum=0, maximum=1)
    channels: int = option(64, "network width (macro: conv filters C; cells: stem channels)",
                           minimum=1, maximum=limits.MAX_CHANNELS)
    cells: int = option(5, "cells per stage, for cell spaces", minimum=1, maximum=limits.MAX_CELLS)
    clamp_pools: bool = option(False, "macro: a pool larger than its input shrinks to it, so "
                               "every pool keeps a 1x1 map (a departure from the paper)")
    conv_padding: str = option("same", "macro: convolutions keep the size (same) or are "
                               "unpadded (valid, the paper's: a kernel larger than its input "
                               "makes the candidate invalid)", choices=CONV_PADDINGS)
    max_params: int = option(5_000_000, "candidates with more parameters fail without training "
                             "(0: no cap)", minimum=0, maximum=limits.MAX_PARAMETERS)
    deterministic: bool = option(False, "only deterministic kernels: an identical candidate "
                                 "scores identically, on a GPU too")
    stop_below_rank: Optional[int] = option(None, "early termination: a candidate whose "
                                            "validation accuracy after an epoch is below the "
                                            "k-th best of the earlier candidates at that epoch "
                                            "stops training and keeps it (unset: every "
                                            "candidate trains every epoch; NASGEP and EG-NAS "
                                            "train their own way and ignore it)", minimum=1,
                                            maximum=limits.MAX_POPULATION)


@dataclass
class FinalTrainingOptions:
    """How long ``deapnas train`` trains a method's pick from scratch
    (:func:`deapnas.retraining.final_training`). A method extends it, or
    :class:`FinalRecipeOptions` when its final training has a recipe of its own, and redeclares
    with :func:`override` a default its paper sets otherwise."""

    final_epochs: int = option(20, "final training: epochs of the pick's training from scratch, "
                               "what `deapnas train` runs", minimum=1, maximum=limits.MAX_EPOCHS)


@dataclass
class FinalRecipeOptions(FinalTrainingOptions):
    """A final training with a recipe of its own, as DARTS retrains its cells (Liu et al., 2019)
    and the cell-based methods after it: SGD with momentum 0.9 on a cosine schedule from
    ``final_lr``, the network at ``final_channels``, random crops, flips, Cutout and drop-path
    (:func:`deapnas.methods.method.final_training_recipe`). The defaults are DARTS'."""

    final_epochs: int = override(FinalTrainingOptions, "final_epochs", 600)
    final_batch_size: int = option(96, "final training: batch size",
                                   minimum=1, maximum=limits.MAX_BATCH_SIZE)
    final_lr: float = option(0.025, "final training: initial learning rate (SGD, momentum 0.9, "
                             "cosine schedule)", positive=True, maximum=limits.MAX_LR)
    final_channels: int = option(36, "final training: width C, the first cells' channels",
                                 minimum=1, maximum=limits.MAX_CHANNELS)
    crop_padding: int = option(4, "final training: random crops after padding this many "
                               "pixels (0: none)", minimum=0, maximum=limits.MAX_PIXELS)
    no_flip: bool = option(False, "final training: no random horizontal flips")
    cutout: int = option(16, "final training: side of the Cutout square (0: none)",
                         minimum=0, maximum=limits.MAX_PIXELS)
    drop_path: float = option(0.2, "final training: drop-path rate, raised linearly from 0 over "
                              "the epochs", minimum=0, maximum=0.9)
