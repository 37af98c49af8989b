"""Macro architecture search written as a plain DEAP script.

Small settings (population 6, 1 training epoch) so that it finishes in seconds on a CPU; see the
comments for the paper's values.
"""
import functools
import random

import numpy as np
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

# Fitness: train on the training split, score accuracy on the validation split.
dataset = data.load_dataset("digits")                      # bundled 8x8 digits, no download
toolbox.register("evaluate", fitness.TrainEvaluator(
    functools.partial(macro.build_network, channels=32),  # paper: channels=64
    dataset, epochs=1, batch_size=64, device="cpu"))      # paper: 10 epochs of Adam


def statistics():
    stats = tools.Statistics(lambda ind: ind.fitness.values[0])
    stats.register("avg", np.mean)
    stats.register("max", np.max)
    return stats


def main(seed=0):
    # 1. Regularized (aging) evolution: P = 6 individuals, 6 cycles (paper: P = 100, 400 cycles).
    random.seed(seed)
    hof = tools.HallOfFame(1)
    population, logbook = deapnas.algorithms.regularized_evolution(
        toolbox.population(n=6), toolbox, cycles=6, stats=statistics(), halloffame=hof,
        verbose=True)
    print("regularized evolution, best:", hof[0], hof[0].fitness.values)

    # 2. DEAP's own (mu + lambda) loop on the same toolbox: mutation only (cxpb=0, so no
    #    `mate` is needed) and truncation selection of the best mu among parents and children.
    random.seed(seed)
    toolbox.register("select", tools.selBest)
    hof = tools.HallOfFame(1)
    population, logbook = algorithms.eaMuPlusLambda(
        toolbox.population(n=6), toolbox, mu=6, lambda_=3, cxpb=0.0, mutpb=1.0, ngen=2,
        stats=statistics(), halloffame=hof, verbose=True)
    print("(mu + lambda), best:", hof[0], hof[0].fitness.values)
    assert isinstance(logbook, tools.Logbook)


if __name__ == "__main__":
    main()
