"""EG-NAS: evolutionary-gradient architecture search (Cai, Chen, Liu, Ling & Lai, AAAI 2024).

Gradient descent trains the supernet's weights ω; an evolution strategy moves the architecture
weights α (Algorithm 1 of the paper)::

    α ← 1e-3 · N(0, I)                                    (DARTS' initialisation)
    for every epoch t:
        one pass of SGD on ω over the training half, at α
        if t is past the warm-up epochs:
            for n = 1..N:                                  (N samplings)
                x_n = α + σ_t · y,  y ~ N(0, I)            (or a fixed ``spread`` for σ_t)
                CMA-ES from x_n, population λ, for `iterations` generations (1); every candidate z
                is scored with the compound fitness f(α, z) (Eq. 7) on the same validation
                batches; x*_n = the best candidate seen (the set P, with the final mean)
            s = x*_n of highest validation accuracy (Eq. 9)
            α ← α + ξ · (s − α)                            (Eq. 8, see below)

The compound fitness (Eq. 6-7, minimised) of a candidate z against the current α::

    f = ζ · L − η · sim(α, z)   if the candidate is less accurate than α
    f = ζ · L + η · sim(α, z)   otherwise,          sim = (cos(α, z) + 1) / 2

where L is the cross-entropy on the scoring batches: a candidate that does worse than α is
pulled towards α, one that does at least as well is pushed away from it, towards diversity.

Where the paper is silent or cannot be followed literally, the choices are named parameters:

- ``iterations``: CMA-ES generations per sampling, 1 by default: the paper states that its α
  update costs N·λ evaluations per epoch ("a time complexity of N times λ"), and its search cost
  (0.1 GPU-days, as PC-DARTS) leaves room for no more; Algorithm 1's loop ``while k < λ``
  indexes the λ individuals z_k of one population, and the authors' code asks λ individuals
  and tells pycma once. With one generation, P holds that population's best and the mean
  m^1 recombined from its best half. More generations (λ would read the loop as generations)
  multiply the ES cost by their number; ``benchmarks/bench_supernet.py`` measures it.
- The update direction (``update``, :data:`~deapnas.options.ES_UPDATES`): the paper writes α ← α + ξ·s with s the
  chosen candidate itself (``literal``), which multiplies α by about 1 + ξ every epoch (the
  authors' code adds an ever-growing positive vector). By default (``convex``) s is read as the
  step from α to the chosen candidate, s − α: α moves the fraction ξ of the way there.
- ``bound``: every CMA-ES runs in the box [-bound, bound]^d (pycma's boundary handling) and
  starts clipped into it; since α starts inside the box and each convex update is a convex
  combination of α and a point of the box, α never leaves it (the literal update leaves it).
- ``sigma``, ``sigma_min``: σ_t, the initial CMA-ES step size, is ``max(sigma / (1 + e),
  sigma_min)`` at the e-th ES step (e = 0, 1, ...): the schedule the authors' code intended
  (1/(epoch + 1), at least 0.02) but never applied. The N starting points spread around α by
  σ_t too (the paper's x_n = α + σ·y), or by ``spread`` when it is given (the authors' code
  starts from α + 0.01·y).
- ``batches``, ``batch_size`` (of :class:`SupernetEvaluator`): which validation images score
  the candidates. Each ES step draws ``batches`` x ``batch_size`` images of the validation
  split from the run's seed; α and every candidate of that step are scored on exactly these,
  so their fitnesses compare (default: one batch of 256, the search batch size).
- The direction is chosen by the accuracy on those same scoring images (ties: lower fitness).
- Random streams: every sampling draws its start and its CMA-ES samples from streams derived
  from ``(seed, epoch, n)``; pycma gets its own ``randn`` from such a stream (and no ``seed``:
  pycma would reseed NumPy's global generator with it), so NumPy's global generator is never
  reseeded or drawn from, and the N samplings differ.
- sim follows Eq. 6 (1 for vectors pointing the same way); the paper's prose says the
  opposite ("when L2 tends to 0 ... the two architectures are similar"), and its own cases
  only make sense with the formula.
- The weight training (:data:`SEARCH_RECIPE`) is PC-DARTS', the supernet EG-NAS builds on.
- A CMA-ES also ends early when pycma's own termination criteria fire (flat fitness...).
- Batch normalisation in the supernets uses batch statistics only (see :mod:`deapnas.supernet`).

The ES is written with DEAP's ``generate``/``update`` strategy interface (:class:`CMASampling`),
so ``deap.algorithms.eaGenerateUpdate`` drives one sampling as well as :func:`egnas` does. The
method ``deapnas search --algorithm egnas`` is :mod:`deapnas.methods.egnas`.
"""
from __future__ import annotations

