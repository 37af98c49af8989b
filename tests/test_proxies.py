"""Zero-cost proxies (deapnas.proxies) on tiny real networks, the proxy evaluator as a DEAP
fitness function, and proxy-guided evolution inside DEAP's own loops."""
import functools
import json
import math

import pytest
import torch
from deap import algorithms as deap_algorithms
from deap import base, tools

from deapnas import proxies
from deapnas.cli import main
from deapnas.guided import GuidanceOptions, propose, warm_up
from deapnas.methods import METHODS
from deapnas.options import RunConfig
from deapnas.rundir import BEST, CONFIG, read_history
from deapnas.runner import settings
from deapnas.spaces import SPACES, nb201

from conftest import NB201_METRIC, chain_genome, interrupt_evaluation, without_clock

SHAPE, CLASSES = (3, 8, 8), 10
#: A tiny NAS-Bench-201 network: one cell per stage, 4 channels.
tiny_nb201 = functools.partial(nb201.build_network, channels=4, cells_per_stage=1)
#: The input reaches the output through one 3x3 convolution (edge 0 -> 3) ...
LIVE = ["none", "none", "none", "nor_conv_3x3", "none", "avg_pool_3x3"]
#: ... which its twin replaces by 'none': no path from the input to the output is left.
DEAD = ["none", "none", "none", "none", "none", "avg_pool_3x3"]
#: Every operation of the space, BatchNorm and pooling included.
MIXED = ["nor_conv_3x3", "avg_pool_3x3", "skip_connect", "nor_conv_1x1", "none", "nor_conv_3x3"]


def network(cell, seed=0):
    torch.manual_seed(seed)
    return tiny_nb201(cell, SHAPE, CLASSES)


def minibatch(size=16, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn((size, *SHAPE), generator=generator),
            torch.randint(0, CLASSES, (size,), generator=generator))


def state_of(net):
    """Everything a proxy must leave alone: parameters, buffers, gradients, modes."""
    return ({k: v.clone() for k, v in net.state_dict().items()},
            [p.grad for p in net.parameters()], [p.requires_grad for p in net.parameters()],
            [m.training for m in net.modules()])


def assert_same_state(before, after):
    (values, grads, requires, modes), (values2, grads2, requires2, modes2) = before, after
    assert values.keys() == values2.keys()
    assert all(torch.equal(values[k], values2[k]) for k in values)
    assert all(g is None for g in grads + grads2) and requires == requires2 and modes == modes2


@pytest.mark.parametrize("name", list(proxies.PROXIES))
def test_proxy_is_finite_deterministic_and_leaves_the_network_alone(name):
    proxy, batch = proxies.PROXIES[name], minibatch()
    net = network(MIXED)
    net.train()
    before = state_of(net)
    score = proxy(net, *batch)
    assert math.isfinite(score) and score != 0
    assert_same_state(before, state_of(net))
    assert proxy(net, *batch) == score  # the same network and minibatch: the same value
    assert proxy(network(MIXED), *minibatch()) == score  # the same seed: the same value


@pytest.mark.parametrize("name", list(proxies.PROXIES))
def test_proxy_ranks_a_dead_path_below_its_live_twin(name):
    proxy, batch = proxies.PROXIES[name], minibatch()
    assert proxy(network(DEAD), *batch) < proxy(network(LIVE), *batch)


