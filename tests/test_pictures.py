"""The pictures ``deapnas show`` writes tell the truth: every edge has its arrowhead, panels
share one scale and fill their figure, fitness.png marks the pick and the phases of a search,
best.png names parameters and width and draws what the network holds (RENAS's stride-2
reduction cells, the macro network's fully connected head, MiniGen without boxes that are not
layers). Assertions are on the figure objects (labels, kinds, markers, extents), not pixels."""
import json
import shutil

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.patches import FancyArrowPatch, Rectangle
from matplotlib.path import Path as MplPath

from deapnas import drawing, report
from deapnas.cli import main
from deapnas.drawing import Pick
from deapnas.spaces import darts, macro, minigen, nasnet

from conftest import NB201_METRIC, chain_genome
from test_drawing import darts_cell

pytestmark = pytest.mark.usefixtures("seeded")

#: A MiniGen genome whose second cell keeps the width it receives (64) and is a residual
#: block: its width change and its skip change nothing.
SAME_WIDTH = [[".", 1, ["3*3 conv", "5*5 conv"]], [64, 1, ["identity", "3*3 conv", "5*5 conv"]],
              [32, 1, ["3*3 conv", "5*5 dconv"]]]
#: A RENAS cell: block 0 applies identity to c-2 and a separable convolution to c-1, block 1
#: identity to block 0 and a pool to c-1.
CELL = [0, 1, "identity", "sep_conv_3x3", 2, 1, "identity", "max_pool_3x3"]


@pytest.fixture(autouse=True)
def closed_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def renas_run(tmp_path_factory):
    """A tiny trained RENAS search: 3 from scratch, 3 fine-tuned children, 3 retrained."""
    out = tmp_path_factory.mktemp("renas") / "run"
    assert main(["search", "--algorithm", "renas", "--evaluations", "9", "--population", "3",
                 "--sample-size", "2", "--blocks", "2", "--epochs", "1", "--channels", "4",
                 "--out", str(out),
                 "--quiet"]) == 0
    return out


def best_of(directory) -> dict:
    return json.loads((directory / "best.json").read_text())


def history_of(directory) -> list[dict]:
    return [json.loads(line) for line in (directory / "history.jsonl").read_text().splitlines()]


def node_texts(figure) -> list:
    return [text for ax in figure.axes for text in ax.texts]


# -- arrowheads ---------------------------------------------------------------------------------

@pytest.mark.parametrize("make", [
    lambda: macro.to_graph(chain_genome("CONV_5.N", "CONV_5.N", "POOL_5.A")),
    lambda: nasnet.to_graph(CELL, reduction=True), darts_cell,
    lambda: minigen.cells(SAME_WIDTH)["#2 32-channel"]], ids=["macro", "nasnet", "darts",
                                                            "minigen"])
def test_every_edge_ends_in_an_arrowhead(make):
    """A path whose last segment has no length gets no arrowhead from matplotlib; layers of
    equal boxes made one by rounding (the first edges of a chain lost theirs)."""
    graph = make()
    plan = drawing.layout(graph)
    for edge, path in plan.edges.items():
        assert not np.allclose(path.vertices[-2], path.vertices[-1], atol=1e-12), edge
    ax = drawing.draw_graph(graph)
    ax.figure.canvas.draw()
    arrows = [p for p in ax.patches if isinstance(p, FancyArrowPatch)]
    assert len(arrows) == len(plan.edges)
    for arrow in arrows:  # the drawn path holds the filled head, a closed polygon
        assert MplPath.CLOSEPOLY in arrow.get_path().codes


# -- panels ---------------------------------------------------------------------------------------

def test_panels_share_one_scale_and_fill_their_figure():
    figure = drawing.draw_graphs({name: graph for name, graph in
                                  minigen.cells(SAME_WIDTH).items()}, title="three cells")
    figure.canvas.draw()
    assert len(figure.axes) == 3
    assert len({text.get_fontsize() for text in node_texts(figure)}) == 1
    arrows = [p for ax in figure.axes for p in ax.patches if isinstance(p, FancyArrowPatch)]
    assert len({arrow.get_mutation_scale() for arrow in arrows}) == 1
    tops = {round(ax.get_position().y1, 6) for ax in figure.axes}
    assert len(tops) == 1  # the inputs level at the top
    tallest = max(ax.get_position().height for ax in figure.axes)
    assert tallest > 0.6  # the drawing, not white space, fills the figure
    widths = sum(ax.get_position().width for ax in figure.axes)
    assert widths > 0.5
    assert figure._suptitle.get_text() == "three cells"


