"""MiniGen: the encoding, its operators, the mini dataset, the selections and the loop, trained
for real on small stratified subsets of scikit-learn's digits."""
import copy
import hashlib
import json
import math
import pickle
import random
from collections import Counter
from dataclasses import fields
from statistics import fmean
from types import SimpleNamespace

import networkx as nx
import pytest
import torch
from deap import base, creator, tools

from deapnas import data as data_module
from deapnas.cli import main
from deapnas.data import DatasetError, load_dataset, mini_dataset
from deapnas.fitness import Evaluation, TrainEvaluator
from deapnas.graph import architecture_key
from deapnas.methods.minigen import (BIRTH, METHOD, MINI_FILE, PAPER_GENERATIONS,
                                     MiniGenState, Options, SmallModelEvaluator, assign_scores,
                                     ea_minigen, generation_decay_score, make_toolbox,
                                     pick_network, register_operators, sel_softmax,
                                     sel_top_score, softmax_weights)
from deapnas.networks import count_parameters
from deapnas.ops import OPS
from deapnas.journal import Journal
from deapnas.rundir import BEST, read_history
from deapnas.runner import settings
from deapnas.spaces import get_space, minigen
from deapnas.spaces.minigen import (CHANNELS, IDENTITY, INPUT_CONVOLUTIONS, INPUT_OPERATIONS,
                                    OPERATIONS, MiniGenGenome)

from conftest import interrupt_evaluation, without_clock

creator.create("MiniGenFitness", base.Fitness, weights=(1.0,))
creator.create("MiniGenIndividual", MiniGenGenome, fitness=creator.MiniGenFitness)

#: The network the paper reports as its best (section IV-E), input cell written as '.'.
PAPER_BEST = [['.', 1, ['identity', '3*3 conv', '3*3 conv']],
              [256, 1, ['3*3 avgpool', '3*3 maxpool', '3*3 dil conv', '3*3 dil conv']],
              [40, 1, ['3*3 avgpool', '3*3 dil conv', '5*5 dconv']],
              [128, 1, ['5*5 dconv', '3*3 conv']],
              [64, 1, ['1*7-7*1 conv', '3*3 avgpool', '3*3 avgpool']]]
TINY_CHANNELS = (4, 8)


pytestmark = pytest.mark.usefixtures("seeded", "one_thread")  # a fixed seed, one thread


@pytest.fixture(scope="module")
def evaluator(digits):
    """Real, deterministic training on 5 digits per class, scored on 3 other ones per class
    (too little to learn much: these tests check the mechanics)."""
    return TrainEvaluator(minigen.build_network, mini_dataset(digits, 5, 3), epochs=1,
                          batch_size=50, device="cpu", deterministic=True,
                          cublas_workspace=":16:8")


def tiny_toolbox(evaluator, **options) -> base.Toolbox:
    return make_toolbox(evaluator, channels=TINY_CHANNELS, **options)


def check_rules(genome, channels=CHANNELS):
    """The paper's rules for a random or varied encoding (beyond structural validity)."""
    minigen.validate(genome)
    assert len(genome) == 5
    first = genome[0][2]
    assert first[0] in INPUT_OPERATIONS and len(first) == (3 if first[0] == IDENTITY else 2)
    for width, blocks, operations in genome[1:]:
        assert width in channels and blocks == 1 and 2 <= len(operations) <= 4
        assert set(operations) <= set(OPERATIONS)


# -- the encoding ------------------------------------------------------------------------------

def test_random_encodings_follow_the_paper_rules():
    genomes = [minigen.init_genome() for _ in range(400)]
    for genome in genomes:
        check_rules(genome)
        assert type(genome) is MiniGenGenome and genome[0][:2] == [".", 1]
    firsts = Counter(g[0][2][0] for g in genomes)
    assert set(firsts) == set(INPUT_OPERATIONS)
    assert 50 < firsts[IDENTITY] < 115  # one in five of 400
    lengths = Counter(len(cell[2]) for g in genomes for cell in g[1:])
    assert set(lengths) == {2, 3, 4} and min(lengths.values()) > 450  # 1600 cells, 1/3 each
    assert {cell[0] for g in genomes for cell in g[1:]} == set(CHANNELS)


def test_init_genome_scales_blocks_and_takes_a_container():
    genome = minigen.init_genome(creator.MiniGenIndividual, blocks=(1, 1, 2, 2, 4, 1))
    assert isinstance(genome, creator.MiniGenIndividual) and not genome.fitness.valid
    assert [cell[1] for cell in genome] == [1, 1, 2, 2, 4, 1]
    with pytest.raises(ValueError, match="input cell"):
        minigen.init_genome(blocks=(2, 1, 1))


def test_encodings_stay_valid_under_thousands_of_variations():
    population = [minigen.init_genome(creator.MiniGenIndividual) for _ in range(10)]
    input_lengths = Counter()
    for _ in range(3000):
        i, j = random.sample(range(len(population)), 2)
        a, b = copy.deepcopy(population[i]), copy.deepcopy(population[j])
        if random.random() < 0.5:
            a, b = minigen.mate(a, b)
        a, = minigen.mutate(a)
        b, = minigen.mutate(b, p_channels=1.0, p_op=1.0, p_actions=0.5)
        population[i], population[j] = a, b
        check_rules(a)
        check_rules(b)
        input_lengths.update((len(a[0][2]), len(b[0][2])))
    # the input cell's identity comes and goes under variation: both forms keep occurring
    assert set(input_lengths) == {2, 3} and min(input_lengths.values()) > 600
    for genome in population:
        assert count_parameters(lambda: minigen.build_network(genome, (3, 32, 32), 10)) > 0


