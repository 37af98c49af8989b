"""RENAS: reinforced evolutionary neural architecture search (Chen et al., 2019):
``deapnas search --algorithm renas``.

Evolution by tournament selection in which the *worst* individual of each sample dies (not the
oldest, as in aging evolution), with a learned mutation operator and parameter inheritance:

- :func:`renas`, the loop (the paper's Algorithm 1);
- :class:`~deapnas.controller.MutationController`, the reinforced mutation, registered by
  :func:`register_mutation` as ``toolbox.mutate`` / ``toolbox.update`` (or the paper's
  random-mutation baseline, :func:`~deapnas.controller.mut_layout`, with the same actions);
- :class:`WeightFiles`, the trained weights of the population's members, from which children
  inherit every parameter whose name and shape match and are fine-tuned for one pass over the
  training data, new parameters at 10x the learning rate (0.01 vs 0.001);
- :func:`retrain_population`, the final step: the population retrained from scratch and the
  best (on the validation split) picked.

It searches the NASNet-like block cells of :mod:`deapnas.spaces.nasnet`, trained with
inheritance, or NAS-Bench-201 cells (``--space nb201``) looked up in the benchmark's table
(``--table``: the same loop without weights, the pick being the best evaluation).

The budget ``--evaluations`` counts every evaluation: the first population (P), the children,
and, for a trained search, the final retraining of the population (P); so a trained search
makes ``evaluations - 2P`` children and a tabular one ``evaluations - P``.
"""
from __future__ import annotations

import dataclasses
import functools
import os
import random
from operator import attrgetter
from pathlib import Path
from typing import Any, Callable, Hashable, Iterable, Optional, Sequence

from deap import tools

from ..algorithms import evaluate_invalid, restore_halloffame, restore_state
from ..augment import Augment
from ..controller import GenomeLayout, MutationController, init_layout, mut_layout
from ..data import Dataset, stratified_subset
from ..fitness import TrainEvaluator
from ..options import flag
from ..safefiles import child, files, folder, refuse_link
from ..spaces import nasnet, nb201
from ..training import Recipe
from .renas_options import METHOD, Options, first_evaluations  # noqa: F401 (re-exported)

#: Where a run directory keeps the individuals' weights (a trained search).
WEIGHTS = "weights"
#: Attributes that hold for one evaluation only (a clone must not carry its parent's).
_PER_EVALUATION = ("eval_seed", "inherit_from", "save_to", "epochs")


# -- the genome's layout and the mutation ------------------------------------------------------

def genome_layout(space: str, blocks: int = 5) -> GenomeLayout:
    """How the controller reads a genome of ``space``: nasnet cells of ``blocks`` blocks
    (:func:`deapnas.spaces.nasnet.layout`), or NAS-Bench-201 cells, six edges in one block (a
    mutation changes one edge, as the benchmark's own mutation does)."""
    if space == "nasnet":
        return nasnet.layout(blocks)
    if space == "nb201":
        return GenomeLayout.flat(nb201.OPS, len(nb201.EDGES))
    raise ValueError(f"renas searches the nasnet or nb201 space, not {space!r}")


def register_mutation(toolbox, layout: GenomeLayout, options: Options,
                      fitness_scale: float = 1.0) -> Optional[MutationController]:
    """Register ``options.mutation`` as ``toolbox.mutate``: the controller (also ``update``,
    ``state_dict`` and ``load_state_dict``, which :func:`renas` calls), returned; or random
    actions (:func:`~deapnas.controller.mut_layout`), None.

    :param fitness_scale: the fitness that means 100 % accuracy (100 for NAS-Bench-201's
        percentages).
    """
    if options.mutation == "random":
        toolbox.register("mutate", mut_layout, layout=layout)
        return None
    controller = MutationController(
        layout, embedding_size=options.controller_size, hidden_size=options.controller_size,
        temperature=options.temperature, tanh_constant=options.tanh_constant,
        entropy_weight=options.entropy_weight, lr=options.controller_lr,
        baseline_decay=options.baseline_decay, fitness_scale=fitness_scale)
    for name in ("mutate", "update", "state_dict", "load_state_dict"):
        toolbox.register(name, getattr(controller, name))
    return controller


