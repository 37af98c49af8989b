"""Tests of the DARTS cell space: genotype, operators, graphs, networks, JSON and key."""

import copy
import json
import pickle

import pytest
import torch
from deap import base, creator

from deapnas.compiler import compile_graph, infer_shapes
from deapnas.networks import count_parameters
from deapnas.spaces import darts, get_space

creator.create("DartsFitness", base.Fitness, weights=(1.0,))
creator.create("DartsIndividual", darts.Genotype, fitness=creator.DartsFitness)

#: DARTS' published second-order genotype (Liu et al., 2019).
DARTS_V2 = darts.Genotype(
    normal=[("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
            ("sep_conv_3x3", 1), ("skip_connect", 0), ("skip_connect", 0), ("dil_conv_3x3", 2)],
    normal_concat=[2, 3, 4, 5],
    reduce=[("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 1),
            ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("max_pool_3x3", 1)],
    reduce_concat=[2, 3, 4, 5])


pytestmark = pytest.mark.usefixtures("seeded", "one_thread")


def assert_valid(genotype):
    assert darts.from_json(darts.to_json(genotype)) == genotype  # from_json validates
    for cell in darts.CELLS:
        pairs, _ = genotype.cell(cell)
        for node in range(2, 6):
            inputs = [source for _, source in pairs[2 * (node - 2):2 * (node - 1)]]
            assert len(set(inputs)) == 2 and all(0 <= i < node for i in inputs)


def test_random_genotypes_are_valid_and_varied():
    genotypes = [darts.init_genotype(creator.DartsIndividual) for _ in range(50)]
    for genotype in genotypes:
        assert_valid(genotype)
        assert isinstance(genotype, creator.DartsIndividual) and not genotype.fitness.valid
    assert len({darts.key(g) for g in genotypes}) == 50
    assert {op for g in genotypes for op, _ in g.normal} == set(darts.CELL_OPS)


def test_mutation_changes_one_pair_in_place_and_keeps_the_genotype_valid():
    for _ in range(200):
        genotype = darts.init_genotype(creator.DartsIndividual)
        genotype.fitness.values = (1.0,)
        before = copy.deepcopy(genotype)
        mutant, = darts.mutate(genotype)
        assert mutant is genotype and mutant.fitness.valid  # in place, fitness untouched
        changed = [(cell, i) for cell in darts.CELLS
                   for i, (a, b) in enumerate(zip(getattr(before, cell), getattr(mutant, cell)))
                   if a != b]
        assert len(changed) == 1
        assert_valid(mutant)


def test_mutation_draws_inputs_as_well_as_operations():
    kinds = set()
    for _ in range(100):
        genotype = darts.init_genotype()
        before = copy.deepcopy(genotype)
        darts.mutate(genotype)
        for cell in darts.CELLS:
            for (op_a, in_a), (op_b, in_b) in zip(getattr(before, cell), getattr(genotype, cell)):
                kinds |= {"op"} if op_a != op_b else set()
                kinds |= {"input"} if in_a != in_b else set()
    assert kinds == {"op", "input"}


def test_printed_in_the_darts_format_and_read_back_from_json():
    text = repr(DARTS_V2)
    assert text.startswith("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1),")
    assert "normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0)" in text
    assert text.endswith("reduce_concat=[2, 3, 4, 5])")
    data = json.loads(json.dumps(darts.to_json(DARTS_V2)))
    assert data["normal"][7] == ["dil_conv_3x3", 2]
    restored = darts.from_json(data, creator.DartsIndividual)
    assert restored == DARTS_V2 and isinstance(restored, creator.DartsIndividual)
    assert pickle.loads(pickle.dumps(restored)) == restored


@pytest.mark.parametrize("change, message", [
    (lambda d: d["normal"].pop(), "needs 8 pairs"),
    (lambda d: d["reduce"].__setitem__(0, ["conv_9x9", 0]), "unknown operation"),
    (lambda d: d["normal"].__setitem__(2, ["sep_conv_3x3", 3]), "cannot take input 3"),
    (lambda d: d.__setitem__("normal_concat", [1, 2]), "normal_concat"),
    (lambda d: d.pop("reduce"), "not a DARTS genotype"),
])
def test_from_json_refuses_what_is_not_a_genotype(change, message):
    data = darts.to_json(DARTS_V2)
    change(data)
    with pytest.raises(ValueError, match=message):
        darts.from_json(data)


def test_key_ignores_the_order_of_a_nodes_pairs_only():
    swapped = copy.deepcopy(DARTS_V2)
    swapped.normal[0], swapped.normal[1] = swapped.normal[1], swapped.normal[0]
    assert swapped != DARTS_V2 and darts.key(swapped) == darts.key(DARTS_V2)
    moved = copy.deepcopy(DARTS_V2)
    moved.normal[1], moved.normal[2] = moved.normal[2], moved.normal[1]  # across nodes
    assert darts.key(moved) != darts.key(DARTS_V2)


def test_reduction_cells_stride_the_operations_fed_by_the_cell_inputs():
    graph = darts.to_graph(DARTS_V2, "reduce")
    assert graph.graph["inputs"] == [0, 1] and graph.graph["output"] == "out"
    for node, attrs in graph.nodes(data=True):
        if ":" in str(node):
            (source,) = graph.predecessors(node)
            strided = attrs.get("args", {}).get("stride", 1) == 2 or \
                attrs["op"] == "darts_factorized_reduce"
            assert strided == (source in (0, 1)), node
    shapes = infer_shapes(graph, [(16, 8, 8), (16, 8, 8)])
    assert shapes["out"] == (64, 4, 4)  # four nodes concatenated at half the size
    normal = infer_shapes(darts.to_graph(DARTS_V2, "normal"), [(16, 8, 8), (16, 8, 8)])
    assert normal["out"] == (64, 8, 8)


def test_cell_graphs_compile_and_run_odd_sizes():
    for cell in darts.CELLS:
        module = compile_graph(darts.to_graph(DARTS_V2, cell), [(8, 7, 7), (8, 7, 7)])
        out = module(torch.randn(2, 8, 7, 7), torch.randn(2, 8, 7, 7))
        assert out.shape == ((2, 32, 7, 7) if cell == "normal" else (2, 32, 4, 4))


def test_network_has_reductions_at_a_third_and_two_thirds_and_counts_parameters():
    net = darts.build_network(DARTS_V2, (1, 8, 8), 10, channels=4, layers=8)
    shapes = [cell.output_shape for cell in net.cells]
    assert [s[1] for s in shapes] == [8, 8, 4, 4, 4, 2, 2, 2]
    assert [s[0] for s in shapes] == [16, 16, 32, 32, 32, 64, 64, 64]  # 4 nodes x the width
    assert net(torch.randn(2, 1, 8, 8)).shape == (2, 10)
    assert count_parameters(lambda: darts.build_network(DARTS_V2, (1, 8, 8), 10, 4, 8)) == \
        sum(p.numel() for p in net.parameters())
    with pytest.raises(ValueError, match="3k \\+ 2"):
        darts.build_network(DARTS_V2, (3, 16, 16), 10, layers=9)


def test_the_network_is_darts_evaluation_network():
    """DARTS' NetworkCIFAR: a stem of 3C channels, FactorizedReduce on the input from before a
    reduction, global pooling straight after the last cell (no BatchNorm-ReLU there), and
    DARTS_V2 at C = 36, 20 cells to the parameter DARTS prints (3.349342 MB)."""
    net = darts.build_network(DARTS_V2, (3, 32, 32), 10, channels=36, layers=20)
    assert net.stem[0].out_channels == 3 * 36
    after_reductions = [net.cells[7], net.cells[14]]  # the reductions are cells 6 and 13
    assert all(isinstance(cell.preprocess0, darts.FactorizedReduce) for cell in after_reductions)
    assert not isinstance(net.cells[8].preprocess0, darts.FactorizedReduce)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.classifier.modules())
    assert count_parameters(lambda: darts.build_network(DARTS_V2, (3, 32, 32), 10)) == 3_349_342


def test_registered_as_a_space():
    space = get_space("darts")
    assert space.genome is darts.Genotype and space.key(DARTS_V2) == darts.key(DARTS_V2)
    individual = space.individual((-1.0,))(normal=DARTS_V2.normal, reduce=DARTS_V2.reduce)
    assert individual == DARTS_V2 and individual.fitness.weights == (-1.0,)
    assert space.describe(DARTS_V2)["genome"] == darts.to_json(DARTS_V2)
