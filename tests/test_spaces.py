"""Tests of the search spaces: the macro (DeepNEAT-style) genome and the NAS-Bench-201 cell."""

import copy
import csv
import json
import pickle
from collections import Counter
from pathlib import Path

import networkx as nx
import pytest
import torch
from deap import base, creator
from torch import nn

from deapnas.compiler import compile_graph, infer_shapes
from deapnas.graph import InvalidGraphError
from deapnas.spaces import get_space, macro, nb201, register_space
from deapnas.spaces.macro import INPUT, OUTPUT, LAYERS, Connection, MacroGenome

# A user's own classes, made as DEAP scripts make them: deapnas's spaces take any container.
creator.create("FitnessMax", base.Fitness, weights=(1.0,))
creator.create("MacroIndividual", MacroGenome, fitness=creator.FitnessMax)
creator.create("NB201Individual", list, fitness=creator.FitnessMax)

NB201_CSV = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "nas-bench-201" / \
    "nb201.csv"


pytestmark = pytest.mark.usefixtures("seeded")  # every test draws from a fixed seed


def connection_graph(genome: MacroGenome, enabled_only: bool = False) -> nx.DiGraph:
    graph = nx.DiGraph()
    graph.add_nodes_from([INPUT, OUTPUT, *genome.layers])
    graph.add_edges_from((c.source, c.target) for c in genome.connections
                         if c.enabled or not enabled_only)
    return graph


def snapshot(genome: MacroGenome) -> str:
    return json.dumps(macro.to_json(genome), sort_keys=True)


# -- macro: genome and initialisation ---------------------------------------------------------

def test_layers_are_the_twelve_choices():
    assert len(LAYERS) == 12 and len(set(LAYERS)) == 12
    assert {layer.split("_")[0] for layer in LAYERS} == {"CONV", "POOL"}
    assert {layer.split("_")[1] for layer in LAYERS if layer.startswith("CONV")} == \
        {f"{k}.{w}" for k in (2, 3, 5) for w in "HN"}
    assert {layer.split("_")[1] for layer in LAYERS if layer.startswith("POOL")} == \
        {f"{k}.{p}" for k in (2, 3, 5) for p in "AM"}


def test_init_genome_is_a_chain_of_four_layers():
    for _ in range(20):
        genome = macro.init_genome()
        assert len(genome.layers) == 4 and set(genome.layers.values()) <= set(LAYERS)
        enabled = connection_graph(genome, enabled_only=True)
        path = nx.shortest_path(enabled, INPUT, OUTPUT)
        assert len(path) == 6 and set(path[1:-1]) == set(genome.layers)
        # a chain: every enabled connection lies on that one path
        assert set(enabled.edges) == set(zip(path, path[1:]))
        assert sum(c.enabled for c in genome.connections) == 5
        innovations = [c.innovation for c in genome.connections]
        assert len(set(innovations)) == len(innovations)


def test_init_genome_uses_the_container():
    genome = macro.init_genome(creator.MacroIndividual)
    assert isinstance(genome, creator.MacroIndividual) and len(genome.layers) == 4
    assert not genome.fitness.valid


# -- macro: DEAP operator contracts ------------------------------------------------------------

@pytest.mark.parametrize("operator", [macro.mutate, macro.mut_add_node, macro.mut_layer,
                                      macro.mut_toggle])
def test_mutation_is_in_place_and_keeps_fitness(operator):
    for _ in range(30):
        individual = macro.init_genome(creator.MacroIndividual)
        individual.fitness.values = (0.75,)
        result = operator(individual)
        assert isinstance(result, tuple) and len(result) == 1
        assert result[0] is individual
        assert individual.fitness.valid and individual.fitness.values == (0.75,)


