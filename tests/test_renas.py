"""RENAS: the block-cell space, the mutation controller, parameter inheritance, the loop and
the registered method through the command line (on the real NAS-Bench-201 table and on real
digits training)."""
import copy
import dataclasses
import functools
import io
import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from deap import base, tools

import deapnas
from deapnas.augment import Augment
from deapnas.algorithms import regularized_evolution, sel_best_of_sample
from deapnas.cli import main
from deapnas.controller import GenomeLayout, MutationController, init_layout, mut_layout
from deapnas.data import load_dataset, stratified_subset
from deapnas.fitness import TrainEvaluator
from deapnas.graph import prune
from deapnas.methods.renas import (Options, WeightFiles, distinct, final_evaluator,
                                   inheritance_rates, register_mutation, renas,
                                   retrain_population)
from deapnas.rundir import BEST, CHECKPOINT, LOGBOOK, read_history, read_json
from deapnas.spaces import nasnet, nb201
from deapnas.training import load_matching, param_groups
from deapnas.weights import save_weights

from conftest import (NB201_METRIC, NB201_REPORT, interrupt_call, interrupt_evaluation,
                      without_clock)

NASNET = nasnet.SPACE.individual()
NB201 = nb201.SPACE.individual()
NB201_LAYOUT = GenomeLayout.flat(nb201.OPS, len(nb201.EDGES))
#: Two blocks: an input (the 2 external states, then block 0) and an operation each.
TINY = GenomeLayout(((0, 1), ("a", "b", "c"), (0, 1, 2), ("a", "b", "c")), ((0, 1), (2, 3)),
                    frozenset({0, 2}), external=2)


pytestmark = pytest.mark.usefixtures("seeded", "one_thread")


def changed(a, b) -> list[int]:
    return [p for p, (x, y) in enumerate(zip(a, b)) if x != y]


# -- the block-cell space ---------------------------------------------------------------------

def test_random_cells_are_valid_and_round_trip_through_json():
    for _ in range(50):
        cell = nasnet.init_cell(NASNET, blocks=5)
        assert isinstance(cell, NASNET) and len(cell) == 20
        for b, (i1, i2, o1, o2) in enumerate(nasnet.to_json(cell)):
            assert {i1, i2} <= set(range(b + 2)) and {o1, o2} <= set(nasnet.OPS)
        again = nasnet.from_json(json.loads(json.dumps(nasnet.to_json(cell))), NASNET)
        assert again == cell and isinstance(again, NASNET)


@pytest.mark.parametrize("tokens, message", [
    ([0, 1, "identity"], "4 tokens per block"),
    ([0, 2, "identity", "identity"], "block 0 i2=2"),
    ([0, 1, "conv", "identity"], "block 0 o1='conv'"),
    ([0, 1.0, "identity", "identity"], "block 0 i2=1.0"),
])
def test_malformed_cells_are_refused_with_the_token_named(tokens, message):
    with pytest.raises(ValueError, match=message):
        nasnet.to_graph(tokens)


def test_cell_graph_concatenates_unused_blocks_and_strides_only_cell_inputs():
    cell = [0, 1, "sep_conv_3x3", "identity",      # block 0, used by block 1
            2, 0, "max_pool_3x3", "sep_conv_5x5",  # block 1, unused
            1, 1, "avg_pool_3x3", "identity"]      # block 2, unused
    normal, reduction = nasnet.to_graph(cell), nasnet.to_graph(cell, reduction=True)
    assert sorted(normal.predecessors("out")) == ["b1", "b2"]
    assert normal.nodes["out"]["combine"] == "concat" and normal.nodes["b0"]["combine"] == "sum"
    strides = {node: attrs.get("args", {}).get("stride", 1)
               for node, attrs in reduction.nodes(data=True)}
    assert strides["b1_1_max_pool_3x3"] == 1  # applied to block 0, already reduced
    assert {strides[n] for n in ("b0_1_sep_conv_3x3", "b1_2_sep_conv_5x5",
                                 "b2_1_avg_pool_3x3")} == {2}
    assert reduction.nodes["b0_2_identity"]["op"] == "relu_conv_bn"  # a 1x1 conv of stride 2
    assert set(prune(normal)) == set(normal)


