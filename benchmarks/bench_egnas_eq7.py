"""What EG-NAS's compound fitness (Eq. 7) does to the directions its ES keeps, on the
NAS-Bench-201 table (the table-only mode: no supernet, L = 1 − validation accuracy).

    python benchmarks/bench_egnas_eq7.py [--table CSV] [--seeds 0 1 2 3 4]

At the paper's settings (35 ES steps, N = 5, ξ = 0.6, ζ = 1.0, one CMA-ES generation per
sampling) with η = 0.4 (Eq. 7 as printed) and η = 0 (Eq. 7 off: the fitness is ζ·L), each for
λ = 25 (the paper's implementation details) and λ = 50 (its ablation's choice, the authors'
code), it counts

- the samplings whose kept direction (the best fitness of the sampling) is less accurate than
  α, out of all samplings, and out of those that scored a candidate at least as accurate as α
  (where Eq. 7 made the ES keep the worse one);
- the CIFAR-10 test accuracy (``cifar10_test_acc_200ep``) of the cell derived from the final α.

Writes ``docs/figures/egnas_eq7.csv`` (and ``.json``), which docs/methods/egnas.rst shows.
"""
import argparse
import random
import statistics
from pathlib import Path

import numpy as np
from figures import write_table

from deapnas import evolutionary_gradient as eg
from deapnas.fitness import TableEvaluator
from deapnas.spaces import nb201
from deapnas.supernet import NB201_LAYOUT, derive_nb201

TABLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "nas-bench-201" / "nb201.csv"
METRIC, REPORT = "cifar10valid_xvalid_acc_200ep_mean", "cifar10_test_acc_200ep"
STEPS, SAMPLINGS = 35, 5
HEADER = ["λ", "η", "seeds", "test accuracy of the pick (mean ± sd)",
          "samplings keeping a direction less accurate than α",
          "of these, the samplings that had scored a candidate at least as accurate as α"]


def search(table: TableEvaluator, seed: int, popsize: int, eta: float) -> tuple[float, list]:
    """One table-only search; the pick's test accuracy and every scoring, in order, as
    ``(fitness, accuracy, accuracy of α)``."""
    scorer = eg.TableScorer(table, derive_nb201, zeta=1.0, eta=eta)
    scored = []

    def recording(candidate):
        evaluation = scorer(candidate)
        scored.append((evaluation[0], evaluation.info["accuracy"],
                       getattr(candidate, "reference_accuracy", None)))
        return evaluation

    toolbox = eg.es_toolbox(recording, popsize=popsize)
    random.seed(seed)
    alpha, _ = eg.egnas(None, toolbox, STEPS, warmup=0, samplings=SAMPLINGS, seed=seed,
                        alpha=eg.initial_alpha(NB201_LAYOUT.size, seed), verbose=False)
    return table(derive_nb201(alpha)).info[REPORT], scored


def kept_worse(scored: list, popsize: int) -> tuple[int, int, int]:
    """Samplings, those keeping a direction less accurate than α, and those among them that
    had scored a candidate at least as accurate as α."""
    per_step = 1 + SAMPLINGS * (popsize + 1)
    samplings = worse = avoidable = 0
    for start in range(0, len(scored), per_step):
        reference = scored[start][1]
        for n in range(SAMPLINGS):
            first = start + 1 + n * (popsize + 1)
            sampling = scored[first:first + popsize + 1]
            kept = min(sampling, key=lambda s: s[0])
            samplings += 1
            if kept[1] < reference:
                worse += 1
                avoidable += any(s[1] >= reference for s in sampling)
    return samplings, worse, avoidable


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", default=str(TABLE))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4],
                        help="the seeds of each setting (default: 0 to 4, the seeds of the "
                        "table searches that docs/methods/egnas.rst shows beside this table)")
    args = parser.parse_args()
    table = TableEvaluator(args.table, nb201.key, METRIC, [REPORT])
    rows, results = [], {}
    for popsize in (25, 50):
        for eta in (0.4, 0.0):
            accuracies, counts = [], np.zeros(3, dtype=int)
            for seed in args.seeds:
                accuracy, scored = search(table, seed, popsize, eta)
                accuracies.append(accuracy)
                counts += kept_worse(scored, popsize)
            samplings, worse, avoidable = counts
            rows.append([popsize, eta, " ".join(map(str, args.seeds)),
                         f"{statistics.mean(accuracies):.2f} ± "
                         f"{statistics.stdev(accuracies) if len(accuracies) > 1 else 0:.2f}",
                         f"{worse / samplings:.0%}",
                         f"{avoidable / worse:.0%}" if worse else "none kept"])
            results[f"lambda={popsize},eta={eta}"] = {
                "test_accuracies": accuracies, "samplings": int(samplings),
                "kept_less_accurate": int(worse), "of_which_had_better": int(avoidable)}
            print(rows[-1])
    print(write_table("egnas_eq7", HEADER, rows, results))


if __name__ == "__main__":
    main()
