"""Run a search in a run directory: what ``deapnas search`` and ``deapnas resume`` call.

:func:`start` checks every setting, loads the data, writes ``config.json`` and runs the method;
:func:`resume` reads ``config.json`` back and continues from the last checkpoint. Both hand the
method a :class:`Run`, from which its ``search`` function takes a ready toolbox, and both end by
writing the logbook and the method's pick (``best.json``).
"""
from __future__ import annotations

import copy
import functools
import math
import os
import random
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch
from deap import base, tools
from tqdm import tqdm

from . import live
from . import options as opts
from .data import OFFICIAL_SIZES, Dataset, Split, load_dataset, missing_files
from .fitness import TableEvaluator, TrainEvaluator, failed
from .journal import Journal, TimeUp
from .methods import METHODS, Method, get_method
from .options import RunConfig, TrainingOptions, objective_weights
from .parallel import DevicePool, warm_up
from .proxies import DATA_FREE, ProxyEvaluator
from .rundir import (BEST, CONFIG, HISTORY, LOCK, PARETO, Lock, config_json,
                     fitness_weights, load_config, resume_command, write_json)
from .safefiles import RunDirectoryError
from .spaces import Space, get_space
from .training import resolve_device, torch_threads

class Run:
    """One search, as a method's ``search(run)`` function sees it.

    :ivar config: the shared :class:`~deapnas.options.RunConfig`.
    :ivar options: the method's options.
    :ivar method: the :class:`~deapnas.methods.Method`.
    :ivar space: the :class:`~deapnas.spaces.Space` searched.
    :ivar journal: the run directory's :class:`~deapnas.journal.Journal`; pass it to the loop.
    :ivar stats: population statistics for the logbook (failed candidates left out).
    :ivar halloffame: the best individual seen, kept across resumes by the loops.
    :ivar result: what the search wants its ``pick`` to see, if anything (e.g. a final
        architecture that no single evaluation holds).
    """

    def __init__(self, config: RunConfig, options: Any, method: Method):
        self.config, self.options, self.method = config, options, method
        self.space: Space = get_space(config.space)
        self.journal: Optional[Journal] = None
        self.stats = fitness_stats()
        self.halloffame = tools.HallOfFame(1)
        self.result: Optional[dict] = None
        self.map, self.workers, self._close = map, 1, lambda: None
        self._evaluator, self._data = None, None

    @property
    def directory(self) -> Path:
        return Path(self.config.out)

    @property
    def weights(self) -> tuple[float, ...]:
        """The fitness weights (:func:`~deapnas.rundir.fitness_weights`)."""
        return fitness_weights(self.config, self.method)

    @property
    def multi_objective(self) -> bool:
        return len(self.weights) > 1

    @property
    def individual(self) -> type:
        """The individual class: the space's genome with the run's fitness weights."""
        return self.space.individual(self.weights)

    def toolbox(self) -> base.Toolbox:
        """A toolbox with the space's ``individual``, ``population``, ``mutate`` (and ``mate``
        when the space has one), the run's ``evaluate`` and its recording ``map``."""
        toolbox = base.Toolbox()
        toolbox.register("individual", self.space.init, self.individual)
        toolbox.register("population", tools.initRepeat, list, toolbox.individual)
        toolbox.register("mutate", self.space.mutate)
        if self.space.mate is not None:
            toolbox.register("mate", self.space.mate)
        toolbox.register("evaluate", self.evaluator)
        toolbox.register("map", self.map)
        if self.journal is not None:
            self.journal.wrap(toolbox)
        return toolbox

    @property
    def evaluator(self):
        """The fitness function: the method's own (:attr:`Method.evaluator
        <deapnas.methods.Method.evaluator>`), else the one the config describes, a table
        look-up or a training run (:func:`make_evaluator`). Made once."""
        if self._evaluator is None:
            make = self.method.evaluator or Run.default_evaluator
            self._evaluator = make(self)
        return self._evaluator

    def default_evaluator(self, data: Optional[Dataset] = None, **evaluator_options: Any):
        """The fitness function the config describes (:func:`make_evaluator`), on ``data``
        (default: the run's) with ``evaluator_options``: what a method's own evaluator builds
        on, without importing this module."""
        return make_evaluator(self.config, self.options, self.space,
                              self.data if data is None else data, **evaluator_options)

    @property
    def data(self) -> Optional[Dataset]:
        """The dataset, loaded once (None for a table search; see :func:`load_data`)."""
        if self._data is None and not self.config.tabular:
            self._data = load_data(self.config, self.options)
        return self._data

    def proxy_evaluator(self, proxy: str) -> ProxyEvaluator:
        """A :class:`~deapnas.proxies.ProxyEvaluator` of ``proxy`` for this run's genomes
        (:func:`make_proxy_evaluator`)."""
        return make_proxy_evaluator(self.config, self.options, self.space, self.data, proxy)

    def history(self) -> list[dict]:
        """Every evaluation recorded so far, in order."""
        return self.journal.history if self.journal is not None else []

    def best_record(self) -> Optional[dict]:
        """The default pick: the best single evaluation (first objective, by its weight)."""
        sign = 1 if self.weights[0] > 0 else -1
        valid = [r for r in self.history() if r.get("reason") is None]
        return max(valid, key=lambda r: sign * r["fitness"][0], default=None)


