"""NASGEP (Alves & de Oliveira, 2020): gene expression programming of cells built from a pool
of genes (ADFs), three populations, models trained one epoch per generation, weight sharing:
``deapnas search --algorithm nasgep``.

The pieces, each usable alone:

- :class:`~deapnas.methods.nasgep_options.Options`: the paper's settings as defaults, the search's (Sec. IV-A) and the final
  training's; presets ``paper`` and ``tiny`` (:data:`~deapnas.methods.nasgep_options.TINY`,
  :meth:`~deapnas.methods.nasgep_options.Options.tiny`);
- :func:`make_evaluator` (one epoch-training of a model, with weight sharing) and
  :func:`make_toolbox` (the aliases of the loop);
- :func:`init_populations`: the gene pools, the reduction cells and the models (steps 1-3);
- :func:`nasgep`: the loop (steps 3-9), with its survivor rules as plain functions
  (:func:`select_survivors`, :func:`select_reductions`, :func:`kill_genes`,
  :func:`new_gene_count`) and the thresholds (:func:`thresholds`);
- :func:`final_evaluator`: the paper's final training of the picked model (64 channels, 300
  epochs, batch 128, lr 0.025, crops, flips, AutoAugment, Cutout 16, optional drop-path), what
  ``deapnas train`` runs.

Choices where the paper is silent, each a named option: a gene's or a reduction cell's fitness
(``component_fitness``: ``"best"``, the best fitness of any model whose cells use it, or
``"mean"`` over those models' evaluations); genes no model has used yet are not killed
(``kill_untried``); the initial reduction population is as large as the model population
(``reductions``); tournaments of 3 (``tournament_size``); the search's momentum and weight
decay are the paper's training values (0.9, 5e-4); the operator rates are Ferreira's usual
ones (the paper cites "default parameters" of Ferreira (2001) without listing them); the final
training's crop pads 4 pixels (``crop_padding``) and its drop-path rate is 0 (``drop_path``:
the published result, Table I's "CutOut + AA", trains without it).

Readings of the paper's text, documented where they are implemented: a pool breeds C_max new
genes, fewer when it reaches P_max, never fewer than C_min, and when C_min would overflow P_max
the weakest unused genes make room (:func:`new_gene_count`, :func:`make_room`); the best model
survives even after E_max epochs (elitism comes first in the paper's list), it is just not
trained further; "the oldest" is the model born first (a unique birth order); P_i children
and P_i new reduction cells per generation, each child's reduction cell won by tournament
among the living ones, the new ones included (``child_reduction``);
genes and reduction cells no model has used yet rank below every evaluated one; T_g and T_c
are first set from the first population's fitness, after its one epoch; genes and reduction
cells are identified by their content, so a child identical to a member is that member.
"""
from __future__ import annotations

import functools
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from deap import base, tools

from .. import safefiles
from ..algorithms import assign, restore_halloffame, restore_state
from ..data import Dataset
from ..fitness import Evaluation, TrainEvaluator
from ..gep import Chromosome
from ..individuals import individual_class
from ..spaces import nasgep as space
from ..spaces.nasgep import NORMAL, REDUCTION
from ..weight_store import SharingEvaluator, WeightStore, apply_offers, concerning
from .nasgep_options import (CHILD_REDUCTIONS, COMPONENT_FITNESS, METHOD,  # noqa: F401 (re-exported)
                             PAPER_EVALUATIONS, TINY, Options)

KINDS = (NORMAL, REDUCTION)
#: Where a run directory keeps the models' training states and the weight store.
MODELS, STORE = "models", "store"
#: Genes and reduction cells: chromosomes with a maximised fitness.
Component = individual_class(Chromosome, (1.0,))


class ModelEvaluator(SharingEvaluator):
    """A :class:`~deapnas.weight_store.SharingEvaluator` that names the model it trained in
    ``info["model"]`` (its ``model_id``), so that the history tells models apart."""

    def __call__(self, individual) -> Evaluation:
        evaluation = super().__call__(individual)
        evaluation.info["model"] = getattr(individual, "model_id", None)
        return evaluation


