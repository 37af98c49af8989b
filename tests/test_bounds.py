"""Bounds on what deapnas builds, draws, trains or writes (issue 24: "Unbounded work from
crafted genomes", "Resource faults and bounds"): genomes read from a run directory are checked
against :mod:`deapnas.limits` before anything is built or drawn, every option has an upper
bound checked before anything is written, and an EG-NAS candidate that runs out of memory
fails alone, like MiniGen's and RENAS's.

The genome cases run the real ``deapnas`` command in a subprocess with a time limit: before the
limits, ``show`` and ``train`` ran past 120 s and 4 GB on them. The limit here is 60 s, not
less, because the test machines are shared and importing torch alone can take 10 s there; a
refusal costs a fraction of a second once deapnas is imported.
"""
import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from deapnas import evolutionary_gradient as eg
from deapnas import options as opts
from deapnas.cli import main
from deapnas.data import Split, load_dataset
from deapnas.methods import METHODS
from deapnas.options import RunConfig, TrainingOptions
from deapnas.rundir import BEST, CHECKPOINT, HISTORY
from deapnas.supernet import NB201Supernet

ROOT = Path(__file__).resolve().parents[1]
#: Seconds a refused command may take in its own process (see the module's docs).
REFUSAL_SECONDS = 60

#: Tiny searches that leave real run directories: MiniGen's and NASGEP's own methods, and
#: regularized evolution on the macro space (two networks of one epoch each).
TINY = {
    "minigen": ["--algorithm", "minigen", "--population", "4", "--keep", "2", "--epochs", "1",
                "--batch-size", "50", "--train-per-class", "5", "--score-per-class", "3",
                "--widths", "4,8", "--restart-period", "2", "--restart-threshold", "0",
                "--evaluations", "4", "--checkpoint-every", "2", "--final-epochs", "1"],
    "macro": ["--algorithm", "re", "--space", "macro", "--population", "2", "--sample-size",
              "1", "--evaluations", "2", "--min-evaluations", "1", "--epochs", "1",
              "--channels", "4"],
    "nasgep": ["--algorithm", "nasgep", "--evaluations", "2", "--population", "2",
               "--reductions", "2", "--genes", "2", "--batch-size", "64", "--epochs", "1",
               "--channels", "4", "--cells", "1"],
}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """``{space: run directory}`` of the tiny searches, each run to its end."""
    runs = {}
    for name, argv in TINY.items():
        runs[name] = tmp_path_factory.mktemp(name) / "run"
        assert main(["search", "--out", str(runs[name]), "--quiet", *argv]) == 0
    return runs


def with_best_genome(run: Path, tmp_path: Path, genome) -> Path:
    """A copy of the finished ``run`` whose ``best.json`` holds ``genome``."""
    copy = tmp_path / "received"
    shutil.copytree(run, copy)
    best = json.loads((copy / BEST).read_text())
    (copy / BEST).write_text(json.dumps({**best, "genome": genome}))
    return copy


def deapnas(*argv: str) -> subprocess.CompletedProcess:
    """The installed command in its own process, stopped after :data:`REFUSAL_SECONDS`."""
    return subprocess.run([sys.executable, "-m", "deapnas.cli", *argv], cwd=ROOT,
                          capture_output=True, text=True, timeout=REFUSAL_SECONDS)


def assert_refused(directory: Path, field: str, commands=("show", "train")) -> None:
    """Each command exits 2 at once with a message naming ``best.json`` and the ``field``,
    and writes nothing (no plot, no weights)."""
    for command in commands:
        done = deapnas(command, str(directory))
        assert done.returncode == 2, done.stderr
        assert f"{directory / BEST}: genome: {field}" in done.stderr, done.stderr
        assert "deapnas.limits" in done.stderr and "Traceback" not in done.stderr
    written = {"fitness.png", "best.png", "model.pt", "train.json"}
    assert not written & {p.name for p in directory.iterdir()}


# -- genomes read from disk ---------------------------------------------------------------------

def minigen_cells(count: int, width: int = 8, blocks: int = 1) -> list:
    return [[".", 1, ["3*3 conv", "3*3 conv"]]] + [[width, blocks, ["3*3 conv"]]] * count


