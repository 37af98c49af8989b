"""Tests of the op registry, the graph compiler and the skeleton networks, on real torch modules."""

import csv
import random
from pathlib import Path

import networkx as nx
import pytest
import torch
from torch import nn

from deapnas import ops
from deapnas.compiler import GraphModule, Merge, compile_graph, infer_shapes
from deapnas.graph import InvalidGraphError, architecture_key, prune
from deapnas.networks import CellNetwork, MacroNet, count_parameters
from deapnas.ops import OPS, Zero, get_op, register_op
from deapnas.spaces import macro, nb201

NB201_CSV = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "nas-bench-201" / \
    "nb201.csv"


def make_graph(nodes: dict, edges, inputs=("x",), output="out") -> nx.DiGraph:
    """A compiler graph: ``nodes`` maps node -> attributes (inputs need no entry)."""
    graph = nx.DiGraph(inputs=list(inputs), output=output)
    graph.add_nodes_from(inputs)
    for node, attrs in nodes.items():
        graph.add_node(node, **attrs)
    graph.add_edges_from(edges)
    return graph


def real_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.fixture
def registered():
    """Names registered during a test; popped from the registry afterwards."""
    names: list[str] = []
    yield names
    for name in names:
        OPS.pop(name, None)


# -- compiler shapes ---------------------------------------------------------------------------

def branching_graph() -> nx.DiGraph:
    """conv and pool branches summed (8 vs 3 channels, 16x16 vs 8x8), a concat, a strided conv."""
    return make_graph(
        {"conv": {"op": "conv_relu6_bn", "args": {"kernel": 3, "channels": 8}},
         "pool": {"op": "pool", "args": {"kind": "max", "kernel": 2}},
         "sum": {"combine": "sum"},
         "cat": {"combine": "concat"},
         "out": {"op": "relu_conv_bn", "args": {"kernel": 1, "channels": 5, "stride": 2}}},
        [("x", "conv"), ("x", "pool"), ("conv", "sum"), ("pool", "sum"), ("conv", "cat"),
         ("sum", "cat"), ("cat", "out")])


def test_compiler_shapes_branch_sum_and_concat():
    graph = branching_graph()
    expected = {"x": (3, 16, 16), "conv": (8, 16, 16), "pool": (3, 8, 8), "sum": (3, 8, 8),
                "cat": (11, 8, 8), "out": (5, 4, 4)}
    assert infer_shapes(graph, [(3, 16, 16)]) == expected
    module = compile_graph(graph, [(3, 16, 16)])
    assert isinstance(module, GraphModule)
    assert module.output_shape == (5, 4, 4)
    out = module(torch.randn(2, 3, 16, 16))
    assert tuple(out.shape) == (2, *module.output_shape)
    # the sum projects the 8-channel branch to 3 channels with a 1x1 conv, the 3-channel one not
    merge = module.merges["sum"]
    assert isinstance(merge, Merge) and merge.size == (8, 8)
    assert isinstance(merge.project[0], nn.Conv2d)
    assert (merge.project[0].in_channels, merge.project[0].out_channels) == (8, 3)
    assert merge.project[0].kernel_size == (1, 1)
    assert isinstance(merge.project[1], nn.Identity)
    # a concat keeps every channel: no projection
    assert all(isinstance(p, nn.Identity) for p in module.merges["cat"].project)
    # every intermediate node really has its inferred shape
    seen = {}
    for node in module.order:
        module.ops[module.keys[node]].register_forward_hook(
            lambda mod, args, output, node=node: seen.__setitem__(node, tuple(output.shape[1:])))
    module(torch.randn(2, 3, 16, 16))
    assert seen == {n: s for n, s in expected.items() if n != "x"}


