"""A finished run's architecture as a model to use: :func:`load_model` rebuilds the trained
network in Python; :func:`export` writes it as a ``torch.export`` program that loads and runs
without deapnas::

    program = torch.export.load("runs/re-macro-digits-seed0/export/model.pt2")
    logits = program.module()(images)          # images: N x C x H x W, normalised as in training

Both need the weights ``deapnas train DIR`` writes (``model.pt`` and ``train.json``, which
records the SHA-256 of ``model.pt``: a pair that does not match is refused).
"""
from __future__ import annotations

import inspect
import io
import os
from pathlib import Path

import torch
from torch import nn

from . import schema
from .networks import check_parameters
from .run import BEST, RunDirectoryError, read_genome, read_json, sha256, write_json
from .runner import load_config
from .safefiles import folder, write_atomic
from .spaces import get_space
from .training import load_weights

TRAINED, WEIGHTS = "train.json", "model.pt"


def load_model(directory: str | os.PathLike) -> nn.Module:
    """The run's picked architecture with the weights ``deapnas train`` gave it, in eval mode."""
    directory = Path(directory)
    if not (directory / BEST).exists():
        raise ValueError(f"{directory} has no final pick yet; finish the search first")
    trained = training_result(directory)
    config, options, _ = load_config(directory)
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
    return net.eval()


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
    size free) and ``DIR/export/genome.json``; the program's path."""
    directory = Path(directory)
    net = load_model(directory)
    shape = tuple(read_json(directory / TRAINED, "training result",
                            schema.TRAINED)["input_shape"])
    batch = torch.export.Dim("batch", min=1)
    with torch.no_grad():
        program = torch.export.export(net, (torch.zeros(2, *shape),),
                                      dynamic_shapes=({0: batch},))
    out, saved = folder(directory, "export"), io.BytesIO()
    torch.export.save(program, saved)
    write_atomic(out / "model.pt2", saved.getbuffer())
    best = read_json(directory / BEST, "result", schema.BEST)
    write_json(out / "genome.json", {k: best[k] for k in ("method", "space", "genome", "key")
                                     if k in best} | {"input_shape": list(shape)})
    return out / "model.pt2"
