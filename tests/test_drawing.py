"""Tests of the architecture drawings and the fitness plot, on real matplotlib figures."""

import random

import matplotlib.pyplot as plt
import networkx as nx
import numpy as np
import pytest
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from deapnas import drawing
from deapnas.graph import InvalidGraphError, prune
from deapnas.spaces import macro, nb201
from deapnas.spaces.macro import Connection, MacroGenome


pytestmark = pytest.mark.usefixtures("seeded")


@pytest.fixture(autouse=True)
def closed_figures():
    yield
    plt.close("all")


def skip_graph() -> nx.DiGraph:
    """x -> a -> b -> out with the skips x -> b and x -> out."""
    graph = nx.DiGraph(inputs=["x"], output="out")
    graph.add_node("x")
    graph.add_node("a", op="conv_relu6_bn", args={"kernel": 3, "channels": 8})
    graph.add_node("b", op="pool", args={"kind": "max", "kernel": 2})
    graph.add_node("out")
    graph.add_edges_from([("x", "a"), ("a", "b"), ("b", "out"), ("x", "b"), ("x", "out")])
    return graph


def skip_genome() -> MacroGenome:
    """input -> POOL_2.M -> CONV_5.H -> CONV_3.N -> output, with the skip input -> CONV_5.H
    (a re-enabled connection), the disabled input -> output and CONV_5.H -> output, and a dead
    POOL_3.A whose only way out is disabled."""
    return MacroGenome(layers={0: "CONV_5.H", 1: "POOL_2.M", 2: "CONV_3.N", 3: "POOL_3.A"},
                       connections=[Connection(-2, -1, False, 0), Connection(-2, 0, True, 1),
                                    Connection(0, -1, False, 2), Connection(-2, 1, True, 3),
                                    Connection(1, 0, True, 4), Connection(0, 2, True, 5),
                                    Connection(2, -1, True, 6), Connection(2, 3, True, 7),
                                    Connection(3, -1, False, 8)])


def darts_cell() -> nx.DiGraph:
    """A DARTS-like normal cell: inputs c_{k-2}, c_{k-1}, four summing nodes with two op edges
    each, their concatenation as the output."""
    graph = nx.DiGraph(inputs=["c_{k-2}", "c_{k-1}"], output="c_{k}")
    graph.add_nodes_from(["c_{k-2}", "c_{k-1}"])
    graph.add_nodes_from(range(4), combine="sum")
    edges = [("c_{k-2}", 0, "sep_conv_3x3"), ("c_{k-1}", 0, "sep_conv_3x3"),
             ("c_{k-1}", 1, "skip_connect"), (0, 1, "sep_conv_5x5"),
             ("c_{k-2}", 2, "dil_conv_3x3"), (1, 2, "max_pool_3x3"),
             ("c_{k-1}", 3, "skip_connect"), (0, 3, "dil_conv_5x5")]
    for source, target, op in edges:
        node = f"{source}-{target}:{op}"
        graph.add_node(node, label=op, **({"op": "relu_conv_bn", "args": {"kernel": 3}}
                                          if "conv" in op else {}))
        graph.add_edges_from([(source, node), (node, target)])
    graph.add_node("c_{k}", combine="concat")
    graph.add_edges_from((node, "c_{k}") for node in range(4))
    return graph


def sampled(path) -> np.ndarray:
    """Points along a drawn path, curves included."""
    return np.concatenate([curve(np.linspace(0, 1, 60)) for curve, _ in path.iter_bezier()])


def assert_no_edge_through_a_node(plan: drawing.Layout) -> None:
    for (source, target), path in plan.edges.items():
        points = sampled(path)
        for node, box in plan.boxes.items():
            inside = box.contains(points, margin=1e-9)
            assert not inside.any(), f"edge {source}->{target} runs through node {node}"
        # it starts on its source's box and ends on its target's
        start, end = path.vertices[0], path.vertices[-1]
        assert abs(start[1] - (plan.boxes[source].y - plan.boxes[source].height / 2)) < 1e-9
        assert abs(end[1] - (plan.boxes[target].y + plan.boxes[target].height / 2)) < 1e-9


def assert_boxes_apart(plan: drawing.Layout) -> None:
    boxes = list(plan.boxes.values())
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert (abs(a.x - b.x) >= (a.width + b.width) / 2 or
                    abs(a.y - b.y) >= (a.height + b.height) / 2), (a.label, b.label)