def test_sum_reconciles_size_by_average_pooling():
    # x (8x8) and its 2x2 average pool (4x4) summed: x is brought to 4x4, i.e. the same pool
    graph = make_graph({"a": {"op": "pool", "args": {"kind": "avg", "kernel": 2}}, "out": {}},
                       [("x", "a"), ("x", "out"), ("a", "out")])
    module = compile_graph(graph, [(1, 8, 8)])
    x = torch.randn(2, 1, 8, 8)
    expected = 2 * nn.functional.avg_pool2d(x, 2)
    assert module.output_shape == (1, 4, 4)
    torch.testing.assert_close(module(x), expected)


def test_concat_follows_node_insertion_order():
    graph = make_graph({"zeros": {"op": "zero"}, "same": {}, "out": {"combine": "concat"}},
                       [("x", "same"), ("x", "zeros"), ("zeros", "out"), ("same", "out")])
    module = compile_graph(graph, [(2, 4, 4)])
    x = torch.randn(3, 2, 4, 4)
    out = module(x)
    assert module.output_shape == (4, 4, 4)
    assert torch.all(out[:, :2] == 0)  # "zeros" was added to the graph first
    torch.testing.assert_close(out[:, 2:], x)


def test_two_inputs_in_forward_order():
    graph = make_graph({"out": {"combine": "concat"}}, [("b", "out"), ("a", "out")],
                       inputs=("a", "b"))
    module = compile_graph(graph, [(1, 4, 4), (2, 4, 4)])
    a, b = torch.randn(1, 1, 4, 4), torch.randn(1, 2, 4, 4)
    assert module.output_shape == (3, 4, 4)
    torch.testing.assert_close(module(a, b), torch.cat([a, b], 1))


def test_node_names_that_collide_as_module_names_stay_distinct():
    # "a.b" and "a_b" are one name once dots are replaced; "keys" is a ModuleDict method
    graph = make_graph({"a.b": {"op": "pool", "args": {"kind": "max", "kernel": 2}},
                        "a_b": {"op": "zero"}, "keys": {"op": "zero"}, "out": {}},
                       [("x", "a.b"), ("x", "a_b"), ("x", "keys"), ("a.b", "out"),
                        ("a_b", "out"), ("keys", "out")])
    module = compile_graph(graph, [(1, 4, 4)])
    assert len(set(module.keys.values())) == len(module.order) == 4
    assert isinstance(module.ops[module.keys["a.b"]], nn.MaxPool2d)
    x = torch.randn(2, 1, 4, 4)
    torch.testing.assert_close(module(x), nn.functional.max_pool2d(x, 2))


# -- parameter counts ----------------------------------------------------------------------------

def random_macro_genomes(count: int, seed: int = 0) -> list:
    """``count`` seeded macro genomes (fresh plus some mutations) that compile at 1x16x16."""
    rng_state = random.getstate()
    random.seed(seed)
    genomes = []
    try:
        while len(genomes) < count:
            genome = macro.init_genome()
            for _ in range(random.randrange(12)):
                macro.mutate(genome)
            if macro.key(genome) is not None and _builds(genome):
                genomes.append(genome)
    finally:
        random.setstate(rng_state)
    return genomes


def _builds(genome) -> bool:
    try:
        infer_shapes(macro.to_graph(genome, 8), [(1, 16, 16)])
    except InvalidGraphError:
        return False
    return True


def test_count_parameters_equals_real_build_for_hand_built_graphs():
    for graph, shapes in [(branching_graph(), [(3, 16, 16)]),
                          (make_graph({"out": {}}, [("x", "out")]), [(3, 8, 8)])]:
        meta = count_parameters(lambda: compile_graph(graph, shapes))
        real = real_parameters(compile_graph(graph, shapes))
        assert meta == real
    # conv 3*8*9+8, bn 16, projection 8*3, out conv 11*5 (no bias), bn 10
    assert count_parameters(lambda: compile_graph(branching_graph(), [(3, 16, 16)])) == \
        (3 * 8 * 9 + 8) + 16 + 8 * 3 + 11 * 5 + 10


