"""The macro regularized-evolution method against its paper (issue 18): unpadded convolutions,
the pick under fitness weights, the paper's final training (random erasing, no search cap),
parents with replacement, the authors' add-node rule, and the experiment's statistics."""
import json
import random
import sys
import warnings
from pathlib import Path

import pytest
import torch
from deap import creator

from conftest import chain_genome
from deapnas import runner
from deapnas.algorithms import best_average, sel_best_of_sample
from deapnas.augment import Augment, random_erasing
from deapnas.cli import main
from deapnas.fitness import TrainEvaluator
from deapnas.methods import get_method
from deapnas.ops import get_op
from deapnas.spaces import macro

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
TINY_RUN = ["--population", "4", "--sample-size", "2", "--epochs", "1", "--channels", "4",
            "--quiet"]


# -- unpadded ("valid") convolutions -----------------------------------------------------------

def test_valid_convolutions_shrink_by_the_kernel_and_same_ones_keep_the_size():
    conv = get_op("conv_relu6_bn")
    for padding, expected in (("same", (8, 28, 28)), ("valid", (8, 24, 24))):
        args = {"kernel": 5, "channels": 8, "padding": padding}
        assert conv.output_shape((1, 28, 28), **args) == expected
        assert tuple(conv.build(1, **args)(torch.zeros(2, 1, 28, 28)).shape[1:]) == expected


def test_a_kernel_larger_than_its_input_makes_a_valid_candidate_fail(digits):
    """8x8 digits: 5x5 leaves 4x4, a second 5x5 nothing; the candidate fails with the reason,
    as a pool larger than its input does; padded, it trains."""
    genome = chain_genome("CONV_5.N", "CONV_5.N")
    results = {}
    for padding in ("same", "valid"):
        evaluate = TrainEvaluator(lambda g, s, c, p=padding: macro.build_network(
            g, s, c, channels=4, padding=p), digits, epochs=1)
        results[padding] = evaluate(macro.SPACE.individual()(genome.layers, genome.connections))
    assert results["same"].info["reason"] is None
    assert "collapses" in results["valid"].info["reason"]


def test_padding_is_a_network_option_valid_in_the_paper_preset_only():
    method = get_method("re")
    _, paper = runner.settings(method, "paper")
    _, default = runner.settings(method)
    assert paper.conv_padding == "valid" and default.conv_padding == "same"
    assert macro.SPACE.network_kwargs(paper)["padding"] == "valid"
    same = macro.to_graph(chain_genome("CONV_3.N"))
    assert "padding" not in same.nodes[0]["args"]  # the keys of same-padded runs are unchanged


def test_random_searchs_paper_preset_trains_the_macro_papers_valid_convolutions():
    _, paper = runner.settings(get_method("random"), "paper")
    assert paper.conv_padding == "valid"


# -- parents with replacement, the add-node rule ----------------------------------------------

class Scored:
    def __init__(self, value):
        self.fitness = value


def test_parents_with_replacement_may_miss_the_best_of_the_population():
    """S = P = 3: without replacement the sample is the population, so the best is always the
    parent; with replacement it is missed with probability (2/3)^3."""
    random.seed(3)
    population = [Scored(v) for v in (1, 2, 3)]
    without = sel_best_of_sample(population, 3000, sample_size=3)
    drawn = sel_best_of_sample(population, 3000, sample_size=3, replace=True)
    assert all(p.fitness == 3 for p in without)
    assert sum(p.fitness == 3 for p in drawn) / 3000 == pytest.approx(1 - (2 / 3) ** 3, abs=0.03)


def branches(genome) -> bool:
    graph = macro.to_graph(genome)
    return any(graph.in_degree(n) > 1 or graph.out_degree(n) > 1 for n in graph)


def test_the_authors_add_node_rule_makes_fresh_genomes_branch():
    """Splitting only enabled connections keeps four random layers a chain; the authors' rule
    (any connection) gives about 77 % branching genomes."""
    random.seed(0)
    assert not any(branches(macro.init_genome()) for _ in range(500))
    share = sum(branches(macro.init_genome(split="any")) for _ in range(2000)) / 2000
    assert share == pytest.approx(0.77, abs=0.04)
    with pytest.raises(ValueError, match="split must be one of enabled, any"):
        macro.mut_add_node(macro.init_genome(), split="disabled")


def test_the_paper_preset_samples_with_replacement_and_splits_any_connection():
    _, paper = runner.settings(get_method("re"), "paper")
    _, default = runner.settings(get_method("re"))
    assert paper.parents_with_replacement and paper.add_node_split == "any"
    assert not default.parents_with_replacement and default.add_node_split == "enabled"


def test_a_search_with_the_authors_rule_starts_from_branching_genomes(tmp_path):
    out = tmp_path / "run"
    assert main(["search", "--evaluations", "6", *TINY_RUN, "--add-node-split", "any",
                 "--parents-with-replacement", "--clamp-pools", "--out", str(out)]) == 0
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    first = [macro.from_json(r["genome"]) for r in history[:4]]
    assert any(branches(genome) for genome in first)


# -- the pick under the fitness weights -------------------------------------------------------

def records(*evaluations):
    return [{"key": key, "fitness": list(values), "reason": None, "genome": key}
            for key, values in evaluations]


def test_best_average_minimises_a_minimised_objective():
    history = records(("small", [100]), ("small", [100]), ("large", [9000]), ("large", [9000]))
    assert best_average(history, 2, weights=(-1.0,))["key"] == "small"
    assert best_average(history, 2)["key"] == "large"


