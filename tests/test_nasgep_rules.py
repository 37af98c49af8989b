"""NASGEP's rules as the paper states them (issue 18): the survivor rule over a long run with a
hashed fake fitness, cell heads under every operator, the thresholds, step 5c, the He
initialisation, random sampling in the space, and the cell graphs built once per content."""
import hashlib
import json
import math
import random
from pathlib import Path

import networkx as nx
import pytest
import torch
from deap import tools
from torch import nn

from deapnas import runner
from deapnas.cli import main
from deapnas.fitness import Evaluation
from deapnas.graph import architecture_key
from deapnas.methods import nasgep as method
from deapnas.rundir import BEST
from deapnas.spaces import nasgep as space
from deapnas.spaces.nasgep import NORMAL, REDUCTION

MODEL = space.SPACE.individual()


def fake_fitness(model) -> float:
    """A fitness hashed from the genome and the epoch, rising with the epochs."""
    text = json.dumps(space.to_json(model), sort_keys=True) + str(model.trained_epochs)
    noise = int(hashlib.sha1(text.encode()).hexdigest()[:8], 16) / 16 ** 8
    return 0.5 * noise + 0.05 * model.trained_epochs


def fake_search(tmp_path, generations: int, seed: int, **options) -> list[tuple[dict, list]]:
    """A NASGEP loop of ``generations`` with :func:`fake_fitness` (no training); per generation,
    the candidates of its survivor selection (the models alive before it and the models
    evaluated in it: ``{id: (fitness, born)}`` at selection time) and the survivors' ids."""
    random.seed(seed)
    options = method.Options.tiny(**options)
    toolbox = method.make_toolbox(options, model_class=MODEL)
    evaluated, living, generations_seen = [], [], []

    def evaluate(model):
        evaluated.append(model)
        return Evaluation((fake_fitness(model),), trained_epochs=model.trained_epochs + 1,
                          shared={})

    def snapshot(survivors):
        candidates = {m.model_id: (m.fitness.values[0], m.born) for m in living + evaluated}
        generations_seen.append((candidates, [m.model_id for m in survivors]))
        evaluated.clear()
        living[:] = survivors
        return 0
    stats = tools.Statistics(lambda m: m)
    stats.register("snapshot", snapshot)
    toolbox.register("evaluate", evaluate)
    toolbox.register("map", map)
    models, reductions, genes = method.init_populations(toolbox, options.population,
                                                        options.reductions, options.genes)
    method.nasgep(models, toolbox, generations, genes=genes, reductions=reductions,
                  state_dir=str(tmp_path), options=options, stats=stats, verbose=False)
    return generations_seen


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_earliest_born_model_other_than_the_best_dies_in_every_generation(tmp_path, seed):
    history = fake_search(tmp_path, 60, seed)
    for candidates, survivors in history:
        births = [born for _, born in candidates.values()]
        assert sorted(births) == sorted(set(births))  # a unique birth order
        assert all(born == int(name[1:]) for name, (_, born) in candidates.items())
        best = max(candidates, key=lambda name: candidates[name][0])
        earliest = min((name for name in candidates if name != best),
                       key=lambda name: candidates[name][1])
        assert best in survivors and earliest not in survivors


def test_cell_heads_hold_only_functions_after_every_operator():
    random.seed(2020)
    ids = [f"g{i}" for i in range(7)]
    functions = {"add", "cat"}
    parents = [space.random_cell(method.Component, ids) for _ in range(20)]
    rates = dict(is_transposition=1.0, ris_transposition=1.0, one_point=0.3, two_point=0.3)
    for _ in range(5000):  # 10,000 children
        for child in space.vary_cell(*random.sample(parents, 2), ids, **rates):
            assert {s.name for s in child[:child.head]} <= functions, str(child)
    for _ in range(2000):  # the space's own mutation (other methods on the nasgep space)
        model = space.init_model()
        space.mutate(model)
        for cell in (model.normal, model.reduction):
            assert {s.name for s in cell[:cell.head]} <= functions, str(cell)