def test_count_parameters_builds_on_meta_device():
    devices = []

    def build():
        module = compile_graph(branching_graph(), [(3, 16, 16)])
        devices.extend(p.device.type for p in module.parameters())
        return module

    count_parameters(build)
    assert devices and set(devices) == {"meta"}


def test_count_parameters_equals_real_build_for_random_macro_genomes():
    genomes = random_macro_genomes(8)
    assert len({macro.key(g) for g in genomes}) > 1
    for genome in genomes:
        meta = count_parameters(lambda: macro.build_network(genome, (1, 16, 16), 10, channels=8))
        net = macro.build_network(genome, (1, 16, 16), 10, channels=8)
        assert isinstance(net, MacroNet)
        assert meta == real_parameters(net)
        assert tuple(net(torch.randn(2, 1, 16, 16)).shape) == (2, 10)


NB201_ROW0 = ("|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|"
              "nor_conv_1x1~0|skip_connect~1|skip_connect~2|")


def test_nb201_parameters_match_published_count():
    cell = nb201.from_arch_string(NB201_ROW0)
    meta = count_parameters(lambda: nb201.build_network(cell, (3, 32, 32), 10))
    net = nb201.build_network(cell, (3, 32, 32), 10)
    assert meta == real_parameters(net) == 129_306
    assert tuple(net(torch.randn(2, 3, 32, 32)).shape) == (2, 10)


@pytest.fixture(scope="module")
def nb201_table() -> dict:
    if not NB201_CSV.is_file():
        pytest.skip(f"NAS-Bench-201 table not found at {NB201_CSV}")
    with open(NB201_CSV, newline="") as file:
        return {row["arch_str"]: row for row in csv.DictReader(file)}


@pytest.mark.parametrize("arch, dataset, classes", [
    (NB201_ROW0, "cifar100", 100),
    # 'none' edges: node 1 gets nothing, yet the ops after it count (the benchmark builds them)
    ("|none~0|+|none~0|none~1|+|nor_conv_1x1~0|avg_pool_3x3~1|nor_conv_1x1~2|", "cifar10", 10),
    # node 2 is a dead end (none to node 3): its three 3x3 convs still count
    ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|avg_pool_3x3~0|nor_conv_1x1~1|none~2|",
     "cifar100", 100),
    # nothing reaches the output: the benchmark still has this network (stem, reductions, head)
    ("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|", "cifar10", 10),
])
def test_nb201_parameters_match_table(nb201_table, arch, dataset, classes):
    assert arch in nb201_table
    published = round(float(nb201_table[arch][f"{dataset}_params_M"]) * 1e6)
    cell = nb201.from_arch_string(arch)
    meta = count_parameters(lambda: nb201.build_network(cell, (3, 32, 32), classes))
    assert meta == published
    assert real_parameters(nb201.build_network(cell, (3, 32, 32), classes)) == published


# -- pruning ------------------------------------------------------------------------------------

def test_pruning_removes_nodes_off_every_input_output_path():
    graph = make_graph(
        {"a": {"op": "conv_relu6_bn", "args": {"kernel": 3, "channels": 4}},
         "dead_end": {"op": "conv_relu6_bn", "args": {"kernel": 3, "channels": 4}},
         "orphan": {"op": "conv_relu6_bn", "args": {"kernel": 3, "channels": 4}},
         "orphan_child": {}, "out": {}, "after_out": {"op": "conv_relu6_bn",
                                                    "args": {"kernel": 3, "channels": 4}}},
        [("x", "a"), ("a", "out"), ("a", "dead_end"), ("orphan", "orphan_child"),
         ("orphan_child", "a"), ("out", "after_out")])
    pruned = prune(graph)
    assert set(pruned.nodes) == {"x", "a", "out"}
    assert set(pruned.edges) == {("x", "a"), ("a", "out")}
    assert set(graph.nodes) >= {"dead_end", "orphan", "after_out"}  # the original is untouched
    module = compile_graph(graph, [(1, 8, 8)])
    assert set(module.ops.keys()) == set(module.merges.keys()) == {"a", "out"}
    clean = make_graph({"a": graph.nodes["a"], "out": {}}, [("x", "a"), ("a", "out")])
    assert real_parameters(module) == real_parameters(compile_graph(clean, [(1, 8, 8)]))
    assert set(infer_shapes(graph, [(1, 8, 8)])) == {"x", "a", "out"}


