"""The macro paper's own network, REMNet, built by deapnas to the size the paper reports
(``deapnas.published.re``; the parity table on the method's docs page)."""
import pytest

from deapnas.published import networks
from deapnas.published.re import remnet
from deapnas.spaces import macro

BUILT = {"REMNet, C = 128": 791_338, "REMNet, C = 256": 3_159_626,
         "REMNet, C = 128, same-padded convolutions": 1_495_090}


@pytest.mark.parametrize("network", networks("re"), ids=lambda n: n.name)
def test_remnet_builds_to_its_count(network):
    assert network.parameters() == BUILT[network.name]


def test_valid_padding_gives_the_papers_counts():
    """791,338 exactly at C = 128; the paper's "3.1 million" at C = 256 is 3.16 M (within 2 %)."""
    by_name = {n.name: n for n in networks("re")}
    assert by_name["REMNet, C = 128"].parameters() == by_name["REMNet, C = 128"].paper_parameters
    wide = by_name["REMNet, C = 256"]
    assert wide.parameters() == pytest.approx(wide.paper_parameters, rel=0.02)


def test_remnet_is_the_papers_description():
    """Four convolutions of increasing kernel size, a 5x5 average pool, then two CONV_3.H
    branches to the output (the paper's Sec. 4), and a genome crossover can align."""
    genome = remnet()
    graph = macro.to_graph(genome)
    chain, node = [], macro.INPUT
    while len(list(graph.successors(node))) == 1:
        node = next(iter(graph.successors(node)))
        chain.append(genome.layers[node])
    assert chain == ["CONV_2.N", "CONV_2.N", "CONV_3.N", "CONV_5.N", "POOL_5.A"]
    branches = sorted(genome.layers[n] for n in graph.successors(node))
    assert branches == ["CONV_3.H", "CONV_3.H"]
    assert len(macro.node_keys(genome)[0]) == len(genome.layers) + 2