import functools
import math
from operator import attrgetter
from typing import Any, Callable, Iterator, Optional, Sequence

import cma
import numpy as np
import torch
from deap import base, tools
from threadpoolctl import ThreadpoolController
from torch import nn

from .algorithms import evaluate_invalid, restore_state
from .data import Split
from .fitness import Evaluation, TableEvaluator, failed, failure, out_of_memory
from .individuals import individual_class
from .journal import TimeUp
from .options import ES_UPDATES
from .supernet import SupernetTraining, derive_nb201
from .training import Recipe

#: A candidate α: a list of floats with a minimised fitness.
Candidate = individual_class(list, (-1.0,))

#: The weight training of the search (PC-DARTS, whose supernet and batch size EG-NAS uses; the
#: paper gives 50 epochs and batch 256): SGD, lr 0.1 cosine-annealed to 0, momentum 0.9,
#: weight decay 3e-4, gradients clipped to norm 5.
SEARCH_RECIPE = Recipe(epochs=50, batch_size=256, optimizer="sgd", lr=0.1, momentum=0.9,
                       weight_decay=3e-4, schedule="cosine", min_lr=0.0, grad_clip=5.0)

_INIT, _SCORING, _START, _CMA = range(4)  # the purposes of the derived random streams


def stream_seed(seed: int, *path: int) -> int:
    """A seed derived from the run's ``seed`` and a path of non-negative integers (purpose,
    epoch, sampling): distinct paths give independent streams."""
    return int(np.random.SeedSequence([seed, *path]).generate_state(1, np.uint64)[0] % 2**63)


def initial_alpha(size: int, seed: int = 0) -> np.ndarray:
    """DARTS' initial architecture weights, 1e-3 · N(0, I), from the run's ``seed``."""
    return 1e-3 * np.random.default_rng(stream_seed(seed, _INIT)).standard_normal(size)


# -- the compound fitness -------------------------------------------------------------------------

def similarity(alpha: Sequence[float], z: Sequence[float]) -> float:
    """L2 of the paper: (cos(α, z) + 1) / 2, in [0, 1] (0.5 when either vector is zero)."""
    alpha, z = np.asarray(alpha, dtype=np.float64), np.asarray(z, dtype=np.float64)
    norms = math.sqrt((alpha @ alpha) * (z @ z))
    return float((alpha @ z / norms + 1) / 2) if norms > 0 else 0.5


def compound_fitness(loss: float, accuracy: float, candidate: Sequence[float],
                     reference: Optional[Sequence[float]], reference_accuracy: float,
                     zeta: float = 1.0, eta: float = 0.4) -> float:
    """Eq. 7: ζ·L − η·sim when the candidate is less accurate than the reference α, ζ·L + η·sim
    otherwise; just ζ·L without a reference (α scored itself)."""
    if reference is None:
        return zeta * loss
    sim = similarity(reference, candidate)
    return zeta * loss - eta * sim if reference_accuracy > accuracy else zeta * loss + eta * sim