def test_mutation_and_crossover_follow_deap_contracts():
    for _ in range(50):
        a = minigen.init_genome(creator.MiniGenIndividual)
        b = minigen.init_genome(creator.MiniGenIndividual)
        a.fitness.values, b.fitness.values = (0.5,), (0.25,)
        result = minigen.mutate(a)
        assert isinstance(result, tuple) and len(result) == 1 and result[0] is a
        children = minigen.mate(a, b)
        assert len(children) == 2 and children[0] is a and children[1] is b
        assert a.fitness.values == (0.5,) and b.fitness.values == (0.25,)


def test_crossover_swaps_whole_cells_at_their_position():
    a, b = minigen.init_genome(), minigen.init_genome()
    parents = (minigen.to_json(a), minigen.to_json(b))
    swaps = 0
    for _ in range(200):
        x, y = minigen.from_json(parents[0]), minigen.from_json(parents[1])
        minigen.mate(x, y)
        for position in range(5):
            pair = (x[position], y[position])
            assert pair in ((parents[0][position], parents[1][position]),
                            (parents[1][position], parents[0][position]))
            swaps += pair[0] == parents[1][position] != parents[0][position]
    assert 350 < swaps < 650  # each cell swaps with probability 0.5 (1000 cells)


def test_mutation_levels_happen_at_their_probabilities():
    base_genome = [['.', 1, ['3*3 conv', '5*5 conv']]] + \
        [[24, 1, ['3*3 conv'] * 4] for _ in range(4)]
    width_changes = op_changes = 0
    lengths = Counter()
    draws = 2000
    for _ in range(draws):
        genome = minigen.from_json(base_genome)
        minigen.mutate(genome, p_channels=0.3, p_op=0.0, p_actions=0.0)
        width_changes += sum(cell[0] != 24 for cell in genome[1:])
        genome = minigen.from_json(base_genome)
        minigen.mutate(genome, p_channels=0.0, p_op=0.5, p_actions=0.0)
        op_changes += sum(op != '3*3 conv' for cell in genome[1:] for op in cell[2])
        assert [cell[0] for cell in genome[1:]] == [24] * 4
        genome = minigen.from_json(base_genome)
        minigen.mutate(genome, p_channels=0.0, p_op=0.0, p_actions=1.0)
        lengths.update(len(cell[2]) for cell in genome[1:])
    # a redraw picks another width with probability 5/6, another op with 8/9
    assert abs(width_changes / (4 * draws) - 0.3 * 5 / 6) < 0.02
    assert abs(op_changes / (16 * draws) - 0.5 * 8 / 9) < 0.02
    assert set(lengths) == {2, 3, 4} and all(abs(n / (4 * draws) - 1 / 3) < 0.03
                                             for n in lengths.values())


def test_input_cell_keeps_its_rule_when_its_identity_comes_or_goes():
    residual, plain = [['.', 1, [IDENTITY, '3*3 conv', '5*5 dconv']]], [['.', 1, ['5*5 conv',
                                                                                  '3*3 dconv']]]
    seen = Counter()
    for _ in range(300):
        for start in (residual, plain):
            genome = minigen.from_json(start)
            minigen.mutate(genome, p_op=1.0, p_actions=0.0)
            actions = genome[0][2]
            minigen.validate(genome)
            assert all(op in INPUT_CONVOLUTIONS for op in actions[1:])
            seen[(len(start[0][2]), len(actions))] += 1
    assert set(seen) == {(3, 3), (3, 2), (2, 3), (2, 2)}


def test_mutation_replaces_cells_so_shallow_copies_stay_intact():
    genome = minigen.init_genome()
    before = minigen.to_json(genome)
    shallow = MiniGenGenome(genome)
    for _ in range(20):
        minigen.mutate(shallow, p_channels=1.0, p_op=1.0, p_actions=1.0)
    assert minigen.to_json(genome) == before


@pytest.mark.parametrize("bad, message", [
    ([], "input cell"),
    ([['64', 1, ['3*3 conv', '3*3 conv']]], "fixed"),
    ([[0, 1, ['3*3 conv', '3*3 conv']]], "fixed"),
    ([['.', 2, ['3*3 conv', '3*3 conv']]], "one block"),
    ([['.', 1, ['3*3 maxpool', '3*3 conv']]], "input cell's actions"),
    ([['.', 1, [IDENTITY, '3*3 conv']]], "input cell's actions"),
    ([['.', 1, ['3*3 conv', '3*3 conv', '3*3 conv']]], "input cell's actions"),
    (PAPER_BEST[:1] + [[0, 1, ['3*3 conv']]], "channels must be a positive int"),
    (PAPER_BEST[:1] + [[24, 0, ['3*3 conv']]], "blocks must be a positive int"),
    (PAPER_BEST[:1] + [[24, 1, ['7*7 conv']]], "unknown operations"),
    (PAPER_BEST[:1] + [[24, 1, []]], "non-empty"),
    (PAPER_BEST[:1] + [[24, 1]], "must be \\[channels, blocks, actions\\]"),
])
def test_invalid_encodings_are_explained(bad, message):
    with pytest.raises(ValueError, match=message):
        minigen.from_json(bad)


def test_json_pickle_and_printing_keep_the_papers_notation():
    genome = minigen.from_json(PAPER_BEST, creator.MiniGenIndividual)
    assert repr(genome).startswith("[['.', 1, ['identity', '3*3 conv', '3*3 conv']], [256, 1,")
    data = json.loads(json.dumps(minigen.to_json(genome)))
    assert data == PAPER_BEST
    back = minigen.from_json(data)
    assert back == genome and minigen.key(back) == minigen.key(genome)
    assert pickle.loads(pickle.dumps(genome)) == genome
    individual = minigen.from_json(data, minigen.SPACE.individual())
    individual.fitness.values = (0.4,)
    clone = pickle.loads(pickle.dumps(individual))
    assert type(clone) is type(individual) and clone.fitness.values == (0.4,)
    assert get_space("minigen") is minigen.SPACE and minigen.SPACE.mate is minigen.mate


