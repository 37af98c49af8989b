"""RENAS's measured claim on NAS-Bench-201: controller-guided against random mutation.

The paper (Chen et al., 2019, §5.3, Fig. 4) runs the same evolution twice, once with the
reinforced mutation controller and once with random mutation actions, and reports that RENAS
reaches the same population quality 1.5-2x faster. This script repeats the comparison on the
NAS-Bench-201 table (tabular fitness, seconds per run on a CPU): for every seed both variants
run the registered method's loop, :func:`deapnas.methods.renas.renas`, with the same initial
population, P, S and budget; only ``toolbox.mutate`` differs, as
:func:`deapnas.methods.renas.register_mutation` registers it for ``--mutation controller`` (the
controller with the method's default settings, learning through ``toolbox.update``) or
``--mutation random`` (:func:`deapnas.controller.mut_layout`: the same action, one edge per
mutation, drawn uniformly). It is the same search as ``deapnas search --algorithm renas
--space nb201 --table ...`` with ``--population 20 --sample-size 5``.

Fitness is the CIFAR-10 validation accuracy (``cifar10valid_xvalid_acc_200ep_mean``); the test
accuracy (``cifar10_test_acc_200ep``) of the best-by-validation architecture is only reported.
Nothing here was tuned on it.

Printed, per variant, mean over seeds:

- the best validation accuracy found after n evaluations (and the test accuracy of that
  architecture);
- the mean validation accuracy of the population after n evaluations (the paper's measure);
- evaluations needed to reach validation levels (best found, and population mean): median
  over seeds, with how many seeds reached the level within the budget;
- the paper's speed-up: evaluations random mutation needs for the population mean that the
  controller's population reaches after n evaluations, divided by n.

Run it::

    python experiments/renas_nb201_comparison.py                 # 20 seeds x 500 evaluations
    python experiments/renas_nb201_comparison.py --seeds 50 --evaluations 1000 --csv curves.csv
"""
import argparse
import csv
import random
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from deap import base, tools

from deapnas.fitness import TableEvaluator
from deapnas.methods.renas import Options, genome_layout, register_mutation, renas
from deapnas.spaces import nb201

TABLE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "nas-bench-201" / \
    "nb201.csv"
INDIVIDUAL = nb201.SPACE.individual()
LAYOUT = genome_layout("nb201")
VARIANTS = ("controller", "random")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--table", default=str(TABLE), help="NAS-Bench-201 csv")
    parser.add_argument("--metric", default="cifar10valid_xvalid_acc_200ep_mean")
    parser.add_argument("--report", default="cifar10_test_acc_200ep")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--evaluations", type=int, default=500,
                        help="budget per run, the initial population included")
    parser.add_argument("--population", type=int, default=Options.population,
                        help="P (paper: 20)")
    parser.add_argument("--sample-size", type=int, default=Options.sample_size,
                        help="S (the paper does not give it; AmoebaNet's S/P = 1/4)")
    parser.add_argument("--counts", type=int, nargs="+", default=[30, 50, 100, 200, 300, 500],
                        help="evaluation counts at which the curves are printed")
    parser.add_argument("--best-levels", type=float, nargs="+", default=[90.5, 91.0, 91.3, 91.5])
    parser.add_argument("--mean-levels", type=float, nargs="+", default=[88.0, 89.0, 90.0, 90.5, 91.0, 91.3])
    parser.add_argument("--csv", help="write the mean curves per evaluation count here")
    return parser.parse_args(argv)


def run(seed: int, variant: str, table: TableEvaluator, args) -> dict:
    """One search; per evaluation count: best validation accuracy so far, the test accuracy
    of that architecture, and the population's mean validation accuracy."""
    random.seed(seed)
    population = [nb201.init_cell(INDIVIDUAL) for _ in range(args.population)]
    evaluations = []
    toolbox = base.Toolbox()
    toolbox.register("evaluate", table)
    toolbox.register("map", lambda f, items: _recorded(evaluations, map(f, items)))
    register_mutation(toolbox, LAYOUT, Options(mutation=variant), fitness_scale=100.0)
    stats = tools.Statistics(lambda ind: ind.fitness.values[0])
    stats.register("mean", np.mean)
    _, logbook = renas(population, toolbox, args.evaluations - args.population,
                       args.sample_size, stats=stats, verbose=False)
    valid = np.array([e[0] for e in evaluations])
    best_at = np.array([int(np.argmax(valid[:n + 1])) for n in range(len(valid))])
    means = np.full(len(valid), np.nan)  # defined once the first population is scored
    means[args.population - 1:] = logbook.select("mean")
    return {"best": valid[best_at], "test": np.array([evaluations[i].info[args.report]
                                                      for i in best_at]),
            "mean": means}