# -- settings -------------------------------------------------------------------------------------

def settings(method: Method, preset: Optional[str] = None, **given: Any
             ) -> tuple[RunConfig, Any]:
    """The run config and the method's options: the method's defaults (the paper's), then the
    ``preset`` (``"paper"``, ``"tiny"``...), then the settings ``given`` explicitly."""
    if preset is not None and preset not in method.presets:
        raise ValueError(f"{method.name} has no preset {preset!r}; its presets: "
                         f"{', '.join(method.presets) or 'none'}")
    chosen = {"algorithm": method.name, **(method.presets.get(preset, {}) if preset else {}),
              **given}
    run_fields = {f.name for f in opts.fields(RunConfig)}
    option_fields = {f.name for f in opts.fields(method.options)}
    unknown = sorted(set(chosen) - run_fields - option_fields)
    if unknown:
        raise ValueError("; ".join(_not_an_option(name, method) for name in unknown))
    config = RunConfig(**{k: v for k, v in chosen.items() if k in run_fields})
    options = method.options(**{k: v for k, v in chosen.items() if k in option_fields})
    config.space = config.space or (method.spaces[0] if method.spaces else "macro")
    return config, options


def _not_an_option(name: str, method: Method) -> str:
    """Why ``name`` is refused as a setting of ``method``, with the methods that declare it."""
    users = [m.name for m in METHODS.values() if name in {f.name for f in opts.fields(m.options)}]
    return (f"{opts.flag(name)} is not an option of {method.name}"
            + (f" (it belongs to {', '.join(users)})" if users else ""))


