"""A run directory: what a search leaves on disk as it goes, and how it resumes.

Files:

- ``config.json``: what the run was started with (method, options, shared settings), written
  by the runner before the first evaluation;
- ``history.jsonl``: one line per evaluation, appended the moment it completes: the readable
  genome, the architecture key, the candidate's seed, the fitness (``null`` for a failed
  candidate, whose ``reason`` says why) and the evaluator's measurements under ``info``;
- ``checkpoint.json`` (and ``checkpoint-N.pt`` when the state holds tensors): the loop's state,
  every random state and the SHA-256 of every other file the state needs (a method's weights,
  see :attr:`Journal.state_files`), written atomically every ``checkpoint_every`` evaluations
  (never while the history is replayed); the loop's ``logbook`` goes to ``logbook.jsonl``,
  appended record by record, so that a checkpoint costs as much late in a long search as
  early;
- ``lock``: held while a search, a resume or a training runs in the directory;
- ``journal.json``: for a script's journal (made without ``config``), the settings of the
  evaluator it wraps and the fitness weights, which a later run of the script must share;
- ``logbook.csv`` and ``best.json`` (and ``pareto.json`` for several objectives): written when
  the search ends.

Nothing in a run directory is ever executed: the checkpoint is JSON plus tensors read with
``torch.load(weights_only=True)`` (see :mod:`deapnas.state`), and its files are opened through
:mod:`deapnas.safefiles` (never through a symbolic link, names checked), so a run directory
received from someone else is safe to resume.

Resuming restores the checkpoint and *replays* the evaluations the history holds beyond it, by
position, instead of recomputing them; a loop that asks for anything other than the recorded
evaluation stops with an error (the run was changed). With the same seed, a resumed run ends
exactly where the uninterrupted run would have. The same replay serves any deterministic DEAP
loop without a checkpoint: :meth:`Journal.wrap` a toolbox, run the loop, run it again after an
interruption, and every evaluation already recorded is replayed from the history (unless the
evaluator's settings changed: then the run is refused, naming them).
"""
from __future__ import annotations

import base64
import csv
import fcntl
import hashlib
import io
import json
import math
import os
import random
import sys
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

import numpy as np
import torch
from deap import tools

from . import schema
from . import state as statecodec
from .fitness import Evaluation, failure, settings_differences, settings_of
from .options import check_path, wrong_type
from .safefiles import (RunDirectoryError, check_name, disk_error, files, open_file, read_bytes,
                        remove_leftovers, write_atomic)

FORMAT = 2
HISTORY, CHECKPOINT, CONFIG, LOCK = "history.jsonl", "checkpoint.json", "config.json", "lock"
SETTINGS = "journal.json"
LOGBOOK, LOGBOOK_LINES, BEST, PARETO = "logbook.csv", "logbook.jsonl", "best.json", "pareto.json"


class SearchFailed(RuntimeError):
    """The search cannot produce a result (every candidate so far failed); the message says why."""


class TimeUp(Exception):
    """The time limit of a journal made with ``stop_within_batches`` was spent before an
    evaluation: the search ends there, with the evaluations recorded so far."""


# -- files (opened through deapnas.safefiles: never through a link) ------------------------------

def write_json(path: Path, data: Any) -> None:
    write_atomic(path, (json.dumps(data, indent=2) + "\n").encode())


def read_json(path: Path, what: str = "file", field: Optional[schema.Field] = None) -> Any:
    """The JSON in ``path``, checked against ``field`` (one of :mod:`deapnas.schema`'s) when
    given, or a :class:`RunDirectoryError` naming the file and the problem."""
    try:
        data = json.loads(read_bytes(path))
    except FileNotFoundError:
        raise RunDirectoryError(f"{path} does not exist") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RunDirectoryError(f"{path} is not a valid {what} ({error}); it was damaged or "
                                "edited: restore it, or start a new run") from None
    return data if field is None else conform(data, field, str(path))


def conform(value: Any, field: schema.Field, where: str, name: str = "") -> Any:
    """``value`` when it fits ``field``, else a :class:`RunDirectoryError` that names
    ``where`` (the file, and the line or record) and the field (under ``name``)."""
    try:
        schema.check(value, field, name)
    except schema.SchemaError as error:
        raise RunDirectoryError(f"{where}: {error}; it was damaged or edited: restore it, or "
                                "start a new run") from None
    return value
