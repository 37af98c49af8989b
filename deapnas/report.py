"""What ``deapnas show`` and ``deapnas train`` do with a finished (or running) run directory:
a text summary, PNG plots, and a longer retraining of the pick scored on the test split.
``show`` also reads the directory of a script's journal (:meth:`deapnas.journal.Journal.wrap`),
which holds the history but no ``config.json``."""
from __future__ import annotations

import io
import json
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Optional

import matplotlib

matplotlib.use("Agg")  # files only; no display is needed or wanted
import matplotlib.pyplot as plt  # noqa: E402
from tqdm import tqdm  # noqa: E402

from . import schema  # noqa: E402
from .drawing import (Lineage, Phase, Pick, draw_graphs, plot_fitness,  # noqa: E402
                      plot_training)
from .rundir import (BEST, CONFIG, HISTORY, PARETO, TRAINED, WEIGHTS, Lock,  # noqa: E402
                     conform, fitness_weights, holder, load_config, read_config, read_genome,
                     read_history, read_json, read_settings, resume_command, sha256, write_json)
from .safefiles import (RunDirectoryError, read_bytes, remove_leftovers,  # noqa: E402
                        write_atomic)
from .options import flag  # noqa: E402
from .spaces import get_space  # noqa: E402
from .limits import MAX_CHANNELS, MAX_EPOCHS  # noqa: E402
from .methods import Method  # noqa: E402
from .options import RunConfig  # noqa: E402

#: What ``deapnas train`` writes besides ``model.pt`` and ``train.json``: the whole state of
#: the training, after every epoch (removed once ``model.pt`` is written); one record per
#: epoch; and the training curve that ``deapnas show`` draws from them.
TRAIN_STATE, TRAIN_LOG, TRAIN_PLOT = "train-state.pt", "train.jsonl", "training.png"


@dataclass(frozen=True)
class LoadedRun:
    """A run directory's files as :func:`load_run` read them, each once, for the summary and
    every plot of ``deapnas show``.

    :ivar typed: the paths as the user typed them (``config.json``'s ``typed``).
    :ivar best: ``best.json``, None until the search ends.
    :ivar pareto: ``pareto.json`` of a search of several objectives, else None.
    """

    directory: Path
    config: RunConfig
    options: Any
    method: Method
    typed: dict
    history: list
    best: Optional[dict]
    pareto: Optional[dict]


def load_run(directory: str | Path) -> LoadedRun:
    """Read the run directory ``directory`` (:class:`LoadedRun`), each file once."""
    directory = Path(directory)
    data = read_config(directory)
    config, options, method = load_config(directory, data)
    best, pareto = (read_json(directory / name, what, field) if (directory / name).exists()
                    else None for name, what, field in ((BEST, "result", schema.BEST),
                                                        (PARETO, "Pareto front", schema.PARETO)))
    return LoadedRun(directory, config, options, method, data.get("typed", {}),
                     read_history(directory), best, pareto)


def summary(run: str | Path | LoadedRun) -> str:
    """A few lines on the run (a directory, or one :func:`load_run` read): settings,
    evaluations, failures by reason, the pick."""
    if not isinstance(run, LoadedRun):
        if is_journal(run):
            return journal_summary(run)
        run = load_run(run)
    directory, config, options, method, history, best = (run.directory, run.config, run.options,
                                                          run.method, run.history, run.best)
    data = f"table {run.typed.get('table', config.table)} ({config.metric})" \
        if config.tabular else f"dataset {config.dataset}"
    maximize = fitness_weights(config, method)[0] > 0
    fittest = best_evaluation(history, maximize)
    lines = [f"run {directory}: {method.name} on the {config.space} space, {data}, "
             f"seed {config.seed}",
             f"evaluations: {len(history)}" + (f" of {config.evaluations}"
                                               if config.evaluations else "")
             + (f", best single fitness {fittest['fitness'][0]:.4f} "
                f"({_fitness_named(config, method, maximize)})" if fittest else "")]
    lines += _failures(history)
    running = holder(directory)
    if best is None and running:
        lines.append(f"the search is running ({running})")
    elif best is None and history and fittest is None:
        lines.append("no final pick: every candidate failed, so these settings cannot work; "
                     "start a new run with other settings")
    elif best is None:
        lines.append(f"no final pick yet: the search was interrupted; continue it with "
                     f"`{resume_command(directory, config.algorithm)}`")
    else:
        lines.append(describe_best(config, options, best, Path(directory) / BEST))
        if run.pareto is not None:
            lines += describe_front(run.pareto)
        if (Path(directory) / TRAINED).exists():
            lines.append(describe_training(directory))
        if (Path(directory) / TRAIN_STATE).exists():
            lines.append(describe_unfinished_training(directory))
    return "\n".join(lines)


