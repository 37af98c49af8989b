"""What a search or a final training will cost, worked out before anything runs: ``deapnas
search ... --dry-run`` and ``deapnas train DIR --dry-run``.

A run is a list of :class:`Phase` s, each a number of trainings (a range where the method's
count is adaptive) of networks sampled from the search space at the run's settings. Every
sampled network is measured once, on PyTorch's meta device (shapes only: no memory, no
arithmetic), per image: its forward FLOPs (:class:`torch.utils.flop_counter.FlopCounterMode`,
which counts a multiply-add of a convolution or a matrix product as two FLOPs), its parameters,
and the bytes of every tensor the forward pass makes (views and in-place results excluded):
the activations that the backward pass may keep. From those:

- FLOPs of one training = F × (3 × images per epoch × epochs + images scored), where F is the
  forward FLOPs per image and a backward pass counts twice a forward one;
- FLOPs of a phase = its trainings × the mean FLOPs of one training over the samples;
- peak activation memory = the largest sample's activation bytes per image × the batch size
  (weights, gradients and optimizer state come on top).

Each method's phases come from its entry in :data:`PLANS` (:func:`register_plan`); a method
without one is planned as ``--evaluations`` trainings by its training options. With
``calibrate``, a few real training steps of the largest sample on the run's device measure the
FLOPs per second that turn FLOPs into hours.
"""
from __future__ import annotations

import functools
import math
import random
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from statistics import fmean
from typing import Any, Callable, Optional

import torch
from deap import base
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import FlopCounterMode

from . import runner
from .controller import init_layout
from .graph import InvalidGraphError
from .methods import Method, egnas, get_method, minigen, nasgep, renas
from .options import RunConfig, flag
from .runner import Data, data_needed
from .spaces import Space, get_space
from .supernet import NB201_LAYOUT, AtAlpha, darts_layout
from .training import resolve_device

#: Genomes drawn and measured per kind of network.
SAMPLES = 4
#: Draws allowed per kind of network, for spaces where many genomes cannot be built.
MAX_DRAWS = 30
#: Training steps timed by ``--calibrate`` (after one untimed step).
CALIBRATION_STEPS = 3


# -- measuring a network ------------------------------------------------------------------------

@dataclass(frozen=True)
class Network:
    """A sampled network, measured for one image on the meta device."""

    flops: int
    activation_bytes: int
    params: int
    build: Callable[[], nn.Module] = field(repr=False)


class _TensorBytes(TorchDispatchMode):
    """Adds up the bytes of every tensor an operation makes (not views or in-place results,
    which share the memory of their input)."""

    def __init__(self):
        super().__init__()
        self.bytes = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if not any(r.alias_info is not None for r in func._schema.returns):
            self.bytes += sum(t.numel() * t.element_size() for t in tree_leaves(out)
                              if isinstance(t, torch.Tensor))
        return out


def measure(build: Callable[[], nn.Module], input_shape: tuple[int, ...]) -> Network:
    """The forward FLOPs, activation bytes and parameters of ``build()`` per image of
    ``input_shape``, built and run on the meta device in training mode, as it trains (on a
    batch of two images, halved: batch normalisation refuses a single value per channel)."""
    with torch.device("meta"):
        net = build()
        images = torch.empty(2, *input_shape)
    with torch.no_grad(), FlopCounterMode(display=False) as flops, _TensorBytes() as tensors:
        net(images)
    return Network(flops.get_total_flops() // 2, tensors.bytes // 2,
                   sum(p.numel() for p in net.parameters()), build)


