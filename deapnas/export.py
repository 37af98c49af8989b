"""A finished run's architecture as a model to use: :func:`load_model` rebuilds the trained
network in Python; :func:`export` writes it as a ``torch.export`` program that loads and runs
without deapnas, and takes the images as the dataset stores them::

    program = torch.export.load("runs/re-macro-digits-seed0/export/model.pt2")
    logits = program.module()(images)  # float32 N x C x H x W raw pixel values (digits 0..16)

The exported program normalises its input itself, as the run normalised its images
(``(pixels / scale - mean) / std`` per channel, with the training split's mean and std);
``export/preprocessing.json`` records how. :func:`load_model` returns the network alone, which
takes normalised images (as :class:`deapnas.data.Dataset` holds them) unless
``raw_inputs=True``.

Both need the weights ``deapnas train DIR`` writes (``model.pt`` and ``train.json``, which
records the SHA-256 of ``model.pt``: a pair that does not match is refused).
"""
from __future__ import annotations

import inspect
import io
import os
from pathlib import Path
from typing import Optional

import torch
from torch import nn

from . import schema
from .data import Normalisation
from .networks import check_parameters
from .options import check_path
from .rundir import (BEST, TRAINED, WEIGHTS, load_config, read_genome, read_json, sha256,
                     write_json)
from .runner import load_data
from .safefiles import RunDirectoryError, folder, write_atomic
from .spaces import get_space
from .weights import load_weights


class RawInputs(nn.Module):
    """``net`` behind the normalisation its run applied: it takes float32 pixel values as the
    dataset stores them (0 to ``normalisation.scale``)."""

    def __init__(self, net: nn.Module, normalisation: Normalisation):
        super().__init__()
        self.net, self.scale = net, normalisation.scale
        channels = (1, -1, 1, 1)
        self.register_buffer("mean", torch.tensor(normalisation.mean).view(channels))
        self.register_buffer("std", torch.tensor(normalisation.std).view(channels))

    def forward(self, pixels: torch.Tensor):
        return self.net((pixels / self.scale - self.mean) / self.std)


def load_model(directory: str | os.PathLike, *, raw_inputs: bool = False) -> nn.Module:
    """The run's picked architecture with the weights ``deapnas train`` gave it, in eval mode.
    It takes images normalised as the run normalised them; with ``raw_inputs``, pixel values
    as the dataset stores them (float32; see :class:`RawInputs`), as the exported program
    does."""
    check_path("load_model(directory)", directory)
    return _trained_model(Path(directory), raw_inputs)[0]


def _trained_model(directory: Path, raw_inputs: bool) -> tuple[nn.Module, dict, dict]:
    """:func:`load_model`'s network, with ``best.json`` and ``train.json`` as it read them
    (each file read once)."""
    config, options, _ = load_config(directory)  # first: is it a run directory at all?
    if not (directory / BEST).exists():
        raise ValueError(f"{directory} has no final pick yet; finish the search first")
    trained = training_result(directory)
    best = read_json(directory / BEST, "result", schema.BEST)
    space = get_space(best.get("space", config.space))
    network = trained.get("network") or space.network_kwargs(options)  # as `train` built it
    _check_keywords(network, space.build_network, directory / TRAINED)
    genome = read_genome(space, best["genome"], directory / BEST)
    shape, classes = tuple(trained["input_shape"]), trained["num_classes"]
    check_parameters(lambda: space.build_network(genome, shape, classes, **network),
                     f"{directory / BEST}: genome, with the network of {directory / TRAINED},",
                     "restore the files, or retrain with `deapnas train` if they were edited")
    net = space.build_network(genome, shape, classes, **network)
    try:
        net.load_state_dict(load_weights(directory / WEIGHTS))
    except RuntimeError:  # names, shapes: torch's list of every mismatch is no help here
        raise RunDirectoryError(f"{directory / WEIGHTS} does not hold the weights of the network "
                                f"{directory / TRAINED} describes; run `deapnas train "
                                f"{directory}` again") from None
    if raw_inputs:
        net = RawInputs(net.eval(), normalisation(directory, trained))
    return net.eval(), best, trained