def test_keys_and_network_seeds_identify_encodings():
    a, b = minigen.from_json(PAPER_BEST), minigen.from_json(PAPER_BEST)
    assert minigen.key(a) == minigen.key(b)
    assert minigen.network_seed(minigen.key(a)) == minigen.network_seed(minigen.key(b))
    b[3][0] = 24
    assert minigen.key(a) != minigen.key(b)
    seeds = {minigen.network_seed(minigen.key(minigen.init_genome())) for _ in range(200)}
    assert len(seeds) > 190 and all(0 <= s < 2**31 for s in seeds)


# -- encoding -> graph -> network ----------------------------------------------------------------

def test_operations_are_registered_under_the_mg_prefix():
    assert {"mg_conv", "mg_separable", "mg_factorized", "mg_pool", "mg_identity"} <= set(OPS)
    assert OPS["mg_pool"].output_shape((7, 9, 9), kind="max") == (7, 9, 9)
    assert OPS["mg_identity"].output_shape((7, 9, 9), channels=3) == (3, 9, 9)
    with pytest.raises(ValueError, match="pool kind"):
        minigen.pool_bn_relu(4, "min")


def test_the_papers_best_network_keeps_its_size_and_returns_logits():
    genome = minigen.from_json(PAPER_BEST)
    graph = minigen.to_graph(genome)
    assert graph.graph["inputs"] == ["input"]
    # the leading identity makes the input cell residual: a 1x1 projection 3 -> 64 beside it
    assert set(graph.predecessors("c0.b0.sum")) == {"c0.b0.1", "c0.b0.skip"}
    assert graph.nodes["c0.b0.skip"]["args"] == {"channels": 64}
    assert [graph.nodes[f"c0.b0.{i}"]["args"]["channels"] for i in (0, 1)] == [32, 64]
    net = minigen.build_network(genome, (3, 32, 32), 10)
    assert net.body.output_shape == (64, 32, 32)
    assert all(shape[1:] == (32, 32) for shape in net.body.shapes.values())
    out = net(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10) and not torch.allclose(out.sum(1), torch.ones(2))  # logits
    params = sum(p.numel() for p in net.parameters())
    assert params == count_parameters(lambda: minigen.build_network(genome, (3, 32, 32), 10))
    # the two full 3x3 dilated convolutions at 256 channels alone hold 2 * 256 * 256 * 9
    assert params > 2 * 256 * 256 * 9


def test_cells_change_width_at_entry_and_pools_keep_it():
    genome = minigen.from_json([['.', 1, ['3*3 conv', '3*3 dconv']],
                                [24, 1, ['3*3 maxpool', '3*3 avgpool']],
                                [24, 1, [IDENTITY, '3*3 maxpool']]])
    net = minigen.build_network(genome, (1, 28, 28), 10)
    shapes = net.body.shapes
    assert shapes["c1.in"] == (24, 28, 28) and shapes["c1.b0.1"] == (24, 28, 28)
    assert isinstance(net.body.ops["c2_in"], torch.nn.Identity)  # same width: no projection
    assert set(net.body.graph.predecessors("c2.b0.sum")) == {"c2.b0.0", "c2.b0.skip"}
    assert net(torch.randn(3, 1, 28, 28)).shape == (3, 10)


def test_blocks_repeat_the_action_list():
    single = minigen.from_json(PAPER_BEST)
    scaled = minigen.from_json([PAPER_BEST[0], [256, 1, PAPER_BEST[1][2]],
                                [40, 2, PAPER_BEST[2][2]], [128, 2, PAPER_BEST[3][2]],
                                [64, 4, PAPER_BEST[4][2]]])
    graph = minigen.to_graph(scaled)
    assert {n.split(".")[1] for n in graph if n.startswith("c4.")} == {"in", "b0", "b1", "b2",
                                                                         "b3"}
    small, large = (count_parameters(lambda g=g: minigen.build_network(g, (3, 32, 32), 10))
                    for g in (single, scaled))
    assert large > small
    assert architecture_key(graph) != architecture_key(minigen.to_graph(single))
    assert minigen.build_network(scaled, (3, 8, 8), 10)(torch.randn(1, 3, 8, 8)).shape == (1, 10)


def test_cells_are_drawn_apart_and_together_make_the_network():
    genome = minigen.from_json(PAPER_BEST[:2] + [[40, 2, PAPER_BEST[2][2]]] + PAPER_BEST[3:])
    cells = minigen.SPACE.graphs(genome)
    assert list(cells) == ["input", "#1 256-channel", "#2 40-channel 2-block", "#3 128-channel",
                           "#4 64-channel"]
    whole = minigen.to_graph(genome)
    inner = [set(graph) - {"input", "output"} for graph in cells.values()]
    assert set().union(*inner) == set(whole) - {"input"} and sum(map(len, inner)) == len(whole) - 1
    residual = cells["input"]
    assert set(residual.successors("input")) == {"c0.b0.0", "c0.b0.skip"}
    assert list(residual.predecessors("output")) == ["c0.b0.sum"]
    assert residual.nodes["c0.b0.skip"]["label"] == "1x1 conv ->64"
    assert cells["#1 256-channel"].nodes["c1.in"]["label"] == "1x1 conv 64->256"
    for graph in cells.values():
        assert nx.is_directed_acyclic_graph(graph)
        assert nx.has_path(graph, "input", graph.graph["output"])


# -- the mini dataset ----------------------------------------------------------------------------

