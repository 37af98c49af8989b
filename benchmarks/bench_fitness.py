"""Where the time of a training fitness goes, measured side by side in one run.

(a) Genome -> module: ``macro.build_network`` of seeded random genomes on the evaluation device
    plus ``count_parameters`` on the meta device (exactly what ``TrainEvaluator.network`` does
    before training), next to one training epoch of the same networks with
    ``TrainEvaluator.fit``. The ratio build/epoch says how much of an evaluation the compiler
    costs.
(b) Training throughput: ``TrainEvaluator.fit`` (batches sliced from device-resident tensors)
    next to a plain ``torch.utils.data.DataLoader`` loop (``TensorDataset``, ``shuffle=True``)
    training the same architecture from the same initial weights, on the same data, with the
    same optimizer (Adam, lr 1e-3), batch size and number of epochs. Both loops sum the loss on
    the device and read it back once per epoch, so the comparison isolates the data path.

Every figure is the median of ``--repeats`` timed runs after an untimed warm-up, timed with
``time.perf_counter`` (CUDA is synchronised before each clock read). Seeds are fixed.

    python benchmarks/bench_fitness.py                   # digits: about 15 s on 2 idle CPU cores
    python benchmarks/bench_fitness.py --dataset idx --data-dir ../shared/data/mnist
    python benchmarks/bench_fitness.py --device cuda --epochs 3 --repeats 5

This is a measurement, not a test: it prints a table and the ratios and exits 0.
"""
from __future__ import annotations

import argparse
import functools
import random
import statistics
import time

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from deapnas.data import DATASETS, load_dataset
from deapnas.fitness import TrainEvaluator
from deapnas.graph import InvalidGraphError
from deapnas.networks import count_parameters
from deapnas.spaces import macro


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--dataset", choices=DATASETS, default="digits")
    parser.add_argument("--data-dir", default=None, help="folder of the dataset (idx: required)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    parser.add_argument("--epochs", type=int, default=5, help="epochs per throughput run (b)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5, help="timed runs; the median is shown")
    parser.add_argument("--genomes", type=int, default=6, help="valid random genomes timed in (a)")
    parser.add_argument("--channels", type=int, default=64, help="macro width C (paper: 64)")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def clock(device: torch.device) -> float:
    """``time.perf_counter`` after the device has finished its queued work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def median_time(function, device: torch.device, repeats: int) -> float:
    """Median seconds of ``function()`` over ``repeats`` calls, after one untimed warm-up."""
    function()
    times = []
    for _ in range(repeats):
        start = clock(device)
        function()
        times.append(clock(device) - start)
    return statistics.median(times)


def interleaved_medians(functions: dict, device: torch.device, repeats: int) -> dict:
    """Median seconds of each of ``functions`` (name: callable), each warmed up once, then
    timed in turn, round after round: a change in the machine's load during the measurement
    falls on every function alike, so that their ratios hold on a shared machine."""
    for function in functions.values():
        function()
    times = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            start = clock(device)
            function()
            times[name].append(clock(device) - start)
    return {name: statistics.median(seconds) for name, seconds in times.items()}


def random_genomes(count: int, seed: int, input_shape, num_classes: int):
    """``count`` seeded random genomes that compile for ``input_shape``; also how many did not."""
    genomes, skipped, index = [], 0, 0
    while len(genomes) < count:
        random.seed(seed * 100_003 + index)
        index += 1
        genome = macro.init_genome()
        try:
            count_parameters(lambda: macro.build_network(genome, input_shape, num_classes))
        except InvalidGraphError:  # e.g. pools shrinking an 8x8 digit below 1x1
            skipped += 1
            continue
        genomes.append(genome)
    return genomes, skipped


def build_vs_epoch(evaluator: TrainEvaluator, genomes, repeats: int) -> list[dict]:
    """Part (a): per genome, the build and parameter-count times and one training epoch."""
    data, device = evaluator.device_data, evaluator.device
    shape, classes = data.input_shape, data.num_classes
    build = evaluator.build
    rows = []
    for genome in genomes:
        torch.manual_seed(0)

        def on_device(genome=genome):
            with torch.device(device):
                return build(genome, shape, classes)

        meta = median_time(lambda: count_parameters(lambda: build(genome, shape, classes)),
                           device, repeats)
        real = median_time(on_device, device, repeats)
        network = median_time(lambda: evaluator.network(genome), device, repeats)
        net = evaluator.network(genome)
        epoch = median_time(lambda: evaluator.fit(net, data.train, 1), device, repeats)
        rows.append({"layers": " ".join(sorted(genome.layers.values())),
                     "params": sum(p.numel() for p in net.parameters()),
                     "meta": meta, "build": real, "network": network, "epoch": epoch})
    return rows


def dataloader_fit(net: nn.Module, loader: DataLoader, epochs: int, lr: float,
                   device: torch.device) -> None:
    """The plain loop: the same recipe as ``TrainEvaluator.fit``, batches from a DataLoader."""
    optimizer = torch.optim.Adam(net.parameters(), lr)
    net.train()
    for _ in range(epochs):
        total = torch.zeros((), device=device)
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            loss = nn.functional.cross_entropy(net(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach()
        total.item()


def throughput(evaluator: TrainEvaluator, genome, epochs: int, repeats: int) -> dict:
    """Part (b): images/second of the evaluator's loop and of a DataLoader loop (medians)."""
    data, device = evaluator.device_data, evaluator.device
    host = evaluator.data.train  # the DataLoader reads host tensors and copies each batch over
    loader = DataLoader(TensorDataset(host.x, host.y), batch_size=evaluator.batch_size,
                        shuffle=True, pin_memory=device.type == "cuda")
    loops = {
        "evaluator": lambda net: evaluator.fit(net, data.train, epochs),
        "dataloader": lambda net: dataloader_fit(net, loader, epochs, evaluator.lr, device),
    }
    times: dict[str, list] = {name: [] for name in loops}
    accuracy: dict[str, float] = {}
    for repeat in range(repeats + 1):  # repeat 0 is the warm-up
        order = list(loops) if repeat % 2 else list(loops)[::-1]  # alternate who goes first
        for name in order:
            torch.manual_seed(repeat)  # both loops start from the same initial weights
            net = evaluator.network(genome)
            start = clock(device)
            loops[name](net)
            elapsed = clock(device) - start
            if repeat:
                times[name].append(elapsed)
            accuracy[name] = evaluator.accuracy(net, data.val)
    images = epochs * len(data.train)
    return {name: {"seconds": statistics.median(t), "images_per_s": images / statistics.median(t),
                   "val_accuracy": accuracy[name]} for name, t in times.items()}


