"""The macro space at the paper's settings, three tables: how many random genomes cannot be
built, how many fresh genomes branch, and what the parameter cap lets through.

    PYTHONPATH=. python benchmarks/bench_macro_validity.py [--genomes 5000] [--seed 0] [--check]

Writes to ``docs/figures/`` (and ``--check`` compares with the committed files instead):

- ``macro_validity.csv`` (and ``.json``): one row per image size, with and without
  ``clamp_pools``, for fresh genomes (``init_genome``, four random layers) and genomes after 20
  random mutations (a rough picture of what a search without selection would meet): the invalid
  count, its rate, and the reasons.
- ``macro_branching.csv``: per add-node rule (``--add-node-split``), how many fresh genomes
  branch (a node with several inputs or outputs).
- ``macro_param_cap.csv``: small chains of layers built at the paper's width (C = 64) for
  Fashion-MNIST's 28 x 28 images, with either convolution padding (``--conv-padding``): the
  output map, the parameters (:func:`~deapnas.networks.count_parameters`) and whether the
  search's default cap (``--max-params``) lets them through.

Only shapes are inferred and networks built on the meta device, so it takes seconds.
"""
import argparse
import random
from collections import Counter

import torch
from figures import table_or_check

from deapnas.compiler import infer_shapes
from deapnas.graph import InvalidGraphError
from deapnas.methods.regularized import Options
from deapnas.networks import count_parameters
from deapnas.options import ADD_NODE_SPLITS, CONV_PADDINGS
from deapnas.published.re import FASHION_MNIST
from deapnas.spaces import macro

VALIDITY_HEADER = ["random mutations", "image size", "clamp_pools", "invalid genomes", "rate",
                   "reasons"]
BRANCHING_HEADER = ["add-node rule", "fresh genomes", "branching genomes", "share"]
CAP_HEADER = ["layers, input to output", "convolution padding", "output map", "parameters"]
#: Small networks whose counts show how the fully connected head grows with the output map.
CHAINS = (("CONV_3.N",), ("POOL_2.M", "CONV_3.N"), ("POOL_3.M", "CONV_3.N"),
          ("POOL_2.M", "CONV_3.H"), ("POOL_2.M", "POOL_2.M", "CONV_3.N"),
          ("POOL_5.M", "CONV_3.N"))


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


def validity_rows(genomes: int, seed: int) -> list[list]:
    rows = []
    for mutations in (0, 20):
        for size in (8, 28):
            for clamp in (False, True):
                reasons = invalid_reasons(genomes, mutations, (1, size, size), clamp, seed)
                bad = sum(reasons.values())
                rows.append([mutations, f"{size}x{size}", clamp, f"{bad} of {genomes}",
                             f"{bad / genomes:.1%}",
                             ", ".join(f"{n} {reason}" for reason, n in sorted(reasons.items()))])
    return rows


def branches(genome: macro.MacroGenome) -> bool:
    """Whether a node of the genome's network has several inputs or several outputs."""
    graph = macro.to_graph(genome)
    return any(graph.in_degree(node) > 1 or graph.out_degree(node) > 1 for node in graph)


def branching_rows(genomes: int, seed: int) -> list[list]:
    rows = []
    for split in ADD_NODE_SPLITS:
        random.seed(seed)
        branching = sum(branches(macro.init_genome(split=split)) for _ in range(genomes))
        rows.append([split, genomes, branching, f"{branching / genomes:.1%}"])
    return rows


def chain(layers: tuple) -> macro.MacroGenome:
    """A genome whose ``layers`` are connected input -> layer -> ... -> output in order."""
    nodes = [macro.INPUT, *range(len(layers)), macro.OUTPUT]
    return macro.from_json({"layers": {str(n): layer for n, layer in enumerate(layers)},
                            "connections": [[source, target, True, innovation] for
                                            innovation, (source, target) in
                                            enumerate(zip(nodes, nodes[1:]))]})


def cap_rows(options: Options) -> list[list]:
    rows = []
    for layers in CHAINS:
        for padding in CONV_PADDINGS:
            with torch.device("meta"):  # shapes and sizes only: nothing is allocated
                network = macro.build_network(chain(layers), *FASHION_MNIST,
                                              channels=options.channels, padding=padding)
            parameters = count_parameters(network)
            rows.append([" -> ".join(layers), padding,
                         " x ".join(map(str, network.body.output_shape)), f"{parameters:,}",
                         "yes" if parameters <= options.max_params else "no"])
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--genomes", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--check", action="store_true",
                        help="compare with the committed figures instead of writing them")
    args = parser.parse_args()
    options = Options()
    tables = [("macro_validity", VALIDITY_HEADER, validity_rows(args.genomes, args.seed), {}),
              ("macro_branching", BRANCHING_HEADER, branching_rows(args.genomes, args.seed), {}),
              ("macro_param_cap", [*CAP_HEADER, f"within --max-params {options.max_params:,}"],
               cap_rows(options),
               {"channels": options.channels, "max_params": options.max_params,
                "input_shape": list(FASHION_MNIST[0]), "classes": FASHION_MNIST[1]})]
    changed = [line for name, header, rows, results in tables
               for line in table_or_check(name, header, rows, results, check=args.check)]
    return 1 if changed else 0


if __name__ == "__main__":
    raise SystemExit(main())
