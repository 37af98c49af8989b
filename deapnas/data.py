"""Image classification datasets as normalised, device-resident tensors.

Architecture search trains many small networks on the same data, so each
dataset is loaded once into memory as whole tensors, split into
train/validation/test, normalised with statistics of the training split only,
and iterated by slicing (:func:`batches`) rather than through a
``DataLoader``: after :meth:`Dataset.to` the data never leaves the device.

Names accepted by :func:`load_dataset` (see :data:`DATASETS`):

* ``digits`` -- scikit-learn's bundled 8x8 digits; needs no files.
* ``mnist``, ``fashion-mnist``, ``cifar10``, ``cifar100`` -- torchvision's
  datasets, read from ``data_dir`` (default :data:`DEFAULT_DATA_DIR`) and
  fetched there only when ``download=True``.
* ``idx`` -- a folder of IDX files (the format MNIST is distributed in).
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from numpy.typing import ArrayLike

from .options import DATASETS, MINI_SCORE_SOURCES
from .weights import load_weights, save_weights

#: Where torchvision datasets are looked for (and downloaded to) when no
#: ``data_dir`` is given.
DEFAULT_DATA_DIR = Path.home() / ".cache" / "deapnas"

_TORCHVISION_CLASSES = {
    "mnist": "MNIST",
    "fashion-mnist": "FashionMNIST",
    "cifar10": "CIFAR10",
    "cifar100": "CIFAR100",
}
#: What is known of each torchvision dataset before its files are: the shape of an image, the
#: classes, and the sizes of the official training and test splits.
OFFICIAL_SIZES = {
    "mnist": ((1, 28, 28), 10, 60_000, 10_000),
    "fashion-mnist": ((1, 28, 28), 10, 60_000, 10_000),
    "cifar10": ((3, 32, 32), 10, 50_000, 10_000),
    "cifar100": ((3, 32, 32), 100, 50_000, 10_000),
}
#: The largest pixel value each kind of dataset stores: scikit-learn's digits count 0..16, the
#: others are bytes (0..255).
DIGITS_SCALE, BYTE_SCALE = 16.0, 255.0
_GZIP_MAGIC = b"\x1f\x8b"
_IDX_UBYTE = 0x08


class DatasetError(ValueError):
    """A data problem the user can fix; the message says how."""


@dataclass
class Split:
    """Images ``x`` (float32, N x C x H x W) and their labels ``y`` (int64, N)."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)

    def to(self, device: torch.device | str) -> Split:
        """Return the split with both tensors on ``device``."""
        return Split(self.x.to(device), self.y.to(device))

    def subset(self, indices: ArrayLike | torch.Tensor) -> Split:
        """Return the samples at ``indices`` (a copy, on the same device)."""
        index = torch.as_tensor(indices, dtype=torch.long, device=self.x.device)
        return Split(self.x[index], self.y[index])


@dataclass(frozen=True)
class Normalisation:
    """How a dataset's images were normalised: ``(pixels / scale - mean) / std`` per channel,
    where ``pixels`` are the values the dataset stores (0 to ``scale``: 16 for digits, 255 for
    the others) and ``mean`` and ``std`` are the training split's, one per channel."""

    scale: float
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def record(self) -> dict:
        """As ``train.json`` and ``export/preprocessing.json`` hold it."""
        return {key: list(value) if isinstance(value, tuple) else value
                for key, value in asdict(self).items()}


@dataclass
class Dataset:
    """A named dataset split three ways, normalised with train statistics (``normalisation``
    says how; None for a dataset built by hand)."""

    name: str
    train: Split
    val: Split
    test: Split
    num_classes: int
    normalisation: Normalisation | None = None

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """Shape ``(C, H, W)`` of one image, as networks need to know it."""
        channels, height, width = self.train.x.shape[1:]
        return channels, height, width

    def to(self, device: torch.device | str) -> Dataset:
        """Return the dataset with every split on ``device``."""
        return replace(self, train=self.train.to(device), val=self.val.to(device),
                       test=self.test.to(device))