def _recorded(sink: list, results) -> list:
    results = list(results)
    sink.extend(results)
    return results


def first_reach(curve: np.ndarray, level: float) -> float:
    """The evaluation count (from 1) at which ``curve`` first reaches ``level``; inf if never."""
    hits = np.flatnonzero(curve >= level)
    return float(hits[0] + 1) if len(hits) else float("inf")


def median_reach(curves: list, level: float) -> tuple[float, int]:
    counts = [first_reach(c, level) for c in curves]
    return statistics.median(counts), sum(np.isfinite(counts))


def summary(results: dict, args) -> None:
    n_seeds = len(results["random"])
    counts = [n for n in args.counts if n <= args.evaluations]
    print(f"\nNAS-Bench-201, {n_seeds} seeds, P = {args.population}, S = {args.sample_size}, "
          f"{args.evaluations} evaluations; fitness {args.metric}, reported {args.report}")
    for key, title in (("best", "best validation accuracy found (mean +- s.e.)"),
                       ("test", f"{args.report} of that architecture (reported only)"),
                       ("mean", "population mean validation accuracy (the paper's measure)")):
        print(f"\n{title}\n{'evaluations':>12}" + "".join(f"{v:>20}" for v in VARIANTS))
        for n in counts:
            cells = []
            for variant in VARIANTS:
                values = [r[key][n - 1] for r in results[variant]]
                cells.append(f"{np.mean(values):.3f} +- {np.std(values) / len(values) ** .5:.3f}")
            print(f"{n:>12}" + "".join(f"{c:>20}" for c in cells))
    for key, levels in (("best", args.best_levels), ("mean", args.mean_levels)):
        what = "best found" if key == "best" else "population mean"
        print(f"\nevaluations until the {what} reaches a level (median; seeds reaching it)")
        print(f"{'level':>12}" + "".join(f"{v:>20}" for v in VARIANTS) + f"{'random/ctrl':>14}")
        for level in levels:
            reach = {v: median_reach([r[key] for r in results[v]], level) for v in VARIANTS}
            ratio = reach["random"][0] / reach["controller"][0]
            print(f"{level:>12.2f}" + "".join(f"{m:>13.0f} ({k:>2}/{n_seeds})"
                                              for m, k in reach.values()) + f"{ratio:>14.2f}")
    curves = {v: np.mean([r["mean"] for r in results[v]], axis=0) for v in VARIANTS}
    print("\nspeed-up at equal population mean: evaluations random mutation needs for the "
          "controller's population mean after n, divided by n")
    for n in counts:
        if n >= args.population:
            needed = first_reach(curves["random"], curves["controller"][n - 1])
            print(f"{n:>12}  mean {curves['controller'][n - 1]:.3f}: random needs "
                  + (f"{needed:.0f} ({needed / n:.2f}x)" if np.isfinite(needed) else
                     f"more than {args.evaluations}"))


def write_curves(path: str, results: dict) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        columns = [(v, k) for v in VARIANTS for k in ("best", "test", "mean")]
        writer.writerow(["evaluations"] + [f"{v}_{k}" for v, k in columns])
        curves = {c: np.mean([r[c[1]] for r in results[c[0]]], axis=0) for c in columns}
        for n in range(len(curves[columns[0]])):
            writer.writerow([n + 1] + [f"{curves[c][n]:.4f}" for c in columns])


def main(argv=None) -> None:
    args = parse_args(argv)
    if not args.population <= args.evaluations:
        raise SystemExit("--evaluations must be at least --population")
    torch.set_num_threads(1)  # the controller's LSTM is tiny: one thread is fastest
    table = TableEvaluator(args.table, nb201.arch_string, args.metric, args.report)
    results = {v: [] for v in VARIANTS}
    start = time.perf_counter()
    for seed in range(args.seeds):
        for variant in VARIANTS:
            results[variant].append(run(seed, variant, table, args))
    print(f"{2 * args.seeds} runs in {time.perf_counter() - start:.0f} s")
    summary(results, args)
    if args.csv:
        write_curves(args.csv, results)


if __name__ == "__main__":
    main()