def make_evaluator(options: Options, data: Dataset, store: Optional[str] = None,
                   device: str = "auto", seed: int = 0, **kwargs: Any) -> ModelEvaluator:
    """The fitness: one epoch-training of a model per evaluation (``individual.epochs``),
    continued from its saved state, sharing weights through ``store`` unless
    ``options.no_sharing``."""
    if not options.no_sharing and store is None:
        raise ValueError("weight sharing needs a folder for its store: pass store=..., or "
                         "turn sharing off (no_sharing=True)")
    build = functools.partial(space.build_network, channels=options.channels,
                              cells_per_stage=options.cells)
    return ModelEvaluator(build, data, space.shared_units,
                          None if options.no_sharing else store, recipe=options.recipe(),
                          device=device, seed=seed, max_params=options.max_params or None,
                          deterministic=options.deterministic, **kwargs)


def final_evaluator(options: Options, data: Dataset, device: str = "auto", seed: int = 0,
                    epochs: Optional[int] = None, channels: Optional[int] = None
                    ) -> TrainEvaluator:
    """The paper's final training (Sec. IV-A) as an evaluator: the model rebuilt at
    ``final_channels`` (or ``channels``), no parameter cap, trained by
    :meth:`Options.final_recipe` for ``final_epochs`` (or ``epochs``)."""
    build = functools.partial(space.build_network, channels=channels or options.final_channels,
                              cells_per_stage=options.cells)
    return TrainEvaluator(build, data, recipe=options.final_recipe(epochs), device=device,
                          seed=seed, deterministic=options.deterministic)


def make_toolbox(options: Options, toolbox: Optional[base.Toolbox] = None,
                 model_class: Optional[type] = None) -> base.Toolbox:
    """Register on ``toolbox`` (a new one when None) the aliases :func:`init_populations` and
    :func:`nasgep` call, configured by ``options``; models are ``model_class`` individuals
    (default: the space's, maximised). ``evaluate`` and ``map`` are the caller's to register."""
    toolbox = toolbox or base.Toolbox()
    toolbox.register("gene", space.random_gene, Component, conv_inputs=options.input_terminals,
                     head=options.gene_head)
    toolbox.register("cell", space.random_cell, Component, head=options.cell_head)
    toolbox.register("model", space.assemble, model_class or space.SPACE.individual())
    toolbox.register("vary_gene", space.vary_gene, conv_inputs=options.input_terminals,
                     **options.rates)
    toolbox.register("vary_cell", space.vary_cell, **options.rates)
    toolbox.register("select", tools.selTournament, tournsize=options.tournament_size)
    return toolbox


# -- the three populations ---------------------------------------------------------------------

def _adopt(component, identity: str):
    """Make a fresh chromosome (or a parent's copy) a member of a population: its id, no
    scores, not dead."""
    component.id, component.scores, component.dead = identity, None, False
    return component


def _join(members: dict, chromosome, identity: str):
    """Add ``chromosome`` to ``members`` under its content id; the member (one with the same
    content already there stays)."""
    if identity not in members:
        members[identity] = _adopt(chromosome, identity)
    return members[identity]


def init_populations(toolbox, population: int = 10, reductions: int = 10, genes: int = 50
                     ) -> tuple[list, dict, dict]:
    """Steps 1-3 of the paper's workflow: ``genes`` random genes for each pool (duplicates
    drawn are kept once), ``reductions`` random reduction cells, ``population`` models, each a
    random normal cell with a reduction cell picked at random. Returns ``(models, reduction
    cells by id, {kind: genes by id})``."""
    pools = {kind: {} for kind in KINDS}
    for kind, pool in pools.items():
        for _ in range(genes):
            gene = toolbox.gene(kind)
            _join(pool, gene, space.gene_id(gene, kind))
    cells = {}
    for _ in range(reductions):
        cell = toolbox.cell(list(pools[REDUCTION]))
        _join(cells, cell, space.cell_id(cell))
    models = [_new_model(toolbox, toolbox.cell(list(pools[NORMAL])),
                         random.choice(list(cells.values())), pools) for _ in range(population)]
    return models, cells, pools


def _new_model(toolbox, normal: Chromosome, reduction, pools: dict):
    model = toolbox.model(normal, reduction.plain(), {**pools[NORMAL], **pools[REDUCTION]})
    model.reduction_id = reduction.id
    return model


# -- survivor rules and thresholds (step 4 and 7) ------------------------------------------------