def test_minigen_cells_draw_no_box_that_is_not_a_layer():
    cells = minigen.cells(SAME_WIDTH)
    second = cells["#1 64-channel"]
    boxes = drawing.layout(second).boxes.values()
    assert "identity" not in [box.label for box in boxes]
    # the one box of the identity kind left is the residual sum, which merges two inputs
    assert [box.label for box in boxes if box.kind == "identity"] == ["residual (sum)"]
    # the skip is an edge from the cell's input straight to the residual sum
    residual = next(n for n, a in second.nodes(data=True) if a.get("label") == "residual")
    assert "input" in set(second.predecessors(residual))
    # a width change that is one stays a box
    third = cells["#2 32-channel"]
    assert any(a.get("label") == "1x1 conv 64->32" for _, a in third.nodes(data=True))


# -- RENAS's reduction cell -----------------------------------------------------------------

def test_renas_reduction_cell_names_its_stride_two_operations():
    normal, reduction = nasnet.to_graph(CELL), nasnet.to_graph(CELL, reduction=True)
    labels = {node: attrs.get("label") for node, attrs in reduction.nodes(data=True)}
    assert labels["b0_1_identity"] == "conv_1x1 stride 2"
    assert labels["b0_2_sep_conv_3x3"] == "sep_conv_3x3 stride 2"
    assert labels["b1_2_max_pool_3x3"] == "max_pool_3x3 stride 2"
    assert labels["b1_1_identity"] == "identity"  # applied to block 0: stride 1
    plan = drawing.layout(reduction)
    assert plan.boxes["b0_1_identity"].kind == "conv"
    assert [attrs.get("label") for _, attrs in normal.nodes(data=True) if "label" in attrs] == \
        ["identity", "sep_conv_3x3", "identity", "max_pool_3x3"]  # the normal cell unchanged


def test_darts_reduction_cell_names_its_stride_two_operations():
    genotype = darts.Genotype(
        normal=[("sep_conv_3x3", 0), ("skip_connect", 1)] * 4, normal_concat=[2, 3, 4, 5],
        reduce=[("skip_connect", 0), ("max_pool_3x3", 1), ("dil_conv_3x3", 2),
                ("sep_conv_5x5", 0)] * 2, reduce_concat=[2, 3, 4, 5])
    cells = darts.cells(genotype)
    reduce = {n: a["label"] for n, a in cells["reduce"].nodes(data=True) if "label" in a}
    assert reduce["2.0:skip_connect"] == "factorized_reduce stride 2"
    assert reduce["2.1:max_pool_3x3"] == "max_pool_3x3 stride 2"
    assert reduce["3.0:dil_conv_3x3"] == "dil_conv_3x3"  # fed by node 2: stride 1
    assert reduce["3.1:sep_conv_5x5"] == "sep_conv_5x5 stride 2"
    assert not [a for _, a in cells["normal"].nodes(data=True)
                if "stride" in a.get("label", "")]


def test_renas_best_png_shows_both_cells_with_parameters_and_width(renas_run):
    figure = report.best_figure(renas_run)
    best = best_of(renas_run)
    title = figure._suptitle.get_text().replace("\n", " ")
    assert f"{best['params']:,} parameters" in title and "--channels 4" in title
    assert "--cells 1" in title
    normal, reduction = figure.axes
    assert normal.get_title() == "normal cell" and reduction.get_title() == "reduction cell"
    inputs_used = [block[i] for block in best["genome"] for i in (0, 1)]
    strided = [t.get_text() for t in reduction.texts if "stride 2" in t.get_text()]
    assert len(strided) == sum(1 for i in inputs_used if i < 2)  # each op on a cell input
    assert not [t for t in normal.texts if "stride" in t.get_text()]
    figure.canvas.draw()
    assert max(ax.get_position().height for ax in figure.axes) > 0.6  # no empty third


# -- the macro network ------------------------------------------------------------------------

def test_macro_best_png_draws_the_width_and_the_fully_connected_head(trained):
    figure = report.best_figure(trained)
    (ax,) = figure.axes
    texts = [t.get_text().replace("\n", " ") for t in ax.texts]
    heads = [t for t in texts if t.startswith("FC ")]
    assert len(heads) == 3 and heads[-1].startswith("FC ") and "->10" in heads[-1]
    assert all("parameters)" in t for t in heads)
    assert any(t.startswith("flatten") for t in texts)
    convs = [t for t in texts if t.startswith("CONV_")]
    assert all("filters" in t for t in convs)
    title = figure._suptitle.get_text().replace("\n", " ")
    assert "--channels 8" in title and "parameters" in title


def test_macro_best_png_without_the_data_draws_the_body(trained, tmp_path):
    """The head's size needs the images' shape: when the data has moved away, best.png still
    draws the network's body (and show still works)."""
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    config = json.loads((run / "config.json").read_text())
    config["run"].update(dataset="idx", data_dir=str(tmp_path / "moved"))
    (run / "config.json").write_text(json.dumps(config))
    (ax,) = report.best_figure(run).axes
    texts = [t.get_text() for t in ax.texts]
    assert "output" in texts and not [t for t in texts if t.startswith("FC ")]