def describe_training(directory: str | Path) -> str:
    """The line on the pick's final training (``deapnas train``), or on why its weights
    cannot be used."""
    from .export import training_result  # torch: only for a trained run

    try:
        trained = training_result(directory)
    except ValueError as error:
        return f"trained model: {error}"
    return (f"trained: test accuracy {trained['test_accuracy']:.4f} after {trained['epochs']} "
            f"epochs, {trained['params']:,} parameters ({Path(directory) / WEIGHTS})")


def describe_unfinished_training(directory: str | Path) -> str:
    """The line on the training ``train-state.pt`` holds unfinished, or on why it cannot be
    read."""
    path = Path(directory) / TRAIN_STATE
    try:
        unfinished = unfinished_training(directory)
    except ValueError as error:
        return f"unfinished training: {error}"
    return (f"unfinished training: {unfinished.get('done', '?')} of "
            f"{unfinished.get('epochs', '?')} epochs done ({path}); continue it with "
            f"`deapnas train {directory}`")


def is_journal(directory: str | Path) -> bool:
    """Whether ``directory`` is a script's journal: a history without ``config.json``."""
    return not (Path(directory) / CONFIG).exists() and (Path(directory) / HISTORY).exists()


def journal_summary(directory: str | Path) -> str:
    """A few lines on a script's journal: the evaluator, evaluations, failures by reason, the
    best recorded fitness (under the fitness weights ``journal.json`` keeps, else maximised)."""
    history, settings = read_history(directory), read_settings(directory)
    evaluator = settings.get("evaluator")
    if isinstance(evaluator, dict):
        evaluator = evaluator.get("evaluator") or evaluator.get("function")
    weights = settings.get("weights", [1.0])
    lines = [f"journal {directory}: the history of a loop recorded by deapnas.journal.Journal "
             f"(no {CONFIG})" + (f", evaluator {evaluator}" if isinstance(evaluator, str) else ""),
             f"evaluations: {len(history)}"]
    lines += _failures(history)
    best = best_evaluation(history, weights[0] > 0)
    if best is not None:
        fitness = ", ".join(f"{value:.4f}" for value in best["fitness"])
        how = "highest" if weights[0] > 0 else "lowest"
        lines.append(f"best recorded fitness ({how} first value): ({fitness}) at evaluation "
                     f"{best['evaluation']}: {best.get('key') or best.get('genome')}")
    running = holder(directory)
    if running:
        lines.append(f"the loop is running ({running})")
    return "\n".join(lines)


def best_evaluation(history: list[dict], maximize: bool) -> Optional[dict]:
    """The record of the best evaluation that did not fail (first objective), or None."""
    sign = 1 if maximize else -1
    valid = [r for r in history if r.get("reason") is None]
    return max(valid, key=lambda r: sign * r["fitness"][0], default=None)


def _failures(history: list[dict]) -> list[str]:
    """The failed evaluations grouped by reason, with their counts."""
    failures = Counter(_cause(r["reason"]) for r in history if r.get("reason"))
    if not failures:
        return []
    return [f"{sum(failures.values())} of {len(history)} candidates could not be built or "
            "trained:"] + [f"  {n} x {reason}" for reason, n in failures.most_common()]