def _scored(individual, loss: float, accuracy: float, zeta: float, eta: float,
            **info: Any) -> Evaluation:
    """The compound fitness of a candidate whose loss and accuracy were measured, with both
    recorded in the evaluation's info."""
    fitness = compound_fitness(loss, accuracy, individual, getattr(individual, "reference", None),
                               getattr(individual, "reference_accuracy", 0.0), zeta, eta)
    return Evaluation((fitness,), reason=None, loss=loss, accuracy=accuracy, **info)


class SupernetEvaluator:
    """``toolbox.evaluate`` of EG-NAS: the compound fitness of a candidate α, computed from one
    forward pass of the supernet (no copy of it) over the scoring images.

    :param supernet: a module called as ``supernet(x, alpha)``.
    :param data: the validation split (the half of the training data that ω never trains on).
    :param batches, batch_size: the scoring images: ``batches`` batches of ``batch_size``
        images drawn from ``data`` with the candidate's ``scoring_seed``.
    :param zeta, eta: ζ and η of Eq. 7 (paper: 1.0 and 0.4).

    Read from the candidate: ``scoring_seed`` (default 0), and ``reference`` (the current α)
    with ``reference_accuracy`` (its accuracy on the same images); without a reference the
    fitness is ζ·L. The info holds ``loss`` and ``accuracy`` (in [0, 1]).
    """

    def __init__(self, supernet: nn.Module, data: Split, batches: int = 1,
                 batch_size: int = 256, zeta: float = 1.0, eta: float = 0.4):
        if batches < 1 or batch_size < 1:
            raise ValueError(f"batches and batch_size must be at least 1, not {batches} and "
                             f"{batch_size}")
        self.supernet, self.data = supernet, data
        self.batches, self.batch_size, self.zeta, self.eta = batches, batch_size, zeta, eta
        self._scoring: tuple[Optional[int], Optional[Split]] = (None, None)

    def scoring_split(self, seed: int) -> Split:
        """The images that candidates with ``scoring_seed == seed`` are scored on."""
        if self._scoring[0] != seed:
            generator = torch.Generator(self.data.x.device).manual_seed(seed)
            order = torch.randperm(len(self.data), device=self.data.x.device,
                                   generator=generator)
            self._scoring = (seed, self.data.subset(order[:self.batches * self.batch_size]))
        return self._scoring[1]

    def __call__(self, individual) -> Evaluation:
        try:
            loss, accuracy = self.measure(individual)
        except RuntimeError as error:  # a candidate that runs out of memory fails alone
            return out_of_memory(error, individual, accuracy=0.0)
        if not math.isfinite(loss):
            return failure("non-finite validation loss", individual, accuracy=0.0)
        return _scored(individual, loss, accuracy, self.zeta, self.eta)

    @torch.no_grad()
    def measure(self, individual) -> tuple[float, float]:
        """``(mean cross-entropy, accuracy)`` of the supernet at the candidate's α on its
        scoring images."""
        split = self.scoring_split(getattr(individual, "scoring_seed", 0))
        device = split.x.device
        alpha = torch.as_tensor(np.asarray(individual, dtype=np.float32), device=device)
        self.supernet.eval()
        loss = torch.zeros((), device=device)
        correct = torch.zeros((), dtype=torch.long, device=device)
        for start in range(0, len(split), self.batch_size):
            x, y = split.x[start:start + self.batch_size], split.y[start:start + self.batch_size]
            logits = self.supernet(x, alpha)
            loss += nn.functional.cross_entropy(logits, y, reduction="sum")
            correct += (logits.argmax(1) == y).sum()
        return loss.item() / len(split), correct.item() / len(split)