def sample(genome: Callable[[], Any], build: Callable[..., nn.Module],
           input_shape: tuple[int, ...], num_classes: int, seed: int = 0,
           max_params: Optional[int] = None, samples: int = SAMPLES
           ) -> tuple[list[Network], int]:
    """``samples`` networks ``build(genome(), input_shape, num_classes)`` measured, and the
    number of draws that fail without training (cannot be built, or more parameters than
    ``max_params``); a ``ValueError`` when none of :data:`MAX_DRAWS` draws can be built. The
    random streams are left as they were."""
    networks, failed, first_error = [], 0, None
    state = random.getstate()
    random.seed(seed)
    try:
        while len(networks) < samples and len(networks) + failed < MAX_DRAWS:
            drawn = genome()
            try:
                network = measure(lambda: build(drawn, input_shape, num_classes), input_shape)
            except (InvalidGraphError, ValueError) as error:
                failed, first_error = failed + 1, first_error or error
                continue
            if max_params and network.params > max_params:
                failed += 1
            else:
                networks.append(network)
    finally:
        random.setstate(state)
    if not networks and first_error is not None:
        raise ValueError(f"none of {failed} sampled networks could be built ({first_error}); "
                         "check the width and depth settings") from None
    return networks, failed


# -- what a run needs and does ------------------------------------------------------------------

@dataclass
class Phase:
    """``trainings`` trainings (low, high; high None: no bound by count) of networks like
    ``networks``, each ``epochs`` passes over ``images`` images in batches of ``batch_size``
    and a forward pass over ``scored`` images; ``how`` says where the count comes from.
    A phase not ``in_total`` is a unit of an open-ended count, shown for scale."""

    name: str
    trainings: tuple[int, Optional[int]]
    how: str
    networks: list[Network] = field(default_factory=list)
    epochs: int = 0
    images: int = 0
    scored: int = 0
    batch_size: int = 1
    failed_draws: int = 0
    in_total: bool = True

    @property
    def flops_per_training(self) -> float:
        """Mean FLOPs of one training over the sampled networks (0 for look-ups)."""
        if not self.networks:
            return 0.0
        forward = fmean(n.flops for n in self.networks)
        return forward * (3 * self.images * self.epochs + self.scored)

    @property
    def flops(self) -> tuple[float, Optional[float]]:
        low, high = self.trainings
        return low * self.flops_per_training, \
            None if high is None else high * self.flops_per_training

    @property
    def largest(self) -> Optional[Network]:
        return max(self.networks, key=lambda n: n.activation_bytes, default=None)


