"""What every experiment script shares: the run options, how a preset fills the rest, loading
the data, starting a run and the final training of its pick.

The scripts import it as a sibling module (``python experiments/NAME.py`` puts this folder on
the module path).
"""
from __future__ import annotations

import argparse
import contextlib
import random
import signal
from pathlib import Path
from typing import Iterator, Optional

import numpy as np
import torch

from deapnas.data import DatasetError, load_dataset
from deapnas.fitness import TrainEvaluator
from deapnas.journal import Journal
from deapnas.retraining import TRAIN_LOG, TRAIN_STATE, TrainingLog
from deapnas.safefiles import RunDirectoryError


def add_run_options(parser: argparse.ArgumentParser, name: str, step: str) -> None:
    """``--device``, ``--seed``, ``--out`` (default ``runs/NAME-...``) and ``--quiet`` (no
    statistics per ``step``)."""
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help=f"run directory (default runs/{name}-...)")
    parser.add_argument("--quiet", action="store_true", help=f"no per-{step} statistics")


def fill_preset(args: argparse.Namespace, preset: dict) -> None:
    """Every option left unset on the command line (None) takes the ``preset``'s value."""
    for name, value in preset.items():
        if getattr(args, name, None) is None:
            setattr(args, name, value)


def load_data(args: argparse.Namespace, **kwargs):
    """The dataset ``args`` name (``dataset``, ``data_dir``, ``download``, ``seed``; more
    loader keywords in ``kwargs``), or the end of the script with the loader's message, which
    says what to do (pass ``--download``, say)."""
    try:
        return load_dataset(args.dataset, args.data_dir, download=args.download, seed=args.seed,
                            **kwargs)
    except DatasetError as error:
        raise SystemExit(f"error: {error}") from None


@contextlib.contextmanager
def open_journal(*args, **kwargs) -> Iterator[Journal]:
    """:class:`~deapnas.journal.Journal` ``(*args, **kwargs)`` for the ``with`` block; a run
    directory the script cannot use (a run made with other settings in ``--out``, a damaged
    file) ends the script with the journal's message, which names the problem."""
    try:
        with Journal(*args, **kwargs) as journal:
            yield journal
    except RunDirectoryError as error:
        raise SystemExit(f"error: {error}") from None


def start(seed: int) -> None:
    """Before the search: ``kill`` (SIGTERM) ends the script as Ctrl-C does, so the run
    directory is left resumable, and Python's, NumPy's and torch's generators are seeded."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def final_training(evaluator: TrainEvaluator, individual, out: str | Path,
                   epochs: Optional[int] = None, seed: int = 0, quiet: bool = False,
                   keep_validation: bool = False) -> tuple[float, torch.nn.Module]:
    """``evaluator.train_and_test(individual, epochs, seed, keep_validation=...)`` as
    ``deapnas train`` runs it:
    the whole training state is saved to ``OUT/train-state.pt`` after every epoch, each epoch's
    record to ``OUT/train.jsonl`` (with a progress bar unless ``quiet``), and a training
    interrupted there (Ctrl-C, kill, a crash) continues from its last epoch when the script is
    run again, to the result of an uninterrupted one. The state is kept once finished, so that
    running the script again prints the same result without training again. A state saved
    with other settings (``--final-epochs``, say) ends the script with the message naming
    them, which says to delete the file to train afresh."""
    Path(out).mkdir(parents=True, exist_ok=True)
    log = TrainingLog(Path(out) / TRAIN_LOG, epochs or evaluator.epochs, enabled=not quiet)
    try:
        return evaluator.train_and_test(individual, epochs, seed, Path(out) / TRAIN_STATE,
                                        progress=log, keep_validation=keep_validation)
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    finally:
        log.close()
