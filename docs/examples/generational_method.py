"""A search method of your own, run by the ``deapnas`` command: DEAP's ``eaSimple`` as a
generational search on the NAS-Bench-201 table.

    PYTHONPATH=docs/examples deapnas search --algorithm generational_method:METHOD \
        --space nb201 --dataset nb201 --table ../shared/data/nas-bench-201/nb201.csv \
        --metric cifar10valid_xvalid_acc_200ep_mean --evaluations 200 --tournament 4

The run directory, the progress bar, ``resume``, ``show`` and ``train`` come with it. The loop
hands no checkpoint over, so ``deapnas resume`` replays its recorded evaluations from the start.
"""
from dataclasses import dataclass

from deap import algorithms, tools

from deapnas.methods import Method
from deapnas.options import option


@dataclass
class Options:
    population: int = option(20, "individuals per generation", minimum=2)
    tournament: int = option(3, "tournament size", minimum=1)


def search(run):
    toolbox = run.toolbox()  # individual, population, mutate, evaluate, map: ready
    toolbox.register("select", tools.selTournament, tournsize=run.options.tournament)
    generations = run.config.evaluations // run.options.population - 1
    _, logbook = algorithms.eaSimple(toolbox.population(run.options.population), toolbox,
                                     cxpb=0.0, mutpb=1.0, ngen=generations, stats=run.stats,
                                     halloffame=run.halloffame, verbose=False)
    return logbook


METHOD = Method("generational", Options, search, spaces=("nb201",),
                presets={"tiny": {"evaluations": 200}},
                description="DEAP's eaSimple with tournament selection")
