"""Tests of deapnas.data on real data: scikit-learn's digits and the shared MNIST test split."""

import gzip
import struct
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from deapnas.data import (DATASETS, Dataset, DatasetError, Split, batches, load_dataset,
                          read_idx, stratified_split, stratified_subset)

SHARED_MNIST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"
MNIST_IMAGES = SHARED_MNIST / "t10k-images-idx3-ubyte.gz"
MNIST_LABELS = SHARED_MNIST / "t10k-labels-idx1-ubyte.gz"


@pytest.fixture
def mnist_dir() -> Path:
    if not (MNIST_IMAGES.is_file() and MNIST_LABELS.is_file()):
        pytest.skip(f"shared MNIST t10k IDX files not found under {SHARED_MNIST}")
    return SHARED_MNIST


def write_idx(path: Path, array: np.ndarray, compress: bool = False) -> Path:
    """Write ``array`` as an unsigned-byte IDX file, gzipped if ``compress``."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    payload = (bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
               + array.tobytes())
    path.write_bytes(gzip.compress(payload) if compress else payload)
    return path


def digits_uint8() -> tuple[np.ndarray, np.ndarray]:
    """The digits images rescaled to 0..255 uint8, with their labels."""
    bunch = load_digits()
    return (bunch.images * 255 / 16).round().astype(np.uint8), bunch.target.astype(np.uint8)


def class_fractions(y: torch.Tensor, num_classes: int) -> np.ndarray:
    return np.bincount(y.numpy(), minlength=num_classes) / len(y)


def test_digits_shapes_and_sizes(digits):
    assert digits.name == "digits"
    assert digits.num_classes == 10
    assert digits.input_shape == (1, 8, 8)
    assert len(digits.train) + len(digits.val) + len(digits.test) == 1797
    assert len(digits.test) == pytest.approx(0.2 * 1797, abs=1)
    assert len(digits.val) == pytest.approx(0.2 * (1797 - len(digits.test)), abs=1)
    for split in (digits.train, digits.val, digits.test):
        assert split.x.dtype == torch.float32 and split.y.dtype == torch.int64
        assert split.x.shape == (len(split), 1, 8, 8)


def test_digits_splits_are_stratified(digits):
    overall = class_fractions(torch.as_tensor(load_digits().target), 10)
    for split in (digits.train, digits.val, digits.test):
        fractions = class_fractions(split.y, 10)
        assert (fractions > 0).all()
        np.testing.assert_allclose(fractions, overall, atol=0.01)


def test_digits_normalised_with_train_statistics(digits):
    assert digits.train.x.mean().item() == pytest.approx(0.0, abs=1e-5)
    assert digits.train.x.std().item() == pytest.approx(1.0, abs=1e-4)
    # Validation is normalised with the train statistics, so it is close to, not exactly, standard.
    assert abs(digits.val.x.mean().item()) < 0.1
    assert digits.val.x.mean().item() != pytest.approx(0.0, abs=1e-5)


def test_digits_splits_depend_only_on_seed(digits):
    again = load_dataset("digits", seed=0)
    other = load_dataset("digits", seed=1)
    for name in ("train", "val", "test"):
        assert torch.equal(getattr(again, name).x, getattr(digits, name).x)
        assert torch.equal(getattr(again, name).y, getattr(digits, name).y)
    assert not torch.equal(other.test.x, digits.test.x)


def test_dataset_to_device_and_subset(digits):
    moved = digits.to("cpu")
    assert moved.input_shape == digits.input_shape and moved.train.x.device.type == "cpu"
    picked = digits.train.subset(np.array([3, 0]))
    assert torch.equal(picked.x[1], digits.train.x[0]) and len(picked) == 2


def test_stratified_split_is_disjoint_and_complete():
    labels = load_digits().target
    rest, held_out = stratified_split(labels, 0.25, seed=3)
    assert np.intersect1d(rest, held_out).size == 0
    assert np.array_equal(np.sort(np.concatenate([rest, held_out])), np.arange(len(labels)))
    with pytest.raises(DatasetError, match="between 0 and 1"):
        stratified_split(labels, 1.0, seed=0)


def test_stratified_subset_takes_exactly_n_per_class():
    labels = load_digits().target
    chosen = stratified_subset(labels, 7, seed=0)
    assert np.array_equal(np.bincount(labels[chosen]), np.full(10, 7))
    assert len(np.unique(chosen)) == 70
    assert not np.array_equal(chosen, stratified_subset(labels, 7, seed=1))


def test_stratified_subset_rejects_too_few():
    labels = np.array([0, 0, 0, 1, 1])
    with pytest.raises(DatasetError, match="fewer"):
        stratified_subset(labels, 3, seed=0)


def test_read_idx_gzipped_and_plain(mnist_dir, tmp_path):
    images = read_idx(mnist_dir / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(mnist_dir / "t10k-labels-idx1-ubyte.gz")
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10000,) and set(np.unique(labels)) == set(range(10))
    plain = tmp_path / "t10k-images-idx3-ubyte"
    plain.write_bytes(gzip.decompress(MNIST_IMAGES.read_bytes()))
    assert np.array_equal(read_idx(plain), images)


@pytest.mark.parametrize("damage", ["bad magic", "truncated", "broken gzip", "missing"])
def test_read_idx_rejects_corrupt_files(tmp_path, damage):
    images, _ = digits_uint8()
    path = write_idx(tmp_path / "images-idx3-ubyte.gz", images[:20], compress=True)
    payload = gzip.decompress(path.read_bytes())
    if damage == "bad magic":
        path.write_bytes(b"\x12\x34" + payload[2:])
    elif damage == "truncated":
        path.write_bytes(payload[:-10])
    elif damage == "broken gzip":
        path.write_bytes(path.read_bytes()[:40])
    else:
        path.unlink()
    with pytest.raises(DatasetError):
        read_idx(path)


def test_idx_single_pair_is_split_three_ways(mnist_dir):
    data = load_dataset("idx", data_dir=mnist_dir, seed=0)
    splits = (data.train, data.val, data.test)
    assert data.input_shape == (1, 28, 28) and data.num_classes == 10
    assert sum(len(split) for split in splits) == 10000
    overall = class_fractions(torch.as_tensor(read_idx(MNIST_LABELS), dtype=torch.long), 10)
    for split in splits:
        np.testing.assert_allclose(class_fractions(split.y, 10), overall, atol=0.01)
    # Normalisation is one affine map shared by all splits and MNIST uses pixel values 0 and
    # 255, so the global min and max recover the raw bytes; the parts must partition the file.
    x = torch.cat([split.x for split in splits]).flatten(1)
    raw = torch.round((x - x.min()) / (x.max() - x.min()) * 255).to(torch.uint8).numpy()
    original = read_idx(MNIST_IMAGES).reshape(10000, -1)
    assert sorted(map(bytes, raw)) == sorted(map(bytes, original))


def test_idx_train_and_test_pairs(tmp_path):
    images, labels = digits_uint8()
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", images[:300], compress=True)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", labels[:300], compress=True)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", images[300:400])
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", labels[300:400])
    data = load_dataset("idx", data_dir=tmp_path, val_fraction=0.25)
    assert data.input_shape == (1, 8, 8)
    assert (len(data.train), len(data.val)) == (225, 75)
    assert torch.equal(data.test.y, torch.as_tensor(labels[300:400], dtype=torch.long))
    assert data.train.x.mean().item() == pytest.approx(0.0, abs=1e-5)


def test_idx_folder_problems_are_explained(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset("idx", data_dir=tmp_path / "nowhere")
    with pytest.raises(DatasetError, match="needs data_dir"):
        load_dataset("idx")
    images, labels = digits_uint8()
    write_idx(tmp_path / "images-idx3-ubyte", images[:50])
    with pytest.raises(DatasetError, match="image/label pair"):
        load_dataset("idx", data_dir=tmp_path)
    write_idx(tmp_path / "labels-idx1-ubyte", labels[:40])
    with pytest.raises(DatasetError, match="50 images but"):
        load_dataset("idx", data_dir=tmp_path)


def test_missing_torchvision_files_say_how_to_get_them(tmp_path):
    with pytest.raises(DatasetError, match="download") as caught:
        load_dataset("mnist", data_dir=tmp_path)
    message = str(caught.value)
    assert str(tmp_path) in message and "train-images-idx3-ubyte" in message
    with pytest.raises(DatasetError, match="data_batch_1"):
        load_dataset("cifar10", data_dir=tmp_path)


def test_mnist_reads_torchvision_layout(mnist_dir, tmp_path):
    # Only the t10k split is shared, so it stands in for the train files too.
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for kind in ("images-idx3", "labels-idx1"):
        unpacked = gzip.decompress((mnist_dir / f"t10k-{kind}-ubyte.gz").read_bytes())
        for split in ("train", "t10k"):
            (raw / f"{split}-{kind}-ubyte").write_bytes(unpacked)
    data = load_dataset("mnist", data_dir=tmp_path, val_fraction=0.1)
    assert data.input_shape == (1, 28, 28) and data.num_classes == 10
    assert (len(data.train), len(data.val), len(data.test)) == (9000, 1000, 10000)
    assert torch.equal(data.test.y, torch.as_tensor(read_idx(MNIST_LABELS), dtype=torch.long))


def test_failed_download_is_explained(tmp_path, monkeypatch):
    import torchvision.datasets

    def offline(self):
        raise urllib.error.URLError("network unreachable")

    monkeypatch.setattr(torchvision.datasets.FashionMNIST, "download", offline)
    with pytest.raises(DatasetError, match="could not download fashion-mnist.*network unreachable"):
        load_dataset("fashion-mnist", data_dir=tmp_path, download=True)


def test_unknown_name_lists_valid_names():
    with pytest.raises(DatasetError) as caught:
        load_dataset("imagenet")
    assert all(name in str(caught.value) for name in DATASETS)


def indexed_split(digits: Dataset) -> Split:
    """The digits train images, labelled by position so batches can be traced."""
    return Split(digits.train.x, torch.arange(len(digits.train)))


def test_batches_cover_every_sample_once(digits):
    split = indexed_split(digits)
    generator = torch.Generator().manual_seed(0)
    chunks = list(batches(split, 100, shuffle=True, generator=generator))
    assert [len(y) for _, y in chunks] == [100] * (len(split) // 100) + [len(split) % 100]
    seen = torch.cat([y for _, y in chunks])
    assert torch.equal(seen.sort().values, split.y)
    assert not torch.equal(seen, split.y)
    for x, y in chunks:
        assert torch.equal(x, split.x[y])


def test_batches_order_follows_generator(digits):
    split = indexed_split(digits)

    def order(seed):
        generator = torch.Generator().manual_seed(seed)
        return torch.cat([y for _, y in batches(split, 64, shuffle=True, generator=generator)])

    assert torch.equal(order(1), order(1))
    assert not torch.equal(order(1), order(2))
    in_order = torch.cat([y for _, y in batches(split, 64, shuffle=False)])
    assert torch.equal(in_order, split.y)
