"""Weight sharing through a store on disk (NASGEP, Alves & de Oliveira, 2020, Sec. III-D):
"whenever a convolution block or gene has validation accuracy greater than before, its current
weights are saved to the disk; whenever a new individual is created, these weights are loaded
to the model, rather than being randomly initialized".

Three pieces, so that parallel workers, retried evaluations and resumed runs stay consistent:

- **Entries** (:class:`WeightStore`): the weights of some units (convolution blocks, genes),
  ``{unit key: state_dict}``, in a file named by a hash of its content, written atomically and
  never changed. Writing the same weights again names the same file; different weights get
  another file. Concurrent workers cannot tear an entry, and a retried evaluation cannot change
  one. An evaluation writes at most one entry (one file and one ``fsync``), with every unit it
  offers.
- **The index**: which entry is current for each unit key and the accuracy that earned it,
  ``{key: [entry, accuracy]}``. It is plain data owned by the search loop and saved in its
  checkpoint; workers never write it. A resumed run therefore sees the index of its checkpoint:
  entries written after it are simply not named, and the store never runs ahead of the history.
- **Offers**: a worker scores a network, saves the units whose key's accuracy it beats (the
  accuracies it was handed) and returns ``{key: entry}`` in its evaluation's
  ``info["shared"]``; the loop applies the offers in the order it assigns evaluations
  (:func:`apply_offers`).

:class:`SharingEvaluator` is the :class:`~deapnas.fitness.TrainEvaluator` that does the worker's
part; with ``store=None`` it shares nothing (the paper's "no weight sharing" ablation).
"""
from __future__ import annotations

import functools
import hashlib
import math
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional

import torch
from torch import nn

from .fitness import TrainEvaluator, load_state_file
from .safefiles import child, files, refuse_link
from .training import load_matching
from .weights import save_weights

Units = Callable[[nn.Module], list[tuple[str, nn.Module]]]


def entry_name(units: Mapping[str, Mapping[str, torch.Tensor]]) -> str:
    """The name of the entry holding ``units`` (``{key: state_dict}``): a SHA-256 of their
    keys, tensor names, dtypes, shapes and values."""
    digest = hashlib.sha256()
    for key in sorted(units):
        for name in sorted(units[key]):
            tensor = units[key][name].detach().cpu().contiguous()
            digest.update(f"{key}|{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
            digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:32] + ".pt"


class WeightStore:
    """A folder of immutable, content-named weight entries (created when first written; a
    symbolic link there is refused, since entries are written and deleted in it)."""

    def __init__(self, root: str | os.PathLike):
        self.root = refuse_link(root)

    def path(self, name: str) -> Path:
        """Where the entry ``name`` lives (a name read from a checkpoint is checked)."""
        return child(self.root, name, "the weight store entry")

    def put(self, units: Mapping[str, Mapping[str, torch.Tensor]]) -> str:
        """Save ``units`` (``{key: state_dict}``) unless an entry with this content exists;
        the entry's name."""
        on_cpu = {key: {k: v.detach().cpu() for k, v in state.items()}
                  for key, state in units.items()}  # copied from the device once
        name = entry_name(on_cpu)
        if not self.path(name).exists():
            save_weights(self.path(name), on_cpu)
        return name

    def load(self, name: str, device: str | torch.device = "cpu") -> dict:
        """The units saved as ``name``, ``{key: state_dict}`` (loaded with
        ``weights_only=True`` and checked against the hash in their name). Entries never
        change, so each process keeps the entries it loaded last in memory: treat the result as
        read-only."""
        return _load_entry(str(self.path(name)), str(device))

    def stale(self, indexes: Iterable[Mapping[str, list]]) -> list[Path]:
        """Entries that none of ``indexes`` names: safe to delete once a checkpoint holding
        one of those indexes is on disk and no evaluation is running."""
        named = {entry for index in indexes for entry, _ in index.values()}
        return [p for p in files(self.root, "*.pt") if p.name not in named]


@functools.lru_cache(maxsize=64)
def _load_entry(path: str, device: str) -> dict:
    """The entry at ``path``, checked against its name (the hash of its content)."""
    units = load_state_file(path, device, "weights that the weight store shares")
    try:
        intact = entry_name(units) == Path(path).name
    except (AttributeError, TypeError):  # not {key: {name: tensor}}
        intact = False
    if not intact:
        raise ValueError(f"{path} does not hold the weights its name (the hash of its content) "
                         "says: the store entry was edited or replaced; put the run's own file "
                         "back, or start a new run")
    return units


def concerning(index: Mapping[str, list], identities: Iterable[str]) -> dict:
    """The index entries whose unit identity (the key before ``@``) is among ``identities``."""
    identities = set(identities)
    return {key: list(value) for key, value in index.items()
            if key.rsplit("@", 1)[0] in identities}


def apply_offers(index: dict, offers: Mapping[str, str], accuracy: float) -> dict:
    """Make each offered entry current where ``accuracy`` beats the index's; the index."""
    for key, entry in offers.items():
        if accuracy > index.get(key, (None, -math.inf))[1]:
            index[key] = [entry, accuracy]
    return index


class SharingEvaluator(TrainEvaluator):
    """A :class:`~deapnas.fitness.TrainEvaluator` with weight sharing through a store.

    :param units: ``units(net) -> [(key, module), ...]``, the shareable parts of a built network
        in loading order (a later unit overrides an earlier one it overlaps), e.g.
        :func:`deapnas.spaces.nasgep.shared_units`.
    :param store: the store's folder; None shares nothing.

    Reads ``individual.shared``, the index entries that concern it (:func:`concerning`). A fresh
    network (not resumed) loads every unit whose key is there instead of its random
    initialisation; after scoring, the first unit of each key whose accuracy it beats is saved
    (all in one entry), and ``info["shared"]`` offers ``{key: entry}``.
    """

    def __init__(self, build: Callable[..., nn.Module], data, units: Units,
                 store: Optional[str | os.PathLike] = None, **options: Any):
        super().__init__(build, data, **options)
        self.units = units
        self.store = WeightStore(store) if store is not None else None

    def inherit(self, net: nn.Module, individual) -> Optional[list[str]]:
        inherited = super().inherit(net, individual)
        shared = getattr(individual, "shared", None) if self.store is not None else None
        if not shared:
            return inherited
        names = {id(p): name for name, p in net.named_parameters()}
        taken, states = set(inherited or ()), {}
        for key, module in self.units(net):
            if key not in shared:
                continue
            entry = shared[key][0]
            if entry not in states:
                states[entry] = self.store.load(entry, self.device)
            own = dict(module.named_parameters())
            taken |= {names[id(own[n])] for n in load_matching(module, states[entry][key])
                      if n in own}
        return sorted(taken)

    def after_training(self, individual, net: nn.Module, score: float) -> dict:
        if self.store is None:
            return {}
        known = getattr(individual, "shared", None) or {}
        better = {}
        for key, module in self.units(net):
            if key not in better and score > known.get(key, (None, -math.inf))[1]:
                better[key] = module.state_dict()
        entry = self.store.put(better) if better else None
        return {"shared": {key: entry for key in better}}
