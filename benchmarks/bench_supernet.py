"""The speed of EG-NAS's supernet, measured side by side in one run.

(a) Weight training, images/second: ``SupernetTraining.epoch`` (the shared training loop,
    batches sliced from device-resident tensors, SGD with clipping) next to a plain hand-written
    loop doing the same SGD steps on the same batches, and next to a plain PC-DARTS-style search
    step of the same supernet: a first-order gradient step on alpha (Adam, lr 6e-4, weight
    decay 1e-3, PC-DARTS' settings) on a validation batch, then the SGD step on the weights.
(b) Candidate scoring: ``SupernetEvaluator`` scoring candidate alphas (one forward pass of the
    scoring batches each, no copy of the supernet): candidates/second and images/second.
(c) The ES step's cost as a fraction of one weight-training epoch: an ES step scores
    N * (lambda * iterations + 1) + 1 candidates (alpha, every CMA-ES population, each
    sampling's final mean); an epoch trains on ``--train-images`` images (paper: 25,000, half
    of CIFAR-10). The PC-DARTS epoch over the same images is printed beside it.

Modes (``--modes``): ``fp32``; ``bf16`` (``torch.autocast`` with bfloat16 around training and
scoring); ``-cl`` adds channels_last memory format for the supernet and the images, so a GPU
run measures both ways: ``--modes fp32 bf16 fp32-cl bf16-cl``. The images are synthetic
CIFAR-shaped tensors (3x32x32, 10 classes): the speed does not depend on the pixels. Every
figure is the median of ``--repeats`` timed runs after an untimed warm-up (CUDA synchronised
before each clock read), the loops timed in turn round after round, so that a change in a shared
machine's load falls on all of them alike.

    python benchmarks/bench_supernet.py                      # CPU: a few minutes on 2 cores
    python benchmarks/bench_supernet.py --device cuda --batch-size 256 --steps 20 \\
        --modes fp32 bf16 fp32-cl bf16-cl

This is a measurement, not a test: it prints tables and ratios and exits 0. ``--write NAME``
also writes them to ``docs/figures/NAME.csv`` (the training loops) and ``NAME_es.csv``
(scoring and the ES step), with the command, commit, machine and date in the ``.json``
beside each; the EG-NAS page shows them.
"""
from __future__ import annotations

import argparse
import contextlib
from dataclasses import replace

import numpy as np
import torch
from torch import nn

from bench_fitness import interleaved_medians  # this folder is on the path when a script runs
from deapnas.data import Split
from deapnas.evolutionary_gradient import SEARCH_RECIPE, Candidate, SupernetEvaluator, initial_alpha
from deapnas.supernet import DartsSupernet, SupernetTraining
from deapnas.training import make_optimizer, resolve_device

MODES = ("fp32", "bf16", "fp32-cl", "bf16-cl")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    parser.add_argument("--channels", type=int, default=16, help="C (paper: 16)")
    parser.add_argument("--layers", type=int, default=8, help="cells (paper: 8)")
    parser.add_argument("--partial", type=int, default=4, help="PC-DARTS K (paper: 4)")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=32, help="paper: 256")
    parser.add_argument("--steps", type=int, default=3, help="training batches per timed run")
    parser.add_argument("--candidates", type=int, default=4, help="candidates per timed run")
    parser.add_argument("--score-batches", type=int, default=1)
    parser.add_argument("--score-batch-size", type=int, default=None,
                        help="default: --batch-size")
    parser.add_argument("--samplings", type=int, default=5, help="N (paper: 5)")
    parser.add_argument("--popsize", type=int, default=50, help="lambda (paper: 50)")
    parser.add_argument("--iterations", type=int, default=1,
                        help="CMA-ES generations per sampling (EG-NAS: 1)")
    parser.add_argument("--train-images", type=int, default=25_000, help="per search epoch")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--modes", nargs="+", choices=MODES, default=["fp32"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write", metavar="NAME",
                        help="write the tables to docs/figures/NAME.csv and NAME_es.csv")
    return parser.parse_args(argv)


