"""Rough edges a new user met: the macro space on small images (``clamp_pools``), and API calls
that failed with confusing errors."""

from types import SimpleNamespace

import pytest
import torch
from deap import tools
from torch import nn

from conftest import chain_genome
from deapnas.graph import InvalidGraphError, compile_graph, infer_shapes
from deapnas.networks import count_parameters
from deapnas.ops import get_op
from deapnas.spaces import macro, nb201


pytestmark = pytest.mark.usefixtures("seeded")


# -- clamped pools ------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["avg", "max"])
@pytest.mark.parametrize("kernel", [2, 3, 5])
@pytest.mark.parametrize("size", [1, 2, 4, 5, 9, 12])
def test_clamped_pool_matches_its_shape_rule_and_the_plain_pool(kind, kernel, size):
    op = get_op("pool")
    x = torch.randn(2, 3, size, size + 1)
    clamped = op.build(3, kind=kind, kernel=kernel, clamp=True)(x)
    assert tuple(clamped.shape[1:]) == op.output_shape((3, size, size + 1), kind=kind,
                                                       kernel=kernel, clamp=True)
    if size >= kernel:  # a pool that fits is pooled exactly as without clamping
        torch.testing.assert_close(clamped, op.build(3, kind=kind, kernel=kernel)(x))
    else:
        with pytest.raises(ValueError, match="collapses"):
            op.output_shape((3, size, size + 1), kind=kind, kernel=kernel)


def test_a_clamped_pool_smaller_than_its_input_pools_the_whole_input():
    x = torch.randn(4, 2, 3, 3)
    out = get_op("pool").build(2, kind="max", kernel=5, clamp=True)(x)
    torch.testing.assert_close(out, x.amax(dim=(2, 3), keepdim=True))
    out = get_op("pool").build(2, kind="avg", kernel=5, clamp=True)(x)
    torch.testing.assert_close(out, x.mean(dim=(2, 3), keepdim=True))


def test_a_clamped_pool_takes_no_padding():
    with pytest.raises(ValueError, match="no padding"):
        get_op("pool").build(2, kind="max", kernel=3, padding=1, clamp=True)


def test_clamp_pools_saves_macro_genomes_that_collapse_small_images():
    genome = chain_genome("POOL_5.M", "CONV_3.N", "POOL_5.A")
    with pytest.raises(InvalidGraphError, match="collapses"):
        infer_shapes(macro.to_graph(genome), [(1, 8, 8)])
    assert infer_shapes(macro.to_graph(genome, clamp_pools=True), [(1, 8, 8)])[macro.OUTPUT] \
        == (64, 1, 1)
    net = macro.build_network(genome, (1, 8, 8), 10, channels=8, clamp_pools=True)
    assert net(torch.randn(5, 1, 8, 8)).shape == (5, 10)


def test_clamp_pools_is_off_by_default_and_a_network_option():
    genome = chain_genome("POOL_2.A", "CONV_3.H")
    plain = macro.to_graph(genome)
    assert "clamp" not in plain.nodes[0]["args"]  # the paper's pools, and their keys, unchanged
    assert plain.nodes[0]["args"] == macro.to_graph(genome, clamp_pools=False).nodes[0]["args"]
    options = SimpleNamespace(channels=16, clamp_pools=True)
    assert macro.SPACE.network_kwargs(options) == {"channels": 16, "clamp_pools": True}


def test_no_fresh_macro_genome_collapses_digits_with_clamp_pools():
    collapsed = {False: 0, True: 0}
    for _ in range(200):
        genome = macro.init_genome()
        for clamp in collapsed:
            try:
                infer_shapes(macro.to_graph(genome, clamp_pools=clamp), [(1, 8, 8)])
            except InvalidGraphError as error:
                assert "collapses" in str(error)
                collapsed[clamp] += 1
    assert collapsed[True] == 0 and collapsed[False] > 0


# -- API calls that used to fail confusingly -----------------------------------------------------

def test_count_parameters_takes_a_module_or_a_builder():
    def build():
        return macro.build_network(chain_genome("CONV_3.N"), (1, 8, 8), 10, channels=8)
    module = build()
    real = sum(p.numel() for p in module.parameters())
    assert count_parameters(module) == count_parameters(build) == real
    with pytest.raises(TypeError, match="nn.Module or a function"):
        count_parameters(42)


@pytest.mark.parametrize("shapes", [[(8, 8)], [(1, 8, 8, 1)], [8], [(1, 0, 8)]])
def test_malformed_input_shapes_raise_invalid_graph_error(shapes):
    graph = macro.to_graph(chain_genome("CONV_3.N"))
    with pytest.raises(InvalidGraphError, match=r"\(channels, height, width\)"):
        infer_shapes(graph, shapes)
    with pytest.raises(InvalidGraphError, match=r"\(channels, height, width\)"):
        compile_graph(graph, shapes)


def test_nb201_strings_become_individuals_ready_for_a_toolbox():
    text = "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_1x1~1|none~2|"
    cell = nb201.from_arch_string(text)
    assert isinstance(cell, nb201.SPACE.individual()) and cell == nb201.from_json(text)
    cell.fitness.values = (0.9,)
    hof = tools.HallOfFame(1)
    hof.update([cell])
    assert hof[0] == cell and nb201.arch_string(hof[0]) == text
    assert type(nb201.from_arch_string(text, list)) is list
    assert isinstance(nb201.build_network(cell, (3, 8, 8), 10, channels=4, cells_per_stage=1),
                      nn.Module)