@dataclass
class Estimate:
    """A run's plan: the search's phases, then those of ``deapnas train`` (``after``)."""

    title: str
    data: Data
    phases: list[Phase]
    after: list[Phase] = field(default_factory=list)
    flops_per_second: Optional[float] = None
    calibration: str = ""

    def total(self, phases: list[Phase]) -> tuple[float, Optional[float]]:
        """FLOPs of ``phases`` counted in the total, low and high (None: no bound)."""
        counted = [p.flops for p in phases if p.in_total]
        low = sum(f[0] for f in counted)
        high = None if any(f[1] is None for f in counted) else sum(f[1] for f in counted)
        return low, high

    def text(self) -> str:
        """The estimate in words, as ``--dry-run`` prints it."""
        lines = [f"dry run of {self.title}: nothing was written", "",
                 f"data: {self.data.what}: " + ("present" if self.data.present else
                                                 f"MISSING: {self.data.advice}")]
        if self.data.num_classes:
            lines.append(f"  images {'x'.join(map(str, self.data.input_shape))}, "
                         f"{self.data.num_classes} classes; train {self.data.train:,}, "
                         f"validation {self.data.val:,}, test {self.data.test:,}")
        for title, phases in (("the search", self.phases),
                              ("then `deapnas train` (the final training)", self.after)):
            if phases:
                lines += ["", f"{title}:"]
                for before, phase in zip([None, *phases], phases):
                    lines += self._phase(phase, before is not None
                                         and before.networks is phase.networks)
                lines.append(f"  total {self._range(self.total(phases), _flops)} FLOPs"
                             + self._hours(self.total(phases)))
        lines += ["", "FLOPs: forward passes counted by torch's FlopCounterMode on the meta "
                  "device (per image); a training image costs 3 forward passes; activation "
                  "memory: the tensors a forward pass makes. " +
                  (self.calibration or "Hours: add --calibrate to time a few training steps on "
                   "the run's device")]
        return "\n".join(lines)

    def _phase(self, phase: Phase, same_networks: bool) -> list[str]:
        count = self._range(phase.trainings, lambda n: f"{n:,}")
        lines = [f"- {phase.name}: {count}" + ("" if phase.in_total else " (not in the total)"),
                 f"    {phase.how}"]
        if phase.networks:
            flops = [n.flops for n in phase.networks]
            params = [n.params for n in phase.networks]
            largest = phase.largest
            lines += [
                "    the networks above" if same_networks else
                f"    {len(phase.networks)} sampled network(s): {_flops(min(flops))} to "
                f"{_flops(max(flops))} FLOPs per image (mean {_flops(fmean(flops))}), "
                f"{min(params):,} to {max(params):,} parameters"
                + (f"; {phase.failed_draws} more draw(s) fail without training"
                   if phase.failed_draws else ""),
                f"    per training: {phase.epochs} epoch(s) of {phase.images:,} images and "
                f"{phase.scored:,} images scored: {_flops(phase.flops_per_training)} FLOPs",
                f"    peak activation memory of the largest sample at batch {phase.batch_size}: "
                f"{_bytes(largest.activation_bytes * phase.batch_size)}",
                f"    FLOPs: {self._range(phase.flops, _flops)}" + self._hours(phase.flops)]
        else:
            lines.append("    nothing is trained")
        return lines

    def _hours(self, flops: tuple[float, Optional[float]]) -> str:
        if self.flops_per_second is None:
            return ""
        return ", about " + self._range(flops, lambda f: f"{f / self.flops_per_second / 3600:.3g}"
                                        ) + " hours"

    @staticmethod
    def _range(values: tuple[float, Optional[float]], show: Callable[[float], str]) -> str:
        low, high = values
        if high is None:
            return f"at least {show(low)} (no bound by count)"
        return show(low) if low == high else f"{show(low)} to {show(high)}"


def _flops(value: float) -> str:
    for unit, scale in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value:.3g}"


def _bytes(value: float) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if value >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value:.0f} B"


# -- each method's plan -------------------------------------------------------------------------

#: ``plan(config, options, data, method) -> (search phases, final training phases)`` by method
#: name.
PLANS: dict[str, Callable[[RunConfig, Any, Data, Method], tuple[list[Phase], list[Phase]]]] = {}


def register_plan(name: str):
    """Register the decorated function as the plan of the method ``name``."""
    def register(plan):
        PLANS[name] = plan
        return plan
    return register


def look_ups(count: Optional[int], how: str) -> Phase:
    """A table search's phase: look-ups, nothing trained."""
    return Phase("table look-ups", (count, count) if count else (1, None), how)


def _trainings(config: RunConfig, data: Data, genome: Callable[[], Any], evaluator: Any,
               name: str, count: tuple[int, Optional[int]], how: str, *,
               images: Optional[int] = None, scored: Optional[int] = None,
               epochs: Optional[int] = None, samples: int = SAMPLES) -> Phase:
    """A phase training networks sampled by ``genome`` and built by ``evaluator.build`` (a
    :class:`~deapnas.fitness.TrainEvaluator`) with its recipe (epochs and batch size), on
    ``images`` (default: the training split), scored on ``scored`` (default: the validation
    split)."""
    networks, failed = sample(genome, evaluator.build, data.input_shape, data.num_classes,
                              config.seed, evaluator.max_params, samples)
    return Phase(name, count, how, networks, epochs or evaluator.epochs,
                 data.train if images is None else images,
                 data.val if scored is None else scored, evaluator.recipe.batch_size, failed)