def _value(individual) -> float:
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
    best = max(models, key=_value)
    rest = [m for m in models if m is not best]
    if rest:
        oldest = min(rest, key=lambda m: m.born)
        rest = [m for m in rest if m is not oldest and in_training(m, max_epochs)]
    return [best] + sorted(rest, key=_value, reverse=True)[:size - 1]


def select_reductions(reductions: dict, models: Sequence, size: int) -> dict:
    """Step 7 for reduction cells: the ``size`` fittest that are not dead, and every cell a
    surviving model uses (so more than ``size`` may survive)."""
    in_use = {m.reduction_id for m in models}
    alive = sorted((c for c in reductions.values() if not c.dead), key=_value, reverse=True)
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
    weakest = sorted((g for name, g in pool.items() if name not in used), key=_value)
    leaving = {g.id for g in weakest[:max(excess, 0)]}
    return {name: gene for name, gene in pool.items() if name not in leaving}


def thresholds(models: Sequence, size: int, bonus_factor: float = 0.75
               ) -> Optional[tuple[float, float]]:
    """(T_g, T_c): the fitness of the ``size``-th best model (the worst when fewer) and
    ``bonus_factor`` times it, over the finite fitnesses (a failed model's -inf is no
    threshold); None before any model is evaluated successfully."""
    values = sorted((v for v in map(_value, models) if math.isfinite(v)), reverse=True)
    if not values:
        return None
    t_g = values[min(size, len(values)) - 1]
    return t_g, bonus_factor * t_g


# -- the loop ----------------------------------------------------------------------------------

@dataclass
class _Search:
    """What a NASGEP search carries from one generation to the next."""

    models: list
    reductions: dict
    genes: dict
    index: dict = field(default_factory=dict)
    thresholds: Optional[tuple] = None
    generation: int = 0
    next_model: int = 0

    def used(self, kind: str) -> set:
        cells = ([m.normal for m in self.models] if kind == NORMAL else
                 list(self.reductions.values()))
        return {name for cell in cells for name in space.terminal_names(cell)}


def nasgep(population: list, toolbox, generations: Optional[int] = None, *, genes: dict,
           reductions: dict, state_dir: str, options: Optional[Options] = None, stats=None,
           halloffame: Optional[tools.HallOfFame] = None, verbose: bool = __debug__,
           journal=None) -> tuple[list, tools.Logbook]:
    """NASGEP's workflow (Alves & de Oliveira, 2020, Sec. III-A), one generation at a time:

    1. train every model still in training one epoch, and one more when its fitness reaches
       T_c (the first generation: one epoch only); a model at E_max epochs retires and its
       reduction cell may no longer reproduce;
    2. in each gene pool, kill the genes no cell uses with a fitness below T_g, then breed new
       genes (:func:`new_gene_count`) from tournament-selected pairs;
    3. breed P_i new reduction cells from tournament-selected living ones, and P_i child
       models: normal cells from tournament-selected models, each with the reduction cell
       that wins a tournament among the living ones (:func:`_breed_models`); train them as
       in 1;
    4. survivor selection (:func:`select_survivors`, :func:`select_reductions`); T_g = the
       fitness of the P_i-th best model, T_c = 0.75 T_g (both first set from the first
       generation's trained models).

    Stops after ``generations`` generations, or at the end of the generation in which the
    journal says so (wall clock, evaluation budget). Every epoch-training of a model is one
    evaluation through ``toolbox.map(toolbox.evaluate, models)``; a model carries ``model_id``, ``born``,
    ``reduction_id`` and ``trained_epochs``, and for its evaluation ``eval_seed``, ``epochs``
    (1), ``resume_from`` / ``save_state_to`` (its training state in ``state_dir``, one file per
    epoch) and ``shared`` (the weight-store index entries that concern it). Weight-store offers
    (``info["shared"]``) are applied in order to the index, which the checkpoint holds.

    :param population: the initial models; ``genes`` ({kind: {id: gene}}) and ``reductions``
        ({id: cell}) the initial pools (see :func:`init_populations`).
    :param options: the settings the loop uses (population, epochs: E_max, bonus_factor,
        max_genes, min_new_genes, max_new_genes, kill_untried, component_fitness).
    :returns: the final models (best first) and the logbook (one record per generation).

    Toolbox aliases: ``model(normal, reduction, genes)``, ``vary_gene(a, b, kind)``,
    ``vary_cell(a, b, gene_ids)``, ``select(individuals, k)``, ``evaluate``, ``map``, and
    ``update(models)`` when registered.
    """
    if generations is None and journal is None:
        raise ValueError("nasgep runs until generations are done or its journal stops it: "
                         "give generations, or a journal with a budget or a time limit")
    options = options or Options()
    logbook = tools.Logbook()
    logbook.header = ["gen", "nevals", "models", "genes", "reductions", "T_g"] + \
        (stats.fields if stats else [])
    search = _Search(list(population), dict(reductions), {k: dict(genes[k]) for k in KINDS})
    saved = restore_state(journal, toolbox)
    if saved is not None:
        search, logbook = _restore(saved)
        restore_halloffame(halloffame, saved)
    else:
        for model in search.models:
            _register(search, model)

    while _checkpoint(journal, search, logbook, halloffame) and \
            (generations is None or search.generation < generations):
        first = search.generation == 0
        nevals = _train(search, search.models, toolbox, state_dir, options, halloffame,
                        bonus=not first)
        if first:
            search.thresholds = thresholds(search.models, options.population,
                                           options.bonus_factor)
        for kind in KINDS:
            _renew_genes(search, kind, toolbox, options)
        children = _breed_models(search, toolbox, options)
        nevals += _train(search, children, toolbox, state_dir, options, halloffame, bonus=True)
        search.models = select_survivors(search.models + children, options.population,
                                         options.epochs)
        search.reductions = select_reductions(search.reductions, search.models,
                                              options.population)
        search.thresholds = thresholds(search.models, options.population,
                                       options.bonus_factor)
        search.generation += 1
        logbook.record(gen=search.generation, nevals=nevals, models=len(search.models),
                       genes=sum(map(len, search.genes.values())),
                       reductions=len(search.reductions), T_g=search.thresholds[0],
                       **(stats.compile(search.models) if stats else {}))
        if verbose:
            print(logbook.stream)
    return search.models, logbook