def test_with_several_objectives_the_first_decides_and_the_pick_is_not_dominated():
    history = records(("big", [5000, 0.95]), ("big", [5000, 0.97]),
                      ("tiny", [100, 0.50]), ("tiny", [100, 0.60]),
                      ("tiny-better", [100, 0.80]), ("tiny-better", [100, 0.90]))
    pick = best_average(history, 2, weights=(-1.0, 1.0))
    assert pick["key"] == "tiny-better"  # the fewest parameters; accuracy breaks the tie
    assert pick["mean_values"] == pytest.approx([100, 0.85])
    assert best_average(history, 2, weights=(1.0, -1.0))["key"] == "big"


def test_a_params_accuracy_search_picks_from_the_front_and_names_its_metric(tmp_path):
    """The pick was the largest network, labelled as a validation accuracy."""
    out = tmp_path / "run"
    assert main(["search", "--evaluations", "8", *TINY_RUN, "--clamp-pools",
                 "--objectives", "params,accuracy", "--min-evaluations", "1",
                 "--out", str(out)]) == 0
    best = json.loads((out / "best.json").read_text())
    front = json.loads((out / "pareto.json").read_text())["front"]
    assert best["params"] == min(r["fitness"][0] for r in front)
    assert best["metric"] == "mean params" and best["fitness"] == best["params"]


# -- the paper's final training ----------------------------------------------------------------

def test_random_erasing_sets_rectangles_to_zero_with_its_probability():
    generator = torch.Generator().manual_seed(0)
    x = torch.ones(4000, 2, 28, 28)
    erased = random_erasing(x, 0.5, generator)
    zero = erased == 0
    assert torch.equal(zero[:, 0], zero[:, 1])  # every channel alike
    hit = zero[:, 0].flatten(1).any(1)
    assert hit.float().mean().item() == pytest.approx(0.5, abs=0.03)
    area = zero[:, 0].flatten(1).float().mean(1)[hit]
    assert 0.015 < area.min() and area.max() < 0.36  # 2 % to 33 % of the image, rounded
    for mask in zero[:20, 0][hit[:20]]:  # each a full rectangle
        rows, columns = mask.any(1).nonzero(), mask.any(0).nonzero()
        height, width = rows.max() - rows.min() + 1, columns.max() - columns.min() + 1
        assert mask.sum() == height * width
    again = random_erasing(x, 0.5, torch.Generator().manual_seed(0))
    assert torch.equal(erased, again)
    assert torch.equal(random_erasing(x, 0.0, generator), x)
    assert torch.equal(Augment(erasing=1.0)(x[:3], (x.amin(), x.amax()),
                               torch.Generator().manual_seed(1)),
                       random_erasing(x[:3], 1.0, torch.Generator().manual_seed(1)))
    with pytest.raises(ValueError, match="erasing is a probability"):
        Augment(erasing=1.5)


def test_the_final_training_is_the_papers(digits):
    """20 epochs at C = 256 with flips and random erasing, no parameter cap."""
    method = get_method("re")
    config, options = runner.settings(method, "paper", dataset="digits")
    evaluator = method.final_training(config, options, digits)
    assert evaluator.recipe.epochs == 20 and evaluator.build.keywords["channels"] == 256
    assert evaluator.build.keywords["padding"] == "valid"
    assert evaluator.recipe.augment == Augment(flip=True, erasing=0.5)
    assert evaluator.max_params is None
    nb201, _ = runner.settings(method, "paper", space="nb201")
    assert method.final_training(nb201, options, digits) is None  # generic retraining


@pytest.mark.parametrize("algorithm", ["re", "random"])
def test_train_at_a_wider_width_is_not_refused_by_the_search_cap(tmp_path, algorithm):
    """The search's --max-params bounds its candidates: `deapnas train --channels` may build a
    larger final network (it was refused, telling the user to raise an option `train` does
    not have)."""
    out = tmp_path / "run"
    extra = ["--population", "4", "--sample-size", "2"] if algorithm == "re" else []
    assert main(["search", "--algorithm", algorithm, "--evaluations", "4", "--epochs", "1",
                 "--channels", "4", "--clamp-pools", "--max-params", "3000", "--quiet",
                 *extra, "--out", str(out)]) == 0
    assert main(["train", str(out), "--channels", "64", "--epochs", "1"]) == 0
    trained = json.loads((out / "train.json").read_text())
    assert trained["channels"] == 64 and trained["params"] > 3000


# -- the experiment script ----------------------------------------------------------------------

def test_the_experiment_logs_statistics_over_the_candidates_that_did_not_fail(monkeypatch,
                                                                              tmp_path):
    """A failed candidate (-inf) made the logbook's avg -inf and std nan, with numpy warnings."""
    monkeypatch.syspath_prepend(str(EXPERIMENTS))
    sys.modules.pop("regularized_evolution_macro", None)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        warnings.filterwarnings("ignore", "A class named", RuntimeWarning)  # DEAP's creator
        import regularized_evolution_macro as script
        _, logbook, _ = script.main(["--tiny", "--population", "6", "--cycles", "2",
                                     "--epochs", "1", "--channels", "4", "--seed", "1",
                                     "--final-epochs", "0", "--out", str(tmp_path / "run"),
                                     "--quiet"])
    history = [json.loads(line) for line in (tmp_path / "run" / "history.jsonl").open()]
    assert any(r["reason"] is not None for r in history[:6])  # a failure in the population
    assert all(abs(record["avg"]) < 1 and record["std"] < 1 for record in logbook)
    for name in ("FitnessMax", "Individual"):  # the script's creator classes
        monkeypatch.delattr(creator, name, raising=False)