def fake_model(name, value):
    model = space.init_model(MODEL)
    model.model_id, model.born, model.trained_epochs = name, int(name[1:]), 1
    model.fitness.values = (value,)
    model.info = {"reason": None if math.isfinite(value) else "too big"}
    return model


def test_thresholds_are_taken_over_finite_fitnesses():
    random.seed(0)
    models = [fake_model("m0", -math.inf), fake_model("m1", 0.8), fake_model("m2", 0.4)]
    assert method.thresholds(models, 3) == (0.4, pytest.approx(0.3))
    assert method.thresholds(models[:1], 3) is None


def bred_search(**options):
    """Three populations after one epoch of the first models, one reduction cell the fittest
    living one and a fitter one dead."""
    random.seed(3)
    options = method.Options.tiny(tournament_size=100, **options)
    toolbox = method.make_toolbox(options, model_class=MODEL)
    models, reductions, genes = method.init_populations(toolbox, 4, 4, options.genes)
    for value, cell in zip([0.9, 0.5, 0.4, 0.3], reductions.values()):
        cell.fitness.values = (value,)
    first, best_living = list(reductions.values())[:2]
    first.dead = True
    for model, value in zip(models, [0.2, 0.3, 0.4, 0.5]):
        model.fitness.values = (value,)
    search = method._Search(models, reductions, dict(genes))
    before = set(reductions)
    return method._breed_models(search, toolbox, options), best_living, before


def test_a_childs_reduction_cell_is_won_by_tournament_among_the_living_cells():
    children, best_living, _ = bred_search()
    assert {child.reduction_id for child in children} == {best_living.id}
    children, _, before = bred_search(child_reduction="bred")
    assert {child.reduction_id for child in children} - before  # cells bred for them


def test_networks_are_he_initialised():
    random.seed(0)
    torch.manual_seed(0)
    net = space.build_network(space.init_model(), (3, 32, 32), 10, channels=16)
    ratios = [module.weight.pow(2).mean().item() * nn.init._calculate_correct_fan(
        module.weight, "fan_in") / 2 for module in net.modules() if isinstance(module, nn.Conv2d)]
    # variance 2 / fan_in: the ratio is 1 (PyTorch's default would give 1/6)
    assert 0.85 < sum(ratios) / len(ratios) < 1.15


def test_a_cells_graph_is_built_once_per_content():
    random.seed(0)
    model = space.init_model()
    again = space.from_json(space.to_json(model))
    graph = space.cell_graph(model.normal, model.genes)
    assert space.cell_graph(again.normal, again.genes) is graph
    assert nx.is_frozen(graph)
    assert space.cells(again)[REDUCTION] is space.cells(model)[REDUCTION]
    assert space.cell_graph(model.reduction, model.genes, reduction=True) is not \
        space.cell_graph(model.normal, model.genes)
    assert NORMAL in space.cells(model)


def test_random_sampling_searches_the_nasgep_space(tmp_path):
    out = tmp_path / "run"
    assert main(["search", "--algorithm", "random", "--space", "nasgep", "--evaluations", "2",
                 "--epochs", "1", "--channels", "4", "--out", str(out), "--quiet"]) == 0
    best = json.loads((out / BEST).read_text())
    assert best["space"] == "nasgep" and set(best["genome"]) == {"normal", "reduction", "genes"}


def test_the_paper_preset_counts_the_evaluations_the_budget_estimate_gives():
    record = json.loads((Path(__file__).resolve().parents[1] / "docs" / "figures" /
                         "nasgep_budget.json").read_text())
    assert record["results"]["preset"] == method.PAPER_EVALUATIONS
    config, _ = runner.settings(method.METHOD, "paper")
    assert (config.evaluations, config.time_limit) == (method.PAPER_EVALUATIONS, None)


def test_a_models_key_is_its_cells_graph_keys():
    random.seed(1)
    model = space.init_model()
    assert space.key(model) == "/".join(architecture_key(graph)
                                        for graph in space.cells(model).values())
