"""Pictures of architectures and searches: :func:`draw_graph` for any compiler graph (see
:mod:`deapnas.graph`) and :func:`draw_graphs` for several side by side at one scale,
:func:`plot_fitness` for the history of a search (with its :class:`Pick`, its :class:`Phase`
stretches and each :class:`Lineage` joined), :func:`plot_training` for the curve of a final
training.

An architecture is drawn as a layered graph (Sugiyama et al., 1981 [Sugiyama1981]_): the
pruned graph's nodes go to layers by their longest path from an input (inputs at the top, the
output alone at the bottom), an edge that spans several layers passes each layer in a slot of
its own, the order within layers is chosen by the barycentre heuristic to cut crossings, and
each edge is a curve that stays in the empty band between two layers except where it runs
vertically through its own slot or its own node's column. No edge therefore passes through a
node. Boxes are sized to their (wrapped, monospaced) labels.
"""
from __future__ import annotations

import itertools
import math
import textwrap
from dataclasses import dataclass, field
from typing import Hashable, Mapping, Optional, Sequence

import matplotlib

matplotlib.use("Agg")  # files only; no display is needed or wanted
import matplotlib.pyplot as plt  # noqa: E402
import networkx as nx  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402
from matplotlib.path import Path  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from matplotlib.transforms import Affine2D  # noqa: E402

from .graph import inputs_of, output_of, prune  # noqa: E402

#: Horizontal advance of one character of the monospaced font, in font sizes (DejaVu Sans Mono).
CHAR_WIDTH = 0.61
LINE_HEIGHT = 1.3
WRAP = 14           # characters per label line
PAD = 0.6           # space around a label, in font sizes
GAP = 2.0           # between neighbours in a layer, in font sizes
LAYER_GAP = 4.0     # between layers, in font sizes
TITLE_SIZE = 1.15   # title font size, in label font sizes
SLOT = 1.0          # width of an edge's slot in a layer it passes, in font sizes
FAILED_STRIP = 0.1  # height of the strip for failed candidates, as a fraction of the axes
COLOURS = {"input": "#b6d7a8", "output": "#f4cccc", "conv": "#cfe2f3", "pool": "#fce5cd",
           "zero": "#f3f3f3", "identity": "#fff2cc", "junction": "#ffffff", "other": "#d9d2e9"}


@dataclass
class Box:
    """A drawn node: centre, size (inches at the layout's font size), label and style."""

    x: float
    y: float
    width: float
    height: float
    label: str
    kind: str

    def contains(self, points: np.ndarray, margin: float = 0.0) -> np.ndarray:
        """Which of ``points`` (an n x 2 array) lie inside the box shrunk by ``margin``."""
        return ((np.abs(points[:, 0] - self.x) < self.width / 2 - margin) &
                (np.abs(points[:, 1] - self.y) < self.height / 2 - margin))


@dataclass
class Layout:
    """Where everything goes: a box per node, a path per edge, the drawing's extent (inches at
    font size ``fontsize``; y grows upwards, the inputs are at the top)."""

    boxes: dict[Hashable, Box]
    edges: dict[tuple, Path]
    width: float
    height: float
    fontsize: float
    faint: set = field(default_factory=set)  # edges to or from a "zero" op: no data flows


class _Slot:
    """A place an edge takes in a layer it passes without a node there."""

    def __init__(self, edge: tuple):
        self.edge = edge


def layout(graph: nx.DiGraph, fontsize: float = 8.0) -> Layout:
    """The layered layout of ``graph`` after pruning (see the module docstring)."""
    graph = prune(graph)
    em = fontsize / 72  # one font size, in inches
    boxes = {node: _box(graph, node, em) for node in graph}
    layers, chains = _layers(graph)
    _order(layers, chains)
    widths = {item: boxes[item].width if item in boxes else SLOT * em
              for layer in layers for item in layer}
    xs = _positions(layers, widths, chains, GAP * em)
    bands = _bands(layers, boxes, em)
    for layer, (top, bottom) in zip(layers, bands):
        for item in layer:
            if item in boxes:
                boxes[item].x, boxes[item].y = xs[item], (top + bottom) / 2
    depth = {item: d for d, layer in enumerate(layers) for item in layer}
    ports = _ports(graph, boxes, chains, xs)
    left = min(xs[i] - widths[i] / 2 for i in xs)
    bottom = bands[-1][1]
    paths = {edge: _route(chain, ports[edge, "out"], ports[edge, "in"], boxes, xs, bands,
                          depth[edge[0]]).transformed(Affine2D().translate(-left, -bottom))
             for edge, chain in chains.items()}
    for box in boxes.values():
        box.x, box.y = box.x - left, box.y - bottom
    faint = {e for e in graph.edges if "zero" in (boxes[e[0]].kind, boxes[e[1]].kind)}
    width = max(xs[i] + widths[i] / 2 for i in xs) - left
    return Layout(boxes, paths, width, bands[0][0] - bottom, fontsize, faint)