def final_training(config: RunConfig, options: Any, method: Method, data: Data,
                   genome: Callable[[], Any], epochs: Optional[int] = None,
                   channels: Optional[int] = None, samples: int = SAMPLES) -> Phase:
    """What ``deapnas train`` runs: the method's own final training, or the search's training
    options for ``final_epochs`` (or 20 epochs), on the training and validation images, scored
    on the test images (the choice :func:`deapnas.report.retrain` makes)."""
    from .report import RETRAIN_EPOCHS

    placeholder = data.placeholder()
    evaluator = (method.final_training(config, options, placeholder, epochs=epochs,
                                       channels=channels)
                 if method.final_training is not None else None)
    if evaluator is None:
        options = replace(options, channels=channels) if channels else options
        evaluator = runner.make_evaluator(config, options, get_space(config.space), placeholder)
        epochs = epochs or getattr(options, "final_epochs", None) or RETRAIN_EPOCHS
    return _trainings(config, data, genome, evaluator, "final training", (1, 1),
                      "the pick, trained from scratch", images=data.train + data.val,
                      scored=data.test, epochs=epochs, samples=samples)


def space_genome(space: Space) -> Callable[[], Any]:
    """A random genome of ``space``."""
    return functools.partial(space.init, space.individual())


def generic(config: RunConfig, options: Any, data: Data, method: Method
            ) -> tuple[list[Phase], list[Phase]]:
    """``--evaluations`` trainings by the training options (or look-ups in the table), then
    ``deapnas train``: the plan of a method without one of its own."""
    count = config.evaluations
    if config.tabular:
        return [look_ups(count, f"{flag('evaluations')} {count}")], []
    space = get_space(config.space)
    evaluator = runner.make_evaluator(config, options, space, data.placeholder())
    how = (f"{flag('evaluations')} {count}: one training per evaluation" if count else
           f"{flag('evaluations')} unset: {method.name}'s own stopping rule decides")
    search = _trainings(config, data, space_genome(space), evaluator,
                        "candidate trainings", (count, count) if count else (1, None), how)
    return [search], [final_training(config, options, method, data, space_genome(space))]