def describe_front(pareto: dict) -> list[str]:
    """The lines of a Pareto front (``pareto.json``): one per architecture, objective by
    objective, in the order of the first objective."""
    names, front = pareto["objectives"], sorted(pareto["front"], key=lambda r: r["fitness"][0])
    lines = [f"Pareto front: {len(front)} architecture(s) that no other beats on every one of "
             f"{', '.join(names)}:"]
    for record in front:
        values = ", ".join(f"{name} {_number(value)}"
                           for name, value in zip(names, record["fitness"]))
        lines.append(f"  {values}  (evaluation {record['evaluation']}: {record['key']})")
    return lines


def _number(value: float) -> str:
    """A whole number with thousands separators (parameters), others to 6 digits."""
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:.6g}"


def _cause(reason: str) -> str:
    """A failure reason without the node it happened at, so that like failures group."""
    return reason.split(": ", 1)[1].split(":")[0] if reason.startswith("node ") else reason


def describe_best(config, options, best: dict, path: Path) -> str:
    """The final pick (``best``, read from ``path``) in words."""
    space = get_space(best.get("space", config.space))
    genome = best["genome"]  # the readable form when it is a string (an arch string)
    if not isinstance(genome, str):
        genome = repr(read_genome(space, genome, path))
    if "times_evaluated" in best:
        minimum = getattr(options, "min_evaluations", 1)
        how = (f"best mean over all architectures: none was evaluated {minimum} times"
               if best.get("fallback") else
               f"best mean of architectures evaluated at least {minimum} times")
        count = f" (mean of {best['times_evaluated']} evaluation(s))"
    else:
        how, count = best.get("chosen_by", "best single evaluation"), ""
    text = f"best architecture ({how}):\n  {genome}\n  {best['metric']} {best['fitness']:.4f}{count}"
    if best.get("params") is not None:
        text += f", {best['params']:,} parameters"
    for column, value in best.get("report", {}).items():
        text += f"\n  {column}: " + ("not in the table" if value is None else
                                     f"{value}" if isinstance(value, int) else f"{value:.4f}")
    return text


def plots(run: str | Path | LoadedRun) -> list[Path]:
    """Write the pictures of the run (a directory, or one :func:`load_run` read):
    ``fitness.png``, and once there is a pick ``best.png`` (and ``pareto.png`` for a search of
    two objectives), and ``training.png`` once ``deapnas train`` has trained an epoch."""
    if not isinstance(run, LoadedRun):
        if is_journal(run):
            return [plot_history(run)]
        run = load_run(run)
    written = [plot_history(run)]
    if run.best is not None:
        written.append(plot_best(run))
    if run.pareto is not None:
        written.append(plot_pareto(run))
    if (run.directory / TRAIN_LOG).exists():
        written.append(plot_training_curve(run.directory))
    return written


def read_training_log(directory: str | Path) -> list[dict]:
    """The epoch records of ``train.jsonl`` (:data:`deapnas.schema.EPOCH`); a damaged line is a
    :class:`~deapnas.safefiles.RunDirectoryError` naming the file and the line."""
    path = Path(directory) / TRAIN_LOG
    records = []
    for number, line in enumerate(read_bytes(path).splitlines(), 1):
        try:
            record = json.loads(line)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise RunDirectoryError(f"{path} line {number} is not JSON ({error}); it was "
                                    "damaged or edited: run `deapnas train` again") from None
        records.append(conform(record, schema.EPOCH, f"{path} line {number}"))
    return records


def plot_training_curve(directory: str | Path) -> Path:
    """``training.png``: the loss and training accuracy of each epoch of ``deapnas train``
    (``train.jsonl``; :func:`training_figure`)."""
    return _save(training_figure(directory), Path(directory) / TRAIN_PLOT)


def training_figure(directory: str | Path):
    """The figure of ``training.png``, titled with the epochs, and once the training has
    ended the parameters and width of the trained network."""
    records = read_training_log(directory)
    figure, axes = plt.subplots(figsize=(7, 4))
    title = f"deapnas train: {len(records)} epoch(s)"
    if (Path(directory) / TRAINED).exists():
        trained = read_json(Path(directory) / TRAINED, "training result", schema.TRAINED)
        title += f", {trained['params']:,} parameters" + \
            (f" at --channels {trained['channels']}" if trained.get("channels") else "")
    plot_training(records, ax=axes, title=title)
    return figure


