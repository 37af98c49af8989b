"""The training and table evaluators: results, recorded measurements, every failure path."""
import functools
import math
import multiprocessing
import pickle
import random
from concurrent.futures import ProcessPoolExecutor

import pytest
import torch
from torch import nn

from deapnas.fitness import Evaluation, TableEvaluator, TrainEvaluator
from deapnas.spaces import macro, nb201

from conftest import NB201_METRIC, NB201_REPORT, chain_genome as chain

WORST = -math.inf  # what a failed candidate gets under a maximising fitness


def evaluator(data, **kwargs):
    options = dict(epochs=2, batch_size=64, device="cpu")
    return TrainEvaluator(functools.partial(macro.build_network, channels=16), data,
                          **{**options, **kwargs})


def test_trains_a_real_network_and_records_measurements(digits):
    result = evaluator(digits)(chain("CONV_3.N", "POOL_2.M"))
    assert isinstance(result, tuple) and len(result) == 1
    assert 0.8 < result[0] <= 1.0  # a small CNN learns digits in two epochs
    net = macro.build_network(chain("CONV_3.N", "POOL_2.M"), (1, 8, 8), 10, channels=16)
    assert result.info["params"] == sum(p.numel() for p in net.parameters())
    assert result.info["epochs"] == 2 and result.info["reason"] is None
    assert result.info["train_seconds"] > 0


def test_same_seed_same_fitness_and_eval_seed_changes_it(digits):
    genome = chain("CONV_3.H", "POOL_2.A")
    first, second = evaluator(digits)(genome), evaluator(digits)(genome)
    assert first[0] == second[0]
    genome.eval_seed = 7
    assert evaluator(digits)(genome)[0] != first[0]


def test_evaluation_does_not_disturb_the_callers_random_state(digits):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    evaluator(digits, epochs=1)(chain("CONV_2.H"))
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("layers, reason", [
    (("POOL_5.M", "POOL_2.M"), "spatial size collapses to zero"),
])
def test_invalid_graph_gets_worst_fitness_and_reason(digits, layers, reason):
    result = evaluator(digits)(chain(*layers))
    assert result[0] == WORST and reason in result.info["reason"]


def test_no_path_gets_worst_fitness(digits):
    genome = chain("CONV_3.N")
    genome.connections[0].enabled = False
    result = evaluator(digits)(genome)
    assert result[0] == WORST and "no path" in result.info["reason"]


def test_parameter_cap_fails_before_training(digits):
    result = evaluator(digits, max_params=1000)(chain("CONV_3.N"))
    assert result[0] == WORST and "exceed the cap of 1000" in result.info["reason"]
    assert result.info["epochs"] == 0


class Poisoned(nn.Module):
    """Outputs NaN logits: a network whose training diverges."""

    def __init__(self, classes):
        super().__init__()
        self.linear = nn.Linear(64, classes)

    def forward(self, x):
        return self.linear(x.flatten(1)) * float("nan")


class OutOfMemory(nn.Module):
    def __init__(self, classes):
        super().__init__()
        self.linear = nn.Linear(64, classes)

    def forward(self, x):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 80.00 GiB")


@pytest.mark.parametrize("module, reason", [(Poisoned, "non-finite training loss in epoch 1"),
                                            (OutOfMemory, "out of memory")])
def test_training_failures_get_worst_fitness(digits, module, reason):
    evaluate = TrainEvaluator(lambda ind, shape, classes: module(classes), digits, epochs=1,
                              device="cpu")
    result = evaluate(object())
    assert result[0] == WORST and result.info["reason"] == reason


def test_evaluation_survives_pickling_with_its_info():
    result = Evaluation((0.5,), params=10, reason=None)
    copy = pickle.loads(pickle.dumps(result))
    assert copy == (0.5,) and copy.info == {"params": 10, "reason": None}


def test_table_evaluator_reads_metric_and_report(nb201_csv):
    table = TableEvaluator(nb201_csv, nb201.arch_string, NB201_METRIC, NB201_REPORT)
    best = nb201.from_arch_string(
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|"
        "nor_conv_1x1~2|")
    result = table(best)
    assert result[0] == pytest.approx(91.6067, abs=1e-3)
    assert result.info[NB201_REPORT] == pytest.approx(94.3733, abs=1e-3)
    assert len(table.rows) == 15625


def test_table_evaluator_through_a_process_pool_keeps_info(nb201_csv):
    table = TableEvaluator(nb201_csv, nb201.arch_string, NB201_METRIC, NB201_REPORT)
    random.seed(0)
    cells = [nb201.init_cell(nb201.SPACE.individual()) for _ in range(4)]
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        results = list(pool.map(table, cells))
    assert [tuple(r) for r in results] == [tuple(table(c)) for c in cells]
    assert all(NB201_REPORT in r.info for r in results)


def test_table_errors_are_readable(nb201_csv, tmp_path):
    with pytest.raises(ValueError, match="no column nope"):
        TableEvaluator(nb201_csv, nb201.arch_string, "nope")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        TableEvaluator(tmp_path / "missing.csv", nb201.arch_string, NB201_METRIC)
    table = TableEvaluator(nb201_csv, lambda ind: "|not~0|", NB201_METRIC)
    result = table(object())
    assert result[0] == WORST and "not in" in result.info["reason"]


@pytest.mark.parametrize("deterministic", [False, True])
def test_the_deterministic_switch_is_touched_only_when_it_changes(digits, monkeypatch,
                                                                   deterministic):
    """torch's first ``use_deterministic_algorithms`` call imports its operator tables (a second
    of CPU or more): a process's first candidate paid it when every evaluation set the switch."""
    calls = []
    real = torch.use_deterministic_algorithms
    monkeypatch.setattr(torch, "use_deterministic_algorithms",
                        lambda mode, **kw: (calls.append(mode), real(mode, **kw)))
    seen_inside = []
    evaluate = evaluator(digits, epochs=1, deterministic=deterministic)
    real_fit = evaluate.fit
    evaluate.fit = lambda *args, **kwargs: (
        seen_inside.append(torch.are_deterministic_algorithms_enabled()),
        real_fit(*args, **kwargs))[1]
    evaluate(chain("CONV_3.N"))
    assert seen_inside == [deterministic]
    assert calls == ([True, False] if deterministic else [])
    assert not torch.are_deterministic_algorithms_enabled()
