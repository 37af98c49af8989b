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

    python experiments/renas.py --tiny                       # digits on a CPU, about a minute
    python experiments/renas.py --data-dir ~/data --download # the paper's search and network
    python experiments/renas.py --mutation random ...        # the paper's EA baseline

The settings are the registered method's presets (``deapnas search --algorithm renas
--preset paper`` searches alike; see ``docs/methods/renas.rst``): CIFAR-10 with 5,000 of its
training images held out for validation, B = 5, F = 24, N = 2, P = 20, S = 5 and 2,000
evaluations in all (20 + 1,960 children + 20 retrained; the paper does not give #E or S).
``--tiny`` is a smoke preset (digits, B = 3, F = 4, N = 1, P = 5, 30 training images per
class), not a reproduction.

Every evaluation is journaled in ``--out`` as it completes, and the loop, the controller and
its optimizer are checkpointed with every random state; an interrupted run continues where it
stopped when the same command is run again with the same ``--out``.

The final network is trained without the paper's cutout, flips and crops, auxiliary head,
drop-path and dropout, and with one cosine cycle instead of cosine restarts: a plain baseline
of the found cell, not the paper's training recipe. Published: 2.88 +- 0.02 % test error on
CIFAR-10 (3.5 M parameters, 630 epochs with all of the above), searched in 1.5 days on 4 GPUs.
"""
import argparse
import dataclasses
import functools
import random
import signal
from pathlib import Path

import numpy as np
import torch
from deap import base, creator, tools

from deapnas import runner
from deapnas.controller import init_layout
from deapnas.data import DatasetError, Split, load_dataset
from deapnas.fitness import TrainEvaluator
from deapnas.methods import renas
from deapnas.options import as_dict
from deapnas.run import Journal, RunDirectoryError
from deapnas.spaces import nasnet

from experiment import add_run_options, fill_preset

# Module level, as DEAP requires for pickling (process pools send individuals to workers).
creator.create("FitnessMax", base.Fitness, weights=(1.0,))
creator.create("Individual", list, fitness=creator.FitnessMax)

#: The final network (§5.2.1): N = 6, F = 32, SGD with momentum 0.9, lr 0.05, weight decay
#: 3e-4, batch 128 (64 on each of 2 GPUs), 630 epochs.
FINAL = dict(final_cells=6, final_channels=32, final_epochs=630, final_lr=0.05)
TINY_FINAL = dict(final_cells=2, final_channels=8, final_epochs=5, final_lr=0.05)


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
                        f"it (paper: {FINAL['final_epochs']}, tiny: "
                        f"{TINY_FINAL['final_epochs']})")
    add_run_options(parser, "renas-experiment", "step")
    args = parser.parse_args(argv)
    fill_preset(args, TINY_FINAL if args.tiny else FINAL)
    if args.out is None:
        args.out = f"runs/renas-experiment{'-tiny' if args.tiny else ''}-seed{args.seed}"
    return args


def settings(args) -> tuple:
    """The method's config and options under its preset, with what was given here."""
    given = {k: v for k, v in dict(mutation=args.mutation, evaluations=args.evaluations,
                                   data_dir=args.data_dir, download=args.download,
                                   device=args.device, seed=args.seed, out=args.out).items()
             if v is not None}
    config, options = runner.settings(renas.METHOD, "tiny" if args.tiny else "paper", **given)
    runner.validate(config, options, renas.METHOD)
    return config, options


def make_toolbox(config, options, data) -> base.Toolbox:
    layout = nasnet.layout(options.blocks)
    toolbox = base.Toolbox()
    toolbox.register("individual", init_layout, creator.Individual, layout)
    toolbox.register("population", tools.initRepeat, list, toolbox.individual)
    training = runner.make_evaluator(config, options, nasnet.SPACE,
                                     renas.search_data(data, options, config.seed))
    toolbox.register("evaluate", renas.inheriting(training, options))
    renas.register_mutation(toolbox, layout, options)
    return toolbox


def final_network(cell, data, config, args) -> tuple[float, int]:
    """Train the cell's final network from scratch on the training and validation images and
    score it on the test split (its only use): ``(test accuracy, parameters)``."""
    final = dataclasses.replace(  # the evaluator scores its "val" split: here the test split
        data, train=Split(torch.cat([data.train.x, data.val.x]),
                          torch.cat([data.train.y, data.val.y])), val=data.test)
    evaluate = TrainEvaluator(
        functools.partial(nasnet.build_network, channels=args.final_channels,
                          cells_per_stage=args.final_cells),
        final, epochs=args.final_epochs, batch_size=128, optimizer="sgd", lr=args.final_lr,
        weight_decay=3e-4, schedule="cosine", device=config.device, seed=config.seed)
    result = evaluate(creator.Individual(cell))
    if result.info["reason"] is not None:
        raise SystemExit(f"the final network cannot be trained: {result.info['reason']}")
    return result[0], result.info["params"]


def main(argv=None):
    args = parse_args(argv)
    try:
        config, options = settings(args)
        data = load_dataset(config.dataset, config.data_dir, download=config.download,
                            seed=config.seed, val_fraction=options.val_fraction)
    except (ValueError, DatasetError) as error:  # the message says what to do
        raise SystemExit(f"error: {error}") from None
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # `kill` ends it like Ctrl-C
    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    toolbox = make_toolbox(config, options, data)
    stats = tools.Statistics(lambda ind: ind.fitness.values[0])
    for name, function in (("avg", np.mean), ("max", np.max)):
        stats.register(name, function)
    halloffame = tools.HallOfFame(1)
    steps = config.evaluations - renas.first_evaluations(options.population, tabular=False)
    try:  # a run made with other settings in --out is refused, naming them
        journal = Journal(args.out, nasnet.SPACE, creator.Individual, config={
            "run": config.fingerprint(), "options": as_dict(options)})
    except RunDirectoryError as error:
        raise SystemExit(f"error: {error}") from None
    with journal:  # also on Ctrl-C or kill: the same command run again resumes from here
        journal.wrap(toolbox)
        best, _, logbook = renas.evolve(
            toolbox.population(n=options.population), toolbox, options, steps,
            renas.WeightFiles(Path(args.out) / "weights", options.finetune_epochs),
            stats=stats, halloffame=halloffame, verbose=not args.quiet, journal=journal)
        journal.write_logbook(logbook)
    print(f"\n{len(journal.history)} evaluations in {args.out}; best child "
          f"{halloffame[0].fitness.values[0]:.4f} (fine-tuned)")
    if best is None:
        raise SystemExit("no member of the final population could be retrained; see the "
                         "reasons in history.jsonl")
    print(f"pick: the best of the population retrained from scratch ({options.epochs} epochs), "
          f"validation accuracy {best.fitness.values[0]:.4f}\n  {nasnet.to_json(best)}")
    if args.final_epochs:
        accuracy, params = final_network(best, data, config, args)
        print(f"final network N = {args.final_cells}, F = {args.final_channels} "
              f"({params:,} parameters), {args.final_epochs} epochs on train + validation: "
              f"test accuracy {accuracy:.4f}")
    return best, logbook


if __name__ == "__main__":
    main()