def validate(config: RunConfig, options: Any, method: Method) -> None:
    """Raise ``ValueError`` naming the first setting that cannot work, and what to do."""
    opts.check(config)
    opts.check(options)
    objective_weights(config.objective_names)
    get_space(config.space)
    checks = [
        (not method.spaces or config.space in method.spaces,
         f"{method.name} searches {' or '.join(method.spaces)}, not --space {config.space}"),
        (not config.tabular or config.table,
         f"--dataset {config.dataset} is a benchmark table: give its CSV with --table PATH"),
        (not config.tabular or config.metric,
         "--table needs --metric COLUMN, the column used as fitness"),
        (config.table is None or config.space == "nb201", _table_needs_nb201(method)),
        (config.tabular or config.metric is None,
         f"--metric is the fitness column of a table search (--dataset nb201); a search "
         f"trained on --dataset {config.dataset} uses --table only to --report its pick"),
        (config.tabular or config.table is None or config.report,
         f"--table with --dataset {config.dataset} serves only the report of the pick: give "
         "--report COLUMN, or search the table itself with --dataset nb201"),
        (config.report is None or _distinct(config.report_columns),
         f"--report {config.report!r}: give table columns separated by commas, each once"),
        (not config.tabular or method.tabular, f"{method.name} does not run on a table"),
        (config.tabular or method.evaluator is not None or isinstance(options, TrainingOptions),
         f"{method.name} trains its candidates on --dataset {config.dataset} with the generic "
         "evaluator, but its options do not extend deapnas.options.TrainingOptions, so nothing "
         "sizes the networks (--epochs, --channels, --max-params...): search a table "
         "(--dataset nb201 --table CSV --metric COLUMN), or declare its options as a subclass "
         "of TrainingOptions so that they accept, and config.json records, those settings"),
        (config.objective_names == ("accuracy",) or method.multi_objective,
         f"{method.name} optimises its own fitness: it takes no --objectives"),
        (config.fitness is None or method.evaluator is None,
         f"{method.name} has its own fitness: it takes no --fitness"),
        (config.fitness is None or not config.tabular,
         f"--fitness {config.fitness} scores networks, a --dataset {config.dataset} search "
         "looks its fitness up: search on images (--dataset digits...), or drop --fitness"),
        (config.fitness is None or config.objective_names == ("accuracy",),
         f"--fitness {config.fitness} is one score: it takes no --objectives"),
        (config.tensorboard is None or live.available(),
         f"--tensorboard {config.tensorboard}: the live view needs the tensorboard package, "
         f"which is not installed: {live.INSTALL}"),
    ]
    for ok, message in checks:
        if not ok:
            raise ValueError(message)
    if config.tabular and "test" in config.metric.lower():
        warnings.warn(f"--metric {config.metric} looks like a test column: selecting on test "
                      "data makes the result optimistic; use a validation column, and give "
                      "the test column as --report", stacklevel=2)
    if not config.tabular:
        resolve_device(config.first_device)
    if config.table and not config.tabular:
        report_table(config)  # a missing file or column is refused before the search
    if hasattr(options, "validate"):
        options.validate(config)
    if hasattr(options, "validate_guidance"):
        options.validate_guidance(config)


def _table_needs_nb201(method: Method) -> str:
    """Why ``--table`` is refused outside the NAS-Bench-201 space, and what takes one."""
    takers = [m.name for m in METHODS.values()
              if m.tabular and (not m.spaces or "nb201" in m.spaces)]
    if method.name in takers:
        return "--table works with --space nb201 (the benchmark's cell space)"
    return (f"--table holds NAS-Bench-201 results, for searches of --space nb201, which "
            f"{method.name} cannot search ({method.name} searches "
            f"{' or '.join(method.spaces)}); methods that take a table: {', '.join(takers)}")


def load_data(config: RunConfig, options: Any) -> Dataset:
    """The run's dataset; a method's options may set ``val_fraction``, the share of the
    training images held out for validation (default 0.2)."""
    return load_dataset(config.dataset, config.data_dir, download=config.download,
                        seed=config.seed, val_fraction=getattr(options, "val_fraction", 0.2))


@dataclass
class Data:
    """The data a run needs: its shape and split sizes, whether it is present, and how to get it
    when it is not."""

    what: str
    present: bool
    advice: str = ""
    input_shape: tuple[int, int, int] = (0, 0, 0)
    num_classes: int = 0
    train: int = 0
    val: int = 0
    test: int = 0

    def placeholder(self) -> Dataset:
        """A dataset of no images of the right shape, on the meta device: what the methods'
        evaluators need to be made, without the data."""
        empty = Split(torch.empty(0, *self.input_shape, device="meta"),
                      torch.empty(0, dtype=torch.long, device="meta"))
        return Dataset(self.what, empty, empty, empty, self.num_classes)


def data_needed(config: RunConfig, options: Any) -> Data:
    """The run's :class:`Data`. A torchvision dataset is described from its official sizes and
    its files are looked for (not read); a bundled one or an IDX folder is loaded (a missing IDX
    folder is the error a search would give). Validation takes ``val_fraction`` of the training
    split, as :func:`load_data` does."""
    if config.tabular:
        present = Path(config.table).is_file()
        return Data(f"the table {config.table}", present,
                    "" if present else "give the CSV's path with --table")
    if config.dataset in OFFICIAL_SIZES:
        shape, classes, train, test = OFFICIAL_SIZES[config.dataset]
        val = math.ceil(train * getattr(options, "val_fraction", 0.2))
        missing = missing_files(config.dataset, config.data_dir)
        where = config.data_dir or "the default data folder"
        advice = (f"{len(missing)} file(s) missing under {where} (first: {missing[0]}); add "
                  "--download to fetch them (network access needed)" if missing else "")
        return Data(config.dataset, not missing, advice, shape, classes, train - val, val, test)
    data = load_data(config, options)
    return Data(config.dataset, True, "", data.input_shape, data.num_classes, len(data.train),
                len(data.val), len(data.test))


