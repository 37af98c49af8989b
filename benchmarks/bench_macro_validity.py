"""How many random macro genomes cannot be built, by image size, with and without
``clamp_pools``: fresh genomes (``init_genome``, four random layers) and genomes after 20 random
mutations (a rough picture of what a search without selection would meet).

    PYTHONPATH=. python benchmarks/bench_macro_validity.py [--genomes 5000] [--seed 0]

Prints one line per setting: the invalid count, its rate, and the reasons. Only shapes are
inferred (no network is built), so it takes seconds.
"""
import argparse
import random
from collections import Counter

from deapnas.compiler import infer_shapes
from deapnas.graph import InvalidGraphError
from deapnas.spaces import macro


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--genomes", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for mutations in (0, 20):
        for size in (8, 28):
            for clamp in (False, True):
                reasons = invalid_reasons(args.genomes, mutations, (1, size, size), clamp,
                                          args.seed)
                bad = sum(reasons.values())
                print(f"mutations {mutations:2d}, {size}x{size}, clamp_pools={clamp!s:5}: "
                      f"{bad} of {args.genomes} invalid ({bad / args.genomes:.1%}) "
                      f"{dict(reasons)}")


if __name__ == "__main__":
    main()