def test_mini_dataset_is_stratified_disjoint_and_saved_safely(digits, tmp_path):
    path = tmp_path / "mini.pt"
    mini = mini_dataset(digits, 12, 4, seed=3, path=path)
    assert torch.bincount(mini.train.y).tolist() == [12] * 10
    assert torch.bincount(mini.val.y).tolist() == [4] * 10
    assert mini.test is digits.test and mini.input_shape == digits.input_shape
    saved = torch.load(path, weights_only=True)
    train, score = set(saved["train_index"].tolist()), set(saved["score_index"].tolist())
    assert len(train) == 120 and len(score) == 40 and not train & score
    assert torch.equal(digits.train.x[saved["score_index"]], mini.val.x)
    # a run with another seed reads the same images back
    again = mini_dataset(digits, 12, 4, seed=99, path=path)
    assert torch.equal(again.train.x, mini.train.x) and torch.equal(again.val.y, mini.val.y)
    other = mini_dataset(digits, 12, 4, seed=99)
    assert not torch.equal(other.train.x, mini.train.x)


def test_mini_dataset_refuses_a_file_drawn_otherwise(digits, tmp_path):
    path = tmp_path / "mini.pt"
    mini_dataset(digits, 12, 4, path=path)
    with pytest.raises(DatasetError, match="train_per_class"):
        mini_dataset(digits, 10, 4, path=path)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a tensor file")
    with pytest.raises(DatasetError, match="delete it"):
        mini_dataset(digits, 12, 4, path=junk)
    with pytest.raises(DatasetError, match="score_from"):
        mini_dataset(digits, 12, 4, score_from="val")
    with pytest.raises(DatasetError, match="fewer"):
        mini_dataset(digits, 500, 4)


def test_mini_dataset_scores_on_test_images_only_when_asked(digits, tmp_path):
    mini = mini_dataset(digits, 12, 4, score_from="test", path=tmp_path / "mini.pt")
    assert torch.bincount(mini.val.y).tolist() == [4] * 10
    assert len(mini.test) == len(digits.test) - 40
    test_rows = {tuple(row.tolist()) for row in mini.test.x.flatten(1)}
    assert not any(tuple(row.tolist()) in test_rows for row in mini.val.x.flatten(1))
    reloaded = mini_dataset(digits, 12, 4, score_from="test", path=tmp_path / "mini.pt")
    assert torch.equal(reloaded.test.y, mini.test.y)


# -- score, selections, small models ----------------------------------------------------------

def test_generation_decay_score_arithmetic():
    # the paper's example: born in generation 3, decay 0.05 in generation 8
    assert generation_decay_score([0.4, 0.5], birth=3, generation=8) == pytest.approx(0.40)
    assert generation_decay_score([0.3], birth=2, generation=2) == pytest.approx(0.3)
    assert generation_decay_score([0.3], 4, 0, decay=0.1) == pytest.approx(-0.1)  # |0 - 4|
    assert generation_decay_score([], 0, 5) == -math.inf
    people = [SimpleNamespace(accuracies=[0.5], birth=0), SimpleNamespace(accuracies=[0.46],
                                                                           birth=4)]
    assign_scores(people, generation=5)
    assert [p.score for p in people] == [pytest.approx(0.45), pytest.approx(0.45)]
    assert sel_top_score(people, 1, score=lambda p: p.accuracies[0])[0] is people[0]


def test_softmax_selection_follows_the_softmax():
    people = [SimpleNamespace(score=s) for s in (0.0, 1.0, 2.0, -math.inf)]
    draws = 20000
    counts = Counter(id(p) for p in sel_softmax(people, draws))
    expected = [math.exp(s) / (1 + math.e + math.e**2) for s in (0, 1, 2)]
    for person, p in zip(people, expected):
        assert abs(counts[id(person)] / draws - p) < 0.015
    assert counts[id(people[3])] == 0  # a network that never scored is never a parent
    hot = Counter(id(p) for p in sel_softmax(people, draws, temperature=100.0))
    assert all(abs(hot[id(p)] / draws - 1 / 3) < 0.02 for p in people[:3])
    assert softmax_weights([-math.inf, -math.inf]) == [1.0, 1.0]
    with pytest.raises(ValueError, match="temperature"):
        sel_softmax(people, 1, temperature=0)


def test_softmax_selection_without_replacement_is_distinct():
    people = [SimpleNamespace(score=s) for s in (0.0, 3.0, 0.0)]
    firsts = Counter()
    for _ in range(3000):
        pair = sel_softmax(people, 2, replace=False)
        assert pair[0] is not pair[1]
        firsts[id(pair[0])] += 1
    assert firsts[id(people[1])] / 3000 == pytest.approx(math.exp(3) / (2 + math.exp(3)),
                                                         abs=0.03)
    with pytest.raises(ValueError, match="distinct"):
        sel_softmax(people, 4, replace=False)


def test_small_model_evaluator_reports_the_ratio_beside_any_objectives(evaluator):
    genome = minigen.init_genome(minigen.SPACE.individual(), channels=TINY_CHANNELS)
    single = SmallModelEvaluator(evaluator)(genome)
    params = single.info["params"]
    assert len(single) == 1 and single.info["acc_to_param"] == pytest.approx(
        single[0] / (params / 1e6))
    pair = minigen.from_json(minigen.to_json(genome), minigen.SPACE.individual((1.0, -1.0)))
    double = SmallModelEvaluator(two_objectives(evaluator))(pair)
    assert tuple(double) == (single[0], params) and double.info["acc_to_param"] > 0
    capped = TrainEvaluator(minigen.build_network, evaluator.data, device="cpu", max_params=10,
                            objectives=("accuracy", "params"))
    failed = SmallModelEvaluator(capped)(pair)
    assert tuple(failed) == (-math.inf, math.inf) and failed.info["acc_to_param"] is None
    assert SmallModelEvaluator(evaluator).for_device("cpu").evaluate.device.type == "cpu"
    with pytest.raises(ValueError, match="info\\['params'\\]"):
        SmallModelEvaluator(lambda ind: (0.5,))(genome)


