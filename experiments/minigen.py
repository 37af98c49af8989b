"""MiniGen: efficient evolutionary search for convolutional networks (Zhang, Ebadi & Jing, 2024).

Every network is trained briefly (20 epochs) on a stratified *mini* dataset (100 training
images per class) and scored on 10 images per class; selection keeps the top k = 5 of n = 15
networks by ps, the mean of a network's recorded accuracies less 0.01 per generation of its
age, and breeds the rest from two parents drawn with probability softmax(ps), uniform crossover
per cell and three levels of mutation (P_c = 0.3, P_o = 0.5, P_b = 0.2). After 25 generations
the round restarts (the top 5 kept when the best exceeds 35 %, else a random population); the
search stops when 10 networks exceed 40 %, or after 100 generations (four rounds: the paper
sets no budget). Training is deterministic, so a surviving network's
score is looked up in the run's record instead of retrained. Then the paper trains the winners
on the full training set for 340 epochs.

Run it::

    python experiments/minigen.py --data-dir ~/data --download     # the paper: Mini CIFAR-10
    python experiments/minigen.py --tiny                            # the shared MNIST images
    python experiments/minigen.py --tiny --pareto     # (accuracy, parameters) with NSGA-II

``--tiny`` is a CPU smoke preset on the shared MNIST images (../shared/data/mnist): n = 10,
k = 5, 4 generations after the first, 10 epochs on 20 images per class, widths 8 to 32,
thresholds raised to MNIST's level (restart 80 %, win 90 %), 3 finalists trained 1 epoch. It is
not a reproduction.

Every evaluation is journaled in ``--out`` as it completes, and each finalist's training
saves its whole state after every epoch in ``--out/finalist-K`` (as ``deapnas train`` does); an
interrupted run continues where it stopped, to the result of an uninterrupted one, when the same
command is run again.

Departures from the paper, each a named option: the scoring images come from the training split
(``--score-from test`` scores on test images as the paper does); the winners are trained on the
training split less a validation share, the final pick is the best *validation* accuracy, and
the test split is only reported (the paper reports test accuracy for all ten). The paper is
silent on the optimiser, learning rate and batch size (here Adam, 1e-3, 128).

Published: ten winners of 0.9 M to 5.4 M parameters with 64.6 % to 75.0 % test accuracy after
340 epochs on CIFAR-10; the best accuracy-to-parameter ratio 74.7 % at 0.9 M (0.83 per M);
search about 10 minutes on one A100.
"""
import argparse
from pathlib import Path
from statistics import fmean

import numpy as np
from deap import base, creator, tools

from deapnas.data import DATASETS, mini_dataset
from deapnas.fitness import TrainEvaluator
from deapnas.methods.minigen import (MINI_FILE, PAPER_GENERATIONS, SmallModelEvaluator,
                                     ea_minigen, register_operators)
from deapnas.spaces import minigen
from deapnas.training import CandidateFailure

from experiment import (add_run_options, fill_preset, final_training, load_data, open_journal,
                        start)

# Module level, as DEAP requires for pickling (process pools send individuals to workers).
creator.create("FitnessMax", base.Fitness, weights=(1.0,))
creator.create("Individual", minigen.MiniGenGenome, fitness=creator.FitnessMax)
creator.create("FitnessAccuracyParams", base.Fitness, weights=(1.0, -1.0))
creator.create("SmallIndividual", minigen.MiniGenGenome, fitness=creator.FitnessAccuracyParams)

MNIST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"
PAPER = dict(dataset="cifar10", data_dir=None, population=15, keep=5,
             generations=PAPER_GENERATIONS,
             restart_period=25, restart_threshold=0.35, win_threshold=0.40, wins_needed=10,
             epochs=20, batch_size=128, train_per_class=100, score_per_class=10,
             widths=list(minigen.CHANNELS), final_epochs=340, finalists=10)
TINY = dict(dataset="idx", data_dir=str(MNIST), population=10, keep=5, generations=4,
            restart_period=5, restart_threshold=0.8, win_threshold=0.9, wins_needed=5,
            epochs=10, batch_size=20, train_per_class=20, score_per_class=10,
            widths=[8, 16, 24, 32], final_epochs=1, finalists=3)
