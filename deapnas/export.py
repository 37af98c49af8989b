"""A finished run's architecture as a model to use: :func:`load_model` rebuilds the trained
network in Python; :func:`export` writes it as a ``torch.export`` program that loads and runs
without deapnas::

    program = torch.export.load("runs/re-macro-digits-seed0/export/model.pt2")
    logits = program.module()(images)          # images: N x C x H x W, normalised as in training

Both need the weights ``deapnas train DIR`` writes (``model.pt`` and ``train.json``).
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from .networks import check_parameters
from .run import BEST, read_genome, read_json, write_json
from .runner import load_config
from .spaces import get_space
from .training import load_weights

TRAINED, WEIGHTS = "train.json", "model.pt"


def load_model(directory: str | os.PathLike) -> nn.Module:
    """The run's picked architecture with the weights ``deapnas train`` gave it, in eval mode."""
    directory = Path(directory)
    if not (directory / BEST).exists():
        raise ValueError(f"{directory} has no final pick yet; finish the search first")
    if not (directory / TRAINED).exists() or not (directory / WEIGHTS).exists():
        raise ValueError(f"{directory} has no trained weights: run `deapnas train {directory}` "
                         "first")
    config, options, _ = load_config(directory)
    best, trained = read_json(directory / BEST, "result"), read_json(directory / TRAINED,
                                                                       "training result")
    space = get_space(best.get("space", config.space))
    network = trained.get("network") or space.network_kwargs(options)  # as `train` built it
    genome = read_genome(space, best["genome"], directory / BEST)
    shape, classes = tuple(trained["input_shape"]), trained["num_classes"]
    check_parameters(lambda: space.build_network(genome, shape, classes, **network),
                     f"{directory / BEST}: genome, with the network of {directory / TRAINED},",
                     "restore the files, or retrain with `deapnas train` if they were edited")
    net = space.build_network(genome, shape, classes, **network)
    net.load_state_dict(load_weights(directory / WEIGHTS))
    return net.eval()


def export(directory: str | os.PathLike) -> Path:
    """Write ``DIR/export/model.pt2`` (the trained network as a ``torch.export`` program, batch
    size free) and ``DIR/export/genome.json``; the program's path."""
    directory = Path(directory)
    net = load_model(directory)
    shape = tuple(read_json(directory / TRAINED, "training result")["input_shape"])
    batch = torch.export.Dim("batch", min=1)
    with torch.no_grad():
        program = torch.export.export(net, (torch.zeros(2, *shape),),
                                      dynamic_shapes=({0: batch},))
    out = directory / "export"
    out.mkdir(exist_ok=True)
    torch.export.save(program, out / "model.pt2")
    best = read_json(directory / BEST, "result")
    write_json(out / "genome.json", {k: best[k] for k in ("method", "space", "genome", "key")
                                     if k in best} | {"input_shape": list(shape)})
    return out / "model.pt2"
