"""Regularized evolution for macro neural architecture search (Kyriakides & Margaritis, 2020).

Whole convolutional networks are encoded DeepNEAT-style (layer genes and connection genes, 12
layer choices: convolutions of kernel 2, 3, 5 with C or C/2 filters, average or max pools of
kernel 2, 3, 5) and evolved by aging evolution: each cycle samples S individuals, trains the
mutated copy of the best one and appends it, and removes the oldest individual. Mutation only:
add a node (p = 0.25), leave intact (p = 0.05), else re-draw one layer gene or toggle one
connection. The final pick is the architecture with the best *average* fitness among those
evaluated at least 5 times.

Run it::

    python experiments/regularized_evolution_macro.py --tiny          # < 1 min on CPU, digits
    python experiments/regularized_evolution_macro.py --tiny --dataset idx \\
        --data-dir ../shared/data/mnist                  # the shared MNIST images, ~1.5 min
    python experiments/regularized_evolution_macro.py --data-dir ~/data --download \\
        --final-epochs 20                   # the paper's search, then retraining at C = 256
    python experiments/regularized_evolution_macro.py --random-search ...  # S = 1 baseline

``--tiny`` is a smoke preset (P = 12, S = 4, 48 cycles, 4 epochs, C = 32, 100 training images
per class), not a reproduction.

Every evaluation is journaled in ``--out`` as it completes; an interrupted run continues where
it stopped when the same command is run again with the same ``--out``.

Paper settings (the defaults): P = 100, S = 25 drawn with replacement, 400 cycles (500
evaluations in all), 10 epochs of Adam per candidate, C = 64, unpadded ("valid") convolutions,
add-node splitting any connection (the authors' rule), Fashion-MNIST, no augmentation. The paper
is silent on the learning rate and batch size (here 1e-3 and 128) and places no parameter cap
(here 5 M, so that pool-free candidates with a huge first fully connected layer fail fast with a
recorded reason). The paper scores candidates on the test set; here fitness is accuracy on a
validation split held out of the training set, and the test split is used only by the optional
final retraining (``--final-epochs``), the paper's: horizontal flips and random erasing, at
``--final-channels``, as ``deapnas train`` runs it
(:func:`deapnas.methods.regularized.final_evaluator`). The logbook's statistics are over the
candidates that did not fail.

Published: best architecture found by the search 93.62 % (test accuracy after 10 epochs);
final network REMNet 94.46 % (C = 256, 3.1 M parameters, 20 epochs with augmentation),
94.26 % at C = 128; random search best 91.91 %.
"""
import argparse
import dataclasses
import functools

from deap import base, creator, tools

from deapnas import algorithms
from deapnas.data import DATASETS, stratified_subset
from deapnas.fitness import TrainEvaluator
from deapnas.methods import regularized
from deapnas.networks import count_parameters
from deapnas.options import ADD_NODE_SPLITS, CONV_PADDINGS
from deapnas.runner import fitness_stats
from deapnas.spaces import macro

from experiment import (add_run_options, fill_preset, final_training, load_data,
                        open_journal, start)

# Module level, as DEAP requires for pickling (process pools send individuals to workers).
creator.create("FitnessMax", base.Fitness, weights=(1.0,))
creator.create("Individual", macro.MacroGenome, fitness=creator.FitnessMax)

PAPER = dict(dataset="fashion-mnist", population=100, sample_size=25, cycles=400, epochs=10,
             channels=64, batch_size=128, train_per_class=0, min_evaluations=5,
             conv_padding="valid", with_replacement=True, add_node_split="any",
             final_channels=256, final_epochs=0, no_flip=False)
TINY = dict(dataset="digits", population=12, sample_size=4, cycles=48, epochs=4,
            channels=32, batch_size=64, train_per_class=100, min_evaluations=3,
            conv_padding="same", with_replacement=True, add_node_split="any",
            final_channels=32, final_epochs=5, no_flip=True)