def test_pruning_cuts_edges_into_inputs():
    # y is an input, so x -> y is no path into the network: y takes what forward gives it
    graph = make_graph({"out": {"combine": "concat"}}, [("x", "y"), ("y", "out"), ("x", "out")],
                       inputs=("x", "y"))
    assert ("x", "y") not in prune(graph).edges
    module = compile_graph(graph, [(1, 4, 4), (2, 4, 4)])
    x, y = torch.randn(1, 1, 4, 4), torch.randn(1, 2, 4, 4)
    assert module(x, y).shape[1] == 3


# -- invalid graphs -------------------------------------------------------------------------------

def chain(**out_attrs) -> nx.DiGraph:
    return make_graph({"a": out_attrs, "out": {}}, [("x", "a"), ("a", "out")])


@pytest.mark.parametrize("graph, shapes, message", [
    (make_graph({"a": {}, "b": {}, "out": {}},
                [("x", "a"), ("a", "b"), ("b", "a"), ("b", "out")]), [(1, 4, 4)], "cycle"),
    (make_graph({"a": {}, "out": {}}, [("x", "a")]), [(1, 4, 4)], "no path"),
    (chain(op="pool", args={"kind": "max", "kernel": 5}), [(1, 2, 2)], "collapses to zero"),
    (chain(op="conv7"), [(1, 4, 4)], "unknown operation 'conv7'"),
    (chain(combine="product"), [(1, 4, 4)], "combine must be one of"),
    (chain(op="pool", args={"kind": "min", "kernel": 2}), [(1, 4, 4)], "pool kind"),
    (chain(op="conv_relu6_bn", args={"kernal": 3, "channels": 2}), [(1, 4, 4)], "kernal"),
    (chain(op="pool", args={"kernel": 2}), [(1, 4, 4)], "kind"),
    (chain(), [(1, 4, 4), (1, 4, 4)], "input shapes"),
])
def test_invalid_graphs_raise_with_reason(graph, shapes, message):
    with pytest.raises(InvalidGraphError, match=message) as error:
        compile_graph(graph, shapes)
    assert "Traceback" not in str(error.value) and len(str(error.value)) < 300
    with pytest.raises(InvalidGraphError, match=message):
        count_parameters(lambda: compile_graph(graph, shapes))


def test_op_errors_name_the_node():
    with pytest.raises(InvalidGraphError, match=r"node 'a': .*collapses"):
        compile_graph(chain(op="pool", args={"kind": "avg", "kernel": 5}), [(1, 2, 2)])
    with pytest.raises(InvalidGraphError, match=r"^node 'a': unknown operation 'nope'"):
        compile_graph(chain(op="nope"), [(1, 4, 4)])


@pytest.mark.parametrize("attrs, message", [
    ({"output": "out"}, r"graph\['inputs'\]"),
    ({"inputs": [], "output": "out"}, r"graph\['inputs'\]"),
    ({"inputs": ["x", "ghost"], "output": "out"}, "ghost"),
    ({"inputs": ["x"]}, r"graph\['output'\]"),
    ({"inputs": ["x"], "output": "ghost"}, r"graph\['output'\]"),
])
def test_missing_graph_attributes(attrs, message):
    graph = nx.DiGraph(**attrs)
    graph.add_edges_from([("x", "out")])
    with pytest.raises(InvalidGraphError, match=message):
        compile_graph(graph, [(1, 4, 4)])
    with pytest.raises(InvalidGraphError, match=message):
        architecture_key(graph)


def test_invalid_graph_error_is_a_value_error():
    assert issubclass(InvalidGraphError, ValueError)


# -- user-registered operations -------------------------------------------------------------------