def test_skip_edges_pass_beside_the_nodes_they_skip():
    plan = drawing.layout(skip_graph())
    assert set(plan.edges) == set(skip_graph().edges)
    boxes = plan.boxes
    assert boxes["x"].y > boxes["a"].y > boxes["b"].y > boxes["out"].y  # one layer each
    # a straight line from x to b would cross a, which sits between them: the drawn edge doesn't
    straight = np.linspace([boxes["x"].x, boxes["x"].y], [boxes["b"].x, boxes["b"].y], 200)
    assert boxes["a"].contains(straight).any()
    assert_no_edge_through_a_node(plan)
    assert_boxes_apart(plan)


@pytest.mark.parametrize("space", ["macro", "nb201"])
def test_no_edge_passes_through_a_node_in_random_architectures(space):
    drawn = 0
    for _ in range(40):
        if space == "macro":
            genome = macro.init_genome()
            for _ in range(random.randrange(12)):
                macro.mutate(genome)
            graph = macro.to_graph(genome)
        else:
            graph = nb201.to_graph(nb201.init_cell(list))
        try:
            plan = drawing.layout(graph)
        except InvalidGraphError:  # no input -> output path: nothing to draw
            continue
        drawn += 1
        assert set(plan.boxes) == set(prune(graph))
        assert set(plan.edges) == set(prune(graph).edges)
        assert_no_edge_through_a_node(plan)
        assert_boxes_apart(plan)
    assert drawn >= 20


def drawn_labels(ax) -> list[str]:
    return [text.get_text() for text in ax.texts]


def test_macro_drawing_shows_the_pruned_graph_and_saves(tmp_path):
    genome = skip_genome()
    ax = drawing.draw_graph(macro.to_graph(genome), title="best: validation accuracy 0.91")
    path = tmp_path / "macro.png"
    ax.figure.savefig(path, dpi=100)
    assert path.stat().st_size > 5000
    pruned = prune(macro.to_graph(genome))
    assert sorted(drawn_labels(ax)) == sorted(["input", "POOL_2.M", "CONV_5.H (sum)",
                                               "CONV_3.N", "output"])  # no dead POOL_3.A
    arrows = [p for p in ax.patches if isinstance(p, FancyArrowPatch)]
    assert len(arrows) == len(pruned.edges) == 5  # disabled connections are not drawn
    assert ax.get_title() == "best: validation accuracy 0.91"


def label_boxes(ax) -> list:
    """(text extent, box extent) in pixels for every node, after drawing."""
    ax.figure.canvas.draw()
    renderer = ax.figure.canvas.get_renderer()
    boxes = [p for p in ax.patches if isinstance(p, FancyBboxPatch)]
    assert len(boxes) == len(ax.texts)
    return [(text.get_window_extent(renderer), box.get_window_extent(renderer))
            for text, box in zip(ax.texts, boxes)]


@pytest.mark.parametrize("make", [lambda: macro.to_graph(skip_genome()),
                                  lambda: nb201.to_graph(nb201.init_cell(list)), darts_cell])
@pytest.mark.parametrize("own_axes", [False, True])
def test_labels_fit_inside_their_boxes(make, own_axes, tmp_path):
    graph = make()
    graph.add_node("extra", op="a_user_operation_with_a_long_name", args={"width": 3})
    graph.add_edges_from([(graph.graph["inputs"][0], "extra"), ("extra", graph.graph["output"])])
    ax = plt.subplots(figsize=(3, 3))[1] if own_axes else None
    ax = drawing.draw_graph(graph, ax=ax, title="a cell")
    ax.figure.savefig(tmp_path / "graph.png", dpi=100)
    assert any("\n" in label for label in drawn_labels(ax))  # the long name was wrapped
    for text, box in label_boxes(ax):
        assert box.x0 <= text.x0 and text.x1 <= box.x1 and box.y0 <= text.y0 and \
            text.y1 <= box.y1, (text, box)


def test_two_input_cell_marks_its_inputs_and_output(tmp_path):
    graph = darts_cell()
    plan = drawing.layout(graph)
    first, second, output = (plan.boxes[n] for n in ("c_{k-2}", "c_{k-1}", "c_{k}"))
    assert first.kind == second.kind == "input" and output.kind == "output"
    assert first.y == second.y == max(box.y for box in plan.boxes.values())
    assert first.x < second.x  # in the order the cell takes them
    assert output.y < min(box.y for n, box in plan.boxes.items() if n != "c_{k}")
    assert output.label == "output\n(concat)" or output.label == "output (concat)"
    assert_no_edge_through_a_node(plan)
    ax = drawing.draw_graph(graph, title="DARTS-like normal cell")
    ax.figure.savefig(tmp_path / "darts.png", dpi=100)