class TableScorer:
    """``toolbox.evaluate`` of the table-only mode: the candidate's architecture, derived from
    α (argmax per edge for NAS-Bench-201), is looked up in a benchmark table instead of being
    scored by a supernet. The table has no cross-entropy: L is the validation error,
    1 − accuracy, with the accuracy of ``table.metric`` (percent in the table, a fraction
    here). The ``table.report`` columns and the architecture's key are kept in the info."""

    def __init__(self, table: TableEvaluator, derive: Callable[[np.ndarray], Any] = derive_nb201,
                 zeta: float = 1.0, eta: float = 0.4):
        self.table, self.derive, self.zeta, self.eta = table, derive, zeta, eta

    def __call__(self, individual) -> Evaluation:
        architecture = self.derive(np.asarray(individual, dtype=np.float64))
        row = self.table(architecture)
        if failed(row):
            return failure(row.info["reason"], individual, accuracy=0.0)
        accuracy = row[0] / 100
        report = {column: row.info[column] for column in self.table.report}
        return _scored(individual, 1 - accuracy, accuracy, self.zeta, self.eta,
                       architecture=self.table.key(architecture), **report)


# -- one sampling: a CMA-ES as a DEAP strategy ----------------------------------------------------

@functools.cache
def _blas() -> ThreadpoolController:
    return ThreadpoolController()


class CMASampling:
    """One sampling of Algorithm 1: a ``cma.CMAEvolutionStrategy`` started at ``centroid``
    (clipped into the box) with step size ``sigma`` and population ``popsize``, in the box
    [-bound, bound]^d, drawing its samples from its own stream seeded with ``seed``.

    DEAP's strategy interface: ``generate(ind_init)`` returns the next population,
    ``update(population)`` tells pycma their fitnesses (minimised). The state is data: the
    start, sigma, seed and the fitnesses told so far (:meth:`state`); :meth:`replay` brings a
    fresh sampling to the same state by telling them again (sampling is deterministic given the
    stream), which needs no evaluation. :attr:`done` turns true after ``iterations``
    generations (see the module's docs for the default of 1).

    pycma's linear algebra runs on one BLAS thread: a CMA-ES in a few hundred dimensions gains
    nothing from more, and a multithreaded OpenBLAS on a busy machine made the eigendecomposition
    of a 224 x 224 covariance 35 times slower (1 s instead of 28 ms, measured on 2 shared cores).
    """

    def __init__(self, centroid: Sequence[float], sigma: float, seed: int, popsize: int = 50,
                 iterations: int = 1, bound: float = 3.0):
        if popsize < 2 or iterations < 1 or sigma <= 0 or bound <= 0:
            raise ValueError(f"CMA-ES needs popsize >= 2, iterations >= 1, sigma > 0 and "
                             f"bound > 0, not {popsize}, {iterations}, {sigma} and {bound}")
        self.centroid = np.clip(np.asarray(centroid, dtype=np.float64), -bound, bound)
        self.sigma, self.seed, self.popsize = float(sigma), int(seed), popsize
        self.iterations = iterations
        stream = np.random.default_rng(self.seed)
        self.es = cma.CMAEvolutionStrategy(self.centroid, self.sigma, {
            "popsize": popsize, "bounds": [-bound, bound], "verbose": -9, "seed": math.nan,
            "randn": lambda *shape: stream.standard_normal(shape)})
        self.told: list[list[float]] = []

    @property
    def done(self) -> bool:
        """Whether the sampling has run its iterations (or pycma says it should stop)."""
        return len(self.told) >= self.iterations or bool(self.es.stop())

    def generate(self, ind_init: Callable[[list], Any]) -> list:
        """The next population, each vector made an individual by ``ind_init``."""
        with _blas().limit(limits=1, user_api="blas"):
            return [ind_init(x.tolist()) for x in self.es.ask()]

    def update(self, population: Sequence) -> None:
        """Tell pycma the fitnesses of the population :meth:`generate` returned last."""
        values = [ind.fitness.values[0] for ind in population]
        with _blas().limit(limits=1, user_api="blas"):
            self.es.tell([np.asarray(ind, dtype=np.float64) for ind in population], values)
        self.told.append(values)

    def mean(self, ind_init: Callable[[list], Any]) -> Any:
        """The distribution's current mean (in the box) as an individual: the m^t of P."""
        return ind_init(self.es.result.xfavorite.tolist())

    def state(self) -> dict:
        """The sampling as arrays and numbers."""
        return {"centroid": self.centroid, "sigma": self.sigma, "seed": self.seed,
                "told": np.asarray(self.told, dtype=np.float64).reshape(-1, self.popsize)}

    def replay(self, told: np.ndarray) -> None:
        """Tell a fresh sampling the fitnesses of ``told`` (one row per generation)."""
        with _blas().limit(limits=1, user_api="blas"):
            for row in np.asarray(told, dtype=np.float64):
                self.es.tell(self.es.ask(), row.tolist())
                self.told.append(row.tolist())


