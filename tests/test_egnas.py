"""EG-NAS as a deapnas method, through the command line: the table-only mode, the DARTS and
NAS-Bench-201 supernet searches on digits, interrupted and resumed, shown and retrained."""
import json
from dataclasses import replace

import numpy as np
import pytest

import deapnas
from deapnas.augment import Augment
from deapnas.cli import main
from deapnas.evolutionary_gradient import SupernetEvaluator, TableScorer
from deapnas.fitness import TableEvaluator
from deapnas.networks import count_parameters
from deapnas.methods import get_method
from deapnas.methods import egnas
from deapnas.methods.egnas import final_recipe
from deapnas.rundir import BEST, CONFIG, read_history
from deapnas.spaces import darts, nb201
from deapnas.supernet import derive_darts, derive_nb201

from conftest import NB201_METRIC, NB201_REPORT, without_clock

pytestmark = pytest.mark.usefixtures("one_thread")

#: A small DARTS supernet search on digits: two reduction cells, one epoch and its ES step.
TINY_DARTS = ["--algorithm", "egnas", "--space", "darts", "--epochs", "1", "--warmup", "0",
              "--cells", "2", "--score-batch-size", "64",
              "--batch-size", "256", "--checkpoint-every", "1", "--checkpoint-gap", "0", "--quiet"]


def table_args(csv, out, *extra):
    return ["search", "--algorithm", "egnas", "--space", "nb201", "--dataset", "nb201",
            "--table", str(csv), "--metric", NB201_METRIC, "--report", NB201_REPORT,
            "--out", str(out), "--quiet", *extra]


def interrupt(monkeypatch, scorer: type, at: int):
    """Make ``scorer`` raise ``KeyboardInterrupt`` (Ctrl-C) at its ``at``-th call."""
    real, calls = scorer.__call__, []

    def interrupting(self, individual):
        calls.append(individual)
        if len(calls) == at:
            raise KeyboardInterrupt
        return real(self, individual)

    monkeypatch.setattr(scorer, "__call__", interrupting)


def read_best(directory):
    return json.loads((directory / BEST).read_text())


def alpha_records(directory):
    """The recorded candidates as vectors, in order."""
    return [np.asarray(r["genome"]) for r in read_history(directory)]


def test_the_table_only_mode_counts_look_ups_and_resumes_to_the_same_result(
        nb201_csv, tmp_path, monkeypatch, capsys):
    budget = ["--evaluations", "60", "--samplings", "3", "--popsize", "6"]
    assert main(table_args(nb201_csv, tmp_path / "straight", *budget)) == 0
    history = read_history(tmp_path / "straight")
    assert 60 <= len(history) < 60 + 6  # look-ups, stopped within the population that spent them
    interrupt(monkeypatch, TableScorer, 30)
    assert main(table_args(nb201_csv, tmp_path / "broken", *budget)) == 130
    assert len(read_history(tmp_path / "broken")) == 29
    monkeypatch.undo()
    assert main(["resume", str(tmp_path / "broken"), "--quiet"]) == 0
    assert without_clock(read_history(tmp_path / "broken")) == without_clock(history)
    best = read_best(tmp_path / "straight")
    assert read_best(tmp_path / "broken") == best
    table = TableEvaluator(nb201_csv, nb201.key, NB201_METRIC, NB201_REPORT)
    cell = nb201.from_json(best["genome"])
    assert best["key"] == nb201.key(cell) and best["fitness"] == table(cell)[0]
    assert best["report"] == {NB201_REPORT: table(cell).info[NB201_REPORT]}
    for record in history:  # each candidate is recorded by its vector and its derived cell
        assert record["key"] == nb201.key(derive_nb201(np.asarray(record["genome"])))
    assert "derived from the final architecture weights" in capsys.readouterr().out


def test_a_tiny_darts_search_resumes_mid_epoch_then_shows_and_retrains(tmp_path, monkeypatch,
                                                                      capsys):
    assert main(["search", *TINY_DARTS, "--out", str(tmp_path / "straight")]) == 0
    history = read_history(tmp_path / "straight")
    assert len(history) == 1 + 2 * (4 + 1)  # alpha, then N = 2 samplings of lambda = 4 and a mean
    interrupt(monkeypatch, SupernetEvaluator, 5)  # in the ES step, within the first sampling
    assert main(["search", *TINY_DARTS, "--out", str(tmp_path / "broken")]) == 130
    monkeypatch.undo()
    assert main(["resume", str(tmp_path / "broken"), "--quiet"]) == 0
    assert without_clock(read_history(tmp_path / "broken")) == without_clock(history)
    best = read_best(tmp_path / "straight")
    assert read_best(tmp_path / "broken") == best
    genotype = darts.from_json(best["genome"])
    assert best["space"] == "darts" and best["key"] == darts.key(genotype)
    assert 0 <= best["fitness"] <= 1 and best["params"] > 0
    assert all(r["key"] == darts.key(derive_darts(np.asarray(r["genome"]))) for r in history)
    capsys.readouterr()
    assert main(["show", str(tmp_path / "broken")]) == 0
    shown = capsys.readouterr().out
    assert "egnas on the darts space" in shown and "best.png" in shown
    assert main(["train", str(tmp_path / "broken"), "--epochs", "1"]) == 0
    trained = json.loads((tmp_path / "broken" / "train.json").read_text())
    assert trained["epochs"] == 1 and 0 <= trained["test_accuracy"] <= 1
    # the tiny preset's DARTS retraining: 16 channels, 5 cells; the auxiliary head not counted
    assert trained["network"] == {"channels": 16, "layers": 5, "auxiliary": True}
    net = deapnas.load_model(tmp_path / "broken")  # rebuilt as trained, head included
    assert net.auxiliary is not None and trained["params"] == sum(
        p.numel() for name, p in net.named_parameters() if not name.startswith("auxiliary."))


