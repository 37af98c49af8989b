"""Tests of the NEAT-style crossover of macro genomes (an extension: the paper mutates only)."""

import copy
import random

import networkx as nx
import pytest
from deap import algorithms, base, tools

from conftest import chain_genome
from deapnas.graph import InvalidGraphError
from deapnas.networks import count_parameters
from deapnas.spaces import macro
from deapnas.spaces.macro import INPUT, OUTPUT

Individual = macro.SPACE.individual()


pytestmark = pytest.mark.usefixtures("seeded")


def genome(layers: dict, connections: list) -> macro.MacroGenome:
    return macro.from_json({"layers": {str(n): layer for n, layer in layers.items()},
                            "connections": connections}, Individual)


def clone(individual):
    """A copy with the same fitness (faster than ``copy.deepcopy``, which dominated the test)."""
    twin = macro.from_json(macro.to_json(individual), Individual)
    if individual.fitness.valid:
        twin.fitness.values = individual.fitness.values
    return twin


def key_sets(*genomes) -> list[set]:
    """The node keys of each genome, numbered together so that they compare across genomes."""
    return [set(keys.values()) for keys in macro.node_keys(*genomes)]


def check_consistent(individual) -> None:
    """A genome as mutation grows them: acyclic counting disabled connections, one gene per
    (source, target), unique innovations, and keys that can be derived again."""
    graph = nx.DiGraph()
    graph.add_nodes_from([INPUT, OUTPUT, *individual.layers])
    graph.add_edges_from((c.source, c.target) for c in individual.connections)
    assert set(graph) == {INPUT, OUTPUT, *individual.layers}  # no connection to a missing node
    assert nx.is_directed_acyclic_graph(graph)
    assert len(graph.edges) == len(individual.connections) == 1 + 2 * len(individual.layers)
    assert len({c.innovation for c in individual.connections}) == len(individual.connections)
    assert len(macro.node_keys(individual)[0]) == len(individual.layers) + 2


def test_keys_align_the_same_split_under_different_node_ids():
    # a: node 0 splits input->output, node 1 splits input->0.
    # b: node 0 splits input->output, node 1 splits 0->output, node 2 splits input->0.
    a = genome({0: "CONV_3.N", 1: "POOL_2.M"},
               [[-2, -1, False, 0], [-2, 0, False, 1], [0, -1, True, 2], [-2, 1, True, 3],
                [1, 0, True, 4]])
    b = genome({0: "CONV_3.N", 1: "CONV_5.H", 2: "POOL_3.A"},
               [[-2, -1, False, 0], [-2, 0, False, 1], [0, -1, False, 2], [0, 1, True, 3],
                [1, -1, True, 4], [-2, 2, True, 5], [2, 0, True, 6]])
    keys_a, keys_b = macro.node_keys(a, b)
    assert keys_a[0] == keys_b[0] and keys_a[1] == keys_b[2]
    assert keys_b[1] not in keys_a.values()
    # the raw innovation numbers would align a's 1 -> 0 (innovation 4) with b's 1 -> output
    assert [c for c in a.connections if c.innovation == 4][0].source == 1
    assert [c for c in b.connections if c.innovation == 4][0].target == OUTPUT

    a.fitness.values, b.fitness.values = (0.9,), (0.5,)
    child, _ = macro.mate(copy.deepcopy(a), copy.deepcopy(b))
    child_keys, a_keys = key_sets(child, a)
    assert child_keys == a_keys  # b's unmatched split of 0->output is not inherited
    check_consistent(child)


def lineage(n: int, generations: int) -> list:
    """Genomes of a population grown by mutation and crossover, so that they share history."""
    population = [macro.init_genome(Individual) for _ in range(n)]
    for _ in range(generations):
        for individual in population:
            macro.mutate(individual)
        random.shuffle(population)
        for a, b in zip(population[::2], population[1::2]):
            macro.mate(a, b)
    return population