def _bands(layers: list[list], boxes: dict, em: float) -> list[tuple[float, float]]:
    """(top, bottom) of each layer, as tall as its tallest box, the first at y = 0 and each
    next one ``LAYER_GAP`` below."""
    bands, top = [], 0.0
    for layer in layers:
        height = max((boxes[i].height for i in layer if i in boxes), default=em)
        bands.append((top, top - height))
        top -= height + LAYER_GAP * em
    return bands


def _label(graph: nx.DiGraph, node) -> tuple[str, str]:
    """A node's label and kind (which sets its colour)."""
    attrs, inputs = graph.nodes[node], inputs_of(graph)
    if node in inputs:
        return ("input" if len(inputs) == 1 else f"input {node}"), "input"
    op = attrs.get("op", "identity")
    if node == output_of(graph):
        text, kind = "output", "output"
    elif "label" in attrs:  # the space's own name, e.g. CONV_3.N or nor_conv_3x3
        text, kind = str(attrs["label"]), _kind(f"{op} {attrs['label']}")
    elif op == "identity":  # a junction, such as a NAS-Bench-201 node
        text, kind = f"node {node}", "junction"
    else:
        args = " ".join(f"{k}={v}" for k, v in attrs.get("args", {}).items())
        text, kind = f"{op} {args}".strip(), _kind(op)
    if graph.in_degree(node) > 1:
        text += f" ({attrs.get('combine', 'sum')})"
    return text, kind


def _kind(name: str) -> str:
    """The colour group of an op, from its registry name and the space's label for it."""
    lowered = name.lower()
    return next((kind for kind in ("zero", "conv", "pool", "identity") if kind in lowered),
                "other")


def _box(graph: nx.DiGraph, node, em: float) -> Box:
    text, kind = _label(graph, node)
    lines = textwrap.wrap(text, WRAP, break_on_hyphens=False) or [""]
    width = (max(map(len, lines)) * CHAR_WIDTH + 2 * PAD) * em
    height = (len(lines) * LINE_HEIGHT + 2 * PAD) * em
    return Box(0.0, 0.0, width, height, "\n".join(lines), kind)


def _layers(graph: nx.DiGraph) -> tuple[list[list], dict[tuple, list]]:
    """Nodes by longest path from an input, and each edge's chain of items, one per layer from
    its source to its target (slots in the layers it passes)."""
    rank: dict = {}
    for node in nx.topological_sort(graph):
        rank[node] = max((rank[p] + 1 for p in graph.predecessors(node)), default=0)
    layers: list[list] = [[] for _ in range(max(rank.values()) + 1)]
    for node in graph:  # the graph's own order first (inputs in their given order)
        layers[rank[node]].append(node)
    chains = {}
    for edge in graph.edges:
        slots = [_Slot(edge) for _ in range(rank[edge[0]] + 1, rank[edge[1]])]
        for depth, slot in enumerate(slots, rank[edge[0]] + 1):
            layers[depth].append(slot)
        chains[edge] = [edge[0], *slots, edge[1]]
    return layers, chains


def _links(layers: list[list], chains: dict) -> nx.DiGraph:
    """Items joined layer to layer along the edges (an input that feeds nothing has none)."""
    links = nx.DiGraph()
    links.add_nodes_from(item for layer in layers for item in layer)
    for chain in chains.values():
        links.add_edges_from(zip(chain, chain[1:]))
    return links


