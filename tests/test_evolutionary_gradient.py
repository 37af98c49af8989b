"""Tests of EG-NAS's algorithm: alpha layouts, supernets, derivation, the compound fitness, the
CMA-ES samplings and the search loop (on the NAS-Bench-201 table, and on tiny supernets on
digits), checkpointed in real run directories."""

import csv
import json
import random
from dataclasses import replace

import numpy as np
import pytest
import torch
from deap import algorithms as deap_algorithms
from deap import tools

from deapnas import evolutionary_gradient as eg
from deapnas.data import load_dataset, stratified_subset
from deapnas.fitness import TableEvaluator
from deapnas.methods.egnas import AlphaRecords
from deapnas.journal import Journal
from deapnas.rundir import CHECKPOINT, read_history
from deapnas.spaces import darts, nb201
from deapnas.supernet import (AlphaLayout, DartsSupernet, MixedEdge, NB201Supernet,
                              SupernetTraining, channel_shuffle, derive_darts, derive_nb201)

from conftest import NB201_CSV, NB201_METRIC, NB201_REPORT, without_clock

pytestmark = pytest.mark.usefixtures("one_thread")

OP = {name: i for i, name in enumerate(darts.OPS)}
NB201_RECORDS = AlphaRecords(nb201.SPACE, derive_nb201)


def open_journal(directory, **options) -> Journal:
    """The run directory's journal for candidates of the NAS-Bench-201 cell."""
    return Journal(directory, NB201_RECORDS, NB201_RECORDS.individual(), **options)


def table_search(table, epochs=4, seed=0, journal=None, popsize=6, iterations=3, samplings=3,
                 bound=3.0, evaluated=None, **options):
    """The table-only mode with a small ES (the vectors it scores appended to ``evaluated``)."""
    toolbox = eg.es_toolbox(eg.TableScorer(table), popsize=popsize, iterations=iterations,
                            bound=bound)
    if evaluated is not None:
        toolbox.register("map", lambda f, xs: [evaluated.append(list(x)) or f(x) for x in xs])
    if journal is not None:
        journal.wrap(toolbox)
    random.seed(seed)  # the candidates' eval_seed
    return eg.egnas(None, toolbox, epochs, warmup=0, samplings=samplings, seed=seed,
                    alpha=eg.initial_alpha(30, seed), verbose=False, journal=journal, **options)


@pytest.fixture(scope="module")
def digits():
    torch.manual_seed(0)
    data = load_dataset("digits", val_fraction=0.5)
    return replace(data, train=data.train.subset(stratified_subset(data.train.y, 20, 0)))


def supernet_search(net, digits, epochs=2, warmup=1, journal=None, popsize=4, iterations=1,
                    samplings=2, seed=0):
    """A tiny supernet search on digits: weight training, then ES steps."""
    recipe = replace(eg.SEARCH_RECIPE, epochs=epochs, batch_size=200, lr=0.025)
    training = SupernetTraining(net, digits.train, recipe, seed=seed)
    evaluator = eg.SupernetEvaluator(net, digits.val, batches=1, batch_size=32)
    toolbox = eg.es_toolbox(evaluator, popsize=popsize, iterations=iterations)
    if journal is not None:
        journal.wrap(toolbox)
    random.seed(seed)
    return eg.egnas(training, toolbox, epochs, warmup=warmup, samplings=samplings, seed=seed,
                    verbose=False, journal=journal)


def tiny_nb201(digits, seed=0):
    torch.manual_seed(seed)
    return NB201Supernet(digits.input_shape, 10, channels=8, cells_per_stage=1)


# -- alpha layout and derivation ----------------------------------------------------------------

