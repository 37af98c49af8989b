"""The run directory's files: their names, reading and writing them (each read checked
against :mod:`deapnas.schema`), the run's settings read back from ``config.json``, the lock,
and file digests.

Files:

- ``config.json``: what the run was started with (method, options, shared settings), written
  by the runner before the first evaluation;
- ``history.jsonl``: one line per evaluation, appended the moment it completes: the readable
  genome, the architecture key, the candidate's seed, the fitness (``null`` for a failed
  candidate, whose ``reason`` says why) and the evaluator's measurements under ``info``;
- ``checkpoint.json`` (and ``checkpoint-N.pt`` when the state holds tensors): the loop's state,
  every random state and the SHA-256 of every other file the state needs (see
  :mod:`deapnas.checkpoint`); the loop's ``logbook`` goes to ``logbook.jsonl``, appended record
  by record, so that a checkpoint costs as much late in a long search as early;
- ``lock``: held while a search, a resume or a training runs in the directory (:class:`Lock`);
- ``journal.json``: for a script's journal (made without ``config``), the settings of the
  evaluator it wraps and the fitness weights, which a later run of the script must share;
- ``logbook.csv`` and ``best.json`` (and ``pareto.json`` for several objectives): written when
  the search ends;
- ``train.json`` and ``model.pt``: the pick's final training (``deapnas train``).

Nothing in a run directory is ever executed: the checkpoint is JSON plus tensors read with
``torch.load(weights_only=True)`` (see :mod:`deapnas.state`), and its files are opened through
:mod:`deapnas.safefiles` (never through a symbolic link, names checked), so a run directory
received from someone else is safe to resume. This module imports neither torch nor NumPy:
``deapnas show`` reads a run through it.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shlex
import time
import warnings
from pathlib import Path
from typing import Any, Optional

from . import __version__, schema
from . import options as opts
from .methods import Method, recorded_method
from .options import RunConfig, objective_weights
from .safefiles import RunDirectoryError, open_file, read_bytes, write_atomic

HISTORY, CHECKPOINT, CONFIG, LOCK = "history.jsonl", "checkpoint.json", "config.json", "lock"
SETTINGS = "journal.json"
LOGBOOK, LOGBOOK_LINES, BEST, PARETO = "logbook.csv", "logbook.jsonl", "best.json", "pareto.json"
#: What ``deapnas train`` writes: the result (test accuracy, network settings) and the weights.
TRAINED, WEIGHTS = "train.json", "model.pt"


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
    return read_records(Path(directory) / HISTORY, partial_ok)[0]


def read_settings(directory: str | os.PathLike) -> dict:
    """What a script's journal keeps in ``journal.json`` (``{}`` when there is none):
    ``evaluator``, the settings :meth:`deapnas.journal.Journal.wrap` fingerprints, and
    ``weights``, the fitness weights of the individuals evaluated. A file of another shape is a
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


def read_records(path: Path, partial_ok: bool) -> tuple[list[dict], int]:
    """The records of the history file ``path``, each checked, and the byte length of its
    complete lines (see :func:`read_history`)."""
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


# -- the run's settings (config.json) ------------------------------------------------------------

def config_json(config: RunConfig, options: Any) -> dict:
    """What ``config.json`` holds (besides ``typed``: the paths as they were typed)."""
    return {"format": 2, "deapnas": __version__, "method": config.algorithm,
            "run": opts.as_dict(config), "options": opts.as_dict(options)}


def read_config(directory: str | os.PathLike) -> dict:
    """``config.json`` of a run directory, checked against :data:`deapnas.schema.CONFIG`
    (:func:`load_config` makes the settings of it)."""
    path = Path(directory) / CONFIG
    if not path.exists():
        raise RunDirectoryError(f"{directory} is not a deapnas run directory (no {CONFIG})")
    data = read_json(path, "run configuration")
    if not isinstance(data, dict) or data.get("format") != 2:
        raise RunDirectoryError(f"{path} was written by another version of deapnas (format "
                                f"{data.get('format', 1) if isinstance(data, dict) else '?'}); "
                                "this version reads format 2: start a new run")
    return conform(data, schema.CONFIG, str(path))


def load_config(directory: str | os.PathLike, data: Optional[dict] = None
                ) -> tuple[RunConfig, Any, Method]:
    """The run config, options and method recorded in a run directory (``data``: its
    ``config.json`` as :func:`read_config` read it; read here when not given), each checked
    (types, ranges). The method is found by its registered name: one recorded as
    ``package.module:ATTRIBUTE`` is used only once it was named in this process (on the command
    line, or by :func:`~deapnas.methods.get_method`), never imported on the directory's
    word."""
    path = Path(directory) / CONFIG
    data = read_config(directory) if data is None else data
    method = recorded_method(data["method"], str(path))
    conform(data["options"], schema.of_options(method.options), str(path), "options")
    config = opts.from_dict(RunConfig, data["run"], str(path))
    options = opts.from_dict(method.options, data["options"], str(path))
    if config.algorithm != data["method"]:
        raise RunDirectoryError(f"{path}: run.algorithm {config.algorithm!r} is not the method "
                                f"{data['method']!r}; it was edited: restore it, or start a new "
                                "run")
    for part, values in (("run", config), ("options", options)):
        try:
            opts.check(values)
        except ValueError as error:
            raise RunDirectoryError(f"{path}: {part}: {error}; it was damaged or edited: "
                                    "restore it, or start a new run") from None
    return config, options, method


def fitness_weights(config: RunConfig, method: Method) -> tuple[float, ...]:
    """The fitness weights of a run: its objectives' (``--objectives``), or the method's own."""
    if config.objective_names == ("accuracy",):
        return method.weights
    return objective_weights(config.objective_names)


def resume_command(directory: str | os.PathLike, algorithm: str) -> str:
    """The command that continues the run in ``directory`` made by the method ``algorithm``:
    a method of the user's own (``package.module:ATTRIBUTE``) is named again, since a run
    directory never chooses what deapnas imports."""
    named = f" --algorithm {shlex.quote(algorithm)}" if ":" in algorithm else ""
    return f"deapnas resume {directory}{named}"


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