def test_an_nb201_supernet_search_reports_its_cell_from_the_table(nb201_csv, tmp_path):
    out = tmp_path / "run"
    assert main(["search", "--algorithm", "egnas", "--space", "nb201", "--epochs", "2",
                 "--cells", "1", "--table", str(nb201_csv), "--report", NB201_REPORT,
                 "--out", str(out), "--quiet"]) == 0
    best = read_best(out)
    cell = nb201.from_json(best["genome"])
    table = TableEvaluator(nb201_csv, nb201.key, NB201_REPORT)
    assert best["metric"] == egnas.SUPERNET_ACCURACY and 0 <= best["fitness"] <= 1
    assert best["report"] == {NB201_REPORT: table(cell)[0]}
    assert json.loads((out / CONFIG).read_text())["options"]["val_fraction"] == 0.5


@pytest.mark.parametrize("argv, message", [
    (["--space", "darts", "--cells", "4"], "3k + 2"),
    (["--warmup", "2", "--epochs", "2"], "leaves no ES step"),
    (["--channels", "6"], "must divide --channels"),
    (["--workers", "2"], "--workers 1"),
    (["--space", "nb201", "--table", "{csv}"], "give --report COLUMN"),
    (["--space", "nb201", "--table", "{csv}", "--report", NB201_REPORT, "--metric",
      NB201_METRIC], "--metric is the fitness column of a table search"),
])
def test_settings_that_cannot_work_are_refused_before_anything_is_written(
        argv, message, nb201_csv, tmp_path, capsys):
    out = tmp_path / "run"
    argv = [a.replace("{csv}", str(nb201_csv)) for a in argv]
    assert main(["search", "--algorithm", "egnas", *argv, "--out", str(out), "--quiet"]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_paper_defaults_and_presets():
    method = get_method("egnas")
    options = method.options()
    assert (options.epochs, options.warmup, options.batch_size, options.channels) == \
        (50, 15, 256, 16)
    assert (options.samplings, options.popsize, options.step_size, options.zeta, options.eta,
            options.partial, options.val_fraction) == (5, 50, 0.6, 1.0, 0.4, 4, 0.5)
    assert (options.update, options.spread) == ("convex", None)
    assert method.presets["paper"]["dataset"] == "cifar10"
    assert {"paper", "tiny"} <= set(method.presets) and method.weights == (-1.0,)
    recipe = final_recipe(options)  # DARTS' retraining, which EG-NAS follows
    assert (recipe.epochs, recipe.batch_size, recipe.lr, recipe.weight_decay, recipe.grad_clip,
            recipe.auxiliary_weight, recipe.drop_path) == (600, 96, 0.025, 3e-4, 5.0, 0.4, 0.2)
    assert recipe.augment == Augment(crop_padding=4, flip=True, cutout=16)
    assert (options.final_channels, options.final_cells) == (36, 20)


def test_the_supernet_trains_with_crops_and_flips_in_the_paper_preset_only_if_asked():
    """DARTS, PC-DARTS and the authors crop (padding 4) and flip the supernet's training
    images; both are options, on by default (the paper), off together in a plain recipe."""
    options = get_method("egnas").options()
    assert egnas.search_recipe(options).augment == Augment(crop_padding=4, flip=True)
    plain = replace(options, search_crop_padding=0, search_flip=False)
    assert egnas.search_recipe(plain).augment is None
    tiny = replace(options, **{k: v for k, v in get_method("egnas").presets["tiny"].items()
                               if k != "dataset"})
    assert egnas.search_recipe(tiny).augment == Augment(crop_padding=1, flip=False)


def test_best_json_counts_the_pick_at_the_supernets_depth(tmp_path, digits):
    """--preset paper leaves --cells unset: best.json's params are the genotype's network at
    the supernet's 8 cells and width, as the docs say, not at the retraining's 20."""
    out = tmp_path / "run"
    assert main(["search", "--algorithm", "egnas", "--preset", "paper", "--dataset", "digits",
                 "--space", "darts", "--epochs", "1", "--warmup", "0", "--channels", "4",
                 "--samplings", "1", "--popsize", "2", "--score-batch-size", "64",
                 "--out", str(out), "--quiet"]) == 0
    best = read_best(out)
    genotype = darts.from_json(best["genome"])
    assert best["params"] == count_parameters(lambda: darts.build_network(
        genotype, digits.input_shape, digits.num_classes, channels=4, layers=8))
