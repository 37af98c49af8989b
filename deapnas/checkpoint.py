"""A search's checkpoint, written and restored for :class:`deapnas.journal.Journal`:
``checkpoint.json`` (the loop's state, every random state, the SHA-256 of every other file the
state needs), the state's tensors in ``checkpoint-N.pt``, and the loop's logbook appended to
``logbook.jsonl`` record by record, so that a checkpoint costs as much late in a long search as
early.

Nothing in it is executed: the state is JSON plus tensors read with
``torch.load(weights_only=True)`` (see :mod:`deapnas.state`). A file the state needs besides the
checkpoint (a method's weights, a mini dataset) is recorded by its SHA-256 and checked when the
checkpoint is restored, so one that was deleted, swapped or edited is refused, named, instead of
silently used.
"""
from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any, Callable, Iterable, NamedTuple, Optional

import torch
from deap import tools

from . import schema
from . import state as statecodec
from .fitness import settings_differences
from .rng import random_states, set_random_states
from .rundir import CHECKPOINT, HISTORY, LOGBOOK_LINES, conform, read_json, sha256, write_json
from .safefiles import (RunDirectoryError, check_name, disk_error, files, open_file, read_bytes,
                        write_atomic)

FORMAT = 2


class Restored(NamedTuple):
    """What :meth:`Checkpoints.restore` read: the loop's state, and the evaluations and seconds
    of search it was written after."""

    state: dict
    evaluations: int
    elapsed: float


class Checkpoints:
    """The checkpoint of the run in ``directory``, whose individuals ``space`` describes and
    rebuilds as ``container``.

    :param state_files: called with each state to checkpoint: the files of the directory that
        the state needs besides the checkpoint (the journal's
        :attr:`~deapnas.journal.Journal.state_files`).
    """

    def __init__(self, directory: Path, space: Any, container: type,
                 state_files: list[Callable[[dict], Iterable[Path]]]):
        self.directory, self.path = directory, directory / CHECKPOINT
        self.space, self.container, self.state_files = space, container, state_files
        self._logbook = _LogbookLines(directory / LOGBOOK_LINES, space, container)

    def write(self, state: dict, evaluations: int, elapsed: float,
              config: Optional[dict]) -> None:
        """Write ``state``, made after ``evaluations`` (``elapsed`` seconds of search, under
        ``config``), and the random states now, atomically; tensor files of earlier
        checkpoints are deleted."""
        logbook = state.get("logbook")
        appended = isinstance(logbook, tools.Logbook) and not logbook.chapters
        if appended:
            state = {**state, "logbook": None}
        data, tensors = statecodec.encode(state, self.space, self.container)
        digests = self._digests(state, evaluations)
        tensor_file = self._write_tensors(tensors, evaluations) if tensors else None
        write_json(self.path, {
            "format": FORMAT, "evaluations": evaluations, "elapsed": elapsed,
            "config": config, "random": random_states(), "tensors": tensor_file,
            "files": digests, "logbook": self._logbook.save(logbook) if appended else None,
            "state": data})
        for old in files(self.directory, "checkpoint-*.pt"):
            if tensor_file is None or old.name != tensor_file["file"]:
                old.unlink()

    def _write_tensors(self, tensors: dict, evaluations: int) -> dict:
        """The tensors to ``checkpoint-N.pt`` (atomic and durable, as the JSON beside it); the
        reference the checkpoint keeps: file name and SHA-256 of the bytes written."""
        name, buffer = f"checkpoint-{evaluations}.pt", io.BytesIO()
        torch.save(tensors, buffer)
        data = buffer.getvalue()
        write_atomic(self.directory / name, data)
        return {"file": name, "sha256": sha256(data)}

    def _digests(self, state: dict, evaluations: int) -> dict[str, str]:
        """``{file: SHA-256}`` of the :attr:`state_files` of ``state`` (paths relative to the
        directory); a file the state needs that is not there is an error naming it."""
        digests = {}
        for named in self.state_files:
            for path in map(Path, named(state)):
                name = Path(os.path.relpath(path, self.directory)).as_posix()
                if not path.is_file():
                    raise RunDirectoryError(
                        f"{path} is missing, but the search's state after {evaluations} "
                        "evaluations needs it: it was deleted or moved while the run was "
                        "stopped; restore it from a copy of the run directory, or start a new "
                        "run")
                digests[name] = sha256(path)
        return digests

    def restore(self, recorded: int, config: Optional[dict],
                settings_source: str) -> Optional[Restored]:
        """The last checkpoint, with the random states restored, or None when there is none.
        It is refused when the history holds fewer than its evaluations (``recorded``), when it
        was made under another ``config`` than the run's (kept in ``settings_source``, which
        the message names), or when a file it needs is missing or changed."""
        if not self.path.exists():
            return None
        path, saved = self.path, read_json(self.path, "checkpoint")
        self._check(saved, recorded, config, settings_source)
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
        return Restored(state, saved["evaluations"], saved["elapsed"])

    def _check(self, saved: dict, recorded: int, config: Optional[dict],
               settings_source: str) -> None:
        path = self.path
        if not isinstance(saved, dict) or saved.get("format") != FORMAT:
            raise RunDirectoryError(f"{path} is not a checkpoint of this deapnas version "
                                    f"(format {FORMAT}); start a new run")
        conform(saved, schema.CHECKPOINT, str(path))
        if saved["evaluations"] > recorded:
            raise RunDirectoryError(
                f"{path} was written after {saved['evaluations']} evaluations but "
                f"{self.directory / HISTORY} holds {recorded}: records were lost; "
                "restore the history file, or start a new run")
        if config is not None and saved.get("config") != config:
            changed = settings_differences(saved.get("config") or {}, config)
            raise RunDirectoryError(
                f"{settings_source} differs from the settings the checkpoint was made "
                f"with ({changed}); restore them, or start a new run")

    def _check_files(self, saved: dict) -> None:
        """Every file the checkpoint names is there, with the content it was made with."""
        for name, digest in (saved.get("files") or {}).items():
            path = self.directory / name
            if Path(name).is_absolute() or ".." in Path(name).parts:
                raise RunDirectoryError(f"{self.path} names {name!r}, which lies outside the "
                                        "run directory; start a new run")
            if not path.is_file():
                raise RunDirectoryError(
                    f"{path} is missing: the search's state after {saved['evaluations']} "
                    f"evaluations ({self.path}) needs it to go on; restore it from a copy of "
                    "the run directory, or start a new run")
            if sha256(path) != digest:
                raise RunDirectoryError(
                    f"{path} is not the file the checkpoint was made with (its SHA-256 "
                    "differs: it was replaced, swapped with another or edited); put the run's "
                    "own file back, or start a new run")

    def _tensors(self, reference: Optional[dict]) -> dict:
        """The tensors of the file ``reference`` names, checked against its SHA-256."""
        if reference is None:
            return {}
        path = self.directory / check_name(reference["file"], f"{self.path}: the tensor file")
        data = read_bytes(path) if path.exists() else None
        if data is None or sha256(data) != reference["sha256"]:
            raise RunDirectoryError(f"{path} is missing or does not match its checkpoint; "
                                    "restore it, or start a new run")
        try:
            return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except Exception as error:  # torch raises several kinds for a foreign file
            raise RunDirectoryError(f"{path} holds something other than tensors and is refused "
                                    f"({type(error).__name__})") from None


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

