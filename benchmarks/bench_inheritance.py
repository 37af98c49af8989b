"""What parameter inheritance saves per RENAS child: fine-tuning from the parent against
training from scratch, measured side by side on the same children.

For each of ``--pairs`` random NASNet-like cells (the parent), trained from scratch for
``--epochs`` epochs with its weights saved, a child is made by the paper's random mutation (one
change per block) and evaluated three ways by the same :class:`~deapnas.fitness.TrainEvaluator`
RENAS uses (:func:`deapnas.methods.renas.inheritance_rates`: SGD, momentum 0.9, weight decay
3e-4, lr 0.001 for inherited parameters, 10x for new ones):

(a) inherit: the parent's matching parameters, then ``--finetune-epochs`` (the paper: one
    pass over the training data);
(b) scratch for as many epochs: the same training time without inheritance;
(c) scratch for ``--epochs`` epochs: how the parent itself was trained.

A pass over digits' training split is only 18 steps of 64 images (CIFAR-10's is 700), so the
accuracy after one pass says little about CIFAR-10; the time ratio is the saving per child.

Printed, and written to ``docs/figures/renas_inheritance.csv`` (which
``docs/methods/renas.rst`` shows): median seconds per child and median validation accuracy of
each, and the ratio of (c)'s time to (a)'s. Times are ``info["train_seconds"]`` (build, weight
loading, training and scoring). Seeds are fixed.

    python benchmarks/bench_inheritance.py                  # digits, about 2 min on 2 CPU cores
    python benchmarks/bench_inheritance.py --device cuda --pairs 10

This is a measurement, not a test: it prints a table and exits 0.
"""
from __future__ import annotations

import argparse
import copy
import functools
import random
import statistics
import tempfile
from pathlib import Path

import torch

from deapnas.data import DATASETS, load_dataset
from deapnas.fitness import TrainEvaluator
from deapnas.methods import renas
from deapnas.spaces import nasnet
from figures import write_table

INDIVIDUAL = nasnet.SPACE.individual()


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--dataset", choices=DATASETS, default="digits")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--pairs", type=int, default=5, help="parent/child pairs timed")
    parser.add_argument("--epochs", type=int, default=5, help="epochs of a from-scratch training")
    parser.add_argument("--finetune-epochs", type=int, default=1, help="epochs after inheriting")
    parser.add_argument("--blocks", type=int, default=5, help="B (paper: 5)")
    parser.add_argument("--channels", type=int, default=8, help="F (paper's search: 24)")
    parser.add_argument("--cells", type=int, default=1, help="N (paper's search: 2)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def evaluate(evaluator, cell, **attributes) -> tuple[float, float]:
    """``(seconds, validation accuracy)`` of one evaluation of ``cell``."""
    individual = INDIVIDUAL(cell)
    for name, value in attributes.items():
        setattr(individual, name, value)
    result = evaluator(individual)
    if result.info["reason"] is not None:
        raise RuntimeError(f"{cell} failed: {result.info['reason']}")
    return result.info["train_seconds"], result[0]


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    random.seed(args.seed)
    data = load_dataset(args.dataset, args.data_dir, seed=args.seed)
    options = renas.Options()  # the method's training: SGD, momentum 0.9, weight decay 3e-4
    evaluator = TrainEvaluator(
        functools.partial(nasnet.build_network, channels=args.channels,
                          cells_per_stage=args.cells),
        data, epochs=args.epochs, batch_size=args.batch_size, optimizer=options.optimizer,
        weight_decay=options.weight_decay, device=args.device, seed=args.seed,
        **renas.inheritance_rates(options))
    short = args.finetune_epochs
    inherit, scratch_short, scratch = (f"inherit, {short} epoch(s)", f"scratch, {short} epoch(s)",
                                       f"scratch, {args.epochs} epochs")
    rows = {inherit: [], scratch_short: [], scratch: []}
    with tempfile.TemporaryDirectory() as directory:
        for pair in range(args.pairs):
            parent = nasnet.init_cell(INDIVIDUAL, blocks=args.blocks)
            weights = str(Path(directory) / f"parent{pair}.pt")
            evaluate(evaluator, parent, save_to=weights, eval_seed=pair)
            child = nasnet.mutate(copy.deepcopy(parent))[0]
            rows[inherit].append(
                evaluate(evaluator, child, inherit_from=weights, epochs=short, eval_seed=pair))
            rows[scratch_short].append(evaluate(evaluator, child, epochs=short, eval_seed=pair))
            rows[scratch].append(evaluate(evaluator, child, eval_seed=pair))
    print(f"{args.dataset}, B = {args.blocks}, F = {args.channels}, N = {args.cells}, "
          f"{args.pairs} children, device {evaluator.device}, {args.threads} thread(s)")
    header = ["child trained by", "seconds (median)", "validation accuracy (median)",
              f"seconds of {scratch} / these"]
    seconds = {name: statistics.median(s for s, _ in results) for name, results in rows.items()}
    table = [[name, f"{seconds[name]:.2f}",
              f"{statistics.median(a for _, a in results):.4f}",
              f"{seconds[scratch] / seconds[name]:.2f}"] for name, results in rows.items()]
    print("\n".join("  ".join(str(cell) for cell in row) for row in [header, *table]))
    write_table("renas_inheritance", header, table, {"settings": vars(args)})


if __name__ == "__main__":
    main()