def test_alpha_layout_round_trip():
    layout = DartsSupernet((3, 8, 8), 10, channels=4, layers=3).layout
    assert layout.size == 2 * 14 * 8
    alpha = np.arange(layout.size, dtype=np.float64)
    parts = layout.split(alpha)
    assert parts["normal"].shape == (14, 8) and parts["reduce"].shape == (14, 8)
    assert np.array_equal(layout.join(parts), alpha)
    assert alpha[layout.position("reduce", 3, OP["sep_conv_3x3"])] == \
        parts["reduce"][3, OP["sep_conv_3x3"]]
    tensor = torch.zeros(layout.size)
    layout.split(tensor)["normal"][2, 5] = 1.0  # torch blocks are views of the vector
    assert tensor[layout.position("normal", 2, 5)] == 1.0
    with pytest.raises(ValueError, match="flat vector of 224"):
        layout.split(np.zeros(30))
    with pytest.raises(ValueError, match="shape"):
        layout.join({"normal": np.zeros((14, 8)), "reduce": np.zeros((8, 14))})
    with_edges = DartsSupernet((3, 8, 8), 10, channels=4, layers=3,
                               edge_normalisation=True).layout
    assert with_edges.size == 224 + 28 and with_edges.split(np.zeros(252))["reduce_edges"].shape \
        == (14,)


def hand_made_cell() -> np.ndarray:
    """Weights whose DARTS derivation is known (see the test)."""
    w = np.zeros((14, 8))
    w[0, OP["sep_conv_3x3"]] = 2                              # node 2 <- 0
    w[1, OP["none"]], w[1, OP["max_pool_3x3"]] = 5, 1         # node 2 <- 1: none never chosen
    w[2, OP["dil_conv_5x5"]] = 3                              # node 3 <- 0
    w[3, OP["none"]] = 10                                     # node 3 <- 1: weak once none out
    w[4, OP["skip_connect"]] = 1                              # node 3 <- 2
    w[6, OP["sep_conv_5x5"]], w[8, OP["avg_pool_3x3"]] = 1.5, 2  # node 4 <- 1, 3
    w[9, OP["max_pool_3x3"]], w[13, OP["dil_conv_3x3"]] = 0.5, 4  # node 5 <- 0, 4
    return w


def test_darts_derivation_takes_the_strongest_ops_and_edges_but_never_none():
    layout = AlphaLayout((("normal", (14, 8)), ("reduce", (14, 8))))
    reduce = np.zeros((14, 8))
    reduce[:, OP["avg_pool_3x3"]] = 1.0
    genotype = derive_darts(layout.join({"normal": hand_made_cell(), "reduce": reduce}), layout)
    assert genotype.normal == [
        ("sep_conv_3x3", 0), ("max_pool_3x3", 1), ("dil_conv_5x5", 0), ("skip_connect", 2),
        ("avg_pool_3x3", 3), ("sep_conv_5x5", 1), ("dil_conv_3x3", 4), ("max_pool_3x3", 0)]
    assert genotype.reduce == [("avg_pool_3x3", 0), ("avg_pool_3x3", 1)] * 4  # ties: earlier
    assert genotype.normal_concat == genotype.reduce_concat == [2, 3, 4, 5]
    darts.from_json(darts.to_json(genotype))  # a valid genotype


def test_edge_normalisation_weights_the_choice_of_edges():
    net = DartsSupernet((1, 8, 8), 10, channels=4, layers=3, edge_normalisation=True)
    edges = np.zeros(14)
    edges[3] = 20.0  # node 3 <- 1 dominates its node's edges
    alpha = net.layout.join({"normal": hand_made_cell(), "reduce": np.zeros((14, 8)),
                             "normal_edges": edges, "reduce_edges": np.zeros(14)})
    genotype = net.derive(alpha)
    assert genotype.normal[2:4] == [("max_pool_3x3", 1), ("dil_conv_5x5", 0)]
    assert genotype.normal[:2] == [("sep_conv_3x3", 0), ("max_pool_3x3", 1)]  # others as before


def test_nb201_derivation_is_the_argmax_of_every_edge():
    weights = np.zeros((6, 5))
    chosen = ["none", "nor_conv_3x3", "skip_connect", "avg_pool_3x3", "nor_conv_1x1", "none"]
    for edge, op in enumerate(chosen):
        weights[edge, nb201.OPS.index(op)] = 1.0 + edge
    net = NB201Supernet((1, 8, 8), 10, channels=4, cells_per_stage=1)
    assert derive_nb201(weights.ravel()) == chosen
    assert net.derive(torch.as_tensor(weights.ravel())) == chosen


# -- supernets ----------------------------------------------------------------------------------

def test_channel_shuffle_interleaves_the_groups():
    x = torch.arange(8.0).view(1, 8, 1, 1)
    assert channel_shuffle(x, 4).flatten().tolist() == [0, 2, 4, 6, 1, 3, 5, 7]