@pytest.mark.parametrize("name", list(proxies.PROXIES))
def test_proxy_is_safe_on_a_macro_network_with_dropout_relu6_and_max_pooling(name):
    genome = chain_genome("CONV_3.N", "POOL_2.M", "CONV_5.H")
    torch.manual_seed(3)
    net = SPACES["macro"].build_network(genome, (1, 8, 8), CLASSES, channels=4)
    net.train()
    before = state_of(net)
    inputs = torch.randn(8, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    targets = torch.arange(8) % CLASSES
    score = proxies.PROXIES[name](net, inputs, targets)
    assert math.isfinite(score)
    assert proxies.PROXIES[name](net, inputs, targets) == score  # dropout is off
    assert_same_state(before, state_of(net))


def test_synflow_ignores_the_minibatch_and_batch_norm_statistics():
    net = network(MIXED)
    inputs, targets = minibatch()
    score = proxies.synflow(net, inputs, targets)
    assert proxies.synflow(net, torch.zeros(1, *SHAPE)) == score
    net.train()
    with torch.no_grad():
        net(inputs * 5 + 3)  # moves BatchNorm's running statistics
    assert proxies.synflow(net, inputs) == score


def test_params_and_flops_count_the_network():
    net = network(MIXED)
    assert proxies.params(net) == sum(p.numel() for p in net.parameters())
    # two FLOPs per multiply-add, for one sample whatever the batch size
    assert proxies.flops(torch.nn.Linear(16, 10), torch.zeros(4, 16)) == 2 * 16 * 10
    conv = torch.nn.Conv2d(3, 4, 3, padding=1)
    assert proxies.flops(conv, *minibatch()) == 2 * (3 * 3 * 3) * 4 * (8 * 8)


def test_unknown_proxy_names_the_choices():
    with pytest.raises(ValueError, match="synflow"):
        proxies.get_proxy("synflo")


# -- the proxy evaluator ---------------------------------------------------------------------------

def easimple_toolbox(evaluate) -> base.Toolbox:
    toolbox = base.Toolbox()
    toolbox.register("individual", nb201.init_cell, nb201.SPACE.individual())
    toolbox.register("population", tools.initRepeat, list, toolbox.individual)
    toolbox.register("mate", tools.cxOnePoint)
    toolbox.register("mutate", nb201.mutate)
    toolbox.register("select", tools.selTournament, tournsize=3)
    toolbox.register("evaluate", evaluate)
    return toolbox


def test_proxy_evaluator_drives_deaps_easimple_on_nb201(seeded):
    evaluate = proxies.ProxyEvaluator(tiny_nb201, "synflow", input_shape=SHAPE,
                                      num_classes=CLASSES, device="cpu")
    toolbox = easimple_toolbox(evaluate)
    halloffame = tools.HallOfFame(1)
    population, _ = deap_algorithms.eaSimple(toolbox.population(n=6), toolbox, cxpb=0.5,
                                             mutpb=0.5, ngen=2, halloffame=halloffame,
                                             verbose=False)
    assert all(ind.fitness.valid for ind in population)
    best = halloffame[0]
    assert best.fitness.values == evaluate(best)  # no eval_seed: the same weights again
    assert best.fitness.values[0] == proxies.synflow(evaluate.network(best),
                                                     torch.zeros(1, *SHAPE))
    record = evaluate(best)
    assert record.info["proxy"] == "synflow" and record.info["reason"] is None
    assert record.info["params"] == sum(p.numel() for p in evaluate.network(best).parameters())


def test_proxy_evaluator_scores_a_genome_of_every_space(digits, seeded):
    options = type("Options", (), {"channels": 4, "cells": 2, "clamp_pools": True})()
    for space in SPACES.values():
        build = functools.partial(space.build_network, **space.network_kwargs(options))
        evaluate = proxies.ProxyEvaluator(build, "snip", digits, batch_size=8, device="cpu")
        individual = space.init(space.individual())
        evaluation = evaluate(individual)
        assert evaluation.info["reason"] is None, space.name
        assert math.isfinite(evaluation[0]), space.name


def test_proxy_evaluator_fails_invalid_genomes_like_training_does(digits):
    evaluate = proxies.ProxyEvaluator(SPACES["macro"].build_network, "naswot", digits,
                                      device="cpu")
    collapsing = chain_genome("POOL_2.M", "POOL_2.M", "POOL_2.M", "POOL_2.M")  # 8 -> 0 pixels
    evaluation = evaluate(collapsing)
    assert evaluation == (-math.inf,) and "collapses" in evaluation.info["reason"]
    capped = proxies.ProxyEvaluator(tiny_nb201, "params", input_shape=SHAPE,
                                    num_classes=CLASSES, max_params=10)
    assert "exceed the cap of 10" in capped(MIXED).info["reason"]


def test_proxy_evaluator_refuses_a_data_proxy_without_data():
    with pytest.raises(ValueError, match="naswot scores a minibatch"):
        proxies.ProxyEvaluator(tiny_nb201, "naswot", input_shape=SHAPE, num_classes=CLASSES)


# -- proxy-guided evolution ------------------------------------------------------------------------

def recording(function, into):
    """``function`` that also appends a copy of every genome it returns to ``into``."""
    @functools.wraps(function)
    def recorded(*args, **kwargs):
        result = function(*args, **kwargs)
        into.extend(list(ind) for ind in (result if isinstance(result, list) else result[:1]))
        return result
    return recorded


def params_score():
    return proxies.ProxyEvaluator(tiny_nb201, "params", input_shape=SHAPE, num_classes=CLASSES)


def test_warm_up_starts_easimple_from_the_best_of_k_random_genomes(nb201_table, seeded):
    score, drawn, table = params_score(), [], nb201_table
    toolbox = easimple_toolbox(table)
    toolbox.register("population", recording(tools.initRepeat, drawn), list, toolbox.individual)
    plain = toolbox.population(n=10)
    drawn.clear()
    toolbox.decorate("population", warm_up(score, samples=100))
    warmed = toolbox.population(n=10)
    assert len(drawn) == 100 and len(warmed) == 10
    assert not any(ind.fitness.valid for ind in warmed)
    ranked = sorted((score(list(genome))[0] for genome in drawn), reverse=True)
    assert sorted((score(ind)[0] for ind in warmed), reverse=True) == ranked[:10]
    mean = lambda population: sum(table(ind)[0] for ind in population) / len(population)
    assert mean(warmed) > mean(plain)  # the parameter count is a good proxy on the table
    population, _ = deap_algorithms.eaSimple(warmed, toolbox, cxpb=0.5, mutpb=0.5, ngen=2,
                                             verbose=False)
    assert all(ind.fitness.valid for ind in population)


def test_propose_mutates_to_the_best_of_k_mutants_inside_easimple(seeded):
    score, bred = params_score(), []
    toolbox = easimple_toolbox(proxies.ProxyEvaluator(tiny_nb201, "synflow", input_shape=SHAPE,
                                                   num_classes=CLASSES))
    toolbox.register("mutate", recording(nb201.mutate, bred))
    toolbox.decorate("mutate", propose(score, proposals=4))
    parent = toolbox.individual()
    child, = toolbox.mutate(toolbox.clone(parent))
    assert len(bred) == 4 and score(child)[0] == max(score(genome)[0] for genome in bred)
    assert list(child) in bred and sum(a != b for a, b in zip(parent, child)) == 1
    bred.clear()
    population, _ = deap_algorithms.eaSimple(toolbox.population(n=4), toolbox, cxpb=0.0,
                                             mutpb=1.0, ngen=1, verbose=False)
    assert len(bred) == 4 * 4 and all(ind.fitness.valid for ind in population)


def table_search(nb201_csv, out, *extra):
    return main(["search", "--space", "nb201", "--dataset", "nb201", "--table", str(nb201_csv),
                 "--metric", NB201_METRIC, "--evaluations", "12", "--population", "5",
                 "--sample-size", "2", "--out", str(out), "--quiet", *extra])


def test_re_guided_by_a_proxy_on_the_table(nb201_csv, tmp_path):
    out = tmp_path / "guided"
    assert table_search(nb201_csv, out, "--warmup-proxy", "params", "--warmup-samples", "20",
                        "--proposals", "2") == 0
    options = json.loads((out / CONFIG).read_text())["options"]
    assert (options["warmup_proxy"], options["warmup_samples"], options["proposals"]) == \
        ("params", 20, 2)
    history = read_history(out)
    assert len(history) == 12  # the proxy's scores are not evaluations
    plain = tmp_path / "plain"
    assert table_search(nb201_csv, plain) == 0
    first = lambda run: [r["key"] for r in read_history(run)[:5]]
    assert first(out) != first(plain)


def test_guided_re_resumes_to_the_uninterrupted_result(nb201_csv, tmp_path, monkeypatch):
    guidance = ("--warmup-proxy", "params", "--warmup-samples", "12", "--proposals", "2",
                "--checkpoint-gap", "0", "--checkpoint-every", "3")
    assert table_search(nb201_csv, tmp_path / "straight", *guidance) == 0
    restore = interrupt_evaluation(monkeypatch, 9)
    assert table_search(nb201_csv, tmp_path / "broken", *guidance) == 130
    restore()
    assert main(["resume", str(tmp_path / "broken"), "--quiet"]) == 0
    assert without_clock(read_history(tmp_path / "broken")) == \
        without_clock(read_history(tmp_path / "straight"))


@pytest.mark.parametrize("extra, message", [
    (["--proposals", "3"], "give it (e.g. --warmup-proxy synflow)"),
    (["--warmup-proxy", "naswot"], "a table search has none of"),
    (["--fitness", "proxy:synflow"], "drop --fitness"),
])
def test_guidance_that_cannot_work_is_refused(extra, message, nb201_csv, tmp_path, capsys):
    assert table_search(nb201_csv, tmp_path / "refused", *extra) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "refused").exists()