def make_evaluator(config: RunConfig, options: Any, space: Space,
                   data: Optional[Dataset] = None, **evaluator_options: Any):
    """A table look-up (``--table``) or a :class:`~deapnas.fitness.TrainEvaluator` on ``data``
    (loaded from the config when not given) built from the method's
    :class:`~deapnas.options.TrainingOptions`; ``evaluator_options`` go to the evaluator in
    place of those (a method's own ``cublas_workspace``, or its learning rates)."""
    if config.tabular:
        table = TableEvaluator(config.table, space.key, config.metric, config.report_columns,
                               objectives=config.objective_names)
        state = random.getstate()  # the check must not move the run's random stream
        table.check_keys([space.key(space.init()) for _ in range(5)])
        random.setstate(state)
        return table
    if config.fitness is not None:
        return make_proxy_evaluator(config, options, space, data,
                                    config.fitness.removeprefix("proxy:"))
    if data is None:
        data = load_data(config, options)
    training = options if isinstance(options, TrainingOptions) else TrainingOptions()
    build = functools.partial(space.build_network, **space.network_kwargs(training))
    settings = dict(epochs=training.epochs, batch_size=training.batch_size,
                    optimizer=training.optimizer, lr=training.lr,
                    weight_decay=training.weight_decay, device=config.first_device,
                    seed=config.seed, deterministic=training.deterministic,
                    max_params=training.max_params or None, objectives=config.objective_names,
                    stop_below_rank=training.stop_below_rank)
    return TrainEvaluator(build, data, **{**settings, **evaluator_options})


#: The input shape and classes of the networks a benchmark table was made by training
#: (NAS-Bench-201's CIFAR-10), for proxies that score a table search's genomes.
TABLE_IMAGES = {"nb201": ((3, 32, 32), 10)}


def make_proxy_evaluator(config: RunConfig, options: Any, space: Space,
                         data: Optional[Dataset], proxy: str) -> ProxyEvaluator:
    """A :class:`~deapnas.proxies.ProxyEvaluator` of ``proxy`` for the run's genomes: their
    networks built with the method's training options (width, cells, parameter cap) on the
    run's data (loaded when not given), its minibatch of ``batch_size`` training images. A
    table search has no images: its genomes are built in the benchmark's own skeleton (the
    space's defaults) for :data:`TABLE_IMAGES`, and only a data-free proxy scores them."""
    training = options if isinstance(options, TrainingOptions) else TrainingOptions()
    common = dict(seed=config.seed, device=config.first_device, batch_size=training.batch_size)
    if config.tabular:
        if proxy not in DATA_FREE:
            raise ValueError(f"the proxy {proxy} scores images, which a table search has none "
                             f"of: use one of {', '.join(sorted(DATA_FREE))}")
        shape, classes = TABLE_IMAGES[config.dataset]
        return ProxyEvaluator(space.build_network, proxy, input_shape=shape,
                              num_classes=classes, **common)
    build = functools.partial(space.build_network, **space.network_kwargs(training))
    return ProxyEvaluator(build, proxy, data if data is not None else load_data(config, options),
                          max_params=training.max_params or None, **common)


def _distinct(names: tuple[str, ...]) -> bool:
    """Whether ``names`` is not empty and names nothing twice."""
    return bool(names) and len(set(names)) == len(names)


