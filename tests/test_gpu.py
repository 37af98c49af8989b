"""The CUDA paths: training on a GPU, and pool workers pinned to GPU slots (skipped on CPU)."""
import functools

import pytest
import torch

from deapnas.data import load_dataset
from deapnas.fitness import TrainEvaluator
from deapnas.parallel import DevicePool
from deapnas.spaces import macro

from conftest import chain_genome

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def evaluator():
    return TrainEvaluator(functools.partial(macro.build_network, channels=16),
                          load_dataset("digits", seed=0), epochs=2, device="cuda")


def test_trains_on_the_gpu_with_device_resident_data(evaluator):
    result = evaluator(chain_genome("CONV_3.N"))
    assert result.info["reason"] is None and result[0] > 0.8
    assert evaluator.device_data.train.x.is_cuda


def test_deterministic_evaluations_repeat_exactly_on_the_gpu(evaluator):
    deterministic = TrainEvaluator(evaluator.build, evaluator.data, epochs=1, device="cuda",
                                   deterministic=True)
    genome = chain_genome("CONV_3.N")
    first, second = deterministic(genome), deterministic(genome)
    assert first.info["reason"] is None and first[0] == second[0]


def test_pool_workers_use_their_gpu_slots(evaluator):
    slots = torch.cuda.device_count()
    with DevicePool(2 * slots, "auto", slots_per_gpu=2) as pool:
        assert {s.device for s in pool.slots} == {f"cuda:{i}" for i in range(slots)}
        results = list(pool.map(evaluator, [chain_genome("CONV_3.N"), chain_genome("CONV_5.H")]))
    assert all(r.info["reason"] is None and r[0] > 0.5 for r in results)


def test_cuda_random_states_are_checkpointed():
    import json

    from deapnas.rng import random_states, set_random_states

    torch.cuda.init()
    states = json.loads(json.dumps(random_states()))
    assert len(states["cuda"]) == torch.cuda.device_count()
    expected = torch.rand(3, device="cuda")
    set_random_states(states)
    assert torch.equal(torch.rand(3, device="cuda"), expected)
