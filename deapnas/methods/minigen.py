"""MiniGen (Zhang, Ebadi & Jing, 2024, "MiniGen: Efficient Evolutionary Search for
Convolutional Neural Networks"): a genetic search that trains every network briefly on a
stratified mini dataset and selects on a score decayed by the network's age.

The pieces work in any DEAP script:

- :func:`generation_decay_score` and :func:`assign_scores`: the paper's performance score
  ps = mean(recorded accuracies) - decay x abs(current generation - birth generation)
  (eq. 1);
- :func:`sel_softmax`: parents drawn with probability softmax(ps) (eq. 2); :func:`sel_top_score`:
  the top k by ps;
- :class:`SmallModelEvaluator`: adds each network's accuracy-to-parameter ratio (Table III);
- :func:`ea_minigen`: the generational loop with elitism, the 25-generation restart rule and the
  stop rule (section III-C and IV-D);
- :func:`register_operators` and :func:`make_toolbox`: the paper's operators and selections
  registered in a toolbox;
- :data:`~deapnas.methods.minigen_options.METHOD`: ``deapnas search --algorithm minigen``, with
  :class:`~deapnas.methods.minigen_options.Options` (the paper's settings as defaults), the mini
  dataset saved in the run directory and :func:`pick_network`.

Accuracies are fractions in [0, 1] (the evaluators' unit), so the paper's thresholds 35 % and
40 % are 0.35 and 0.40 and its decay 0.01 is one percentage point per generation.
"""
from __future__ import annotations

import math
import random
import weakref
from dataclasses import dataclass, field, fields
from operator import attrgetter
from pathlib import Path
from statistics import fmean
from typing import Any, Callable, Optional, Sequence

from deap import base, tools

from ..algorithms import assign, restore_halloffame, restore_state, scores_by_architecture
from ..data import Dataset, mini_from_record, mini_record, save_mini_record
from ..fitness import Evaluation, failed
from ..options import flag
from ..spaces import minigen
from .minigen_options import (CHANNELS, FITNESS_NAME, METHOD, MINI_FILE,  # noqa: F401 (re-exported)
                              PAPER_GENERATIONS, PICKS, SEEDINGS, WINNER_RULES, Options)


# -- the performance score and the selections ---------------------------------------------------

def generation_decay_score(accuracies: Sequence[float], birth: int, generation: int,
                           decay: float = 0.01) -> float:
    """The paper's ps: the mean of a network's recorded accuracies less ``decay`` for each
    generation between its birth and ``generation`` (eq. 1); ``-inf`` with nothing recorded
    (a network whose every evaluation failed)."""
    if not accuracies:
        return -math.inf
    return fmean(accuracies) - decay * abs(generation - birth)


def assign_scores(individuals: Sequence, generation: int, decay: float = 0.01) -> None:
    """Set ``ind.score`` to :func:`generation_decay_score` of ``ind.accuracies`` and
    ``ind.birth`` at ``generation``, for the selections below to read."""
    for ind in individuals:
        ind.score = generation_decay_score(ind.accuracies, ind.birth, generation, decay)


def softmax_weights(scores: Sequence[float], temperature: float = 1.0) -> list[float]:
    """Unnormalised softmax(score / temperature), computed stably; ``-inf`` scores weigh 0,
    and equal weights are returned when every score is ``-inf``."""
    top = max(scores)
    if top == -math.inf:
        return [1.0] * len(scores)
    return [math.exp((s - top) / temperature) for s in scores]


def sel_softmax(individuals: Sequence, k: int, score: Callable[[Any], float] = attrgetter("score"),
                temperature: float = 1.0, replace: bool = True) -> list:
    """Draw ``k`` individuals with probability softmax(score) (the paper's eq. 2 with
    ``temperature`` 1). With ``replace=False`` the draws are distinct: each one is removed and
    the softmax renormalised over the rest."""
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, not {temperature}")
    pool = list(individuals)
    if not replace and k > len(pool):
        raise ValueError(f"cannot draw {k} distinct individuals from {len(pool)}; offer more "
                         f"(e.g. keep more survivors) or draw with replace=True")
    if replace:
        return random.choices(pool, softmax_weights([score(i) for i in pool], temperature), k=k)
    chosen = []
    for _ in range(k):
        weights = softmax_weights([score(i) for i in pool], temperature)
        chosen.append(pool.pop(random.choices(range(len(pool)), weights)[0]))
    return chosen


