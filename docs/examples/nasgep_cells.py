"""Draw the normal and the reduction cell of a hand-written NASGEP model for the docs
(docs/methods/nasgep-cells.png), from the chromosomes printed on the method's page:

    PYTHONPATH=. python docs/examples/nasgep_cells.py
"""
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from deapnas import gep  # noqa: E402
from deapnas.drawing import draw_graph  # noqa: E402
from deapnas.gep import Chromosome  # noqa: E402
from deapnas.spaces import nasgep  # noqa: E402

GENES = {  # gene id -> (kind, chromosome: head | tail)
    "nA": (nasgep.NORMAL, "add | sep3x3_h1 h2"),
    "nB": (nasgep.NORMAL, "isep5x5 | dep3x3_h2 h1"),
    "nC": (nasgep.NORMAL, "dep1x7_h1 | h1 h2"),
    "rA": (nasgep.REDUCTION, "add | sep3x3_h1 isep5x5_h2"),
    "rB": (nasgep.REDUCTION, "sep1x7 | conv1x1_h1 dep3x3_h2"),
}
NORMAL_CELL = "cat add nC add | nA nB nC nA nB"
REDUCTION_CELL = "add cat rA rB | rA rB rA rB rA"


def model() -> nasgep.Model:
    genes = {name: Chromosome.from_string(text, nasgep.gene_pset(kind))
             for name, (kind, text) in GENES.items()}
    return nasgep.Model(nasgep.cell_from_string(NORMAL_CELL),
                        nasgep.cell_from_string(REDUCTION_CELL), genes)


def main(path: Path = Path(__file__).parents[1] / "methods" / "nasgep-cells.png") -> None:
    drawn = model()
    for name, cell in (("normal", drawn.normal), ("reduction", drawn.reduction)):
        print(f"{name} cell {cell} decodes to {gep.karva(cell)}")
    graphs = nasgep.cells(drawn)
    figure, axes = plt.subplots(1, 2, figsize=(11, 7))
    for ax, (name, graph) in zip(axes, graphs.items()):
        draw_graph(graph, ax=ax, title=f"{name} cell")
    figure.savefig(path, dpi=100, bbox_inches="tight")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