# Settings that may change between an interrupted run and its resumption.
FREE_TO_CHANGE = ("device", "download", "quiet")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true",
                        help="CPU smoke preset: " + ", ".join(f"{k}={v}" for k, v in TINY.items())
                        + " (options given explicitly win)")
    parser.add_argument("--dataset", choices=DATASETS, help="default cifar10 (tiny: idx)")
    parser.add_argument("--data-dir", help="where the dataset is read (tiny: the shared MNIST)")
    parser.add_argument("--download", action="store_true", help="fetch a torchvision dataset")
    parser.add_argument("--population", type=int, help="n (paper: 15)")
    parser.add_argument("--keep", type=int, help="k, kept by ps (5)")
    parser.add_argument("--generations", type=int,
                        help="stop after this many generations after the first besides the stop "
                             "rule (paper: none; default 100, four rounds)")
    parser.add_argument("--restart-period", type=int, help="generations per round (25)")
    parser.add_argument("--restart-threshold", type=float,
                        help="keep the top k at a restart above this accuracy (0.35)")
    parser.add_argument("--win-threshold", type=float, help="a winner's accuracy (0.40)")
    parser.add_argument("--wins-needed", type=int, help="stop after this many winners (10)")
    parser.add_argument("--epochs", type=int, help="E_mini, epochs per network (20)")
    parser.add_argument("--batch-size", type=int, help="batch size (128)")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    parser.add_argument("--train-per-class", type=int, help="mini training images per class (100)")
    parser.add_argument("--score-per-class", type=int, help="mini scoring images per class (10)")
    parser.add_argument("--score-from", choices=("train", "test"), default="train",
                        help="scoring images from the training split, or from the test split "
                             "as in the paper (the search then selects on test images)")
    parser.add_argument("--widths", type=int, nargs="+", help="a normal cell's channel choices")
    parser.add_argument("--final-epochs", type=int,
                        help="epochs of the finalists' training on the full training split "
                             "(340; 0 skips it)")
    parser.add_argument("--finalists", type=int,
                        help="winners trained finally, best mini-set accuracy first (10)")
    parser.add_argument("--pareto", action="store_true",
                        help="select survivors by NSGA-II on (accuracy, parameters) and print "
                             "the Pareto front")
    add_run_options(parser, "minigen", "generation")
    args = parser.parse_args(argv)
    fill_preset(args, TINY if args.tiny else PAPER)
    if not 2 <= args.keep < args.population:
        parser.error(f"--keep must lie between 2 and --population - 1 ({args.population - 1})")
    if args.out is None:
        args.out = (f"runs/minigen-{args.dataset}{'-pareto' if args.pareto else ''}"
                    f"{'-tiny' if args.tiny else ''}-seed{args.seed}")
    return args


def training(args, data, epochs: int, **extra) -> TrainEvaluator:
    """The search's training recipe (deterministic, so that a network trains the same in every
    generation), for ``epochs`` epochs."""
    return TrainEvaluator(minigen.build_network, data, epochs=epochs,
                          batch_size=args.batch_size, optimizer="adam", lr=args.lr,
                          device=args.device, seed=args.seed, deterministic=True,
                          cublas_workspace=":16:8", **extra)


def finalists(winners, population, args) -> list:
    """The networks trained finally: the winners (the best ``keep`` of the last population
    when none won), best mean mini-set accuracy first, at most ``args.finalists``."""
    pool = winners or [ind for ind in population if ind.accuracies]
    return sorted(pool, key=lambda ind: fmean(ind.accuracies), reverse=True)[:args.finalists]


