"""An exported pick takes the images a user has: the raw pixel values the dataset stores (digits:
0..16), not images normalised as the run normalised them; ``export/`` records how it
normalises them."""
import json

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

import deapnas
from deapnas.cli import main
from deapnas.data import load_dataset, stratified_split


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("export-raw") / "run"
    assert main(["search", "--evaluations", "4", "--population", "4", "--sample-size", "2",
                 "--epochs", "1", "--channels", "16", "--lr", "0.05", "--out", str(out),
                 "--quiet"]) == 0
    assert main(["train", str(out), "--epochs", "5"]) == 0  # enough to learn something
    assert main(["export", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def digits():
    """All 1,797 digits as scikit-learn stores them (float32 N x 1 x 8 x 8, values 0..16), their
    labels, and the training split's per-channel mean and std of the images divided by 16,
    found here from the split a search of seed 0 trains on."""
    pool = load_digits()
    images = torch.as_tensor(pool.images, dtype=torch.float32).unsqueeze(1)
    rest, _ = stratified_split(pool.target, 0.2, 0)
    train, _ = stratified_split(pool.target[rest], 0.2, 0)
    scaled = images[rest][train] / 16
    mean, std = scaled.mean(dim=(0, 2, 3), keepdim=True), scaled.std(dim=(0, 2, 3), keepdim=True)
    assert torch.allclose(load_dataset("digits", seed=0).train.x, (scaled - mean) / std)
    return images, torch.as_tensor(pool.target), mean, std


def test_the_exported_program_takes_raw_pixels_and_agrees_with_load_model(exported, digits):
    images, labels, mean, std = digits
    program = torch.export.load(str(exported / "export" / "model.pt2")).module()
    with torch.no_grad():
        raw = program(images)
        normalised = deapnas.load_model(exported)((images / 16 - mean) / std)
        raw_in_python = deapnas.load_model(exported, raw_inputs=True)(images)
    assert torch.equal(raw.argmax(1), normalised.argmax(1))
    assert torch.allclose(raw, normalised, atol=1e-4)
    assert torch.allclose(raw_in_python, raw, atol=1e-5)
    accuracy = (raw.argmax(1) == labels).float().mean().item()
    assert accuracy > 0.25, f"raw-input accuracy {accuracy} is near chance (0.1)"
    tested = json.loads((exported / "train.json").read_text())["test_accuracy"]
    assert abs(accuracy - tested) < 0.15  # as good on raw pixels as on the run's own images


def test_the_export_records_the_normalisation(exported, digits):
    _, _, mean, std = digits
    recorded = json.loads((exported / "export" / "preprocessing.json").read_text())
    assert recorded["input_dtype"] == "float32"
    assert recorded["input_shape"] == ["N", 1, 8, 8]
    assert recorded["pixel_range"] == [0, 16] and recorded["scale"] == 16
    assert np.allclose(recorded["mean"], mean.flatten().tolist())
    assert np.allclose(recorded["std"], std.flatten().tolist())
    trained = json.loads((exported / "train.json").read_text())
    assert trained["normalisation"] == {k: recorded[k] for k in ("scale", "mean", "std")}


def test_an_older_train_json_without_the_normalisation_still_exports_raw_inputs(exported,
                                                                               digits):
    images, _, mean, std = digits
    path = exported / "train.json"
    trained = json.loads(path.read_text())
    del trained["normalisation"]
    path.write_text(json.dumps(trained))
    with torch.no_grad():
        raw = deapnas.load_model(exported, raw_inputs=True)(images)
        normalised = deapnas.load_model(exported)((images / 16 - mean) / std)
    assert torch.allclose(raw, normalised, atol=1e-4)