def initial_population(individual: Callable[[list], Sequence], layout: GenomeLayout,
                       size: int, seed: int) -> list:
    """The first population: ``size`` random genomes of ``layout``
    (:func:`~deapnas.controller.init_layout`) drawn from a stream of their own, seeded by the
    run's ``seed``. Nothing else draws from it, so the population does not depend on what was
    drawn before (the controller's seed, for instance): ``--mutation controller`` and
    ``--mutation random`` with one ``--seed`` start from the same population."""
    stream = random.Random(f"renas initial population {seed}")
    return [init_layout(individual, layout, stream) for _ in range(size)]


# -- weights -----------------------------------------------------------------------------------

class WeightFiles:
    """The trained weights of a run's individuals, one file per evaluation in ``directory``
    (made when the first file is written).

    Each evaluation writes its network's weights to a new file named by the individual's birth
    number (``individual.save_to``, written by the evaluator); a child starts from its
    parent's file (``inherit_from``) and trains ``finetune_epochs`` (paper: one pass over the
    training data). A file is never overwritten with other weights, so the paths in a
    checkpoint stay valid: a resumed run's children inherit exactly the weights they would have
    inherited. Files of individuals that left the population are deleted by :meth:`prune`
    (call it once a checkpoint that no longer holds them is on disk) or :meth:`release`. The
    directory must be reachable by every evaluation worker (paths travel on the individuals).
    """

    def __init__(self, directory: str | os.PathLike, finetune_epochs: int = 1):
        if finetune_epochs < 1:
            raise ValueError(f"finetune_epochs must be at least 1, not {finetune_epochs}")
        self.directory = refuse_link(os.path.abspath(directory))  # files are deleted there
        self.finetune_epochs = finetune_epochs

    def path(self, number: int) -> str:
        """The weights file of the individual born ``number``-th."""
        return os.fspath(self.directory / f"{number:06d}.pt")

    def attach(self, individual, number: int, parent: Any = None) -> None:
        """Set where ``individual`` saves its weights and, when ``parent`` has weights (it was
        trained without failing), where it starts from and how long it is fine-tuned."""
        individual.save_to = self.path(number)
        if parent is not None and self.has_weights(parent):
            individual.inherit_from = parent.save_to
            individual.epochs = self.finetune_epochs

    def adopt(self, individuals: Iterable) -> None:
        """Point the individuals' weights files into this directory (a run directory resumed
        from another place or working directory names its files where they are now)."""
        for individual in individuals:
            if getattr(individual, "save_to", None):
                individual.save_to = os.fspath(child(self.directory, Path(individual.save_to).name,
                                                     "a weights file"))

    def files(self, individuals: Iterable) -> list[Path]:
        """The weights files of ``individuals`` that were trained and saved their weights (what
        a checkpoint of them needs, a ``journal.state_files`` callback's answer)."""
        return sorted(Path(ind.save_to) for ind in individuals if self.has_weights(ind))

    def prune(self, keep: Iterable) -> list[Path]:
        """Delete every weights file that no individual of ``keep`` saved; the files deleted."""
        kept = {Path(ind.save_to).name for ind in keep if getattr(ind, "save_to", None)}
        stale = [p for p in files(self.directory, "*.pt") if p.name not in kept]
        for path in stale:
            path.unlink(missing_ok=True)
        return stale

    @staticmethod
    def has_weights(individual) -> bool:
        """Whether ``individual`` was trained and saved its weights."""
        return (getattr(individual, "save_to", None) is not None and individual.fitness.valid
                and getattr(individual, "info", {}).get("reason") is None)

    @staticmethod
    def release(individual) -> None:
        """Delete the weights file of an individual that left the population (if any)."""
        if getattr(individual, "save_to", None):
            Path(individual.save_to).unlink(missing_ok=True)


# -- the loop ----------------------------------------------------------------------------------

