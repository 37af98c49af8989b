"""What ``deapnas train`` does with a run directory: the pick retrained from scratch, longer,
on the training and validation images and scored on the test split, its weights written to
``model.pt`` with ``train.json``; an interrupted training continues from ``train-state.pt``.
``deapnas show`` reads what it writes (:mod:`deapnas.report`)."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from tqdm import tqdm

from . import schema
from .limits import MAX_CHANNELS, MAX_EPOCHS
from .rundir import (BEST, TRAINED, WEIGHTS, Lock, conform, holder, load_config, read_best,
                     read_genome, resume_command, sha256, write_json)
from .safefiles import RunDirectoryError, read_bytes, remove_leftovers, write_atomic
from .spaces import get_space

if TYPE_CHECKING:
    from .methods import Method
    from .options import RunConfig
    from .spaces import Space

#: What ``deapnas train`` writes besides ``model.pt`` and ``train.json``: the whole state of
#: the training, after every epoch (removed once ``model.pt`` is written), and one record per
#: epoch (``deapnas show`` draws its curve).
TRAIN_STATE, TRAIN_LOG = "train-state.pt", "train.jsonl"


#: Epochs of ``deapnas train`` for a method without a final training of its own.
RETRAIN_EPOCHS = 20


def retrain(directory: str | Path, epochs: int | None = None, device: str | None = None,
            channels: int | None = None, progress: bool = True) -> dict:
    """Train the pick from scratch on training + validation data and score it on the test
    split (used here for the first and only time), as :func:`final_training` says: the
    method's own final training, or the search's training options without their parameter cap;
    ``epochs`` and ``channels`` (the macro paper retrains its pick at C = 128 and 256) override
    either. Writes the weights to ``model.pt`` and ``train.json`` as one unit, holding the
    run's lock (:func:`save_trained`).

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
    config, options, method = load_config(directory)
    best = read_best(directory)
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
    from .runner import load_data
    from .training import CandidateFailure

    if device:
        config.device = device
    space = get_space(best.get("space", config.space))
    genome = read_genome(space, best["genome"], Path(directory) / BEST)
    evaluator, epochs = final_training(config, options, method, space,
                                       load_data(config, options), epochs, channels)
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


def final_training(config: RunConfig, options: Any, method: Method, space: Space, data: Any,
                   epochs: Optional[int] = None, channels: Optional[int] = None
                   ) -> tuple[Any, int]:
    """The evaluator that retrains a pick of ``space`` on ``data``, and its epochs: the
    method's own final training (:attr:`Method.final_training
    <deapnas.methods.Method.final_training>`), or else the search's training options at
    ``channels`` (when given), without augmentation and without the search's parameter cap
    (``--max-params`` bounds the candidates, not the final network), for ``epochs``, the
    options' ``final_epochs`` or :data:`RETRAIN_EPOCHS`."""
    from .runner import make_evaluator

    if method.final_training is not None:
        evaluator = method.final_training(config, options, data, epochs=epochs,
                                          channels=channels)
        if evaluator is not None:
            return evaluator, evaluator.epochs
    options = replace(options, channels=channels) if channels else options
    return (make_evaluator(config, options, space, data, max_params=None),
            epochs or getattr(options, "final_epochs", None) or RETRAIN_EPOCHS)


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