@pytest.mark.parametrize("stride, size, out", [(1, 6, 6), (2, 6, 3), (2, 7, 4)])
def test_partial_channels_keep_shapes_and_pass_the_other_channels_through(stride, size, out):
    torch.manual_seed(0)
    specs = {name: ({"op": "zero"} if name == "none" else darts.node_spec(name, stride, False))
             for name in darts.OPS}
    edge = MixedEdge(8, specs, partial=4, stride=stride, normalise_pools=True)
    x = torch.randn(2, 8, size, size)
    y = edge(x, torch.softmax(torch.randn(8), 0))
    assert y.shape == (2, 8, out, out)
    if stride == 1:  # the 6 channels outside the mixed quarter come out unchanged, shuffled
        passed = [c for c in range(2, 8) if any(torch.equal(y[:, o], x[:, c]) for o in range(8))]
        assert passed == list(range(2, 8))
    with pytest.raises(ValueError, match="must divide the width"):
        MixedEdge(6, specs, partial=4)


def test_without_partial_channels_an_edge_is_the_weighted_sum_of_its_ops():
    torch.manual_seed(0)
    edge = MixedEdge(4, nb201.NODE_OPS, partial=1)
    x, weights = torch.randn(2, 4, 5, 5), torch.softmax(torch.randn(5), 0)
    expected = sum(w * op(x) for w, op in zip(weights[1:], edge.ops))  # none adds nothing
    assert torch.allclose(edge(x, weights), expected)


def test_supernet_forward_is_a_pure_function_of_weights_alpha_and_batch():
    torch.manual_seed(0)
    net = DartsSupernet((1, 8, 8), 10, channels=4, layers=3)
    assert not any(p.numel() == net.layout.size for p in net.parameters())
    x = torch.randn(8, 1, 8, 8)
    a, b = (torch.as_tensor(eg.initial_alpha(net.layout.size, s), dtype=torch.float32)
            for s in (0, 1))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with torch.no_grad():
        first = net.train()(x, a)
        assert torch.equal(net.eval()(x, a), first)  # batch statistics in both modes
        assert not torch.allclose(net(x, 10 * b), first)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert not any("running" in name for name in before)


# -- the compound fitness ---------------------------------------------------------------------

def test_similarity_spans_zero_to_one():
    a = np.array([1.0, -2.0, 0.5])
    assert eg.similarity(a, 3 * a) == pytest.approx(1.0)
    assert eg.similarity(a, -a) == pytest.approx(0.0)
    assert eg.similarity([1.0, 0.0], [0.0, 2.0]) == pytest.approx(0.5)
    assert eg.similarity([0.0, 0.0], [1.0, 1.0]) == 0.5


def test_compound_fitness_pulls_worse_candidates_close_and_pushes_better_ones_away():
    alpha, z = [1.0, 0.0, 1.0], [1.0, 1.0, 0.0]
    sim = eg.similarity(alpha, z)
    assert 0 < sim < 1
    worse = eg.compound_fitness(2.0, 0.5, z, alpha, 0.6, zeta=1.0, eta=0.4)
    assert worse == pytest.approx(2.0 - 0.4 * sim)
    for accuracy in (0.6, 0.7):  # as accurate as alpha, or more
        assert eg.compound_fitness(2.0, accuracy, z, alpha, 0.6, 1.0, 0.4) == \
            pytest.approx(2.0 + 0.4 * sim)
    assert eg.compound_fitness(2.0, 0.5, z, None, 0.6, zeta=0.5, eta=0.4) == 1.0
    # worse: the closer the better; better: the farther the better
    assert eg.compound_fitness(2.0, 0.5, alpha, alpha, 0.6) < worse
    assert eg.compound_fitness(2.0, 0.7, alpha, alpha, 0.6) > \
        eg.compound_fitness(2.0, 0.7, z, alpha, 0.6)