def test_pickle_and_deepcopy_round_trip():
    individual = macro.init_genome(creator.MacroIndividual)
    for _ in range(10):
        macro.mutate(individual)
    individual.fitness.values = (0.5,)
    for clone in (pickle.loads(pickle.dumps(individual)), copy.deepcopy(individual)):
        # DEAP 1.4 re-creates a creator class when it pickles or deep-copies an instance, so
        # the clone's class is a new deap.creator.MacroIndividual, not the same object
        assert type(clone).__name__ == "MacroIndividual" and isinstance(clone, MacroGenome)
        assert clone.fitness.weights == (1.0,)
        assert clone == individual and clone is not individual
        assert clone.fitness.values == (0.5,)
        assert clone.connections is not individual.connections
        assert all(a is not b for a, b in zip(clone.connections, individual.connections))
        macro.mut_add_node(clone)  # a deep copy: mutating it leaves the original alone
        assert clone != individual


def test_json_round_trip():
    genome = macro.init_genome()
    for _ in range(15):
        macro.mutate(genome)
    data = json.loads(json.dumps(macro.to_json(genome)))
    back = macro.from_json(data)
    assert back == genome and type(back) is MacroGenome
    assert back.layers == genome.layers
    assert [vars(c) for c in back.connections] == [vars(c) for c in genome.connections]
    typed = macro.from_json(data, creator.MacroIndividual)
    assert isinstance(typed, creator.MacroIndividual) and typed == genome
    assert not typed.fitness.valid
    assert macro.key(back) == macro.key(genome)


def test_equality_compares_genes():
    a, b = MacroGenome(), MacroGenome()
    assert a == b
    macro.mut_toggle(b)
    assert a != b and a != "not a genome"


def test_genome_stays_a_dag_under_many_mutations():
    genome = macro.init_genome()
    for step in range(500):
        macro.mutate(genome)
        graph = connection_graph(genome)
        assert nx.is_directed_acyclic_graph(graph), step
        assert nx.is_directed_acyclic_graph(connection_graph(genome, enabled_only=True)), step
        assert graph.in_degree(INPUT) == 0 and graph.out_degree(OUTPUT) == 0
        assert set(graph.nodes) == {INPUT, OUTPUT, *genome.layers}
    assert len(genome.layers) > 80  # about a quarter of 500 mutations add a node
    innovations = [c.innovation for c in genome.connections]
    assert len(set(innovations)) == len(innovations)
    assert len({(c.source, c.target) for c in genome.connections}) == len(genome.connections)


def test_mutation_probabilities():
    base = macro.init_genome()
    draws = 4000
    outcomes = Counter()
    for _ in range(draws):
        genome = copy.deepcopy(base)
        macro.mutate(genome)
        if len(genome.layers) == len(base.layers) + 1:
            outcomes["add"] += 1
        elif snapshot(genome) == snapshot(base):
            outcomes["identity"] += 1
        elif genome.layers != base.layers:
            outcomes["layer"] += 1
        else:
            outcomes["toggle"] += 1
    assert sum(outcomes.values()) == draws
    # binomial standard deviations at n = 4000: 0.0068 (0.25), 0.0034 (0.05), 0.0075 (0.35)
    assert abs(outcomes["add"] / draws - 0.25) < 0.03
    assert abs(outcomes["identity"] / draws - 0.05) < 0.015
    assert abs(outcomes["layer"] / draws - 0.35) < 0.035
    assert abs(outcomes["toggle"] / draws - 0.35) < 0.035


def test_mutation_probability_arguments():
    genome = macro.init_genome()
    before = snapshot(genome)
    for _ in range(50):
        macro.mutate(genome, p_add=0.0, p_identity=1.0)
    assert snapshot(genome) == before
    for _ in range(5):
        macro.mutate(genome, p_add=1.0, p_identity=0.0)
    assert len(genome.layers) == 9
    with pytest.raises(ValueError):
        macro.mutate(genome, p_add=0.8, p_identity=0.5)


def test_mut_layer_always_changes_one_layer():
    genome = macro.init_genome()
    for _ in range(300):
        before = dict(genome.layers)
        macro.mut_layer(genome)
        changed = [n for n in before if genome.layers[n] != before[n]]
        assert len(changed) == 1 and genome.layers[changed[0]] in LAYERS
    restricted = ("CONV_3.N", "POOL_2.M")
    for _ in range(20):
        macro.mut_layer(genome, restricted)
        assert any(layer in restricted for layer in genome.layers.values())


