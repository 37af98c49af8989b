"""A finished run as a model: load_model in Python, and an exported program that runs in a
process that never imports deapnas."""
import json
import subprocess
import sys

import torch

import deapnas
from deapnas.cli import main

LOAD_WITHOUT_DEAPNAS = """
import sys
sys.modules["deapnas"] = None  # any import of deapnas now fails
import torch
program = torch.export.load(sys.argv[1])
images = torch.load(sys.argv[2], weights_only=True)
torch.save(program.module()(images), sys.argv[3])
print("deapnas" in sys.modules and sys.modules["deapnas"] is not None)
"""


def test_export_needs_trained_weights(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["search", "--evaluations", "2", "--population", "2", "--sample-size", "1",
                 "--epochs", "1", "--channels", "8", "--out", str(out), "--quiet"]) == 0
    assert main(["export", str(out)]) == 2
    assert f"run `deapnas train {out}` first" in capsys.readouterr().err


def test_load_model_returns_the_trained_network(trained):
    net = deapnas.load_model(trained)
    state = torch.load(trained / "model.pt", weights_only=True)
    assert all(torch.equal(net.state_dict()[k], v) for k, v in state.items())
    assert not net.training


def test_the_exported_program_runs_without_deapnas(trained, tmp_path):
    assert main(["export", str(trained)]) == 0
    program = trained / "export" / "model.pt2"
    genome = json.loads((trained / "export" / "genome.json").read_text())
    assert genome["genome"] == json.loads((trained / "best.json").read_text())["genome"]
    images = torch.randn(5, *genome["input_shape"])
    torch.save(images, tmp_path / "images.pt")
    result = subprocess.run([sys.executable, "-c", LOAD_WITHOUT_DEAPNAS, str(program),
                             str(tmp_path / "images.pt"), str(tmp_path / "logits.pt")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
    with torch.no_grad():
        expected = deapnas.load_model(trained, raw_inputs=True)(images)  # it takes raw pixels
    assert torch.allclose(torch.load(tmp_path / "logits.pt", weights_only=True), expected,
                          atol=1e-5)