def test_supernet_evaluator_scores_with_the_compound_fitness(digits):
    net = tiny_nb201(digits)
    evaluate = eg.SupernetEvaluator(net, digits.val, batches=2, batch_size=32, eta=0.4)
    alpha = eg.initial_alpha(30, 0)
    reference = eg.Candidate(alpha.tolist())
    plain = evaluate(reference)
    assert plain[0] == pytest.approx(plain.info["loss"]) and 0 <= plain.info["accuracy"] <= 1
    candidate = eg.Candidate((alpha + np.random.default_rng(1).normal(size=30)).tolist())
    candidate.reference, candidate.reference_accuracy = alpha.tolist(), plain.info["accuracy"]
    scored = evaluate(candidate)
    sign = -1 if scored.info["accuracy"] < plain.info["accuracy"] else 1
    assert scored[0] == pytest.approx(scored.info["loss"] +
                                      sign * 0.4 * eg.similarity(alpha, candidate))
    assert len(evaluate.scoring_split(0)) == 64
    assert not torch.equal(evaluate.scoring_split(1).x, evaluate.scoring_split(0).x)
    broken = evaluate(eg.Candidate([float("nan")] * 30))
    assert broken == (float("inf"),) and broken.info["reason"] == "non-finite validation loss"


# -- the samplings --------------------------------------------------------------------------------

def test_cma_samplings_are_seeded_bounded_and_replayable():
    start = np.full(30, 2.5)
    first = eg.CMASampling(start, 1.0, seed=11, popsize=8, bound=3.0)
    population = first.generate(eg.Candidate)
    assert len(population) == 8 and isinstance(population[0], eg.Candidate)
    assert max(abs(v) for ind in population for v in ind) <= 3.0
    again = eg.CMASampling(start, 1.0, seed=11, popsize=8, bound=3.0).generate(eg.Candidate)
    other = eg.CMASampling(start, 1.0, seed=12, popsize=8, bound=3.0).generate(eg.Candidate)
    assert again == population and other != population
    for generation in range(3):
        for ind in population:
            ind.fitness.values = (float(np.sum(np.square(ind))),)
        first.update(population)
        population = first.generate(eg.Candidate)
    state = first.state()
    assert state["told"].shape == (3, 8)
    replayed = eg.CMASampling(state["centroid"], state["sigma"], state["seed"], popsize=8)
    replayed.replay(state["told"])
    assert replayed.generate(eg.Candidate) == population


def test_deap_ea_generate_update_drives_one_sampling(nb201_table):
    strategy = eg.CMASampling(eg.initial_alpha(30), 1.0, seed=3, popsize=10)
    toolbox = eg.es_toolbox(eg.TableScorer(nb201_table))
    toolbox.register("generate", strategy.generate, eg.Candidate)
    toolbox.register("update", strategy.update)
    hof = tools.HallOfFame(1)
    _, logbook = deap_algorithms.eaGenerateUpdate(toolbox, ngen=4, halloffame=hof,
                                                  verbose=False)
    assert len(logbook) == 4 and len(strategy.told) == 4
    assert hof[0].fitness.values[0] == min(min(row) for row in strategy.told)
    assert toolbox.evaluate(hof[0]) == hof[0].fitness.values


# -- the search loop ------------------------------------------------------------------------------

def test_table_mode_reports_the_derived_cells_test_accuracy(nb201_table, nb201_csv):
    stats = tools.Statistics(lambda ind: ind.fitness.values[0])
    stats.register("min", min)
    alpha, logbook = table_search(nb201_table, epochs=5, stats=stats)
    cell = derive_nb201(alpha)
    reported = nb201_table(cell).info[NB201_REPORT]
    with open(nb201_csv, newline="") as handle:
        row = next(r for r in csv.DictReader(handle) if r["arch_str"] == nb201.arch_string(cell))
    assert reported == float(row[NB201_REPORT]) and 10 < reported < 95
    assert [record["epoch"] for record in logbook] == [1, 2, 3, 4, 5]
    assert all(record["nevals"] == 1 + 3 * (3 * 6 + 1) for record in logbook)
    assert all(0 < record["reference"] < 1 and 0 < record["accuracy"] < 1 for record in logbook)
    assert all(record["min"] < 1 for record in logbook)  # the best of the directions


def test_samplings_differ_and_the_search_is_reproducible_from_its_seed(nb201_table):
    evaluated = []
    alpha, _ = table_search(nb201_table, epochs=1, evaluated=evaluated)
    assert len(evaluated) == 1 + 3 * (3 * 6 + 1)
    assert len({tuple(v) for v in evaluated}) == len(evaluated)  # no sampling copies another
    again, _ = table_search(nb201_table, epochs=1)
    assert np.array_equal(alpha, again)
    assert not np.allclose(table_search(nb201_table, epochs=1, seed=1)[0][:5], alpha[:5])


