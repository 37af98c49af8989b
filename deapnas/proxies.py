"""Zero-cost proxies: scores of an *untrained* network, from one or a few forward and backward
passes, that rank architectures roughly as their trained accuracy does.

Every proxy is a function ``proxy(net, inputs, targets) -> float`` of a built network and a
minibatch (``inputs`` N x C x H x W, ``targets`` N class indices); higher is better for all of
them. Those that need no data (``synflow``, ``params``, ``flops``) read only the shape of
``inputs``. :data:`PROXIES` names them all:

``synflow``
    Synaptic flow (Tanaka et al., 2020): with every parameter replaced by its absolute value and
    an all-ones input, the sum over convolution and linear weights of ``|w * dR/dw|``, where R
    is the sum of the outputs. Computed in double precision, in evaluation mode, with every
    BatchNorm layer bypassed (its input passed on unchanged), as Abdelfattah et al. (2021)
    compute it on NAS-Bench-201 (their ``bn=False`` copy): the score then depends on the
    architecture and its initial weights only.
``naswot``
    NASWOT (Mellor et al., 2021): the log-determinant of the kernel ``K[i, j]`` = the number of
    ReLU units (inputs of ``nn.ReLU`` and ``nn.ReLU6`` modules) on which samples i and j agree
    about being active. A singular kernel (two samples with identical codes) scores ``-inf``.
``jacob_cov``
    The Jacobian covariance score of Mellor et al.'s first version (2020), as Abdelfattah et al.
    (2021) use it: with ``J`` the gradients of the summed outputs with respect to each input
    sample, ``-sum(log(v + k) + 1 / (v + k))`` over the eigenvalues ``v`` of the correlation
    matrix of ``J``'s rows, ``k = 1e-5``. A sample whose gradient is constant (a network whose
    output ignores its input) has no correlation with anything: its row and column are 0, which
    gives the lowest score, where a plain correlation would give NaN.
``snip``
    Connection sensitivity (Lee et al., 2019): the sum over convolution and linear weights of
    ``|w * dL/dw|`` for the cross-entropy loss L on the minibatch.
``grad_norm``
    The sum over convolution and linear layers of the Euclidean norm of ``dL/dw``
    (Abdelfattah et al., 2021).
``params``
    The number of parameters: a baseline that the proxies above must beat.
``flops``
    Floating-point operations of a forward pass of one sample, counted by a
    :class:`torch.utils.flop_counter.FlopCounterMode` pass (convolutions and matrix products
    only, two per multiply-add; pooling, BatchNorm and element-wise operations cost nothing).

BatchNorm: ``synflow`` bypasses it (above). The proxies that see data (``naswot``,
``jacob_cov``, ``snip``, ``grad_norm``) keep BatchNorm in training mode, as their papers do, so
it normalises with the minibatch's statistics; every other module is in evaluation mode, so
dropout and drop-path are off and no proxy draws random numbers. ``flops`` runs in evaluation
mode. Pooling needs nothing special. Every proxy scores a deep copy of ``net``: its
parameters, buffers (BatchNorm's running statistics), gradients and training mode are left as
they were. So a proxy of the same network on the same minibatch is the same value; seed torch
before building the network (as :class:`ProxyEvaluator` does) to make the whole score
repeatable.

:class:`ProxyEvaluator` turns a proxy into a fitness function (``toolbox.evaluate``) for any
space: training-free search.
"""
from __future__ import annotations

import copy
import functools
import math
import time
from typing import Any, Callable, Optional

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .data import Dataset
from .fitness import Evaluation, failure, out_of_memory, settings_of
from .graph import InvalidGraphError
from .networks import count_parameters
from .options import DATA_FREE, PROXY_NAMES
from .training import CandidateFailure, evaluation_seed, resolve_device

Proxy = Callable[[nn.Module, torch.Tensor, torch.Tensor], float]

#: Layers whose weights the gradient-based proxies sum over (Abdelfattah et al., 2021).
SCORED_LAYERS = (nn.Conv2d, nn.Linear)

#: The eigenvalue offset of ``jacob_cov`` (Mellor et al., 2020).
JACOB_COV_K = 1e-5


def synflow(net: nn.Module, inputs: torch.Tensor, targets: Optional[torch.Tensor] = None
            ) -> float:
    """Synaptic flow (Tanaka et al., 2020) of ``net`` for inputs shaped like ``inputs`` (their
    values and ``targets`` are not used); see the module documentation."""
    net = _copy(net, batch_statistics=False).double()
    for parameter in net.parameters():
        parameter.data.abs_()
    for module in _batch_norms(net):
        module.register_forward_hook(lambda module, args, output: args[0])
    ones = torch.ones((1, *inputs.shape[1:]), dtype=torch.float64, device=inputs.device)
    _logits(net(ones)).sum().backward()
    return sum(float((w.detach() * w.grad).abs().sum()) for w in _scored_weights(net))


