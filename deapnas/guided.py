"""Proxy-guided evolution (Abdelfattah et al., 2021) as DEAP toolbox decorators: a cheap score
(a zero-cost proxy, :class:`deapnas.proxies.ProxyEvaluator`) decides which genomes the
expensive fitness ever sees.

- :func:`warm_up` decorates ``toolbox.population``: it draws K random genomes, scores them all
  and returns the best P as the first population;
- :func:`propose` decorates ``toolbox.mutate``: it breeds k mutants of the individual and
  returns the one that scores best.

Both work in any DEAP loop (``eaSimple``, ``eaMuPlusLambda``, deapnas's
:func:`~deapnas.algorithms.regularized_evolution`)::

    score = ProxyEvaluator(build, "synflow", input_shape=(3, 32, 32), num_classes=10)
    toolbox.decorate("population", warm_up(score, samples=1000))
    toolbox.decorate("mutate", propose(score, proposals=10))

``score(individual)`` returns a number or a fitness tuple (its first value is used); higher is
better. The scores are not kept: the genomes chosen go on to ``toolbox.evaluate`` with an
invalid fitness. :class:`GuidanceOptions` are the command-line options of the methods that
offer it (``--warmup-proxy``, ``--warmup-samples``, ``--proposals``), applied by :func:`guide`.
"""
from __future__ import annotations

import copy
import functools
from dataclasses import dataclass
from typing import Any, Callable, Optional

from . import limits
from .options import DATA_FREE, PROXY_NAMES, option

Score = Callable[[Any], Any]


def warm_up(score: Score, samples: int) -> Callable:
    """A decorator of a population initialiser (``toolbox.population``): the population of P
    it would return is replaced by the best P of ``samples`` random genomes drawn by calling
    it again, by ``score`` (``samples`` <= P: the population unchanged, nothing scored). Use it
    with ``toolbox.decorate("population", ...)``."""
    def decorator(population: Callable) -> Callable:
        @functools.wraps(population)
        def warmed(*args: Any, **kwargs: Any) -> list:
            candidates = list(population(*args, **kwargs))
            size = len(candidates)
            if samples <= size:
                return candidates  # nothing to choose from
            while len(candidates) < samples:
                candidates.extend(population(*args, **kwargs))
            return best_by(score, candidates[:samples], size)
        return warmed
    return decorator


def propose(score: Score, proposals: int) -> Callable:
    """A decorator of a mutation (``toolbox.mutate``, DEAP's contract ``mutate(individual) ->
    (individual,)``): ``proposals`` mutants are bred (the individual itself and deep copies of
    it, each mutated once) and the one ``score`` ranks best is returned. Use it with
    ``toolbox.decorate("mutate", ...)``; loops that use ``mutate``'s return value (all of
    DEAP's and deapnas's) get the chosen mutant."""
    if proposals < 1:
        raise ValueError(f"proposals must be at least 1, not {proposals}")

    def decorator(mutate: Callable) -> Callable:
        @functools.wraps(mutate)
        def best_of(individual: Any, *args: Any, **kwargs: Any) -> tuple:
            mutants = [mutate(copy.deepcopy(individual), *args, **kwargs)[0]
                       for _ in range(proposals - 1)]
            mutants.append(mutate(individual, *args, **kwargs)[0])
            return tuple(best_by(score, mutants, 1))
        return best_of
    return decorator


def best_by(score: Score, individuals: list, k: int) -> list:
    """The ``k`` individuals ``score`` ranks highest, best first (ties in drawing order)."""
    values = [_first(score(individual)) for individual in individuals]
    order = sorted(range(len(individuals)), key=lambda i: -values[i])
    return [individuals[i] for i in order[:k]]


def _first(value: Any) -> float:
    return value[0] if isinstance(value, tuple) else value


@dataclass
class GuidanceOptions:
    """Proxy guidance for a method's options (mix it into its options dataclass). Off by
    default, and in every ``paper`` preset: no paper of deapnas's methods uses it."""

    warmup_proxy: Optional[str] = option(
        None, "a zero-cost proxy that guides the search: the first population is the best "
        "--population of --warmup-samples random genomes by it, and it ranks the --proposals "
        "(unset: no guidance)", choices=PROXY_NAMES)
    warmup_samples: Optional[int] = option(
        None, "random genomes scored by --warmup-proxy for the first population (unset: 10 x "
        "--population; --population or fewer: no warm-up)", minimum=1,
        maximum=limits.MAX_EVALUATIONS)
    proposals: int = option(1, "mutants bred per child, of which the one --warmup-proxy ranks "
                            "best is evaluated (1: plain mutation)", minimum=1,
                            maximum=limits.MAX_POPULATION)

    def validate_guidance(self, config: Any) -> None:
        """Refuse guidance settings that cannot work with ``config``."""
        if self.warmup_proxy is None and (self.proposals > 1 or self.warmup_samples):
            raise ValueError("--proposals and --warmup-samples rank genomes by --warmup-proxy: "
                             "give it (e.g. --warmup-proxy synflow)")
        if self.warmup_proxy is not None and config.tabular \
                and self.warmup_proxy not in DATA_FREE:
            raise ValueError(f"--warmup-proxy {self.warmup_proxy} scores images, which a table "
                             f"search has none of: use one of {', '.join(sorted(DATA_FREE))}")


def guide(toolbox: Any, run: Any) -> None:
    """Decorate ``toolbox.population`` and ``toolbox.mutate`` as ``run.options`` (a
    :class:`GuidanceOptions`) ask, scoring with ``run.proxy_evaluator(name)``."""
    options = run.options
    if options.warmup_proxy is None:
        return
    score = run.proxy_evaluator(options.warmup_proxy)
    samples = options.warmup_samples or 10 * options.population
    toolbox.decorate("population", warm_up(score, samples))
    if options.proposals > 1:
        toolbox.decorate("mutate", propose(score, options.proposals))
