"""EG-NAS (Cai, Chen, Liu, Ling & Lai, AAAI 2024): gradient descent on a PC-DARTS supernet's
weights, CMA-ES on its architecture weights α, then the derived genotype retrained from scratch.

Run it::

    python experiments/egnas.py --tiny                  # digits on a CPU: search and retraining
    python experiments/egnas.py --data-dir ~/data --download     # the paper: CIFAR-10 search,
                                                         # then 600 epochs of DARTS retraining
    python experiments/egnas.py --space nb201 --table ../shared/data/nas-bench-201/nb201.csv \\
        --data-dir ~/data                  # the NAS-Bench-201 search; the cell is looked up
    python experiments/egnas.py --table-only --table ../shared/data/nas-bench-201/nb201.csv
                                           # the ES alone on the table, seconds on a CPU

The search (Algorithm 1): 50 epochs of SGD on the supernet's weights over one half of the
CIFAR-10 training set, the first 15 without the ES; after each later epoch, N = 5 CMA-ES
samplings of population λ = 50 started around α, scored on the other half with the compound
fitness (ζ = 1.0, η = 0.4), and α moved ξ = 0.6 of the way to the most accurate of their best
candidates. Supernet: 8 cells, C = 16, PC-DARTS partial channels K = 4, batch 256. Retraining
(as DARTS): 20 cells, C = 36, 600 epochs, batch 96, SGD lr 0.025 cosine, weight decay 3e-4,
random crops and flips, cutout 16, auxiliary head (weight 0.4), drop-path 0.2, on the whole
training set; the test set is used once, at the end. The choices where the paper is silent are
listed in docs/methods/egnas.rst.

``--tiny`` is a demonstration preset (digits, C = 8, 5 cells, 12 epochs of which 1 of
warm-up, N = 2, λ = 4, crops of 1 pixel and no flips; 15 retraining epochs at C = 16), not a
reproduction. ``--table-only`` needs no images:
each candidate's argmax cell is looked up in the NAS-Bench-201 table (35 ES steps of N·λ look-
ups at the paper's settings).

Every candidate scored is journaled in ``--out`` as it completes, with checkpoints of the
weights, α and the CMA-ES states; an interrupted run continues where it stopped when the same
command is run again with the same ``--out``.

Published: 2.53 % test error on CIFAR-10 (3.2 M parameters, 0.1 GPU-days); NAS-Bench-201
searched on CIFAR-10: 93.56 / 70.91 / 46.13 % test accuracy on CIFAR-10 / CIFAR-100 /
ImageNet16-120 (mean of 4 runs).
"""
import argparse

import numpy as np
import torch

from deapnas.data import DATASETS
from deapnas.evolutionary_gradient import (SupernetEvaluator, TableScorer, egnas, es_toolbox,
                                           initial_alpha)
from deapnas.fitness import TableEvaluator
from deapnas.methods.egnas import SUPERNET_CELLS, AlphaRecords, final_evaluator, search_recipe
from deapnas.methods.egnas import Options as EGNASOptions
from deapnas.networks import inference_parameters
from deapnas.options import ES_UPDATES
from deapnas.spaces import darts, nb201
from deapnas.supernet import (NB201_LAYOUT, DartsSupernet, NB201Supernet, SupernetTraining,
                              derive_darts, derive_nb201)
from deapnas.training import resolve_device

from experiment import (add_run_options, fill_preset, final_training, load_data,
                        open_journal, start)

METRIC, REPORT = "cifar10valid_xvalid_acc_200ep_mean", "cifar10_test_acc_200ep"
PAPER = dict(dataset="cifar10", epochs=50, warmup=15, batch_size=256, lr=0.1, channels=16,
             partial=4, samplings=5, popsize=50, iterations=1, step_size=0.6, update="convex",
             zeta=1.0, eta=0.4, search_crop_padding=4, search_flip=True,
             score_batches=1, score_batch_size=256, final_epochs=600,
             final_batch_size=96, final_lr=0.025, final_channels=36, final_cells=20,
             crop_padding=4, flip=True, cutout=16, auxiliary_weight=0.4, drop_path=0.2)
