"""NASGEP's survivor rules and thresholds (Alves & de Oliveira, 2020, steps 4 and 7), as plain
functions of the populations that :func:`deapnas.methods.nasgep.nasgep`'s loop applies each
generation: which models and reduction cells survive, which genes die, how many are bred, and
the thresholds T_g and T_c. Individuals never evaluated rank below every evaluated one."""
from __future__ import annotations

import math
from typing import Optional, Sequence


def fitness_value(individual) -> float:
    """Fitness value for sorting; -inf for an individual never evaluated."""
    return individual.fitness.values[0] if individual.fitness.valid else -math.inf


def in_training(model, max_epochs: int) -> bool:
    """Whether a model still trains: fewer than E_max epochs and no failed evaluation."""
    failed = getattr(model, "info", {}).get("reason") is not None
    return getattr(model, "trained_epochs", 0) < max_epochs and not failed


def select_survivors(models: Sequence, size: int, max_epochs: int) -> list:
    """Step 7: the best model survives (elitism, even retired); then the oldest other model
    dies, the one born first (``born``, the birth order, is unique); then retired models
    (E_max epochs, or failed) go; then the fittest survive up to ``size`` models in all."""
    best = max(models, key=fitness_value)
    rest = [m for m in models if m is not best]
    if rest:
        oldest = min(rest, key=lambda m: m.born)
        rest = [m for m in rest if m is not oldest and in_training(m, max_epochs)]
    return [best] + sorted(rest, key=fitness_value, reverse=True)[:size - 1]


def select_reductions(reductions: dict, models: Sequence, size: int) -> dict:
    """Step 7 for reduction cells: the ``size`` fittest that are not dead, and every cell a
    surviving model uses (so more than ``size`` may survive)."""
    in_use = {m.reduction_id for m in models}
    alive = sorted((c for c in reductions.values() if not c.dead), key=fitness_value, reverse=True)
    keep = in_use | {c.id for c in alive[:size]}
    return {name: cell for name, cell in reductions.items() if name in keep}


def kill_genes(pool: dict, used: set, threshold: Optional[float],
               kill_untried: bool = False) -> dict:
    """Step 4a: drop the genes no cell uses whose fitness is below ``threshold`` (T_g); genes
    never used by a model are kept unless ``kill_untried``."""
    def doomed(gene) -> bool:
        if gene.fitness.valid:
            return threshold is not None and gene.fitness.values[0] < threshold
        return kill_untried
    return {name: gene for name, gene in pool.items() if name in used or not doomed(gene)}


def new_gene_count(size: int, new_genes: tuple[int, int], max_genes: int) -> int:
    """Step 4c-d: new genes are bred until there are C_max of them or the pool reaches P_max,
    but at least C_min."""
    low, high = new_genes
    return max(low, min(high, max_genes - size))


def make_room(pool: dict, used: set, incoming: int, max_genes: int) -> dict:
    """Keep the pool within ``max_genes`` after ``incoming`` new genes: where C_min new genes
    would overflow it, the weakest unused genes (never-used ones first) leave."""
    excess = len(pool) + incoming - max_genes
    weakest = sorted((g for name, g in pool.items() if name not in used), key=fitness_value)
    leaving = {g.id for g in weakest[:max(excess, 0)]}
    return {name: gene for name, gene in pool.items() if name not in leaving}


def thresholds(models: Sequence, size: int, bonus_factor: float = 0.75
               ) -> Optional[tuple[float, float]]:
    """(T_g, T_c): the fitness of the ``size``-th best model (the worst when fewer) and
    ``bonus_factor`` times it, over the finite fitnesses (a failed model's -inf is no
    threshold); None before any model is evaluated successfully."""
    values = sorted((v for v in map(fitness_value, models) if math.isfinite(v)), reverse=True)
    if not values:
        return None
    t_g = values[min(size, len(values)) - 1]
    return t_g, bonus_factor * t_g
