"""A run directory: what a search leaves on disk as it goes, and how it resumes.

Files (all written as results arrive):

- ``config.json``: the settings the run was started with (``deapnas resume`` reads them back);
- ``history.jsonl``: one line per evaluation, appended the moment it completes: readable genome,
  architecture key, fitness and the evaluator's measurements (parameters, time, failure reason);
- ``checkpoint.pkl``: the loop's state and every random state, replaced atomically every
  ``checkpoint_every`` evaluations and when the run is interrupted;
- ``logbook.csv`` and ``best.json``: written when the search ends.

Resuming restores the checkpoint and *replays* the evaluations that the history holds beyond it
instead of recomputing them, so nothing evaluated is lost and, with the same seed, a resumed run
ends exactly where the uninterrupted run would have.
"""
from __future__ import annotations

import csv
import json
import os
import pickle
import random
import time
from collections import defaultdict, deque
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch

from .algorithms import assign
from .fitness import Evaluation

HISTORY, CHECKPOINT, CONFIG = "history.jsonl", "checkpoint.pkl", "config.json"
LOGBOOK, BEST = "logbook.csv", "best.json"


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` so that ``path`` holds either its old or its new content, never a part."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def write_json(path: Path, data: Any) -> None:
    write_atomic(path, (json.dumps(data, indent=2) + "\n").encode())


def read_history(directory: str | os.PathLike) -> list[dict]:
    """Every evaluation record of a run directory, in order."""
    path = Path(directory) / HISTORY
    if not path.exists():
        return []
    with open(path) as handle:
        return [json.loads(line) for line in handle if line.strip()]


class Journal:
    """Records a search in ``directory`` and restores it after an interruption.

    :param describe: ``describe(individual) -> dict`` with the JSON-ready ``genome`` and
        ``key`` of an individual (the space's ``to_json`` and ``key``).
    :param checkpoint_every: evaluations between checkpoints.
    :param time_limit: seconds of search after which :meth:`exhausted` turns true; counted
        across resumes.
    :param on_record: called with each new history record (a progress bar, say).
    """

    def __init__(self, directory: str | os.PathLike, describe: Callable[[Any], dict],
                 checkpoint_every: int = 10, time_limit: Optional[float] = None,
                 on_record: Optional[Callable[[dict], None]] = None):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.describe, self.checkpoint_every = describe, checkpoint_every
        self.time_limit, self.on_record = time_limit, on_record
        self.evaluations, self.elapsed_before = 0, 0.0
        self._started = time.monotonic()
        self._snapshot: Optional[bytes] = None
        self._last_written = -1
        self._pending: dict[str, deque] = defaultdict(deque)

    @property
    def elapsed(self) -> float:
        """Seconds of search so far, including the time before any resume."""
        return self.elapsed_before + time.monotonic() - self._started

    # -- during the search ---------------------------------------------------------------------

    def record(self, individual) -> dict:
        """Append the individual's evaluation to the history."""
        self.evaluations += 1
        record = {"evaluation": self.evaluations, **self.describe(individual),
                  "eval_seed": getattr(individual, "eval_seed", 0),
                  "fitness": list(individual.fitness.values), **individual.info,
                  "elapsed": round(self.elapsed, 3)}
        with open(self.directory / HISTORY, "a") as handle:
            handle.write(json.dumps(record) + "\n")
        if self.on_record is not None:
            self.on_record(record)
        return record

    def checkpoint(self, **state: Any) -> None:
        """Snapshot the loop's state with all random states; write it when one is due."""
        self._snapshot = pickle.dumps({
            **state, "evaluations": self.evaluations, "elapsed": self.elapsed,
            "random": random.getstate(), "numpy": np.random.get_state(),
            "torch": torch.get_rng_state()})
        first = not (self.directory / CHECKPOINT).exists()  # so a resume never starts over
        if first or self.evaluations - self._last_written >= self.checkpoint_every:
            self.flush()

    def flush(self) -> None:
        """Write the latest snapshot now (on interruption, say)."""
        if self._snapshot is not None:
            write_atomic(self.directory / CHECKPOINT, self._snapshot)
            self._last_written = self.evaluations

    def exhausted(self) -> bool:
        """True once the time limit is spent."""
        return self.time_limit is not None and self.elapsed >= self.time_limit

    # -- resuming ------------------------------------------------------------------------------

    def restore(self) -> Optional[dict]:
        """The checkpointed state (random states restored), or None for a fresh run.

        History records written after the checkpoint are kept aside for :meth:`replay` and
        the history file is cut back to the checkpoint.
        """
        path = self.directory / CHECKPOINT
        if not path.exists():
            return None
        with open(path, "rb") as handle:
            state = pickle.load(handle)
        random.setstate(state["random"])
        np.random.set_state(state["numpy"])
        torch.set_rng_state(state["torch"])
        history = read_history(self.directory)
        kept, beyond = history[:state["evaluations"]], history[state["evaluations"]:]
        write_atomic(self.directory / HISTORY, "".join(json.dumps(r) + "\n" for r in kept).encode())
        for record in beyond:
            self._pending[self._replay_key(record["genome"], record["eval_seed"])].append(record)
        self.evaluations = self._last_written = state["evaluations"]
        self.elapsed_before, self._started = state["elapsed"], time.monotonic()
        return state

    def replay(self, individual) -> bool:
        """Assign a recorded evaluation to ``individual`` if the history holds one."""
        key = self._replay_key(self.describe(individual)["genome"],
                               getattr(individual, "eval_seed", 0))
        if not self._pending[key]:
            return False
        record = self._pending[key].popleft()
        info = {k: v for k, v in record.items()
                if k not in ("evaluation", "genome", "key", "eval_seed", "fitness", "elapsed")}
        assign(individual, Evaluation(record["fitness"], **info))
        self.record(individual)
        return True

    @staticmethod
    def _replay_key(genome: Any, eval_seed: int) -> str:
        return json.dumps([genome, eval_seed], sort_keys=True)

    # -- at the end ----------------------------------------------------------------------------

    def write_logbook(self, logbook) -> None:
        """The logbook as CSV, one row per record."""
        fields = list(dict.fromkeys(k for record in logbook for k in record))
        with open(self.directory / LOGBOOK, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields)
            writer.writeheader()
            writer.writerows(logbook)