@pytest.mark.parametrize("genome, field", [
    (minigen_cells(1, width=10**9), "cell 1: channels 1000000000 exceeds the limit of 4096"),
    (minigen_cells(1, blocks=10**6), "cell 1: blocks 1000000 exceeds the limit of 64"),
    (minigen_cells(10**6), "cells: 1000001 exceeds the limit of 64"),
    (minigen_cells(40, blocks=40), "operations in all (blocks x actions): 1602 exceeds"),
    ([[".", 1, ["3*3 conv", "3*3 conv"]], [8, 1, ["3*3 conv"] * 10**5]],
     "cell 1: actions 100000 exceeds the limit of 16"),
], ids=["width", "blocks", "cells", "operations", "actions"])
def test_a_huge_minigen_genome_is_refused_before_it_is_built_or_drawn(finished, tmp_path, genome,
                                                                       field):
    assert_refused(with_best_genome(finished["minigen"], tmp_path, genome), field)


def test_a_minigen_genome_of_too_many_parameters_is_refused_before_training(finished,
                                                                            tmp_path):
    """Within every structural limit, but 4096 channels of 5x5 convolutions make some 420
    million parameters: the count on the meta device refuses it; drawing it is fine."""
    genome = [[".", 1, ["3*3 conv", "3*3 conv"]], [4096, 1, ["5*5 conv"]]]
    received = with_best_genome(finished["minigen"], tmp_path, genome)
    done = deapnas("train", str(received))
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert f"{received / BEST}: genome, at the retraining's width, makes a network of " \
           "419," in done.stderr and "more than the limit of 100,000,000" in done.stderr
    assert not (received / "model.pt").exists() and not (received / "train.json").exists()


def macro_genome(layers: dict, connections: list) -> dict:
    return {"layers": layers, "connections": connections}


@pytest.mark.parametrize("genome, field", [
    (macro_genome({str(n): "CONV_3.N" for n in range(10**6)}, [[-2, -1, True, 0]]),
     "layers: 1000000 exceeds the limit of 1000"),
    (macro_genome({"0": "CONV_99999.N"}, [[-2, 0, True, 0], [0, -1, True, 1]]),
     "layer 0: kernel 99999 exceeds the limit of 15"),
    (macro_genome({}, [[-2, -1, True, n] for n in range(10**6)]),
     "connections: 1000000 exceeds the limit of 16000"),
], ids=["layers", "kernel", "connections"])
def test_a_huge_macro_genome_is_refused_before_it_is_built_or_drawn(finished, tmp_path, genome,
                                                                     field):
    assert_refused(with_best_genome(finished["macro"], tmp_path, genome), field)


def test_export_counts_the_network_train_json_describes_before_building_it(finished, tmp_path,
                                                                           capsys):
    """``train.json`` is read from disk too: its width gives the pick's network billions of
    parameters (the dense head over 4096 maps of 8x8), refused before anything is built."""
    genome = macro_genome({"0": "CONV_3.N", "1": "CONV_3.N"},
                          [[-2, 0, True, 0], [0, 1, True, 1], [1, -1, True, 2]])
    received = with_best_genome(finished["macro"], tmp_path, genome)
    (received / "model.pt").write_bytes(b"weights")
    (received / "train.json").write_text(json.dumps({
        "epochs": 1, "channels": 4096, "network": {"channels": 4096}, "input_shape": [1, 8, 8],
        "num_classes": 10, "test_accuracy": 0.5, "params": 1, "test_images": 1}))
    assert main(["export", str(received)]) == 2
    err = capsys.readouterr().err
    assert f"{received / BEST}: genome, with the network of {received / 'train.json'}, makes " \
           "a network of 19," in err and "more than the limit of 100,000,000" in err, err
    assert not (received / "export").exists()


def test_an_unknown_macro_layer_is_named(finished, tmp_path, capsys):
    genome = macro_genome({"0": "CONV_3.X"}, [[-2, 0, True, 0], [0, -1, True, 1]])
    received = with_best_genome(finished["macro"], tmp_path, genome)
    assert main(["show", str(received)]) == 2
    assert f"{received / BEST}: genome: layer 0: 'CONV_3.X' is not a layer gene" in \
        capsys.readouterr().err


def nasgep_genome(finished: Path) -> dict:
    return json.loads((finished / BEST).read_text())["genome"]


def test_a_huge_nasgep_genome_is_refused_before_it_is_built_or_drawn(finished, tmp_path):
    genome = nasgep_genome(finished["nasgep"])
    name = sorted(genome["genes"])[0]
    long_gene = {**genome, "genes": {**genome["genes"],
                                     name: " ".join(["add"] * 10**6) + " | h1"}}
    assert_refused(with_best_genome(finished["nasgep"], tmp_path / "gene", long_gene),
                   f"gene {name!r}: symbols 1000001 exceeds the limit of 33")
    many_genes = {**genome, "genes": {**genome["genes"],
                                      **{f"g{n}": "h1 | h1" for n in range(10**5)}}}
    assert_refused(with_best_genome(finished["nasgep"], tmp_path / "genes", many_genes),
                   "genes: 100", commands=("show",))