def _register(search: _Search, model) -> None:
    """Give a new model its identity: id, birth order (unique: the n-th model born has
    ``born == n``, its id ``m<n>``), no epochs trained."""
    model.model_id, model.born, model.trained_epochs = \
        f"m{search.next_model}", search.next_model, 0
    search.next_model += 1


def _train(search: _Search, models: list, toolbox, state_dir: str, options: Options,
           halloffame, bonus: bool) -> int:
    """One epoch for each model in training, then, with ``bonus``, one more for those whose
    fitness reached T_c; the number of evaluations."""
    nevals = _train_epoch(search, [m for m in models if in_training(m, options.epochs)],
                          toolbox, state_dir, options, halloffame)
    if bonus and search.thresholds is not None:
        again = [m for m in models if in_training(m, options.epochs)
                 and m.fitness.values[0] >= search.thresholds[1]]
        nevals += _train_epoch(search, again, toolbox, state_dir, options, halloffame)
    return nevals


def _train_epoch(search: _Search, models: list, toolbox, state_dir: str, options: Options,
                 halloffame) -> int:
    """Evaluate one epoch-training of each model and learn from the results."""
    for model in models:
        epochs = model.trained_epochs
        del model.fitness.values
        model.eval_seed, model.epochs = random.getrandbits(31), 1
        model.resume_from = str(_state_file(state_dir, model, epochs)) if epochs else None
        model.save_state_to = str(_state_file(state_dir, model, epochs + 1))
        model.shared = concerning(search.index, space.share_identities(model))
    for model, evaluation in zip(models, toolbox.map(toolbox.evaluate, models)):
        assign(model, evaluation)
        _learn(search, model, options)
    if halloffame is not None:
        _update_fame(halloffame, models)
    if models and hasattr(toolbox, "update"):
        toolbox.update(models)
    return len(models)


def _state_file(state_dir: str, model, epochs: int) -> Path:
    """Where ``model``'s training state after ``epochs`` epochs lives in ``state_dir`` (its id,
    read back from a checkpoint, is checked; a linked ``state_dir`` is refused)."""
    return safefiles.child(safefiles.refuse_link(state_dir), f"{model.model_id}-e{epochs}.pt",
                           f"model {model.model_id!r}: the training state")


