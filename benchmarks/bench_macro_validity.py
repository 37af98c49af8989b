"""How many random macro genomes cannot be built, by image size, with and without
``clamp_pools``: fresh genomes (``init_genome``, four random layers) and genomes after 20 random
mutations (a rough picture of what a search without selection would meet).

    PYTHONPATH=. python benchmarks/bench_macro_validity.py [--genomes 5000] [--seed 0] [--check]

Writes one row per setting to ``docs/figures/macro_validity.csv`` (and ``.json``): the invalid
count, its rate, and the reasons (``--check``: compares them with the committed file instead).
Only shapes are inferred (no network is built), so it takes seconds.
"""
import argparse
import random
from collections import Counter

from figures import table_or_check

from deapnas.compiler import infer_shapes
from deapnas.graph import InvalidGraphError
from deapnas.spaces import macro

HEADER = ["random mutations", "image size", "clamp_pools", "invalid genomes", "rate", "reasons"]


def invalid_reasons(genomes: int, mutations: int, shape: tuple, clamp: bool, seed: int
                    ) -> Counter:
    random.seed(seed)
    reasons: Counter = Counter()
    for _ in range(genomes):
        genome = macro.init_genome()
        for _ in range(mutations):
            macro.mutate(genome)
        try:
            infer_shapes(macro.to_graph(genome, clamp_pools=clamp), [shape])
        except InvalidGraphError as error:
            reasons["size collapses" if "collapses" in str(error) else "no path"] += 1
    return reasons


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--genomes", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--check", action="store_true",
                        help="compare with the committed figures instead of writing them")
    args = parser.parse_args()
    rows = []
    for mutations in (0, 20):
        for size in (8, 28):
            for clamp in (False, True):
                reasons = invalid_reasons(args.genomes, mutations, (1, size, size), clamp,
                                          args.seed)
                bad = sum(reasons.values())
                rows.append([mutations, f"{size}x{size}", clamp, f"{bad} of {args.genomes}",
                             f"{bad / args.genomes:.1%}",
                             ", ".join(f"{n} {reason}" for reason, n in sorted(reasons.items()))])
    return 1 if table_or_check("macro_validity", HEADER, rows, check=args.check) else 0


if __name__ == "__main__":
    raise SystemExit(main())