def test_thousands_of_random_pairs_give_valid_acyclic_children():
    pool = lineage(30, 3) + [macro.init_genome(Individual) for _ in range(10)]
    for _ in range(2000):
        a, b = (clone(random.choice(pool)) for _ in range(2))
        for individual in (a, b):
            for _ in range(random.randrange(4)):
                macro.mutate(individual)
            individual.fitness.values = (random.choice([0.1, 0.2, 0.3]),)  # ties are common
        parents = clone(a), clone(b)
        macro.mate(a, b)
        for child, parent in zip((a, b), parents):
            check_consistent(child)
            assert child.fitness.values == parent.fitness.values  # fitness untouched
        keys = macro.node_keys(*parents, a, b)
        first, second, child_a, child_b = (set(k.values()) for k in keys)
        better, worse = sorted(parents, key=lambda p: p.fitness, reverse=True)
        expected = (first | second if better.fitness == worse.fitness else
                    first if better is parents[0] else second)
        assert child_a == child_b == expected
        for child, child_keys in zip((a, b), keys[2:]):  # each gene from a parent that has it
            for node, layer in child.layers.items():
                assert layer in {p.layers[n] for p, p_keys in zip(parents, keys)
                                 for n in p.layers if p_keys[n] == child_keys[node]}


def test_shared_genes_come_from_either_parent():
    a = macro.init_genome(Individual)
    b = copy.deepcopy(a)
    for node in b.layers:  # the same structure, every layer different
        b.layers[node] = next(layer for layer in macro.LAYERS if layer != a.layers[node])
    a.fitness.values = b.fitness.values = (0.5,)
    from_a = []
    for _ in range(200):
        child, _ = macro.mate(copy.deepcopy(a), copy.deepcopy(b))
        assert child.layers.keys() == a.layers.keys() and child.connections == a.connections
        from_a += [child.layers[n] == a.layers[n] for n in a.layers]
    assert 0.4 < sum(from_a) / len(from_a) < 0.6


def test_children_of_unevaluated_parents_keep_both_parents_genes():
    a, b = macro.init_genome(), macro.init_genome()  # plain genomes, no fitness at all
    parents = copy.deepcopy(a), copy.deepcopy(b)
    macro.mate(a, b)
    first, second, child_a, child_b = key_sets(*parents, a, b)
    assert child_a == child_b == first | second


def test_mate_refuses_a_genome_not_grown_by_splits():
    hand_built = chain_genome("CONV_3.N", "POOL_2.M")  # no input -> output gene
    with pytest.raises(ValueError, match="grown by init_genome"):
        macro.mate(hand_built, macro.init_genome())


def fewest_parameters(individual) -> tuple[float]:
    """A cheap real objective for DEAP's loop: the network's size (no network: infinitely big)."""
    try:
        return float(count_parameters(lambda: macro.build_network(
            individual, (1, 8, 8), 10, channels=8, clamp_pools=True))),
    except InvalidGraphError:
        return float("inf"),


def test_space_registers_mate_and_deap_easimple_runs_with_it():
    assert macro.SPACE.mate is macro.mate
    minimising = macro.SPACE.individual((-1.0,))
    toolbox = base.Toolbox()
    toolbox.register("individual", macro.init_genome, minimising)
    toolbox.register("population", tools.initRepeat, list, toolbox.individual)
    toolbox.register("mate", macro.mate)
    toolbox.register("mutate", macro.mutate)
    toolbox.register("select", tools.selTournament, tournsize=2)
    toolbox.register("evaluate", fewest_parameters)
    hof = tools.HallOfFame(1)
    population, logbook = algorithms.eaSimple(toolbox.population(n=20), toolbox, cxpb=0.8,
                                              mutpb=0.5, ngen=10, halloffame=hof, verbose=False)
    assert len(logbook) == 11 and sum(logbook.select("nevals")) > 20
    assert hof[0].fitness.values[0] < float("inf")
    for individual in population:
        check_consistent(individual)
        assert individual.fitness.values == fewest_parameters(individual)
