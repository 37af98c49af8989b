"""Table searches at look-up speed without changing what they find: RENAS's controller steps
on one torch thread (whatever the process's count, which it gets back), and EG-NAS's table-only
CMA-ES reuses pycma's evaluated options. The same seed gives the same history as before.

The expected histories were recorded from the code before these changes (commit cfe18f7, the
main branch of 2026-12-07) with the commands of :func:`table_search`: each candidate's cell as
its six operations (indices into ``nb201.OPS``, edge by edge as the key lists them) and its
fitness.
"""
import math
import random

import cma
import numpy as np
import pytest
import torch

from deapnas.cli import main
from deapnas.controller import MutationController, init_layout
from deapnas.evolutionary_gradient import CMASampling, Candidate
from deapnas.methods.renas import genome_layout
from deapnas.rundir import read_history
from deapnas.spaces import nb201

from conftest import NB201_METRIC

RENAS_CELLS = """
034003 133133 322100 331443 112422 133033 132133 132333 132113 132323 132233 102133 132130
233133 233233 233131 133133 133133 230133 234133 133133 030133 230130 133433 220133 233143
233131 233123 233103 233113 233143 233133 233103 033123 243133 234123 223133 233323 133133
233113 233143 033123 233123 233121 213123 233143 333123 234123 323123 324123 343123 313123
334123 233123 330123 033123 334103 333120 333423 332123
"""
RENAS_FITNESS = [
    87.432, 90.969333, 84.184, 88.696, 86.621333, 89.514667, 91.064, 89.630667, 86.892,
    90.085333, 90.133333, 90.252, 89.090667, 91.350667, 90.485333, 90.176, 90.969333,
    90.969333, 91.145333, 91.02, 90.969333, 90.958, 89.838667, 89.344, 90.521333, 91.121333,
    90.176, 91.378, 91.22, 91.15, 91.121333, 91.350667, 91.22, 91.034667, 90.354, 91.152,
    91.068, 90.022667, 90.969333, 91.15, 91.121333, 91.034667, 91.378, 90.102667, 90.298667,
    91.121333, 91.496, 91.152, 91.448, 91.324, 91.03, 91.21, 91.488, 91.378, 91.36, 91.034667,
    90.716, 90.417333, 89.834, 91.334]
EGNAS_CELLS = """
143213 321303 224302 324001 241322 224302 321242 021434 121030 121302 321242 321242 321042
331002 301042 320042 321042 304002 324102 341003 301042 301002 321042 341022 321222 321042
341242 321222 321042 341242 301222 321042 301222 321242 301042 321242 321242 341042 321042
321242 321022 301242 341232 321022 321242 321242 321042 321042 321042 321042 321222 321022
341242 321022 321022 321222 321042 321242 321222 321042
"""
EGNAS_FITNESS = [
    0.09573333000000006, -0.0556405878967115, -0.09851982267507067, -0.07253784595729318,
    -0.0590449456171864, -0.0966356952037554, -0.04686358934730117, 0.03605788248681707,
    -0.0376260185654288, 0.009130294529699684, -0.03717306973952192, 0.10754000000000008,
    -0.23878700104202416, -0.21231679540199427, -0.23969080883471172, -0.22722720800370821,
    -0.24651345453988066, -0.19722354137739212, 0.46655465194714907, -0.23511861664327138,
    -0.22753205279176358, -0.23754412991302454, 0.11805999999999994, 0.49667665200293204,
    0.4878872467619251, 0.49929821346287623, 0.5006161684544552, 0.49008137505015553,
    0.500698456211761, 0.4975822087717227, 0.48007494971233183, 0.5029128786737607,
    0.48519247615379646, 0.10754000000000008, -0.26290182236981136, 0.4976351398227707,
    0.49180320397704763, -0.25007911672200944, -0.26690517114421414, 0.49662153658993907,
    -0.27096373460699247, 0.4962036718607191, 0.4843596006320896, -0.2716338356242468,
    0.10754000000000008, 0.5013792739510332, -0.2756101021077592, -0.2747548803182334,
    -0.27313893289000346, -0.2766250148102583, 0.49395880444575946, -0.2794842102460144,
    -0.2770268422558931, -0.27643066220220713, -0.280477326708575, 0.10246,
    -0.2751738995835852, -0.28759076052530763, 0.49829193710249275, -0.2776138096610373]