TINY = dict(PAPER, dataset="digits", epochs=12, warmup=1, batch_size=64, channels=8, cells=5,
            samplings=2, popsize=4, search_crop_padding=1, search_flip=False, final_epochs=15,
            final_batch_size=64, final_channels=16, final_cells=5, crop_padding=1, flip=False,
            cutout=0)
# The final training's settings (deapnas.methods.egnas.final_recipe).
FINAL = ("final_epochs", "final_batch_size", "final_lr", "final_channels", "final_cells",
         "crop_padding", "cutout", "auxiliary_weight", "drop_path")
# Settings that may change between an interrupted run and its resumption.
FREE_TO_CHANGE = ("device", "download", "data_dir", "quiet", "final_epochs", "final_batch_size",
                  "final_lr", "final_channels", "final_cells", "crop_padding", "flip", "cutout",
                  "auxiliary_weight", "drop_path")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--tiny", action="store_true", help="CPU smoke preset (digits; options given win)")
    add("--space", choices=("darts", "nb201"), default="darts")
    add("--table", help="the NAS-Bench-201 csv: --space nb201 looks its final cell up there")
    add("--table-only", action="store_true", help="no supernet: CMA-ES on α against --table")
    add("--dataset", choices=DATASETS, help="paper: cifar10 (tiny: digits)")
    add("--data-dir", help="where the dataset is read (idx: required)")
    add("--download", action="store_true", help="fetch a torchvision dataset")
    for name, kind, text in [
            ("epochs", int, "search epochs (50)"), ("warmup", int, "epochs without ES (15)"),
            ("batch-size", int, "search batch (256)"), ("lr", float, "search SGD lr (0.1)"),
            ("channels", int, "supernet C (16)"), ("cells", int, "supernet cells (DARTS 8; NB201 5 per stage)"),
            ("partial", int, "PC-DARTS K (4)"), ("samplings", int, "N (5)"),
            ("popsize", int, "λ (50)"), ("iterations", int, "CMA-ES generations (1)"),
            ("step-size", float, "ξ (0.6)"), ("zeta", float, "ζ (1.0)"),
            ("eta", float, "η (0.4; 0: Eq. 7's similarity term off)"),
            ("spread", float, "spread of the samplings' starts (unset: σ; authors: 0.01)"),
            ("search-crop-padding", int, "supernet training: random-crop padding (4)"),
            ("score-batches", int, "scoring batches (1)"),
            ("score-batch-size", int, "scoring images per batch (256)"),
            ("final-epochs", int, "retraining epochs, 0: none (600)"),
            ("final-batch-size", int, "retraining batch (96)"),
            ("final-lr", float, "retraining SGD lr (0.025)"),
            ("final-channels", int, "retraining C (36)"), ("final-cells", int, "retraining "
                                                                              "cells (20)"),
            ("crop-padding", int, "random-crop padding (4)"), ("cutout", int, "cutout (16)"),
            ("auxiliary-weight", float, "auxiliary loss weight (0.4)"),
            ("drop-path", float, "drop-path rate at the end (0.2)")]:
        add(f"--{name}", type=kind, help=text)
    add("--flip", action=argparse.BooleanOptionalAction, help="horizontal flips (paper: on)")
    add("--search-flip", action=argparse.BooleanOptionalAction,
        help="supernet training: horizontal flips (paper: on)")
    add("--update", choices=ES_UPDATES, help="α + ξ·(s − α) (convex) or α + ξ·s (literal)")
    add_run_options(parser, "egnas-SPACE-DATASET-seedSEED", "epoch")
    args = parser.parse_args(argv)
    fill_preset(args, TINY if args.tiny else PAPER)
    if args.table_only and args.table is None:
        parser.error("--table-only needs --table, the NAS-Bench-201 csv")
    if args.table and args.space != "nb201" and not args.table_only:
        parser.error("--table looks up NAS-Bench-201 cells: add --space nb201")
    if args.table_only:
        args.space = "nb201"
    if args.cells is None:  # the space's own supernet depth
        args.cells = SUPERNET_CELLS[args.space]
    if args.out is None:
        where = "table" if args.table_only else args.dataset
        args.out = f"runs/egnas-{args.space}-{where}{'-tiny' if args.tiny else ''}-seed{args.seed}"
    return args