def read_genome(space: Any, data: Any, path: Path, field: str = "genome") -> Any:
    """The genome that ``field`` of the run-directory file ``path`` holds, rebuilt by the
    space's ``from_json``, which also refuses one larger than :mod:`deapnas.limits` allows;
    a :class:`RunDirectoryError` names the file and the field. Call it before a genome read
    from disk is built or drawn."""
    try:
        return space.from_json(data)
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        reason = f"missing {error}" if isinstance(error, KeyError) else error
        raise RunDirectoryError(f"{path}: {field}: {reason}; the file was damaged or edited: "
                                "restore it, or start a new run") from None


def read_history(directory: str | os.PathLike, *, partial_ok: bool = True) -> list[dict]:
    """Every evaluation record of a run directory, in order.

    A last line without its newline is what a crash mid-write leaves: it is left out (with a
    warning unless ``partial_ok``). Any other damage is a :class:`RunDirectoryError` naming the
    file and the line.
    """
    return _History.read(Path(directory) / HISTORY, partial_ok)[0]


def read_settings(directory: str | os.PathLike) -> dict:
    """What a script's journal keeps in ``journal.json`` (``{}`` when there is none):
    ``evaluator``, the settings :meth:`Journal.wrap` fingerprints, and ``weights``, the fitness
    weights of the individuals evaluated. A file of another shape is a
    :class:`RunDirectoryError` naming the field."""
    path = Path(directory) / SETTINGS
    if not path.exists():
        return {}
    kept = read_json(path, "journal settings file")
    weights = kept.get("weights", [1.0]) if isinstance(kept, dict) else None
    if not isinstance(kept, dict):
        problem = "it must hold a JSON object"
    elif not (isinstance(weights, list) and weights and
              all(type(w) in (int, float) for w in weights)):
        problem = "its \"weights\" must be a non-empty list of numbers (the fitness weights)"
    else:
        return kept
    raise RunDirectoryError(f"{path} is damaged: {problem}; restore it, or start a new run")