def test_training_png_title_names_parameters_and_width(trained):
    training = json.loads((trained / "train.json").read_text())
    title = report.training_figure(trained).axes[0].get_title()
    assert f"{training['params']:,} parameters" in title
    assert f"--channels {training['channels']}" in title


# -- fitness.png --------------------------------------------------------------------------------

def test_fitness_png_marks_renas_phases_and_the_pick(renas_run):
    figure = report.history_figure(renas_run)
    ax = figure.axes[0]
    spans = {p.get_label(): p for p in ax.patches if isinstance(p, Rectangle)}
    labels = sorted(spans)
    assert labels == ["children, fine-tuned from the parent's weights (evaluations 4-6)",
                      "final population, retrained from scratch (evaluations 7-9)",
                      "first population, trained from scratch (evaluations 1-3)"]
    first = spans[labels[2]]
    assert (first.get_x(), first.get_x() + first.get_width()) == (0.5, 3.5)
    best, history = best_of(renas_run), history_of(renas_run)
    pick = [line for line in ax.lines if line.get_label().startswith("the pick")]
    assert len(pick) == 1 and list(pick[0].get_ydata()) == [best["fitness"]] * 2
    ringed = [c for c in ax.collections if c.get_label() == "evaluations of the picked "
                                                              "architecture"]
    assert list(ringed[0].get_offsets()[:, 0]) == [r["evaluation"] for r in history
                                                   if r["key"] == best["key"]]
    low, high = ax.get_ylim()
    assert low < best["fitness"] < high
    assert ax.get_legend() is not None


def test_fitness_png_marks_a_pick_that_is_a_mean_below_the_best():
    """The pick of aging evolution is the best mean of repeated evaluations, not the best
    single one: the line of the pick is where the mean is."""
    records = [{"evaluation": i + 1, "fitness": [v], "reason": None, "key": k}
               for i, (v, k) in enumerate([(0.90, "a"), (0.9931, "b"), (0.94, "b"),
                                           (0.9117, "b"), (0.95, "c")])]
    pick = Pick("the pick: validation accuracy 0.9483 (mean of 3 evaluations)", 0.9483,
                [2, 3, 4])
    ax = drawing.plot_fitness(records, "validation accuracy", pick=pick)
    line = next(line for line in ax.lines if line.get_label() == pick.label)
    assert list(line.get_ydata()) == [0.9483, 0.9483]
    best = next(line for line in ax.lines if line.get_label().startswith("best single"))
    assert max(best.get_ydata()) == 0.9931  # the two are told apart
    ringed = next(c for c in ax.collections if "picked" in c.get_label())
    assert list(ringed.get_offsets()[:, 0]) == [2, 3, 4]


def test_fitness_png_names_a_pick_that_is_not_on_its_axis():
    records = [{"evaluation": i, "fitness": [1.2 - 0.1 * i], "reason": None} for i in (1, 2, 3)]
    pick = Pick("the pick: supernet accuracy 0.61, not on this axis")
    ax = drawing.plot_fitness(records, "compound fitness", maximize=False, pick=pick)
    assert not [line for line in ax.lines if line.get_label() == pick.label
                and len(line.get_ydata())]  # no line at a value of another quantity
    assert pick.label in [t.get_text().replace("\n", " ") for t in ax.get_legend().get_texts()]


def test_fitness_png_joins_the_epochs_of_each_nasgep_model():
    """NASGEP trains each surviving model one more epoch per generation: a point is one epoch
    of one model, and each model's points are joined."""
    models = ["m0", "m1", "m2", "m0", "m2", "m0"]
    records = [{"evaluation": i + 1, "fitness": [0.4 + 0.1 * i], "reason": None,
                "info": {"model": m}} for i, m in enumerate(models)]
    lineage = report.LINEAGES["nasgep"]
    assert lineage.field == "model"
    ax = drawing.plot_fitness(records, "validation accuracy", lineage=lineage)
    joined = [line for line in ax.lines if line.get_alpha() == 0.4]
    assert sorted(list(line.get_xdata()) for line in joined) == [[1, 4, 6], [3, 5]]
    assert [line.get_label() for line in joined].count(lineage.label) == 1


def test_tabular_renas_has_two_phases_and_a_title_without_a_network(tmp_path, nb201_csv):
    out = tmp_path / "run"
    assert main(["search", "--algorithm", "renas", "--space", "nb201", "--dataset", "nb201",
                 "--table", str(nb201_csv), "--metric", NB201_METRIC, "--evaluations", "12",
                 "--population", "5", "--sample-size", "2", "--out", str(out), "--quiet"]) == 0
    ax = report.history_figure(out).axes[0]
    assert sorted(p.get_label() for p in ax.patches if isinstance(p, Rectangle)) == [
        "children (evaluations 6-12)", "first population (evaluations 1-5)"]
    title = report.best_figure(out)._suptitle.get_text().replace("\n", " ")
    assert "table look-up" in title