def naswot(net: nn.Module, inputs: torch.Tensor, targets: Optional[torch.Tensor] = None
           ) -> float:
    """NASWOT (Mellor et al., 2021): log-determinant of the binary activation-code kernel of
    the minibatch (``targets`` are not used)."""
    net = _copy(net, batch_statistics=True)
    kernel = torch.zeros(len(inputs), len(inputs), dtype=torch.float64, device=inputs.device)

    def add_codes(module, args):
        codes = (args[0].detach().reshape(len(inputs), -1) > 0).double()
        kernel.add_(codes @ codes.T + (1 - codes) @ (1 - codes).T)

    for module in net.modules():
        if isinstance(module, (nn.ReLU, nn.ReLU6)):
            module.register_forward_pre_hook(add_codes)
    with torch.no_grad():
        net(inputs)
    sign, logdet = torch.linalg.slogdet(kernel)
    return float(logdet) if sign > 0 else -math.inf


def jacob_cov(net: nn.Module, inputs: torch.Tensor, targets: Optional[torch.Tensor] = None
              ) -> float:
    """The Jacobian covariance score (Mellor et al., 2020) of the minibatch (``targets`` are
    not used)."""
    net = _copy(net, batch_statistics=True)
    inputs = inputs.detach().clone().requires_grad_(True)
    _logits(net(inputs)).sum().backward()
    jacobian = inputs.grad.reshape(len(inputs), -1).double()
    centred = jacobian - jacobian.mean(1, keepdim=True)
    norms = centred.norm(dim=1)
    centred = centred / torch.where(norms > 0, norms, torch.ones_like(norms))[:, None]
    eigenvalues = torch.linalg.eigvalsh(centred @ centred.T).clamp(min=0)
    return float(-(torch.log(eigenvalues + JACOB_COV_K) + 1 / (eigenvalues + JACOB_COV_K)).sum())