def renas(population: list, toolbox, steps: int, sample_size: int,
          weights: Optional[WeightFiles] = None, stats: Optional[tools.Statistics] = None,
          halloffame: Optional[tools.HallOfFame] = None, verbose: bool = __debug__,
          journal=None, key: Optional[Callable[[Any], Hashable]] = None
          ) -> tuple[list, tools.Logbook]:
    """RENAS's evolution (Chen et al., 2019, Algorithm 1).

    Toolbox aliases: ``mutate``, ``clone``, ``evaluate``, ``map``; ``update`` when registered
    (called with each scored child: the mutation controller learns from it); ``state_dict`` /
    ``load_state_dict`` when registered (the state of a learned operator, checkpointed with the
    loop's under ``operators``).

    ::

        evaluate the population
        repeat steps times:
            S <- sample_size individuals drawn at random from the population
            parent, worst <- the best and the worst of S
            remove worst from the population
            child <- mutate(clone(parent)), starting from parent's weights
            evaluate child (fine-tune, score on the validation split); update([child])
            add child to the population

    With ``weights`` (a :class:`WeightFiles`), every evaluation saves its trained weights and
    a child inherits its parent's, fine-tuned for the store's ``finetune_epochs``; the
    evaluator trains the parameters it did not inherit at ``new_lr_factor`` times its learning
    rate (:class:`~deapnas.fitness.TrainEvaluator` with ``lr=0.001, new_lr_factor=10``).
    Without, each child trains from scratch for the evaluator's epochs (tabular fitness needs
    no weights). Each evaluation gets a fresh ``eval_seed``
    (:func:`~deapnas.algorithms.evaluate_invalid`).

    The weights file of a dead individual is deleted at once without a ``journal``; with one,
    the loop deletes nothing, so that no checkpoint ever names a deleted file: :func:`evolve`
    deletes them once a checkpoint is on disk.

    :param steps: children made (the paper's #E).
    :param sample_size: S, at least 2 (the paper leaves it open).
    :param key: the architecture of an individual (a space's ``key``); with it, each logbook
        record holds ``distinct``, the number of distinct architectures in the population
        (:func:`distinct`), which tells a population that improves from one that collapses
        onto a few architectures.
    :returns: the final population and the logbook (one record per step, step 0 being the
        initial population; ``stats`` are compiled on the population). State handed to the
        journal: ``population``, ``logbook``, ``halloffame``, ``born`` (individuals made so
        far, which numbers the weights files) and ``operators``.
    """
    logbook = tools.Logbook()
    logbook.header = (["step", "nevals"] + (["distinct"] if key else [])
                      + (stats.fields if stats else []))
    saved = restore_state(journal, toolbox)
    if saved is None:
        for number, individual in enumerate(population):
            _prepare(individual, number, weights)
        born = len(population)
    else:
        population, logbook, born = saved["population"], saved["logbook"], saved["born"]
        restore_halloffame(halloffame, saved)
        if hasattr(toolbox, "load_state_dict"):
            toolbox.load_state_dict(saved["operators"])
        if weights is not None:
            weights.adopt(population)
    population = list(population)
    if not 2 <= sample_size <= len(population):
        raise ValueError(f"sample_size must lie in [2, {len(population)}] (the population "
                         f"size): the best and the worst of a sample must differ, "
                         f"not {sample_size}")

    if not logbook:  # the first population is not evaluated yet
        if not _checkpoint(journal, toolbox, population, logbook, halloffame, born):
            return population, logbook
        nevals = evaluate_invalid(population, toolbox)
        _record(logbook, population, stats, halloffame, population, verbose, key, step=0,
                nevals=nevals)

    step = logbook[-1]["step"]
    while step < steps and _checkpoint(journal, toolbox, population, logbook, halloffame, born):
        ranked = sorted(random.sample(population, sample_size), key=attrgetter("fitness"))
        worst, parent = ranked[0], ranked[-1]
        population = [ind for ind in population if ind is not worst]
        child = toolbox.mutate(toolbox.clone(parent))[0]
        del child.fitness.values
        _prepare(child, born, weights, parent)
        born += 1
        evaluate_invalid([child], toolbox)
        population.append(child)
        if weights is not None and journal is None:
            weights.release(worst)
        step += 1
        _record(logbook, population, stats, halloffame, [child], verbose, key, step=step,
                nevals=1)
    return population, logbook


def _prepare(individual, number: int, weights: Optional[WeightFiles], parent: Any = None
             ) -> None:
    """Ready ``individual`` for a new evaluation: nothing of an earlier one (a clone carries
    its parent's seed and files), and with ``weights`` the files it saves and inherits."""
    for name in _PER_EVALUATION:
        vars(individual).pop(name, None)
    if weights is not None:
        weights.attach(individual, number, parent)


