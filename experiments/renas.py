"""RENAS, reinforced evolutionary neural architecture search (Chen et al., 2019), on CIFAR-10.

A population of NASNet-like cells (B blocks of two inputs and two operations added; one cell
type, stride 2 in the reduction cells) evolves by tournament: each step samples S individuals,
the best one's mutated copy joins the population and the worst one dies. The mutation is
learned: a controller (embedding and bidirectional LSTM over the cell's tokens, then per block
a router, an input mutator and an op mutator) is trained by REINFORCE on tan(f pi / 2) of each
child's validation accuracy f. A child inherits every parameter of its parent whose name and
shape match and is fine-tuned one pass over the training images, its new parameters at 10x the
learning rate (0.01 vs 0.001). At the end the population is retrained from scratch and the best
on the validation split is the result, which is then trained as the final network (N = 6,
F = 32) on all 50,000 training images and scored once on the test split.

Run it::

    python experiments/renas.py --tiny                       # digits on a CPU, a few minutes
    python experiments/renas.py --data-dir ~/data --download # the paper's search and network
    python experiments/renas.py --mutation random ...        # the paper's EA baseline

The settings are the registered method's presets (``deapnas search --algorithm renas
--preset paper`` searches alike; see ``docs/methods/renas.rst``): CIFAR-10 with 5,000 of its
training images held out for validation, B = 5, F = 24, N = 2, P = 20, S = 5 and 2,000
evaluations in all (20 + 1,960 children + 20 retrained; the paper does not give #E or S).
``--tiny`` is a demonstration preset (digits, B = 3, F = 8, N = 1, P = 5, every training
image), not a reproduction.

Every evaluation is journaled in ``--out`` as it completes, and the loop, the controller and
its optimizer are checkpointed with every random state; an interrupted run continues where it
stopped when the same command is run again with the same ``--out``.

The final network is the method's (deapnas.methods.renas.final_evaluator): crops, flips,
Cutout, the auxiliary head, dropout 0.5 and drop-path 0.5, with one cosine cycle instead of
the paper's cosine restarts. Published: 2.88 +- 0.02 % test error on
CIFAR-10 (3.5 M parameters, 630 epochs with all of the above), searched in 1.5 days on 4 GPUs.
"""
import argparse
from pathlib import Path

import numpy as np
from deap import base, creator, tools

from deapnas import runner
from deapnas.data import DatasetError
from deapnas.methods import renas
from deapnas.networks import inference_parameters
from deapnas.options import as_dict
from deapnas.spaces import nasnet
from deapnas.training import CandidateFailure

from experiment import add_run_options, final_training, open_journal, start

# Module level, as DEAP requires for pickling (process pools send individuals to workers).
creator.create("FitnessMax", base.Fitness, weights=(1.0,))
creator.create("Individual", list, fitness=creator.FitnessMax)

def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="the CPU smoke preset")
    parser.add_argument("--mutation", choices=("controller", "random"),
                        help="random: the paper's EA baseline (default: controller)")
    parser.add_argument("--evaluations", type=int, help="budget, first population and final "
                        "retraining included (paper preset: 2000, tiny: 20)")
    parser.add_argument("--data-dir", help="where CIFAR-10 is read (and downloaded)")
    parser.add_argument("--download", action="store_true", help="fetch CIFAR-10 if missing")
    parser.add_argument("--final-epochs", type=int, help="epochs of the final network; 0 skips "
                        "it (paper: 630, tiny: 5)")
    add_run_options(parser, "renas-experiment", "step")
    args = parser.parse_args(argv)
    if args.out is None:
        args.out = f"runs/renas-experiment{'-tiny' if args.tiny else ''}-seed{args.seed}"
    return args


def settings(args) -> tuple:
    """The method's config and options under its preset, with what was given here."""
    given = {k: v for k, v in dict(mutation=args.mutation, evaluations=args.evaluations,
                                   data_dir=args.data_dir, download=args.download,
                                   device=args.device, seed=args.seed, out=args.out,
                                   final_epochs=args.final_epochs or None).items()
             if v is not None}
    config, options = runner.settings(renas.METHOD, "tiny" if args.tiny else "paper", **given)
    runner.validate(config, options, renas.METHOD)
    return config, options


def make_toolbox(config, options, data) -> base.Toolbox:
    """The method's search training (:func:`deapnas.methods.renas.search_training`: the
    inheritance learning rates, crops and flips) and its mutation."""
    toolbox = base.Toolbox()
    toolbox.register("evaluate", runner.make_evaluator(
        config, options, nasnet.SPACE, renas.search_data(data, options, config.seed),
        **renas.search_training(options)))
    renas.register_mutation(toolbox, nasnet.layout(options.blocks), options)
    return toolbox


def final_network(cell, data, config, options, quiet: bool = False) -> tuple[float, int]:
    """The method's final network (:func:`deapnas.methods.renas.final_evaluator`) trained from
    scratch on the training and validation images and scored on the test split (its only
    use), resuming per epoch in the run directory (:func:`experiment.final_training`):
    ``(test accuracy, parameters)``."""
    evaluator = renas.final_evaluator(options, data, device=config.device, seed=config.seed)
    try:
        accuracy, net = final_training(evaluator, creator.Individual(cell), config.out,
                                       seed=config.seed, quiet=quiet)
    except CandidateFailure as error:
        raise SystemExit(f"the final network cannot be trained: {error}") from None
    return accuracy, inference_parameters(net)


def main(argv=None):
    args = parse_args(argv)
    try:
        config, options = settings(args)
        data = runner.load_data(config, options)
    except (ValueError, DatasetError) as error:  # the message says what to do
        raise SystemExit(f"error: {error}") from None
    start(config.seed)
    toolbox = make_toolbox(config, options, data)
    stats = tools.Statistics(lambda ind: ind.fitness.values[0])
    for name, function in (("avg", np.mean), ("max", np.max)):
        stats.register(name, function)
    halloffame = tools.HallOfFame(1)
    steps = config.evaluations - renas.first_evaluations(options.population, tabular=False)
    recorded = {"run": config.fingerprint(), "options": {  # the final network may change
        name: value for name, value in as_dict(options).items() if not name.startswith("final_")}}
    # also on Ctrl-C or kill: the same command run again resumes from here
    with open_journal(args.out, nasnet.SPACE, creator.Individual, config=recorded) as journal:
        journal.wrap(toolbox)
        population = renas.initial_population(creator.Individual, nasnet.layout(options.blocks),
                                              options.population, config.seed)
        best, _, logbook = renas.evolve(
            population, toolbox, options, steps,
            renas.WeightFiles(Path(args.out) / "weights", options.finetune_epochs),
            stats=stats, halloffame=halloffame, verbose=not args.quiet, journal=journal,
            key=nasnet.key)
        journal.write_logbook(logbook)
    print(f"\n{len(journal.history)} evaluations in {args.out}; best child "
          f"{halloffame[0].fitness.values[0]:.4f} (fine-tuned)")
    if best is None:
        raise SystemExit("no member of the final population could be retrained; see the "
                         "reasons in history.jsonl")
    print(f"pick: the best of the population retrained from scratch ({options.epochs} epochs), "
          f"validation accuracy {best.fitness.values[0]:.4f}\n  {nasnet.to_json(best)}")
    if args.final_epochs != 0:
        accuracy, params = final_network(best, data, config, options, args.quiet)
        print(f"final network N = {options.final_cells}, F = {options.final_channels} "
              f"({params:,} parameters), {options.final_epochs} epochs on train + validation: "
              f"test accuracy {accuracy:.4f}")
    return best, logbook


if __name__ == "__main__":
    main()
