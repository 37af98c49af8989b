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
- the distinct architectures in the population after n evaluations (the logbook's
  ``distinct``): a population mean can rise because the population improves or because it
  collapses onto copies of a few good architectures;
- evaluations needed to reach validation levels (best found, and population mean): median
  over seeds, with how many seeds reached the level within the budget;
- the paper's speed-up: evaluations random mutation needs for the population mean that the
  controller's population reaches after n evaluations, divided by n.

With ``--write-figures`` the tables go to ``docs/figures/renas_nb201_comparison.csv`` (the
curves at the counts) and ``docs/figures/renas_nb201_levels.csv`` (evaluations to reach each
level), which ``docs/methods/renas.rst`` shows.

Run it::

    python experiments/renas_nb201_comparison.py --write-figures  # 20 seeds x 500 evaluations
    python experiments/renas_nb201_comparison.py --seeds 50 --evaluations 1000 --csv curves.csv
"""
import argparse
import csv
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from deap import base, tools

from deapnas.fitness import TableEvaluator
from deapnas.methods.renas import (Options, genome_layout, initial_population,
                                   register_mutation, renas)
from deapnas.spaces import nb201

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from figures import write_table  # noqa: E402  (benchmarks/figures.py, a sibling folder)

TABLE = ROOT.parent / "shared" / "data" / "nas-bench-201" / "nb201.csv"
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
    parser.add_argument("--write-figures", action="store_true",
                        help="write the tables to docs/figures (what the docs page shows)")
    return parser.parse_args(argv)


def run(seed: int, variant: str, table: TableEvaluator, args) -> dict:
    """One search; per evaluation count: best validation accuracy so far, the test accuracy
    of that architecture, the population's mean validation accuracy and its distinct
    architectures. Both variants of a seed start from the same population
    (:func:`~deapnas.methods.renas.initial_population`, as the command line does)."""
    random.seed(seed)  # the selection's samples, the controller's seed, random mutation
    population = initial_population(INDIVIDUAL, LAYOUT, args.population, seed)
    evaluations = []
    toolbox = base.Toolbox()
    toolbox.register("evaluate", table)
    toolbox.register("map", lambda f, items: _recorded(evaluations, map(f, items)))
    register_mutation(toolbox, LAYOUT, Options(mutation=variant), fitness_scale=100.0)
    stats = tools.Statistics(lambda ind: ind.fitness.values[0])
    stats.register("mean", np.mean)
    _, logbook = renas(population, toolbox, args.evaluations - args.population,
                       args.sample_size, stats=stats, verbose=False, key=nb201.key)
    valid = np.array([e[0] for e in evaluations])
    best_at = np.array([int(np.argmax(valid[:n + 1])) for n in range(len(valid))])
    return {"best": valid[best_at], "test": np.array([evaluations[i].info[args.report]
                                                      for i in best_at]),
            "mean": _per_evaluation(logbook.select("mean"), args.population),
            "distinct": _per_evaluation(logbook.select("distinct"), args.population)}


def _per_evaluation(per_step: list, population: int) -> np.ndarray:
    """A logbook column (one value per step, step 0 the first population) per evaluation
    count, undefined (nan) before the first population is scored."""
    values = np.full(population - 1 + len(per_step), np.nan)
    values[population - 1:] = per_step
    return values


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


#: The curves, each with its title and the decimals it is printed with.
CURVES = (("best", "best found", 3), ("mean", "population mean", 3),
          ("distinct", "distinct architectures", 2), ("test", "test accuracy of the best", 3))


def mean_se(values: list, decimals: int) -> str:
    """``mean +- standard error`` over seeds."""
    return f"{np.mean(values):.{decimals}f} +- {np.std(values) / len(values) ** .5:.{decimals}f}"


def curve_table(results: dict, args) -> tuple[list, list]:
    """Header and rows: per evaluation count, each curve of each variant, mean +- s.e."""
    header = ["evaluations"] + [f"{title}, {variant}" for _, title, _ in CURVES
                                for variant in VARIANTS]
    rows = [[n] + [mean_se([r[key][n - 1] for r in results[variant]], decimals)
                   for key, _, decimals in CURVES for variant in VARIANTS]
            for n in args.counts if args.population <= n <= args.evaluations]
    return header, rows


def level_table(results: dict, args) -> tuple[list, list]:
    """Header and rows: evaluations until the best found and the population mean reach each
    level (median over seeds, and how many seeds reached it within the budget)."""
    n_seeds = len(results["random"])
    header = ["measure", "level"] + [f"evaluations, {v} (seeds reaching it)" for v in VARIANTS]
    rows = []
    for key, levels in (("best", args.best_levels), ("mean", args.mean_levels)):
        for level in levels:
            reach = [median_reach([r[key] for r in results[v]], level) for v in VARIANTS]
            rows.append(["best found" if key == "best" else "population mean", f"{level:.2f}"]
                        + [f"{m:.0f} ({k}/{n_seeds})" for m, k in reach])
    return header, rows


def speed_ups(results: dict, args) -> dict[int, float]:
    """The paper's measure: evaluations random mutation needs for the population mean the
    controller's population has after n, divided by n (inf: not within the budget)."""
    curves = {v: np.mean([r["mean"] for r in results[v]], axis=0) for v in VARIANTS}
    return {n: first_reach(curves["random"], curves["controller"][n - 1]) / n
            for n in args.counts if args.population <= n <= args.evaluations}


def print_table(header: list, rows: list) -> None:
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows)]
    for row in (header, *rows):
        print("  ".join(f"{str(c):>{w}}" for c, w in zip(row, widths)))


def summary(results: dict, args) -> None:
    print(f"\nNAS-Bench-201, {len(results['random'])} seeds, P = {args.population}, "
          f"S = {args.sample_size}, {args.evaluations} evaluations; fitness {args.metric}, "
          f"reported {args.report} (the test accuracy; never selected on)\n")
    print_table(*curve_table(results, args))
    print()
    print_table(*level_table(results, args))
    print("\nspeed-up at equal population mean (random's evaluations / controller's):")
    for n, ratio in speed_ups(results, args).items():
        print(f"{n:>12}: " + (f"{ratio:.2f}x" if np.isfinite(ratio) else
                              f"random does not reach it within {args.evaluations}"))


def write_figures(results: dict, args) -> None:
    """The two tables the docs page shows, with the speed-ups in the first one's record."""
    settings = {"seeds": args.seeds, "evaluations": args.evaluations,
                "population": args.population, "sample_size": args.sample_size,
                "metric": args.metric, "report": args.report}
    header, rows = curve_table(results, args)
    write_table("renas_nb201_comparison", header, rows, {
        "settings": settings, "speed_up": {str(n): (r if np.isfinite(r) else None)
                                           for n, r in speed_ups(results, args).items()}})
    write_table("renas_nb201_levels", *level_table(results, args), {"settings": settings})


def write_curves(path: str, results: dict) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        columns = [(v, k) for v in VARIANTS for k, _, _ in CURVES]
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
    if args.write_figures:
        write_figures(results, args)
    if args.csv:
        write_curves(args.csv, results)


if __name__ == "__main__":
    main()