def es_toolbox(evaluate: Callable, popsize: int = 50, iterations: int = 1,
               bound: float = 3.0) -> base.Toolbox:
    """A toolbox for :func:`egnas`: ``evaluate``, the in-process ``map``, and ``strategy``
    making a :class:`CMASampling` of population λ = ``popsize`` (paper: 50)."""
    toolbox = base.Toolbox()
    toolbox.register("evaluate", evaluate)
    toolbox.register("strategy", CMASampling, popsize=popsize, iterations=iterations,
                     bound=bound)
    return toolbox


# -- the search -----------------------------------------------------------------------------------

def egnas(supernet: Optional[SupernetTraining], toolbox: base.Toolbox, epochs: int,
          warmup: int = 15, samplings: int = 5, step_size: float = 0.6, sigma: float = 1.0,
          sigma_min: float = 0.02, seed: int = 0, alpha: Optional[np.ndarray] = None,
          stats: Optional[tools.Statistics] = None, verbose: bool = __debug__, journal=None,
          spread: Optional[float] = None, update: str = "convex"
          ) -> tuple[np.ndarray, tools.Logbook]:
    """EG-NAS (Algorithm 1): ``epochs`` epochs, the first ``warmup`` of weight training only,
    each later one a pass of weight training and an ES step of ``samplings`` CMA-ES runs, then
    α ← α + ``step_size`` · (s − α) (``update``, :data:`~deapnas.options.ES_UPDATES`). Paper: 50 epochs, 15 of
    warm-up, N = 5, ξ = 0.6.

    :param supernet: the supernet and its weight training (:class:`SupernetTraining`); None
        for the table-only mode, where no weights are trained (``warmup`` must be 0 and
        ``alpha`` given).
    :param sigma, sigma_min: σ at the first ES step and its floor (σ_e = max(σ/(1+e), min)),
        each CMA-ES's initial step size.
    :param spread: the spread of the samplings' starts around α, x_n = α + spread · y
        (default: σ_e, the paper's x_n = α + σ·y; the authors' code uses 0.01).
    :param update: how α moves towards the chosen direction s (:data:`~deapnas.options.ES_UPDATES`).
    :param seed: the root of every random stream of the search (α's initialisation, the
        scoring images, the samplings).
    :param alpha: the initial α (default: :func:`initial_alpha` for the supernet's layout).
    :param stats: compiled over the N directions of each ES step.
    :param journal: checkpoints (the state is listed below); a resumed search continues
        after the last finished CMA-ES generation.
    :returns: the final α and the logbook (one record per epoch: ``loss`` of the weight
        training, ``nevals``, the accuracy of α (``reference``) and of the chosen direction
        (``accuracy``) on the step's scoring images, ``sigma``, ``alpha_max``, the largest ``|α|``).

    The state handed to ``journal.checkpoint``: ``alpha`` (array), ``epoch`` (epochs
    finished), ``logbook``, ``weights`` (:meth:`SupernetTraining.state_dict`: ω, optimizer,
    schedule, shuffling generator; empty in the table-only mode) and ``es``, the ES step in
    progress (None between epochs): the epoch's ``loss`` and ``nevals``, α's own score
    (``reference``), the finished samplings' best candidates (``directions``) and the sampling
    under way (``sampling``: the fitnesses told to its CMA-ES, one row per generation, and its
    best candidate so far), each candidate as ``{"vector", "fitness", "accuracy"}``. The
    samplings' starts and streams are derived from ``seed``, so no generator state is needed.

    Toolbox aliases: ``toolbox.strategy(centroid, sigma, seed)`` makes the ES of one sampling
    (with ``generate``/``update``, e.g. :class:`CMASampling`); ``toolbox.evaluate`` scores a
    :data:`Candidate` (its ``reference``, ``reference_accuracy`` and ``scoring_seed`` set by
    the loop); ``toolbox.map`` maps it over each population. Candidates are scored with
    :func:`~deapnas.algorithms.evaluate_invalid`, which calls a registered ``toolbox.update``:
    register none (the samplings' strategies are told by the loop).
    """
    if update not in ES_UPDATES:
        raise ValueError(f"update must be one of {', '.join(ES_UPDATES)}, not {update!r}")
    if supernet is None and (warmup or alpha is None):
        raise ValueError("the table-only mode (supernet=None) trains no weights: pass "
                         "warmup=0 and the initial alpha")
    if supernet is not None and supernet.recipe.epochs != epochs:
        raise ValueError(f"the weight schedule spans recipe.epochs={supernet.recipe.epochs} "
                         f"but the search runs {epochs} epochs; make them equal")
    state = restore_state(journal, toolbox)
    if state is None:
        size = alpha.size if alpha is not None else supernet.supernet.layout.size
        start = initial_alpha(size, seed) if alpha is None else np.asarray(alpha, np.float64)
        state = {"alpha": start, "epoch": 0, "es": None, "logbook": _logbook(stats)}
    else:
        weights = state.pop("weights")
        if supernet is not None:
            supernet.load_state_dict(weights)
    logbook = state["logbook"]

    while state["epoch"] < epochs:
        if state["es"] is None:
            if not _checkpoint(journal, state, supernet):
                break
            loss = supernet.epoch(state["alpha"]) if supernet is not None else None
            if state["epoch"] < warmup:
                _end_epoch(state, verbose, loss=loss, nevals=0)
                continue
            state["es"] = {"loss": loss, "nevals": 0, "reference": None, "directions": [],
                           "sampling": None}
        es_index = state["epoch"] - warmup
        sigma_t = max(sigma / (1 + es_index), sigma_min)
        try:
            for _ in _es_step(state["es"], toolbox, state["alpha"], samplings, sigma_t,
                              spread or sigma_t, seed, state["epoch"]):
                if not _checkpoint(journal, state, supernet):
                    return state["alpha"], logbook
        except TimeUp:  # the journal's time limit, within a generation: α as it stands
            return state["alpha"], logbook
        _update_alpha(state, step_size, update, sigma_t, stats, verbose)
    return state["alpha"], logbook