def test_network_halves_the_size_and_doubles_the_width_at_each_reduction():
    cell = nasnet.init_cell(blocks=3)
    net = nasnet.build_network(cell, (3, 16, 16), 10, channels=8, cells_per_stage=2)
    unused = len(list(nasnet.to_graph(cell).predecessors("out")))
    assert [c.output_shape for c in net.cells] == [
        (8 * unused, 16, 16)] * 2 + [(16 * unused, 8, 8)] * 3 + [(32 * unused, 4, 4)] * 3
    assert net(torch.randn(2, 3, 16, 16)).shape == (2, 10)


def test_separable_convolution_is_applied_twice_without_bn_between_its_parts():
    sep = nasnet.sep_conv(6, kernel=5, stride=2)
    kinds = [type(m).__name__ for m in sep]
    assert kinds == ["ReLU", "Conv2d", "Conv2d", "BatchNorm2d"] * 2
    assert sep[1].groups == 6 and sep[1].kernel_size == (5, 5) and sep[1].stride == (2, 2)
    assert sep[2].kernel_size == (1, 1) and sep[5].stride == (1, 1)


def test_key_identifies_cells_with_swapped_block_halves():
    cell = [0, 1, "sep_conv_3x3", "identity", 2, 0, "max_pool_3x3", "sep_conv_5x5"]
    swapped = [1, 0, "identity", "sep_conv_3x3", 2, 0, "max_pool_3x3", "sep_conv_5x5"]
    other = [1, 0, "identity", "sep_conv_5x5", 2, 0, "max_pool_3x3", "sep_conv_5x5"]
    assert nasnet.key(cell) == nasnet.key(swapped) != nasnet.key(other)