def test_training_free_search_from_the_command_line(tmp_path):
    out = tmp_path / "synflow"
    assert main(["search", "--fitness", "proxy:synflow", "--evaluations", "6", "--population",
                 "3", "--sample-size", "2", "--channels", "4", "--clamp-pools", "--out",
                 str(out), "--quiet"]) == 0
    assert json.loads((out / CONFIG).read_text())["run"]["fitness"] == "proxy:synflow"
    history = read_history(out)
    assert len(history) == 6 and all(r["info"]["proxy"] == "synflow" for r in history)
    assert not any("train_seconds" in r["info"] for r in history)  # nothing was trained
    assert json.loads((out / BEST).read_text())["metric"] == "proxy:synflow"


def test_guidance_is_off_by_default_and_in_every_paper_preset():
    guided = [m for m in METHODS.values() if issubclass(m.options, GuidanceOptions)]
    assert "re" in {m.name for m in guided}
    for method in guided:
        for preset in (None, "paper"):
            _, options = settings(method, preset)
            assert (options.warmup_proxy, options.warmup_samples, options.proposals) == \
                (None, None, 1), (method.name, preset)


def test_runs_without_fitness_keep_the_fingerprint_they_had_before_it_existed():
    """A run directory made before --fitness existed holds a fingerprint without it, which a
    resume compares with the config's: unset, --fitness stays out of it."""
    plain, proxy = RunConfig(), RunConfig(fitness="proxy:synflow")
    assert "fitness" not in plain.fingerprint()
    assert proxy.fingerprint() == {**plain.fingerprint(), "fitness": "proxy:synflow"}
