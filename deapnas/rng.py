"""Random states: Python's, NumPy's global and torch's generators, captured as JSON values (a
checkpoint keeps them, :mod:`deapnas.checkpoint`) and put back, so that a resumed search draws
what the uninterrupted one would have."""
from __future__ import annotations

import base64
import random

import numpy as np
import torch


def random_states() -> dict:
    """Python's, NumPy's global and torch's (CPU, and CUDA once initialised) random states."""
    version, internal, gauss = random.getstate()
    numpy_state = np.random.get_state(legacy=False)
    states = {"python": [version, list(internal), gauss],
              "numpy": {**numpy_state, "state": {"key": numpy_state["state"]["key"].tolist(),
                                                 "pos": numpy_state["state"]["pos"]}},
              "torch": _text(torch.get_rng_state())}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = [_text(s) for s in torch.cuda.get_rng_state_all()]
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


def _text(tensor: torch.Tensor) -> str:
    return base64.b64encode(tensor.numpy().tobytes()).decode()


def _tensor(text: str) -> torch.Tensor:
    return torch.frombuffer(bytearray(base64.b64decode(text)), dtype=torch.uint8)