def _checkpoint(journal, toolbox, population, logbook, halloffame, born: int) -> bool:
    """Hand the loop's state to the journal; whether the search may go on."""
    if journal is None:
        return True
    state = dict(population=list(population), logbook=logbook,
                 halloffame=list(halloffame or []), born=born)
    if hasattr(toolbox, "state_dict"):
        state["operators"] = toolbox.state_dict()
    return journal.checkpoint(**state)


def _record(logbook, population, stats, halloffame, new: Iterable, verbose: bool,
            key: Optional[Callable[[Any], Hashable]], **fields) -> None:
    if halloffame is not None:
        halloffame.update(new)
    if key is not None:
        fields["distinct"] = distinct(population, key)
    logbook.record(**fields, **(stats.compile(population) if stats else {}))
    if verbose:
        print(logbook.stream)


def distinct(population: Iterable, key: Callable[[Any], Hashable]) -> int:
    """The number of distinct architectures in ``population``: individuals with equal
    ``key`` (a space's :attr:`~deapnas.spaces.Space.key`) count once."""
    return len({key(individual) for individual in population})


def retrain_population(population: Iterable, toolbox, epochs: Optional[int] = None
                       ) -> tuple[Any, list]:
    """The paper's final step (§4.3): retrain every member of the final population from
    scratch (no inherited weights, a fresh ``eval_seed``) with ``toolbox.evaluate`` and take
    the one with the best fitness, which is measured on the validation split.

    :param epochs: training epochs of each (default: the evaluator's own).
    :returns: ``(best, retrained)``, the retrained clones carrying their new fitness.
    """
    retrained = [toolbox.clone(ind) for ind in population]
    for individual in retrained:
        del individual.fitness.values
        vars(individual).pop("mutation", None)
        _prepare(individual, 0, None)
        if epochs is not None:
            individual.epochs = epochs
    evaluate_invalid(retrained, toolbox)
    return max(retrained, key=attrgetter("fitness")), retrained


# -- the method --------------------------------------------------------------------------------

def evolve(population: list, toolbox, options: Options, steps: int,
           weights: Optional[WeightFiles] = None, stats: Optional[tools.Statistics] = None,
           halloffame: Optional[tools.HallOfFame] = None, verbose: bool = __debug__,
           journal=None, key: Optional[Callable[[Any], Hashable]] = None
           ) -> tuple[Any, list, tools.Logbook]:
    """The whole method: :func:`renas` for ``steps`` children, then, in a trained search
    (``weights``) that made them all, :func:`retrain_population`.

    With a :class:`~deapnas.journal.Journal`, each checkpoint records the SHA-256 of the
    population's weights files (``journal.state_files``: a resumed run refuses a file deleted,
    swapped or edited), and the weights files of dead individuals are deleted each time a
    checkpoint is on disk (``journal.after_write``); once the loop is over, all but the final
    population's (the evaluations after the last checkpoint are replayed on resume, never
    redone).

    ``key`` goes to :func:`renas` (the ``distinct`` architectures in the logbook).

    :returns: ``(best, population, logbook)``: the retrained best, or None when nothing was
        retrained (tabular fitness, a search stopped early, or every retraining failed).
    """
    if weights is not None and journal is not None:
        journal.state_files.append(lambda state: weights.files(state["population"]))
        journal.after_write.append(lambda state: weights.prune(state["population"]))
    population, logbook = renas(population, toolbox, steps, options.sample_size, weights,
                                stats=stats, halloffame=halloffame, verbose=verbose,
                                journal=journal, key=key)
    if weights is None or not logbook or logbook[-1]["step"] < steps:
        return None, population, logbook
    weights.prune(population)
    best, _ = retrain_population(population, toolbox)
    return (best if best.info.get("reason") is None else None), population, logbook


def search_data(data: Dataset, options: Options, seed: int = 0) -> Dataset:
    """The data candidates train on: ``options.train_per_class`` training images per class
    when set (a stratified subset), all of them otherwise; the validation split is whole."""
    if not options.train_per_class:
        return data
    chosen = stratified_subset(data.train.y, options.train_per_class, seed,
                               name=flag("train_per_class"))
    return dataclasses.replace(data, train=data.train.subset(chosen))


