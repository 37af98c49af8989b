"""Each paper's own networks, built by deapnas, beside the parameter counts the papers report.

    python benchmarks/parity.py            # every method
    python benchmarks/parity.py re renas   # some

writes ``docs/figures/parity_METHOD.csv`` (and ``.json``), which each method's docs page shows.
"""
import sys

from figures import write_table

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


def main(methods: list[str]) -> None:
    for method in methods or METHODS:
        rows = parity_rows(method)
        path = write_table(f"parity_{method}", HEADER, rows)
        print(f"{method}: {len(rows)} networks -> {path}")


if __name__ == "__main__":
    main(sys.argv[1:])