def _logbook(stats: Optional[tools.Statistics]) -> tools.Logbook:
    logbook = tools.Logbook()
    logbook.header = ["epoch", "loss", "nevals", "reference", "accuracy", "sigma",
                      "alpha_max"] + (stats.fields if stats else [])
    return logbook


def _checkpoint(journal, state: dict, supernet: Optional[SupernetTraining]) -> bool:
    """Hand the state to the journal; whether the search may go on."""
    if journal is None:
        return True
    weights = supernet.state_dict() if supernet is not None else {}
    return journal.checkpoint(**state, weights=weights) is not False


def _end_epoch(state: dict, verbose: bool, **record: Any) -> None:
    state["epoch"] += 1
    state["es"] = None
    state["logbook"].record(epoch=state["epoch"], **record)
    if verbose:
        print(state["logbook"].stream)


def _es_step(progress: dict, toolbox, alpha: np.ndarray, samplings: int, sigma: float,
             spread: float, seed: int, epoch: int) -> Iterator[None]:
    """Run, or continue, the ES step whose progress is recorded in ``progress``: score α, then
    the N samplings, each from α + ``spread``·y with step size ``sigma`` to its best candidate
    (a direction). Yields at every safe point."""
    scoring = stream_seed(seed, _SCORING, epoch)
    if progress["reference"] is None:
        current = Candidate(alpha.tolist())
        progress["nevals"] += _evaluate(toolbox, [current], scoring_seed=scoring)
        progress["reference"] = _as_record(current)
        yield
    context = {"scoring_seed": scoring, "reference": alpha.tolist(),
               "reference_accuracy": progress["reference"]["accuracy"]}
    while len(progress["directions"]) < samplings:
        n = len(progress["directions"])
        y = np.random.default_rng(stream_seed(seed, _START, epoch, n)).standard_normal(alpha.size)
        strategy = toolbox.strategy(alpha + spread * y, sigma, stream_seed(seed, _CMA, epoch, n))
        saved = progress["sampling"] or {"told": np.zeros((0, 0)), "best": None}
        strategy.replay(saved["told"])
        best = _from_record(saved["best"])
        while not strategy.done:
            population = strategy.generate(Candidate)
            progress["nevals"] += _evaluate(toolbox, population, **context)
            strategy.update(population)
            best = _best(best, population)
            progress["sampling"] = {"told": strategy.state()["told"], "best": _as_record(best)}
            yield
        mean = strategy.mean(Candidate)
        progress["nevals"] += _evaluate(toolbox, [mean], **context)
        progress["directions"].append(_as_record(_best(best, [mean])))
        progress["sampling"] = None
        yield