def plot_pareto(run: LoadedRun) -> Path:
    """``pareto.png``: every candidate on the first two objectives, the Pareto front joined."""
    directory, config, history, front = run.directory, run.config, run.history, run.pareto
    names = front["objectives"][:2]
    points = [r["fitness"][:2] for r in history if r.get("reason") is None]
    edge = sorted(r["fitness"][:2] for r in front["front"])
    figure, axes = plt.subplots(figsize=(6, 4.5))
    if points:
        axes.scatter(*zip(*points), s=8, alpha=0.35, color="C0", label="evaluation")
    if edge:
        axes.step(*zip(*edge), where="post", color="C3", marker="o", markersize=4,
                  label=f"Pareto front ({len(edge)})")
    metric, units = _metric(config)
    axes.set(xlabel=f"{metric} ({units})" if names[0] == "accuracy" and units else
             metric if names[0] == "accuracy" else names[0], ylabel=names[1],
             title=f"{names[0]} against {names[1]}")
    axes.legend(loc="best")
    return _save(figure, Path(directory) / "pareto.png")


def plot_history(run: str | Path | LoadedRun) -> Path:
    """``fitness.png`` of a run (a directory, or one :func:`load_run` read) or of a script's
    journal (its directory): every evaluation's fitness and the best so far; failures apart;
    the final pick marked once there is one (:func:`history_figure`)."""
    directory = run.directory if isinstance(run, LoadedRun) else Path(run)
    return _save(history_figure(run), directory / "fitness.png")


def history_figure(run: str | Path | LoadedRun):
    """The figure of ``fitness.png``: :func:`~deapnas.drawing.plot_fitness` of the run's history,
    with the pick (its mean when it is one, and the evaluations of its architecture), RENAS's
    phases (from scratch, fine-tuned children, final retraining) and NASGEP's models joined
    across generations (each point is one more epoch of a model)."""
    figure, axes = plt.subplots(figsize=(7, 4))
    if not isinstance(run, LoadedRun) and is_journal(run):
        maximize = read_settings(run).get("weights", [1.0])[0] > 0
        plot_fitness(read_history(run), "fitness", ax=axes, maximize=maximize)
        return figure
    run = _loaded(run)
    metric, units = _metric(run.config, run.method)
    maximize = fitness_weights(run.config, run.method)[0] > 0
    plot_fitness(run.history, metric, units, ax=axes, maximize=maximize,
                 pick=_pick(run.best, run.history, metric),
                 phases=_phases(run.config, run.options, run.method, run.history),
                 lineage=LINEAGES.get(run.method.name))
    return figure


def _loaded(run: str | Path | LoadedRun) -> LoadedRun:
    """``run`` read by :func:`load_run` unless it already was."""
    return run if isinstance(run, LoadedRun) else load_run(run)


#: Methods whose models live on across generations, trained further in each (one evaluation
#: per epoch): the ``info`` field naming the model, and what the joining lines mean.
LINEAGES = {"nasgep": Lineage("model", "one model, trained one more epoch in each generation "
                                       "it survives (a point per epoch)")}


def _pick(best: Optional[dict], history: list[dict], metric: str) -> Optional[Pick]:
    """How ``fitness.png`` marks the pick of ``best.json`` (None before there is one): its
    value on the axis when it measures what the axis does, the evaluations of its
    architecture."""
    if best is None:
        return None
    times = best.get("times_evaluated")
    how = (f"mean of {times} evaluation{'s' * (times > 1)}" if times else
           best.get("chosen_by", "best single evaluation"))
    on_axis = best["metric"] == metric
    label = f"the pick: {best['metric']} {best['fitness']:.4f} ({how})" + \
        ("" if on_axis else ", not on this axis")
    chosen = [r["evaluation"] for r in history if best.get("key") and r.get("key") == best["key"]]
    return Pick(label, best["fitness"] if on_axis else None, chosen)