def snip(net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> float:
    """Connection sensitivity (Lee et al., 2019) for the cross-entropy of the minibatch."""
    weights = _loss_gradients(net, inputs, targets)
    return sum(float((w.detach() * w.grad).abs().sum()) for w in weights)


def grad_norm(net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> float:
    """The summed per-layer gradient norms of the minibatch's cross-entropy (Abdelfattah et
    al., 2021)."""
    return sum(float(w.grad.norm()) for w in _loss_gradients(net, inputs, targets))


def params(net: nn.Module, inputs: Optional[torch.Tensor] = None,
           targets: Optional[torch.Tensor] = None) -> float:
    """The number of parameters of ``net`` (the minibatch is not used)."""
    return float(count_parameters(net))


def flops(net: nn.Module, inputs: torch.Tensor, targets: Optional[torch.Tensor] = None
          ) -> float:
    """Floating-point operations of one sample shaped like ``inputs``' first, forward only."""
    net = _copy(net, batch_statistics=False)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(torch.zeros_like(inputs[:1]))
    return float(counter.get_total_flops())


#: Every proxy by name, for ``ProxyEvaluator(proxy="synflow")`` and ``--fitness proxy:NAME``.
#: Each is the function of this module of that name; :data:`deapnas.options.PROXY_NAMES` lists
#: them, so that the command line offers them without importing torch.
PROXIES: dict[str, Proxy] = {name: globals()[name] for name in PROXY_NAMES}


def get_proxy(name: str) -> Proxy:
    """The proxy registered as ``name`` in :data:`PROXIES`."""
    try:
        return PROXIES[name]
    except KeyError:
        raise ValueError(f"unknown proxy {name!r}; choose one of {', '.join(PROXIES)}") from None


def _copy(net: nn.Module, batch_statistics: bool) -> nn.Module:
    """A deep copy of ``net`` without gradients, in evaluation mode but for its BatchNorm
    layers when ``batch_statistics``."""
    net = copy.deepcopy(net).eval()
    for module in _batch_norms(net):
        module.train(batch_statistics)
    net.zero_grad(set_to_none=True)
    for parameter in net.parameters():
        parameter.requires_grad_(True)
    return net


def _batch_norms(net: nn.Module) -> list[nn.Module]:
    return [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def _logits(output: Any) -> torch.Tensor:
    """The classifier output of a forward pass (the first of a ``(logits, auxiliary)`` pair)."""
    return output[0] if isinstance(output, tuple) else output


def _scored_weights(net: nn.Module) -> list[torch.Tensor]:
    """The weights of ``net``'s convolution and linear layers that received a gradient."""
    return [m.weight for m in net.modules()
            if isinstance(m, SCORED_LAYERS) and m.weight.grad is not None]


def _loss_gradients(net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor
                    ) -> list[torch.Tensor]:
    """The scored weights of a copy of ``net`` (BatchNorm on batch statistics), with the
    gradients of the minibatch's cross-entropy."""
    net = _copy(net, batch_statistics=True)
    nn.functional.cross_entropy(_logits(net(inputs)), targets).backward()
    return _scored_weights(net)


class ProxyEvaluator:
    """Score a candidate's untrained network with a proxy and return ``(score,)``: a fitness
    function (``toolbox.evaluate``) that trains nothing.

    :param build: ``build(individual, input_shape, num_classes) -> nn.Module``, e.g.
        ``functools.partial(nb201.build_network, channels=16)`` or a space's ``build_network``.
    :param proxy: a name in :data:`PROXIES`.
    :param data: the dataset whose training split gives the minibatch: ``batch_size`` images
        drawn once, with ``seed``, and used for every candidate. Proxies in :data:`DATA_FREE`
        need only ``input_shape`` and ``num_classes`` instead.
    :param seed: torch is seeded with ``evaluation_seed(seed, individual.eval_seed)`` (0 when
        the individual has none) before the network is built, so the same candidate gets the
        same initial weights and the same score.
    :param max_params: a network with more parameters fails without being scored.

    ``info`` holds the proxy's name, the network's ``params`` and ``score_seconds``. A genome
    that builds no network (an invalid graph), a network over the cap and a score that is not
    finite (NASWOT's singular kernel) are failures (:func:`~deapnas.fitness.failure`), with the
    reason.
    """

    def __init__(self, build: Callable[..., nn.Module], proxy: str = "synflow",
                 data: Optional[Dataset] = None, *, input_shape: Optional[tuple] = None,
                 num_classes: Optional[int] = None, batch_size: int = 64, seed: int = 0,
                 device: str = "auto", max_params: Optional[int] = None):
        self.score = get_proxy(proxy)
        if data is None and proxy not in DATA_FREE:
            raise ValueError(f"the proxy {proxy} scores a minibatch of images: give data, or "
                             f"use one of {', '.join(sorted(DATA_FREE))}")
        if data is None and (input_shape is None or num_classes is None):
            raise ValueError("without data, give input_shape and num_classes")
        self.build, self.proxy, self.data = build, proxy, data
        self.input_shape = tuple(input_shape or data.input_shape)
        self.num_classes = num_classes or data.num_classes
        self.batch_size, self.seed, self.max_params = batch_size, seed, max_params
        self.device = resolve_device(device)
        self._batch: Optional[tuple[torch.Tensor, torch.Tensor]] = None

    def settings(self) -> dict:
        """What decides its fitness values, as JSON (see :func:`~deapnas.fitness.settings_of`);
        the device is left out."""
        return {"evaluator": settings_of(type(self)), "proxy": self.proxy,
                "build": settings_of(self.build), "data": settings_of(self.data),
                "input_shape": list(self.input_shape), "num_classes": self.num_classes,
                "batch_size": self.batch_size, "seed": self.seed, "max_params": self.max_params}

    def for_device(self, device: str) -> "ProxyEvaluator":
        """A copy that scores on ``device`` (how a pool worker pinned to a device uses it)."""
        clone = copy.copy(self)
        clone.device, clone._batch = resolve_device(device), None
        return clone

    def minibatch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(inputs, targets)`` on the device: ``batch_size`` training images drawn with the
        seed, or one blank input for a data-free proxy (drawn once)."""
        if self._batch is None:
            if self.data is None:
                inputs = torch.zeros((1, *self.input_shape))
                targets = torch.zeros(1, dtype=torch.long)
            else:
                train = self.data.train
                generator = torch.Generator().manual_seed(self.seed)
                chosen = torch.randperm(len(train.y), generator=generator)[:self.batch_size]
                inputs, targets = train.x[chosen], train.y[chosen]
            self._batch = inputs.to(self.device), targets.to(self.device)
        return self._batch

    def __call__(self, individual) -> Evaluation:
        start = time.perf_counter()
        info: dict[str, Any] = {"proxy": self.proxy, "params": None}
        try:
            net = self.network(individual)
            info["params"] = count_parameters(net)
            score = self.score(net, *self.minibatch())
            if not math.isfinite(score):
                raise CandidateFailure(f"its {self.proxy} score is {score}")
        except (InvalidGraphError, CandidateFailure) as error:
            return failure(str(error), individual,
                           score_seconds=time.perf_counter() - start, **info)
        except RuntimeError as error:
            return out_of_memory(error, individual,
                                 score_seconds=time.perf_counter() - start, **info)
        return Evaluation((score,), reason=None, score_seconds=time.perf_counter() - start,
                          **info)

    def network(self, individual) -> nn.Module:
        """The candidate's untrained network on the device, its weights drawn from the seed,
        after the parameter cap check (counted on the meta device, nothing allocated)."""
        build = functools.partial(self.build, individual, self.input_shape, self.num_classes)
        if self.max_params is not None and count_parameters(build) > self.max_params:
            raise CandidateFailure(f"{count_parameters(build)} parameters exceed the cap of "
                                   f"{self.max_params}")
        seed = evaluation_seed(self.seed, getattr(individual, "eval_seed", 0))
        cuda = [self.device.index or 0] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda), torch.device(self.device):
            torch.manual_seed(seed)
            return build()