def report_table(config: RunConfig, searched: Any = None) -> TableEvaluator:
    """``--table`` read for the ``--report`` columns, keyed by architecture key (the first
    column doubles as the look-up's fitness; all of them are in each evaluation's info). The
    table a table search already read is used instead when it holds those columns:
    ``searched``, the search's evaluator, a :class:`~deapnas.fitness.TableEvaluator` or one
    holding it as ``table``."""
    table = getattr(searched, "table", searched)
    if isinstance(table, TableEvaluator) and set(config.report_columns) <= set(table.report):
        keyed = copy.copy(table)  # the same rows, looked up by key
        keyed.key = str
        return keyed
    columns = config.report_columns
    return TableEvaluator(config.table, str, columns[0], columns)


def make_map(config: RunConfig):
    """``(map, evaluations at once, close)``: the builtin ``map`` for one in-process worker,
    a :class:`~deapnas.parallel.DevicePool` for several (or for a time limit per evaluation,
    which needs a process to kill), or a Ray cluster."""
    if config.ray or config.ray_address:
        from .cluster import RayMap
        pool = RayMap(config.workers if config.workers > 1 else None, config.ray_address,
                      timeout=config.eval_timeout, retries=config.retries,
                      num_cpus_per_worker=config.threads or 1)
    elif not evaluates_in_process(config):
        pool = DevicePool(config.workers, config.device, timeout=config.eval_timeout,
                          retries=config.retries, threads=config.threads)
    else:
        return map, 1, lambda: None
    return pool.map, len(pool), pool.close


def evaluates_in_process(config: RunConfig) -> bool:
    """Whether the search process evaluates its candidates itself (one worker, no Ray, no
    time limit per evaluation, which needs a process to kill)."""
    return not (config.ray or config.ray_address) and config.workers == 1 \
        and config.eval_timeout is None


def default_out(config: RunConfig, method: Method) -> Path:
    """``runs/<method>-<space>-<dataset>-seed<seed>``."""
    return Path("runs") / f"{method.name}-{config.space}-{config.dataset}-seed{config.seed}"


# -- running --------------------------------------------------------------------------------------

def start(config: RunConfig, options: Any, progress: bool = True) -> dict:
    """Run a new search into ``config.out``; the final pick (``best.json``)."""
    if not isinstance(config, RunConfig):
        raise opts.wrong_type("start(config, options)", config,
                              "a deapnas.options.RunConfig, e.g. the config of "
                              "deapnas.runner.settings(get_method('re'), 'tiny')")
    method = get_method(config.algorithm)
    if not isinstance(options, method.options):
        raise opts.wrong_type("start(config, options)", options,
                              f"{method.name}'s options, a {method.options.__qualname__} "
                              "(deapnas.runner.settings returns both)")
    validate(config, options, method)
    out = Path(config.out) if config.out else default_out(config, method)
    check_out(out, config.algorithm)
    typed = {name: getattr(config, name) for name in ("table", "data_dir", "tensorboard")
             if getattr(config, name)}
    for name, path in typed.items():  # absolute, so that resume works from anywhere
        setattr(config, name, os.path.abspath(os.path.expanduser(path)))
    config.out = str(out)
    run = Run(config, options, method)
    run.evaluator  # data problems surface before anything is written
    out.mkdir(parents=True, exist_ok=True)
    with Lock(out).acquire() as lock:  # checked again under the lock: another search may race
        _check_unused(out, config.algorithm)
        write_json(out / CONFIG, {**config_json(config, options), "typed": typed})
        with torch_threads(config.threads):
            return _search(run, progress, lock)


def resume(directory: str | os.PathLike, progress: bool = True) -> dict:
    """Continue the search in ``directory`` from its last checkpoint."""
    opts.check_path("resume(directory)", directory)
    config, options, method = load_config(directory)
    config.out = str(directory)
    _refuse_finished(directory)  # before validating: a finished run needs no table or device
    validate(config, options, method)
    with Lock(Path(directory)).acquire() as lock:
        _refuse_finished(directory)  # again under the lock: a resume may have been ending
        with torch_threads(config.threads):
            return _search(Run(config, options, method), progress, lock)


def _refuse_finished(directory: str | os.PathLike) -> None:
    """Refuse to resume the finished search in ``directory``, saying how to see it."""
    if (Path(directory) / BEST).exists():
        raise RunDirectoryError(f"{directory} holds a finished search; see it with "
                                f"`deapnas show {directory}`")