def supernet_search(args, data, journal):
    """Algorithm 1 on the supernet (its weights drawn from ``--seed``): the final α and the
    logbook."""
    torch.manual_seed(args.seed)
    shape, classes = data.input_shape, data.num_classes
    net = (DartsSupernet(shape, classes, args.channels, args.cells, args.partial)
           if args.space == "darts" else
           NB201Supernet(shape, classes, args.channels, args.cells, args.partial))
    device = resolve_device(args.device)
    on_device = data.to(device)
    recipe = search_recipe(EGNASOptions(
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        search_crop_padding=args.search_crop_padding, search_flip=args.search_flip))
    training = SupernetTraining(net.to(device), on_device.train, recipe, seed=args.seed)
    toolbox = es_toolbox(SupernetEvaluator(net, on_device.val, args.score_batches,
                                           args.score_batch_size, args.zeta, args.eta),
                         popsize=args.popsize, iterations=args.iterations)
    journal.wrap(toolbox)
    return egnas(training, toolbox, args.epochs, warmup=args.warmup, samplings=args.samplings,
                 step_size=args.step_size, spread=args.spread, update=args.update,
                 seed=args.seed, verbose=not args.quiet, journal=journal)


def table_search(args, journal):
    """Algorithm 1 against the table (no weights): ``epochs - warmup`` ES steps."""
    table = TableEvaluator(args.table, nb201.key, METRIC, REPORT)
    toolbox = es_toolbox(TableScorer(table, derive_nb201, args.zeta, args.eta),
                         popsize=args.popsize, iterations=args.iterations)
    journal.wrap(toolbox)
    return egnas(None, toolbox, args.epochs - args.warmup, warmup=0, samplings=args.samplings,
                 step_size=args.step_size, spread=args.spread, update=args.update, seed=args.seed,
                 alpha=initial_alpha(NB201_LAYOUT.size, args.seed), verbose=not args.quiet,
                 journal=journal)


def retrain(genotype, data, args):
    """DARTS' evaluation: the genotype's network at the final width and depth, trained from
    scratch on train + validation, scored once on the test split: ``(accuracy, parameters
    without the auxiliary head)``."""
    options = EGNASOptions(**{name: getattr(args, name) for name in FINAL}, no_flip=not args.flip)
    evaluator = final_evaluator(options, data, device=args.device)
    accuracy, net = final_training(evaluator, genotype, args.out, seed=args.seed,
                                   quiet=args.quiet)
    return accuracy, inference_parameters(net)  # as DARTS counts them


def main(argv=None):
    args = parse_args(argv)
    data = None if args.table_only else load_data(args, val_fraction=0.5)
    start(args.seed)  # random: the candidates' eval_seed; every other stream derives from --seed
    space = darts.SPACE if args.space == "darts" else nb201.SPACE
    records = AlphaRecords(space, derive_darts if args.space == "darts" else derive_nb201)
    settings = {k: v for k, v in vars(args).items() if k not in FREE_TO_CHANGE}
    try:
        with open_journal(args.out, records, records.individual(),
                          config=settings) as journal:  # Ctrl-C or kill: run again to resume
            if args.table_only:
                alpha, logbook = table_search(args, journal)
            else:
                alpha, logbook = supernet_search(args, data, journal)
            journal.write_logbook(logbook)
    except KeyboardInterrupt:
        raise SystemExit(f"\ninterrupted: every candidate scored is in {args.out}; run the same "
                         "command again to continue") from None
    architecture = records.derive(np.asarray(alpha))
    print(f"\n{len(journal.history)} candidates scored, in {args.out}")
    print(f"derived architecture: {architecture!r}" if args.space == "darts" else
          f"derived cell: {nb201.arch_string(architecture)}")
    if args.table:
        looked_up = TableEvaluator(args.table, nb201.key, METRIC, REPORT)(architecture)
        print(f"NAS-Bench-201: {METRIC} {looked_up[0]:.2f}, {REPORT} "
              f"{looked_up.info[REPORT]:.2f}")
    if args.space == "darts" and args.final_epochs:
        accuracy, params = retrain(architecture, data, args)
        print(f"retrained {args.final_epochs} epochs at C={args.final_channels}, "
              f"{args.final_cells} cells ({params:,} parameters): test accuracy {accuracy:.4f} "
              f"(error {100 * (1 - accuracy):.2f} %)")
    return alpha, logbook


if __name__ == "__main__":
    main()