def test_the_global_numpy_generator_is_never_used_or_reseeded(nb201_table):
    np.random.seed(1234)
    before = np.random.get_state()
    table_search(nb201_table, epochs=2)
    after = np.random.get_state()
    assert before[0] == after[0] and np.array_equal(before[1], after[1]) and \
        before[2:] == after[2:]


def test_alpha_stays_in_the_box_over_many_steps(nb201_table):
    _, logbook = table_search(nb201_table, epochs=40, popsize=5, iterations=2, samplings=2,
                              bound=2.0, sigma=3.0, sigma_min=1.0)
    sizes = [record["alpha_max"] for record in logbook]
    assert max(sizes) <= 2.0 and sizes[-1] > 1.0  # it moved far, and no farther than the box


def test_the_literal_update_adds_the_step_size_times_the_chosen_direction(nb201_table):
    """Eq. 8 as printed, α ← α + ξ·s, beside the convex form α ← α + ξ·(s − α): the same ES
    step (same seed, same α) chooses the same s, so the two α differ by ξ·α."""
    start = eg.initial_alpha(30, 0)
    convex, _ = table_search(nb201_table, epochs=1, step_size=0.6)
    literal, _ = table_search(nb201_table, epochs=1, step_size=0.6, update="literal")
    np.testing.assert_allclose(literal - convex, 0.6 * start, atol=1e-12)
    with pytest.raises(ValueError, match="update must be one of convex, literal"):
        table_search(nb201_table, epochs=1, update="additive")


def test_the_spread_of_the_starts_is_apart_from_the_cma_step_size(nb201_table):
    """The authors start every sampling at α + 0.01·y and give CMA-ES the step size σ: the
    first population of a sampling lies around a start within a few spreads of α."""
    evaluated = []
    tiny_steps = dict(epochs=1, samplings=1, iterations=1, popsize=6, sigma=1e-6,
                      sigma_min=1e-6, evaluated=evaluated)
    table_search(nb201_table, spread=0.01, **tiny_steps)
    start = eg.initial_alpha(30, 0)
    first_population = np.asarray(evaluated[1:7])
    distance = np.abs(first_population - start).max()
    assert 0.001 < distance < 0.1  # 0.01·y away, the CMA-ES step (1e-6) adds nothing visible
    evaluated.clear()
    table_search(nb201_table, **tiny_steps)  # unset: the start's spread is σ, 1e-6
    assert np.abs(np.asarray(evaluated[1:7]) - start).max() < 1e-4


def test_candidates_missing_from_the_table_fail_and_the_search_goes_on(tmp_path):
    if not NB201_CSV.exists():
        pytest.skip(f"NAS-Bench-201 table not found at {NB201_CSV}")
    few = tmp_path / "few.csv"
    with open(NB201_CSV, newline="") as source:
        few.write_text("".join(line for _, line in zip(range(3001), source)))
    scorer = eg.TableScorer(TableEvaluator(few, nb201.arch_string, NB201_METRIC))
    results = []
    toolbox = eg.es_toolbox(scorer, popsize=6)
    toolbox.register("map", lambda f, xs: [results.append(f(x)) or results[-1] for x in xs])
    alpha, logbook = eg.egnas(None, toolbox, 3, warmup=0, samplings=3,
                              alpha=eg.initial_alpha(30), verbose=False)
    failures = [r for r in results if r.info["reason"] is not None]
    assert len(logbook) == 3 and len(results) == 3 * (1 + 3 * 7)
    assert failures and all(r == (float("inf"),) and "not in" in r.info["reason"]
                            for r in failures)
    assert len(failures) < len(results)