def inheritance_rates(options: Options) -> dict[str, float]:
    """The :class:`~deapnas.fitness.TrainEvaluator` keywords of RENAS's learning rates: a
    child's inherited parameters at ``lr / new_lr_factor``, every other parameter at ``lr``
    (paper: 0.001 and 0.01)."""
    return {"lr": options.lr / options.new_lr_factor, "new_lr_factor": options.new_lr_factor}


def search_augment(options: Options) -> Optional[Augment]:
    """The augmentation of the search's training with ``--search-augment``: random crops
    (``crop_padding``) and horizontal flips (unless ``no_flip``), as the paper trains during
    the search (§5.1.1; Cutout is for the final network only); None without."""
    if not options.search_augment:
        return None
    return Augment(crop_padding=options.crop_padding, flip=not options.no_flip)


def search_training(options: Options) -> dict[str, Any]:
    """The :class:`~deapnas.fitness.TrainEvaluator` keywords of the search's training beyond
    the shared training options: the learning rates of :func:`inheritance_rates` and the
    augmentation of :func:`search_augment`."""
    return {**inheritance_rates(options), "augment": search_augment(options)}


def evaluator(run):
    """The run's fitness: a table look-up, or training on :func:`search_data` as
    :func:`search_training` says."""
    if run.config.tabular:
        return run.default_evaluator()
    data = search_data(run.data, run.options, run.config.seed)
    return run.default_evaluator(data, **search_training(run.options))


def search(run) -> tools.Logbook:
    """RENAS over ``run.config.evaluations`` evaluations: the first population, the children,
    and for a trained search the final retraining of the population, whose best is the pick
    (:func:`pick`)."""
    options, config = run.options, run.config
    layout = genome_layout(run.space.name, options.blocks)
    toolbox = run.toolbox()
    register_mutation(toolbox, layout, options, fitness_scale=100.0 if config.tabular else 1.0)
    weights = (None if config.tabular else
               WeightFiles(folder(run.directory, WEIGHTS), options.finetune_epochs))
    best, _, logbook = evolve(
        initial_population(run.individual, layout, options.population, config.seed), toolbox,
        options, config.evaluations - first_evaluations(options.population, config.tabular),
        weights, stats=run.stats, halloffame=run.halloffame, verbose=False, journal=run.journal,
        key=run.space.key)
    if best is not None:
        run.result = {**run.space.describe(best), "fitness": list(best.fitness.values),
                      "info": best.info}
    return logbook


def final_evaluator(options: Options, data: Dataset, device: str = "auto", seed: int = 0,
                    epochs: Optional[int] = None, channels: Optional[int] = None
                    ) -> TrainEvaluator:
    """The paper's final network (§5.1-5.2.1): the cell at N = ``final_cells``, F =
    ``final_channels`` (or ``channels``), with the auxiliary classifier and dropout before the
    classifier, trained from scratch with SGD (momentum 0.9) for ``final_epochs`` (or
    ``epochs``) with crops, flips, Cutout and drop-path; one cosine cycle where the paper uses
    cosine restarts (whose period it does not give)."""
    augment = Augment(crop_padding=options.crop_padding, flip=not options.no_flip,
                      cutout=options.cutout)
    recipe = Recipe(epochs=epochs or options.final_epochs, batch_size=options.final_batch_size,
                    optimizer="sgd", lr=options.final_lr, momentum=0.9,
                    weight_decay=options.weight_decay, schedule="cosine", augment=augment,
                    auxiliary_weight=options.auxiliary_weight, drop_path=options.drop_path)
    build = functools.partial(nasnet.build_network, channels=channels or options.final_channels,
                              cells_per_stage=options.final_cells,
                              stem_multiplier=options.stem_multiplier,
                              auxiliary=options.auxiliary_weight > 0,
                              dropout=options.final_dropout)
    return TrainEvaluator(build, data, recipe=recipe, device=device, seed=seed)


def pick(run) -> Optional[dict]:
    """The best of the final population retrained from scratch (the paper's pick) in a trained
    search; the best single evaluation in a tabular one (retraining changes no table entry), or
    when the search stopped early (``--time-limit``) or every retraining failed."""
    if run.result is None:
        return run.best_record()
    return {**run.result, "chosen_by": "the best of the final population retrained from scratch"}
