"""What a search method is: the :class:`Method` record that names a method's loop, options and
hooks, :class:`Later`, a hook imported when first called, and :func:`final_training_of`, which
makes its final-training hook. The registry, :mod:`deapnas.methods`, imports the built-in
methods' declarations, which import this module: imports run one way.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional

from ..options import RunConfig


@dataclass(frozen=True)
class Method:
    """A registered search method (see the module documentation).

    :param spaces: the spaces the method works on, its default first (empty: any space).
    :param tabular: whether it runs on a benchmark table (``--table``).
    :param weights: the fitness weights of its individuals, for a method whose fitness is its
        own (EG-NAS minimises a loss); others follow ``--objectives``.
    :param multi_objective: whether its loop handles several objectives (``--objectives``),
        through ``toolbox.select`` or a selection of its own.
    :param evaluator: ``evaluator(run)``, the method's own fitness function; it is made before
        the run directory exists, so it must write nothing when made.
    :param records: ``records(run) -> Space``, what describes and rebuilds the evaluated
        individuals in the run directory (default: the run's space).
    :param final_training: ``final_training(config, options, data, epochs=None, channels=None) ->
        TrainEvaluator``, the method's final training for ``deapnas train`` (its recipe's epochs
        and width unless ``--epochs`` / ``--channels`` are given).
    :param fitness_name: what its fitness is, for plots and summaries, when the fitness is its
        own (default: the validation accuracy, or the ``--metric`` of a table search); a
        callable ``fitness_name(config)`` when it depends on the run's settings.
    """

    name: str
    options: type
    search: Callable[[Any], Any]
    pick: Optional[Callable[[Any], Optional[dict]]] = None
    presets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    spaces: tuple[str, ...] = ()
    tabular: bool = True
    weights: tuple[float, ...] = (1.0,)
    multi_objective: bool = False
    evaluator: Optional[Callable[[Any], Callable]] = None
    records: Optional[Callable[[Any], Any]] = None
    final_training: Optional[Callable[..., Any]] = None
    fitness_name: Optional[str | Callable[[Any], str]] = None
    description: str = ""


@dataclass(frozen=True)
class Later:
    """The function ``name`` of ``module``, imported when first called: a method declared apart
    from its machinery (torch, its loop) names its hooks this way, so that listing the methods
    and their options (``deapnas search --help``) imports none of it."""

    module: str
    name: str

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return getattr(importlib.import_module(self.module), self.name)(*args, **kwargs)


def final_training_of(final_evaluator: Callable[..., Any],
                      spaces: Optional[tuple[str, ...]] = None) -> Callable[..., Any]:
    """A :attr:`Method.final_training` hook from a method's ``final_evaluator(options, data,
    device=, seed=, epochs=, channels=)``: run on the run's first device with its seed, for
    picks of ``spaces`` (all when None); None for another space's pick, which the generic
    retraining trains."""
    def final_training(config: RunConfig, options: Any, data: Any, *,
                       epochs: Optional[int] = None, channels: Optional[int] = None) -> Any:
        if spaces is not None and config.space not in spaces:
            return None
        return final_evaluator(options, data, device=config.first_device, seed=config.seed,
                               epochs=epochs, channels=channels)
    return final_training