def _check_unused(out: Path, algorithm: str) -> None:
    """Refuse an ``--out`` that holds a run (continue it instead) or anything else (the files
    of someone or something else, which a search would overwrite or delete); an empty folder,
    or one holding only a run's ``lock``, is taken."""
    if (out / BEST).exists():
        raise RunDirectoryError(f"{out} already holds a finished search: see it with `deapnas "
                                f"show {out}`, retrain or export its pick with `deapnas train` "
                                "or `deapnas export`, or choose another --out")
    if (out / CONFIG).exists():
        raise RunDirectoryError(f"{out} already holds a run: continue it with "
                                f"`{resume_command(out, algorithm)}` or choose another --out")
    found = sorted(p.name for p in out.iterdir() if p.name != LOCK) if out.is_dir() else []
    if found:
        listed = ", ".join(found[:5]) + (f" and {len(found) - 5} more" if len(found) > 5 else "")
        raise RunDirectoryError(f"--out {out} holds files but is not a deapnas run (no "
                                f"{CONFIG}): {listed}; a search there could overwrite or "
                                "delete them: choose a new or empty folder")


def _search(run: Run, progress: bool, lock: Lock) -> dict:
    config = run.config
    if evaluates_in_process(config):  # as a worker does, before the search's clock starts
        warm_up(run.evaluator)
    run.evaluator  # loaded before the run's random streams are seeded
    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    bar = Progress(config.evaluations, enabled=progress, maximize=run.weights[0] > 0)
    records = run.method.records(run) if run.method.records else run.space
    names = config.objective_names  # one value: the fitness, whatever the method calls it
    view = (live.TensorBoardView(config.tensorboard, names if len(names) > 1 else ("fitness",))
            if config.tensorboard else None)
    journal = Journal(run.directory, records, records.individual(run.weights),
                      config=config.fingerprint(),
                      checkpoint_every=config.checkpoint_every,
                      checkpoint_gap=config.checkpoint_gap, budget=config.evaluations,
                      time_limit=config.time_limit, stop_within_batches=True,
                      on_record=bar if view is None else _both(bar, view.evaluation),
                      on_logbook=view and view.statistics, lock=lock,
                      verbose=False)  # the progress bar starts at the evaluations recorded
    try:
        bar.resume(journal.history)
        run.journal = journal
        run.map, run.workers, run._close = make_map(config)
        try:
            logbook = run.method.search(run)
        except TimeUp:  # within a batch: the loop's logbook is the one of its last safe point
            logbook = journal.logbook or tools.Logbook()
        journal.write_logbook(logbook)
        best = write_best(run)
    finally:
        bar.close()
        run._close()
        journal.close()
        if view is not None:
            view.close()
    return best


def _both(first: Callable[[dict], None], second: Callable[[dict], None]
          ) -> Callable[[dict], None]:
    """One ``on_record`` that calls ``first`` then ``second``."""
    def both(record: dict) -> None:
        first(record)
        second(record)
    return both


def check_out(out: Path, algorithm: str) -> None:
    """Refuse an ``--out`` that cannot hold a new run of ``algorithm`` (see
    :func:`_check_writable` and :func:`_check_unused`); it leaves nothing behind."""
    _check_writable(out)
    _check_unused(out, algorithm)


def _check_writable(out: Path) -> None:
    """Refuse an ``--out`` that cannot hold a run, before anything is loaded or written."""
    existing = next((p for p in [out, *out.parents] if p.exists()), Path("."))
    if existing.exists() and not existing.is_dir():
        raise ValueError(f"--out {out}: {existing} is a file, not a directory")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        raise ValueError(f"--out {out}: cannot write in {existing} "
                         f"({error.strerror or error})") from None


# -- results --------------------------------------------------------------------------------------

def fitness_stats() -> tools.Statistics:
    """Mean, std, min and max of the first objective over the candidates that did not fail."""
    stats = tools.Statistics(lambda ind: ind.fitness.values[0])
    for name, function in (("avg", np.mean), ("std", np.std), ("min", np.min), ("max", np.max)):
        stats.register(name, _over_finite(function))
    return stats