def normalisation(directory: str | os.PathLike, trained: Optional[dict] = None
                  ) -> Normalisation:
    """How the run's images were normalised: as ``train.json`` records it (``trained``: that
    file as :func:`training_result` read it; read here when not given), or (for a
    ``train.json`` of an older deapnas) as loading the run's dataset again finds it."""
    recorded = (trained or training_result(directory)).get("normalisation")
    if recorded is not None:
        return Normalisation(recorded["scale"], tuple(recorded["mean"]), tuple(recorded["std"]))
    config, options, _ = load_config(directory)
    return load_data(config, options).normalisation


def _check_keywords(network: dict, build, path: Path) -> None:
    """Refuse a ``network`` keyword that ``build`` does not take, naming it."""
    parameters = inspect.signature(build).parameters
    if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        return
    unknown = sorted(set(network) - set(parameters))
    if unknown:
        raise RunDirectoryError(f"{path}: network.{unknown[0]} is not a setting of this "
                                "space's network; it was damaged or edited: run `deapnas "
                                f"train {path.parent}` again")


def training_result(directory: str | os.PathLike) -> dict:
    """What ``deapnas train`` wrote to ``train.json``, once ``model.pt`` is checked against the
    SHA-256 it records; a ``ValueError`` saying to train again when the weights are missing or
    are not the model ``train.json`` describes."""
    directory = Path(directory)
    if not (directory / TRAINED).exists() or not (directory / WEIGHTS).exists():
        raise ValueError(f"{directory} has no trained weights: run `deapnas train {directory}` "
                         "first")
    trained = read_json(directory / TRAINED, "training result", schema.TRAINED)
    recorded = trained.get("weights_sha256")  # absent in a train.json of an older deapnas
    if recorded is not None and recorded != sha256(directory / WEIGHTS):
        raise ValueError(f"{directory / WEIGHTS} is not the model {directory / TRAINED} "
                         "describes (its SHA-256 differs: a training was interrupted between "
                         "the two files, or one was replaced); run `deapnas train "
                         f"{directory}` again")
    return trained


def export(directory: str | os.PathLike) -> Path:
    """Write ``DIR/export/model.pt2`` (the trained network as a ``torch.export`` program, batch
    size free, that takes raw pixel values and normalises them itself),
    ``DIR/export/genome.json`` and ``DIR/export/preprocessing.json`` (what the program expects
    and how it normalises it); the program's path."""
    check_path("export(directory)", directory)
    directory = Path(directory)
    net, best, trained = _trained_model(directory, raw_inputs=True)
    shape = tuple(trained["input_shape"])
    batch = torch.export.Dim("batch", min=1)
    with torch.no_grad():
        program = torch.export.export(net, (torch.zeros(2, *shape),),
                                      dynamic_shapes=({0: batch},))
    out, saved = folder(directory, "export"), io.BytesIO()
    torch.export.save(program, saved)
    write_atomic(out / "model.pt2", saved.getbuffer())
    write_json(out / "genome.json", {k: best[k] for k in ("method", "space", "genome", "key")
                                     if k in best} | {"input_shape": list(shape)})
    write_json(out / "preprocessing.json", preprocessing(net, shape))
    return out / "model.pt2"


def preprocessing(net: RawInputs, shape: tuple[int, ...]) -> dict:
    """What ``export/preprocessing.json`` says of the exported program's input."""
    scale = net.scale
    return {"input_dtype": "float32", "input_shape": ["N", *shape],
            "pixel_range": [0, scale],
            "normalisation": "(pixels / scale - mean) / std per channel, inside model.pt2",
            "scale": scale, "mean": net.mean.flatten().tolist(),
            "std": net.std.flatten().tolist()}
