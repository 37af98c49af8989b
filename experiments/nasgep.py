"""NASGEP (Alves & de Oliveira, 2020) on CIFAR-10 as a DEAP script: the paper's search and the
final training of the model it finds, scored on the test set.

    python experiments/nasgep.py --download          # the paper's experiment (a GPU day)
    python experiments/nasgep.py --tiny              # a CPU smoke run on digits (minutes)
    python experiments/nasgep.py --no-sharing        # Table I's ablation without weight sharing
    python experiments/nasgep.py --drop-path 0.1     # Table I's rows with drop-path

Search (the defaults; Sec. IV-A): P_i = 10 models per generation, cells of head 4 over gene
pools of 50 to 100 genes of head 1 (2 to 10 new genes per generation), networks of C = 16
initial channels and N = 3 normal cells per stage, at most 300,000 parameters, each model
trained one epoch per generation (a bonus epoch at T_c = 0.75 T_g) up to E_max = 10 epochs by
SGD (lr 0.1, momentum 0.9, weight decay 5e-4, cosine schedule, batch 512), weight sharing on;
fitness is the accuracy on 5,000 training images held out; the search stops after
``nasgep.PAPER_EVALUATIONS`` epoch-trainings, about what the paper's 24 hours on a Titan Xp buy
(``benchmarks/nasgep_budget.py``; ``--hours 24`` stops after a wall-clock day as well).

Final training (the defaults): the best model at C = 64, trained on all 50,000 training
images for 300 epochs, batch 128, lr 0.025 on a cosine schedule, with random crops, flips,
AutoAugment (CIFAR-10 policy) and Cutout 16, then scored on the test set. The paper's
published result (Table I "CutOut + AA", Table II) trains without drop-path; ``--drop-path 0.1``
gives its ablation rows.

``--tiny`` is a smoke preset (digits, 4 models of 4 channels, one cell per stage, 30
epoch-trainings, a final training of 30 epochs at 16 channels), not a reproduction.

Every epoch-training is journaled in ``--out`` as it completes; an interrupted run continues
where it stopped when the same command is run again with the same ``--out``.

Published: 2.82 +- 0.13 % test error on CIFAR-10 over five runs (best 2.67 %), 3.62 M
parameters; without weight sharing 2.92 +- 0.19 %; random sampling 3.12 +- 0.28 %.
"""
import argparse
import dataclasses
import functools
from pathlib import Path

import numpy as np
from deap import base, creator, tools

from deapnas.data import DATASETS
from deapnas.methods import nasgep
from deapnas.networks import count_parameters
from deapnas.spaces import nasgep as space

from experiment import (add_run_options, fill_preset, final_training, load_data,
                        open_journal, start)

# Module level, as DEAP requires for pickling (process pools send individuals to workers).
creator.create("FitnessMax", base.Fitness, weights=(1.0,))
creator.create("Model", space.Model, fitness=creator.FitnessMax)

PAPER = dict(dataset="cifar10", hours=None, evaluations=nasgep.PAPER_EVALUATIONS)
TINY = dict(dataset="digits", hours=None, evaluations=30)
# Settings that may change between an interrupted run and its resumption.
FREE_TO_CHANGE = ("device", "download", "data_dir", "out", "quiet", "final_epochs",
                  "final_channels", "drop_path")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true",
                        help="CPU smoke preset: " + ", ".join(
                            f"{k}={v}" for k, v in {**TINY, **nasgep.TINY}.items()))
    parser.add_argument("--dataset", choices=DATASETS, help="default cifar10 (tiny: digits)")
    parser.add_argument("--data-dir", help="where the dataset is read (idx: required)")
    parser.add_argument("--download", action="store_true", help="fetch a torchvision dataset")
    parser.add_argument("--hours", type=float, help="search time limit (the paper's: 24 on a "
                        "Titan Xp)")
    parser.add_argument("--evaluations", type=int, help="stop after this many epoch-trainings "
                        f"(default {nasgep.PAPER_EVALUATIONS}; tiny: 30)")
    parser.add_argument("--no-sharing", action="store_true", help="weight sharing off")
    parser.add_argument("--final-epochs", type=int,
                        help="epochs of the final training (300; tiny: 30); 0 skips it")
    parser.add_argument("--final-channels", type=int,
                        help="width of the final training (64; tiny: 16)")
    parser.add_argument("--drop-path", type=float, default=0.0,
                        help="drop-path rate of the final training (Table I: 0.1)")
    add_run_options(parser, "nasgep", "generation")
    args = parser.parse_args(argv)
    fill_preset(args, TINY if args.tiny else PAPER)
    if args.hours is None and args.evaluations is None:
        parser.error("give --hours or --evaluations: the search needs a stopping rule")
    if args.out is None:
        args.out = (f"runs/nasgep-{args.dataset}{'-nosharing' if args.no_sharing else ''}"
                    f"{'-tiny' if args.tiny else ''}-seed{args.seed}")
    return args