@pytest.mark.parametrize("budget, every", [(1, 1), (7, 3), (45, 10), (130, 50)])
def test_an_interrupted_table_search_resumes_to_the_uninterrupted_result(nb201_table, tmp_path,
                                                                         budget, every):
    with open_journal(tmp_path / "straight") as journal:
        straight, straight_log = table_search(nb201_table, epochs=3, journal=journal)
    with open_journal(tmp_path / "run", budget=budget, checkpoint_every=every) as journal:
        table_search(nb201_table, epochs=3, journal=journal)  # stops once the budget is spent
    assert budget <= len(read_history(tmp_path / "run")) < budget + 6  # within one population
    with open_journal(tmp_path / "run", checkpoint_every=every) as journal:
        resumed, resumed_log = table_search(nb201_table, epochs=3, journal=journal)
    assert np.array_equal(resumed, straight)
    assert list(resumed_log) == list(straight_log)
    assert without_clock(read_history(tmp_path / "run")) == \
        without_clock(read_history(tmp_path / "straight"))


def test_options_that_cannot_work_are_refused(nb201_table, digits):
    toolbox = eg.es_toolbox(eg.TableScorer(nb201_table))
    with pytest.raises(ValueError, match="warmup=0"):
        eg.egnas(None, toolbox, 3, warmup=1, alpha=np.zeros(30))
    training = SupernetTraining(tiny_nb201(digits), digits.train,
                                   replace(eg.SEARCH_RECIPE, epochs=5))
    with pytest.raises(ValueError, match="make them equal"):
        eg.egnas(training, toolbox, 3)


def test_tiny_nb201_supernet_search_reports_the_derived_cells_test_accuracy(digits, nb201_table):
    net = tiny_nb201(digits)
    alpha, logbook = supernet_search(net, digits, iterations=2)
    cell = net.derive(alpha)
    looked_up = nb201_table(cell)
    assert looked_up.info["reason"] is None and 10 < looked_up.info[NB201_REPORT] < 95
    assert len(logbook) == 2 and logbook[-1]["nevals"] == 1 + 2 * (2 * 4 + 1)


def test_an_interrupted_supernet_search_resumes_mid_epoch_to_the_same_result(digits, tmp_path):
    straight_net = tiny_nb201(digits)
    np.random.seed(5)
    numpy_state = np.random.get_state()
    straight, logbook = supernet_search(straight_net, digits)
    assert np.array_equal(np.random.get_state()[1], numpy_state[1])  # never drawn from
    assert [r["nevals"] for r in logbook] == [0, 1 + 2 * (4 + 1)]
    with open_journal(tmp_path, budget=4, checkpoint_every=1) as journal:
        supernet_search(tiny_nb201(digits), digits, journal=journal)
    saved = json.loads((tmp_path / CHECKPOINT).read_text())  # alpha and one CMA-ES population:
    assert saved["evaluations"] == 5 and saved["state"]["epoch"] == 1  # in the first sampling
    assert saved["state"]["es"]["sampling"] is not None
    net = tiny_nb201(digits, seed=1)  # other initial weights: the checkpoint must restore them
    with open_journal(tmp_path) as journal:
        resumed, _ = supernet_search(net, digits, journal=journal)
    assert np.array_equal(resumed, straight)
    for name, tensor in straight_net.state_dict().items():
        assert torch.equal(net.state_dict()[name], tensor), name


def test_warm_up_epochs_are_checkpointed_on_time_and_resumed(digits, tmp_path, monkeypatch):
    straight_net = tiny_nb201(digits)
    straight, _ = supernet_search(straight_net, digits, epochs=3, warmup=2)
    real, calls = SupernetTraining.epoch, []

    def interrupted_in_the_second_epoch(self, alpha):
        calls.append(alpha)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, alpha)

    monkeypatch.setattr(SupernetTraining, "epoch", interrupted_in_the_second_epoch)
    with pytest.raises(KeyboardInterrupt), open_journal(tmp_path, checkpoint_seconds=0) as journal:
        supernet_search(tiny_nb201(digits), digits, epochs=3, warmup=2, journal=journal)
    monkeypatch.undo()
    saved = json.loads((tmp_path / CHECKPOINT).read_text())
    assert saved["evaluations"] == 0 and saved["state"]["epoch"] == 1  # no evaluation yet
    net = tiny_nb201(digits, seed=1)
    with open_journal(tmp_path) as journal:
        resumed, _ = supernet_search(net, digits, epochs=3, warmup=2, journal=journal)
    assert np.array_equal(resumed, straight)
    for name, tensor in straight_net.state_dict().items():
        assert torch.equal(net.state_dict()[name], tensor), name