def test_random_mutation_changes_one_token_per_block():
    for _ in range(100):
        parent = nasnet.init_cell(NASNET, blocks=5)
        parent.fitness.values = (0.5,)
        child = nasnet.mutate(copy.deepcopy(parent))[0]
        assert [p // 4 for p in changed(parent, child)] == list(range(5))
        nasnet.blocks_of(child)
        assert child.fitness.values == (0.5,)


# -- the controller ----------------------------------------------------------------------------

@pytest.mark.parametrize("layout, init", [
    (nasnet.layout(5), functools.partial(nasnet.init_cell, NASNET, blocks=5)),
    (NB201_LAYOUT, functools.partial(nb201.init_cell, NB201)),
])
def test_controller_mutations_are_valid_genomes_with_their_actions(layout, init):
    controller = MutationController(layout, seed=0)
    for _ in range(30):
        parent = init()
        child = controller.mutate(copy.deepcopy(parent))[0]
        layout.check(child)
        record = json.loads(json.dumps(child.mutation))
        assert record["parent"] == list(parent)
        assert [layout.block_of[p] for p in changed(parent, child)] == \
            list(range(len(layout.blocks)))
        rebuilt = list(parent)
        for position, value in record["actions"]:
            rebuilt[position] = value
        assert rebuilt == list(child)


def squash(logit: float) -> float:
    return 2.5 * math.tanh(logit / 5.0)


def log_softmax(logits: list[float]) -> list[float]:
    total = math.log(sum(math.exp(v) for v in logits))
    return [v - total for v in logits]


def entropy(logits: list[float]) -> float:
    return -sum(math.exp(v) * v for v in log_softmax(logits))


def test_log_probability_and_entropy_match_a_hand_computation():
    controller = MutationController(TINY, embedding_size=4, hidden_size=3, seed=0)
    net = controller.net
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.zero_()  # the LSTM then outputs zeros: every router logit is equal
        net.op_mutator.bias.copy_(torch.tensor([0.5, -1.0, 2.0]))  # ops a, b, c
        net.begin[0, 0], net.begin[1, 0] = 1.5, -0.5               # the external states
        net.attention[0].weight[0, 0] = 1.0                         # reads candidate[0]
        net.attention[2].weight[0, 0] = 2.0
    parent, actions = [1, "a", 2, "b"], [[1, "c"], [2, 0]]
    # block 0: router over positions 0, 1; op c among the alternatives b, c of "a"
    ops = [squash(-1.0), squash(2.0)]
    # block 1: router over positions 2, 3; input 0 among the alternatives 0, 1 of input 2,
    # scored 2 tanh(candidate[0]) for the external states 1.5 and -0.5
    inputs = [squash(2 * math.tanh(1.5)), squash(2 * math.tanh(-0.5))]
    expected_log_prob = 2 * math.log(0.5) + log_softmax(ops)[1] + log_softmax(inputs)[0]
    expected_entropy = 2 * math.log(2) + entropy(ops) + entropy(inputs)
    log_prob, total_entropy = controller.log_prob(parent, actions)
    assert log_prob.item() == pytest.approx(expected_log_prob, rel=1e-6)
    assert total_entropy.item() == pytest.approx(expected_entropy, rel=1e-6)


def test_initial_controller_is_close_to_uniform():
    controller = MutationController(TINY, seed=0)  # N(0, 0.01) weights
    log_prob, total_entropy = controller.log_prob([1, "a", 2, "b"], [[1, "c"], [2, 0]])
    assert log_prob.item() == pytest.approx(4 * math.log(0.5), abs=0.05)
    assert total_entropy.item() == pytest.approx(4 * math.log(2), abs=0.05)


def mutated(controller, parent, fitness):
    child = controller.mutate(copy.deepcopy(parent))[0]
    child.fitness.values = (fitness,)
    return child


def test_reinforce_raises_the_probability_of_a_rewarded_action():
    controller = MutationController(NB201_LAYOUT, seed=3, fitness_scale=100)
    parent = nb201.init_cell(NB201)
    assert controller.update([mutated(controller, parent, 60.0)]) == 0.0  # sets the baseline
    good, bad = mutated(controller, parent, 93.0), mutated(controller, parent, 10.0)
    good_actions, bad_actions = good.mutation["actions"], bad.mutation["actions"]
    before = [controller.log_prob(parent, a)[0].item() for a in (good_actions, bad_actions)]
    controller.update([good])
    assert controller.log_prob(parent, good_actions)[0].item() > before[0]
    assert not hasattr(good, "mutation")  # consumed: a child teaches once
    middle = controller.log_prob(parent, bad_actions)[0].item()
    controller.update([bad])
    assert controller.log_prob(parent, bad_actions)[0].item() < middle
    assert controller.updates == 3


def test_reward_is_tan_of_the_accuracy():
    controller = MutationController(TINY, fitness_scale=100)
    assert controller.reward(50.0) == pytest.approx(1.0)
    assert controller.reward(90.0) == pytest.approx(math.tan(0.45 * math.pi))
    assert controller.reward(-math.inf) == 0.0 and controller.reward(-5.0) == 0.0
    assert controller.reward(100.0) == pytest.approx(math.tan(0.999 * math.pi / 2))


def test_state_dict_survives_a_weights_only_round_trip_and_continues_identically():
    first = MutationController(nasnet.layout(3), seed=5)
    parent = nasnet.init_cell(NASNET, blocks=3)
    first.update([mutated(first, parent, 0.3), mutated(first, parent, 0.6)])
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    second = MutationController(nasnet.layout(3), seed=99)
    second.load_state_dict(torch.load(buffer, weights_only=True))
    for fitness in (0.8, 0.2, 0.5):
        a, b = mutated(first, parent, fitness), mutated(second, parent, fitness)
        assert a.mutation == b.mutation
        assert first.update([a]) == second.update([b])
    assert first.baseline == second.baseline


def test_layout_errors_say_what_is_wrong():
    with pytest.raises(ValueError, match="exactly once"):
        GenomeLayout((("a",), ("a",)), ((0,),))
    with pytest.raises(ValueError, match="earlier blocks"):
        GenomeLayout(((0, 1, 2),), ((0,),), frozenset({0}), external=2)
    with pytest.raises(ValueError, match="position 1 holds 'x'"):
        NB201_LAYOUT.check(["none", "x", "none", "none", "none", "none"])
    with pytest.raises(ValueError, match="not one of"):
        MutationController(TINY).log_prob([1, "a", 2, "b"], [[1, "a"], [2, 0]])


def test_random_layout_mutation_matches_the_benchmark_mutation_structure():
    for _ in range(50):
        parent = nb201.init_cell(NB201)
        child = mut_layout(copy.deepcopy(parent), NB201_LAYOUT)[0]
        assert len(changed(parent, child)) == 1 and set(child) <= set(nb201.OPS)


# -- parameter inheritance ----------------------------------------------------------------------

PARENT = [0, 1, "sep_conv_3x3", "identity", 2, 0, "sep_conv_5x5", "sep_conv_3x3"]
#: block 0's o1 changes operation, block 1's i2 changes input
CHILD = [0, 1, "sep_conv_7x7", "identity", 2, 1, "sep_conv_5x5", "sep_conv_3x3"]


def tiny_net(cell, seed):
    torch.manual_seed(seed)
    return nasnet.build_network(cell, (1, 8, 8), 10, channels=4, cells_per_stage=1)


def test_inheritance_copies_exactly_the_tensors_whose_name_and_shape_match():
    parent = tiny_net(PARENT, 0).state_dict()
    child = tiny_net(CHILD, 1)
    initial = copy.deepcopy(child.state_dict())
    copied = load_matching(child, parent)
    expected = sorted(name for name, tensor in initial.items()
                      if name in parent and parent[name].shape == tensor.shape)
    assert copied == expected
    now = child.state_dict()
    for name, tensor in now.items():
        assert torch.equal(tensor, parent[name] if name in copied else initial[name]), name
    new = [name for name in now if name not in copied]
    assert new and all("b0_1_sep_conv_7x7" in name for name in new)  # only the mutated op
    assert any("b1_2_sep_conv_3x3" in name for name in copied)      # a changed input keeps it


def test_new_parameters_train_at_ten_times_the_inherited_rate():
    child = tiny_net(CHILD, 1)
    copied = set(load_matching(child, tiny_net(PARENT, 0).state_dict()))
    groups = param_groups(child, copied, lr=1e-3, new_lr_factor=10)
    named = {id(p): name for name, p in child.named_parameters()}
    by_name = {group["name"]: (group["lr"], {named[id(p)] for p in group["params"]})
               for group in groups}
    assert by_name["inherited"] == (1e-3, {n for n, _ in child.named_parameters()
                                           if n in copied})
    assert by_name["new"][0] == pytest.approx(1e-2)
    assert by_name["new"][1] == {n for n, _ in child.named_parameters() if n not in copied}


def test_the_method_trains_inherited_parameters_at_a_tenth_of_its_learning_rate(digits):
    options = Options(lr=0.01)  # the paper's: 0.01 for new parameters, 0.001 for inherited ones
    evaluate = digits_evaluator(digits, **inheritance_rates(options))
    child = tiny_net(CHILD, 1)
    copied = set(load_matching(child, tiny_net(PARENT, 0).state_dict()))
    optimizer, _ = evaluate.trainer(child, copied)
    rates = {group["name"]: group["lr"] for group in optimizer.param_groups}
    assert rates == {"inherited": pytest.approx(0.001), "new": pytest.approx(0.01)}


@pytest.fixture(scope="module")
def digits():
    data = load_dataset("digits", seed=0)
    return dataclasses.replace(data, train=data.train.subset(
        stratified_subset(data.train.y, 12, seed=0)))


def digits_evaluator(data, **rates):
    rates = {"lr": 1e-3, "new_lr_factor": 10, **rates}
    return TrainEvaluator(functools.partial(nasnet.build_network, channels=4, cells_per_stage=1),
                          data, epochs=2, batch_size=60, optimizer="sgd", device="cpu", seed=0,
                          **rates)


def test_evaluator_fine_tunes_from_the_parent_file(digits, tmp_path):
    parent_file = save_weights(tmp_path / "parent.pt", tiny_net(PARENT, 0).state_dict())
    child = NASNET(CHILD)
    child.inherit_from, child.epochs = str(parent_file), 1
    result = digits_evaluator(digits)(child)
    fresh = tiny_net(CHILD, 1).state_dict()
    parent = tiny_net(PARENT, 0).state_dict()
    assert result.info["inherited"] == sum(1 for n, t in fresh.items()
                                           if n in parent and parent[n].shape == t.shape)
    assert result.info["epochs"] == 1 and result.info["reason"] is None


# -- the loop ----------------------------------------------------------------------------------

def test_random_genomes_of_a_layout_are_drawn_as_the_spaces_draw_them():
    for space, layout in (("nasnet", nasnet.layout(5)), ("nb201", NB201_LAYOUT)):
        init = nasnet.init_cell if space == "nasnet" else nb201.init_cell
        random.seed(3)
        expected = [init(list) for _ in range(20)]
        random.seed(3)
        assert [init_layout(list, layout) for _ in range(20)] == expected


def nb201_toolbox(table, controller=None):
    toolbox = base.Toolbox()
    toolbox.register("evaluate", table)
    if controller is None:
        toolbox.register("mutate", mut_layout, layout=NB201_LAYOUT)
        return toolbox
    for name in ("mutate", "update", "state_dict", "load_state_dict"):
        toolbox.register(name, getattr(controller, name))
    return toolbox


def test_the_worst_of_the_sample_dies_not_the_oldest(nb201_table):
    population = [nb201.init_cell(NB201) for _ in range(8)]
    toolbox = nb201_toolbox(nb201_table)
    population, _ = renas(population, toolbox, steps=0, sample_size=8, verbose=False)
    for _ in range(5):
        worst = min(population, key=lambda ind: ind.fitness)
        best = max(population, key=lambda ind: ind.fitness)
        before = list(population)
        population, _ = renas(population, toolbox, steps=1, sample_size=8, verbose=False)
        assert all(ind is not worst for ind in population) and len(population) == 8
        assert [ind for ind in before if ind is not worst] == population[:-1]
        assert len(changed(best, population[-1])) == 1


def test_tabular_search_with_the_controller(nb201_table):
    controller = MutationController(NB201_LAYOUT, seed=0, fitness_scale=100)
    toolbox = nb201_toolbox(nb201_table, controller)
    halloffame = tools.HallOfFame(1)
    stats = tools.Statistics(lambda ind: ind.fitness.values[0])
    stats.register("mean", np.mean)
    population = [nb201.init_cell(NB201) for _ in range(20)]
    final, logbook = renas(population, toolbox, steps=150, sample_size=5, stats=stats,
                           halloffame=halloffame, verbose=False)
    assert len(final) == 20 and controller.updates == 150
    assert logbook.select("step") == list(range(151))
    assert not any(hasattr(ind, "mutation") for ind in final)
    assert len({ind.eval_seed for ind in final}) == 20  # each evaluation its own seed
    assert logbook[-1]["mean"] > logbook[0]["mean"] + 5  # the population improves
    best = halloffame[0]
    assert NB201_REPORT in best.info  # the test accuracy is recorded, never selected on


def test_weight_files_are_pruned_to_the_living_and_follow_a_moved_directory(tmp_path):
    files = WeightFiles(tmp_path / "a")
    population = [NASNET(PARENT) for _ in range(3)]
    for number, individual in enumerate(population):
        files.attach(individual, number)
        save_weights(individual.save_to, {"w": torch.zeros(1)})
    assert sorted(p.name for p in files.prune(population[1:])) == ["000000.pt"]
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["000001.pt", "000002.pt"]
    (tmp_path / "a").rename(tmp_path / "b")
    moved = WeightFiles(tmp_path / "b")
    moved.adopt(population[1:])
    assert [Path(ind.save_to) for ind in population[1:]] == \
        [tmp_path / "b" / "000001.pt", tmp_path / "b" / "000002.pt"]
    assert all(Path(ind.save_to).exists() for ind in population[1:])


def search_digits(digits, directory, steps):
    random.seed(11)
    controller = MutationController(nasnet.layout(2), seed=2)
    toolbox = base.Toolbox()
    toolbox.register("evaluate", digits_evaluator(digits))
    for name in ("mutate", "update", "state_dict", "load_state_dict"):
        toolbox.register(name, getattr(controller, name))
    population = [nasnet.init_cell(NASNET, blocks=2) for _ in range(4)]
    final, _ = renas(population, toolbox, steps=steps, sample_size=2,
                     weights=WeightFiles(directory), verbose=False)
    return final, toolbox


def test_children_inherit_on_digits_and_the_dead_leave_no_files(digits, tmp_path):
    final, toolbox = search_digits(digits, tmp_path, steps=4)
    files = {Path(ind.save_to).name for ind in final}
    assert {p.name for p in tmp_path.iterdir()} == files  # the dead ones' are gone
    children = [ind for ind in final if int(Path(ind.save_to).stem) >= 4]
    assert children and all(ind.info["epochs"] == 1 and ind.info["inherited"] > 0
                            for ind in children if hasattr(ind, "inherit_from"))
    assert all(ind.info["epochs"] == 2 for ind in final if ind not in children)

    best, retrained = retrain_population(final, toolbox, epochs=1)
    assert best is max(retrained, key=lambda ind: ind.fitness)
    assert [list(ind) for ind in retrained] == [list(ind) for ind in final]
    assert all(ind.info["epochs"] == 1 and "inherited" not in ind.info for ind in retrained)
    assert {ind.eval_seed for ind in retrained}.isdisjoint(ind.eval_seed for ind in final)


def test_the_run_evaluator_trains_new_parameters_at_the_options_rates(tmp_path):
    """RENAS's rates go through the runner's evaluator as keywords (nothing rewritten after)."""
    from deapnas import runner
    from deapnas.methods import get_method

    method = get_method("renas")
    config, options = runner.settings(method, "tiny", lr=0.05, new_lr_factor=5.0,
                                      out=str(tmp_path / "run"))
    recipe = runner.Run(config, options, method).evaluator.recipe
    assert (recipe.lr, recipe.new_lr_factor) == (pytest.approx(0.01), 5.0)
    assert recipe.epochs == options.epochs and recipe.batch_size == options.batch_size


# -- the method, through the command line --------------------------------------------------------

TINY_RUN = ["--algorithm", "renas", "--evaluations", "12", "--population", "4",
            "--sample-size", "2", "--blocks", "2", "--channels", "4", "--epochs", "1",
            "--batch-size", "50", "--train-per-class", "10", "--checkpoint-every", "3",
            "--checkpoint-gap", "0", "--quiet"]


def interrupt_training(monkeypatch, at: int):
    """Make every TrainEvaluator raise KeyboardInterrupt at the ``at``-th training of the test
    (the renas method's evaluator adjusts the runner's, so the runner's cannot be replaced)."""
    interrupt_call(monkeypatch, TrainEvaluator, "__call__", at)


def same_runs(a: Path, b: Path) -> bool:
    """Equal histories (but for clocks) and equal picks."""
    def records(directory):
        return [{**r, "info": {k: v for k, v in r["info"].items() if k != "train_seconds"}}
                for r in without_clock(read_history(directory))]
    return records(a) == records(b) and read_json(a / BEST) == read_json(b / BEST)


def test_a_tiny_trained_search_resumes_to_the_same_result_and_trains(tmp_path, monkeypatch,
                                                                     capsys):
    assert main(["search", "--out", str(tmp_path / "straight"), *TINY_RUN]) == 0
    interrupt_training(monkeypatch, 7)  # child 7; the checkpoint is after evaluation 4
    assert main(["search", "--out", str(tmp_path / "broken"), *TINY_RUN]) == 130
    assert len(read_history(tmp_path / "broken")) == 6
    monkeypatch.undo()
    assert main(["resume", str(tmp_path / "broken"), "--quiet"]) == 0
    assert same_runs(tmp_path / "straight", tmp_path / "broken")

    history = read_history(tmp_path / "broken")
    children, retrained = history[4:8], history[8:]
    assert all(r["info"]["epochs"] == 1 and r["info"]["inherited"] > 0 for r in children
               if r["reason"] is None)
    assert all("inherited" not in r["info"] for r in history[:4] + retrained)
    best = read_json(tmp_path / "broken" / BEST)
    valid = [r for r in retrained if r["reason"] is None]
    assert best["fitness"] == max(r["fitness"][0] for r in valid)  # the retrained best
    assert len(list((tmp_path / "broken" / "weights").glob("*.pt"))) == 4  # the population's
    capsys.readouterr()

    assert main(["show", str(tmp_path / "broken")]) == 0
    shown = capsys.readouterr().out
    assert "renas on the nasnet space" in shown and "best.png" in shown
    assert main(["train", str(tmp_path / "broken"), "--epochs", "1"]) == 0
    trained = read_json(tmp_path / "broken" / "train.json")
    assert 0 <= trained["test_accuracy"] <= 1 and trained["epochs"] == 1
    # the final network of the tiny preset (the paper's N = 6, F = 32 scaled down), not the
    # search's cells; deapnas.load_model rebuilds it
    assert trained["network"] == {"channels": 8, "cells_per_stage": 2, "stem_multiplier": 3,
                                  "auxiliary": True, "dropout": 0.5}
    net = deapnas.load_model(tmp_path / "broken")  # rebuilt as trained, auxiliary head included
    assert trained["params"] > best["params"] and trained["params"] == sum(
        p.numel() for name, p in net.named_parameters() if not name.startswith("auxiliary."))


def table_search(csv, out, *extra):
    return main(["search", "--algorithm", "renas", "--space", "nb201", "--dataset", "nb201",
                 "--table", str(csv), "--metric", NB201_METRIC, "--report", NB201_REPORT,
                 "--evaluations", "60", "--checkpoint-gap", "0", "--out", str(out), "--quiet",
                 *extra])


def test_a_tabular_search_resumes_with_its_controller(nb201_csv, tmp_path, monkeypatch):
    assert table_search(nb201_csv, tmp_path / "straight") == 0
    restore = interrupt_evaluation(monkeypatch, 33)
    assert table_search(nb201_csv, tmp_path / "broken") == 130
    operators = read_json(tmp_path / "broken" / CHECKPOINT)["state"]["operators"]
    assert "encoder.weight_ih_l0" in operators["net"] and operators["updates"] > 0
    restore()
    assert main(["resume", str(tmp_path / "broken"), "--quiet"]) == 0
    assert same_runs(tmp_path / "straight", tmp_path / "broken")
    history = read_history(tmp_path / "broken")
    best = read_json(tmp_path / "broken" / BEST)
    assert len(history) == 60 and not (tmp_path / "broken" / "weights").exists()
    assert best["fitness"] == max(r["fitness"][0] for r in history)
    assert NB201_REPORT in best["report"]


@pytest.mark.parametrize("argv, message", [
    (["--evaluations", "9", "--population", "5"], "at least 10: the first population and "
                                                  "its final retraining"),
    (["--evaluations", "20", "--sample-size", "6", "--population", "5"], "--sample-size"),
    (["--space", "macro"], "renas searches nasnet or nb201"),
])
def test_settings_that_cannot_work_are_refused_before_anything_is_written(tmp_path, capsys,
                                                                         argv, message):
    out = tmp_path / "run"
    assert main(["search", "--algorithm", "renas", "--out", str(out), *argv]) == 2
    assert message in capsys.readouterr().err and not out.exists()


def test_the_paper_preset_is_the_papers_search_and_final_network():
    options = Options()
    assert (options.population, options.blocks, options.channels, options.cells, options.lr,
            options.new_lr_factor, options.finetune_epochs) == (20, 5, 24, 2, 0.01, 10.0, 1)
    final = final_evaluator(options, load_dataset("digits", seed=0), device="cpu")
    assert final.build.keywords == {"channels": 32, "cells_per_stage": 6,  # N = 6, F = 32
                                    "stem_multiplier": 3,  # NASNet's stem of 3F
                                    "auxiliary": True, "dropout": 0.5}
    recipe = final.recipe
    assert (recipe.epochs, recipe.lr, recipe.batch_size, recipe.momentum, recipe.weight_decay,
            recipe.auxiliary_weight, recipe.drop_path) == (630, 0.05, 128, 0.9, 3e-4, 0.4, 0.5)
    assert recipe.augment == Augment(crop_padding=4, flip=True, cutout=16)


def test_the_controller_drives_another_evolution_loop(nb201_table):
    """Registered on a toolbox, the controller learns inside deapnas's aging evolution too:
    the loop's ``evaluate_invalid`` hands it every evaluated child through ``update``."""
    toolbox = base.Toolbox()
    toolbox.register("evaluate", nb201_table)
    toolbox.register("select", sel_best_of_sample, sample_size=3)
    controller = register_mutation(toolbox, NB201_LAYOUT, Options(), fitness_scale=100)
    before = copy.deepcopy(controller.state_dict())
    population = [nb201.init_cell(NB201) for _ in range(10)]
    population, logbook = regularized_evolution(population, toolbox, cycles=15, verbose=False)
    assert controller.updates == 15 and logbook[-1]["cycle"] == 15
    assert all(ind.fitness.valid and not hasattr(ind, "mutation") for ind in population)
    after = controller.state_dict()
    assert any(not torch.equal(before["net"][name], tensor)
               for name, tensor in after["net"].items())  # REINFORCE moved the weights


# -- issue 18: paired variants, diversity, the search's augmentation, the stem --------------------

def test_controller_and_random_mutation_start_from_the_same_population(nb201_csv, tmp_path):
    """The controller draws its seed from the run's stream; the first population has a stream
    of its own, so the two variants of one seed are paired."""
    for variant in ("controller", "random"):
        assert table_search(nb201_csv, tmp_path / variant, "--evaluations", "8",
                            "--mutation", variant, "--seed", "5") == 0
    first = {variant: [r["genome"] for r in read_history(tmp_path / variant)[:5]]  # P = 5
             for variant in ("controller", "random")}
    assert first["controller"] == first["random"]
    assert len({json.dumps(genome) for genome in first["random"]}) > 1  # drawn, not copied


def test_the_logbook_counts_the_distinct_architectures_of_the_population(nb201_table,
                                                                         nb201_csv, tmp_path):
    population = [nb201.init_cell(NB201) for _ in range(6)]
    population[1][:] = population[0]  # one architecture twice
    final, logbook = renas(population, nb201_toolbox(nb201_table), steps=20, sample_size=3,
                           verbose=False, key=nb201.SPACE.key)
    assert logbook[0]["distinct"] == len({nb201.SPACE.key(ind) for ind in population}) <= 5
    assert logbook[-1]["distinct"] == distinct(final, nb201.SPACE.key)
    assert all(1 <= record["distinct"] <= 6 for record in logbook)

    assert table_search(nb201_csv, tmp_path / "run", "--evaluations", "12") == 0
    rows = (tmp_path / "run" / LOGBOOK).read_text().splitlines()
    assert "distinct" in rows[0].split(",") and len(rows) == 1 + 1 + 7  # header, P, children


def run_evaluator(tmp_path, preset, **given):
    from deapnas import runner
    from deapnas.methods import get_method

    method = get_method("renas")
    config, options = runner.settings(method, preset, out=str(tmp_path / "run"), **given)
    return runner.Run(config, options, method).evaluator


def test_the_paper_preset_trains_the_search_on_crops_and_flips(tmp_path):
    """§5.1.1: crops of the image padded by 4 and horizontal flips during the search too (no
    Cutout), and --no-search-augment turns them off."""
    paper = run_evaluator(tmp_path, "paper", dataset="digits")
    assert paper.recipe.augment == Augment(crop_padding=4, flip=True)
    off = run_evaluator(tmp_path, "paper", dataset="digits", search_augment=False)
    assert off.recipe.augment is None


def test_the_networks_have_nasnets_stem_of_three_times_f(tmp_path):
    search = run_evaluator(tmp_path, "paper", dataset="digits")
    net = search.build(NASNET(PARENT), (1, 8, 8), 10)
    assert net.stem[0].out_channels == 3 * 24
    final = final_evaluator(Options(), load_dataset("digits", seed=0), device="cpu")
    assert final.build(NASNET(PARENT), (1, 8, 8), 10).stem[0].out_channels == 3 * 32
    narrow = run_evaluator(tmp_path, "paper", dataset="digits", stem_multiplier=1)
    assert narrow.build(NASNET(PARENT), (1, 8, 8), 10).stem[0].out_channels == 24
