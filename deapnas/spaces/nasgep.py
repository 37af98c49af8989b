"""The NASGEP search space (Alves & de Oliveira, 2020): cells and genes as GEP chromosomes.

Two kinds of chromosome (see :mod:`deapnas.gep`):

- a **gene** (an automatically defined function, ADF) has a head of 1 and a tail of 2 over
  ``add`` and the 19 convolutions as functions; its terminals are the convolutions and, in
  genes of normal cells, the cell inputs ``h1`` = h(i-1) and ``h2`` = h(i-2);
- a **cell** has a head of 4 and a tail of 5 over ``add`` and ``cat`` (concatenation) as
  functions and gene ids as terminals. Its head holds functions only, at initialisation and
  under mutation (the paper's rule), so a fresh cell combines five genes with four functions.

The 19 convolutions, each ReLU -> convolution -> BatchNorm: ``conv1x1`` (pointwise);
``dep`` (depthwise), ``sep`` (separable: pointwise then depthwise) and ``isep`` (inverse
separable: depthwise then pointwise), each with kernels 3x3, 5x5, 3x5, 5x3, 1x7 and 7x1. They
are graph nodes of the operation ``gep_conv`` (:func:`gep_conv`, registered here; a generic
ReLU-conv-BN block that any space may use).

**A convolution used as a terminal** has no argument in the expression, so its input is part of
the terminal: the terminal set holds every convolution once per cell input it may read
(``sep3x3_h1`` reads h(i-1), ``sep3x3_h2`` reads h(i-2); ``conv_inputs`` of :func:`gene_pset`
narrows that choice). The paper leaves this open; its drawn reduction cell (Fig. 5) shows
convolutions over both inputs, which this reading allows.

**Reduction cells.** A gene of a reduction cell has no bare inputs among its terminals (an
addition of an input with a reduced map could not be formed, as the paper notes): every input
enters through a convolution terminal, and a convolution that follows an input has stride 2.
Every leaf of a reduction gene is thus a stride-2 convolution and every gene output is halved.

**Networks.** A decoded cell becomes a compiler graph (:mod:`deapnas.graph`): ``add`` sums
(channels reconciled by a 1x1 convolution where they differ), ``cat`` concatenates (the cell may
grow wider), each gene occurrence gets its own nodes and weights. :func:`build_network` stacks
the cells in :class:`~deapnas.networks.CellNetwork`: a stem, N normal cells per stage,
reduction cells between stages at doubled width, BN-ReLU, global pooling and a linear layer;
each cell's inputs are brought to the stage width by 1x1 convolutions.

**A model** (:class:`Model`) is a normal cell, a reduction cell and the genes they use, so
:func:`from_json` rebuilds it alone. Gene ids are content ids (:func:`gene_id`): a gene's id
names its chromosome, in every run.

:func:`shared_units` names the parts of a built network that NASGEP's weight sharing stores:
every convolution block (by its kind and stride) and every gene (by its id), at its width.
"""
from __future__ import annotations

import functools
import hashlib
from typing import Callable, Iterable, Mapping, Optional, Sequence

import networkx as nx
from deap import gp
from torch import nn

from .. import gep
from ..gep import Chromosome
from ..graph import architecture_key
from ..methods.nasgep_options import CELL_HEAD, GENE_HEAD  # declared where --help reads them
from ..networks import Cell, CellNetwork
from ..ops import Shape, conv_shape, register_op
from .space import Space, check_limit

NORMAL, REDUCTION = "normal", "reduction"
#: The cell inputs, in the order a cell receives them: h(i-2), then h(i-1).
INPUTS = ("h2", "h1")
KERNELS = ((3, 3), (5, 5), (3, 5), (5, 3), (1, 7), (7, 1))
KINDS = {"dep": "depthwise", "sep": "separable", "isep": "inverse"}
#: The 19 convolutions: name -> (kind, (kernel height, kernel width)).
CONVOLUTIONS = {"conv1x1": ("pointwise", (1, 1)),
                **{f"{prefix}{h}x{w}": (kind, (h, w)) for prefix, kind in KINDS.items()
                   for h, w in KERNELS}}
