"""Does NASGEP's weight sharing cut the epochs a model needs to reach a validation accuracy?
(a script, not a test)

Two comparisons on digits, sharing on and off with the same seeds, printed per seed, on
average and as ratios:

1. **Controlled** (``--part models``): the same ``--models`` random models (cells over small
   gene pools, so genes recur), trained one epoch per evaluation in the same order, each for
   ``--epochs`` epochs, with the same initialisation and batches; with sharing on, a new model
   starts from the store the earlier ones filled. Only the loaded weights differ.
2. **Search** (``--part search``): the registered method, as ``deapnas search --algorithm
   nasgep`` runs it (tiny preset, ``--population`` models, E_max ``--max-epochs``), for
   ``--evaluations`` epoch-trainings, with and without ``--no-sharing``. The two searches
   diverge after the first evaluations (the fitness differs, so selection differs), so compare
   averages over seeds.

Figures: the accuracy of a new model after its first, second and third epoch (mean over the
models that trained that long; in the search: models born after the first generation, when
the store holds weights), the share of those models that reach ``--target`` and the epochs
each needed, the evaluations until some model first reaches ``--target``, the best accuracy,
evaluations and wall time.

    python benchmarks/bench_nasgep_sharing.py                       # both parts, 3 seeds
    python benchmarks/bench_nasgep_sharing.py --part models --seeds 0 1 --epochs 3

Both parts at their defaults also write the means to ``docs/figures/nasgep_sharing.csv`` (and
``.json``, with every seed's row), the table the NASGEP docs page shows.
"""
from __future__ import annotations

import argparse
import random
import tempfile
import time
from collections import defaultdict
from statistics import fmean

import torch
from deap import base
from figures import write_table

from deapnas import runner
from deapnas.data import load_dataset
from deapnas.methods import nasgep
from deapnas.rundir import read_history
from deapnas.spaces import nasgep as space
from deapnas.weight_store import apply_offers, concerning


def search(seed: int, sharing: bool, evaluations: int, options: dict) -> dict:
    """One tiny search through the registered method; its evaluations as (model, born after
    the first generation, epochs, accuracy), and its wall time."""
    with tempfile.TemporaryDirectory() as directory:
        config, settings = runner.settings(nasgep.METHOD, "tiny", seed=seed,
                                           evaluations=evaluations, no_sharing=not sharing,
                                           out=f"{directory}/run", **options)
        start = time.perf_counter()
        runner.start(config, settings, progress=False)
        seconds = time.perf_counter() - start
        calls = [(r["info"]["model"], int(r["info"]["model"][1:]) >= settings.population,
                  r["info"]["trained_epochs"], r["fitness"][0])
                 for r in read_history(config.out) if r["reason"] is None]
    return {"calls": calls, "seconds": seconds}


def train_in_order(seed: int, sharing: bool, data, models: int, epochs: int) -> dict:
    """The controlled comparison: the same models trained in the same order; its evaluations
    (model, position, epoch, accuracy) and wall time."""
    random.seed(seed)
    settings = nasgep.Options.tiny(no_sharing=not sharing, epochs=epochs)
    calls, index = [], {}
    with tempfile.TemporaryDirectory() as directory:
        evaluator = nasgep.make_evaluator(settings, data, store=f"{directory}/store",
                                          device="cpu", seed=seed)
        population, _, _ = nasgep.init_populations(nasgep.make_toolbox(settings, base.Toolbox()),
                                                   models, settings.reductions, settings.genes)
        start = time.perf_counter()
        for position, model in enumerate(population):
            for epoch in range(epochs):
                model.eval_seed, model.epochs = 1000 * position + epoch, 1
                model.resume_from = f"{directory}/m{position}-e{epoch}.pt" if epoch else None
                model.save_state_to = f"{directory}/m{position}-e{epoch + 1}.pt"
                model.shared = concerning(index, space.share_identities(model))
                result = evaluator(model)
                apply_offers(index, result.info.get("shared", {}), result[0])
                calls.append((f"m{position}", position, epoch + 1, result[0]))
        return {"calls": calls, "seconds": time.perf_counter() - start}