def test_register_op_with_shape_rule(registered):
    calls = []

    def shape(in_shape, factor=2):
        calls.append(in_shape)
        return (in_shape[0] * factor, in_shape[1], in_shape[2])

    registered.append("widen")
    op = register_op("widen", lambda c_in, factor=2: nn.Conv2d(c_in, c_in * factor, 1), shape)
    assert get_op("widen") is op and op.shape is shape
    graph = chain(op="widen", args={"factor": 3})
    module = compile_graph(graph, [(2, 5, 5)])
    assert calls and calls[-1] == (2, 5, 5)
    assert module.output_shape == (6, 5, 5)
    assert tuple(module(torch.randn(1, 2, 5, 5)).shape) == (1, 6, 5, 5)


def test_register_op_without_shape_rule_probes_on_meta(registered):
    devices = []

    def build(c_in):
        module = nn.Conv2d(c_in, 4, 7, stride=2, padding=3)
        devices.append(module.weight.device.type)
        return module

    registered.append("conv7s2")
    register_op("conv7s2", build)
    graph = chain(op="conv7s2")
    assert infer_shapes(graph, [(1, 9, 9)])["a"] == (4, 5, 5)
    assert devices == ["meta"]  # shape inference built it on the meta device only
    module = compile_graph(graph, [(1, 9, 9)])
    assert devices[-1] == "cpu"
    assert module.output_shape == (4, 5, 5)
    assert tuple(module(torch.randn(2, 1, 9, 9)).shape) == (2, 4, 5, 5)


def test_probed_op_collapse_and_batch_norm(registered):
    registered += ["pool5", "conv_bn"]
    register_op("pool5", lambda c_in: nn.MaxPool2d(5))
    with pytest.raises(InvalidGraphError, match="node 'a': pool5 cannot take 1x2x2"):
        compile_graph(chain(op="pool5"), [(1, 2, 2)])
    # batch norm on a 1x1 map: fine in training (batch > 1), so the probe must accept it
    register_op("conv_bn", lambda c_in: nn.Sequential(nn.Conv2d(c_in, 3, 1), nn.BatchNorm2d(3)))
    module = compile_graph(chain(op="conv_bn"), [(2, 1, 1)])
    assert module.output_shape == (3, 1, 1)
    assert tuple(module(torch.randn(4, 2, 1, 1)).shape) == (4, 3, 1, 1)


def test_register_op_duplicate_and_replace(registered):
    registered.append("mine")
    register_op("mine", lambda c_in: nn.Identity(), ops.same_shape)
    with pytest.raises(ValueError, match="already registered"):
        register_op("mine", lambda c_in: Zero(), ops.same_shape)
    with pytest.raises(ValueError, match="already registered"):
        register_op("identity", lambda c_in: nn.Identity())
    x = torch.randn(1, 1, 3, 3)
    torch.testing.assert_close(compile_graph(chain(op="mine"), [(1, 3, 3)])(x), x)
    register_op("mine", lambda c_in: Zero(), ops.same_shape, replace=True)
    assert torch.all(compile_graph(chain(op="mine"), [(1, 3, 3)])(x) == 0)


def test_registry_cleanup_left_builtins():
    assert {"identity", "zero", "conv_relu6_bn", "relu_conv_bn", "pool"} <= set(OPS)
    assert not {"widen", "conv7s2", "pool5", "conv_bn", "mine"} & set(OPS)
    with pytest.raises(KeyError, match="unknown operation 'widen'"):
        get_op("widen")


# -- architecture keys ---------------------------------------------------------------------------

def test_architecture_key_ignores_dead_nodes_and_node_ids():
    base = branching_graph()
    with_dead = base.copy()
    with_dead.add_node("dead", op="conv_relu6_bn", args={"kernel": 5, "channels": 2})
    with_dead.add_edges_from([("conv", "dead"), ("nowhere", "sum")])
    mapping = {n: f"n{i}" for i, n in enumerate(base.nodes)}
    renamed = nx.relabel_nodes(base, mapping)
    renamed.graph.update(inputs=[mapping["x"]], output=mapping["out"])
    key = architecture_key(base)
    assert isinstance(key, str) and key
    assert architecture_key(with_dead) == key
    assert architecture_key(renamed) == key


