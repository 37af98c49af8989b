"""Fitness functions: callables registered as ``toolbox.evaluate``.

Both evaluators return an :class:`Evaluation`: the fitness tuple DEAP expects, carrying what was
measured in ``.info`` (parameters, training time, epochs, and the reason a candidate failed).
The information travels inside the returned value, so it survives a process-pool ``map`` where
only return values come back; :func:`deapnas.algorithms.assign` copies it onto the individual.

A candidate that cannot be built or trained gets :func:`failure`: the worst value of every
objective under the individual's fitness weights (``-inf`` where it is maximised, ``+inf``
where it is minimised) and the reason. It never stops a search.
"""
from __future__ import annotations

import copy
import csv
import dataclasses
import difflib
import functools
import json
import os
import time
from collections import defaultdict
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Optional

import torch
from torch import nn

from .augment import pixel_bounds
from .data import Dataset, Split
from .graph import InvalidGraphError
from .individuals import worst_values
from .networks import count_parameters, set_drop_path
from .options import objective_weights
from .safefiles import RunDirectoryError
from .training import (CandidateFailure, Recipe, accuracy, deterministic_kernels,
                       evaluation_seed, load_matching, make_optimizer, make_schedule,
                       param_groups, random_states, resolve_device, restore_random_states,
                       shuffle_generator, train_epoch_measured)
from .weights import load_weights, save_weights


class Evaluation(tuple):
    """A fitness tuple with an ``info`` dict of measurements (kept through pickling)."""

    def __new__(cls, values, **info: Any):
        evaluation = super().__new__(cls, values)
        evaluation.info = info
        return evaluation

    def __reduce__(self):
        return _evaluation, (tuple(self), self.info)


def _evaluation(values, info):
    return Evaluation(values, **info)


def failure(reason: str, individual: Any = None, **info: Any) -> Evaluation:
    """The worst fitness for ``individual``'s fitness weights (one maximised objective when it
    has none), with the reason the candidate failed."""
    weights = getattr(getattr(individual, "fitness", None), "weights", None) or (1.0,)
    return Evaluation(worst_values(weights), reason=reason, **info)


def failed(evaluation: Any) -> bool:
    """Whether ``evaluation`` (an :class:`Evaluation` or a plain tuple) records a failure."""
    return getattr(evaluation, "info", {}).get("reason") is not None