def test_a_huge_genome_in_a_checkpoint_is_refused_by_resume(finished, tmp_path):
    """``resume`` rebuilds the checkpoint's population through the same checks, and names the
    checkpoint."""
    received = tmp_path / "received"
    shutil.copytree(finished["minigen"], received)
    (received / BEST).unlink()  # an interrupted run, as far as resume can tell
    checkpoint = json.loads((received / CHECKPOINT).read_text())
    text = json.dumps(checkpoint)
    cell = json.dumps(json.loads((received / HISTORY).read_text().splitlines()[0])["genome"][1])
    assert cell in text
    big = json.dumps([10**9, 1, ["3*3 conv"]])
    (received / CHECKPOINT).write_text(text.replace(cell, big, 1))
    done = deapnas("resume", str(received), "--quiet")
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert f"{received / CHECKPOINT} cannot be restored" in done.stderr
    assert "channels 1000000000 exceeds the limit of 4096" in done.stderr


# -- options --------------------------------------------------------------------------------------

@pytest.mark.parametrize("argv, message", [
    (["--algorithm", "minigen", "--workers", "1000000000000"],
     "--workers must be at most 256, not 1000000000000 (allowed: 1 to 256)"),
    (["--algorithm", "minigen", "--population", "1000000000000"],
     "--population must be at most 100000, not 1000000000000 (allowed: 2 to 100000)"),
    (["--algorithm", "renas", "--controller-size", "1000000"],
     "--controller-size must be at most 1024, not 1000000 (allowed: 1 to 1024)"),
    (["--algorithm", "renas", "--blocks", "1000000"],
     "--blocks must be at most 64, not 1000000 (allowed: 1 to 64)"),
    (["--algorithm", "egnas", "--popsize", "1000000000000"],
     "--popsize must be at most 100000, not 1000000000000 (allowed: 2 to 100000)"),
    (["--algorithm", "egnas", "--channels", "100000"],
     "--channels must be at most 4096, not 100000 (allowed: 1 to 4096)"),
    (["--algorithm", "minigen", "--win-threshold", "-1"],
     "--win-threshold must be at least 0, not -1.0 (allowed: 0 to 1)"),
    (["--algorithm", "minigen", "--win-threshold", "1000000000000"],
     "--win-threshold must be at most 1, not 1000000000000.0 (allowed: 0 to 1)"),
    (["--algorithm", "minigen", "--restart-threshold", "-1"],
     "--restart-threshold must be at least 0, not -1.0 (allowed: 0 to 1)"),
    (["--algorithm", "minigen", "--restart-threshold", "1000000000000"],
     "--restart-threshold must be at most 1, not 1000000000000.0 (allowed: 0 to 1)"),
    (["--algorithm", "minigen", "--cell-blocks", "1,1000000"],
     "--cell-blocks takes positive integers up to 64"),
    (["--algorithm", "minigen", "--widths", "8,1000000000"],
     "--widths takes positive integers up to 4096"),
    (["--lr", "1e9"], "--lr must be at most 100.0, not 1000000000.0 (allowed: above 0 to 100.0)"),
    (["--max-params", "10000000000"], "--max-params must be at most 100000000"),
    (["--time-limit", "1e12"], "--time-limit must be at most 31536000.0"),
])
def test_an_option_beyond_its_bound_is_refused_before_anything_is_written(tmp_path, capsys,
                                                                          argv, message):
    out = tmp_path / "run"
    assert main(["search", *argv, "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err, err
    assert not out.exists()


@pytest.mark.parametrize("flag", ["--train-per-class", "--score-per-class"])
def test_a_per_class_count_beyond_the_data_names_its_flag_and_range(tmp_path, capsys, flag):
    out = tmp_path / "run"
    assert main(["search", "--algorithm", "minigen", flag, "100000", "--out", str(out),
                 "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"{flag} must be at most " in err and "(allowed: 1 to " in err, err
    assert "per_class" not in err and not out.exists()


def test_renas_names_its_per_class_flag_too(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["search", "--algorithm", "renas", "--train-per-class", "100000", "--out",
                 str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "--train-per-class must be at most " in err and "per_class" not in err, err
    assert not out.exists()


def test_an_egnas_supernet_beyond_the_parameter_limit_is_refused_before_anything_is_written(
        tmp_path, capsys):
    """Every option within its bound, but their product too large: the supernet is counted on
    the meta device before it is built (``--channels 100000`` was a traceback)."""
    out = tmp_path / "run"
    assert main(["search", "--algorithm", "egnas", "--channels", "4096", "--partial", "4",
                 "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "the supernet of --channels 4096 and --cells 5 makes a network of " in err, err
    assert "more than the limit of 100,000,000" in err and not out.exists()


def test_train_bounds_its_own_options(tmp_path, capsys):
    for argv, message in [(["--epochs", "1000000000"], "must be at most 100000"),
                          (["--channels", "1000000000"], "must be at most 4096")]:
        with pytest.raises(SystemExit) as exit_:
            main(["train", str(tmp_path), *argv])
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and message in err and "(allowed: 1 to " in err, err


def test_every_numeric_option_has_an_upper_bound():
    """So that no setting of any registered method asks for more than a machine holds."""
    unbounded = [f"{cls.__qualname__}.{f.name}"
                 for cls in [RunConfig, TrainingOptions, *(m.options for m in METHODS.values())]
                 for f in opts.fields(cls)
                 if opts.types(cls)[f.name] in (int, float) and f.metadata["choices"] is None
                 and f.metadata["maximum"] is None]
    assert unbounded == []


# -- EG-NAS out of memory -----------------------------------------------------------------------
#
# A real out-of-memory error cannot be provoked cheaply on a CPU (the operating system grants
# memory lazily, and the process would be killed rather than see an exception), so the
# supernet below raises the exception PyTorch raises on a GPU, from its forward call.

class ExhaustedSupernet(NB201Supernet):
    """A real NAS-Bench-201 supernet whose scoring runs out of device memory on the candidates
    ``exhausted`` says, as a large candidate on a full GPU does; it trains normally."""

    def __init__(self, *args, exhausted=lambda alpha: True, **kwargs):
        super().__init__(*args, **kwargs)
        self.exhausted = exhausted

    def forward(self, x, alpha):
        if not self.training and self.exhausted(alpha):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 80.00 GiB")
        return super().forward(x, alpha)


@pytest.fixture(scope="module")
def digits():
    data = load_dataset("digits", val_fraction=0.5)
    return dataclasses.replace(data, val=data.val.subset(torch.arange(64)))


def test_an_egnas_candidate_out_of_memory_fails_with_that_reason(digits):
    torch.manual_seed(0)
    net = ExhaustedSupernet(digits.input_shape, digits.num_classes, channels=4,
                            cells_per_stage=1)
    evaluate = eg.SupernetEvaluator(net, digits.val, batches=1, batch_size=32)
    result = evaluate(eg.Candidate(eg.initial_alpha(30, 0).tolist()))
    assert result.info["reason"] == "out of memory" and result[0] == float("inf")


def test_another_runtime_error_in_an_egnas_candidate_is_not_hidden(digits):
    class Broken(NB201Supernet):
        def forward(self, x, alpha):
            raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    evaluate = eg.SupernetEvaluator(Broken(digits.input_shape, digits.num_classes, channels=4,
                                           cells_per_stage=1), digits.val, batch_size=32)
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        evaluate(eg.Candidate(eg.initial_alpha(30, 0).tolist()))


def test_the_egnas_loop_goes_on_past_candidates_out_of_memory(digits):
    """In the real loop, the candidates whose first weight is positive run out of memory: they
    fail, the others are scored, and the search ends with an architecture weight vector."""
    torch.manual_seed(0)
    net = ExhaustedSupernet(digits.input_shape, digits.num_classes, channels=4,
                            cells_per_stage=1, exhausted=lambda alpha: bool(alpha[0] > 0))
    training = eg.SupernetTraining(net, Split(digits.train.x[:64], digits.train.y[:64]),
                                   dataclasses.replace(eg.SEARCH_RECIPE, epochs=2,
                                                       batch_size=64), seed=0)
    evaluate = eg.SupernetEvaluator(net, digits.val, batches=1, batch_size=32)
    toolbox = eg.es_toolbox(evaluate, popsize=6, iterations=1)
    seen = []
    toolbox.register("map", lambda f, xs: [seen.append(f(x)) or seen[-1] for x in xs])
    alpha, _ = eg.egnas(training, toolbox, 2, warmup=1, samplings=2, seed=0, verbose=False,
                        alpha=eg.initial_alpha(30, 0) - 0.5)
    reasons = {r.info["reason"] for r in seen}
    assert reasons == {None, "out of memory"} and len(alpha) == 30
