"""What every experiment script shares: the run options, how a preset fills the rest, loading
the data and starting a run.

The scripts import it as a sibling module (``python experiments/NAME.py`` puts this folder on
the module path).
"""
from __future__ import annotations

import argparse
import contextlib
import random
import signal
from typing import Iterator

import numpy as np
import torch

from deapnas.data import DatasetError, load_dataset
from deapnas.journal import Journal
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