def test_architecture_key_differs_for_different_networks():
    base = branching_graph()
    keys = {architecture_key(base)}
    for node, attrs in [("pool", {"args": {"kind": "avg", "kernel": 2}}),
                        ("conv", {"args": {"kernel": 5, "channels": 8}}),
                        ("cat", {"combine": "sum"}),
                        ("sum", {"op": "zero"})]:
        changed = base.copy()
        changed.nodes[node].update(attrs)
        keys.add(architecture_key(changed))
    rewired = base.copy()
    rewired.remove_edge("conv", "cat")
    keys.add(architecture_key(rewired))
    assert len(keys) == 6


# -- cell networks ---------------------------------------------------------------------------------

def two_input_normal_cell() -> nx.DiGraph:
    return make_graph(
        {"a": {"op": "relu_conv_bn", "args": {"kernel": 3}},
         "b": {"op": "pool", "args": {"kind": "avg", "kernel": 3, "stride": 1, "padding": 1}},
         "c": {}, "out": {"combine": "concat"}},
        [("h0", "a"), ("h1", "b"), ("a", "c"), ("b", "c"), ("a", "out"), ("c", "out")],
        inputs=("h0", "h1"))


def reduction_cell() -> nx.DiGraph:
    return make_graph(
        {"r0": {"op": "relu_conv_bn", "args": {"kernel": 3, "stride": 2}},
         "r1": {"op": "pool", "args": {"kind": "max", "kernel": 2}}, "out": {}},
        [("h0", "r0"), ("h1", "r1"), ("r0", "out"), ("r1", "out")], inputs=("h0", "h1"))


@pytest.mark.parametrize("size", [16, 15])
def test_cell_network_with_two_input_and_reduction_cells(size):
    net = CellNetwork((3, size, size), 7, two_input_normal_cell(), reduction_cell(), channels=4,
                      cells_per_stage=2, stages=3)
    assert len(net.cells) == 3 * 2 + 2
    sizes = [size, size // 2, size // 2 // 2]  # max pool floors, stride-2 conv ceils: min wins
    widths = [cell.output_shape[0] for cell in net.cells]
    assert widths == [8, 8, 8, 16, 16, 16, 32, 32]  # concat cells double, reductions sum
    assert [cell.output_shape[1] for cell in net.cells] == \
        [sizes[0]] * 2 + [sizes[1]] * 3 + [sizes[2]] * 3
    # every cell gets inputs of exactly the shapes its graph was compiled for
    checked = []
    for cell in net.cells:
        def check(module, inputs, cell=cell):
            assert [tuple(x.shape[1:]) for x in inputs] == \
                [module.shapes[n] for n in module.inputs]
            checked.append(cell)
        cell.body.register_forward_pre_hook(check)
    x = torch.randn(2, 3, size, size)
    out = net(x)
    assert len(checked) == len(net.cells)
    assert tuple(out.shape) == (2, 7)
    out.sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    assert count_parameters(lambda: CellNetwork(
        (3, size, size), 7, two_input_normal_cell(), reduction_cell(), channels=4,
        cells_per_stage=2, stages=3)) == real_parameters(net)


def test_cell_network_default_reduction_is_residual():
    cell = nb201.to_graph(["nor_conv_3x3"] * 6)
    net = CellNetwork((3, 8, 8), 10, cell, channels=4, cells_per_stage=1)
    assert sum(type(b).__name__ == "ResidualReduction" for b in net.cells) == 2
    assert tuple(net(torch.randn(2, 3, 8, 8)).shape) == (2, 10)
    assert count_parameters(lambda: CellNetwork((3, 8, 8), 10, cell, channels=4,
                                                cells_per_stage=1)) == real_parameters(net)