def _learn(search: _Search, model, options: Options) -> None:
    """What one evaluation teaches: the model's epochs, the store index, the fitness of its
    genes and reduction cell; a retiring model's reduction cell stops reproducing."""
    if model.info.get("reason") is not None:
        return
    value = model.fitness.values[0]
    model.trained_epochs = model.info["trained_epochs"]
    apply_offers(search.index, model.info.get("shared", {}), value)
    reduction = search.reductions[model.reduction_id]
    components = [search.genes[NORMAL][g] for g in space.terminal_names(model.normal)] + \
        [search.genes[REDUCTION][g] for g in space.terminal_names(model.reduction)]
    for component in components + [reduction]:
        _score(component, value, options.component_fitness)
    if model.trained_epochs >= options.epochs:
        reduction.dead = True


def _score(component, value: float, how: str) -> None:
    """Count one evaluation of a model using ``component`` into its fitness."""
    count, total, best = component.scores or (0, 0.0, -math.inf)
    component.scores = [count + 1, total + value, max(best, value)]
    component.fitness.values = (component.scores[2] if how == "best" else
                                component.scores[1] / component.scores[0],)


def _update_fame(halloffame: tools.HallOfFame, models: list) -> None:
    """Update ``halloffame`` with models whose fitness changed: an entry of the same model with
    a lower fitness makes way, so a model that keeps training is listed at its best."""
    for model in models:
        stale = [i for i, kept in enumerate(halloffame)
                 if halloffame.similar(kept, model) and kept.fitness < model.fitness]
        for i in reversed(stale):
            halloffame.remove(i)
    halloffame.update(models)


def _renew_genes(search: _Search, kind: str, toolbox, options: Options) -> None:
    """Step 4 for one gene pool: kill, make room, breed."""
    used = search.used(kind)
    pool = kill_genes(search.genes[kind], used, search.thresholds and search.thresholds[0],
                      options.kill_untried)
    count = new_gene_count(len(pool), (options.min_new_genes, options.max_new_genes),
                           options.max_genes)
    pool = make_room(pool, used, count, options.max_genes)
    children = _offspring(list(pool.values()), count, toolbox,
                          lambda a, b: toolbox.vary_gene(a, b, kind))
    for child in children:
        _join(pool, child, space.gene_id(child, kind))
    search.genes[kind] = pool


def _offspring(parents: list, count: int, toolbox, vary) -> list:
    """``count`` children of tournament-selected pairs of ``parents``."""
    children = []
    while len(children) < count:
        children.extend(vary(*toolbox.select(parents, 2)))
    return children[:count]


def _breed_models(search: _Search, toolbox, options: Options) -> list:
    """Step 5: P_i new reduction cells bred from tournament-selected living cells (5a); P_i
    child models, each a normal cell bred from tournament-selected models (5b) with a
    reduction cell won by tournament among the living cells, new ones included (5c; with
    ``child_reduction="bred"``, the cell bred for it)."""
    normal_ids, reduction_ids = list(search.genes[NORMAL]), list(search.genes[REDUCTION])
    bred = [_join(search.reductions, cell, space.cell_id(cell)) for cell in
            _offspring(_living(search.reductions), options.population, toolbox,
                       lambda a, b: toolbox.vary_cell(a, b, reduction_ids))]
    normals = _offspring(search.models, options.population, toolbox,
                         lambda a, b: toolbox.vary_cell(a.normal, b.normal, normal_ids))
    cells = bred if options.child_reduction == "bred" else \
        toolbox.select(_living(search.reductions), len(normals))
    children = []
    for normal, cell in zip(normals, cells):
        children.append(_new_model(toolbox, normal, cell, search.genes))
        _register(search, children[-1])
    return children


def _living(reductions: dict) -> list:
    """The reduction cells that may reproduce (all of them when every one is dead)."""
    return [c for c in reductions.values() if not c.dead] or list(reductions.values())


# -- checkpoints -------------------------------------------------------------------------------

def state_files(state: dict, state_dir: str, store: Optional[str] = None) -> list[Path]:
    """The files a checkpoint ``state`` needs (a ``journal.state_files`` callback): the
    training states in ``state_dir`` that the models of its population and hall of fame
    continue from, and the entries of the weight store ``store`` that its index names."""
    models = list(state["population"]) + list(state["halloffame"])
    files = {_state_file(state_dir, m, m.trained_epochs) for m in models if m.trained_epochs}
    if store is not None:
        files |= {WeightStore(store).path(entry) for entry, _ in state["store_index"].values()}
    return sorted(files)


