"""A tiny MiniGen search on real images, measured (a script, not a test).

Draws a stratified mini set from the training split of a dataset (default: the shared MNIST
images), runs :func:`deapnas.methods.minigen.ea_minigen` with deterministic training, and prints
per generation the trainings run and the trainings the record look-up saved, the time per
generation, the best network by its mini-set score with its parameters and accuracy-to-parameter
ratio; then retrains that network on the full training split and reports its validation and test
accuracy. With ``--compare`` the same search runs again with ``reuse_scores=False`` (every
survivor retrained each generation) and the ratio of the two wall times is printed; both runs
must reach the same population (determinism), and the script says whether they did.

    python benchmarks/bench_minigen.py                      # about 10 min on 2 busy CPU cores
    python benchmarks/bench_minigen.py --compare --generations 2
    python benchmarks/bench_minigen.py --dataset digits --epochs 6
    python benchmarks/bench_minigen.py --dataset digits --epochs 10 --train-per-class 20 \
        --batch-size 20 --population 10 --keep 5 --win-threshold 2 --compare
"""
from __future__ import annotations

import argparse
import random
import time
from pathlib import Path
from statistics import fmean

import torch

from deapnas.data import DATASETS, load_dataset, mini_dataset
from deapnas.fitness import TrainEvaluator
from deapnas.methods.minigen import ea_minigen, make_toolbox
from deapnas.spaces import minigen

MNIST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="idx", choices=DATASETS)
    parser.add_argument("--data-dir", default=str(MNIST))
    parser.add_argument("--train-per-class", type=int, default=20)
    parser.add_argument("--score-per-class", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--population", type=int, default=6)
    parser.add_argument("--keep", type=int, default=2)
    parser.add_argument("--generations", type=int, default=3)
    parser.add_argument("--win-threshold", type=float, default=0.40,
                        help="the stop rule's accuracy (above 1: the search runs every "
                             "generation)")
    parser.add_argument("--wins-needed", type=int, default=10)
    parser.add_argument("--channels", type=int, nargs="+", default=[8, 16, 24, 32])
    parser.add_argument("--final-epochs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--compare", action="store_true",
                        help="also run without the look-up and print the time ratio")
    return parser.parse_args()


def search(args, data, reuse: bool):
    """One seeded search; its population, logbook and wall time."""
    random.seed(args.seed)
    evaluator = TrainEvaluator(minigen.build_network, data, epochs=args.epochs,
                               batch_size=args.batch_size, device="cpu", seed=args.seed,
                               deterministic=True, cublas_workspace=":16:8")
    toolbox = make_toolbox(evaluator, channels=tuple(args.channels))
    begin = time.perf_counter()
    population, logbook = ea_minigen(toolbox.population(n=args.population), toolbox,
                                     args.generations, keep=args.keep, reuse_scores=reuse,
                                     win_threshold=args.win_threshold,
                                     wins_needed=args.wins_needed, verbose=False)
    return population, logbook, time.perf_counter() - begin


def report(name: str, logbook, seconds: float) -> None:
    trained, saved = sum(logbook.select("nevals")), sum(logbook.select("nreused"))
    print(f"{name}: {len(logbook)} generations in {seconds:.1f} s "
          f"({seconds / len(logbook):.1f} s per generation), {trained} trainings run, "
          f"{saved} saved by the look-up ({saved / (trained + saved):.0%} of the evaluations)")
    print("  per generation (trained/looked up):",
          " ".join(f"{r['nevals']}/{r['nreused']}" for r in logbook))


def final_training(args, dataset, best) -> tuple[float, float]:
    """Retrain ``best`` on the full training split; its validation and test accuracy."""
    evaluator = TrainEvaluator(minigen.build_network, dataset, batch_size=64, device="cpu",
                               seed=args.seed)
    torch.manual_seed(args.seed)
    net = evaluator.network(best)
    evaluator.fit(net, evaluator.device_data.train, args.final_epochs)
    return (evaluator.accuracy(net, evaluator.device_data.val),
            evaluator.accuracy(net, evaluator.device_data.test))


def main() -> None:
    args = parse()
    torch.set_num_threads(args.threads)
    dataset = load_dataset(args.dataset, args.data_dir, seed=args.seed)
    data = mini_dataset(dataset, args.train_per_class, args.score_per_class, seed=args.seed)
    print(f"mini set from the {dataset.name} training split: {len(data.train)} training and "
          f"{len(data.val)} scoring images, {args.epochs} epochs each")
    population, logbook, seconds = search(args, data, reuse=True)
    report("with look-ups", logbook, seconds)
    best = max(population, key=lambda ind: fmean(ind.accuracies))
    print(f"best by mini-set score: {fmean(best.accuracies):.3f}, {best.info['params']} "
          f"parameters, accuracy-to-parameter ratio {best.info['acc_to_param']:.2f} per M")
    print(f"  {minigen.to_json(best)}")
    if args.compare:
        again, plain, plain_seconds = search(args, data, reuse=False)
        report("retraining survivors", plain, plain_seconds)
        same = [minigen.to_json(i) for i in again] == [minigen.to_json(i) for i in population] \
            and [i.accuracies[-1] for i in again] == [i.accuracies[-1] for i in population]
        print(f"time ratio retraining / look-up: {plain_seconds / seconds:.2f}; "
              f"same final population and scores: {same}")
    begin = time.perf_counter()
    val, test = final_training(args, dataset, best)
    print(f"best retrained {args.final_epochs} epoch(s) on the full training split "
          f"({len(dataset.train)} images, {time.perf_counter() - begin:.0f} s): "
          f"validation {val:.3f}, test {test:.3f}")


if __name__ == "__main__":
    main()