def two_objectives(evaluator: TrainEvaluator) -> TrainEvaluator:
    """The same training, returning (accuracy, parameters)."""
    return TrainEvaluator(minigen.build_network, evaluator.data, epochs=evaluator.epochs,
                          batch_size=evaluator.recipe.batch_size, device="cpu",
                          deterministic=True, objectives=("accuracy", "params"))


# -- determinism and the loop --------------------------------------------------------------------

def test_the_same_encoding_scores_identically_twice(evaluator):
    toolbox = tiny_toolbox(evaluator)
    genome = toolbox.individual()
    twin = minigen.from_json(minigen.to_json(genome), minigen.SPACE.individual())
    population = [genome, twin, toolbox.individual(), toolbox.individual()]
    ea_minigen(population, toolbox, 0, keep=2, reuse_scores=False, verbose=False)
    assert genome.eval_seed == twin.eval_seed == minigen.network_seed(minigen.key(genome))
    assert genome.fitness.values == twin.fitness.values  # trained twice, identical
    assert toolbox.evaluate(genome) == toolbox.evaluate(twin) == genome.fitness.values


def test_survivors_are_looked_up_exactly_as_retraining_would_score_them(evaluator):
    runs = {}
    for reuse in (False, True):
        random.seed(7)
        toolbox = tiny_toolbox(evaluator)
        population, logbook = ea_minigen(toolbox.population(n=3), toolbox, 2, keep=2,
                                         reuse_scores=reuse, verbose=False)
        runs[reuse] = (population, logbook)
    retrained, reused = runs[False][1], runs[True][1]
    assert [r["nevals"] for r in retrained] == [3, 3, 3]
    assert [r["nreused"] for r in reused][1:] >= [2, 2]
    assert sum(r["nevals"] for r in reused) + sum(r["nreused"] for r in reused) == 9
    for old, new in zip(*(runs[reuse][0] for reuse in (False, True))):
        assert minigen.to_json(old) == minigen.to_json(new)
        assert old.accuracies == new.accuracies  # retraining repeated the recorded scores
        assert len(set(old.accuracies)) == 1
    assert all(len(ind.accuracies) == 3 - ind.birth for ind in runs[True][0])


def test_end_to_end_tiny_search_on_digits(evaluator):
    toolbox = tiny_toolbox(evaluator)
    stats = tools.Statistics(lambda ind: ind.fitness.values[0])
    stats.register("max", max)
    hof = tools.HallOfFame(3)
    population, logbook = ea_minigen(toolbox.population(n=5), toolbox, 3, keep=2, stats=stats,
                                     halloffame=hof, verbose=False)
    assert len(population) == 5 and len(logbook) == 4
    assert logbook.select("round_gen") == [0, 1, 2, 3] and logbook[-1]["restarts"] == 0
    for record in logbook:
        assert record["nevals"] + record["nreused"] == 5
    assert sorted(ind.birth for ind in population)[-3:] == [3, 3, 3]  # the last children
    for ind in population:
        assert 0 <= ind.fitness.values[0] <= 1 and ind.accuracies[-1] == ind.fitness.values[0]
        assert len(ind.accuracies) == 4 - ind.birth
        assert ind.info["params"] > 0 and ind.info["acc_to_param"] > 0
        check_rules(ind, TINY_CHANNELS)
    assert len(hof) == 3 and hof[0].fitness.values[0] == max(logbook.select("max"))


@pytest.mark.slow
def test_a_tiny_search_on_mnist_finds_networks_that_learn(mnist_dir):
    data = mini_dataset(load_dataset("idx", mnist_dir), 20, 10)
    evaluator = TrainEvaluator(minigen.build_network, data, epochs=6, batch_size=16,
                               device="cpu", deterministic=True)
    toolbox = make_toolbox(evaluator, channels=(8, 16, 24, 32))
    hof = tools.HallOfFame(1)
    ea_minigen(toolbox.population(n=4), toolbox, 1, keep=2, halloffame=hof, verbose=False)
    assert hof[0].fitness.values[0] > 0.5  # ten classes: chance is 0.1


def search_with_journal(directory, evaluator, **loop) -> tuple[list, tools.Logbook]:
    """A tiny search journaled in ``directory`` with a checkpoint at every generation."""
    toolbox = tiny_toolbox(evaluator)
    with Journal(directory, minigen.SPACE, checkpoint_every=1) as journal:
        journal.wrap(toolbox)
        return ea_minigen(toolbox.population(n=5), toolbox, verbose=False, journal=journal,
                          **loop)


def last_checkpoint(directory) -> dict:
    with Journal(directory, minigen.SPACE) as journal:
        return journal.restore()


def test_restart_keeps_the_best_when_the_round_beat_the_threshold(evaluator, tmp_path):
    population, logbook = search_with_journal(tmp_path, evaluator, generations=2, keep=2,
                                              restart_period=1, restart_threshold=-1.0)
    assert logbook.select("round_gen") == [0, 1, 0] and logbook[-1]["restarts"] == 1
    before = last_checkpoint(tmp_path)["population"]  # the round's last generation
    assign_scores(before, 1)
    kept = {minigen.key(ind) for ind in sel_top_score(before, 2)}
    assert all(ind.birth == 0 for ind in population)
    survivors = [ind for ind in population if len(ind.accuracies) > 1]
    assert {minigen.key(ind) for ind in survivors} == kept and len(survivors) == 2


def test_restart_draws_a_new_population_when_the_round_stayed_below(evaluator, tmp_path):
    population, logbook = search_with_journal(tmp_path, evaluator, generations=2, keep=2,
                                              restart_period=1, restart_threshold=1.0)
    assert logbook.select("round_gen") == [0, 1, 0] and logbook[-1]["restarts"] == 1
    before = {minigen.key(ind) for ind in last_checkpoint(tmp_path)["population"]}
    assert all(ind.birth == 0 and len(ind.accuracies) == 1 for ind in population)
    assert not before & {minigen.key(ind) for ind in population}