def _phases(config, options, method, history: list[dict]) -> list[Phase]:
    """The stretches of the history that differ in kind: RENAS's first population trained from
    scratch, its children fine-tuned from their parents' weights, and (a trained search) the
    final population retrained from scratch; none for other methods."""
    if method.name != "renas" or not history:
        return []
    first, last = options.population, config.evaluations
    if config.tabular:  # looked up, never trained
        spans = [("first population", 1, first), ("children", first + 1, last)]
    else:
        spans = [("first population, trained from scratch", 1, first),
                 ("children, fine-tuned from the parent's weights", first + 1, last - first),
                 ("final population, retrained from scratch", last - first + 1, last)]
    done = history[-1]["evaluation"]
    return [Phase(label, start, min(end, done)) for label, start, end in spans if start <= done
            and start <= end]


def plot_best(run: str | Path | LoadedRun) -> Path:
    """``best.png``: the pick's compiled graph (each of its cells, side by side, at one
    scale), layered from input to output (:func:`best_figure`)."""
    run = _loaded(run)
    return _save(best_figure(run), run.directory / "best.png")


def best_figure(run: str | Path | LoadedRun):
    """The figure of ``best.png``: the pick's cells side by side (the macro space: the whole
    network, its fully connected head included, at the run's width), under a title that names
    its fitness, its parameters and the width it was evaluated at."""
    run = _loaded(run)
    directory, config, options, best = run.directory, run.config, run.options, run.best
    if best is None:
        raise ValueError(f"{directory} has no final pick yet; see `deapnas show {directory}`")
    space = get_space(best.get("space", config.space))
    genome = read_genome(space, best["genome"], Path(directory) / BEST)
    graphs = space.graphs(genome)
    if space.name == "macro":  # whole networks: draw the head that holds most parameters
        from .runner import data_needed
        from .spaces.macro import network_graph
        try:
            data = data_needed(config, options)
        except (ValueError, OSError):  # the data moved away: the body alone can be drawn
            pass
        else:
            graphs = {"": network_graph(genome, data.input_shape, data.num_classes,
                                        **space.network_kwargs(options))}
    return draw_graphs({f"{name} cell" if name else "": graph for name, graph in graphs.items()},
                       title=_best_title(config, options, space, best))


def _best_title(config, options, space, best: dict) -> str:
    """``best architecture: METRIC VALUE (mean of N), P parameters at --channels C, ...``."""
    times = best.get("times_evaluated")
    count = f" (mean of {times} evaluations)" if times and times > 1 else ""
    size = (f"{best['params']:,} parameters" if best.get("params") is not None else
            "a table look-up (no network built)" if config.tabular else "parameters unknown")
    width = ", ".join(f"{flag(name)} {getattr(options, name)}" for name in
                      space.network_options if getattr(options, name, None) is not None
                      and not isinstance(getattr(options, name), bool))
    if width and not config.tabular:
        size += f" at {width}"
    elif space.name == "minigen":
        from .spaces import minigen
        size += (", each cell's width in its name (the input cell's: "  # widths are genes
                 + "->".join(map(str, minigen.INPUT_FLOW)) + ")")
    return f"best architecture: {best['metric']} {best['fitness']:.4f}{count}, {size}"


def _metric(config, method=None) -> tuple[str, str]:
    """The fitness's name and units: the method's own fitness, a table's column (NAS-Bench-201:
    percent), else the validation accuracy (a fraction)."""
    if method is not None and method.fitness_name:
        name = method.fitness_name
        return (name(config) if callable(name) else name), ""
    if config.tabular:
        return config.metric, "%" if "acc" in config.metric else ""
    return config.fitness or "validation accuracy", ""


def _fitness_named(config, method, maximize: bool) -> str:
    """What the fitness of each evaluation is, and which way is better, as a summary says it."""
    name = (_metric(config, method)[0] if config.objective_names == ("accuracy",)
            else config.objective_names[0])
    return f"{name}, {'higher' if maximize else 'lower'} is better"


def _save(figure, path: Path) -> Path:
    """Write ``figure`` to ``path`` as PNG, atomically (never through a link)."""
    image = io.BytesIO()
    figure.savefig(image, format="png", dpi=120, bbox_inches="tight")
    plt.close(figure)
    write_atomic(path, image.getbuffer())
    return path