COMBINE = {"add": "sum", "cat": "concat"}


# -- the convolution block (a generic op: any ReLU-conv-BN with depthwise/separable variants) --

def gep_conv(c_in: int, kind: str, kernel: Sequence[int], stride: int = 1) -> nn.Module:
    """ReLU -> convolution -> BatchNorm at constant width, 'same' padded (odd kernels).

    ``kind``: ``"pointwise"`` (one convolution), ``"depthwise"`` (one per channel),
    ``"separable"`` (pointwise then depthwise) or ``"inverse"`` (depthwise then pointwise).
    ``stride`` applies to the spatial convolution."""
    height, width = kernel
    padding = (height // 2, width // 2)

    def depthwise():
        return nn.Conv2d(c_in, c_in, (height, width), stride, padding, groups=c_in, bias=False)

    def pointwise(step=1):
        return nn.Conv2d(c_in, c_in, 1, step, bias=False)

    layers = {"pointwise": lambda: [pointwise(stride)], "depthwise": lambda: [depthwise()],
              "separable": lambda: [pointwise(), depthwise()],
              "inverse": lambda: [depthwise(), pointwise()]}
    if kind not in layers:
        raise ValueError(f"kind must be one of {', '.join(layers)}, not {kind!r}")
    return nn.Sequential(nn.ReLU(), *layers[kind](), nn.BatchNorm2d(c_in))


register_op("gep_conv", gep_conv, conv_shape)


# -- primitive sets ----------------------------------------------------------------------------

def _apply(name: str, *arguments):
    """What a symbol computes under ``gp.compile``: its name and arguments as a nested tuple."""
    return (name, *arguments)


def _add_functions(pset: gp.PrimitiveSet, names: Iterable[str], arity: int) -> None:
    for name in names:
        pset.addPrimitive(functools.partial(_apply, name), arity, name=name)


@functools.cache
def gene_pset(kind: str = NORMAL, conv_inputs: tuple[str, ...] = ("h1", "h2")
              ) -> gp.PrimitiveSet:
    """The primitive set of a gene of ``kind`` (``"normal"`` or ``"reduction"``): ``add`` and
    the convolutions as functions; as terminals, each convolution reading each of
    ``conv_inputs`` and, for normal genes, the inputs ``h1`` and ``h2``."""
    if kind not in (NORMAL, REDUCTION):
        raise ValueError(f"gene kind must be {NORMAL!r} or {REDUCTION!r}, not {kind!r}")
    unknown = set(conv_inputs) - set(INPUTS)
    if not conv_inputs or unknown:
        raise ValueError(f"conv_inputs must name some of {INPUTS}, not {conv_inputs}")
    pset = gp.PrimitiveSet(f"{kind}_gene", 0)
    _add_functions(pset, ["add"], 2)
    _add_functions(pset, CONVOLUTIONS, 1)
    for name in CONVOLUTIONS:
        for source in conv_inputs:
            pset.addTerminal(f"{name}_{source}", name=f"{name}_{source}")
    if kind == NORMAL:
        for source in INPUTS:
            pset.addTerminal(source, name=source)
    return pset


def cell_pset(gene_ids: Iterable[str]) -> gp.PrimitiveSet:
    """The primitive set of a cell over the genes ``gene_ids``: ``add`` and ``cat`` as
    functions, the gene ids as terminals."""
    ids = sorted(set(gene_ids))
    if not ids:
        raise ValueError("a cell needs at least one gene id as a terminal")
    pset = gp.PrimitiveSet("cell", 0)
    _add_functions(pset, COMBINE, 2)
    for gene in ids:
        pset.addTerminal(gene, name=gene)
    return pset


def gene_id(gene: Chromosome, kind: str) -> str:
    """A gene's content id: ``n`` (normal) or ``r`` (reduction) and a hash of its chromosome."""
    return kind[0] + hashlib.sha1(str(gene).encode()).hexdigest()[:8]


def cell_id(cell: Chromosome) -> str:
    """A reduction cell's content id: ``R`` and a hash of its chromosome."""
    return "R" + hashlib.sha1(str(cell).encode()).hexdigest()[:8]


def random_gene(container: Callable[..., Chromosome] = Chromosome, kind: str = NORMAL,
                conv_inputs: tuple[str, ...] = ("h1", "h2"), head: int = GENE_HEAD
                ) -> Chromosome:
    """A random gene of ``kind`` (Ferreira's initialisation: any symbol in the head)."""
    return gep.init_chromosome(container, gene_pset(kind, tuple(conv_inputs)), head)


def random_cell(container: Callable[..., Chromosome], gene_ids: Iterable[str],
                head: int = CELL_HEAD) -> Chromosome:
    """A random cell over ``gene_ids``, its head all functions."""
    return gep.init_chromosome(container, cell_pset(gene_ids), head, head_functions_only=True)


def vary_gene(first: Chromosome, second: Chromosome, kind: str = NORMAL,
              conv_inputs: tuple[str, ...] = ("h1", "h2"), **rates) -> tuple:
    """Two child genes by GEP reproduction (:func:`deapnas.gep.reproduce`; ``rates`` are its
    operator rates)."""
    return gep.reproduce(first, second, gene_pset(kind, tuple(conv_inputs)), **rates)


def vary_cell(first: Chromosome, second: Chromosome, gene_ids: Iterable[str], **rates
              ) -> tuple:
    """Two child cells by GEP reproduction over the genes ``gene_ids``; head positions mutate
    only into functions."""
    return gep.reproduce(first, second, cell_pset(gene_ids), head_functions_only=True,
                         **rates)


def terminal_names(cell: Sequence) -> list[str]:
    """The gene ids a cell's chromosome holds (coding or not), in order, without repeats."""
    return list(dict.fromkeys(symbol.name for symbol in cell if symbol.arity == 0))


# -- the model genome --------------------------------------------------------------------------

class Model:
    """A NASGEP model genome: a normal cell, a reduction cell and the genes they refer to.

    ``genes`` maps gene ids to gene chromosomes; it must hold every gene id the cells hold.
    Plain data: cheap to copy and pickle; no torch objects."""

    def __init__(self, normal: Chromosome, reduction: Chromosome,
                 genes: Mapping[str, Chromosome]):
        missing = [g for cell in (normal, reduction) for g in terminal_names(cell)
                   if g not in genes]
        if missing:
            raise ValueError(f"the cells use genes {missing} that the model does not hold")
        self.normal, self.reduction = normal, reduction
        used = set(terminal_names(normal)) | set(terminal_names(reduction))
        self.genes = {name: gene for name, gene in genes.items() if name in used}

    def cell(self, kind: str) -> Chromosome:
        """The ``"normal"`` or the ``"reduction"`` cell."""
        return self.reduction if kind == REDUCTION else self.normal

    def __eq__(self, other) -> bool:
        return isinstance(other, Model) and to_json(self) == to_json(other)

    __hash__ = None  # mutable, like a DEAP list individual

    def __repr__(self) -> str:
        return f"{type(self).__name__}(normal={self.normal!s}, reduction={self.reduction!s})"


def assemble(container: Callable[..., Model], normal: Chromosome, reduction: Chromosome,
             genes: Mapping[str, Chromosome]) -> Model:
    """A model of ``container`` from its cells and a pool holding (at least) their genes."""
    return container(normal, reduction, genes)


def init_model(container: Callable[..., Model] = Model, genes: int = 5) -> Model:
    """A random model over ``genes`` fresh random genes of each kind (the space's own random
    genome; the NASGEP loop draws its cells over its gene pools instead)."""
    cells, pool = {}, {}
    for kind in (NORMAL, REDUCTION):
        drawn = [random_gene(kind=kind) for _ in range(genes)]
        pool.update((gene_id(gene, kind), gene) for gene in drawn)
        cells[kind] = random_cell(Chromosome, [gene_id(gene, kind) for gene in drawn])
    return container(cells[NORMAL], cells[REDUCTION], pool)


def mutate(model: Model, pb: Optional[float] = None) -> tuple[Model]:
    """Point mutation, IS and RIS transposition of both cells over the model's own genes, at
    GEP's usual rates (``pb`` is the point-mutation rate)."""
    for kind in (NORMAL, REDUCTION):
        cell = model.cell(kind)
        gep.mut_point(cell, cell_pset(terminal_names(cell)), pb, head_functions_only=True)
        gep.transpose_is(cell, head_functions_only=True)
        gep.transpose_ris(cell, head_functions_only=True)
    model.genes = {name: gene for name, gene in model.genes.items()
                   if name in set(terminal_names(model.normal) + terminal_names(model.reduction))}
    return model,


# -- genome -> graph -> network ----------------------------------------------------------------

def conv_node(name: str, stride: int = 1) -> dict:
    """Graph node attributes of convolution ``name`` (e.g. ``"sep3x5"``) at ``stride``."""
    kind, kernel = CONVOLUTIONS[name]
    return {"op": "gep_conv", "args": {"kind": kind, "kernel": list(kernel), "stride": stride},
            "label": name + ("/2" if stride == 2 else "")}


def _function_node(name: str) -> dict:
    if name in COMBINE:
        return {"op": "identity", "combine": COMBINE[name], "label": name}
    return conv_node(name)


def _add_expression(graph: nx.DiGraph, tree: gp.PrimitiveTree, prefix: str,
                    terminal: Callable[[str, str, int], str], **attrs) -> str:
    """Add the nodes of a decoded expression to ``graph`` (node ``<prefix><index>`` with
    ``slot=index``, its index in the prefix-ordered tree); return its root node.
    ``terminal(symbol, node, index)`` adds a terminal's node(s) and returns the node that feeds
    the parent."""
    arguments = gep.tree_arguments(tree)

    def visit(index: int) -> str:
        symbol, node = tree[index], f"{prefix}{index}"
        if not symbol.arity:
            return terminal(symbol.name, node, index)
        graph.add_node(node, **_function_node(symbol.name), **attrs, slot=index)
        for argument in arguments[index]:
            graph.add_edge(visit(argument), node)
        return node

    return visit(0)


def cell_graph(cell: Sequence, genes: Mapping[str, Sequence], reduction: bool = False
               ) -> nx.DiGraph:
    """The compiler graph of a decoded cell whose terminals are expanded into their genes.

    Inputs ``h2`` and ``h1`` (the graph's inputs, in the order cells receive them); node
    ``c<i>`` for node ``i`` of the decoded cell (``gep.karva(cell)``, prefix order) and
    ``c<i>.<j>`` for node ``j`` of the decoded gene that is the cell's node ``i``. Gene nodes
    carry ``gene`` (the id) and ``slot`` (``j``); in a reduction cell the convolutions reading
    an input have stride 2.

    The graph is built once per content (the cell's and its genes' chromosomes) and kept: a
    model that trains one epoch per generation is built, keyed and matched to the weight store
    from the same graphs every time. It is therefore frozen (``networkx.freeze``);
    ``networkx.DiGraph(graph)`` is a copy to change."""
    return _cell_graph(*_content(cell, genes), reduction)


def _content(cell: Sequence, genes: Mapping[str, Sequence]) -> tuple:
    """What a cell's graph is made of, as text: the cell and the genes it names."""
    return str(cell), tuple((name, str(genes[name])) for name in terminal_names(cell))


@functools.lru_cache(maxsize=1024)
def _cell_graph(cell_text: str, genes_text: tuple[tuple[str, str], ...], reduction: bool
                ) -> nx.DiGraph:
    """:func:`cell_graph` of chromosomes given as text, frozen."""
    pset = gene_pset(REDUCTION if reduction else NORMAL)
    genes = {name: Chromosome.from_string(text, pset) for name, text in genes_text}
    return nx.freeze(_expand_cell(cell_from_string(cell_text), genes, reduction))


def _expand_cell(cell: Sequence, genes: Mapping[str, Sequence], reduction: bool
                 ) -> nx.DiGraph:
    """The graph of :func:`cell_graph`, built."""
    graph = nx.DiGraph(inputs=list(INPUTS))
    for source in INPUTS:
        graph.add_node(source, label=source)

    def gene_terminal(gene: str, node: str, _: int) -> str:
        def leaf(symbol: str, leaf_node: str, slot: int) -> str:
            if symbol in INPUTS:  # a bare input gets its own node: add(h1, h1) is 2 h1
                source, attrs = symbol, {"op": "identity", "label": symbol}
            else:  # a convolution reading an input, e.g. sep3x3_h2
                conv, source = symbol.rsplit("_", 1)
                attrs = conv_node(conv, 2 if reduction else 1)
            graph.add_node(leaf_node, **attrs, gene=gene, slot=slot)
            graph.add_edge(source, leaf_node)
            return leaf_node

        return _add_expression(graph, gep.karva(genes[gene]), f"{node}.", leaf, gene=gene)

    graph.graph["output"] = _add_expression(graph, gep.karva(cell), "c", gene_terminal)
    return graph


def to_graph(model: Model) -> nx.DiGraph:
    """The normal cell's graph (see :func:`cell_graph`; the reduction cell's is
    ``cell_graph(model.reduction, model.genes, reduction=True)``)."""
    return cell_graph(model.normal, model.genes)


def cells(model: Model) -> dict[str, nx.DiGraph]:
    """``{"normal": graph, "reduction": graph}``, the model's two cells (see
    :func:`cell_graph`), as ``deapnas show`` draws them."""
    return {NORMAL: to_graph(model),
            REDUCTION: cell_graph(model.reduction, model.genes, reduction=True)}


def build_network(model: Model, input_shape: Shape, num_classes: int, channels: int = 16,
                  cells_per_stage: int = 3) -> CellNetwork:
    """The network: stem, 3 stages of ``cells_per_stage`` normal cells joined by the reduction
    cell (at doubled width), BN-ReLU, global pooling, linear (the paper's search: C = 16,
    N = 3; its final training: C = 64), its convolutions He-initialised (:func:`he_init`)."""
    graphs = cells(model)
    return he_init(CellNetwork(input_shape, num_classes, graphs[NORMAL], graphs[REDUCTION],
                               channels=channels, cells_per_stage=cells_per_stage))


def he_init(net: nn.Module) -> nn.Module:
    """The paper's "Kaiming initialization" (He et al., 2015): every convolution's weights drawn
    from a normal distribution of variance 2 / fan_in, fan_in being the inputs of one output
    (k x k x channels per group, so k x k for a depthwise convolution), as He et al.'s
    forward-pass derivation for ReLU networks gives. PyTorch's default (a uniform of variance
    1 / (3 fan_in)) has a sixth of that variance. Batch norms and the classifier keep
    PyTorch's initialisation; ``net`` is returned."""
    for module in net.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
    return net


def key(model: Model) -> str:
    """The architecture: the keys of the normal and the reduction cell's graphs."""
    return "/".join(_cell_key(*_content(model.cell(kind), model.genes), kind == REDUCTION)
                    for kind in (NORMAL, REDUCTION))


@functools.lru_cache(maxsize=1024)
def _cell_key(cell_text: str, genes_text: tuple[tuple[str, str], ...], reduction: bool) -> str:
    """The key of a cell's graph (:func:`deapnas.graph.architecture_key`), once per content."""
    return architecture_key(_cell_graph(cell_text, genes_text, reduction))


def shared_units(net: CellNetwork) -> list[tuple[str, nn.Module]]:
    """The weight-sharing units of a network built by :func:`build_network`, in network order:
    first every convolution block, keyed ``conv:<label>@<width>``, then every gene occurrence
    (a ``ModuleDict`` of its blocks by slot), keyed ``gene:<id>@<width>``. Where a block
    belongs to both, the gene's unit comes later, so loading in this order lets it win."""
    convs, genes = [], {}
    for index, cell in enumerate(net.cells):
        if not isinstance(cell, Cell):
            continue
        body = cell.body
        width = body.shapes[body.inputs[0]][0]
        for node in body.order:
            attrs = body.graph.nodes[node]
            if attrs.get("op") != "gep_conv":
                continue
            module = body.ops[body.keys[node]]
            convs.append((f"conv:{attrs['label']}@{width}", module))
            occurrence = (index, node.rsplit(".", 1)[0])
            unit = genes.setdefault(occurrence, (f"gene:{attrs['gene']}@{width}",
                                                 nn.ModuleDict()))
            unit[1][str(attrs["slot"])] = module
    return convs + list(genes.values())


def share_identities(model: Model) -> set[str]:
    """The identities (``conv:<label>``, ``gene:<id>``) of the units a model's network has, so
    the weight store entries that concern it are found without building it."""
    identities = set()
    for graph in cells(model).values():
        for _, attrs in graph.nodes(data=True):
            if attrs.get("op") == "gep_conv":
                identities |= {f"conv:{attrs['label']}", f"gene:{attrs['gene']}"}
    return identities


# -- JSON --------------------------------------------------------------------------------------

def to_json(model: Model) -> dict:
    """``{"normal": ..., "reduction": ..., "genes": {id: ...}}``, each chromosome written as
    its symbols with ``|`` between head and tail."""
    return {"normal": str(model.normal), "reduction": str(model.reduction),
            "genes": {name: str(gene) for name, gene in sorted(model.genes.items())}}


def cell_from_string(text: str, container: Callable[..., Chromosome] = Chromosome
                     ) -> Chromosome:
    """A cell chromosome from its string (gene ids are whatever terminals it names)."""
    ids = [name for name in text.replace("|", " ").split() if name not in COMBINE]
    return container.from_string(text, cell_pset(ids))


def from_json(data: dict, container: Callable[..., Model] = Model) -> Model:
    """Inverse of :func:`to_json`; a ``ValueError`` also for more genes or longer chromosomes
    than :mod:`deapnas.limits` allows, before any is parsed."""
    check_limit("genes:", len(data["genes"]), "MAX_GENES")
    chromosomes = {f"the {kind} cell": data[kind] for kind in (NORMAL, REDUCTION)}
    chromosomes.update((f"gene {name!r}", text) for name, text in data["genes"].items())
    for what, text in chromosomes.items():
        check_limit(f"{what}: symbols", len(str(text).replace("|", " ").split()), "MAX_SYMBOLS")
    cells = {kind: cell_from_string(data[kind]) for kind in (NORMAL, REDUCTION)}
    genes = {}
    for kind, cell in cells.items():
        for name in terminal_names(cell):
            if name not in data["genes"]:
                raise ValueError(f"the {kind} cell uses gene {name!r}, which is not in 'genes'")
            genes[name] = Chromosome.from_string(data["genes"][name], gene_pset(kind))
    return container(cells[NORMAL], cells[REDUCTION], genes)


SPACE = Space(
    "nasgep", Model, init_model, mutate, to_graph, build_network, key, to_json, from_json,
    cells=cells, network_options={"channels": "channels", "cells": "cells_per_stage"},
    description="GEP cells of ADF genes (Alves & de Oliveira, 2020)")
