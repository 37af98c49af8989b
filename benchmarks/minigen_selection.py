"""The selection pressure of MiniGen's softmax parent selection (eq. 2), measured.

Five survivors whose scores ps run evenly from 0.45 to 0.35 (accuracies as fractions, the way
deapnas and the authors' code hold them) are drawn from many times by
:func:`deapnas.methods.minigen.sel_softmax` at each temperature: 1 (eq. 2 as printed on
fractions, the authors' code and ``--preset paper``) and 0.01 (eq. 2 on percentages, the reading
under which the paper's claim that softmax "distinguishes small differences" holds).

    python benchmarks/minigen_selection.py     # writes docs/figures/minigen_selection.csv

The table gives each survivor's share of the draws (measured) and the ratio of the best one's
probability to the worst one's (exact: exp(0.1 / temperature)).
"""
from __future__ import annotations

import random
from collections import Counter
from types import SimpleNamespace

from figures import write_table

from deapnas.methods.minigen import sel_softmax, softmax_weights

SCORES = (0.45, 0.425, 0.40, 0.375, 0.35)
READINGS = (("fractions: eq. 2 as printed, the authors' code, --preset paper", 1.0),
            ("between the two", 0.1),
            ("percent: eq. 2 on percentages", 0.01))
DRAWS = 100_000


def shares(temperature: float, draws: int = DRAWS, seed: int = 0) -> list[float]:
    """Each survivor's share of ``draws`` single softmax draws at ``temperature``."""
    random.seed(seed)
    survivors = [SimpleNamespace(score=score) for score in SCORES]
    chosen = Counter(id(ind) for ind in sel_softmax(survivors, draws, temperature=temperature))
    return [chosen[id(ind)] / draws for ind in survivors]


def main() -> None:
    header = ["reading", "temperature", *(f"ps {score}" for score in SCORES),
              "best / worst (exact)"]
    rows = []
    for reading, temperature in READINGS:
        weights = softmax_weights(SCORES, temperature)
        rows.append([reading, temperature, *(f"{share:.3f}" for share in shares(temperature)),
                     f"{weights[0] / weights[-1]:,.2f}"])
    print(write_table("minigen_selection", header, rows))


if __name__ == "__main__":
    main()