#: Epochs of ``deapnas train`` for a method without a final training of its own.
RETRAIN_EPOCHS = 20


def retrain(directory: str | Path, epochs: int | None = None, device: str | None = None,
            channels: int | None = None, progress: bool = True) -> dict:
    """Train the pick from scratch on training + validation data and score it on the test
    split (used here for the first and only time). A method with a final training of its own
    (:attr:`Method.final_training <deapnas.methods.Method.final_training>`) trains it with that
    recipe (augmentation, schedule, width); otherwise the search's training options apply,
    without augmentation and without the search's parameter cap (``--max-params`` bounds the
    candidates, not the final network), for the options' ``final_epochs`` when they have one
    (MiniGen's 340) or :data:`RETRAIN_EPOCHS`. ``epochs`` and ``channels`` (the
    macro paper retrains its pick at C = 128 and 256) override either. Writes the weights to
    ``model.pt`` and ``train.json`` as one unit, holding the run's lock
    (:func:`save_trained`).

    The training's whole state goes to ``train-state.pt`` after every epoch, and its record to
    ``train.jsonl`` (a progress bar shows them when ``progress``): an interrupted training
    continues from its last finished epoch when this runs again, with the ``epochs`` and
    ``channels`` it was started with unless others are given, to the same result (see
    :meth:`TrainEvaluator.train_and_test <deapnas.fitness.TrainEvaluator.train_and_test>`);
    other settings are refused while ``train-state.pt`` holds an unfinished training."""
    if epochs is not None and epochs < 1:
        raise ValueError(f"--epochs must be at least 1, not {epochs}")
    config, options, method, best = trainable(directory)
    with Lock(Path(directory)).acquire():  # one training at a time, and no search
        remove_leftovers(directory)  # what a training killed while writing a file left
        unfinished = unfinished_training(directory)
        epochs, channels = epochs or unfinished.get("epochs"), \
            channels or unfinished.get("channels")
        return _retrain(directory, config, options, method, best, epochs, device, channels,
                        progress)


def trainable(directory: str | Path) -> tuple:
    """``(config, options, method, best)`` of a run whose pick ``deapnas train`` can train now;
    a ``ValueError`` saying why not otherwise (in use, no pick yet, a table search)."""
    run = load_run(directory)
    config, options, method, best = run.config, run.options, run.method, run.best
    running = holder(directory)
    if running:
        raise ValueError(f"{directory} is in use by {running} (a search or a training); "
                         "train its pick once that has finished")
    if best is None:
        raise ValueError(f"{directory} has no final pick yet: the search was interrupted; "
                         f"continue it with `{resume_command(directory, config.algorithm)}`")
    if config.tabular:
        raise ValueError("a tabular run has no network to train: its table already holds the "
                         "trained accuracies (see best.json's report)")
    return config, options, method, best


def unfinished_training(directory: str | Path) -> dict:
    """The ``epochs`` and network ``channels`` of the unfinished training that
    ``train-state.pt`` holds, as ``deapnas train`` resolved them, and the epochs ``done``
    (``{}`` when there is none; a value that is not a number in range is left out)."""
    from .weights import load_weights  # torch: only for an unfinished training

    path = Path(directory) / TRAIN_STATE
    if not path.exists():
        return {}
    try:
        state = load_weights(path)
    except ValueError as error:
        raise ValueError(f"{error}; delete it to start the training afresh") from None
    state = state if isinstance(state, dict) else {}
    settings = state.get("settings") if isinstance(state.get("settings"), dict) else {}
    build = settings.get("build") if isinstance(settings.get("build"), dict) else {}
    keywords = build.get("keywords") if isinstance(build.get("keywords"), dict) else {}
    found = {"epochs": (settings.get("epochs"), MAX_EPOCHS),
             "channels": (keywords.get("channels"), MAX_CHANNELS),
             "done": (state.get("epochs"), MAX_EPOCHS)}
    return {name: value for name, (value, most) in found.items()
            if type(value) is int and 1 <= value <= most}