def test_search_stops_when_enough_networks_win(evaluator):
    toolbox = tiny_toolbox(evaluator)
    winners = []
    population, logbook = ea_minigen(toolbox.population(n=4), toolbox, None, keep=2,
                                     win_threshold=-1.0, wins_needed=3, winners=winners,
                                     verbose=False)
    assert len(logbook) == 1 and logbook[0]["nwinners"] == 4 and len(winners) == 4
    assert {minigen.key(w) for w in winners} == {minigen.key(ind) for ind in population}
    with pytest.raises(ValueError, match="keep"):
        ea_minigen(population, toolbox, 1, keep=4)
    with pytest.raises(ValueError, match="seeding"):
        ea_minigen(population, toolbox, 1, keep=2, seeding="random")


@pytest.mark.parametrize("seeding", ["encoding", "fixed", "fresh"])
def test_seeding_modes(evaluator, seeding):
    toolbox = tiny_toolbox(evaluator)
    genome = toolbox.individual()
    population = [genome, toolbox.clone(genome), toolbox.individual()]
    _, logbook = ea_minigen(population, toolbox, 0, keep=1, seeding=seeding, verbose=False)
    seeds = [ind.eval_seed for ind in population]
    expected = {"encoding": [minigen.network_seed(minigen.key(genome))] * 2,
                "fixed": [0, 0]}.get(seeding)
    if expected is None:
        assert seeds[0] != seeds[1]
    else:
        assert seeds[:2] == expected and logbook[0]["nreused"] == 1  # the twin is looked up


def test_multi_objective_run_yields_a_pareto_front(evaluator):
    toolbox = tiny_toolbox(two_objectives(evaluator), weights=(1.0, -1.0))
    assert toolbox.select.func is tools.selNSGA2
    front = tools.ParetoFront()
    population, logbook = ea_minigen(toolbox.population(n=5), toolbox, 1, keep=2,
                                     halloffame=front, verbose=False)
    assert len(logbook) == 2 and len(front) >= 1
    for ind in population:
        assert ind.fitness.weights == (1.0, -1.0)
        assert ind.fitness.values[1] == ind.info["params"]
    for a in front:
        assert not any(b.fitness.dominates(a.fitness) for b in front)


# -- checkpoints ---------------------------------------------------------------------------------

def test_checkpoint_state_and_resume_equivalence(evaluator, tmp_path):
    def run(directory, budget=None):
        random.seed(11)
        toolbox = tiny_toolbox(evaluator)
        with Journal(directory, minigen.SPACE, checkpoint_every=1, budget=budget) as journal:
            journal.wrap(toolbox)
            return ea_minigen(toolbox.population(n=3), toolbox, 3, keep=2, restart_period=2,
                              restart_threshold=-1.0, verbose=False, journal=journal)

    whole, whole_log = run(tmp_path / "straight")
    _, cut = run(tmp_path / "broken", budget=4)  # stops after generation 1
    assert len(cut) == 2
    state = last_checkpoint(tmp_path / "broken")
    assert set(state) == {f.name for f in fields(MiniGenState)} | {"halloffame"}
    assert state["generation"] == 1 and state["restarts"] == 0
    assert len(state["record"]) == sum(cut.select("nevals"))  # every training, by key and seed
    assert all(isinstance(ind.birth, int) and isinstance(ind.accuracies, list)
               for ind in state["population"])
    resumed, resumed_log = run(tmp_path / "broken")
    assert [minigen.to_json(i) for i in resumed] == [minigen.to_json(i) for i in whole]
    assert [i.fitness.values for i in resumed] == [i.fitness.values for i in whole]
    assert [(i.birth, i.accuracies) for i in resumed] == [(i.birth, i.accuracies) for i in whole]
    assert list(resumed_log) == list(whole_log) and resumed_log[-1]["restarts"] == 1
    assert untimed_history(tmp_path / "broken") == untimed_history(tmp_path / "straight")


def untimed_history(directory) -> list[dict]:
    """The run's evaluation records without what the clock measured."""
    return [{**record, "info": {k: v for k, v in record["info"].items() if k != "train_seconds"}}
            for record in without_clock(read_history(directory))]


# -- the method through the command line ---------------------------------------------------------

#: A search small enough for a test: 4 networks, 2 kept, a restart after 2 generations.
CLI_SEARCH = ["--algorithm", "minigen", "--quiet", "--population", "4", "--keep", "2",
              "--epochs", "1", "--batch-size", "50", "--train-per-class", "5",
              "--score-per-class", "3", "--widths", "4,8", "--restart-period", "2",
              "--restart-threshold", "0", "--evaluations", "12", "--checkpoint-every", "2",
              "--checkpoint-gap", "0", "--final-epochs", "1"]


def cli_search(out, *extra) -> int:
    return main(["search", "--out", str(out), *CLI_SEARCH, *extra])


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """An uninterrupted tiny search through the command line."""
    out = tmp_path_factory.mktemp("minigen") / "straight"
    assert cli_search(out) == 0
    return out


def test_cli_search_resumes_to_the_uninterrupted_result(straight, tmp_path, monkeypatch,
                                                         capsys):
    restore = interrupt_evaluation(monkeypatch, 10)  # inside the restart's generation
    assert cli_search(tmp_path) == 130
    assert "deapnas resume" in capsys.readouterr().err
    assert len(read_history(tmp_path)) == 9
    restore()
    assert main(["resume", str(tmp_path), "--quiet"]) == 0
    assert untimed_history(tmp_path) == untimed_history(straight)
    best = [json.loads((d / BEST).read_text()) for d in (straight, tmp_path)]
    assert best[0] == best[1]
    logbook = (straight / "logbook.csv").read_text().splitlines()
    assert logbook[0].startswith("gen,round_gen,restarts,nevals,nreused,nwinners")
    assert len(logbook) - 1 == 5 and logbook[-1].split(",")[2] == "1"  # one restart
    assert sum(int(row.split(",")[4]) for row in logbook[2:]) > 0  # survivors looked up