def _order(layers: list[list], chains: dict, sweeps: int = 8) -> None:
    """Reorder each layer (in place) by the mean position of its neighbours in the previous
    layer (downwards) or the next (upwards), keeping the order with the fewest crossings. The
    inputs keep their order."""
    links = _links(layers, chains)
    best, fewest = [list(layer) for layer in layers], _crossings(layers, links)
    for sweep in range(sweeps):
        down = sweep % 2 == 0
        for depth in (range(1, len(layers)) if down else range(len(layers) - 2, 0, -1)):
            near = layers[depth - 1] if down else layers[depth + 1]
            where = {item: i for i, item in enumerate(near)}
            neighbours = links.predecessors if down else links.successors
            keys = {item: _barycentre([where[n] for n in neighbours(item) if n in where], i)
                    for i, item in enumerate(layers[depth])}
            layers[depth].sort(key=keys.__getitem__)
        crossings = _crossings(layers, links)
        if crossings < fewest:
            best, fewest = [list(layer) for layer in layers], crossings
    layers[:] = best


def _barycentre(positions: list, default: float) -> float:
    return sum(positions) / len(positions) if positions else default


def _crossings(layers: list[list], links: nx.DiGraph) -> int:
    count = 0
    for upper, lower in zip(layers, layers[1:]):
        at = {item: i for i, item in enumerate(lower)}
        spans = [(i, at[s]) for i, item in enumerate(upper) for s in links.successors(item)]
        count += sum(1 for a, b in spans for c, d in spans if a < c and b > d)
    return count


def _positions(layers: list[list], widths: dict, chains: dict, gap: float, sweeps: int = 8
               ) -> dict:
    """x of every item: each pulled towards the mean x of its neighbours, keeping the layer's
    order and at least ``gap`` between neighbours (an isotonic regression per layer)."""
    links = _links(layers, chains)
    xs = {}
    for layer in layers:
        offsets = _offsets(layer, widths, gap)
        for item, offset in zip(layer, offsets):
            xs[item] = offset - offsets[-1] / 2
    for sweep in range(sweeps):
        down = sweep % 2 == 0
        for layer in (layers[1:] if down else layers[-2::-1]):
            neighbours = links.predecessors if down else links.successors
            targets = [_barycentre([xs[n] for n in neighbours(item)], xs[item])
                       for item in layer]
            offsets = _offsets(layer, widths, gap)
            fitted = _isotonic(np.array(targets) - offsets) + offsets
            xs.update(zip(layer, fitted))
    return xs


def _offsets(layer: list, widths: dict, gap: float) -> np.ndarray:
    """Centre of each item when the layer is packed from 0 with ``gap`` between items."""
    steps = [0.0] + [(widths[a] + widths[b]) / 2 + gap for a, b in zip(layer, layer[1:])]
    return np.cumsum(steps)