def test_mut_toggle_flips_one_connection():
    genome = macro.init_genome()
    for _ in range(100):
        before = [c.enabled for c in genome.connections]
        macro.mut_toggle(genome)
        after = [c.enabled for c in genome.connections]
        assert sum(a != b for a, b in zip(before, after)) == 1


def test_add_node_splits_a_connection():
    genome = macro.init_genome()
    before = copy.deepcopy(genome)
    macro.mut_add_node(genome)
    new = genome.new_node_id() - 1
    assert set(genome.layers) == set(before.layers) | {new}
    into, out = genome.connections[-2:]
    assert (into.target, out.source) == (new, new) and into.enabled and out.enabled
    split = [c for c, old in zip(genome.connections, before.connections)
             if c.enabled != old.enabled]
    assert len(split) == 1 and not split[0].enabled
    assert (split[0].source, split[0].target) == (into.source, out.target)
    # with nothing enabled, a disabled connection is split
    empty = MacroGenome(connections=[Connection(INPUT, OUTPUT, False, 0)])
    macro.mut_add_node(empty)
    assert macro.key(empty) is not None


# -- macro: compiled layers ----------------------------------------------------------------------

def single_layer(layer: str) -> MacroGenome:
    return macro.from_json({"layers": {"0": layer},
                            "connections": [[INPUT, OUTPUT, False, 0], [INPUT, 0, True, 1],
                                            [0, OUTPUT, True, 2]]})


@pytest.mark.parametrize("layer", [layer for layer in LAYERS if layer.startswith("CONV")])
def test_conv_layers_compile_to_conv_relu6_bn_dropout(layer):
    kernel, width = int(layer[5]), layer[-1]
    channels = 8
    module = compile_graph(macro.to_graph(single_layer(layer), channels), [(3, 11, 11)])
    body = [m for m in module.ops[module.keys[0]] if not isinstance(m, nn.ZeroPad2d)]
    assert [type(m) for m in body] == [nn.Conv2d, nn.ReLU6, nn.BatchNorm2d, nn.Dropout2d]
    conv = body[0]
    out_channels = channels // 2 if width == "H" else channels
    assert conv.kernel_size == (kernel, kernel) and conv.stride == (1, 1)
    assert (conv.in_channels, conv.out_channels) == (3, out_channels)
    assert body[3].p == pytest.approx(0.1)
    assert module.output_shape == (out_channels, 11, 11)  # convs keep the size, even kernels too
    assert tuple(module(torch.randn(2, 3, 11, 11)).shape) == (2, out_channels, 11, 11)