def summarise(result: dict, target: float) -> dict:
    """The figures printed for one comparison: of models after the first (position or
    generation 0), whose start may come from the store."""
    calls = result["calls"]
    curves = defaultdict(dict)
    for model, born, epoch, accuracy in calls:
        if born >= 1:
            curves[model][epoch] = accuracy
    to_target = [min(e for e, a in curve.items() if a >= target) for curve in curves.values()
                 if max(curve.values()) >= target]
    first_hit = next((i + 1 for i, call in enumerate(calls) if call[3] >= target), None)
    after = {epoch: [curve[epoch] for curve in curves.values() if epoch in curve]
             for epoch in (2, 3)}
    return {"first epoch": fmean(curve[1] for curve in curves.values()),
            **{f"epoch {e}": fmean(a) if a else float("nan") for e, a in after.items()},
            "reach": len(to_target) / max(len(curves), 1),
            "epochs to target": fmean(to_target) if to_target else float("nan"),
            "evals to target": first_hit or float("nan"),
            "best": max(call[3] for call in calls), "evaluations": len(calls),
            "seconds": result["seconds"]}


FIELDS = ["first epoch", "epoch 2", "epoch 3", "reach", "epochs to target", "evals to target",
          "best", "evaluations", "seconds"]


def compare(title: str, seeds: list, target: float, experiment) -> dict:
    """Run ``experiment(seed, sharing)`` both ways for every seed; print the figures; return
    ``{"on": means, "off": means, "seeds": rows}``."""
    rows, fields = {True: [], False: []}, FIELDS
    print(title)
    print(f"{'seed':>4} {'sharing':>7} " + " ".join(f"{f:>12}" for f in fields))
    for seed in seeds:
        for sharing in (True, False):
            row = summarise(experiment(seed, sharing), target)
            rows[sharing].append(row)
            print(f"{seed:>4} {'on' if sharing else 'off':>7} " +
                  " ".join(f"{row[f]:>12.3f}" for f in fields), flush=True)
    means = {sharing: {f: fmean(r[f] for r in rows[sharing]) for f in fields}
             for sharing in rows}
    for sharing in (True, False):
        print(f"{'mean':>4} {'on' if sharing else 'off':>7} " +
              " ".join(f"{means[sharing][f]:>12.3f}" for f in fields))
    print("ratios on/off: " + ", ".join(f"{f} {means[True][f] / means[False][f]:.2f}"
                                        for f in fields if means[False][f]))
    return {"on": means[True], "off": means[False],
            "seeds": {"on": rows[True], "off": rows[False]}}


def write(results: dict) -> None:
    """The means of both parts as the docs page's table (``docs/figures/nasgep_sharing``)."""
    header = ["figure"] + [f"{part}, {way}" for part in results for way in ("on", "off")]
    rows = [[field] + [f"{results[part][way][field]:.3f}" for part in results
                       for way in ("on", "off")] for field in FIELDS]
    print(write_table("nasgep_sharing", header, rows, {"seeds": {
        part: results[part]["seeds"] for part in results}}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["models", "search", "both"], default="both")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--target", type=float, default=0.9)
    parser.add_argument("--models", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--evaluations", type=int, default=40)
    parser.add_argument("--population", type=int, default=4)
    parser.add_argument("--max-epochs", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = {}
    if args.part in ("models", "both"):
        data = load_dataset("digits", seed=0)
        results["controlled"] = compare(
            f"controlled: {args.models} models in order, {args.epochs} epochs each, target "
            f"{args.target}", args.seeds, args.target,
            lambda seed, sharing: train_in_order(seed, sharing, data, args.models, args.epochs))
    if args.part in ("search", "both"):
        options = {"population": args.population, "reductions": args.population,
                   "epochs": args.max_epochs}
        results["search"] = compare(
            f"tiny NASGEP search through the registered method, {args.evaluations} "
            f"evaluations, target {args.target}", args.seeds, args.target,
            lambda seed, sharing: search(seed, sharing, args.evaluations, options))
    if args.part == "both":
        write(results)


if __name__ == "__main__":
    main()