def sel_top_score(individuals: Sequence, k: int,
                  score: Callable[[Any], float] = attrgetter("score")) -> list:
    """The ``k`` individuals with the highest score, best first (MiniGen's elitism)."""
    return sorted(individuals, key=score, reverse=True)[:k]


# -- small models -------------------------------------------------------------------------------

class SmallModelEvaluator:
    """Wrap an evaluator that reports ``info["params"]`` (such as
    :class:`~deapnas.fitness.TrainEvaluator`) to record ``info["acc_to_param"]``, the accuracy
    per million parameters (the paper's Table III: 74.7 % at 0.9 M gives 0.83), and
    ``info["birth"]``, the generation of the round in which the network was born (its
    ``birth``, the paper's gen_x, when it has one). The fitness is the wrapped evaluator's: for
    a multi-objective search on (accuracy, parameters), make it
    ``TrainEvaluator(..., objectives=("accuracy", "params"))``.
    """

    def __init__(self, evaluate: Callable[[Any], tuple]):
        self.evaluate = evaluate

    def for_device(self, device: str) -> "SmallModelEvaluator":
        """The same wrapper around the inner evaluator's copy for ``device`` (pool workers)."""
        retarget = getattr(self.evaluate, "for_device", None)
        return self if retarget is None else SmallModelEvaluator(retarget(device))

    def __call__(self, individual) -> Evaluation:
        evaluation = self.evaluate(individual)
        info = dict(getattr(evaluation, "info", {}))
        if hasattr(individual, "birth"):
            info["birth"] = individual.birth
        if failed(evaluation):
            return Evaluation(tuple(evaluation), **{**info, "acc_to_param": None})
        params = info.get("params")
        if not params:
            raise ValueError("SmallModelEvaluator needs an evaluator that reports "
                             "info['params'], such as TrainEvaluator")
        info["acc_to_param"] = evaluation[0] / (params / 1e6)
        return Evaluation(tuple(evaluation), **info)


# -- the loop ------------------------------------------------------------------------------------

@dataclass
class MiniGenState:
    """What :func:`ea_minigen` checkpoints besides the hall of fame.

    ``generation`` is the generation within the current round (the one the decay counts; it
    returns to 0 at a restart); ``record`` maps ``"<architecture key>#<eval_seed>"`` to the
    fitness and measurements of its successful evaluation; ``winners`` are the distinct
    networks found above the winning accuracy. Birth generations and recorded accuracies travel
    on the individuals (``birth``, ``accuracies``).
    """

    population: list
    logbook: tools.Logbook
    generation: int = 0
    restarts: int = 0
    record: dict = field(default_factory=dict)
    winners: list = field(default_factory=list)


