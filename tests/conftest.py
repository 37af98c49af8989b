"""Shared locations of the real data beside the checkout (../shared/data), skipped when absent."""
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
MNIST_DIR = SHARED / "mnist"
NB201_CSV = SHARED / "nas-bench-201" / "nb201.csv"
NB201_METRIC = "cifar10valid_xvalid_acc_200ep_mean"
NB201_REPORT = "cifar10_test_acc_200ep"


@pytest.fixture
def nb201_csv() -> Path:
    if not NB201_CSV.exists():
        pytest.skip(f"NAS-Bench-201 table not found at {NB201_CSV}")
    return NB201_CSV


@pytest.fixture
def mnist_dir() -> Path:
    if not (MNIST_DIR / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip(f"shared MNIST images not found in {MNIST_DIR}")
    return MNIST_DIR