def _retrain(directory, config, options, method, best: dict, epochs, device, channels,
             progress: bool) -> dict:
    from .networks import check_parameters, inference_parameters  # torch: a network is built
    from .runner import load_data, make_evaluator
    from .training import CandidateFailure

    if device:
        config.device = device
    space = get_space(best.get("space", config.space))
    genome = read_genome(space, best["genome"], Path(directory) / BEST)
    evaluator = (method.final_training(config, options, load_data(config, options),
                                       epochs=epochs, channels=channels)
                 if method.final_training is not None else None)
    if evaluator is not None:
        epochs = evaluator.epochs
    else:  # the search's parameter cap bounds its candidates, not the final network
        options = replace(options, channels=channels) if channels else options
        evaluator = make_evaluator(config, options, space, max_params=None)
        epochs = epochs or getattr(options, "final_epochs", None) or RETRAIN_EPOCHS
    shape, classes = evaluator.data.input_shape, evaluator.data.num_classes
    check_parameters(lambda: evaluator.build(genome, shape, classes),
                     f"{Path(directory) / BEST}: genome, at the retraining's width,",
                     "retrain it narrower with --channels, or restore the file if it was edited")
    log = TrainingLog(Path(directory) / TRAIN_LOG, epochs, enabled=progress)
    try:
        accuracy, net = evaluator.train_and_test(genome, epochs, config.seed,
                                                 state_file=Path(directory) / TRAIN_STATE,
                                                 progress=log)
    except CandidateFailure as error:
        raise ValueError(f"the pick cannot be retrained: {error} (try another --channels or "
                         "--epochs)") from None
    finally:
        log.close()
    data, network = evaluator.data, dict(getattr(evaluator.build, "keywords", {}))
    result = {"epochs": epochs, "channels": network.get("channels"), "network": network,
              "input_shape": list(data.input_shape), "num_classes": data.num_classes,
              "test_accuracy": accuracy, "params": inference_parameters(net),
              "test_images": len(data.test)}
    if data.normalisation is not None:  # what the exported program applies to raw pixels
        result["normalisation"] = data.normalisation.record()
    result = save_trained(Path(directory), net.state_dict(), result)
    (Path(directory) / TRAIN_STATE).unlink()  # finished: model.pt holds what it led to
    return result


class TrainingLog:
    """What ``deapnas train`` shows and keeps of each epoch: ``train.jsonl``, rewritten
    (atomically) with every epoch's record so far, and a progress bar of the epochs with the
    last loss and training accuracy (when ``enabled``). Called with the records so far
    (:meth:`TrainEvaluator.train_and_test <deapnas.fitness.TrainEvaluator.train_and_test>`'s
    ``progress``)."""

    def __init__(self, path: Path, epochs: int, enabled: bool = True):
        self.path = path
        self.bar = tqdm(total=epochs, disable=not enabled, unit="epoch", dynamic_ncols=True)

    def __call__(self, records: list[dict]) -> None:
        write_atomic(self.path, "".join(json.dumps(r) + "\n" for r in records).encode())
        last = records[-1]
        self.bar.set_postfix_str(f"loss {last['loss']:.4f}, training accuracy "
                                 f"{last['train_accuracy']:.4f}", refresh=False)
        self.bar.update(last["epoch"] - self.bar.n)

    def close(self) -> None:
        self.bar.close()


def save_trained(directory: Path, state: dict, result: dict) -> dict:
    """Write the weights ``state`` to ``model.pt`` and ``result`` to ``train.json`` as one
    unit: ``train.json`` records the SHA-256 of ``model.pt`` (``weights_sha256``, which
    :func:`~deapnas.export.load_model` checks) and is removed before ``model.pt`` is replaced,
    then written last. An interruption anywhere leaves the old pair, or ``model.pt`` without
    ``train.json`` (train again), never a ``train.json`` that describes another model; the
    result as written."""
    from .weights import save_weights

    (directory / TRAINED).unlink(missing_ok=True)
    save_weights(directory / WEIGHTS, state)
    result = {**result, "weights_sha256": sha256(directory / WEIGHTS)}
    write_json(directory / TRAINED, result)
    return result
