"""Does NASGEP's weight sharing cut the epochs a model needs to reach a validation accuracy?
(a script, not a test)

Runs the same tiny NASGEP search (same seeds, same initial populations) with weight sharing on
and off, and prints, per seed and on average:

- the accuracy of a new model after its first epoch (models born after the first generation,
  when the store holds weights to load);
- for those models, the share that reaches ``--target`` and the epochs each needed;
- the epoch-trainings of the whole search until some model first reaches ``--target``;
- the best validation accuracy, evaluations and wall time.

    python benchmarks/bench_nasgep_sharing.py                       # digits, 3 seeds
    python benchmarks/bench_nasgep_sharing.py --seeds 0 --generations 2 --target 0.8

With sharing on, the two searches diverge after the first evaluations (the fitness differs, so
selection differs): compare the averages over seeds, not single models.
"""
from __future__ import annotations

import argparse
import random
import tempfile
import time
from collections import defaultdict
from statistics import fmean

import torch

from deapnas.data import load_dataset
from deapnas.methods import nasgep


class RecordingMap:
    """``toolbox.map`` recording (model id, birth generation, epochs after, accuracy)."""

    def __init__(self):
        self.calls = []

    def __call__(self, function, models):
        models = list(models)
        results = list(map(function, models))
        self.calls += [(m.model_id, m.born, m.trained_epochs + 1, r[0])
                       for m, r in zip(models, results)]
        return results


def run(seed: int, sharing: bool, generations: int, data, options: dict) -> dict:
    """One tiny search; its evaluations and wall time."""
    random.seed(seed)
    settings = nasgep.Options.tiny(sharing=sharing, **options)
    with tempfile.TemporaryDirectory() as directory:
        evaluator = nasgep.make_evaluator(settings, data, store=f"{directory}/store",
                                          device="cpu", seed=seed)
        toolbox = nasgep.make_toolbox(settings, evaluator)
        recorder = RecordingMap()
        toolbox.register("map", recorder)
        models, reductions, genes = nasgep.init_populations(
            toolbox, settings.population, settings.reductions, settings.genes)
        start = time.perf_counter()
        nasgep.nasgep(models, toolbox, generations, genes=genes, reductions=reductions,
                      state_dir=f"{directory}/models", options=settings, verbose=False)
        return {"calls": recorder.calls, "seconds": time.perf_counter() - start}


def summarise(result: dict, target: float) -> dict:
    """The figures printed for one search."""
    calls = result["calls"]
    curves = defaultdict(dict)
    for model, born, epoch, accuracy in calls:
        if born >= 1:
            curves[model][epoch] = accuracy
    to_target = [min(e for e, a in curve.items() if a >= target) for curve in curves.values()
                 if max(curve.values()) >= target]
    first_hit = next((i + 1 for i, call in enumerate(calls) if call[3] >= target), None)
    return {"first epoch": fmean(curve[1] for curve in curves.values()),
            "reach": len(to_target) / max(len(curves), 1),
            "epochs to target": fmean(to_target) if to_target else float("nan"),
            "evals to target": first_hit or float("nan"),
            "best": max(call[3] for call in calls), "evaluations": len(calls),
            "seconds": result["seconds"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--generations", type=int, default=4)
    parser.add_argument("--target", type=float, default=0.9)
    parser.add_argument("--population", type=int, default=4)
    parser.add_argument("--max-epochs", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = load_dataset("digits", seed=0)
    options = {"population": args.population, "reductions": args.population,
               "max_epochs": args.max_epochs}
    rows = {True: [], False: []}
    fields = ["first epoch", "reach", "epochs to target", "evals to target", "best",
              "evaluations", "seconds"]
    print(f"tiny NASGEP on digits, {args.generations} generations, target {args.target}")
    print(f"{'seed':>4} {'sharing':>7} " + " ".join(f"{f:>16}" for f in fields))
    for seed in args.seeds:
        for sharing in (True, False):
            row = summarise(run(seed, sharing, args.generations, data, options), args.target)
            rows[sharing].append(row)
            print(f"{seed:>4} {'on' if sharing else 'off':>7} " +
                  " ".join(f"{row[f]:>16.3f}" for f in fields), flush=True)
    means = {sharing: {f: fmean(r[f] for r in rows[sharing]) for f in fields}
             for sharing in rows}
    for sharing in (True, False):
        print(f"{'mean':>4} {'on' if sharing else 'off':>7} " +
              " ".join(f"{means[sharing][f]:>16.3f}" for f in fields))
    print("ratios on/off: " + ", ".join(f"{f} {means[True][f] / means[False][f]:.2f}"
                                        for f in fields if means[False][f]))


if __name__ == "__main__":
    main()