def make_options(args) -> nasgep.Options:
    """The paper's options (or the tiny preset's) with the flags given."""
    given = {"no_sharing": args.no_sharing, "drop_path": args.drop_path,
             **{k: getattr(args, k) for k in ("final_epochs", "final_channels")
                if getattr(args, k) is not None}}
    return nasgep.Options.tiny(**given) if args.tiny else nasgep.Options(**given)


def make_toolbox(options, data, args, out: Path) -> base.Toolbox:
    toolbox = base.Toolbox()
    toolbox.register("evaluate", nasgep.make_evaluator(options, data, store=str(out / "store"),
                                                       device=args.device, seed=args.seed))
    return nasgep.make_toolbox(options, toolbox, creator.Model)


def main(argv=None):
    args = parse_args(argv)
    options = make_options(args)
    data = load_data(args, val_fraction=options.val_fraction)
    start(args.seed)
    out = Path(args.out)
    toolbox = make_toolbox(options, data, args, out)
    stats = tools.Statistics(lambda model: model.fitness.values[0])
    stats.register("avg", np.mean)
    stats.register("max", np.max)
    hof = tools.HallOfFame(1)
    settings = {**{k: v for k, v in vars(args).items() if k not in FREE_TO_CHANGE},
                "options": {k: v for k, v in dataclasses.asdict(options).items()
                            if k not in FREE_TO_CHANGE}}
    # also on Ctrl-C or kill: the same command run again resumes from here
    with open_journal(out, space.SPACE, creator.Model, config=settings, budget=args.evaluations,
                      time_limit=args.hours * 3600 if args.hours else None) as journal:
        journal.wrap(toolbox)
        files = dict(state_dir=out / nasgep.MODELS,
                     store=None if options.no_sharing else out / nasgep.STORE)
        journal.state_files.append(functools.partial(nasgep.state_files, **files))  # checked
        journal.after_write.append(functools.partial(nasgep.remove_stale, **files))
        models, reductions, genes = nasgep.init_populations(
            toolbox, options.population, options.reductions, options.genes)
        population, logbook = nasgep.nasgep(
            models, toolbox, genes=genes, reductions=reductions,
            state_dir=str(out / nasgep.MODELS), options=options, stats=stats, halloffame=hof,
            verbose=not args.quiet, journal=journal)
        journal.write_logbook(logbook)
    history = journal.history
    failed = sum(r["reason"] is not None for r in history)
    best = hof[0]
    print(f"\n{len(history)} epoch-trainings in {args.out} ({failed} failed; reasons in "
          f"history.jsonl), {len(logbook)} generations")
    print(f"best model {best.model_id}: validation accuracy {best.fitness.values[0]:.4f} after "
          f"{best.trained_epochs} epoch(s), {best.info['params']:,} parameters at "
          f"C={options.channels}\n  {best!r}")
    if options.final_epochs:  # from scratch, on train + validation; scored on the test split
        final = nasgep.final_evaluator(options, data, device=args.device, seed=args.seed)
        accuracy, net = final_training(final, best, out, seed=args.seed, quiet=args.quiet)
        print(f"final training: {options.final_epochs} epochs at C={options.final_channels} "
              f"({count_parameters(net):,} parameters): test accuracy "
              f"{accuracy:.4f}, test error {100 * (1 - accuracy):.2f} %")
    return population, logbook, hof


if __name__ == "__main__":
    main()
