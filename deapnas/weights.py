"""Weights on disk: a ``state_dict``, or any dict of tensors and plain values, written with
:func:`save_weights` (atomically) and read back with :func:`load_weights`, which uses
``torch.load(weights_only=True)``: a weights file can hold tensors and plain containers, never
code, so a file received from someone else is safe to load.

Everything that keeps tensors in a file goes through these two functions: trained networks,
training states, the weight-sharing store, and the mini datasets of :mod:`deapnas.data`. They
sit below both :mod:`deapnas.data` and :mod:`deapnas.training`, so that training builds on data
and nothing imports back.
"""
from __future__ import annotations

import io
import os
import pickle
import warnings
from pathlib import Path

import torch

from .safefiles import open_file, write_atomic


def save_weights(path: str | os.PathLike, state: dict) -> Path:
    """Write ``state`` (a ``state_dict``, or any dict of tensors and plain values) to ``path``
    atomically: the file holds the old or the new content, never a part
    (:func:`~deapnas.safefiles.write_atomic`: a link at ``path`` is refused, a full disk is a
    :class:`~deapnas.safefiles.RunDirectoryError` that says so). Missing folders on the way are
    created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(state, buffer)  # in memory: torch reports a failed write as a RuntimeError
    write_atomic(path, buffer.getbuffer())
    return path


def load_weights(path: str | os.PathLike, device: str | torch.device = "cpu") -> dict:
    """A dict saved by :func:`save_weights`, loaded with ``weights_only=True`` (tensors and
    plain containers only; a file that holds anything else is refused, and so is a symbolic
    link)."""
    with open_file(path, "rb") as handle:
        try:
            with warnings.catch_warnings():  # torch's notes on pickle protocols concern no user
                warnings.filterwarnings("ignore", "Detected pickle protocol")
                return torch.load(handle, map_location=device, weights_only=True)
        except pickle.UnpicklingError:  # torch's message advises an unsafe load: never relay it
            raise ValueError(f"{path} holds objects other than tensors and plain values, which "
                             "could run code when loaded: deapnas refuses it") from None
        except Exception as error:  # RuntimeError, EOFError... for a damaged or foreign file
            raise ValueError(f"{path} is not a weights file deapnas can read (a damaged or "
                             f"foreign file: {type(error).__name__})") from None