# Settings that may change between an interrupted run and its resumption.
FREE_TO_CHANGE = ("device", "download", "final_channels", "final_epochs", "no_flip", "quiet")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true",
                        help="CPU smoke preset: " + ", ".join(f"{k}={v}" for k, v in TINY.items())
                        + " (options given explicitly win)")
    parser.add_argument("--random-search", action="store_true",
                        help="the paper's baseline: sample size S = 1")
    parser.add_argument("--dataset", choices=DATASETS, help="default fashion-mnist (tiny: digits)")
    parser.add_argument("--data-dir", help="where the dataset is read (idx: required)")
    parser.add_argument("--download", action="store_true", help="fetch a torchvision dataset")
    parser.add_argument("--population", type=int, help="P (paper: 100)")
    parser.add_argument("--sample-size", type=int, help="S (paper: 25)")
    parser.add_argument("--cycles", type=int, help="cycles after the first population (400)")
    parser.add_argument("--epochs", type=int, help="training epochs per candidate (10)")
    parser.add_argument("--channels", type=int, help="width C (64)")
    parser.add_argument("--batch-size", type=int, help="batch size (128)")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    parser.add_argument("--train-per-class", type=int,
                        help="train candidates on this many images per class (0: all; tiny: 100)")
    parser.add_argument("--min-evaluations", type=int,
                        help="the pick is the best mean of architectures evaluated at least "
                             "this often (paper: 5; tiny: 3)")
    parser.add_argument("--max-params", type=int, default=5_000_000,
                        help="candidates with more parameters fail without training")
    parser.add_argument("--conv-padding", choices=CONV_PADDINGS,
                        help="convolutions keep the size (same) or are unpadded (valid, the "
                             "paper's; tiny: same, for the 8x8 digits)")
    parser.add_argument("--with-replacement", action=argparse.BooleanOptionalAction,
                        help="draw the sample of S with replacement (the authors' code)")
    parser.add_argument("--add-node-split", choices=ADD_NODE_SPLITS,
                        help="connections add-node may split: enabled, or any (the authors')")
    parser.add_argument("--no-flip", action=argparse.BooleanOptionalAction,
                        help="final retraining without horizontal flips (tiny: digits are not "
                             "mirror-symmetric)")
    parser.add_argument("--final-channels", type=int, help="width of the final retraining (256)")
    parser.add_argument("--final-epochs", type=int,
                        help="retrain the pick for this many epochs on train + validation and "
                             "score it on the test split; 0 skips it (default 0, tiny: 5)")
    add_run_options(parser, "remacro", "cycle")
    args = parser.parse_args(argv)
    fill_preset(args, TINY if args.tiny else PAPER)
    if args.random_search:
        args.sample_size = 1
    if not 1 <= args.sample_size <= args.population:
        parser.error(f"--sample-size must lie between 1 and --population ({args.population})")
    if args.out is None:
        args.out = (f"runs/remacro-{args.dataset}-{'rs' if args.random_search else 're'}"
                    f"{'-tiny' if args.tiny else ''}-seed{args.seed}")
    return args


def make_toolbox(args, data):
    toolbox = base.Toolbox()
    toolbox.register("individual", macro.init_genome, creator.Individual,
                     split=args.add_node_split)
    toolbox.register("population", tools.initRepeat, list, toolbox.individual)
    toolbox.register("mutate", macro.mutate, p_add=0.25, p_identity=0.05,
                     split=args.add_node_split)
    toolbox.register("select", algorithms.sel_best_of_sample, sample_size=args.sample_size,
                     replace=args.with_replacement)
    toolbox.register("evaluate", TrainEvaluator(
        functools.partial(macro.build_network, channels=args.channels,
                          padding=args.conv_padding), data,
        epochs=args.epochs, batch_size=args.batch_size, optimizer="adam", lr=args.lr,
        device=args.device, seed=args.seed, max_params=args.max_params))
    return toolbox


def retrain(genome, data, args):
    """The paper's final training of the pick (``deapnas train``'s for this method: flips and
    random erasing) on train + validation at the final width, scored on the test split (its
    only use), resuming per epoch in ``--out`` (:func:`experiment.final_training`):
    ``(test accuracy, parameters)``."""
    options = regularized.Options(
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, channels=args.channels,
        conv_padding=args.conv_padding, final_channels=args.final_channels,
        final_epochs=args.final_epochs, no_flip=args.no_flip)
    evaluator = regularized.final_evaluator(options, data, device=args.device, seed=args.seed)
    accuracy, net = final_training(evaluator, genome, args.out, args.final_epochs, args.seed,
                                   args.quiet)
    return accuracy, count_parameters(net)


def main(argv=None):
    args = parse_args(argv)
    data = load_data(args)
    start(args.seed)
    search_data = data
    if args.train_per_class:  # a stratified subset of the training split, to search faster
        subset = stratified_subset(data.train.y, args.train_per_class, args.seed)
        search_data = dataclasses.replace(data, train=data.train.subset(subset))
    toolbox = make_toolbox(args, search_data)

    stats = fitness_stats()  # over the candidates that did not fail (-inf)
    hof = tools.HallOfFame(1)
    settings = {k: v for k, v in vars(args).items() if k not in FREE_TO_CHANGE}
    # also on Ctrl-C or kill: the same command run again resumes from here
    with open_journal(args.out, macro.SPACE, creator.Individual, config=settings) as journal:
        journal.wrap(toolbox)
        pop, logbook = algorithms.regularized_evolution(
            toolbox.population(n=args.population), toolbox, cycles=args.cycles, stats=stats,
            halloffame=hof, verbose=not args.quiet, journal=journal)
        journal.write_logbook(logbook)
    history = journal.history
    failed = sum(r["reason"] is not None for r in history)
    print(f"\n{len(history)} evaluations in {args.out} ({failed} candidates failed; reasons in "
          f"history.jsonl)")
    print(f"best single evaluation: {hof[0].fitness.values[0]:.4f}  {hof[0]!r}")
    pick = algorithms.best_average(history, args.min_evaluations)
    if pick is None:
        raise SystemExit("no candidate could be trained; see the reasons in history.jsonl")
    genome = macro.from_json(pick["genome"], creator.Individual)
    how = (f"none was evaluated {args.min_evaluations} times: best mean of all"
           if pick["fallback"] else
           f"best mean of architectures evaluated >= {args.min_evaluations} times")
    print(f"final pick ({how}): validation accuracy {pick['mean_fitness']:.4f} over "
          f"{pick['times_evaluated']} evaluation(s), {pick['info']['params']:,} parameters at "
          f"C={args.channels}\n  {genome!r}")
    if args.final_epochs:
        accuracy, params = retrain(genome, data, args)
        print(f"retrained {args.final_epochs} epochs at C={args.final_channels} "
              f"({params:,} parameters): test accuracy {accuracy:.4f}")
    return pop, logbook, hof


if __name__ == "__main__":
    main()