@pytest.mark.parametrize("layer", [layer for layer in LAYERS if layer.startswith("POOL")])
def test_pools_use_stride_equal_to_kernel(layer):
    kernel, kind = int(layer[5]), layer[-1]
    module = compile_graph(macro.to_graph(single_layer(layer)), [(2, 11, 11)])
    pool = module.ops[module.keys[0]]
    assert isinstance(pool, {"A": nn.AvgPool2d, "M": nn.MaxPool2d}[kind])
    assert pool.kernel_size in (kernel, (kernel, kernel))
    assert pool.stride in (kernel, (kernel, kernel))
    assert module.output_shape == (2, 11 // kernel, 11 // kernel)
    assert tuple(module(torch.randn(1, 2, 11, 11)).shape) == (1, 2, 11 // kernel, 11 // kernel)


def test_build_network_runs_and_has_the_three_layer_head():
    while True:
        genome = macro.init_genome()
        try:
            net = macro.build_network(genome, (1, 16, 16), 10, channels=8)
            break
        except InvalidGraphError:
            continue
    linears = [m for m in net.head if isinstance(m, nn.Linear)]
    features = linears[0].in_features
    assert features == int(torch.tensor(net.body.output_shape).prod())
    assert [l.out_features for l in linears] == [features // 4, features // 8, 10]
    assert sum(isinstance(m, nn.ReLU) for m in net.head) == 2
    assert tuple(net(torch.randn(2, 1, 16, 16)).shape) == (2, 10)


def test_genome_without_enabled_path_is_invalid():
    lone = MacroGenome(connections=[Connection(INPUT, OUTPUT, False, 0)])
    with pytest.raises(InvalidGraphError, match="no path"):
        macro.build_network(lone, (1, 8, 8), 10)
    assert macro.key(lone) is None
    genome = macro.init_genome()
    on_path = next(c for c in genome.connections if c.enabled)
    on_path.enabled = False
    with pytest.raises(InvalidGraphError, match="no path"):
        macro.build_network(genome, (1, 28, 28), 10)
    assert macro.key(genome) is None


def test_collapsing_genome_is_invalid():
    genome = macro.from_json({"layers": {"0": "POOL_5.M", "1": "POOL_5.A"},
                              "connections": [[INPUT, OUTPUT, False, 0], [INPUT, 0, True, 1],
                                              [0, 1, True, 2], [1, OUTPUT, True, 3]]})
    with pytest.raises(InvalidGraphError, match="collapses to zero"):
        macro.build_network(genome, (1, 8, 8), 10)
    assert infer_shapes(macro.to_graph(genome), [(1, 25, 25)])[OUTPUT] == (1, 1, 1)


def test_macro_key_ignores_disabled_branches():
    genome = macro.init_genome()
    key = macro.key(genome)
    macro.mut_add_node(genome)  # a new node in the chain changes the network
    assert macro.key(genome) != key
    dead = copy.deepcopy(genome)
    dead.layers[dead.new_node_id()] = "CONV_3.N"  # a layer gene with no connection
    assert macro.key(dead) == macro.key(genome)


# -- NAS-Bench-201 -----------------------------------------------------------------------------

def test_nb201_round_trip_over_the_whole_table():
    if not NB201_CSV.is_file():
        pytest.skip(f"NAS-Bench-201 table not found at {NB201_CSV}")
    with open(NB201_CSV, newline="") as file:
        strings = [row["arch_str"] for row in csv.DictReader(file)]
    assert len(strings) == 15_625 and len(set(strings)) == 15_625
    cells = set()
    for text in strings:
        cell = nb201.from_arch_string(text)
        assert nb201.arch_string(cell) == text
        assert nb201.from_json(nb201.to_json(cell)) == cell
        cells.add(tuple(cell))
    assert len(cells) == 5 ** 6


def test_nb201_arch_string_format():
    cell = ["nor_conv_3x3", "none", "skip_connect", "avg_pool_3x3", "nor_conv_1x1", "none"]
    assert nb201.arch_string(cell) == ("|nor_conv_3x3~0|+|none~0|skip_connect~1|+|"
                                       "avg_pool_3x3~0|nor_conv_1x1~1|none~2|")
    assert nb201.key(cell) == nb201.arch_string(cell)


@pytest.mark.parametrize("text", [
    "",
    "|nor_conv_3x3~0|",
    "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_1x1~1|",
    "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_1x1~1|none~2|none~2|",
    "|conv_5x5~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_1x1~1|none~2|",
    "|nor_conv_3x3~0|+|skip_connect~1|none~0|+|avg_pool_3x3~0|nor_conv_1x1~1|none~2|",
    "|nor_conv_3x3~1|+|none~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_1x1~1|none~2|",
    "|nor_conv_3x3~0|+|none~0|skip_connect~1|avg_pool_3x3~0|+|nor_conv_1x1~1|none~2|",
    "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_1x1~1|none~2",
    "nor_conv_3x3~0+none~0 skip_connect~1+avg_pool_3x3~0 nor_conv_1x1~1 none~2",
])
def test_nb201_malformed_string_raises(text):
    with pytest.raises(ValueError, match="NAS-Bench-201|order"):
        nb201.from_arch_string(text)


def test_nb201_init_and_mutate():
    cell = nb201.init_cell(creator.NB201Individual)
    assert isinstance(cell, creator.NB201Individual) and len(cell) == 6
    assert set(cell) <= set(nb201.OPS)
    cell.fitness.values = (0.3,)
    for _ in range(200):
        before = list(cell)
        result = nb201.mutate(cell)
        assert isinstance(result, tuple) and len(result) == 1 and result[0] is cell
        changed = [i for i in range(6) if cell[i] != before[i]]
        assert len(changed) == 1 and cell[changed[0]] in nb201.OPS
        assert cell.fitness.values == (0.3,)
    assert pickle.loads(pickle.dumps(cell)) == cell
    ops_seen = Counter(op for _ in range(300) for op in nb201.init_cell())
    assert set(ops_seen) == set(nb201.OPS)


def test_nb201_to_graph_keeps_none_edges_as_zero_ops():
    cell = ["skip_connect", "none", "none", "none", "skip_connect", "none"]
    graph = nb201.to_graph(cell)
    assert graph.graph["inputs"] == [0] and graph.graph["output"] == 3
    edge_nodes = [n for n in graph if n not in (0, 1, 2, 3)]
    assert len(edge_nodes) == 6
    assert sum(graph.nodes[n]["op"] == "zero" for n in edge_nodes) == cell.count("none")
    for node in edge_nodes:
        (source,), (target,) = graph.predecessors(node), graph.successors(node)
        assert (source, target) in nb201.EDGES
    # node 3 = skip(node 1) + 0 + 0 = x: 'none' adds nothing
    module = compile_graph(graph, [(4, 6, 6)])
    assert sum(p.numel() for p in module.parameters()) == 0
    x = torch.randn(2, 4, 6, 6)
    torch.testing.assert_close(module(x), x)
    # a cell whose output receives only 'none' edges still builds, and outputs zeros
    empty = compile_graph(nb201.to_graph(["nor_conv_3x3"] + ["none"] * 5), [(4, 6, 6)])
    assert torch.all(empty(x) == 0)


def test_nb201_cell_ops():
    cell = ["nor_conv_3x3", "nor_conv_1x1", "avg_pool_3x3", "skip_connect", "none",
            "nor_conv_3x3"]
    module = compile_graph(nb201.to_graph(cell), [(4, 8, 8)])
    modules = {str(node).split(":")[1]: module.ops[module.keys[node]]
               for node in module.order if ":" in str(node)}
    conv3, conv1 = modules["nor_conv_3x3"], modules["nor_conv_1x1"]
    assert [type(m) for m in conv3] == [nn.ReLU, nn.Conv2d, nn.BatchNorm2d]
    assert conv3[1].kernel_size == (3, 3) and conv1[1].kernel_size == (1, 1)
    assert conv3[1].bias is None and conv3[1].out_channels == 4
    pool = modules["avg_pool_3x3"]
    assert isinstance(pool, nn.AvgPool2d) and pool.stride == 1 and not pool.count_include_pad
    assert isinstance(modules["skip_connect"], nn.Identity)
    assert module.output_shape == (4, 8, 8)


def test_space_registry():
    assert get_space("macro") is macro.SPACE and get_space("nb201") is nb201.SPACE
    assert macro.SPACE.mutate is macro.mutate and nb201.SPACE.to_json is nb201.to_json
    with pytest.raises(ValueError, match="unknown space"):
        get_space("no-such-space")
    with pytest.raises(ValueError, match="already registered"):
        register_space(macro.SPACE)


def test_space_individual_classes_are_shared_and_survive_pickling():
    individual = macro.SPACE.individual()
    assert individual is macro.SPACE.individual((1.0,)) and individual.__module__ == "deapnas.individuals"
    genome = macro.init_genome(individual)
    genome.fitness.values = (0.5,)
    for clone in (pickle.loads(pickle.dumps(genome)), copy.deepcopy(genome)):
        assert type(clone) is individual and clone.fitness.values == (0.5,)
    pair = nb201.SPACE.individual((1.0, -1.0))
    cell = nb201.init_cell(pair)
    assert pair.fitness.weights == (1.0, -1.0) and type(pickle.loads(pickle.dumps(cell))) is pair
