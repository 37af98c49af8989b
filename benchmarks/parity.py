"""Each paper's own networks, built by deapnas, beside the parameter counts the papers report.

    python benchmarks/parity.py            # every method
    python benchmarks/parity.py re renas   # some
    python benchmarks/parity.py --check    # compare with the committed tables, write nothing

writes ``docs/figures/parity_METHOD.csv`` (and ``.json``), which each method's docs page shows.
"""
import sys

from figures import table_or_check

from deapnas.published import METHODS, networks

HEADER = ["network", "paper reports", "deapnas builds", "difference", "why"]


def parity_rows(method: str) -> list[list]:
    rows = []
    for network in networks(method):
        built = network.parameters()
        difference = (built - network.paper_parameters) / network.paper_parameters
        rows.append([network.name, network.reported_as, f"{built:,}", f"{difference:+.1%}",
                     network.why])
    return rows


def main(argv: list[str]) -> int:
    check = "--check" in argv
    methods = [name for name in argv if name != "--check"] or METHODS
    changed = [line for method in methods
               for line in table_or_check(f"parity_{method}", HEADER, parity_rows(method),
                                          check=check)]
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