def synthetic(count: int, size: int, device: torch.device, channels_last: bool,
              seed: int) -> Split:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(count, 3, size, size, generator=generator)
    y = torch.randint(0, 10, (count,), generator=generator)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return Split(x.to(device), y.to(device))


def plain_loop(net: nn.Module, split: Split, alpha: torch.Tensor, batch_size: int,
               optimizer: torch.optim.Optimizer, val: Split | None = None,
               arch_optimizer: torch.optim.Optimizer | None = None) -> None:
    """The hand-written search loop over ``split`` in order: with ``val``, a PC-DARTS step on
    alpha from a validation batch before each weight step."""
    net.train()
    total = torch.zeros((), device=split.x.device)
    for start in range(0, len(split), batch_size):
        if val is not None:
            arch_loss = nn.functional.cross_entropy(net(val.x[:batch_size], alpha),
                                                    val.y[:batch_size])
            arch_optimizer.zero_grad(set_to_none=True)
            arch_loss.backward()
            arch_optimizer.step()
        x, y = split.x[start:start + batch_size], split.y[start:start + batch_size]
        loss = nn.functional.cross_entropy(net(x, alpha.detach()), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), SEARCH_RECIPE.grad_clip)
        optimizer.step()
        total += loss.detach()
    total.item()


def measure(args, mode: str, device: torch.device) -> dict:
    """Images/second of the three training loops and candidates/second of scoring."""
    bf16, channels_last = mode.startswith("bf16"), mode.endswith("-cl")
    torch.manual_seed(args.seed)
    shape = (3, args.image_size, args.image_size)
    with torch.device(device):
        net = DartsSupernet(shape, 10, args.channels, args.layers, args.partial)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    score_batch = args.score_batch_size or args.batch_size
    train = synthetic(args.steps * args.batch_size, args.image_size, device, channels_last, 1)
    val = synthetic(max(args.score_batches * score_batch, args.batch_size), args.image_size,
                    device, channels_last, 2)
    recipe = replace(SEARCH_RECIPE, batch_size=args.batch_size)
    alpha = initial_alpha(net.layout.size, args.seed)
    alpha_t = torch.as_tensor(alpha, dtype=torch.float32, device=device).requires_grad_()
    autocast = (torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else
                contextlib.nullcontext())

    def under_autocast(function):
        def run():
            with autocast:
                function()
        return run

    training = SupernetTraining(net, train, recipe, seed=args.seed)
    optimizer = make_optimizer(net.parameters(), recipe)
    arch = torch.optim.Adam([alpha_t], 6e-4, betas=(0.5, 0.999), weight_decay=1e-3)
    evaluator = SupernetEvaluator(net, val, args.score_batches, score_batch)
    rng = np.random.default_rng(args.seed)
    candidates = [Candidate((alpha + rng.standard_normal(alpha.size)).tolist())
                  for _ in range(args.candidates)]
    seconds = interleaved_medians({name: under_autocast(function) for name, function in {
        "deapnas": lambda: training.epoch(alpha),
        "plain": lambda: plain_loop(net, train, alpha_t, args.batch_size, optimizer),
        "pcdarts": lambda: plain_loop(net, train, alpha_t, args.batch_size, optimizer, val, arch),
        "score": lambda: [evaluator(c) for c in candidates],
    }.items()}, device, args.repeats)
    return {"seconds": seconds, "train_images": len(train),
            "candidates_per_s": args.candidates / seconds["score"],
            "score_images": len(evaluator.scoring_split(0)),
            "params": sum(p.numel() for p in net.parameters())}


LOOPS = (("deapnas", "SupernetTraining.epoch (shared train_epoch)"),
         ("plain", "plain SGD step loop"),
         ("pcdarts", "plain PC-DARTS step (alpha step + SGD step)"))