def _evaluate(toolbox, individuals: list, **attributes: Any) -> int:
    """Give the (fresh, unscored) individuals ``attributes`` and score them with
    :func:`~deapnas.algorithms.evaluate_invalid`; the number scored."""
    for individual in individuals:
        vars(individual).update(attributes)
    return evaluate_invalid(individuals, toolbox)


def _best(best, population: Sequence):
    """The fittest of ``best`` (None at first) and ``population``."""
    return max([*population] + ([best] if best is not None else []), key=attrgetter("fitness"))


def _as_record(individual) -> dict:
    return {"vector": np.asarray(individual, dtype=np.float64),
            "fitness": individual.fitness.values[0],
            "accuracy": individual.info.get("accuracy", 0.0)}


def _from_record(record: Optional[dict]):
    if record is None:
        return None
    individual = Candidate(record["vector"].tolist())
    individual.fitness.values = (record["fitness"],)
    individual.info = {"accuracy": record["accuracy"]}
    return individual


def _update_alpha(state: dict, step_size: float, update: str, sigma: float,
                  stats: Optional[tools.Statistics], verbose: bool) -> None:
    """Eq. 8-9: move α by ``step_size`` towards the most accurate direction s (``update``:
    ``convex``, by that fraction of s − α; ``literal``, by ``step_size``·s)."""
    progress = state["es"]
    usable = [d for d in progress["directions"] if math.isfinite(d["fitness"])]
    if usable:
        chosen = max(usable, key=lambda d: (d["accuracy"], -d["fitness"]))
        step = chosen["vector"] if update == "literal" else chosen["vector"] - state["alpha"]
        state["alpha"] = state["alpha"] + step_size * step
    directions = [_from_record(d) for d in progress["directions"]]
    _end_epoch(state, verbose, loss=progress["loss"], nevals=progress["nevals"],
               reference=progress["reference"]["accuracy"],
               accuracy=chosen["accuracy"] if usable else None, sigma=sigma,
               alpha_max=float(np.abs(state["alpha"]).max()),
               **(stats.compile(directions) if stats else {}))