def main(argv=None) -> int:
    args = parse_args(argv)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    data = load_dataset(args.dataset, args.data_dir, seed=args.seed)
    build = functools.partial(macro.build_network, channels=args.channels)
    evaluator = TrainEvaluator(build, data, epochs=args.epochs, batch_size=args.batch_size,
                               optimizer="adam", device=args.device, seed=args.seed)
    device = evaluator.device
    threads = torch.get_num_threads()
    print(f"dataset {data.name}: {len(data.train)} training images of shape "
          f"{'x'.join(map(str, data.input_shape))}; device {device} "
          f"({threads} CPU threads); batch {args.batch_size}; C={args.channels}; "
          f"median of {args.repeats} after a warm-up")

    genomes, skipped = random_genomes(args.genomes, args.seed, data.input_shape,
                                      data.num_classes)
    print(f"\n(a) genome -> module vs one training epoch ({len(genomes)} random genomes; "
          f"{skipped} more drawn did not compile for this input size and were skipped)")
    rows = build_vs_epoch(evaluator, genomes, args.repeats)
    print(f"{'#':>2} {'params':>9} {'count(meta)':>11} {'build':>8} {'network()':>9} "
          f"{'epoch':>9} {'ratio':>7}  layers")
    for i, row in enumerate(rows):
        print(f"{i:>2} {row['params']:>9,} {row['meta'] * 1e3:>9.2f}ms "
              f"{row['build'] * 1e3:>6.2f}ms {row['network'] * 1e3:>7.2f}ms "
              f"{row['epoch'] * 1e3:>7.1f}ms "
              f"{row['network'] / row['epoch']:>7.3f}  {row['layers']}")
    total_network = sum(r["network"] for r in rows)
    total_epoch = sum(r["epoch"] for r in rows)
    print(f"ratio build/epoch (network() = meta count + build on {device}, summed over genomes): "
          f"{total_network / total_epoch:.4f}; median per genome "
          f"{statistics.median(r['network'] / r['epoch'] for r in rows):.4f}")

    genome = genomes[0]
    print(f"\n(b) training throughput, {args.epochs} epoch(s) of genome #0 "
          f"({rows[0]['params']:,} parameters), Adam lr {evaluator.lr}")
    result = throughput(evaluator, genome, args.epochs, args.repeats)
    print(f"{'loop':<34} {'seconds':>8} {'images/s':>10} {'val acc':>8}")
    labels = {"evaluator": "TrainEvaluator.fit (device tensors)",
              "dataloader": "DataLoader(TensorDataset, shuffle)"}
    for name, label in labels.items():
        r = result[name]
        print(f"{label:<34} {r['seconds']:>8.3f} {r['images_per_s']:>10,.0f} "
              f"{r['val_accuracy']:>8.4f}")
    speedup = result["evaluator"]["images_per_s"] / result["dataloader"]["images_per_s"]
    print(f"ratio evaluator/DataLoader images per second: {speedup:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
