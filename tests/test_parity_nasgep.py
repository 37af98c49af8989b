"""NASGEP's published cells (Figs. 4 and 5) rebuilt at the final training's settings, with the
count deapnas builds and the parity table the docs page shows."""
import csv
import sys
from pathlib import Path

import torch
from torch import nn

from deapnas import gep
from deapnas.methods import nasgep as method
from deapnas.published import networks
from deapnas.published import nasgep as published
from deapnas.spaces import nasgep as space

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ROOT / "docs" / "figures"
sys.path.insert(0, str(ROOT / "benchmarks"))  # parity.py imports its sibling figures.py

import parity  # noqa: E402


def test_the_published_cells_decode_to_the_drawn_trees():
    model = published.model()
    assert str(gep.karva(model.normal)) == "cat(cat(add(nA, nB), nC), cat(nD, nE))"
    assert str(gep.karva(model.reduction)) == "cat(cat(cat(rA, rB), rC), add(rD, rE))"
    normal = space.cell_graph(model.normal, model.genes)
    reduction = space.cell_graph(model.reduction, model.genes, reduction=True)
    convs = {kind: sorted(a["label"] for _, a in graph.nodes(data=True)
                          if a.get("op") == "gep_conv")
             for kind, graph in (("normal", normal), ("reduction", reduction))}
    # Fig. 4: seven convolutions; Fig. 5: ten, stride 2 where they read an input
    assert convs["normal"] == sorted(["dep5x5", "dep1x7", "dep7x1", "sep7x1", "isep1x7",
                                      "sep5x5", "dep5x5"])
    assert convs["reduction"] == sorted(["isep3x3/2", "sep3x3/2", "isep3x3", "sep5x5/2",
                                         "isep1x7/2", "sep1x7/2", "sep1x7", "isep5x5/2",
                                         "isep1x7", "isep7x1/2"])
    for graph in (normal, reduction):  # leaves: Fig. 4 three h(i-1), four h(i-2); Fig. 5 six, one
        leaves = [next(graph.predecessors(n)) for n in graph.nodes
                  if set(graph.predecessors(n)) & {"h1", "h2"}]
        assert sorted(leaves) == sorted(["h1"] * 3 + ["h2"] * 4 if graph is normal else
                                        ["h1"] * 6 + ["h2"])


def test_the_published_network_is_built_at_the_final_settings_and_counted():
    (network,) = networks("nasgep")
    options = method.Options()
    assert (published.CHANNELS, published.CELLS_PER_STAGE) == (options.final_channels,
                                                               options.cells)
    built = network.build()
    assert network.parameters() == 4_001_034
    adapters = sum(p.numel() for cell in built.cells for p in cell.adapt.parameters())
    assert adapters > network.parameters() / 2  # the Adapt row of the table of parts
    assert built(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    # the paper's 3.62 M is a mean over five runs; this model is 10.5 % above it, and the
    # page says it differs (it does not claim a match)
    assert abs(network.parameters() - network.paper_parameters) / network.paper_parameters < 0.11


def test_the_docs_table_is_the_one_the_script_writes():
    rows = list(csv.reader((FIGURES / "parity_nasgep.csv").read_text().splitlines()))
    (network,) = networks("nasgep")
    assert rows[1][:3] == [network.name, network.reported_as, f"{network.parameters():,}"]
    assert isinstance(network.build(), nn.Module)


def test_the_table_of_parts_adds_up_and_counts_the_adapters():
    """``parity_nasgep_parts`` (benchmarks/parity.py): the parts sum to the network's count,
    and the Adapt row is the parameters of every cell's input adapters."""
    (network,) = networks("nasgep")
    built = network.build()
    rows = {part: int(size.replace(",", "")) for _, part, size, _ in parity.parts_rows("nasgep")}
    assert sum(rows.values()) == network.parameters()
    assert rows[parity.CELL_PARTS["adapt"]] == sum(
        p.numel() for cell in built.cells for p in cell.adapt.parameters()) == 2_185_600