def main(argv=None):
    args = parse_args(argv)
    data = load_data(args)
    start(args.seed)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    mini = mini_dataset(data, args.train_per_class, args.score_per_class, seed=args.seed,
                        score_from=args.score_from, path=Path(args.out) / MINI_FILE)
    objectives = ("accuracy", "params") if args.pareto else ("accuracy",)
    individual = creator.SmallIndividual if args.pareto else creator.Individual
    toolbox = register_operators(base.Toolbox(), individual, channels=tuple(args.widths))
    search_training = training(args, mini, args.epochs, objectives=objectives)
    toolbox.register("evaluate", SmallModelEvaluator(search_training))

    stats = tools.Statistics(lambda ind: ind.fitness.values[0])
    stats.register("avg", np.mean)
    stats.register("max", np.max)
    hof = tools.ParetoFront() if args.pareto else tools.HallOfFame(1)
    winners = []
    settings = {k: v for k, v in vars(args).items() if k not in FREE_TO_CHANGE}
    # also on Ctrl-C or kill: the same command run again resumes from here
    with open_journal(args.out, minigen.SPACE, individual, config=settings) as journal:
        journal.wrap(toolbox)
        journal.state_files.append(lambda state: [Path(args.out) / MINI_FILE])  # checked
        population, logbook = ea_minigen(
            toolbox.population(n=args.population), toolbox, args.generations, keep=args.keep,
            restart_period=args.restart_period, restart_threshold=args.restart_threshold,
            win_threshold=args.win_threshold, wins_needed=args.wins_needed, stats=stats,
            halloffame=hof, winners=winners, verbose=not args.quiet, journal=journal)
        journal.write_logbook(logbook)
        trained, reused = sum(logbook.select("nevals")), sum(logbook.select("nreused"))
        print(f"\n{len(logbook)} generations, {logbook[-1]['restarts']} restart(s): "
              f"{trained} trainings, {reused} survivor scores looked up instead of retrained; "
              f"{len(winners)} winner(s) above {args.win_threshold}")
        if args.pareto:
            print_front(hof)
        chosen = finalists(winners, population, args)
        if args.final_epochs and chosen:  # in the journal's lock, as the search
            final = training(args, data, args.final_epochs)
            report_finalists(chosen, [train_finalist(final, ind, rank, args)
                                      for rank, ind in enumerate(chosen, 1)], args)
    return population, logbook, winners


def train_finalist(final: TrainEvaluator, ind, rank: int, args) -> dict:
    """The finalist trained on the training split (resuming per epoch in
    ``--out/finalist-RANK``): its validation accuracy, which picks, its test accuracy,
    reported beside it, and its parameters; or the reason it failed."""
    try:
        test, net = final_training(final, ind, Path(args.out) / f"finalist-{rank}",
                                   seed=args.seed, quiet=args.quiet, keep_validation=True)
    except CandidateFailure as error:
        return {"reason": str(error)}
    return {"validation": final.accuracy(net, final.device_data.val), "test": test,
            "params": sum(p.numel() for p in net.parameters())}


def print_front(front) -> None:
    print(f"Pareto front on (mini-set accuracy, parameters), {len(front)} network(s):")
    for ind in sorted(front, key=lambda i: i.fitness.values[1]):
        accuracy, params = ind.fitness.values
        print(f"  {accuracy:.3f}  {int(params):>10,}  {minigen.to_json(ind)}")


def report_finalists(chosen, results, args) -> None:
    """The paper's Table III for the finalists, and the pick by validation accuracy."""
    print(f"\nfinalists trained {args.final_epochs} epoch(s) on the training split:")
    print(f"{'mini-set':>9} {'validation':>11} {'test':>7} {'parameters':>11} {'val/M':>7}")
    rows = []
    for ind, result in zip(chosen, results):
        if "reason" in result:
            print(f"  failed: {result['reason']}  {minigen.to_json(ind)}")
            continue
        rows.append((result["validation"], ind))
        print(f"{fmean(ind.accuracies):>9.3f} {result['validation']:>11.3f} "
              f"{result['test']:>7.3f} {result['params']:>11,} "
              f"{result['validation'] / (result['params'] / 1e6):>7.2f}")
    if rows:
        best = max(rows, key=lambda row: row[0])[1]
        print(f"pick (best validation accuracy): {minigen.to_json(best)}")


if __name__ == "__main__":
    main()