def _over_finite(function):
    def compute(values):
        finite = [v for v in values if math.isfinite(v)]
        return float(function(finite)) if finite else math.nan
    return compute


def write_best(run: Run) -> dict:
    """Pick the final architecture with the method's ``pick`` and write ``best.json``.

    The pick is a history record, or a record-like dict (``genome``, ``key``, ``fitness``,
    ``info``) with, optionally, ``chosen_by``: how the method chose it, in words,
    ``metric``: what its fitness measures (default: the validation accuracy or ``--metric``), and
    ``report``: measurements the method adds. With ``--report``, the pick's row of
    ``--table`` gives the reported values, one per column (None where the pick is not in the
    table)."""
    pick = run.method.pick(run) if run.method.pick else run.best_record()
    history = run.history()
    if pick is None:
        raise RunDirectoryError(f"no candidate of {run.directory} could be evaluated; see the "
                                f"reasons in {run.directory / HISTORY}")
    best = {"method": run.method.name, "space": run.space.name, "genome": pick["genome"],
            "key": pick.get("key"), "fitness": pick.get("mean_fitness", pick["fitness"][0]),
            "metric": pick.get("metric") or (run.config.metric if run.config.tabular
                                              else run.config.fitness or "validation accuracy"),
            "params": pick.get("info", {}).get("params"), "evaluations": len(history),
            **{k: pick[k] for k in ("times_evaluated", "fallback", "chosen_by") if k in pick}}
    report = dict(pick.get("report", {}))  # the method's own measurements of its pick
    if run.config.report:  # looked up: the pick need not be an evaluated architecture
        row = report_table(run.config, run.evaluator)(pick.get("key"))
        report.update({column: None if failed(row) else row.info[column]
                       for column in run.config.report_columns})
    if report:
        best["report"] = report
    write_json(run.directory / BEST, best)
    if run.multi_objective:
        write_json(run.directory / PARETO, {"objectives": list(run.config.objective_names),
                                            "front": pareto_front(history, run.weights)})
    return best


def pareto_front(history: list[dict], weights: tuple[float, ...]) -> list[dict]:
    """The records of ``history`` that no other valid record dominates (under ``weights``),
    one per architecture and value, in order of evaluation."""
    valid = [(tuple(w * v for w, v in zip(weights, r["fitness"])), r["evaluation"], r)
             for r in history if r.get("reason") is None]
    front: list = []
    for values, _, record in sorted(valid, key=lambda t: (t[0], -t[1]), reverse=True):
        if not any(all(a >= b for a, b in zip(kept, values)) and kept != values
                   for kept, _ in front) and (values, record.get("key")) not in \
                {(kept, r.get("key")) for kept, r in front}:
            front.append((values, record))
    return sorted((r for _, r in front), key=lambda r: r["evaluation"])


class Progress:
    """A progress bar over evaluations: rate, best so far, failures (fed history records)."""

    def __init__(self, total: Optional[int], enabled: bool = True, maximize: bool = True):
        self.bar = tqdm(total=total, disable=not enabled, unit="eval", dynamic_ncols=True,
                        bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]")
        self.sign, self.failed = 1 if maximize else -1, 0
        self.best = -self.sign * math.inf

    def resume(self, history: list[dict]) -> None:
        for record in history:
            self._count(record)
        self.bar.update(len(history))

    def __call__(self, record: dict) -> None:
        self._count(record)
        self.bar.update(record["evaluation"] - self.bar.n)

    def _count(self, record: dict) -> None:
        if record.get("reason") is None:
            if self.sign * record["fitness"][0] > self.sign * self.best:
                self.best = record["fitness"][0]
        else:
            self.failed += 1
        elapsed = self.bar.format_dict["elapsed"]
        rate = f"{60 * (self.bar.n + 1) / elapsed:.1f}" if elapsed > 0 else "-"
        best = f"best {self.best:.4g}" + ("" if self.sign > 0 else " (lower is better)")
        self.bar.set_postfix_str(f"{rate} eval/min, {best}, failed {self.failed}",
                                 refresh=False)

    def close(self) -> None:
        self.bar.close()