def test_an_input_the_cell_ignores_is_drawn_without_edges():
    graph = darts_cell()
    graph.remove_nodes_from([n for n in list(graph) if str(n).startswith("c_{k-2}-")])
    plan = drawing.layout(graph)
    assert plan.boxes["c_{k-2}"].kind == "input"
    assert not [edge for edge in plan.edges if "c_{k-2}" in edge]
    assert_no_edge_through_a_node(plan)


def test_nb201_none_edges_are_drawn_faint(tmp_path):
    cell = nb201.from_arch_string("|nor_conv_3x3~0|+|none~0|skip_connect~1|+|"
                                  "avg_pool_3x3~0|nor_conv_1x1~1|nor_conv_3x3~2|")
    plan = drawing.layout(nb201.to_graph(cell))
    assert plan.faint == {(0, "02:none"), ("02:none", 2)}
    ax = drawing.draw_graph(nb201.to_graph(cell), title="NB201 cell")
    ax.figure.savefig(tmp_path / "nb201.png", dpi=100)
    dashed = [p for p in ax.patches if isinstance(p, FancyArrowPatch)
              and p.get_linestyle() == "--"]
    assert len(dashed) == 2


def test_drawing_an_unusable_graph_says_why():
    genome = MacroGenome(layers={0: "CONV_3.N"}, connections=[
        Connection(-2, -1, False, 0), Connection(-2, 0, True, 1), Connection(0, -1, False, 2)])
    with pytest.raises(InvalidGraphError, match="no path"):
        drawing.draw_graph(macro.to_graph(genome))


# -- the fitness plot ---------------------------------------------------------------------------

def history(n: int = 40) -> list[dict]:
    records = []
    for i in range(n):
        if i % 7 == 3:
            records.append({"evaluation": i + 1, "fitness": None,
                            "reason": "node 2: spatial size collapses to zero"})
        else:
            records.append({"evaluation": i + 1, "fitness": [0.8 + 0.004 * i + 0.01 * (i % 3)],
                            "reason": None})
    records[5]["fitness"] = [0.1]  # one network that did not learn
    return records


def test_fitness_plot_keeps_failures_apart_and_an_outlier_off_the_scale(tmp_path):
    records = history()
    ax = drawing.plot_fitness(records, "validation accuracy", "fraction")
    ax.figure.savefig(tmp_path / "fitness.png", dpi=80)
    assert ax.get_ylabel() == "validation accuracy (fraction)"
    low, high = ax.get_ylim()
    assert low > 0.5  # the 0.1 outlier does not squash the real results into a line
    values = [r["fitness"][0] for r in records if r["fitness"]]
    assert high >= max(values)
    failed = [r["evaluation"] for r in records if r["reason"]]
    strips = [c for c in ax.collections if "failed" in c.get_label()]
    assert len(strips) == 1 and list(strips[0].get_offsets()[:, 0]) == failed
    assert np.all(strips[0].get_offsets()[:, 1] < drawing.FAILED_STRIP)  # in axes fraction
    assert f"failed ({len(failed)} of {len(records)})" in strips[0].get_label()
    shown = [c for c in ax.collections if c.get_label() == "evaluation"][0].get_offsets()
    assert low < shown[:, 1].min() and 0.1 not in shown[:, 1]
    off_scale = [c for c in ax.collections if "off the scale" in c.get_label()]
    assert len(off_scale) == 1 and list(off_scale[0].get_offsets()[:, 0]) == [6]


@pytest.mark.parametrize("maximize", [True, False])
def test_fitness_plot_draws_the_running_best(maximize):
    records = history()
    ax = drawing.plot_fitness(records, "loss", maximize=maximize)
    best = [line for line in ax.lines if line.get_label() == "best single evaluation so far"][0]
    values = [r["fitness"][0] for r in records if not r["reason"]]
    running = (np.maximum if maximize else np.minimum).accumulate(values)
    assert list(best.get_ydata()) == pytest.approx(list(running))
    assert ax.get_ylabel() == "loss"


def test_fitness_plot_of_failures_only_shows_them_and_no_values():
    records = [{"evaluation": i, "fitness": None, "reason": "no path"} for i in (1, 5, 9)]
    ax = drawing.plot_fitness(records, "validation accuracy")
    low, high = ax.get_xlim()
    assert low < 1 and high > 9 and len(ax.get_yticks()) == 0
    assert "failed (3 of 3)" in ax.get_legend().get_texts()[0].get_text()