def ea_minigen(population: list, toolbox: base.Toolbox, generations: Optional[int],
               keep: int = 5, decay: float = 0.01, restart_period: int = 25,
               restart_threshold: float = 0.35, win_threshold: float = 0.40,
               wins_needed: int = 10, count_winners: str = "every", reuse_scores: bool = True,
               seeding: str = "encoding", stats: Optional[tools.Statistics] = None,
               halloffame: Optional[tools.HallOfFame] = None, winners: Optional[list] = None,
               verbose: bool = __debug__, journal=None) -> tuple[list, tools.Logbook]:
    """MiniGen's evolutionary loop (Zhang et al., 2024, sections III-C and IV-D)::

        evaluate the population (generation 0, every birth 0)
        until wins_needed distinct networks scored above win_threshold, or the budget:
            if the round has run restart_period generations:
                if the best mean accuracy > restart_threshold:
                    keep `keep` networks (select by ps), births reset to 0, breed the rest
                else:
                    a new random population
                the round restarts at generation 0
            else:
                survivors = select(population, keep) by ps at this generation
                children: two parents by softmax(ps) -> mate -> mutate, born next generation
            evaluate every member (survivors too, as in the paper), record its accuracy

    The score is the generation-decayed mean of each network's recorded accuracies, computed
    at selection time from ``ind.accuracies`` and ``ind.birth`` (:func:`assign_scores`); the
    first objective of the fitness is the accuracy.

    Survivors are scored again every generation. With ``reuse_scores`` (for a deterministic
    evaluator: ``TrainEvaluator(deterministic=True)``), a network whose architecture and
    ``eval_seed`` the run has trained before scores the same, so its evaluation is read from the
    run's record instead of retrained (a survivor, a child identical to an earlier network, two
    identical children of one generation); the logbook's ``nreused`` counts the trainings saved.
    With ``reuse_scores=False`` every member is retrained every generation and its recorded
    accuracies are averaged, as the paper does without determinism.

    :param generations: the budget in generations after the first (None: only the stop rule
        and the journal end the run).
    :param keep: survivors per generation, and networks kept at a restart (paper: 5 of 15).
    :param decay: ps's penalty per generation of age (paper: 0.01).
    :param restart_period: generations per round (paper: 25).
    :param restart_threshold: the best accuracy a round must exceed to keep its survivors
        (paper: 0.35).
    :param win_threshold, wins_needed: stop when this many distinct networks have a mean
        accuracy above the threshold (paper: 10 above 0.40).
    :param count_winners: which networks above ``win_threshold`` win: ``"every"`` member of a
        generation (the paper's text), or only the generation's ``"best"`` by mean accuracy
        (the authors' code).
    :param seeding: each network's ``eval_seed`` at birth: ``"encoding"`` derived from its
        architecture key (identical encodings train identically), ``"fixed"`` 0 for every
        network (the paper's one seed before every training; the evaluator's run seed still
        applies), ``"fresh"`` a random draw (deapnas's default for other loops).
    :param winners: a list that receives (clones of) the winning networks.
    :param journal: checkpoint hook (:func:`~deapnas.algorithms.restore_state`,
        ``checkpoint(**state)``), wrapping ``toolbox``; the state is :class:`MiniGenState`'s
        fields plus ``halloffame``.

    Toolbox aliases: ``evaluate``, ``map``, ``clone``, ``mate``, ``mutate``, ``select``
    (``select(individuals, k)``: the survivors), ``select_parents`` (``select_parents(
    survivors, 2)``: a child's parents), ``population`` (``population(n)``: a random restart),
    ``key`` (the architecture's identity), and ``update`` when present (called with the
    individuals just trained).

    Each network's ``birth`` is the generation of the round in which it was born (the paper's
    gen_x); the logbook's ``best_birth`` is the birth of the generation's best network by mean
    accuracy, ``best_mean`` its mean accuracy (the paper's Figs. 3 and 4 plot the two).

    :returns: the final population and the logbook (one record per generation).
    """
    saved = restore_state(journal, toolbox)
    state = (MiniGenState(list(population), _new_logbook(stats)) if saved is None else
             MiniGenState(**{f.name: saved[f.name] for f in fields(MiniGenState)}))
    size = len(state.population)
    _check_settings(size, keep, restart_period, wins_needed, seeding, count_winners)
    if saved is None:
        for ind in state.population:
            _newborn(ind, 0, toolbox, seeding)
    else:
        restore_halloffame(halloffame, saved)
    report = dict(toolbox=toolbox, reuse=reuse_scores, threshold=win_threshold,
                  count_winners=count_winners, stats=stats, halloffame=halloffame,
                  verbose=verbose)

    if not state.logbook and _checkpoint(journal, state, halloffame):
        _evaluate_generation(state, **report)
    while state.logbook and not _finished(state, generations, wins_needed):
        if not _checkpoint(journal, state, halloffame):
            break
        assign_scores(state.population, state.generation, decay)
        if state.generation == restart_period:
            _restart(state, toolbox, size, keep, restart_threshold, decay, seeding)
        else:
            state.generation += 1
            survivors = toolbox.select(state.population, keep)
            state.population = survivors + _breed(survivors, toolbox, size - keep,
                                                  state.generation, seeding)
        _evaluate_generation(state, **report)
    if winners is not None:
        winners.extend(state.winners)
    return state.population, state.logbook


def _check_settings(size: int, keep: int, restart_period: int, wins_needed: int,
                    seeding: str, count_winners: str) -> None:
    if not 1 <= keep < size:
        raise ValueError(f"keep must lie in [1, {size - 1}] for a population of {size}, "
                         f"not {keep}")
    if restart_period < 1 or wins_needed < 1:
        raise ValueError("restart_period and wins_needed must be at least 1")
    if seeding not in SEEDINGS:
        raise ValueError(f"seeding must be one of {', '.join(SEEDINGS)}, not {seeding!r}")
    if count_winners not in WINNER_RULES:
        raise ValueError(f"count_winners must be one of {', '.join(WINNER_RULES)}, not "
                         f"{count_winners!r}")