def load_dataset(name: str, data_dir: str | os.PathLike | None = None, *, download: bool = False,
                 val_fraction: float = 0.2, test_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """Load dataset ``name`` (one of :data:`DATASETS`) split into train/val/test.

    Datasets with an official test split keep it as the test split and carve
    ``val_fraction`` of their training split out for validation.  Datasets
    without one (``digits``, an ``idx`` folder holding a single image/label
    pair) first hold out ``test_fraction`` of everything for testing, then
    ``val_fraction`` of the rest for validation.  All carving is stratified by
    class and depends only on ``seed``.

    ``data_dir`` is ignored for ``digits``, is required for ``idx`` and
    defaults to :data:`DEFAULT_DATA_DIR` for the torchvision datasets, which
    are downloaded there only when ``download`` is true.
    """
    if name == "digits":
        pool, num_classes = _digits()
        return _from_pool(name, pool, num_classes, val_fraction, test_fraction, seed,
                          DIGITS_SCALE)
    if name == "idx":
        return _load_idx_folder(data_dir, val_fraction, test_fraction, seed)
    if name in _TORCHVISION_CLASSES:
        root = Path(data_dir).expanduser() if data_dir is not None else DEFAULT_DATA_DIR
        train, test, num_classes = _load_torchvision(name, root, download)
        return _from_train_test(name, train, test, num_classes, val_fraction, seed, BYTE_SCALE)
    raise DatasetError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")


def stratified_split(y: ArrayLike | torch.Tensor, fraction: float,
                     seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split sample indices into ``(rest, held_out)``, holding out ``fraction``.

    Each class is represented in both parts in its overall proportion, so a
    small validation or test split still measures every class.  Both index
    arrays are sorted.
    """
    from sklearn.model_selection import train_test_split  # seconds to import: only when splitting

    labels = _labels_array(y)
    if not 0.0 < fraction < 1.0:
        raise DatasetError(f"a split fraction must lie strictly between 0 and 1, got {fraction}")
    try:
        rest, held_out = train_test_split(np.arange(len(labels)), test_size=fraction,
                                          stratify=labels, random_state=seed)
    except ValueError as exc:
        raise DatasetError(f"cannot hold out a stratified {fraction:g} of {len(labels)} samples: "
                           f"{exc} Use more data or a different fraction.") from exc
    return np.sort(rest), np.sort(held_out)


def stratified_subset(y: ArrayLike | torch.Tensor, per_class: int, seed: int, *,
                      name: str = "per_class") -> np.ndarray:
    """Return sorted indices of ``per_class`` randomly chosen samples of each class.

    A balanced subset lets quick searches train on little data without
    losing any class. Errors call the count ``name`` (the command line passes its flag).
    """
    labels = _labels_array(y)
    if per_class < 1:
        raise DatasetError(f"{name} must be at least 1, got {per_class}")
    classes, counts = np.unique(labels, return_counts=True)
    short = {int(c): int(n) for c, n in zip(classes, counts) if n < per_class}
    if short:
        raise DatasetError(f"{name} must be at most {int(counts.min())} for these images, not "
                           f"{per_class} (allowed: 1 to {int(counts.min())}): these classes "
                           f"have fewer (class: count) {short}")
    rng = np.random.default_rng(seed)
    chosen = [rng.choice(np.flatnonzero(labels == c), per_class, replace=False) for c in classes]
    return np.sort(np.concatenate(chosen))


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an unsigned-byte IDX file, gzipped or not, into a uint8 array.

    Compression is recognised by the gzip magic bytes, whatever the file is
    called.  The header's magic number and sizes are checked against the
    data so that a truncated download fails here, not as a reshape error.
    """
    path = Path(path)
    raw = _read_maybe_gzipped(path)
    if len(raw) < 4 or raw[:2] != b"\x00\x00":
        raise DatasetError(f"{path} is not an IDX file (bad magic number); replace it with a valid one")
    if raw[2] != _IDX_UBYTE:
        raise DatasetError(f"{path} stores IDX type 0x{raw[2]:02x}; only unsigned-byte (0x08) "
                           "IDX files are supported")
    ndim = raw[3]
    data_start = 4 + 4 * ndim
    if ndim == 0 or len(raw) < data_start:
        raise DatasetError(f"{path} has a truncated or invalid IDX header; replace the file")
    shape = struct.unpack(f">{ndim}I", raw[4:data_start])
    if len(raw) - data_start != math.prod(shape):
        raise DatasetError(f"{path} holds {len(raw) - data_start} data bytes but its header "
                           f"announces shape {shape}; the file is truncated or corrupt, replace it")
    return np.frombuffer(raw, dtype=np.uint8, offset=data_start).reshape(shape).copy()


def batches(split: Split, batch_size: int, *, shuffle: bool,
            generator: torch.Generator | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(x, y)`` mini-batches covering ``split`` once; the last may be smaller.

    Batches are cut from the split's tensors where they are, so a
    device-resident split is never copied to the host.  Without shuffling
    the batches are views.  A ``generator`` must live on the split's device.
    """
    if batch_size < 1:
        raise DatasetError(f"batch_size must be at least 1, got {batch_size}")
    order = (torch.randperm(len(split), device=split.x.device, generator=generator)
             if shuffle else None)
    for start in range(0, len(split), batch_size):
        if order is None:
            yield split.x[start:start + batch_size], split.y[start:start + batch_size]
        else:
            index = order[start:start + batch_size]
            yield split.x[index], split.y[index]


def _labels_array(y: ArrayLike | torch.Tensor) -> np.ndarray:
    """Labels as a host NumPy array, whatever container or device they are in."""
    return y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)


def _images_to_tensor(images: ArrayLike | torch.Tensor, scale: float) -> torch.Tensor:
    """Images as float32 N x C x H x W in [0, 1].

    Grayscale (N x H x W) gains a channel axis; colour arrives as N x H x W x C.
    """
    x = torch.as_tensor(images).float() / scale
    x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)
    return x.contiguous()


def _from_pool(name: str, pool: Split, num_classes: int, val_fraction: float,
               test_fraction: float, seed: int, scale: float) -> Dataset:
    """Build a dataset from one unsplit pool: hold out a test split, then validation."""
    rest, test = stratified_split(pool.y, test_fraction, seed)
    return _from_train_test(name, pool.subset(rest), pool.subset(test), num_classes,
                            val_fraction, seed, scale)


def _from_train_test(name: str, train_pool: Split, test: Split, num_classes: int,
                     val_fraction: float, seed: int, scale: float) -> Dataset:
    """Build a dataset from train and test splits (images divided by ``scale``, the largest
    stored pixel value), carving validation out of train."""
    train_idx, val_idx = stratified_split(train_pool.y, val_fraction, seed)
    train, val = train_pool.subset(train_idx), train_pool.subset(val_idx)
    dims = (0, 2, 3)
    mean = train.x.mean(dim=dims, keepdim=True)
    std = train.x.std(dim=dims, keepdim=True).clamp_min(1e-8)
    train, val, test = (Split((s.x - mean) / std, s.y) for s in (train, val, test))
    normalisation = Normalisation(scale, tuple(mean.flatten().tolist()),
                                  tuple(std.flatten().tolist()))
    return Dataset(name, train, val, test, num_classes, normalisation)


def _digits() -> tuple[Split, int]:
    """All of scikit-learn's 8x8 digits (pixel values 0..16) and the class count."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    pool = Split(_images_to_tensor(digits.images, DIGITS_SCALE),
                 torch.as_tensor(digits.target, dtype=torch.long))
    return pool, len(digits.target_names)


def _load_torchvision(name: str, root: Path, download: bool) -> tuple[Split, Split, int]:
    """Official train and test splits of a torchvision dataset, and its class count.

    torchvision is imported here because importing it is slow and only
    these datasets need it.
    """
    import torchvision.datasets

    cls = getattr(torchvision.datasets, _TORCHVISION_CLASSES[name])
    if not download:
        missing = missing_files(name, root)
        if missing:
            listing = "\n  ".join(str(path.relative_to(root)) for path in missing)
            raise DatasetError(
                f"{name} files are missing under {root}:\n  {listing}\n"
                f"Pass download=True (CLI: --download; needs network access) to fetch them, "
                f"or put the files there yourself.")
    try:
        official = [cls(root=str(root), train=train, download=download) for train in (True, False)]
    except Exception as exc:  # torchvision raises many kinds on network or file problems
        action = "download" if download else "read"
        raise DatasetError(f"could not {action} {name} under {root}: {exc}\n"
                           "Check network access, or delete the files there and put "
                           "intact copies in their place.") from exc
    train, test = (Split(_images_to_tensor(ds.data, BYTE_SCALE),
                         torch.as_tensor(ds.targets, dtype=torch.long))
                   for ds in official)
    return train, test, len(official[0].classes)


def missing_files(name: str, data_dir: str | os.PathLike | None = None) -> list[Path]:
    """The files torchvision dataset ``name`` still lacks under ``data_dir`` (default
    :data:`DEFAULT_DATA_DIR`): what ``download=True`` would fetch; empty when it is all there."""
    import torchvision.datasets

    root = Path(data_dir).expanduser() if data_dir is not None else DEFAULT_DATA_DIR
    cls = getattr(torchvision.datasets, _TORCHVISION_CLASSES[name])
    return [path for path in _expected_files(cls, root) if not path.is_file()]


def _expected_files(cls: type, root: Path) -> list[Path]:
    """Files torchvision needs under ``root`` to load ``cls`` without downloading."""
    if hasattr(cls, "resources"):  # MNIST family: unpacked IDX files in <root>/<class>/raw
        raw = root / cls.__name__ / "raw"
        return [raw / Path(entry).name.removesuffix(".gz") for entry, _ in cls.resources]
    folder = root / cls.base_folder  # CIFAR family: pickled batches plus metadata
    names = [entry for entry, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]]
    return [folder / entry for entry in names]


def _load_idx_folder(data_dir: str | os.PathLike | None, val_fraction: float,
                     test_fraction: float, seed: int) -> Dataset:
    """Dataset from a folder of IDX files, using a train/test pair if present."""
    if data_dir is None:
        raise DatasetError("the idx dataset needs data_dir: a folder holding an IDX image file "
                           "(name containing 'images' or 'idx3') and an IDX label file "
                           "(name containing 'labels' or 'idx1')")
    folder = Path(data_dir).expanduser()
    if not folder.is_dir():
        raise DatasetError(f"IDX folder {folder} does not exist; point data_dir at a folder "
                           "holding IDX image and label files")
    pairs = _idx_pairs(folder)
    splits = {role: _read_idx_pair(*pair) for role, pair in pairs.items()}
    num_classes = max(int(split.y.max()) for split in splits.values()) + 1
    if len(splits) == 1:
        (pool,) = splits.values()
        return _from_pool("idx", pool, num_classes, val_fraction, test_fraction, seed,
                          BYTE_SCALE)
    return _from_train_test("idx", splits["train"], splits["test"], num_classes, val_fraction,
                            seed, BYTE_SCALE)


def _idx_pairs(folder: Path) -> dict[str, tuple[Path, Path]]:
    """Find the (images, labels) IDX file pairs in ``folder``, keyed by role.

    The role is ``train`` or ``test`` (``t10k``) when the file names say so.
    The result holds either one pair of any role, or a train and a test pair.
    A file present both gzipped and unpacked counts once.
    """
    files: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file():
            files.setdefault(path.name.lower().removesuffix(".gz"), path)
    found: dict[tuple[str, str], list[Path]] = {}
    for name, path in files.items():
        kind = ("images" if "images" in name or "idx3" in name
                else "labels" if "labels" in name or "idx1" in name else None)
        if kind is not None:
            role = "test" if "t10k" in name or "test" in name else "train" if "train" in name else "data"
            found.setdefault((role, kind), []).append(path)
    ambiguous = [path.name for paths in found.values() if len(paths) > 1 for path in paths]
    if ambiguous:
        raise DatasetError(f"IDX files in {folder} are ambiguous: {', '.join(ambiguous)}; "
                           "keep one image/label pair per role (train, test)")
    roles = {role for role, _ in found}
    pairs = {role: (found[role, "images"][0], found[role, "labels"][0])
             for role in roles if (role, "images") in found and (role, "labels") in found}
    if len(pairs) != len(roles) or not (len(pairs) == 1 or set(pairs) == {"train", "test"}):
        listed = ", ".join(sorted(path.name for paths in found.values() for path in paths)) or "none"
        raise DatasetError(
            f"{folder} must hold one IDX image/label pair, or a train pair and a test (t10k) "
            f"pair; image files have 'images' or 'idx3' in their name, label files 'labels' "
            f"or 'idx1'. IDX files found: {listed}")
    return pairs


def _read_idx_pair(images_path: Path, labels_path: Path) -> Split:
    """Read matching IDX image and label files into an unnormalised split."""
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim not in (3, 4) or labels.ndim != 1:
        raise DatasetError(f"{images_path.name} must hold N x H x W (or N x H x W x C) images and "
                           f"{labels_path.name} N labels; got shapes {images.shape} and {labels.shape}")
    if len(images) != len(labels):
        raise DatasetError(f"{images_path.name} holds {len(images)} images but {labels_path.name} "
                           f"holds {len(labels)} labels; use files from the same split")
    return Split(_images_to_tensor(images, BYTE_SCALE), torch.as_tensor(labels, dtype=torch.long))


def _read_maybe_gzipped(path: Path) -> bytes:
    """Bytes of ``path``, decompressed if it starts with the gzip magic bytes."""
    try:
        raw = path.read_bytes()
        return gzip.decompress(raw) if raw[:2] == _GZIP_MAGIC else raw
    except FileNotFoundError as exc:
        raise DatasetError(f"IDX file {path} does not exist") from exc
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(f"cannot read {path} ({exc}); the file is unreadable or a "
                           "corrupt gzip archive, replace it") from exc


# -- MiniGen's stratified mini datasets --------------------------------------------------------

_MINI_FORMAT = 1


def mini_dataset(dataset: Dataset, train_per_class: int = 100, score_per_class: int = 10, *,
                 seed: int = 0, score_from: str = "train",
                 path: str | os.PathLike | None = None,
                 names: tuple[str, str] = ("train_per_class", "score_per_class")) -> Dataset:
    """A stratified mini dataset (Zhang et al., 2024, MiniGen, section IV-A): ``train_per_class``
    images of each class to train on and ``score_per_class`` of each class to score on.

    The result's ``train`` split is the training subset, its ``val`` split the scoring subset,
    its ``test`` split the full dataset's test images. Both subsets come from the training
    split by default, disjoint; ``score_from="test"`` scores on a test subset as the paper does
    (and then leaves those images out of ``test``), which makes the search select on test data.

    With ``path``, the subsets are saved there on first use and read back afterwards (tensors
    and plain values, loaded with ``torch.load(weights_only=True)``), so that runs with other
    seeds compare on the same images; a file drawn with other counts is refused. Errors call
    the two counts ``names`` (the command line passes its flags).

    It is :func:`mini_from_record` of :func:`mini_record`; a caller that saves the subsets
    later than it draws them (MiniGen's search) uses the two and :func:`save_mini_record`.
    """
    return mini_from_record(dataset, mini_record(dataset, train_per_class, score_per_class,
                                                 seed=seed, score_from=score_from, path=path,
                                                 names=names))


def mini_record(dataset: Dataset, train_per_class: int = 100, score_per_class: int = 10, *,
                seed: int = 0, score_from: str = "train",
                path: str | os.PathLike | None = None,
                names: tuple[str, str] = ("train_per_class", "score_per_class")) -> dict:
    """What a mini dataset file holds (the counts, the indices and the images of the two
    subsets): read from ``path`` when it is a file, else drawn, and saved at ``path`` when
    given (see :func:`mini_dataset`)."""
    if score_from not in MINI_SCORE_SOURCES:
        raise DatasetError(f"score_from must be one of {', '.join(MINI_SCORE_SOURCES)}, "
                           f"not {score_from!r}")
    request = {"train_per_class": train_per_class, "score_per_class": score_per_class,
               "score_from": score_from, "num_classes": dataset.num_classes,
               "input_shape": list(dataset.input_shape)}
    if path is not None and Path(path).is_file():
        return _load_mini(Path(path), request, dataset.train.x.device)
    saved = {**request, **_draw_mini(dataset, train_per_class, score_per_class, seed,
                                     score_from, names)}
    if path is not None:
        save_mini_record(Path(path), saved)
    return saved


def _draw_mini(dataset: Dataset, train_per_class: int, score_per_class: int, seed: int,
               score_from: str, names: tuple[str, str]) -> dict:
    """Indices and images of the two subsets, drawn class by class."""
    train_index = stratified_subset(dataset.train.y, train_per_class, seed, name=names[0])
    if score_from == "test":
        source, candidates = dataset.test, np.arange(len(dataset.test))
    else:
        source = dataset.train
        candidates = np.setdiff1d(np.arange(len(dataset.train)), train_index)
    score_index = candidates[stratified_subset(_labels_array(source.y)[candidates],
                                               score_per_class, seed + 1, name=names[1])]
    train, score = dataset.train.subset(train_index), source.subset(score_index)
    return {"train_index": torch.as_tensor(train_index),
            "score_index": torch.as_tensor(score_index), "train_x": train.x, "train_y": train.y, "score_x": score.x, "score_y": score.y}


def mini_from_record(dataset: Dataset, saved: dict) -> Dataset:
    """The mini dataset of ``dataset`` that a :func:`mini_record` describes."""
    test = dataset.test
    if saved["score_from"] == "test":
        index = saved["score_index"].to(test.y.device)
        if not torch.equal(test.y[index], saved["score_y"].to(test.y.device)):
            raise DatasetError("the mini dataset scores on test images that this dataset's test "
                               "split does not hold at the same places; load the dataset as it "
                               "was loaded when the mini set was drawn (same seed), or draw a "
                               "new mini set")
        test = test.subset(np.setdiff1d(np.arange(len(test)), index.cpu().numpy()))
    return Dataset(f"mini-{dataset.name}", Split(saved["train_x"], saved["train_y"]),
                   Split(saved["score_x"], saved["score_y"]), test, dataset.num_classes,
                   dataset.normalisation)


def save_mini_record(path: Path, saved: dict) -> None:
    """Write a :func:`mini_record` to ``path``, for :func:`mini_dataset` to read back."""
    path.parent.mkdir(parents=True, exist_ok=True)
    save_weights(path, {**{k: v.cpu() if isinstance(v, torch.Tensor) else v
                           for k, v in saved.items()}, "format": _MINI_FORMAT})


def _load_mini(path: Path, request: dict, device: torch.device) -> dict:
    try:
        saved = load_weights(path, device)
    except ValueError as exc:
        raise DatasetError(f"{exc}; delete it to draw a new mini dataset") from None
    if not isinstance(saved, dict) or saved.get("format") != _MINI_FORMAT:
        raise DatasetError(f"{path} is not a mini dataset file; delete it or choose another path")
    differ = {k: saved.get(k) for k, v in request.items() if saved.get(k) != v}
    if differ:
        wanted = {k: request[k] for k in differ}
        raise DatasetError(f"{path} holds a mini dataset drawn with {differ}, not {wanted}; "
                           "delete it or choose another path")
    return saved
