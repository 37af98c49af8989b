"""Assemble and run a whole search from one :class:`SearchConfig`: the toolbox, the evaluator,
the run directory. This is what ``deapnas search`` and ``deapnas resume`` call; a DEAP script
that wants its own loop builds the same pieces itself (see ``experiments/``).
"""
from __future__ import annotations

import dataclasses
import functools
import json
import random
from dataclasses import dataclass
from pathlib import Path
from statistics import fmean
from typing import Any, Optional

import numpy as np
import torch
from deap import base, tools
from tqdm import tqdm

from .algorithms import best_average, regularized_evolution, sel_best_of_sample
from .data import DATASETS, load_dataset
from .fitness import TableEvaluator, TrainEvaluator
from .parallel import DevicePool
from .run import BEST, CONFIG, Journal, read_history, write_json
from .spaces import SPACES, get_space

INDIVIDUALS = {name: space.individual() for name, space in SPACES.items()}

ALGORITHMS = ("re", "random")
TABLE_DATASETS = ("nb201",)


@dataclass
class SearchConfig:
    """Every setting of a search. The defaults are a quick search of the macro space on the
    bundled digits (about three minutes on two CPU cores); :meth:`paper` gives the paper's."""

    algorithm: str = "re"
    space: str = "macro"
    dataset: str = "digits"
    data_dir: Optional[str] = None
    download: bool = False
    table: Optional[str] = None
    metric: Optional[str] = None
    report: Optional[str] = None
    evaluations: int = 200
    population: int = 25
    sample_size: int = 5
    min_evaluations: int = 5
    time_limit: Optional[float] = None
    epochs: int = 4
    batch_size: int = 64
    lr: float = 1e-3
    channels: int = 32
    cells: int = 1
    max_params: Optional[int] = 5_000_000
    seed: int = 0
    device: str = "auto"
    workers: int = 1
    eval_timeout: Optional[float] = None
    retries: int = 0
    ray: bool = False
    ray_address: Optional[str] = None
    out: Optional[str] = None
    checkpoint_every: int = 10

    @classmethod
    def paper(cls, **overrides: Any) -> "SearchConfig":
        """Kyriakides & Margaritis (2020): P = 100, S = 25, 400 cycles, 10 epochs of Adam,
        C = 64 channels, Fashion-MNIST."""
        settings = dict(dataset="fashion-mnist", population=100, sample_size=25,
                        evaluations=500, epochs=10, channels=64, batch_size=128)
        return cls(**{**settings, **overrides})

    @property
    def tabular(self) -> bool:
        return self.table is not None

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first setting that cannot work, and what to do."""
        checks = [
            (self.algorithm in ALGORITHMS,
             f"--algorithm must be one of {', '.join(ALGORITHMS)}, not {self.algorithm!r}"),
            (self.space in SPACES,
             f"--space must be one of {', '.join(SPACES)}, not {self.space!r}"),
            (self.dataset in DATASETS + TABLE_DATASETS,
             f"--dataset must be one of {', '.join(DATASETS + TABLE_DATASETS)}"),
            (self.dataset not in TABLE_DATASETS or self.tabular,
             f"--dataset {self.dataset} is a benchmark table: give its CSV with --table PATH"),
            (not self.tabular or self.metric,
             "--table needs --metric COLUMN, the column used as fitness"),
            (not self.tabular or self.space == "nb201",
             "--table works with --space nb201 (the benchmark's cell space)"),
            (self.population >= 1, "--population must be at least 1"),
            (1 <= self.sample_size <= self.population,
             f"--sample-size must lie between 1 and --population ({self.population})"),
            (self.evaluations >= self.population,
             f"--evaluations ({self.evaluations}) must be at least --population "
             f"({self.population}): the first population is part of the budget"),
            (self.epochs >= 1 and self.batch_size >= 1, "--epochs and --batch-size must be >= 1"),
            (self.time_limit is None or self.time_limit > 0, "--time-limit must be positive"),
            (self.workers >= 1, "--workers must be at least 1"),
            (self.eval_timeout is None or self.eval_timeout > 0,
             "--eval-timeout must be positive"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)


def make_evaluator(config: SearchConfig):
    """The fitness function the config describes: a table look-up or a training run."""
    space = get_space(config.space)
    if config.tabular:
        return TableEvaluator(config.table, space.key, config.metric, config.report)
    data = load_dataset(config.dataset, config.data_dir, download=config.download,
                        seed=config.seed)
    return TrainEvaluator(network_builder(config), data, epochs=config.epochs,
                          batch_size=config.batch_size, lr=config.lr,
                          device=config.device.split(",")[0], seed=config.seed,
                          max_params=config.max_params or None)


def network_builder(config: SearchConfig):
    """``build(individual, input_shape, num_classes)`` for the config's space and width."""
    space = get_space(config.space)
    if config.space == "nb201":
        return functools.partial(space.build_network, channels=config.channels,
                                 cells_per_stage=config.cells)
    return functools.partial(space.build_network, channels=config.channels)


