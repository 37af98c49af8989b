"""How well zero-cost proxies rank NAS-Bench-201 cells: N cells drawn at random from the
benchmark's table, each built untrained in the benchmark's own skeleton (C = 16, 5 cells per
stage, 32x32x3 input, 10 classes), scored by synflow, the parameter count and (unless
``--no-naswot``) NASWOT, and the Spearman rank correlation of each score with the table's
CIFAR-10 test accuracy after 200 epochs (``cifar10_test_acc_200ep``).

Published (Abdelfattah et al., 2021): synflow 0.74 over all 15,625 cells.

    python benchmarks/bench_proxies_nb201.py [--n 1000] [--seed 0] [--name proxies_nb201]

CIFAR-10 images are not available offline, so NASWOT scores a fixed minibatch of Gaussian
noise images instead of CIFAR-10 images (synflow and the parameter count use no images). The
result goes to ``docs/figures/NAME.json`` (``--name``; :func:`figures.write_figures`: the
command, the deapnas commit, the machine and the date, and as results N, the correlations and
the seconds per cell), rewritten every 100 cells with ``"complete": false`` so that an
interrupted run still leaves its partial result.
"""
import argparse
import csv
import platform
import random
import time
from pathlib import Path

import torch
from scipy.stats import spearmanr

from deapnas import proxies
from deapnas.spaces import nb201

from figures import write_figures

TABLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "nas-bench-201" / "nb201.csv"
ACCURACY = "cifar10_test_acc_200ep"
SHAPE, CLASSES = (3, 32, 32), 10


def sample_cells(table: Path, n: int, seed: int) -> list[tuple[str, float]]:
    """``n`` distinct ``(architecture string, test accuracy)`` rows drawn with ``seed``."""
    with open(table, newline="", encoding="utf-8") as handle:
        rows = [(row["arch_str"], float(row[ACCURACY])) for row in csv.DictReader(handle)]
    return random.Random(seed).sample(rows, min(n, len(rows)))


def noise_batch(size: int, seed: int) -> torch.Tensor:
    return torch.randn((size, *SHAPE), generator=torch.Generator().manual_seed(seed))


def correlations(scores: dict[str, list[float]], accuracies: list[float]) -> dict[str, float]:
    return {name: round(float(spearmanr(values, accuracies).statistic), 4)
            for name, values in scores.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="cells drawn from the table")
    parser.add_argument("--seed", type=int, default=0,
                        help="draws the cells and seeds every network's initial weights")
    parser.add_argument("--table", default=str(TABLE), help="the NAS-Bench-201 CSV")
    parser.add_argument("--no-naswot", action="store_true", help="score synflow and params only")
    parser.add_argument("--naswot-batch", type=int, default=32, help="NASWOT's noise images")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--name", default="proxies_nb201",
                        help="writes docs/figures/NAME.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    names = ["synflow", "params"] + ([] if args.no_naswot else ["naswot"])
    cells = sample_cells(Path(args.table), args.n, args.seed)
    evaluator = proxies.ProxyEvaluator(nb201.build_network, "synflow", input_shape=SHAPE,
                                       num_classes=CLASSES, seed=args.seed, device="cpu")
    batch = noise_batch(args.naswot_batch, args.seed)
    targets = torch.zeros(len(batch), dtype=torch.long)
    scores: dict[str, list[float]] = {name: [] for name in names}
    seconds = {name: 0.0 for name in names}
    result = {"software": f"Python {platform.python_version()}, torch {torch.__version__}, "
                          f"{torch.get_num_threads()} torch thread(s)",
              "table": Path(args.table).name, "accuracy": ACCURACY,
              "skeleton": "nb201.build_network: C = 16, 5 cells per stage, 3x32x32 input, "
                          "10 classes; weights drawn with evaluation_seed(seed, 0)",
              "naswot_inputs": None if args.no_naswot else
              f"{args.naswot_batch} N(0, 1) noise images (CIFAR-10 is not available offline)",
              "published": {"synflow": 0.74, "over": "all 15,625 cells",
                            "source": "Abdelfattah et al., ICLR 2021"}}
    for done, (arch, _) in enumerate(cells, 1):
        net = evaluator.network(nb201.from_arch_string(arch, list))
        for name in names:
            start = time.perf_counter()
            scores[name].append(proxies.PROXIES[name](net, batch, targets))
            seconds[name] += time.perf_counter() - start
        if done % 100 == 0 or done == len(cells):
            accuracies = [accuracy for _, accuracy in cells[:done]]
            result.update(n=done, complete=done == len(cells),
                          spearman=correlations(scores, accuracies),
                          seconds_per_cell={k: round(v / done, 4) for k, v in seconds.items()})
            write_figures(args.name, result)
            print(f"{done} cells: {result['spearman']}", flush=True)


if __name__ == "__main__":
    main()