class _History:
    """Reading and checking ``history.jsonl``."""

    @staticmethod
    def read(path: Path, partial_ok: bool) -> tuple[list[dict], int]:
        """The records, and the byte length of the complete lines."""
        try:
            raw = read_bytes(path)
        except FileNotFoundError:
            return [], 0
        complete = raw.rfind(b"\n") + 1
        if complete < len(raw) and not partial_ok:
            warnings.warn(f"{path}: the last line was cut off mid-write (a crash); it is "
                          f"dropped and that evaluation is done again", stacklevel=3)
        records = []
        for number, line in enumerate(raw[:complete].splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except (UnicodeDecodeError, json.JSONDecodeError) as error:
                raise RunDirectoryError(
                    f"{path} line {number} is damaged ({error}); restore the file from a copy, "
                    "or start a new run") from None
            conform(record, schema.EVALUATION, f"{path} line {number}")
            expected = len(records) + 1
            if record["evaluation"] != expected:
                raise RunDirectoryError(
                    f"{path} line {number} should hold evaluation {expected}; lines were "
                    "removed, reordered or edited: restore the file, or start a new run")
            records.append(record)
        return records, complete


# -- the lock -------------------------------------------------------------------------------------

class Lock:
    """An exclusive lock on a run directory, held by one searching process.

    The lock is an ``flock`` on the file ``lock``, which also names the holder; the operating
    system releases it when the process ends, however it ends, so a lock left by a dead
    process never blocks.
    """

    def __init__(self, directory: Path):
        self.path = Path(directory) / LOCK
        self._handle = None

    def acquire(self) -> "Lock":
        handle = open_file(self.path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise RunDirectoryError(f"{self.path.parent} is in use by {holder(self.path.parent)}"
                                    "; wait for it to finish, or stop it first") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {os.uname().nodename} since "
                     f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        handle.flush()
        self._handle = handle
        return self

    def __enter__(self) -> "Lock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def release(self) -> None:
        if self._handle is not None:
            self._handle.seek(0)
            self._handle.truncate()
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


def holder(directory: str | os.PathLike) -> Optional[str]:
    """Who holds the run directory's lock (``"pid 123 on host since ..."``), or None."""
    path = Path(directory) / LOCK
    if not path.exists():
        return None
    with open_file(path, "r") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return handle.read().strip() or "another process"
        fcntl.flock(handle, fcntl.LOCK_UN)
    return None


# -- random states --------------------------------------------------------------------------------

def random_states() -> dict:
    """Python's, NumPy's global and torch's (CPU, and CUDA once initialised) random states."""
    version, internal, gauss = random.getstate()
    numpy_state = np.random.get_state(legacy=False)
    states = {"python": [version, list(internal), gauss],
              "numpy": {**numpy_state, "state": {"key": numpy_state["state"]["key"].tolist(),
                                                 "pos": numpy_state["state"]["pos"]}},
              "torch": _bytes(torch.get_rng_state())}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = [_bytes(s) for s in torch.cuda.get_rng_state_all()]
    return states


def set_random_states(states: dict) -> None:
    """Inverse of :func:`random_states`."""
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy_state = dict(states["numpy"])
    numpy_state["state"] = {"key": np.array(numpy_state["state"]["key"], dtype=np.uint32),
                            "pos": numpy_state["state"]["pos"]}
    np.random.set_state(numpy_state)
    torch.set_rng_state(_tensor(states["torch"]))
    if "cuda" in states and torch.cuda.is_available():
        cuda = [_tensor(s) for s in states["cuda"]]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)


def _bytes(tensor: torch.Tensor) -> str:
    return base64.b64encode(tensor.numpy().tobytes()).decode()


def _tensor(text: str) -> torch.Tensor:
    return torch.frombuffer(bytearray(base64.b64decode(text)), dtype=torch.uint8)


# -- the journal ----------------------------------------------------------------------------------

def _check_arguments(directory: Any, space: Any, container: Any) -> None:
    """Refuse what :class:`Journal` cannot use, saying what to pass (a script written for the
    ``Journal(directory, describe)`` of older versions passes a function as ``space``)."""
    check_path("Journal(directory, space)", directory)
    needed = ("to_json", "from_json", "describe") + (("individual",) if container is None
                                                     else ())
    if not all(callable(getattr(space, name, None)) for name in needed):
        raise wrong_type("Journal(directory, space)", space,
                         "the space of the individuals, a deapnas.spaces.Space such as "
                         "get_space('nb201') (or an object with to_json, from_json, describe "
                         "and individual): the journal takes the space where older versions "
                         "took a describe function (see CHANGELOG.md)")
    if container is not None and not isinstance(container, type):
        raise wrong_type("Journal(directory, space, container)", container,
                         "the individual class (a class made with deap.creator.create)")


class Journal:
    """Records a search in ``directory`` as it goes and lets it resume.

    :param space: the :class:`~deapnas.spaces.Space` of the individuals (its ``to_json`` and
        ``key`` describe each evaluation; ``from_json`` rebuilds checkpointed individuals).
    :param container: the individual class checkpointed individuals are rebuilt as (default:
        ``space.individual()``).
    :param config: what the run was made with (JSON); a checkpoint made under another config is
        refused, naming the settings that differ, and so is a history record made under another
        config (each record keeps a digest of it). Without it, :meth:`wrap` takes the
        evaluator's settings as the config.
    :param checkpoint_every: evaluations between checkpoints (the first is written before any
        evaluation).
    :param checkpoint_gap: seconds at least between two checkpoints due by count: when
        evaluations are cheaper than a checkpoint (table look-ups), replaying them from the
        history costs less than saving the state after each ``checkpoint_every`` (0: by count
        alone; the command line's ``--checkpoint-gap`` is 2).
    :param checkpoint_seconds: a checkpoint is also due this long after the last one, so that
        work which makes no evaluation (EG-NAS's weight training) is saved too (None: never).
    :param budget: evaluations after which :meth:`checkpoint` says stop (None: no limit).
    :param time_limit: seconds of search (counted across resumes) after which it says stop.
    :param stop_within_batches: check the time limit before each evaluation too, not only at
        the loop's safe points: the recording map raises :class:`TimeUp` instead of starting an
        evaluation once the limit is spent, so a batch (a first population of a hundred
        trainings) cannot overrun it; the caller ends the search there (the runner does, with
        :attr:`logbook`). Replayed evaluations are never stopped, so a resumed run stops where
        the uninterrupted one would have.
    :param fail_fast: stop the search with :class:`SearchFailed` when its first this many
        evaluations all failed (0: never).
    :param on_record: called with each new history record (a progress bar, say).
    :param on_logbook: called with each record the loop's logbook gains and its position in
        the logbook (from 0), as the loop hands the logbook to :meth:`checkpoint` and to
        :meth:`write_logbook` (a live view, :class:`deapnas.live.TensorBoardView`). A resumed
        run hands on only the records made after the evaluations it replays, as ``on_record``
        gets only new evaluations: the run before it handed on the others.
    :param verbose: print ``replayed N evaluations ...`` to stderr when the replay of the
        recorded evaluations ends, as DEAP's loops print their logbook.
    :param lock: the directory's :class:`Lock`, when the caller already holds it (the runner
        takes it before it checks or writes anything); the journal releases it on close.

    The journal holds the directory's :class:`Lock` from construction until :meth:`close`; use
    it as a context manager.
    """

    def __init__(self, directory: str | os.PathLike, space: Any, container: Optional[type] = None,
                 *, config: Optional[dict] = None, checkpoint_every: int = 10,
                 checkpoint_gap: float = 0.0, checkpoint_seconds: Optional[float] = 600.0,
                 budget: Optional[int] = None,
                 time_limit: Optional[float] = None, stop_within_batches: bool = False,
                 fail_fast: int = 25, on_record: Optional[Callable[[dict], None]] = None,
                 on_logbook: Optional[Callable[[dict, int], None]] = None,
                 verbose: bool = __debug__, lock: Optional["Lock"] = None):
        _check_arguments(directory, space, container)
        if checkpoint_every < 1:
            raise ValueError(f"checkpoint_every must be at least 1, not {checkpoint_every}")
        self.directory = Path(directory)
        self.space, self.config = space, config
        self.container = container or space.individual()
        self.checkpoint_every, self.checkpoint_gap = checkpoint_every, checkpoint_gap
        self.checkpoint_seconds = checkpoint_seconds
        self.budget, self.time_limit = budget, time_limit
        self.stop_within_batches = stop_within_batches
        #: The logbook the loop handed to its last :meth:`checkpoint` (None before any).
        self.logbook = None
        self.fail_fast, self.on_record, self.verbose = fail_fast, on_record, verbose
        self.on_logbook, self._logbook_shown = on_logbook, 0
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock = lock or Lock(self.directory).acquire()
        try:
            remove_leftovers(self.directory)
            self.history, complete = _History.read(self.directory / HISTORY, partial_ok=False)
            self._cut_partial_line(complete)
            self._handle = open_file(self.directory / HISTORY, "a")
        except BaseException:
            self._lock.release()
            raise
        self._config_id = None if config is None else _digest(config)
        #: Evaluations the history held when the journal opened (-1: none, a fresh run).
        self._resumed_at = len(self.history) or -1
        self._wrapped: list = []  # the recording maps registered by wrap
        self._held: Optional[dict] = None  # the settings this run checked in journal.json
        self.evaluations = self._replayed = 0
        self._elapsed_before, self._started = 0.0, time.monotonic()
        self._written: Optional[int] = None  # evaluations at the last checkpoint written
        self._written_at = time.monotonic()
        self._logbook = _LogbookLines(self.directory / LOGBOOK_LINES, self.space, self.container)
        #: Called with the state after each checkpoint is durable: the moment a method may
        #: delete files that no checkpoint needs any more (weights of dead individuals...).
        #: Never called while the history is replayed: until the state has caught up with the
        #: history, files that later evaluations wrote are still needed.
        self.after_write: list[Callable[[dict], None]] = []
        #: Called with each state to checkpoint: the files of the directory that the state
        #: needs besides the checkpoint (weights, a mini dataset...). Their SHA-256 is recorded
        #: in the checkpoint and checked when it is restored, so a file that was deleted,
        #: swapped or edited is refused, named, instead of silently used.
        self.state_files: list[Callable[[dict], Iterable[Path]]] = []

    def __enter__(self) -> "Journal":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Make the history durable and release the directory."""
        if self._handle is not None:
            self._sync_history()
            self._handle.close()
            self._handle = None
        self._lock.release()

    @property
    def elapsed(self) -> float:
        """Seconds of search so far, including the time before any resume."""
        return self._elapsed_before + time.monotonic() - self._started

    @property
    def replaying(self) -> bool:
        """Whether the next evaluation is one the history already holds."""
        return self.evaluations < len(self.history)

    # -- recording ---------------------------------------------------------------------------------

    def wrap(self, toolbox, settings: Optional[dict] = None) -> None:
        """Record every evaluation made through ``toolbox.map(toolbox.evaluate, ...)``, and
        replay the recorded ones: registers a recording ``map`` around the toolbox's own.

        A journal made without ``config`` (a script's) fingerprints the evaluator instead:
        ``settings`` when given (a JSON object of what must not change within the run), else
        :func:`~deapnas.fitness.settings_of` ``(toolbox.evaluate)`` (a deapnas evaluator's
        recipe, data and network builder; a partial's function and arguments; a function's
        name). They are kept in ``journal.json``, with the fitness weights of the first
        individuals evaluated; when the script runs again with other settings, this refuses
        with a :class:`RunDirectoryError` naming each one that changed, before anything is
        replayed or evaluated."""
        if self.config is None or self._held is not None:  # a script's journal
            if settings is None and not hasattr(toolbox, "evaluate"):
                raise ValueError("register toolbox.evaluate before journal.wrap(toolbox): the "
                                 "journal fingerprints its settings")
            self._hold(evaluator=settings_of(toolbox.evaluate) if settings is None else settings)
            self.config = {"evaluator": self._held["evaluator"]}
            self._config_id = _digest(self.config)
        elif settings is not None:
            raise ValueError("this journal was made with a config, which fingerprints the run; "
                             "pass settings= only to a journal made without one")
        inner = toolbox.map

        def recording_map(function, iterable):
            if function is not getattr(toolbox, "evaluate", None):
                return inner(function, iterable)
            return self._evaluate_all(inner, function, list(iterable))

        toolbox.register("map", recording_map)
        self._wrapped.append(toolbox.map)

    def wraps(self, toolbox) -> bool:
        """Whether ``toolbox.map`` is the recording map :meth:`wrap` registered (the only way
        evaluations reach the history)."""
        return any(getattr(toolbox, "map", None) is recording for recording in self._wrapped)

    def _hold(self, **settings: Any) -> None:
        """Keep ``settings`` in ``journal.json``; refuse those that differ from the ones kept
        there by an earlier run of the script, naming each change."""
        path = self.directory / SETTINGS
        try:
            settings = json.loads(json.dumps(settings, allow_nan=False))
        except (TypeError, ValueError) as error:
            raise ValueError(f"the journal's settings must be JSON values ({error})") from None
        kept = read_settings(self.directory)
        changed = settings_differences({k: kept[k] for k in settings if k in kept},
                               {k: v for k, v in settings.items() if k in kept})
        if changed:
            raise RunDirectoryError(
                f"these settings differ from those {path} keeps for the run recorded in "
                f"{self.directory} ({changed}); restore them to continue that run, or record "
                "this one in another directory")
        if any(k not in kept for k in settings):
            write_json(path, {**kept, **settings})
        self._held = {**(self._held or {}), **settings}

    def _settings_source(self) -> str:
        """Where this run's settings are kept, as messages name them."""
        if self._held is not None:
            return str(self.directory / SETTINGS)
        if (self.directory / CONFIG).exists():
            return str(self.directory / CONFIG)
        return "the config given to the journal"

    def _evaluate_all(self, inner_map, evaluate, individuals: list) -> Iterable:
        if self._held is not None and "weights" not in self._held and individuals:
            weights = getattr(getattr(individuals[0], "fitness", None), "weights", None)
            if weights:
                self._hold(weights=list(weights))
        replayed = []
        while len(replayed) < len(individuals) and self.replaying:
            replayed.append(self._replay(individuals[len(replayed)]))
        yield from replayed
        rest = individuals[len(replayed):]
        evaluations = iter(inner_map(evaluate, rest))
        for individual in rest:
            if self.stop_within_batches and self._late():
                raise TimeUp(f"the time limit of {self.time_limit} s is spent")
            evaluation = next(evaluations)
            self._record(individual, evaluation)
            yield evaluation

    def _late(self) -> bool:
        """Whether the time limit is spent."""
        return self.time_limit is not None and self.elapsed >= self.time_limit

    def _replay(self, individual) -> Evaluation:
        record = self.history[self.evaluations]
        genome, seed = self.space.to_json(individual), getattr(individual, "eval_seed", 0)
        if record.get("config") != self._config_id:
            raise RunDirectoryError(
                f"{self.directory / HISTORY} evaluation {record['evaluation']} was recorded "
                f"under other settings than {self._settings_source()} holds; restore the "
                "settings the run was made with, or start a new run")
        if record["genome"] != genome or record.get("eval_seed", 0) != seed:
            raise RunDirectoryError(
                f"the search asks for evaluation {record['evaluation']} of {genome!r} "
                f"(seed {seed}), but {self.directory / HISTORY} recorded {record['genome']!r} "
                f"(seed {record.get('eval_seed', 0)}): the code, the options or the data changed "
                "since the run was recorded; restore them, or start a new run")
        self.evaluations += 1
        self._elapsed_before, self._started = record.get("elapsed", 0.0), time.monotonic()
        self._replayed += 1
        if self.verbose and not self.replaying:
            print(f"replayed {self._replayed} evaluations recorded in {self.directory / HISTORY} "
                  "instead of evaluating them again", file=sys.stderr)
        info = dict(record.get("info", {}))
        if record.get("reason") is not None:
            return failure(record["reason"], individual, **info)
        return Evaluation(record["fitness"], reason=None, **info)

    def _record(self, individual, evaluation) -> dict:
        info = dict(getattr(evaluation, "info", {}))
        reason = info.pop("reason", None)
        values = [float(v) for v in evaluation]
        if reason is None and not all(math.isfinite(v) for v in values):
            reason = f"non-finite fitness {values}"
        record = {"evaluation": self.evaluations + 1, **self.space.describe(individual),
                  "eval_seed": getattr(individual, "eval_seed", 0),
                  "fitness": None if reason else values, "reason": reason,
                  "info": _plain(info), "elapsed": round(self.elapsed, 3)}
        if self._config_id is not None:
            record["config"] = self._config_id
        try:
            self._handle.write(json.dumps(record) + "\n")
            self._handle.flush()
        except OSError as error:
            raise disk_error(self.directory / HISTORY, error) from None
        self.history.append(record)
        self.evaluations += 1
        if self.on_record is not None:
            self.on_record(record)
        if self.evaluations == self.fail_fast:
            self._stop_if_all_failed()
        return record

    def _stop_if_all_failed(self) -> None:
        reasons = Counter(r["reason"] for r in self.history[:self.fail_fast])
        if None not in reasons:
            listed = "; ".join(f"{n} x {reason}" for reason, n in reasons.most_common(3))
            raise SearchFailed(f"the first {self.fail_fast} candidates all failed ({listed}); "
                               "the settings cannot work: fix them and start a new run")

    # -- checkpoints -------------------------------------------------------------------------------

    def checkpoint(self, **state: Any) -> bool:
        """A safe point of the loop: write ``state`` when a checkpoint is due, and at the end
        (so that files only earlier states needed are deleted); whether the search may go on
        (False once the evaluation budget or the time limit is spent). Nothing is written while
        the history is replayed: the state is behind the files on disk until it catches up,
        and the checkpoint being replayed from (or a deleted one put back) stays valid."""
        spent = self.budget is not None and self.evaluations >= self.budget
        late = self._late()
        self.logbook = state.get("logbook", self.logbook)
        if self.evaluations <= self._resumed_at:  # the run before the resume handed these on
            self._logbook_shown = len(self.logbook or ())
        else:
            self._hand_on(self.logbook)
        if self.replaying:
            return not (spent or late)
        if self._due() or ((spent or late) and self.evaluations != self._written):
            self.write_checkpoint(state)
        return not (spent or late)

    def _due(self) -> bool:
        """Whether a checkpoint is due: the first one; ``checkpoint_every`` evaluations and
        ``checkpoint_gap`` seconds after the last; or ``checkpoint_seconds`` after it."""
        if self._written is None:
            return True
        since = time.monotonic() - self._written_at
        if self.checkpoint_seconds is not None and since >= self.checkpoint_seconds:
            return True
        return self.evaluations - self._written >= self.checkpoint_every and \
            since >= self.checkpoint_gap

    def write_checkpoint(self, state: dict) -> None:
        """Write ``state`` and the random states now (atomically; the history first)."""
        logbook = state.get("logbook")
        appended = isinstance(logbook, tools.Logbook) and not logbook.chapters
        if appended:
            state = {**state, "logbook": None}
        data, tensors = statecodec.encode(state, self.space, self.container)
        digests = self._digests(state)
        tensor_file = self._write_tensors(tensors) if tensors else None
        self._sync_history()
        write_json(self.directory / CHECKPOINT, {
            "format": FORMAT, "evaluations": self.evaluations, "elapsed": self.elapsed,
            "config": self.config, "random": random_states(), "tensors": tensor_file,
            "files": digests, "logbook": self._logbook.save(logbook) if appended else None,
            "state": data})
        for old in files(self.directory, "checkpoint-*.pt"):
            if tensor_file is None or old.name != tensor_file["file"]:
                old.unlink()
        self._written, self._written_at = self.evaluations, time.monotonic()
        for callback in self.after_write:
            callback(state)

    def _write_tensors(self, tensors: dict) -> dict:
        """The tensors to ``checkpoint-N.pt`` (atomic and durable, as the JSON beside it); the
        reference the checkpoint keeps: file name and SHA-256 of the bytes written."""
        name, buffer = f"checkpoint-{self.evaluations}.pt", io.BytesIO()
        torch.save(tensors, buffer)
        data = buffer.getvalue()
        write_atomic(self.directory / name, data)
        return {"file": name, "sha256": sha256(data)}

    def _digests(self, state: dict) -> dict[str, str]:
        """``{file: SHA-256}`` of the :attr:`state_files` of ``state`` (paths relative to the
        directory); a file the state needs that is not there is an error naming it."""
        digests = {}
        for named in self.state_files:
            for path in map(Path, named(state)):
                name = Path(os.path.relpath(path, self.directory)).as_posix()
                if not path.is_file():
                    raise RunDirectoryError(
                        f"{path} is missing, but the search's state after {self.evaluations} "
                        "evaluations needs it: it was deleted or moved while the run was "
                        "stopped; restore it from a copy of the run directory, or start a new "
                        "run")
                digests[name] = sha256(path)
        return digests

    def _check_files(self, saved: dict) -> None:
        """Every file the checkpoint names is there, with the content it was made with."""
        for name, digest in (saved.get("files") or {}).items():
            path = self.directory / name
            if Path(name).is_absolute() or ".." in Path(name).parts:
                raise RunDirectoryError(f"{self.directory / CHECKPOINT} names {name!r}, which "
                                        "lies outside the run directory; start a new run")
            if not path.is_file():
                raise RunDirectoryError(
                    f"{path} is missing: the search's state after {saved['evaluations']} "
                    f"evaluations ({self.directory / CHECKPOINT}) needs it to go on; restore "
                    "it from a copy of the run directory, or start a new run")
            if sha256(path) != digest:
                raise RunDirectoryError(
                    f"{path} is not the file the checkpoint was made with (its SHA-256 "
                    "differs: it was replaced, swapped with another or edited); put the run's "
                    "own file back, or start a new run")

    def restore(self) -> Optional[dict]:
        """The state of the last checkpoint, with the random states restored, or None when there
        is none (a fresh run, or one rebuilt by replaying its whole history)."""
        path = self.directory / CHECKPOINT
        if not path.exists():
            return None
        saved = read_json(path, "checkpoint")
        self._check(saved)
        self._check_files(saved)
        tensors = self._tensors(saved.get("tensors"))
        try:
            state = _SavedState(path, statecodec.decode(saved["state"], tensors, self.space,
                                                        self.container))
        except (KeyError, TypeError, ValueError) as error:
            raise RunDirectoryError(f"{path} cannot be restored ({error}); it was damaged or "
                                    "made by another version: start a new run") from None
        if saved.get("logbook") is not None:
            state["logbook"] = self._logbook.load(saved["logbook"])
        try:
            set_random_states(saved["random"])
        except (KeyError, TypeError, ValueError, IndexError) as error:
            raise RunDirectoryError(f"{path}: random cannot be restored ({type(error).__name__})"
                                    "; it was damaged or edited: restore it, or start a new "
                                    "run") from None
        self.evaluations = self._written = saved["evaluations"]
        self._elapsed_before, self._started = saved["elapsed"], time.monotonic()
        return state

    def _check(self, saved: dict) -> None:
        path = self.directory / CHECKPOINT
        if not isinstance(saved, dict) or saved.get("format") != FORMAT:
            raise RunDirectoryError(f"{path} is not a checkpoint of this deapnas version "
                                    f"(format {FORMAT}); start a new run")
        conform(saved, schema.CHECKPOINT, str(path))
        if saved["evaluations"] > len(self.history):
            raise RunDirectoryError(
                f"{path} was written after {saved['evaluations']} evaluations but "
                f"{self.directory / HISTORY} holds {len(self.history)}: records were lost; "
                "restore the history file, or start a new run")
        if self.config is not None and saved.get("config") != self.config:
            changed = settings_differences(saved.get("config") or {}, self.config)
            raise RunDirectoryError(
                f"{self._settings_source()} differs from the settings the checkpoint was made "
                f"with ({changed}); restore them, or start a new run")

    def _tensors(self, reference: Optional[dict]) -> dict:
        if reference is None:
            return {}
        path = self.directory / check_name(reference["file"],
                                            f"{self.directory / CHECKPOINT}: the tensor file")
        data = read_bytes(path) if path.exists() else None
        if data is None or sha256(data) != reference["sha256"]:
            raise RunDirectoryError(f"{path} is missing or does not match its checkpoint; "
                                    "restore it, or start a new run")
        try:
            return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except Exception as error:  # torch raises several kinds for a foreign file
            raise RunDirectoryError(f"{path} holds something other than tensors and is refused "
                                    f"({type(error).__name__})") from None

    # -- helpers -----------------------------------------------------------------------------------

    def _cut_partial_line(self, complete: int) -> None:
        path = self.directory / HISTORY
        if path.exists() and path.stat().st_size > complete:
            with open_file(path, "r+b") as handle:
                handle.truncate(complete)

    def _sync_history(self) -> None:
        try:
            self._handle.flush()
            os.fsync(self._handle.fileno())
        except OSError as error:
            raise disk_error(self.directory / HISTORY, error) from None

    def _hand_on(self, logbook) -> None:
        """Give ``on_logbook`` the records ``logbook`` gained since the last call."""
        if self.on_logbook is None or logbook is None:
            return
        for index in range(self._logbook_shown, len(logbook)):
            self.on_logbook(logbook[index], index)
        self._logbook_shown = max(self._logbook_shown, len(logbook))

    def write_logbook(self, logbook) -> None:
        """The logbook as CSV, one row per record (and its last records to ``on_logbook``)."""
        self._hand_on(logbook)
        fields = list(dict.fromkeys(k for record in logbook for k in record))
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=fields)
        writer.writeheader()
        writer.writerows(logbook)
        write_atomic(self.directory / LOGBOOK, text.getvalue().encode())


class _SavedState(dict):
    """A state restored from a checkpoint: a key the loop asks for that the checkpoint lacks
    is a :class:`RunDirectoryError` naming the file, not a ``KeyError``."""

    def __init__(self, path: Path, state: dict):
        super().__init__(state)
        self.path = path

    def __missing__(self, key: str) -> Any:
        raise RunDirectoryError(f"{self.path}: state.{key} is missing; it was damaged or "
                                "edited: restore it, or start a new run")


class _LogbookLines:
    """A loop's logbook as ``logbook.jsonl``: each checkpoint appends the records added since
    the last one, and refers to the file by its number of records."""

    def __init__(self, path: Path, space: Any, container: type):
        self.path, self.space, self.container = path, space, container
        self.written = 0

    def save(self, logbook: tools.Logbook) -> dict:
        """Append the new records (durably); the reference a checkpoint keeps. A journal that
        restored no checkpoint (a run rebuilt from its history) writes the file anew: the lines
        there belong to the deleted checkpoint."""
        new = logbook[self.written:]
        if new:
            try:
                with open_file(self.path, "a" if self.written else "w") as handle:
                    for record in new:
                        handle.write(json.dumps(self._encode(record)) + "\n")
                    handle.flush()
                    os.fsync(handle.fileno())
            except OSError as error:
                raise disk_error(self.path, error) from None
        self.written = len(logbook)
        return {"records": len(logbook), "header": logbook.header}

    def load(self, reference: dict) -> tools.Logbook:
        """The logbook a checkpoint refers to; records appended after it are cut off."""
        lines = read_bytes(self.path).splitlines(keepends=True) if self.path.exists() else []
        count = reference["records"]
        if len(lines) < count:
            raise RunDirectoryError(f"{self.path} holds {len(lines)} records, fewer than the "
                                    f"{count} of the checkpoint; restore it, or start a new run")
        logbook = tools.Logbook()
        logbook.header = reference["header"]
        try:
            logbook.extend(statecodec.decode(json.loads(line), {}, self.space, self.container)
                           for line in lines[:count])
        except json.JSONDecodeError as error:
            raise RunDirectoryError(f"{self.path} is damaged ({error}); restore it, or start "
                                    "a new run") from None
        if lines:
            with open_file(self.path, "r+b") as handle:
                handle.truncate(sum(len(line) for line in lines[:count]))
        self.written = count
        return logbook

    def _encode(self, record: dict):
        return statecodec.encode(record, self.space, self.container)[0]


def _digest(config: Any) -> str:
    """The short digest of a run's settings that each history record keeps."""
    return sha256(json.dumps(config, sort_keys=True).encode())[:12]


def sha256(source: str | os.PathLike | bytes) -> str:
    """The SHA-256 of ``source``'s bytes (a file's, read in blocks, not through a link), in
    hexadecimal."""
    if isinstance(source, bytes):
        return hashlib.sha256(source).hexdigest()
    digest = hashlib.sha256()
    with open_file(source, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _plain(info: dict) -> dict:
    """Measurements as JSON values (numpy and torch scalars become numbers)."""
    return {k: v.item() if hasattr(v, "item") else v for k, v in info.items()}