def _new_logbook(stats: Optional[tools.Statistics]) -> tools.Logbook:
    logbook = tools.Logbook()
    logbook.header = ["gen", "round_gen", "restarts", "nevals", "nreused", "nwinners",
                      "best_birth", "best_mean"] + \
        (stats.fields if stats else [])
    return logbook


def _newborn(ind, birth: int, toolbox: base.Toolbox, seeding: str) -> None:
    """Give a new network its birth generation, an empty record and its ``eval_seed``."""
    ind.birth, ind.accuracies = birth, []
    if seeding == "encoding":
        ind.eval_seed = minigen.network_seed(toolbox.key(ind))
    elif seeding == "fixed":
        ind.eval_seed = 0
    else:
        ind.eval_seed = random.getrandbits(31)


def _breed(survivors: list, toolbox: base.Toolbox, count: int, birth: int, seeding: str) -> list:
    """``count`` children, each the first offspring of two softmax-chosen parents, mutated."""
    children = []
    for _ in range(count):
        first, second = map(toolbox.clone, toolbox.select_parents(survivors, 2))
        child = toolbox.mutate(toolbox.mate(first, second)[0])[0]
        del child.fitness.values
        _newborn(child, birth, toolbox, seeding)
        children.append(child)
    return children


def _restart(state: MiniGenState, toolbox: base.Toolbox, size: int, keep: int,
             threshold: float, decay: float, seeding: str) -> None:
    """The end of a round: keep the best networks (births reset) if the round's best accuracy
    exceeds ``threshold``, else start from a random population."""
    best = max((fmean(ind.accuracies) for ind in state.population if ind.accuracies),
               default=-math.inf)
    state.restarts += 1
    state.generation = 0
    if best > threshold:
        survivors = toolbox.select(state.population, keep)
        for ind in survivors:
            ind.birth = 0
        assign_scores(survivors, 0, decay)
        state.population = survivors + _breed(survivors, toolbox, size - keep, 0, seeding)
    else:
        state.population = toolbox.population(n=size)
        for ind in state.population:
            _newborn(ind, 0, toolbox, seeding)


def _evaluate_generation(state: MiniGenState, toolbox: base.Toolbox, reuse: bool,
                         threshold: float, count_winners: str, stats, halloffame,
                         verbose: bool) -> None:
    """Score every member, collect the winners, log the generation."""
    trained, reused = _score(state.population, toolbox, state.record, reuse)
    scored = [ind for ind in state.population if ind.accuracies]
    best = max(scored, key=lambda ind: fmean(ind.accuracies), default=None)
    known = {toolbox.key(ind) for ind in state.winners}
    for ind in (scored if count_winners == "every" else [best] if best else []):
        if fmean(ind.accuracies) > threshold and toolbox.key(ind) not in known:
            known.add(toolbox.key(ind))
            state.winners.append(toolbox.clone(ind))
    if halloffame is not None:
        halloffame.update(state.population)
    state.logbook.record(gen=len(state.logbook), round_gen=state.generation,
                         restarts=state.restarts, nevals=trained, nreused=reused,
                         nwinners=len(state.winners), best_birth=best.birth if best else None,
                         best_mean=fmean(best.accuracies) if best else None,
                         **(stats.compile(state.population) if stats else {}))
    if verbose:
        print(state.logbook.stream)


def _score(population: list, toolbox: base.Toolbox, record: dict, reuse: bool
           ) -> tuple[int, int]:
    """Evaluate every member (look-ups in ``record`` when ``reuse``), append each success's
    accuracy to its record; the numbers of trainings run and saved."""
    entries = {id(ind): f"{toolbox.key(ind)}#{ind.eval_seed}" for ind in population}
    groups: dict = {}
    for ind in population:
        entry = entries[id(ind)]
        if reuse and entry in record:
            assign(ind, Evaluation(record[entry]["fitness"], **record[entry]["info"]))
        else:
            groups.setdefault(entry if reuse else id(ind), []).append(ind)
    trainees = [group[0] for group in groups.values()]
    for ind, evaluation in zip(trainees, toolbox.map(toolbox.evaluate, trainees)):
        assign(ind, evaluation)
        if not failed(evaluation):
            record[entries[id(ind)]] = {"fitness": list(evaluation), "info": dict(ind.info)}
    for group in groups.values():
        for twin in group[1:]:
            assign(twin, Evaluation(group[0].fitness.values, **group[0].info))
    if trainees and hasattr(toolbox, "update"):
        toolbox.update(trainees)
    for ind in population:
        if math.isfinite(ind.fitness.values[0]):
            ind.accuracies.append(ind.fitness.values[0])
    return len(trainees), len(population) - len(trainees)


