"""The paper preset's budget: how many epoch-trainings NASGEP's 24 hours on a Titan Xp buy.

    python benchmarks/nasgep_budget.py

The paper stops its search after 24 GPU hours on an NVIDIA Titan Xp; a time limit on a faster
card buys several times that compute, so ``--preset paper`` counts evaluations instead
(epoch-trainings: ``--evaluations``). This script estimates the count from the work one
epoch-training does, on random models of the paper's search space at its search settings
(C = 16, N = 3, CIFAR-10's 32x32 images, the 300,000-parameter cap):

* the multiply-adds of one forward pass of one image (every convolution and the classifier),
  averaged over the models that pass the cap;
* an epoch-training: the forward and backward passes (3 forward passes' work) on the 45,000
  training images and one forward pass on the 5,000 validation images, 2 FLOPs per
  multiply-add;
* the Titan Xp's FP32 peak, 3,840 CUDA cores x 1.582 GHz x 2 = 12.15 TFLOPS, of which a search
  uses a fraction (``UTILISATION``, an assumption, not a measurement; the table gives the
  budget at each): small depthwise-separable networks are bound by memory traffic rather than
  arithmetic, and the fraction also stands for the time the FLOP count leaves out (loading and
  augmenting the images, building each model, saving and loading shared weights).

It writes ``docs/figures/nasgep_budget.csv`` (and ``.json``); the paper preset's
``evaluations`` is the estimate at the middle utilisation, rounded to a thousand.
"""
import random
import sys

import torch
from figures import write_table
from torch import nn

from deapnas.methods import nasgep
from deapnas.spaces import nasgep as space

TITAN_XP_FLOPS = 3840 * 1.582e9 * 2
UTILISATION = (0.05, 0.1, 0.2)
SECONDS = 24 * 3600
TRAIN, VALIDATION, SHAPE, CLASSES = 45_000, 5_000, (3, 32, 32), 10


def multiply_adds(net: nn.Module) -> int:
    """Multiply-adds of one forward pass of one image through ``net``."""
    total = 0

    def count(module, inputs, output):
        nonlocal total
        if isinstance(module, nn.Conv2d):
            kernel = module.weight[0].numel()  # in-channels per group x kernel area
            total += output.numel() * kernel
        elif isinstance(module, nn.Linear):
            total += module.weight.numel()
    hooks = [m.register_forward_hook(count) for m in net.modules()
             if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        net.eval()(torch.zeros(1, *SHAPE))
    for hook in hooks:
        hook.remove()
    return total


def paper_models(count: int, seed: int = 0) -> list[int]:
    """Multiply-adds of ``count`` random models of the paper's search (under its cap)."""
    random.seed(seed)
    options = nasgep.Options()
    toolbox = nasgep.make_toolbox(options)
    counts = []
    while len(counts) < count:
        models, _, _ = nasgep.init_populations(toolbox, 10, 10, options.genes)
        for model in models:
            net = space.build_network(model, SHAPE, CLASSES, channels=options.channels,
                                      cells_per_stage=options.cells)
            if sum(p.numel() for p in net.parameters()) <= options.max_params:
                counts.append(multiply_adds(net))
    return counts[:count]


def main(count: int = 40) -> None:
    counts = paper_models(count)
    mean = sum(counts) / len(counts)
    flops = 2 * mean * (3 * TRAIN + VALIDATION)
    rows = []
    for utilisation in UTILISATION:
        seconds = flops / (TITAN_XP_FLOPS * utilisation)
        rows.append([f"{utilisation:.0%}", f"{seconds:.1f}", f"{SECONDS / seconds:,.0f}"])
    path = write_table("nasgep_budget", ["Titan Xp utilisation (assumed)",
                                         "seconds per epoch-training",
                                         "epoch-trainings in 24 hours"], rows,
                       {"models": len(counts), "mean_multiply_adds": mean,
                        "flops_per_epoch_training": flops,
                        "preset": round(SECONDS / (flops / (TITAN_XP_FLOPS * UTILISATION[1])),
                                        -3)})
    print(f"{len(counts)} models, {mean / 1e6:.1f} M multiply-adds per image -> {path}")


if __name__ == "__main__":
    main(*map(int, sys.argv[1:]))
