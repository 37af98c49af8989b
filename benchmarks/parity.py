"""Each paper's own networks, built by deapnas, beside the parameter counts the papers report.

    python benchmarks/parity.py            # every method
    python benchmarks/parity.py re renas   # some
    python benchmarks/parity.py --check    # compare with the committed tables, write nothing

writes ``docs/figures/parity_METHOD.csv`` (and ``.json``), which each method's docs page shows,
and for the methods of :data:`PARTS` ``parity_METHOD_parts.csv``: where the parameters of each
published network lie.
"""
import sys
from collections import Counter

from figures import table_or_check

from deapnas.published import METHODS, networks

HEADER = ["network", "paper reports", "deapnas builds", "difference", "why"]
PARTS_HEADER = ["network", "part", "parameters", "share"]
#: The methods whose page shows the parts of its published networks (cell networks):
#: NASGEP's cells give each of their inputs its own convolution to bring it to the width.
PARTS = ("nasgep",)
#: The parts of a :class:`~deapnas.networks.CellNetwork`, by the first name of a parameter,
#: and in its cells by the second.
NETWORK_PARTS = {"stem": "stem", "head": "classifier (BN, linear)",
                 "auxiliary": "auxiliary head"}
CELL_PARTS = {"adapt": "cell inputs brought to the cell's width (Adapt)",
              "body": "the cells' operations"}


def parity_rows(method: str) -> list[list]:
    rows = []
    for network in networks(method):
        built = network.parameters()
        difference = (built - network.paper_parameters) / network.paper_parameters
        rows.append([network.name, network.reported_as, f"{built:,}", f"{difference:+.1%}",
                     network.why])
    return rows


def part_of(parameter: str) -> str:
    """The part of a cell network that the parameter named ``parameter`` (as
    ``named_parameters`` names it, e.g. ``cells.4.adapt.0.body.1.weight``) belongs to."""
    first, _, rest = parameter.partition(".")
    return CELL_PARTS[rest.split(".")[1]] if first == "cells" else NETWORK_PARTS[first]


def parts_rows(method: str) -> list[list]:
    rows = []
    for network in networks(method):
        sizes: Counter = Counter()
        for name, parameter in network.build().named_parameters():
            sizes[part_of(name)] += parameter.numel()
        total = sum(sizes.values())
        rows += [[network.name, part, f"{size:,}", f"{size / total:.1%}"]
                 for part, size in sizes.items()]
    return rows


def tables(method: str) -> list[tuple[str, list, list]]:
    """``(name, header, rows)`` of the tables written for ``method``: its parity table and,
    for the methods of :data:`PARTS`, its parts table."""
    found = [(f"parity_{method}", HEADER, parity_rows(method))]
    if method in PARTS:
        found.append((f"parity_{method}_parts", PARTS_HEADER, parts_rows(method)))
    return found


def main(argv: list[str]) -> int:
    check = "--check" in argv
    methods = [name for name in argv if name != "--check"] or METHODS
    changed = [line for method in methods for name, header, rows in tables(method)
               for line in table_or_check(name, header, rows, check=check)]
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