def settings_of(value: Any) -> Any:
    """``value`` described as JSON, what a journal fingerprints of a fitness function
    (:meth:`deapnas.journal.Journal.wrap`): an object's own ``settings()`` (deapnas's evaluators:
    the recipe, the data, the network builder...), a ``functools.partial``'s function and
    arguments, a dataclass's fields, a tensor's shape and type, a function's or another object's
    qualified name; JSON values as they are. The description holds nothing that differs between
    two runs of one script (no memory address, no device)."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple)):
        return [settings_of(v) for v in value]
    if isinstance(value, dict):
        return {str(k): settings_of(v) for k, v in value.items()}
    if callable(getattr(value, "settings", None)) and not isinstance(value, type):
        return value.settings()
    if isinstance(value, functools.partial):
        function = settings_of(value.func)
        if not value.args and not value.keywords:  # how a toolbox registers a bare function
            return function
        return {"function": function, "args": settings_of(value.args),
                "keywords": settings_of(value.keywords)}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: settings_of(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, torch.Tensor):
        return f"tensor {list(value.shape)} {str(value.dtype).removeprefix('torch.')}"
    named = value if hasattr(value, "__qualname__") else type(value)
    return f"{named.__module__}.{named.__qualname__}"


def settings_differences(before: dict, now: dict, prefix: str = "") -> str:
    """The settings (as :func:`settings_of` describes them) whose values differ, as
    ``name: old -> new``, nested names joined by dots."""
    out = []
    for key in sorted(set(before) | set(now)):
        a, b = before.get(key), now.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            inner = settings_differences(a, b, f"{prefix}{key}.")
            out += [inner] if inner else []
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return ", ".join(out)


class MissingStateFile(RunDirectoryError):
    """A file of a run's saved state that an evaluation needs is not there (a
    :class:`~deapnas.safefiles.RunDirectoryError`, so that a pool worker's reaches the search
    as itself)."""


def load_state_file(path: str | os.PathLike, device: str | torch.device, what: str) -> dict:
    """:func:`~deapnas.weights.load_weights` of a file that a run's state names (weights to
    inherit, a training to continue, a weight-store entry); a missing one is a
    :class:`MissingStateFile` saying ``what`` it held and what to do."""
    try:
        return load_weights(path, device)
    except FileNotFoundError:
        raise MissingStateFile(
            f"{path} is missing: it holds {what}, which the search needs to go on; it was "
            "deleted or moved while the run was stopped: restore it from a copy of the run "
            "directory, or start a new run") from None


class TrainEvaluator:
    """Train a candidate on the training split and return ``(validation accuracy,)``.

    :param build: ``build(individual, input_shape, num_classes) -> nn.Module``, e.g.
        ``functools.partial(macro.build_network, channels=64)``.
    :param data: the dataset; only its train and validation splits are used here.
    :param epochs: training epochs per candidate; ``batch_size``, ``optimizer`` (``"adam"`` or
        ``"sgd"``), ``lr``, ``weight_decay``, ``schedule``, ``grad_clip`` and ``new_lr_factor``
        complete the :class:`~deapnas.training.Recipe` (or pass ``recipe=`` whole).
    :param device: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda:1"``...
    :param seed: the run's seed; each evaluation trains from
        :func:`~deapnas.training.evaluation_seed` ``(seed, individual.eval_seed)``.
    :param deterministic: use only deterministic kernels (identical candidates score identically
        on a GPU too, at some cost in speed).
    :param cublas_workspace: the ``CUBLAS_WORKSPACE_CONFIG`` a deterministic evaluator sets when
        the environment has none (cuBLAS is deterministic with ``":4096:8"`` or ``":16:8"``).
    :param max_params: candidates with more parameters fail before any memory is allocated.
    :param objectives: what the fitness tuple holds, in order: ``"accuracy"`` (validation),
        ``"params"``, ``"train_seconds"`` (see :data:`deapnas.options.OBJECTIVES`); every one of
        them is also in ``.info``.
    :param stop_below_rank: early termination (:class:`RankStop`): a candidate whose validation
        accuracy after an epoch is below the ``stop_below_rank``-th best of the earlier
        candidates at that epoch stops training, keeps that accuracy as its fitness and the
        reason in ``info["stopped"]``; ``info["epochs"]`` counts the epochs it trained.

    What varies from one evaluation to the next travels on the individual, never on the
    evaluator (pool workers keep their own copy of it). Attributes read when present:

    - ``eval_seed`` (int, default 0): the candidate's seed, mixed with the run's;
    - ``epochs`` (int): train this many epochs instead of the recipe's;
    - ``inherit_from`` (path): start from the weights in this file (see
      :func:`~deapnas.weights.save_weights`), copying each tensor whose name and shape match;
      parameters not inherited train at ``new_lr_factor`` times the learning rate;
    - ``save_to`` (path): write the trained weights there;
    - ``resume_from`` (path): continue the training saved there by ``save_state_to`` (weights,
      optimizer and schedule; ``inherit_from`` is then ignored). The schedule spans the
      recipe's epochs across evaluations, so a network trained ``epochs=1`` at a time follows
      one cosine schedule, as a network that lives across generations does (NASGEP);
    - ``save_state_to`` (path): write the whole training state there (``model``, ``optimizer``,
      ``schedule``, ``epochs`` trained in all, ``inherited`` parameter names); ``info`` then
      records ``trained_epochs``, the epochs in all.

    Subclasses extend :meth:`inherit` (where a fresh network's weights come from) and
    :meth:`after_training` (more measurements once the network is scored).
    """

    def __init__(self, build: Callable[..., nn.Module], data: Dataset, epochs: int = 10,
                 batch_size: int = 128, optimizer: str = "adam", lr: float = 1e-3,
                 weight_decay: float = 0.0, device: str = "auto", seed: int = 0,
                 deterministic: bool = False, max_params: Optional[int] = None,
                 recipe: Optional[Recipe] = None, cublas_workspace: str = ":4096:8",
                 objectives: Iterable[str] = ("accuracy",),
                 stop_below_rank: Optional[int] = None, **recipe_options: Any):
        objective_weights(objectives)
        self.objectives = tuple(objectives)
        self.recipe = recipe or Recipe(epochs=epochs, batch_size=batch_size, optimizer=optimizer,
                                       lr=lr, weight_decay=weight_decay, **recipe_options)
        if max_params is not None and max_params < 1:
            raise ValueError(f"max_params must be at least 1 (or None for no cap), "
                             f"not {max_params}")
        self.build, self.data = build, data
        self.device = resolve_device(device)
        self.seed, self.deterministic, self.max_params = seed, deterministic, max_params
        self.cublas_workspace = cublas_workspace
        self.early_stop = RankStop(stop_below_rank) if stop_below_rank else None
        self._on_device: Optional[Dataset] = None

    @property
    def epochs(self) -> int:
        return self.recipe.epochs

    def settings(self) -> dict:
        """What decides its fitness values, as JSON (see :func:`settings_of`); the device is
        left out, since it may change between the runs of one search, and early termination
        appears only when it is on (so that a journal begun before it existed still
        resumes)."""
        return {"evaluator": settings_of(type(self)), "build": settings_of(self.build),
                "data": settings_of(self.data), "recipe": settings_of(self.recipe),
                "seed": self.seed, "deterministic": self.deterministic,
                "max_params": self.max_params, "objectives": list(self.objectives),
                **({"stop_below_rank": self.early_stop.rank} if self.early_stop else {})}

    def __getstate__(self):  # a pickled evaluator moves its data to its new device itself
        return {**self.__dict__, "_on_device": None}

    def for_device(self, device: str) -> "TrainEvaluator":
        """A copy that trains on ``device`` (how a pool worker pinned to a device uses it)."""
        clone = copy.copy(self)
        clone.device, clone._on_device = resolve_device(device), None
        return clone

    @property
    def device_data(self) -> Dataset:
        """The dataset as tensors resident on the evaluation device (moved once)."""
        if self._on_device is None:
            self._on_device = self.data.to(self.device)
        return self._on_device

    def prepare(self) -> None:
        """Warm up before the first candidate: move the data to the device and take one small
        training step there (first-use costs of the device and of torch's kernels). A pool
        worker calls this before its first item, so a time limit measures candidates only."""
        data, (channels, _, _) = self.device_data, self.data.input_shape
        with self._seeded(0), torch.device(self.device):
            net = nn.Sequential(nn.Conv2d(channels, 4, 3, padding=1), nn.BatchNorm2d(4),
                                nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                nn.Linear(4, self.data.num_classes))
            optimizer = make_optimizer(net.parameters(), self.recipe)
            nn.functional.cross_entropy(net(data.train.x[:8]), data.train.y[:8]).backward()
            optimizer.step()

    def network(self, individual) -> nn.Module:
        """The candidate's network on the evaluation device, after the parameter cap check."""
        shape, classes = self.data.input_shape, self.data.num_classes
        params = count_parameters(lambda: self.build(individual, shape, classes))
        if self.max_params is not None and params > self.max_params:
            raise CandidateFailure(f"{params} parameters exceed the cap of {self.max_params}")
        with torch.device(self.device):
            return self.build(individual, shape, classes)

    def __call__(self, individual) -> Evaluation:
        seed = evaluation_seed(self.seed, getattr(individual, "eval_seed", 0))
        start = time.perf_counter()
        info: dict[str, Any] = {"params": None, "epochs": 0}
        try:
            with self._seeded(seed):
                net = self.network(individual)
                info["params"] = sum(p.numel() for p in net.parameters())
                resumed = self._resume(net, getattr(individual, "resume_from", None))
                inherited = resumed["inherited"] if resumed else self.inherit(net, individual)
                if inherited is not None and not resumed:
                    info["inherited"] = len(inherited)
                trainer = self.trainer(net, inherited or (), resumed)
                data = self.device_data
                epochs = getattr(individual, "epochs", None) or self.recipe.epochs
                stop = self._stop_rule(net, data.val, info) if self.early_stop else None
                info["epochs"] = self.fit(net, data.train, epochs, trainer=trainer, stop=stop)
                score = self.accuracy(net, data.val)
                info.update(self.after_training(individual, net, score))
            if getattr(individual, "save_to", None):
                save_weights(individual.save_to, net.state_dict())
            if getattr(individual, "save_state_to", None):
                info["trained_epochs"] = (resumed["epochs"] if resumed else 0) + info["epochs"]
                save_weights(individual.save_state_to,
                             training_state(net, trainer, info["trained_epochs"], inherited or ()))
        except (InvalidGraphError, CandidateFailure) as error:
            return failure(str(error), individual, train_seconds=time.perf_counter() - start,
                           **info)
        except RuntimeError as error:
            return out_of_memory(error, individual,
                                 train_seconds=time.perf_counter() - start, **info)
        info.update(accuracy=score, train_seconds=time.perf_counter() - start)
        return Evaluation(tuple(info[o] for o in self.objectives), reason=None, **info)

    def train_and_test(self, individual, epochs: Optional[int] = None, seed: int = 0,
                       state_file: Optional[str | os.PathLike] = None,
                       progress: Optional[Callable[[list[dict]], None]] = None,
                       keep_validation: bool = False) -> tuple[float, nn.Module]:
        """A search's final step: ``individual``'s network built afresh (torch seeded with
        ``seed``), trained on the training and validation splits together for ``epochs``
        epochs (default: the recipe's), and scored on the test split, its only use.
        ``(test accuracy, trained network)``; :class:`~deapnas.training.CandidateFailure`
        when the network exceeds the parameter cap or its loss is not finite. With
        ``keep_validation`` it trains on the training split alone, so that the validation
        split can still choose among several networks trained so (MiniGen's finalists):
        ``self.accuracy(net, self.device_data.val)``.

        With ``state_file``, the whole training state is written there after every epoch
        (:func:`training_state`, as ``save_state_to`` writes it, with every random state, the
        settings it was made with and the epoch records), and a training saved there earlier
        is continued from its last epoch (as ``resume_from`` continues one) to the same
        result as an uninterrupted training: exactly, on the same kind of device (on another,
        the random draws of the epochs left differ). A state file made with other settings
        (epochs, network width, recipe, data, seed, genome; not the device) is refused with a
        ``ValueError`` naming them. ``progress(records)`` gets the records of the epochs
        trained so far (``epoch``, ``loss``, ``train_accuracy``, ``seconds``) after each epoch,
        and once before the first when a training continues."""
        data = self.device_data
        split = data.train if keep_validation else \
            Split(torch.cat([data.train.x, data.val.x]), torch.cat([data.train.y, data.val.y]))
        epochs = epochs or self.recipe.epochs
        settings = json.loads(json.dumps({  # keep_validation only when set: older states match
            **self.settings(), "epochs": epochs, "seed": seed,
            "individual": settings_of(individual),
            **({"keep_validation": True} if keep_validation else {})}))
        torch.manual_seed(seed)
        net = self.network(individual)
        generator = shuffle_generator(split)
        saved = self._resume(net, state_file, settings) if state_file and \
            os.path.exists(state_file) else None
        trainer = self.trainer(net, (), saved)
        records = list(saved["records"]) if saved else []
        if saved:
            restore_random_states(saved["random"], generator)
            if progress is not None:
                progress(records)

        def epoch_done(record: dict) -> None:
            records.append(record)
            if state_file:
                save_weights(state_file, {
                    **training_state(net, trainer, record["epoch"]), "settings": settings,
                    "random": random_states(generator), "records": records})
            if progress is not None:
                progress(records)

        self.fit(net, split, epochs, trainer, generator=generator,
                 first_epoch=saved["epochs"] + 1 if saved else 1, after_epoch=epoch_done)
        return self.accuracy(net, data.test), net

    def inherit(self, net: nn.Module, individual) -> Optional[list[str]]:
        """Load into a fresh ``net`` the matching weights of ``individual.inherit_from``; the
        parameter names loaded (None: the individual names no file)."""
        path = getattr(individual, "inherit_from", None)
        if not path:
            return None
        return load_matching(net, load_state_file(path, self.device, "the trained weights "
                                                  "this network inherits (inherit_from)"))

    def after_training(self, individual, net: nn.Module, score: float) -> dict:
        """More measurements for ``info`` once ``net`` is trained and scored (none here)."""
        return {}

    def _resume(self, net: nn.Module, path, settings: Optional[dict] = None) -> Optional[dict]:
        """The training state saved at ``path``, its weights loaded into ``net`` (None: no
        path); with ``settings``, a state saved with other ``settings`` is refused."""
        if not path:
            return None
        state = load_state_file(path, self.device, "the training state this network "
                                "continues (resume_from)")
        if settings is not None:
            if not isinstance(state, dict) or not isinstance(state.get("settings"), dict) or \
                    not FINAL_STATE_KEYS <= state.keys():
                raise ValueError(f"{path} is not a training state that deapnas wrote (a damaged "
                                 "or foreign file): delete it to start the training afresh")
            changed = settings_differences(state["settings"], settings)
            if changed:
                raise ValueError(
                    f"{path} holds an unfinished training ({state.get('epochs')} epochs done) "
                    f"made with other settings ({changed}): train with its settings to "
                    f"continue it, or delete {path} to start this training afresh")
        net.load_state_dict(state["model"])
        return state

    def trainer(self, net: nn.Module, inherited=(), state: Optional[dict] = None
                ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
        """The recipe's optimizer (``inherited`` parameters in their own group) and schedule
        for ``net``, continuing a saved training ``state`` when one is given."""
        recipe = self.recipe
        optimizer = make_optimizer(param_groups(net, inherited, recipe.lr, recipe.new_lr_factor),
                                   recipe)
        schedule = make_schedule(optimizer, recipe)
        if state is not None:
            optimizer.load_state_dict(state["optimizer"])
            schedule.load_state_dict(state["schedule"])
        return optimizer, schedule

    def fit(self, net: nn.Module, split: Split, epochs: int, trainer=None,
            generator: Optional[torch.Generator] = None, first_epoch: int = 1,
            after_epoch: Optional[Callable[[dict], None]] = None,
            stop: Optional[Callable[[int], bool]] = None) -> int:
        """Train ``net`` in place on ``split`` for ``epochs`` epochs of the recipe (with the
        ``(optimizer, schedule)`` of ``trainer`` when given, see :meth:`trainer`, and the
        shuffling ``generator`` when given), from epoch ``first_epoch`` (a training that
        continues); the number of epochs run, fewer when ``stop(epoch)`` says so after an epoch
        before the last. ``after_epoch(record)`` gets each epoch's record:
        ``epoch``, ``loss``, ``train_accuracy`` (see
        :func:`~deapnas.training.train_epoch_measured`) and ``seconds``. A non-finite loss
        raises :class:`~deapnas.training.CandidateFailure`. With ``recipe.drop_path``, the
        cells' drop-path rate rises linearly from 0 in the first epoch to
        ``drop_path * (epochs - 1) / epochs`` in the last, as DARTS raises it."""
        optimizer, schedule = trainer or self.trainer(net)
        generator = generator or shuffle_generator(split)
        bounds = pixel_bounds(split.x) if self.recipe.augment is not None else None
        for epoch in range(first_epoch, epochs + 1):
            start = time.perf_counter()
            if self.recipe.drop_path:
                set_drop_path(net, self.recipe.drop_path * (epoch - 1) / epochs)
            try:
                loss, train_accuracy = train_epoch_measured(net, split, optimizer, self.recipe,
                                                            generator, bounds)
            except CandidateFailure as error:
                raise CandidateFailure(f"{error} in epoch {epoch}") from None
            schedule.step()
            if after_epoch is not None:
                after_epoch({"epoch": epoch, "loss": loss, "train_accuracy": train_accuracy,
                             "seconds": time.perf_counter() - start})
            if stop is not None and epoch < epochs and stop(epoch):
                return epoch - first_epoch + 1
        return max(epochs - first_epoch + 1, 0)

    def _stop_rule(self, net: nn.Module, val: Split, info: dict) -> Callable[[int], bool]:
        """``stop(epoch)`` for :meth:`fit`: :attr:`early_stop` on ``net``'s validation
        accuracy, its reason recorded in ``info["stopped"]``."""
        def stop(epoch: int) -> bool:
            reason = self.early_stop.observe(epoch, self.accuracy(net, val))
            if reason is not None:
                info["stopped"] = reason
            return reason is not None
        return stop

    def accuracy(self, net: nn.Module, split: Split) -> float:
        """Top-1 accuracy of ``net`` on ``split`` (in [0, 1])."""
        return accuracy(net, split, 4 * self.recipe.batch_size)

    @contextmanager
    def _seeded(self, seed: int):
        """Seed torch for one evaluation without disturbing the caller's random state."""
        cuda = [self.device.index or 0] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda), \
                deterministic_kernels(self.deterministic, self.cublas_workspace):
            torch.manual_seed(seed)
            yield


#: The keys of a state file of :meth:`TrainEvaluator.train_and_test`: :func:`training_state`'s
#: and its own.
FINAL_STATE_KEYS = {"model", "optimizer", "schedule", "epochs", "settings", "random", "records"}


def training_state(net: nn.Module, trainer: tuple, epochs: int, inherited: Iterable[str] = ()
                   ) -> dict:
    """A training's state as :func:`~deapnas.weights.save_weights` writes it: the network's
    ``model``, the ``optimizer`` and ``schedule`` of ``trainer``, the ``epochs`` trained in all
    and the ``inherited`` parameter names (see :meth:`TrainEvaluator.trainer`)."""
    optimizer, schedule = trainer
    return {"model": net.state_dict(), "optimizer": optimizer.state_dict(),
            "schedule": schedule.state_dict(), "epochs": epochs, "inherited": list(inherited)}


class RankStop:
    """Early termination in the manner of successive halving: the validation accuracy of every
    candidate after each epoch is recorded, and a candidate below the ``rank``-th best of the
    earlier candidates' accuracies after the same epoch stops (none stops while fewer than
    ``rank`` earlier candidates reached that epoch).

    The record lives in the evaluator: each pool worker keeps its own, and a resumed search
    starts a new one, so with it a search's results depend on the workers and on resumes."""

    def __init__(self, rank: int):
        if rank < 1:
            raise ValueError(f"stop_below_rank must be at least 1, not {rank}")
        self.rank = rank
        self.accuracies: dict[int, list[float]] = defaultdict(list)

    def threshold(self, epoch: int) -> Optional[float]:
        """The ``rank``-th best accuracy recorded after ``epoch`` (None: too few)."""
        recorded = sorted(self.accuracies[epoch], reverse=True)
        return recorded[self.rank - 1] if len(recorded) >= self.rank else None

    def observe(self, epoch: int, accuracy: float) -> Optional[str]:
        """Record a candidate's ``accuracy`` after ``epoch``; why it stops, or None."""
        threshold = self.threshold(epoch)
        self.accuracies[epoch].append(accuracy)
        if threshold is None or accuracy >= threshold:
            return None
        return (f"stopped after epoch {epoch}: validation accuracy {accuracy:.4f} is below "
                f"{threshold:.4f}, number {self.rank} of the earlier candidates after that epoch")


def out_of_memory(error: RuntimeError, individual, **info: Any) -> Evaluation:
    """The failed evaluation, reason ``"out of memory"``, of a candidate whose evaluation
    raised ``error`` for lack of memory (the CUDA cache is emptied, so that the search goes on
    with the next candidate); ``error`` itself, raised again, when it is another error. Every
    evaluator catches ``RuntimeError`` around its work and hands it here."""
    if not _is_out_of_memory(error):
        raise error
    _release_cuda_memory()
    return failure("out of memory", individual, **info)


def _is_out_of_memory(error: RuntimeError) -> bool:
    text = str(error)
    return isinstance(error, torch.cuda.OutOfMemoryError) or "out of memory" in text or \
        "can't allocate memory" in text


def _release_cuda_memory() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class TableEvaluator:
    """Look a candidate up in a benchmark table (a CSV, one row per architecture).

    :param path: the CSV file, e.g. NAS-Bench-201's ``nb201.csv``.
    :param key: ``key(individual) -> str``, the value of ``key_column`` for the candidate
        (``deapnas.spaces.nb201.arch_string`` for NAS-Bench-201).
    :param metric: the column used as fitness (e.g. ``cifar10valid_xvalid_acc_200ep_mean``).
    :param report: columns recorded beside it for the final report, never used for selection
        (e.g. ``cifar10_test_acc_200ep``; one name or several), each in the evaluation's
        ``info`` under its name; :attr:`report` holds them as a tuple.
    :param objectives: what the fitness tuple holds, in order: ``"accuracy"`` (the ``metric``
        column), ``"params"`` (``columns["params"]``, in millions in NAS-Bench-201, returned as
        a parameter count) and ``"train_seconds"`` (``columns["train_seconds"]``).
    :param columns: the table's column for each objective besides accuracy; by default the
        ``*_params_M`` and ``*_train_time_s_200ep`` columns of the metric's dataset.

    Values are returned in the table's own units (NAS-Bench-201: percent).
    """

    def __init__(self, path: str | os.PathLike, key: Callable[[Any], str], metric: str,
                 report: str | Iterable[str] | None = None, key_column: str = "arch_str",
                 objectives: Iterable[str] = ("accuracy",), columns: Optional[dict] = None):
        objective_weights(objectives)
        self.path, self.key, self.metric = os.fspath(path), key, metric
        self.report: tuple[str, ...] = (report,) if isinstance(report, str) else tuple(report or ())
        self.objectives = tuple(objectives)
        header = _table_header(self.path)
        columns = {"accuracy": metric, **_dataset_columns(header, metric), **(columns or {})}
        missing = [o for o in self.objectives if o not in columns]
        if missing:
            raise ValueError(f"{self.path} has no column for the objective "
                             f"{', '.join(missing)} of {metric}")
        self.columns = [columns[o] for o in self.objectives] + list(self.report)
        self.rows = _read_table(self.path, key_column, self.columns)

    def settings(self) -> dict:
        """What decides its fitness values, as JSON (see :func:`settings_of`)."""
        return {"evaluator": settings_of(type(self)), "table": self.path,
                "key": settings_of(self.key), "columns": self.columns,
                "objectives": list(self.objectives)}

    def __call__(self, individual) -> Evaluation:
        row = self.rows.get(self.key(individual))
        if row is None:
            return failure(f"{self.key(individual)} is not in {self.path}", individual)
        values = [round(v * 1e6) if o == "params" and c.endswith("_params_M") else v
                  for o, c, v in zip(self.objectives, self.columns, row)]
        info = {"reason": None, **{o: v for o, v in zip(self.objectives, values)
                                   if o != "accuracy"}}
        info.update(zip(self.report, row[len(self.objectives):]))
        return Evaluation(tuple(values), **info)

    def check_keys(self, keys: Iterable[str]) -> None:
        """Raise ``ValueError`` when none of ``keys`` (a few genomes' keys) is in the table:
        the table and the space disagree on the key format, and every look-up would fail."""
        keys = list(keys)
        if keys and not any(k in self.rows for k in keys):
            example = next(iter(self.rows), "nothing")
            raise ValueError(f"none of {len(keys)} random architectures is in {self.path}: "
                             f"the space writes keys like {keys[0]!r}, the table holds keys "
                             f"like {example!r}; use the table made for this space")


def _table_header(path: str) -> list[str]:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"benchmark table {path!r} does not exist")
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            return next(csv.reader(handle), [])
    except (UnicodeDecodeError, csv.Error) as error:
        raise ValueError(f"{path} is not a readable CSV table ({error})") from None


def _dataset_columns(header: list[str], metric: str) -> dict[str, str]:
    """The ``params`` and ``train_seconds`` columns of the dataset ``metric`` belongs to:
    NAS-Bench-201 names them ``<dataset>_params_M`` and ``<dataset>_train_time_s_200ep``."""
    found = {}
    for objective, suffix in (("params", "_params_M"), ("train_seconds", "_train_time_s_200ep")):
        matches = [c for c in header if c.endswith(suffix)
                   and metric.lower().startswith(c[:-len(suffix)].split("-")[0].lower())]
        if matches:
            found[objective] = max(matches, key=len)
    return found


def _read_table(path: str, key_column: str, columns: list[str]) -> dict[str, tuple]:
    """``{key: (float(column) for column in columns)}``; every problem names the file, the
    row and the column."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"benchmark table {path!r} does not exist")
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            header = reader.fieldnames or []
            missing = [c for c in [key_column, *columns] if c not in header]
            if missing:
                raise ValueError(f"{path} has no column {', '.join(missing)}"
                                 f"{_similar_columns(missing, header)}; check --table, "
                                 "--metric and --report")
            rows: dict[str, tuple] = {}
            for row in reader:
                where = f"{path} row {reader.line_num}"
                key = row[key_column]
                if key in rows:
                    raise ValueError(f"{where}: {key_column} {key!r} appears twice; a table "
                                     "holds one row per architecture")
                rows[key] = tuple(_cell(row, c, where) for c in columns)
            return rows
    except (UnicodeDecodeError, csv.Error) as error:
        raise ValueError(f"{path} is not a readable CSV table ({error})") from None


def _similar_columns(missing: list[str], header: list[str]) -> str:
    """``" (did you mean ...?)"``, the header's columns close to the ``missing`` ones. The
    rest of the file's first line is never shown: the path may name a file that is no table
    (``/etc/passwd``), whose content is nobody's business."""
    close = [c for name in missing for c in difflib.get_close_matches(name, header, n=2)]
    return f" (did you mean {' or '.join(map(repr, dict.fromkeys(close)))}?)" if close else ""


def _cell(row: dict, column: str, where: str) -> float:
    text = row.get(column)
    if text is None:
        raise ValueError(f"{where} ends before column {column}: the file is cut short")
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{where} column {column}: {text!r} is not a number") from None