def test_cli_reports_the_pick_with_its_parameters_and_ratio(straight, capsys):
    best = json.loads((straight / BEST).read_text())
    history = read_history(straight)
    assert best["method"] == "minigen" and best["evaluations"] == len(history) == 12
    record = next(r for r in history if r["key"] == best["key"])
    assert best["params"] == record["info"]["params"]
    ratio = best["report"]["accuracy per million parameters"]
    assert ratio == pytest.approx(best["fitness"] / (best["params"] / 1e6))
    assert record["info"]["acc_to_param"] == pytest.approx(record["fitness"][0]
                                                           / (best["params"] / 1e6))
    assert main(["show", str(straight)]) == 0
    out = capsys.readouterr().out
    assert f"{best['params']:,} parameters" in out and "accuracy per million parameters" in out
    assert (straight / "best.png").stat().st_size > 0


def test_cli_saves_the_mini_dataset_and_another_run_reuses_it(straight, tmp_path, capsys):
    saved = torch.load(straight / MINI_FILE, weights_only=True)
    assert torch.bincount(saved["train_y"]).tolist() == [5] * 10
    assert torch.bincount(saved["score_y"]).tolist() == [3] * 10
    assert cli_search(tmp_path / "other", "--seed", "1", "--evaluations", "4",
                      "--mini-dataset", str(straight / MINI_FILE)) == 0
    copied = torch.load(tmp_path / "other" / MINI_FILE, weights_only=True)
    assert torch.equal(copied["train_x"], saved["train_x"])
    assert cli_search(tmp_path / "missing", "--mini-dataset", str(tmp_path / "nothing.pt")) == 2
    assert "--mini-dataset" in capsys.readouterr().err


def test_cli_trains_the_pick(straight, capsys):
    assert main(["train", str(straight)]) == 0  # --final-epochs 1
    assert "test accuracy" in capsys.readouterr().out
    result = json.loads((straight / "train.json").read_text())
    assert 0 <= result["test_accuracy"] <= 1 and result["epochs"] == 1
    assert result["params"] == json.loads((straight / BEST).read_text())["params"]


def test_cli_multi_objective_search_writes_its_pareto_front(tmp_path):
    assert cli_search(tmp_path, "--objectives", "accuracy,params", "--evaluations", "6") == 0
    front = json.loads((tmp_path / "pareto.json").read_text())
    assert front["objectives"] == ["accuracy", "params"] and front["front"]
    points = [r["fitness"] for r in front["front"]]
    assert all(params == r["info"]["params"] for (_, params), r in zip(points, front["front"]))
    for a in points:
        assert not any(b[0] >= a[0] and b[1] <= a[1] and b != a for b in points)


@pytest.mark.parametrize("extra, message", [
    (["--keep", "4"], "--keep must lie between 2"),
    (["--keep", "1"], "--keep must lie between 2"),
    (["--objectives", "params,accuracy"], "must start with accuracy"),
    (["--widths", "8,x"], "--widths takes positive integers"),
    (["--cell-blocks", "2,1,1"], "input cell's 1"),
    (["--min-actions", "5"], "--min-actions"),
    (["--space", "macro"], "minigen searches minigen"),
])
def test_cli_refuses_settings_that_cannot_work(tmp_path, capsys, extra, message):
    assert cli_search(tmp_path / "run", *extra) == 2
    assert message in capsys.readouterr().err and not (tmp_path / "run").exists()


def test_pick_prefers_winners_and_can_favour_small_networks():
    def record(key, accuracy, params):
        return {"key": key, "fitness": [accuracy], "reason": None, "info": {"params": params}}

    history = [record("big", 0.6, 4_000_000), record("small", 0.5, 500_000),
               record("tiny", 0.3, 10_000), record("big", 0.7, 4_000_000),
               {"key": "broken", "fitness": None, "reason": "out of memory", "info": {}}]
    by_accuracy = pick_network(history, 0.4)
    assert by_accuracy["key"] == "big" and by_accuracy["mean_fitness"] == pytest.approx(0.65)
    assert by_accuracy["report"]["accuracy per million parameters"] == pytest.approx(0.65 / 4)
    assert by_accuracy["chosen_by"] == "best mean accuracy among the 2 winners (above 0.4)"
    assert pick_network(history, 0.9)["chosen_by"].endswith("of all networks (none above 0.9)")
    assert pick_network(history, 0.4, by="ratio")["key"] == "small"  # tiny did not win
    assert pick_network(history, 0.9, by="ratio")["key"] == "tiny"  # no winner: all compete
    tie = [record("wide", 0.65, 900_000), *history, record("narrow", 0.65, 800_000)]
    assert pick_network(tie, 0.4)["key"] == "narrow"  # equal accuracy: fewer parameters
    assert pick_network(history[-1:]) is None
    with pytest.raises(ValueError, match="by must be"):
        pick_network(history, by="params")


# -- paper parity, second pass (issue 18) ------------------------------------------------------

def test_from_json_reads_the_papers_numbered_input_cell():
    for written in (128, 24, math.inf):
        genome = minigen.from_json([[written, *PAPER_BEST[0][1:]], *PAPER_BEST[1:]])
        assert genome == PAPER_BEST and minigen.key(genome) == minigen.key(PAPER_BEST)