def table_search(csv, out, algorithm: str) -> list[tuple[str, float]]:
    """A 60-evaluation table search of seed 0: each candidate's cell (see the module's
    docstring) and fitness, in order."""
    assert main(["search", "--algorithm", algorithm, "--space", "nb201", "--dataset", "nb201",
                 "--table", str(csv), "--metric", NB201_METRIC, "--evaluations", "60",
                 "--checkpoint-gap", "0", "--out", str(out), "--quiet"]) == 0
    return [(operations(r["key"]), r["fitness"][0]) for r in read_history(out)]


def operations(key: str) -> str:
    """``|nor_conv_3x3~0|+|...|`` as the indices of its operations in ``nb201.OPS``."""
    return "".join(str(nb201.OPS.index(edge.split("~")[0]))
                   for edge in key.split("|") if "~" in edge)


def test_a_renas_table_search_finds_what_it_found_before(nb201_csv, tmp_path):
    history = table_search(nb201_csv, tmp_path / "renas", "renas")
    assert [cell for cell, _ in history] == RENAS_CELLS.split()
    assert [fitness for _, fitness in history] == RENAS_FITNESS


def test_an_egnas_table_search_finds_what_it_found_before(nb201_csv, tmp_path):
    history = table_search(nb201_csv, tmp_path / "egnas", "egnas")
    assert [cell for cell, _ in history] == EGNAS_CELLS.split()
    assert [fitness for _, fitness in history] == pytest.approx(EGNAS_FITNESS, rel=1e-12,
                                                                abs=1e-15)


def controller_after_steps(threads: int, steps: int = 5) -> MutationController:
    """A controller of seed 0 that mutated and learned from ``steps`` children with torch on
    ``threads`` threads (the count restored afterwards)."""
    layout = genome_layout("nb201")
    controller = MutationController(layout, seed=0, fitness_scale=100)
    individual = nb201.SPACE.individual()
    rng, before = random.Random(0), torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for step in range(steps):
            child = init_layout(individual, layout, rng)
            controller.mutate(child)
            child.fitness.values = (80.0 + step,)
            controller.update([child])
    finally:
        torch.set_num_threads(before)
    return controller


def test_the_controller_learns_the_same_whatever_the_thread_count():
    one, two = controller_after_steps(1), controller_after_steps(2)
    for (name, a), b in zip(one.net.state_dict().items(), two.net.state_dict().values()):
        assert torch.equal(a, b), name


def test_the_controller_steps_on_one_thread_and_gives_the_count_back():
    seen = []
    controller = MutationController(genome_layout("nb201"), seed=0, fitness_scale=100)
    controller.net.encoder.register_forward_hook(
        lambda *_: seen.append(torch.get_num_threads()))
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        child = init_layout(nb201.SPACE.individual(), controller.layout, random.Random(0))
        controller.mutate(child)
        assert torch.get_num_threads() == 2
        child.fitness.values = (90.0,)
        controller.update([child])
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert seen == [1, 1]  # the mutation's encoding and the update's


@pytest.mark.parametrize("dimension, popsize, sigma, bound", [
    (30, 4, 1.0, 3.0), (30, 4, 0.02, 3.0), (12, 7, 0.5, 1.0), (30, 50, 0.3, 3.0)])
def test_a_sampling_runs_as_pycma_does_given_only_its_own_options(dimension, popsize, sigma,
                                                                  bound):
    """pycma's options evaluated once and reused: every sampling (the second of each shape
    too) asks what a strategy made from the sampling's own options asks."""
    for seed in (1, 2):
        centroid = np.linspace(-2, 2, dimension) * seed
        sampling = CMASampling(centroid, sigma, seed, popsize=popsize, iterations=3,
                               bound=bound)
        stream = np.random.default_rng(seed)
        plain = cma.CMAEvolutionStrategy(np.clip(centroid, -bound, bound), sigma, {
            "popsize": popsize, "bounds": [-bound, bound], "verbose": -9, "seed": math.nan,
            "randn": lambda *shape: stream.standard_normal(shape)})
        for _ in range(3):
            population, asked = sampling.generate(Candidate), plain.ask()
            assert np.array_equal(np.asarray(population), np.asarray(asked))
            values = [float(np.sum(np.square(x))) for x in asked]
            for individual, value in zip(population, values):
                individual.fitness.values = (value,)
            sampling.update(population)
            plain.tell(asked, values)
        assert np.array_equal(sampling.es.mean, plain.mean) and sampling.es.sigma == plain.sigma