def _isotonic(values: np.ndarray) -> np.ndarray:
    """The non-decreasing sequence closest to ``values`` in least squares (pool adjacent
    violators)."""
    blocks: list[list[float]] = []  # [mean, count]
    for value in values:
        blocks.append([float(value), 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            mean, count = blocks.pop()
            blocks[-1] = [(blocks[-1][0] * blocks[-1][1] + mean * count) / (blocks[-1][1] + count),
                          blocks[-1][1] + count]
    return np.concatenate([[mean] * count for mean, count in blocks])


def _ports(graph: nx.DiGraph, boxes: dict, chains: dict, xs: dict) -> dict:
    """Where each edge leaves its source's bottom and enters its target's top: the edges of a
    node spread evenly across its box, in the order of the items they go to, so that they
    leave and arrive apart. Keys ``(edge, "out")`` and ``(edge, "in")``."""
    ports = {}
    for node, box in boxes.items():
        for side, edges, next_item in (("out", graph.out_edges(node), 1),
                                       ("in", graph.in_edges(node), -2)):
            ordered = sorted(edges, key=lambda e: xs[chains[e][next_item]])
            for j, edge in enumerate(ordered):
                ports[edge, side] = box.x - box.width / 2 + (j + 1) * box.width / (len(ordered) + 1)
    return ports


def _route(chain: list, start: float, end: float, boxes: dict, xs: dict, bands: list,
           depth: int) -> Path:
    """An edge's path: down from its port on the source box (layer ``depth``) to the bottom of
    that layer, a curve across each gap between layers, straight down through each slot, into
    its port on the target box. Each curve keeps to its gap (so do its control points)."""
    source, target = boxes[chain[0]], boxes[chain[-1]]
    columns = [start, *(xs[slot] for slot in chain[1:-1]), end]
    vertices = [(start, source.y - source.height / 2), (start, bands[depth][1])]
    codes = [Path.MOVETO, Path.LINETO]
    for step, (x0, x1) in enumerate(zip(columns, columns[1:])):
        above, below = bands[depth + step][1], bands[depth + step + 1][0]
        middle = (above + below) / 2
        vertices += [(x0, middle), (x1, middle), (x1, below)]
        codes += [Path.CURVE4] * 3
        if step < len(columns) - 2:  # through the slot, down to the next gap
            vertices.append((x1, bands[depth + step + 1][1]))
            codes.append(Path.LINETO)
    top = target.y + target.height / 2
    if vertices[-1][1] - top > 1e-9:  # a box lower than its layer's band (not by rounding:
        vertices.append((end, top))   # a last segment of no length has no arrowhead)
        codes.append(Path.LINETO)
    return Path(np.array(vertices), codes)


def draw_graph(graph: nx.DiGraph, ax: Optional[Axes] = None, title: Optional[str] = None,
               fontsize: float = 8.0) -> Axes:
    """Draw ``graph`` (any compiler graph; it is pruned first, so nodes off every input->output
    path and the connections a genome disables are never drawn) on ``ax``, or on a new figure
    sized to the drawing. Inputs are green boxes at the top, the output a red box at the bottom;
    a node with several inputs names how it merges them (sum or concat); edges to or from a
    ``zero`` op (no data flows) are dashed. Returns the axes; save with
    ``ax.figure.savefig(path)``. Raises :class:`~deapnas.graph.InvalidGraphError` for a graph
    that has no input->output path or a cycle. :func:`draw_graphs` draws several side by
    side."""
    plan = layout(graph, fontsize)
    if ax is None:
        ax = _figure_for(plan, title)
    _draw_layout(ax, plan, _scale(ax, plan))
    if title:
        lines = _title_lines(title, ax.figure.get_size_inches()[0], plan.fontsize)
        ax.set_title("\n".join(lines), fontsize=plan.fontsize * TITLE_SIZE)
    return ax


def draw_graphs(graphs: Mapping[str, nx.DiGraph], title: Optional[str] = None,
                fontsize: float = 8.0) -> Figure:
    """Draw several graphs (the cells of one architecture, say) side by side on a new figure
    sized to them: one scale, so one font size and one arrowhead size for all, each panel under
    its name (none for an empty name), the inputs of every panel level at the top, and
    ``title`` above them all, wrapped to the figure's width. Returns the figure."""
    em = fontsize / 72
    margin, gap = 1.5 * em, 3.0 * em
    plans = {name: layout(graph, fontsize) for name, graph in graphs.items()}
    widths = [max(plan.width, len(name) * 0.6 * TITLE_SIZE * em) for name, plan in plans.items()]
    content = sum(widths) + gap * (len(widths) - 1)
    width = max(content + 2 * margin, 3.0)
    lines = _title_lines(title, width, fontsize) if title else []
    names = 1.6 * TITLE_SIZE * em if any(plans) else 0.0  # a row for the panels' names
    tallest = max(plan.height for plan in plans.values())
    height = margin + tallest + names + len(lines) * 1.6 * TITLE_SIZE * em + margin
    figure = plt.figure(figsize=(width, height))
    left = (width - content) / 2
    for (name, plan), room in zip(plans.items(), widths):
        ax = figure.add_axes(((left + (room - plan.width) / 2) / width,
                              (margin + tallest - plan.height) / height,
                              plan.width / width, plan.height / height))
        _draw_layout(ax, plan, 1.0)  # the axes are the layout's own size
        if name:
            ax.set_title(name, fontsize=fontsize * TITLE_SIZE)
        left += room + gap
    if lines:
        figure.suptitle("\n".join(lines), y=1 - margin / 2 / height, va="top",
                        fontsize=fontsize * TITLE_SIZE)
    return figure


def _draw_layout(ax: Axes, plan: Layout, scale: float) -> None:
    """Draw ``plan``'s boxes and edges on ``ax`` at ``scale`` inches on the page per inch of the
    layout (not clipped to the axes: a box's outline on the layout's edge stays whole)."""
    ax.set(xlim=(0, plan.width), ylim=(0, plan.height), aspect="equal")
    ax.set_axis_off()
    for edge, path in plan.edges.items():
        faint = edge in plan.faint
        ax.add_patch(FancyArrowPatch(path=path, arrowstyle="-|>", mutation_scale=9 * scale,
                                     shrinkA=0, shrinkB=0, linewidth=1.0 * scale,
                                     linestyle="--" if faint else "-",
                                     color="#b7b7b7" if faint else "#434343", zorder=1,
                                     clip_on=False))
    for box in plan.boxes.values():
        marked = box.kind in ("input", "output")
        ax.add_patch(FancyBboxPatch(
            (box.x - box.width / 2, box.y - box.height / 2), box.width, box.height,
            boxstyle=f"round,pad=0,rounding_size={min(box.height, box.width) / 4}",
            facecolor=COLOURS[box.kind], edgecolor="#434343", zorder=2,
            linewidth=(1.6 if marked else 0.8) * scale,
            linestyle="--" if box.kind == "zero" else "-", clip_on=False))
        ax.text(box.x, box.y, box.label, ha="center", va="center", family="monospace",
                fontsize=plan.fontsize * scale, linespacing=LINE_HEIGHT,
                fontweight="bold" if marked else "normal", zorder=3, clip_on=False)


def _figure_for(plan: Layout, title: Optional[str]) -> Axes:
    """A figure whose axes show the layout at its own scale (one unit, one inch), with room for
    a title wrapped to the figure's width."""
    em = plan.fontsize / 72
    margin = 1.5 * em
    width = max(plan.width + 2 * margin, 3.0)
    lines = _title_lines(title, width, plan.fontsize) if title else []
    top = margin + len(lines) * 1.6 * TITLE_SIZE * em
    height = plan.height + margin + top
    figure = plt.figure(figsize=(width, height))
    return figure.add_axes(((width - plan.width) / 2 / width, margin / height,
                            plan.width / width, plan.height / height))


def _title_lines(title: str, width: float, fontsize: float) -> list[str]:
    """The title wrapped to ``width`` inches (at about 0.6 font sizes per character)."""
    return textwrap.wrap(title, max(int(width * 72 / (0.6 * TITLE_SIZE * fontsize)), 20))


def _scale(ax: Axes, plan: Layout) -> float:
    """Inches on the page per inch of the layout, once the axes keep its aspect ratio."""
    position = ax.get_position()
    inches = ax.figure.get_size_inches()
    return min(position.width * inches[0] / plan.width, position.height * inches[1] / plan.height)


# -- the history of a search -----------------------------------------------------------------

@dataclass
class Pick:
    """The search's final pick, as :func:`plot_fitness` marks it: ``label`` in the legend, the
    pick's ``value`` as a dashed line (None when the pick's number is not on the plot's axis,
    such as a supernet's accuracy beside a compound fitness: then the label alone), and the
    ``evaluations`` of the picked architecture ringed."""

    label: str
    value: Optional[float] = None
    evaluations: Sequence[int] = ()


@dataclass
class Phase:
    """Evaluations ``first`` to ``last`` (inclusive) of one kind, such as a method's training
    from scratch, shaded and named in the legend by :func:`plot_fitness`."""

    label: str
    first: int
    last: int


@dataclass
class Lineage:
    """Evaluations of one model that lives on across a search (each training it further),
    known by the value of ``field`` in a record's ``info``: :func:`plot_fitness` joins a
    model's points with a line, and names the lines with ``label`` in the legend."""

    field: str
    label: str


#: Colours of the shaded phases, in turn.
PHASE_COLOURS = ("#e8f0fa", "#fdf1e1", "#eaf6e6", "#f3eefa")


def plot_fitness(records: Sequence[dict], metric_name: str, units: str = "",
                 ax: Optional[Axes] = None, maximize: bool = True, objective: int = 0,
                 title: Optional[str] = None, pick: Optional[Pick] = None,
                 phases: Sequence[Phase] = (), lineage: Optional[Lineage] = None) -> Axes:
    """Every evaluation's fitness and the best so far, from a history (dicts with
    ``"evaluation"``, ``"fitness"``: a list, or None for a failure, and ``"reason"``).

    The y axis is labelled ``metric_name (units)``. Failed candidates (a reason, no fitness or
    a non-finite one) are marked apart, in a strip along the bottom, never as values among the
    real results. The y limits ignore far outliers (beyond three interquartile ranges of the
    quartiles, the best value and the pick always shown); points beyond them sit on the axis
    edge as triangles, and the legend counts them. ``maximize`` says which way "best" is;
    ``objective`` picks one value of a multi-objective fitness. The final ``pick`` is marked
    (see :class:`Pick`: the best single evaluation is not always what a search picks), each of
    the ``phases`` shaded (:class:`Phase`), and each ``lineage``'s points joined
    (:class:`Lineage`). The legend stands beside the axes, where it hides no point."""
    if ax is None:
        ax = plt.figure(figsize=(7, 4)).add_subplot()
    order = [record.get("evaluation", i + 1) for i, record in enumerate(records)]
    values = [_value(record, objective) for record in records]
    done = [(x, v) for x, v in zip(order, values) if v is not None]
    failed = [x for x, v in zip(order, values) if v is None]
    for phase, colour in zip(phases, itertools.cycle(PHASE_COLOURS)):
        ax.axvspan(phase.first - 0.5, phase.last + 0.5, color=colour, zorder=0, linewidth=0,
                   label=f"{phase.label} ({_evaluations(phase.first, phase.last)})")
    if done:
        xs, ys = map(np.array, zip(*done))
        best = (np.maximum if maximize else np.minimum).accumulate(ys)
        marked = [best[-1]] + ([pick.value] if pick and pick.value is not None else [])
        low, high = _robust_limits(ys, marked)
        inside = (ys >= low) & (ys <= high)
        if lineage is not None:
            _join_lineages(ax, records, order, values, lineage)
        ax.scatter(xs[inside], ys[inside], s=10, alpha=0.6, color="C0", label="evaluation")
        ax.step(xs, best, where="post", color="C3", label="best single evaluation so far")
        for beyond, edge, marker in ((ys < low, low, "v"), (ys > high, high, "^")):
            if beyond.any():
                ax.scatter(xs[beyond], np.full(beyond.sum(), edge), marker=marker, s=25,
                           color="C1", clip_on=False, zorder=3,
                           label=f"{beyond.sum()} off the scale ({_span(ys[beyond])})")
        if pick is not None:
            _mark_pick(ax, pick, xs, np.clip(ys, low, high))
        bottom, top = _padded(low, high, FAILED_STRIP if failed else 0.0)
        ax.set_ylim(bottom, top)
        floor = bottom + FAILED_STRIP * (top - bottom) if failed else bottom
        ax.set_yticks([t for t in ax.get_yticks() if floor <= t <= top])  # none by the strip
    elif pick is not None:
        ax.plot([], [], " ", label=pick.label)
    if failed:  # a strip of their own along the bottom, below a rule
        strip = ax.get_xaxis_transform()
        ax.plot([0, 1], [FAILED_STRIP] * 2, transform=ax.transAxes, color="C7",
                linewidth=0.6, linestyle=":")
        ax.scatter(failed, np.full(len(failed), FAILED_STRIP / 2), transform=strip, marker="x",
                   s=18, color="C7", label=f"failed ({len(failed)} of {len(records)}), "
                                           "marked below the rule")
        if not done:  # no value to read off the y axis
            ax.set_yticks([])
    label = f"{metric_name} ({units})" if units else metric_name
    title = title or f"{metric_name} of each evaluation" + ("" if maximize else
                                                             " (lower is better)")
    ax.set(xlabel="evaluation", ylabel=textwrap.fill(label, 36), title=textwrap.fill(title, 64))
    if records:
        pad = max(1.0, 0.02 * (max(order) - min(order)))
        ax.set_xlim(min(order) - pad, max(order) + pad)  # failures do not widen it themselves
        handles, labels = ax.get_legend_handles_labels()
        ax.legend(handles, [textwrap.fill(text, 40) for text in labels], loc="upper left",
                  bbox_to_anchor=(1.01, 1.0), borderaxespad=0, fontsize=8)
    return ax


def _evaluations(first: int, last: int) -> str:
    return f"evaluation {first}" if first == last else f"evaluations {first}-{last}"


def _mark_pick(ax: Axes, pick: Pick, xs: np.ndarray, ys: np.ndarray) -> None:
    """The pick's value as a dashed line (or its label alone), its evaluations ringed."""
    if pick.value is not None:
        ax.axhline(pick.value, color="C2", linestyle="--", linewidth=1.2, zorder=2,
                   label=pick.label)
    else:
        ax.plot([], [], " ", label=pick.label)
    ringed = np.isin(xs, list(pick.evaluations))
    if ringed.any():
        ax.scatter(xs[ringed], ys[ringed], s=70, facecolors="none", edgecolors="C2",
                   linewidths=1.5, zorder=4, clip_on=False,
                   label="evaluations of the picked architecture")


def _join_lineages(ax: Axes, records: Sequence[dict], order: list, values: list,
                   lineage: Lineage) -> None:
    """A thin line through the points of each model that ``lineage`` names, in order."""
    points: dict = {}
    for record, x, value in zip(records, order, values):
        model = record.get("info", {}).get(lineage.field)
        if model is not None and value is not None:
            points.setdefault(model, []).append((x, value))
    label = lineage.label
    for joined in points.values():
        if len(joined) > 1:
            ax.plot(*zip(*joined), color="C0", alpha=0.4, linewidth=0.8, zorder=1, label=label)
            label = None  # once in the legend


def plot_training(records: Sequence[dict], ax: Optional[Axes] = None,
                  title: Optional[str] = None) -> Axes:
    """The curve of a training, from its epoch records (dicts with ``"epoch"``, ``"loss"`` and
    ``"train_accuracy"``, as ``train.jsonl`` holds them): the mean training loss on the left
    axis, the training accuracy on a right axis of its own."""
    if ax is None:
        ax = plt.figure(figsize=(7, 4)).add_subplot()
    epochs = [record["epoch"] for record in records]
    lines = ax.plot(epochs, [record["loss"] for record in records], color="C0", marker=".",
                    label="training loss")
    ax.set(xlabel="epoch", ylabel="mean training loss",
           title=title or f"training curve ({len(records)} epochs)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    right = ax.twinx()
    lines += right.plot(epochs, [record["train_accuracy"] for record in records], color="C3",
                        marker=".", label="training accuracy")
    right.set(ylabel="training accuracy", ylim=(0, 1))
    ax.legend(lines, [line.get_label() for line in lines], loc="center right", fontsize=8)
    return ax


def _value(record: dict, objective: int) -> Optional[float]:
    """The record's fitness value, or None for a failed candidate."""
    fitness = record.get("fitness")
    if record.get("reason") or not fitness:
        return None
    value = float(fitness[objective])
    return value if math.isfinite(value) else None


def _span(values: np.ndarray) -> str:
    low, high = values.min(), values.max()
    return f"{low:.4g}" if low == high else f"{low:.4g} to {high:.4g}"


def _padded(low: float, high: float, strip: float) -> tuple[float, float]:
    """y limits showing [low, high] with a margin, above a bottom ``strip`` (axes fraction)."""
    margin = 0.06 * (high - low) or 0.05 * (abs(high) or 1.0)
    span = high - low + 2 * margin
    below = strip * span / (1 - strip)
    return low - margin - below, high + margin


def _robust_limits(values: np.ndarray, marked: Sequence[float]) -> tuple[float, float]:
    """The values' range without far outliers (Tukey's fences at three interquartile ranges),
    widened to include the ``marked`` values (the best, the pick)."""
    q1, q3 = np.percentile(values, [25, 75])
    spread = q3 - q1
    low = max(values.min(), q1 - 3 * spread)
    high = min(values.max(), q3 + 3 * spread)
    return min(low, *marked), max(high, *marked)
