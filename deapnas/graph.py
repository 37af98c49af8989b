"""Graphs in the compiler's conventions: what every search space's ``to_graph`` returns, and
what :mod:`deapnas.compiler` builds a network from, :mod:`deapnas.drawing` draws and
:func:`architecture_key` identifies.

Graph conventions (all plain networkx attributes, so any space or user can build graphs):

- ``graph.graph["inputs"]``: the input nodes, in the order the module's ``forward`` takes them;
- ``graph.graph["output"]``: the node whose value the module returns;
- every other node has ``op`` (a name in :mod:`deapnas.ops`, default ``"identity"``), ``args``
  (keyword arguments for the op's factory, default ``{}``) and ``combine`` (``"sum"``, the
  default, or ``"concat"``): how the node merges several inputs before applying its op.

Nodes off every input->output path are pruned (:func:`prune`) before anything is built or
drawn, and every way a graph can be unusable raises one exception type,
:class:`InvalidGraphError`, whose message says why. This module needs networkx only, not torch.
"""
from __future__ import annotations

import warnings
from typing import Hashable

import networkx as nx


class InvalidGraphError(ValueError):
    """A graph that cannot become a network: cycle, no input->output path, collapsed size..."""


def inputs_of(graph: nx.DiGraph) -> list:
    """The graph's input nodes, validated."""
    inputs = list(graph.graph.get("inputs", ()))
    if not inputs:
        raise InvalidGraphError("graph.graph['inputs'] must list the input nodes")
    missing = [n for n in inputs if n not in graph]
    if missing:
        raise InvalidGraphError(f"input nodes {missing} are not in the graph")
    return inputs


def output_of(graph: nx.DiGraph) -> Hashable:
    """The graph's output node, validated."""
    output = graph.graph.get("output")
    if output is None or output not in graph:
        raise InvalidGraphError("graph.graph['output'] must name a node of the graph")
    return output


def prune(graph: nx.DiGraph) -> nx.DiGraph:
    """The subgraph of nodes on some input->output path (inputs and output always kept).

    Raises :class:`InvalidGraphError` for a cycle or when no input reaches the output.
    """
    if not nx.is_directed_acyclic_graph(graph):
        cycle = " -> ".join(str(u) for u, _ in nx.find_cycle(graph))
        raise InvalidGraphError(f"the graph has a cycle ({cycle})")
    inputs, output = inputs_of(graph), output_of(graph)
    reachable = set(inputs).union(*(nx.descendants(graph, n) for n in inputs))
    if output not in reachable:
        raise InvalidGraphError(f"no path from the inputs {inputs} to the output {output!r}")
    useful = (nx.ancestors(graph, output) | {output}) & reachable
    pruned = graph.subgraph(useful | set(inputs)).copy()
    for node in inputs:  # an input feeds nothing downstream of another input
        pruned.remove_edges_from(list(pruned.in_edges(node)))
    return pruned


def predecessors(graph: nx.DiGraph, node) -> list:
    """Predecessors in the graph's node insertion order, so concat order is reproducible."""
    order = {n: i for i, n in enumerate(graph.nodes)}
    return sorted(graph.predecessors(node), key=order.__getitem__)


def architecture_key(graph: nx.DiGraph) -> str:
    """A hash equal for graphs that compile to the same network (Weisfeiler-Lehman on the pruned
    graph, nodes labelled by op, args and combine; inputs by their position)."""
    pruned = prune(graph)
    labelled = nx.DiGraph()
    inputs = inputs_of(pruned)
    for node, attrs in pruned.nodes(data=True):
        label = (f"input{inputs.index(node)}" if node in inputs else
                 f"{attrs.get('op', 'identity')}{sorted(attrs.get('args', {}).items())}"
                 f"{attrs.get('combine', 'sum')}")
        labelled.add_node(node, label=label + ("*" if node == output_of(pruned) else ""))
    labelled.add_edges_from(pruned.edges)
    with warnings.catch_warnings():  # networkx >= 3.5 notes that its directed hashes changed
        warnings.simplefilter("ignore", UserWarning)
        return nx.weisfeiler_lehman_graph_hash(labelled, node_attr="label", iterations=4)