def rates_and_ratios(args, result: dict) -> dict:
    """What a measurement shows: the loops' images/second (and each against the plain loop),
    scoring's candidates and images per second, and the ES step's cost in seconds against a
    weight-training epoch of ``--train-images`` images and against a PC-DARTS epoch."""
    seconds, images = result["seconds"], result["train_images"]
    rate = {name: images / seconds[name] for name, _ in LOOPS}
    per_step = args.samplings * (args.popsize * args.iterations + 1) + 1
    es = per_step / result["candidates_per_s"]
    epoch = args.train_images / rate["deapnas"]
    return {"rate": rate, "vs_plain": {name: rate[name] / rate["plain"] for name in rate},
            "candidates_per_s": result["candidates_per_s"],
            "score_images_per_s": result["candidates_per_s"] * result["score_images"],
            "per_step": per_step, "es_seconds": es, "epoch_seconds": epoch,
            "es_vs_epoch": es / epoch,
            "vs_pcdarts": (epoch + es) / (args.train_images / rate["pcdarts"])}


def report(args, mode: str, result: dict, shown: dict) -> None:
    print(f"\n[{mode}] {result['params']:,} weights")
    print(f"(a) {'loop':<44} {'images/s':>10} {'vs plain':>9}")
    for name, label in LOOPS:
        print(f"    {label:<44} {shown['rate'][name]:>10.1f} {shown['vs_plain'][name]:>9.2f}")
    print(f"(b) scoring: {shown['candidates_per_s']:.2f} candidates/s "
          f"({result['score_images']} images each, {shown['score_images_per_s']:.1f} images/s)")
    print(f"(c) ES step: {shown['per_step']} candidates (N={args.samplings}, "
          f"lambda={args.popsize}, {args.iterations} iterations) = {shown['es_seconds']:,.0f} s; "
          f"weight epoch over {args.train_images:,} images = {shown['epoch_seconds']:,.0f} s; "
          f"ES / weight epoch = {shown['es_vs_epoch']:.2f}; EG-NAS epoch / PC-DARTS epoch = "
          f"{shown['vs_pcdarts']:.2f}")


def write(name: str, args, measured: dict) -> None:
    """``--write NAME``: the loops to ``docs/figures/NAME.csv``, scoring and the ES step to
    ``NAME_es.csv``, one row per mode."""
    from figures import write_table  # this folder is on the path when a script runs
    loops = [[mode, label, round(shown["rate"][name], 1), round(shown["vs_plain"][name], 2)]
             for mode, (_, shown) in measured.items() for name, label in LOOPS]
    print("written to", write_table(name, ["mode", "loop", "images/s", "vs plain SGD loop"],
                                    loops, {"settings": vars(args)}))
    es = [[mode, f"{shown['candidates_per_s']:.2f}", round(shown["score_images_per_s"], 1),
           shown["per_step"], round(shown["es_seconds"], 1), round(shown["epoch_seconds"], 1),
           round(shown["es_vs_epoch"], 2), round(shown["vs_pcdarts"], 2)]
          for mode, (_, shown) in measured.items()]
    header = ["mode", "candidates scored/s", "images scored/s", "candidates per ES step",
              "ES step seconds", f"weight epoch seconds ({args.train_images:,} images)",
              "ES step / weight epoch", "EG-NAS epoch / PC-DARTS epoch"]
    print("written to", write_table(f"{name}_es", header, es, {"settings": vars(args)}))


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    print(f"DARTS supernet: C={args.channels}, {args.layers} cells, K={args.partial}, "
          f"{args.image_size}x{args.image_size} images; device {device} "
          f"({torch.get_num_threads()} CPU threads); batch {args.batch_size}, "
          f"{args.steps} batches per timed run; median of {args.repeats} after a warm-up")
    measured = {}
    for mode in args.modes:
        result = measure(args, mode, device)
        measured[mode] = result, rates_and_ratios(args, result)
        report(args, mode, *measured[mode])
    if args.write:
        write(args.write, args, measured)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