def test_dilated_conv_is_full_by_default_and_separable_on_request():
    full = minigen.build_network(PAPER_BEST, (3, 32, 32), 10)
    separable = minigen.build_network(PAPER_BEST, (3, 32, 32), 10, dilated_conv="separable")
    dilated = [m for m in separable.modules() if isinstance(m, torch.nn.Conv2d)
               and m.dilation == (2, 2)]
    assert len(dilated) == 3 and all(m.groups == m.in_channels > 1 for m in dilated)
    assert all(m.groups == 1 for m in full.modules()
               if isinstance(m, torch.nn.Conv2d) and m.dilation == (2, 2))
    assert count_parameters(separable) < count_parameters(full)
    assert minigen.SPACE.network_kwargs(Options()) == {"dilated_conv": "full"}
    assert minigen.SPACE.network_kwargs(Options(dilated_conv="separable")) == {
        "dilated_conv": "separable"}
    with pytest.raises(ValueError, match="dilated_conv must be one of full, separable"):
        minigen.build_network(PAPER_BEST, (3, 32, 32), 10, dilated_conv="depthwise")


def test_initial_operations_uniform_or_the_authors_leading_identity():
    def leading_identity(initial):
        genomes = [minigen.init_genome(initial=initial) for _ in range(1000)]
        for genome in genomes:
            check_rules(genome)
        inputs = sum(g[0][2][0] == IDENTITY for g in genomes) / len(genomes)
        normal = [cell[2] for g in genomes for cell in g[1:]]
        return inputs, sum(ops[0] == IDENTITY for ops in normal) / len(normal), normal

    inputs, normal, _ = leading_identity("uniform")
    assert inputs == pytest.approx(1 / 5, abs=0.04) and normal == pytest.approx(1 / 9, abs=0.02)
    inputs, normal, lists = leading_identity("authors")
    assert inputs == pytest.approx(1 / 2, abs=0.05) and normal == pytest.approx(1 / 2, abs=0.03)
    assert not any(IDENTITY in ops[1:] for ops in lists)  # identity only leads
    with pytest.raises(ValueError, match="initial must be one of uniform, authors"):
        minigen.init_genome(initial="residual")


def test_the_method_draws_the_authors_initial_operations_by_default():
    assert Options().initial_operations == "authors"
    toolbox = register_operators(base.Toolbox(), minigen.SPACE.individual(),
                                 **Options().operators())
    genomes = toolbox.population(n=400)
    assert sum(g[0][2][0] == IDENTITY for g in genomes) > 150  # about half, not a fifth
    regenerated = [toolbox.mutate(toolbox.clone(g), p_channels=0, p_op=0, p_actions=1)[0]
                   for g in genomes]
    assert sum(g[1][2][0] == IDENTITY for g in regenerated) > 150


def hashed_fitness(individual) -> Evaluation:
    """A fake fitness from the encoding's hash: accuracy 0.5 to 1, a few thousand
    parameters; fast, and the same for the same encoding."""
    digest = hashlib.sha256(minigen.key(individual).encode()).digest()
    return Evaluation((0.5 + digest[0] / 510,), params=1000 + digest[1])


def test_count_winners_every_member_or_each_generations_best():
    def winners_per_generation(rule):
        random.seed(5)
        toolbox = make_toolbox(hashed_fitness)
        _, logbook = ea_minigen(toolbox.population(n=6), toolbox, 5, keep=2, win_threshold=0.6,
                                wins_needed=100, count_winners=rule, verbose=False)
        counts = logbook.select("nwinners")
        return [b - a for a, b in zip([0] + counts, counts)]

    assert max(winners_per_generation("every")) > 1
    best = winners_per_generation("best")
    assert max(best) == 1 and set(best) <= {0, 1}
    with pytest.raises(ValueError, match="count_winners must be one of every, best"):
        winners_per_generation("all")


def test_the_logbook_and_the_records_give_each_networks_birth(tmp_path):
    random.seed(3)
    toolbox = make_toolbox(hashed_fitness)
    with Journal(tmp_path, minigen.SPACE) as journal:
        journal.wrap(toolbox)
        population, logbook = ea_minigen(toolbox.population(n=6), toolbox, 4, keep=2,
                                         win_threshold=2, verbose=False, journal=journal)
    best = max(population, key=lambda ind: fmean(ind.accuracies))
    assert logbook[-1]["best_birth"] == best.birth
    assert logbook[-1]["best_mean"] == pytest.approx(fmean(best.accuracies))
    assert logbook[0]["best_birth"] == 0
    births = {record["key"]: record["info"]["birth"] for record in read_history(tmp_path)}
    assert births[minigen.key(best)] == best.birth
    assert set(births.values()) <= set(range(5)) and max(births.values()) == 4


def test_the_pick_reports_its_birth_generation(straight, capsys):
    best = json.loads((straight / BEST).read_text())
    record = next(r for r in read_history(straight) if r["key"] == best["key"])
    assert best["report"][BIRTH] == record["info"]["birth"]
    assert main(["show", str(straight)]) == 0
    assert f"{BIRTH}: {record['info']['birth']}\n" in capsys.readouterr().out


def test_the_paper_preset_has_a_budget_in_generations():
    config, options = settings(METHOD, "paper")
    assert options.generations == PAPER_GENERATIONS == 4 * options.restart_period
    assert config.dataset == "cifar10" and options.count_winners == "every"


def test_a_fresh_search_draws_its_mini_dataset_once(tmp_path, monkeypatch):
    draws = []
    draw = data_module._draw_mini

    def counting(*args, **kwargs):
        draws.append(args[1:3])
        return draw(*args, **kwargs)

    monkeypatch.setattr(data_module, "_draw_mini", counting)
    assert cli_search(tmp_path / "run", "--evaluations", "4") == 0
    assert draws == [(5, 3)]
    saved = torch.load(tmp_path / "run" / MINI_FILE, weights_only=True)
    assert torch.bincount(saved["train_y"]).tolist() == [5] * 10