def make_toolbox(config: SearchConfig, evaluator) -> base.Toolbox:
    """A DEAP toolbox for the config: initialisation, mutation, selection and evaluation."""
    toolbox = base.Toolbox()
    toolbox.register("individual", get_space(config.space).init, INDIVIDUALS[config.space])
    toolbox.register("population", tools.initRepeat, list, toolbox.individual)
    toolbox.register("mutate", get_space(config.space).mutate)
    sample_size = 1 if config.algorithm == "random" else config.sample_size
    toolbox.register("select", sel_best_of_sample, sample_size=sample_size)
    toolbox.register("evaluate", evaluator)
    return toolbox


def make_map(config: SearchConfig):
    """The ``toolbox.map`` the config asks for, how many evaluations it runs at once, and what
    closes it: the builtin ``map`` for one in-process worker, a
    :class:`~deapnas.parallel.DevicePool` for several (or for a time limit per evaluation,
    which needs a process to kill), or a Ray cluster."""
    if config.ray or config.ray_address:
        from .cluster import RayMap
        pool = RayMap(config.workers if config.workers > 1 else None, config.ray_address,
                      timeout=config.eval_timeout, retries=config.retries)
    elif config.workers > 1 or config.eval_timeout is not None:
        pool = DevicePool(config.workers, config.device, timeout=config.eval_timeout,
                          retries=config.retries)
    else:
        return map, 1, lambda: None
    return pool.map, len(pool), pool.close


def describer(space_name: str):
    """``describe(individual) -> {"genome", "key"}`` for the journal."""
    return get_space(space_name).describe


def default_out(config: SearchConfig) -> Path:
    """``runs/<algorithm>-<space>-<dataset>-seed<seed>``."""
    return Path("runs") / f"{config.algorithm}-{config.space}-{config.dataset}-seed{config.seed}"


def start(config: SearchConfig, progress: bool = True) -> dict:
    """Run a new search into ``config.out``; the final pick (see :func:`search`)."""
    config.validate()
    out = Path(config.out) if config.out else default_out(config)
    if (out / CONFIG).exists():
        raise ValueError(f"{out} already holds a run: continue it with `deapnas resume {out}` "
                         f"or choose another --out")
    evaluator = make_evaluator(config)  # data problems surface before anything is written
    config.out = str(out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / CONFIG, dataclasses.asdict(config))
    return search(config, evaluator, progress)


def resume(directory: str | Path, progress: bool = True) -> dict:
    """Continue the search in ``directory`` from its last checkpoint."""
    path = Path(directory) / CONFIG
    if not path.exists():
        raise ValueError(f"{directory} is not a deapnas run directory (no {CONFIG})")
    config = SearchConfig(**json.loads(path.read_text()))
    config.out = str(directory)
    return search(config, make_evaluator(config), progress)


def search(config: SearchConfig, evaluator, progress: bool = True) -> dict:
    """Search with ``evaluator``, journaling into ``config.out``, then write and return the
    final pick."""
    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    toolbox = make_toolbox(config, evaluator)
    mapper, width, close = make_map(config)
    toolbox.register("map", mapper)
    bar = Progress(config.evaluations, enabled=progress)
    journal = Journal(config.out, describer(config.space), config.checkpoint_every,
                      config.time_limit, on_record=bar)
    halloffame = tools.HallOfFame(1)
    try:
        _, logbook = regularized_evolution(
            toolbox.population(n=config.population), toolbox,
            cycles=config.evaluations - config.population, halloffame=halloffame,
            stats=fitness_stats(), verbose=False, journal=journal,
            children_per_step=width)
    except KeyboardInterrupt:
        journal.flush()
        raise
    finally:
        bar.close()
        close()
    journal.flush()
    journal.write_logbook(logbook)
    return write_best(config)


def fitness_stats() -> tools.Statistics:
    """Population statistics for the logbook: mean, std, min and max fitness."""
    stats = tools.Statistics(lambda ind: ind.fitness.values[0])
    for name, function in (("avg", np.mean), ("std", np.std), ("min", np.min), ("max", np.max)):
        stats.register(name, function)
    return stats


class Progress:
    """A progress bar over evaluations showing the best fitness so far (fed history records)."""

    def __init__(self, total: int, enabled: bool = True):
        self.bar = tqdm(total=total, disable=not enabled, unit="eval", dynamic_ncols=True)
        self.best = float("-inf")

    def __call__(self, record: dict) -> None:
        self.best = max(self.best, record["fitness"][0])
        self.bar.set_postfix(best=f"{self.best:.4f}", refresh=False)
        self.bar.update(record["evaluation"] - self.bar.n)

    def close(self) -> None:
        self.bar.close()


def write_best(config: SearchConfig) -> dict:
    """Pick the final architecture from the history and write ``best.json``."""
    history = read_history(config.out)
    pick = best_average(history, config.min_evaluations)
    if pick is None:
        raise RuntimeError(f"no candidate of {config.out} could be evaluated; see the reasons "
                           f"in {Path(config.out) / 'history.jsonl'}")
    same = [r for r in history if r.get("key") == pick["key"] and r.get("reason") is None]
    best = {"genome": pick["genome"], "key": pick["key"], "fitness": pick["mean_fitness"],
            "times_evaluated": pick["times_evaluated"], "fallback": pick["fallback"],
            "params": pick.get("params"), "evaluations": len(history)}
    if config.report:
        best["report"] = {config.report: fmean(r[config.report] for r in same)}
    write_json(Path(config.out) / BEST, best)
    return best