@register_plan("minigen")
def _minigen(config, options, data, method):
    """Trainings on the mini dataset until the stop rule, a round shown for scale."""
    n, k, period = options.population, options.keep, options.restart_period
    new = n - k if options.deterministic else n  # survivors' scores are reused when deterministic
    low = n + max(0, math.ceil((options.wins_needed - n) / new)) * new
    high = None
    if options.generations is not None:
        high = n + options.generations * new + (options.generations // period) * (n - new)
    if config.evaluations is not None:
        high = min(high or config.evaluations, config.evaluations)
        low = min(low, high)
    toolbox = minigen.register_operators(base.Toolbox(), get_space(config.space).individual(),
                                         **options.operators())
    evaluator = runner.make_evaluator(config, options, get_space(config.space),
                                      data.placeholder())
    mini = dict(images=options.train_per_class * data.num_classes,
                scored=options.score_per_class * data.num_classes)
    stop = (f"the stop rule: {options.wins_needed} networks above {options.win_threshold}; "
            f"at least n = {n}, then {new} new network(s) per generation"
            + (f", until {flag('generations')} {options.generations}"
               if options.generations is not None else "")
            + (f", at most {flag('evaluations')} {config.evaluations}" if config.evaluations
               else "") + " (survivors keep their score)" * options.deterministic)
    search = _trainings(config, data, toolbox.individual, evaluator,
                        "network trainings on the mini dataset", (low, high), stop, **mini)
    per_round = n + period * new
    round_ = Phase(f"one round ({period + 1} generations)", (per_round, per_round),
                   f"n + {flag('restart_period')} x {new} = {per_round} trainings; then a "
                   "restart", search.networks, search.epochs, search.images, search.scored,
                   search.batch_size, in_total=False)
    return [search, round_], [final_training(config, options, method, data,
                                             toolbox.individual)]


@register_plan("nasgep")
def _nasgep(config, options, data, method):
    """One-epoch trainings until the budget or the time limit, a generation for scale."""
    p = options.population
    toolbox = nasgep.make_toolbox(options)
    evaluator = nasgep.make_evaluator(replace(options, no_sharing=True), data.placeholder())

    def model():
        return nasgep.init_populations(toolbox, 1, 1, options.genes)[0][0]

    count = config.evaluations
    how = ("each evaluation is one epoch of one model; a generation trains P_i = "
           f"{p} models one epoch each, two for a model at T_c or above; a model retires after "
           f"E_max = {options.epochs} epochs; "
           + (f"{flag('evaluations')} {count}" if count else
              f"{flag('time_limit')} {config.time_limit:g} s ({config.time_limit / 3600:g} h) "
              "ends the search: the count is what fits in it"))
    search = _trainings(config, data, model, evaluator, "one-epoch model trainings",
                        (count, count) if count else (p, None), how, epochs=1)
    generation = Phase("one generation", (p, 2 * p), "P_i to 2 P_i one-epoch trainings",
                       search.networks, 1, search.images, search.scored, search.batch_size,
                       in_total=False)
    return [search, generation], [final_training(config, options, method, data,
                                                 model)]


@register_plan("egnas")
def _egnas(config, options, data, method):
    """The supernet's training and the ES steps' scorings (or the table's look-ups)."""
    per_step = 1 + options.samplings * (options.popsize * options.iterations + 1)
    steps_how = (f"1 + N x (λ x iterations + 1) = 1 + {options.samplings} x "
                 f"({options.popsize} x {options.iterations} + 1) = {per_step} per ES step")
    if config.tabular:
        steps = egnas.table_steps(config, options)
        return [look_ups(steps * per_step, f"{steps} ES steps; {steps_how}")], []
    space = config.space
    layout = darts_layout(options.edge_normalisation) if space == "darts" else NB201_LAYOUT

    def supernet() -> nn.Module:
        net = egnas.make_supernet(space, data.input_shape, data.num_classes, options)
        return AtAlpha(net, torch.zeros(layout.size))

    networks = [measure(supernet, data.input_shape)]
    steps = options.epochs - options.warmup
    scored = min(options.score_batches * options.score_batch_size, data.val)
    training = Phase("supernet weight training", (1, 1),
                     f"{flag('epochs')} {options.epochs} passes over the training share "
                     f"({options.warmup} of warm-up), one supernet", networks, options.epochs,
                     data.train, 0, options.batch_size)
    scoring = Phase("ES candidate scorings", (steps * per_step,) * 2,
                    f"{options.epochs} - {options.warmup} = {steps} ES steps; {steps_how}; each "
                    "a forward pass of the supernet", networks, 0, 0, scored,
                    options.score_batch_size)
    genome = space_genome(get_space(space))
    return [training, scoring], [final_training(config, options, method, data,
                                                genome)]


@register_plan("renas")
def _renas(config, options, data, method):
    """The first population, the children fine-tuned, the final retraining."""
    p, count = options.population, config.evaluations
    if config.tabular:
        return [look_ups(count, f"{flag('evaluations')} {count}: the population P = {p} and "
                                f"{count - p} children")], []
    space = get_space(config.space)
    genome = functools.partial(init_layout, space.individual(),
                               renas.genome_layout(space.name, options.blocks))
    evaluator = runner.make_evaluator(config, options, space, data.placeholder())
    images = options.train_per_class * data.num_classes if options.train_per_class else None
    children = count - renas.first_evaluations(p, False)
    first = _trainings(config, data, genome, evaluator, "first population", (p, p),
                       f"P = {p} trained from scratch", images=images)
    phases = [first,
              Phase("children", (children, children),
                    f"{flag('evaluations')} {count} - 2P: each fine-tuned from its parent's "
                    "weights", first.networks, options.finetune_epochs, first.images,
                    first.scored, first.batch_size),
              Phase("final retraining of the population", (p, p),
                    f"P = {p} trained from scratch; the best is the pick", first.networks,
                    first.epochs, first.images, first.scored, first.batch_size)]
    return phases, [final_training(config, options, method, data, genome)]


# -- the estimates ------------------------------------------------------------------------------

def search(config: RunConfig, options: Any, calibrate: bool = False) -> Estimate:
    """The estimate of a search with these settings, checked as :func:`deapnas.runner.start`
    checks them (settings, ``--out``, the data's presence); nothing is written. Missing data is
    reported, not refused: the estimate needs only its shape."""
    method = get_method(config.algorithm)
    runner.validate(config, options, method)
    out = Path(config.out) if config.out else runner.default_out(config, method)
    runner.check_out(out, config.algorithm)
    data = data_needed(config, options)
    if config.tabular and data.present:  # its columns and keys, checked as a search checks them
        runner.make_evaluator(config, options, get_space(config.space))
    plan = PLANS.get(method.name)
    phases, after = (plan or generic)(config, options, data, method)
    title = (f"`deapnas search --algorithm {method.name}` on {config.space}, {config.dataset}, "
             f"seed {config.seed}, into {out}")
    estimate = Estimate(title, data, phases, after)
    if calibrate:
        _calibrate(estimate, config.first_device)
    return estimate


def training(directory: str | Path, epochs: Optional[int] = None, device: Optional[str] = None,
             channels: Optional[int] = None, calibrate: bool = False) -> Estimate:
    """The estimate of ``deapnas train directory``: the pick's own network, measured."""
    from .report import trainable
    from .rundir import BEST, read_genome

    config, options, method, best = trainable(directory)
    if device:
        config.device = device
    space = get_space(best.get("space", config.space))
    genome = read_genome(space, best["genome"], Path(directory) / BEST)
    data = data_needed(config, options)
    phase = final_training(config, options, method, data, lambda: genome, epochs, channels,
                           samples=1)
    phase.how = "the pick of best.json, trained from scratch"
    estimate = Estimate(f"`deapnas train {directory}`", data, [], [phase])
    if calibrate:
        _calibrate(estimate, config.first_device)
    return estimate


def _calibrate(estimate: Estimate, device: str) -> None:
    """Time :data:`CALIBRATION_STEPS` training steps of the largest sampled network on
    ``device`` (random images of the right shape, SGD) and set the FLOPs per second."""
    sampled = [(n, p.batch_size) for p in estimate.phases + estimate.after for n in p.networks]
    if not sampled:
        estimate.calibration = "Hours: nothing is trained, so nothing was timed"
        return
    network, batch = max(sampled, key=lambda pair: pair[0].flops)
    where = resolve_device(device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = network.build().to(where)
        images = torch.randn(batch, *estimate.data.input_shape, device=where)
        labels = torch.randint(estimate.data.num_classes, (batch,), device=where)
        optimizer = torch.optim.SGD(net.parameters(), lr=1e-3)
        seconds = 0.0
        for step in range(CALIBRATION_STEPS + 1):
            if where.type == "cuda":
                torch.cuda.synchronize(where)
            started = time.perf_counter()
            optimizer.zero_grad()
            output = net(images)
            logits = output[0] if isinstance(output, tuple) else output
            nn.functional.cross_entropy(logits, labels).backward()
            optimizer.step()
            if where.type == "cuda":
                torch.cuda.synchronize(where)
            seconds += (time.perf_counter() - started) if step else 0.0
    flops = 3 * network.flops * batch * CALIBRATION_STEPS
    estimate.flops_per_second = flops / seconds
    estimate.calibration = (f"Hours: {CALIBRATION_STEPS} training steps of the largest sample "
                            f"at batch {batch} on {where} ran at "
                            f"{_flops(estimate.flops_per_second)}FLOP/s, applied to every phase "
                            "(smaller networks usually run slower per FLOP)")