def _finished(state: MiniGenState, generations: Optional[int], wins_needed: int) -> bool:
    return len(state.winners) >= wins_needed or (
        generations is not None and state.logbook[-1]["gen"] >= generations)


def _checkpoint(journal, state: MiniGenState, halloffame) -> bool:
    """Hand the state to the journal; False when the run must stop now."""
    if journal is None:
        return True
    return journal.checkpoint(**vars(state), halloffame=list(halloffame or []))


# -- the paper's toolbox --------------------------------------------------------------------------

def register_operators(toolbox: base.Toolbox, individual: type,
                       blocks: Sequence[int] = (1,) * 5,
                       channels: Sequence[int] = CHANNELS,
                       actions: tuple[int, int] = minigen.ACTIONS, p_channels: float = 0.3,
                       p_op: float = 0.5, p_actions: float = 0.2, indpb: float = 0.5,
                       temperature: float = 1.0, distinct_parents: bool = True,
                       initial: str = "authors") -> base.Toolbox:
    """Register on ``toolbox`` what :func:`ea_minigen` calls besides ``evaluate`` and ``map``:
    ``individual`` (random encodings of ``individual``, a MiniGen genome class with a fitness),
    ``population``, ``key``, and the paper's operators (P_c = 0.3, P_o = 0.5, P_b = 0.2,
    uniform crossover per cell) and selections: survivors by ps (:func:`sel_top_score`), or by
    ``tools.selNSGA2`` when the fitness has several objectives (accuracy first, e.g.
    (accuracy, parameters)); parents by softmax(ps), two distinct ones per child with
    ``distinct_parents`` (the paper's "two parent networks"; it does not say whether one
    network may be drawn twice). Random action lists (new encodings, P_b's regenerated
    lists) are drawn as ``initial`` says (:data:`~deapnas.methods.minigen_options.INITIAL_OPERATIONS`;
    the paper is silent, the authors' code leads with identity half the time). Returns
    ``toolbox``.
    """
    several = len(individual.fitness.weights) > 1
    toolbox.register("individual", minigen.init_genome, individual, blocks=blocks,
                     channels=channels, actions=actions, initial=initial)
    toolbox.register("population", tools.initRepeat, list, toolbox.individual)
    toolbox.register("key", minigen.key)
    toolbox.register("mate", minigen.mate, indpb=indpb)
    toolbox.register("mutate", minigen.mutate, p_channels=p_channels, p_op=p_op,
                     p_actions=p_actions, channels=channels, actions=actions, initial=initial)
    toolbox.register("select", tools.selNSGA2 if several else sel_top_score)
    toolbox.register("select_parents", sel_softmax, temperature=temperature,
                     replace=not distinct_parents)
    return toolbox


def make_toolbox(evaluate: Callable[[Any], tuple], weights: Sequence[float] = (1.0,),
                 **settings: Any) -> base.Toolbox:
    """A toolbox for :func:`ea_minigen`: :func:`register_operators` (``settings`` are its
    keywords) for MiniGen individuals with fitness ``weights``, and ``evaluate`` wrapped in
    :class:`SmallModelEvaluator`. For a multi-objective search pass ``weights=(1.0, -1.0)``
    with an evaluator returning (accuracy, parameters), and ``halloffame=tools.ParetoFront()``
    to the loop for the front."""
    toolbox = register_operators(base.Toolbox(), minigen.SPACE.individual(weights), **settings)
    toolbox.register("evaluate", SmallModelEvaluator(evaluate))
    return toolbox


# -- the method: deapnas search --algorithm minigen -------------------------------------------------


#: Each run's mini dataset record (:func:`~deapnas.data.mini_record`), drawn or read once: the
#: evaluator, made before the run directory exists, trains on it; :func:`search` saves it.
_MINI_RECORDS: "weakref.WeakKeyDictionary[Any, dict]" = weakref.WeakKeyDictionary()


def mini_data(run) -> Dataset:
    """The run's mini dataset: read back from the run directory (a resumed run) or from
    ``--mini-dataset``, else drawn from ``--seed``, once per run. Nothing is written here (the
    evaluator is made before the run directory exists); :func:`search` saves it."""
    return mini_from_record(run.data, _mini_record(run))