def stale_files(state: dict, state_dir: str, store: Optional[str] = None) -> list[Path]:
    """Files a checkpoint ``state`` no longer needs: training states in ``state_dir`` and
    store entries that are not its :func:`state_files`. Delete them only once that checkpoint
    is on disk and no evaluation is running (a run resumes from its last checkpoint)."""
    keep = {path.name for path in state_files(state, state_dir)}
    stale = [p for p in safefiles.files(state_dir, "*.pt") if p.name not in keep]
    if store is not None:
        stale += WeightStore(store).stale([state["store_index"]])
    return stale


def remove_stale(state: dict, state_dir: str, store: Optional[str] = None) -> None:
    """Delete the :func:`stale_files` of a checkpoint ``state`` that is on disk (a
    ``journal.after_write`` callback)."""
    for path in stale_files(state, state_dir, store):
        path.unlink(missing_ok=True)


def _component_json(component) -> dict:
    return {"id": component.id, "chromosome": str(component), "scores": component.scores,
            "fitness": list(component.fitness.values), "dead": component.dead}


def _component(data: dict, parse: Callable[[str], Any]) -> Any:
    component = _adopt(parse(data["chromosome"]), data["id"])
    component.scores, component.dead = data["scores"], data["dead"]
    if data["fitness"]:
        component.fitness.values = tuple(data["fitness"])
    return component


def _restore(saved: dict) -> tuple[_Search, tools.Logbook]:
    """The search and logbook of a checkpoint written by :func:`_checkpoint`."""
    genes = {kind: {d["id"]: _component(d, functools.partial(
        Component.from_string, pset=space.gene_pset(kind))) for d in saved["genes"][kind]}
        for kind in KINDS}
    reductions = {d["id"]: _component(d, functools.partial(space.cell_from_string,
                                                            container=Component))
                  for d in saved["reductions"]}
    search = _Search(list(saved["population"]), reductions, genes, dict(saved["store_index"]),
                     tuple(saved["thresholds"]) if saved["thresholds"] else None,
                     saved["generation"], saved["next_model"])
    return search, saved["logbook"]


def _checkpoint(journal, search: _Search, logbook, halloffame) -> bool:
    """Hand the search's state to the journal; whether to go on (True without a journal)."""
    if journal is None:
        return True
    return journal.checkpoint(
        population=search.models, logbook=logbook, halloffame=list(halloffame or []),
        reductions=[_component_json(c) for c in search.reductions.values()],
        genes={kind: [_component_json(g) for g in search.genes[kind].values()]
               for kind in KINDS},
        store_index=search.index, thresholds=search.thresholds,
        generation=search.generation, next_model=search.next_model) is not False


# -- the registered method ---------------------------------------------------------------------

def evaluator(run) -> ModelEvaluator:
    """The run's fitness: :func:`make_evaluator` on the run's data, its store in the run
    directory (made when first written)."""
    return make_evaluator(run.options, run.data, store=str(run.directory / STORE),
                          device=run.config.first_device, seed=run.config.seed)


def search(run) -> tools.Logbook:
    """The NASGEP loop until ``--time-limit`` or ``--evaluations`` (epoch-trainings) is spent;
    the models' training states in ``models/`` and the weight store in ``store/`` of the run
    directory, their SHA-256 in each checkpoint (checked on resume), files no checkpoint needs
    deleted after each checkpoint."""
    options = run.options
    toolbox = make_toolbox(options, run.toolbox(), run.individual)
    state_dir = safefiles.folder(run.directory, MODELS)
    store = None if options.no_sharing else safefiles.folder(run.directory, STORE)
    run.journal.state_files.append(functools.partial(state_files, state_dir=state_dir,
                                                     store=store))
    run.journal.after_write.append(functools.partial(remove_stale, state_dir=state_dir,
                                                     store=store))
    models, reductions, genes = init_populations(toolbox, options.population,
                                                 options.reductions, options.genes)
    _, logbook = nasgep(models, toolbox, genes=genes, reductions=reductions,
                        state_dir=str(state_dir), options=options, stats=run.stats,
                        halloffame=run.halloffame, verbose=False, journal=run.journal)
    return logbook
