"""The journal of a search: every evaluation recorded in a run directory
(:mod:`deapnas.rundir`) the moment it completes, checkpoints of the loop's state
(:mod:`deapnas.checkpoint`), and resuming.

Resuming restores the checkpoint and *replays* the evaluations the history holds beyond it, by
position, instead of recomputing them; a loop that asks for anything other than the recorded
evaluation stops with an error (the run was changed). With the same seed, a resumed run ends
exactly where the uninterrupted run would have. The same replay serves any deterministic DEAP
loop without a checkpoint: :meth:`Journal.wrap` a toolbox, run the loop, run it again after an
interruption, and every evaluation already recorded is replayed from the history (unless the
evaluator's settings changed: then the run is refused, naming them).

Each new evaluation's record is written by :meth:`Journal._record` (and handed to
``on_record``); the loop's logbook is handed to :meth:`Journal.checkpoint` at each safe point
(kept as :attr:`Journal.logbook`, written to ``logbook.jsonl`` with each checkpoint).
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

from .checkpoint import Checkpoints
from .fitness import Evaluation, failure, settings_differences, settings_of
from .options import check_path, wrong_type
from .rundir import (CONFIG, HISTORY, LOGBOOK, SETTINGS, Lock, read_records, read_settings,
                     sha256, write_json)
from .safefiles import (RunDirectoryError, SearchFailed, disk_error, open_file, remove_leftovers,
                        write_atomic)


class TimeUp(Exception):
    """The time limit of a journal made with ``stop_within_batches`` was spent before an
    evaluation: the search ends there, with the evaluations recorded so far."""


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
    :param lock: the directory's :class:`~deapnas.rundir.Lock`, when the caller already holds
        it (the runner takes it before it checks or writes anything); the journal releases it
        on close.

    The journal holds the directory's :class:`~deapnas.rundir.Lock` from construction until
    :meth:`close`; use it as a context manager.
    """

    def __init__(self, directory: str | os.PathLike, space: Any, container: Optional[type] = None,
                 *, config: Optional[dict] = None, checkpoint_every: int = 10,
                 checkpoint_gap: float = 0.0, checkpoint_seconds: Optional[float] = 600.0,
                 budget: Optional[int] = None,
                 time_limit: Optional[float] = None, stop_within_batches: bool = False,
                 fail_fast: int = 25, on_record: Optional[Callable[[dict], None]] = None,
                 on_logbook: Optional[Callable[[dict, int], None]] = None,
                 verbose: bool = __debug__, lock: Optional[Lock] = None):
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
            self.history, complete = read_records(self.directory / HISTORY, partial_ok=False)
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
        self._checkpoints = Checkpoints(self.directory, self.space, self.container,
                                        self.state_files)

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
        self._sync_history()
        self._checkpoints.write(state, self.evaluations, self.elapsed, self.config)
        self._written, self._written_at = self.evaluations, time.monotonic()
        for callback in self.after_write:
            callback(state)

    def restore(self) -> Optional[dict]:
        """The state of the last checkpoint, with the random states restored, or None when there
        is none (a fresh run, or one rebuilt by replaying its whole history)."""
        restored = self._checkpoints.restore(len(self.history), self.config,
                                             self._settings_source())
        if restored is None:
            return None
        self.evaluations = self._written = restored.evaluations
        self._elapsed_before, self._started = restored.elapsed, time.monotonic()
        return restored.state

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


def _digest(config: Any) -> str:
    """The short digest of a run's settings that each history record keeps."""
    return sha256(json.dumps(config, sort_keys=True).encode())[:12]


def _plain(info: dict) -> dict:
    """Measurements as JSON values (numpy and torch scalars become numbers)."""
    return {k: v.item() if hasattr(v, "item") else v for k, v in info.items()}