def _mini_record(run) -> dict:
    """:func:`~deapnas.data.mini_record` of the run's data with its options, read from its own
    file or ``--mini-dataset`` when there is one; drawn or read once per run."""
    if run not in _MINI_RECORDS:
        _MINI_RECORDS[run] = _read_or_draw_mini(run)
    return _MINI_RECORDS[run]


def _read_or_draw_mini(run) -> dict:
    own, given, options = run.directory / MINI_FILE, run.options.mini_dataset, run.options
    path = own if own.is_file() or not given else Path(given)
    if given and not path.is_file():
        raise ValueError(f"--mini-dataset {given} does not exist; give the {MINI_FILE} of an "
                         "earlier run, or leave it unset to draw one")
    return mini_record(run.data, options.train_per_class, options.score_per_class,
                       seed=run.config.seed, score_from=options.score_from,
                       path=path if path.is_file() else None,
                       names=(flag("train_per_class"), flag("score_per_class")))


def evaluator(run) -> SmallModelEvaluator:
    """Training on the mini dataset with the options' recipe (deterministic, with the paper's
    cuBLAS workspace ``:16:8`` unless the environment sets one), wrapped in
    :class:`SmallModelEvaluator`."""
    return SmallModelEvaluator(run.default_evaluator(mini_data(run), cublas_workspace=":16:8"))


def search(run) -> tools.Logbook:
    """Save the mini dataset the evaluator trains on in the run directory (its SHA-256 goes
    into every checkpoint, so that a resumed run refuses another one), then run
    :func:`ea_minigen` until the stop rule, ``--generations`` or the journal's budget ends it."""
    options = run.options
    own = run.directory / MINI_FILE
    if not own.is_file():
        save_mini_record(own, _mini_record(run))
    run.journal.state_files.append(lambda state: [own])
    toolbox = register_operators(run.toolbox(), run.individual, **options.operators())
    _, logbook = ea_minigen(
        toolbox.population(n=options.population), toolbox, options.generations,
        keep=options.keep, decay=options.decay, restart_period=options.restart_period,
        restart_threshold=options.restart_threshold, win_threshold=options.win_threshold,
        wins_needed=options.wins_needed, count_winners=options.count_winners,
        reuse_scores=options.deterministic, seeding=options.seeding, stats=run.stats,
        halloffame=run.halloffame, verbose=False, journal=run.journal)
    return logbook


#: How the pick's report names its birth generation (the paper's gen_x).
BIRTH = "born in generation (of its round)"


def pick_network(history: Sequence[dict], threshold: float = 0.40, by: str = "accuracy"
                 ) -> Optional[dict]:
    """The final network of a MiniGen search from its evaluation records: among the winners
    (mean accuracy above ``threshold``; all networks when none won), the best mean accuracy
    (ties: fewer parameters) or, ``by="ratio"``, the best accuracy per parameter. The record
    returned is the network's first, with ``mean_fitness``, ``chosen_by`` (the rule, in words)
    and ``report`` (its accuracy per million parameters and, when the records hold it, the
    generation of its round in which it was born, which ``best.json`` and ``deapnas show``
    report)."""
    if by not in PICKS:
        raise ValueError(f"by must be one of {', '.join(PICKS)}, not {by!r}")
    scores, first = scores_by_architecture(history)
    if not scores:
        return None
    mean = {key: fmean(values) for key, values in scores.items()}
    ratio = {key: mean[key] / (first[key]["info"]["params"] / 1e6) for key in mean}
    winners = [key for key in mean if mean[key] > threshold]
    order = (lambda k: (mean[k], ratio[k])) if by == "accuracy" else ratio.get
    best = max(winners or mean, key=order)
    how = "best mean accuracy" if by == "accuracy" else "best accuracy per parameter"
    among = (f"among the {len(winners)} winners (above {threshold})" if winners else
             f"of all networks (none above {threshold})")
    report = {"accuracy per million parameters": ratio[best]}
    if first[best]["info"].get("birth") is not None:
        report[BIRTH] = first[best]["info"]["birth"]
    return {**first[best], "mean_fitness": mean[best], "chosen_by": f"{how} {among}",
            "metric": FITNESS_NAME, "report": report}


def pick(run) -> Optional[dict]:
    """:func:`pick_network` over the run's history with its options."""
    return pick_network(run.history(), run.options.win_threshold, run.options.pick_by)
