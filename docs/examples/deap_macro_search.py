"""Macro architecture search written as a plain DEAP script.

Small settings (populations of 8 and 6, 5 training epochs, 38 evaluations in all), sized for a
CPU; the comments give the paper's values. ``python benchmarks/example_output.py`` records what
it prints and the seconds it takes (docs/getting-started.rst shows both).
"""
import functools
import random

import numpy as np
import torch
from deap import algorithms, base, creator, tools

import deapnas.algorithms
from deapnas import data, fitness
from deapnas.spaces import macro

# Classes used by pickling (checkpoints, process pools) must be created at module level.
creator.create("FitnessMax", base.Fitness, weights=(1.0,))
creator.create("Individual", macro.MacroGenome, fitness=creator.FitnessMax)

toolbox = base.Toolbox()
toolbox.register("individual", macro.init_genome, creator.Individual)   # 4 random layers
toolbox.register("population", tools.initRepeat, list, toolbox.individual)
toolbox.register("mutate", macro.mutate, p_add=0.25, p_identity=0.05)
toolbox.register("select", deapnas.algorithms.sel_best_of_sample, sample_size=3)  # paper: 25

# Fitness: train on the training split, score accuracy on the validation split. The bundled
# digits are 8x8 images, where the paper's pools (stride = kernel) collapse more than half of
# all random genomes to nothing; clamp_pools=True (a departure from the paper) lets a pool that
# is larger than its input pool the whole input instead, leaving a 1x1 map.
torch.set_num_threads(1)  # networks this small gain nothing from more, and lose on a busy CPU
dataset = data.load_dataset("digits")                      # bundled 8x8 digits, no download
toolbox.register("evaluate", fitness.TrainEvaluator(
    functools.partial(macro.build_network, channels=32,    # paper: channels=64
                      clamp_pools=True),                   # paper: off (28x28 images)
    dataset, epochs=5, batch_size=64, lr=5e-3,             # paper: 10 epochs of Adam
    device="cpu"))                                         # (lr unstated; deapnas: 1e-3)


def finite(values):
    return [v for v in values if np.isfinite(v)]


def statistics():
    """Mean and best of the candidates that could be built and trained; count the others."""
    stats = tools.Statistics(lambda ind: ind.fitness.values[0])
    stats.register("avg", lambda v: np.mean(finite(v)) if finite(v) else float("nan"))
    stats.register("max", np.max)
    stats.register("failed", lambda v: len(v) - len(finite(v)))
    return stats


def main(seed=0):
    # 1. Regularized (aging) evolution, the paper's method: P = 8 individuals, 16 cycles
    #    (paper: P = 100, 400 cycles).
    random.seed(seed)
    hof = tools.HallOfFame(1)
    population, logbook = deapnas.algorithms.regularized_evolution(
        toolbox.population(n=8), toolbox, cycles=16, stats=statistics(), halloffame=hof,
        verbose=True)
    print("regularized evolution, best:", hof[0], hof[0].fitness.values)

    # 2. DEAP's own (mu + lambda) loop on the same toolbox, now with NEAT-style crossover (an
    #    extension: the paper mutates only) and truncation selection of the best mu among
    #    parents and children.
    random.seed(seed)
    toolbox.register("mate", macro.mate)
    toolbox.register("select", tools.selBest)
    hof = tools.HallOfFame(1)
    population, logbook = algorithms.eaMuPlusLambda(
        toolbox.population(n=6), toolbox, mu=6, lambda_=4, cxpb=0.5, mutpb=0.5, ngen=2,
        stats=statistics(), halloffame=hof, verbose=True)
    print("(mu + lambda) with crossover, best:", hof[0], hof[0].fitness.values)
    assert isinstance(logbook, tools.Logbook)


if __name__ == "__main__":
    main()
