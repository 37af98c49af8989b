"""RENAS's reinforced mutation controller (Chen et al., 2019, §4.2-4.3, Fig. 1, Algorithm 2).

The controller reads a genome as a string of tokens and proposes a mutation of it. For every
block of the genome a *router* picks which position of the block to change, then an *input
mutator* (for a position that names one of the block's inputs) or an *op mutator* (any other
position) picks its new value. It learns from the fitness of the children it made, by
REINFORCE with the reward tan(f * pi / 2), a moving-average baseline and an entropy bonus.

It works on any fixed-length categorical genome described by a :class:`GenomeLayout` (the
NASNet-like cells of :mod:`deapnas.spaces.nasnet`, NAS-Bench-201 cells...) and plugs into a
DEAP toolbox the way DEAP's CMA-ES strategy does, as an object whose methods are registered::

    controller = MutationController(nasnet.layout(blocks=5))
    toolbox.register("mutate", controller.mutate)        # (child,), in place
    toolbox.register("update", controller.update)        # after the children are scored
    toolbox.register("state_dict", controller.state_dict)            # checkpoints
    toolbox.register("load_state_dict", controller.load_state_dict)

The actions a mutation took travel on the child (``child.mutation``, JSON), so ``update`` pairs
each reward with its actions without any hidden state.

The network (sizes and settings from §5.1.3): a token embedding (100) and a bidirectional LSTM
(100 per direction) encode the genome's string, in which each block's tokens are followed by
one token for its combination (the paper's 5B-token string). The router scores each position
of the block from its hidden state with one shared linear layer; the op mutator maps the
chosen position's hidden state to one logit per operation; the input mutator scores each
candidate input (the hidden state of an earlier block's combination token, or a learned begin
state for each external input such as the two previous cells) by attention,
``v . tanh(W [candidate; chosen position])``. Every logit is divided by the temperature (5.0)
and squashed by ``2.5 * tanh``; parameters start from N(0, 0.01); Adam at 0.001.

The network is tiny (a string of a few dozen tokens), so the controller samples and learns on
one torch thread whatever the process's setting (:func:`on_one_thread`): on a shared two-core
machine two threads made each step tens of times slower, and sums split across threads round
differently, so one thread also makes the controller's choices independent of the count.
"""
from __future__ import annotations

import functools
import math
import random
from dataclasses import dataclass
from typing import Any, Callable, Hashable, Iterable, Optional, Sequence

import torch
from torch import nn

from .training import torch_threads


@dataclass(frozen=True)
class GenomeLayout:
    """How a fixed-length categorical genome is read by the controller (and mutated at random).

    :param choices: per position, the tokens it may hold (JSON values: strings, ints).
    :param blocks: the positions grouped in blocks; a mutation changes one position per block.
        Every position belongs to exactly one block.
    :param inputs: the positions whose token names an input of their block: an int ``k`` below
        ``external`` names external state ``k`` (a cell's two previous cells), ``external + k``
        the output of block ``k``, which must come before the position's block.
    :param external: how many external states input positions may name.
    """

    choices: tuple[tuple[Hashable, ...], ...]
    blocks: tuple[tuple[int, ...], ...]
    inputs: frozenset[int] = frozenset()
    external: int = 0

    def __post_init__(self):
        positions = sorted(p for block in self.blocks for p in block)
        if not self.choices or positions != list(range(len(self.choices))):
            raise ValueError(f"the blocks must hold every position 0..{len(self.choices) - 1} "
                             f"exactly once, not {self.blocks}")
        for position, options in enumerate(self.choices):
            if not options or len(set(options)) != len(options):
                raise ValueError(f"position {position} needs distinct choices, not {options}")
        if self.external < 0:
            raise ValueError(f"external must be >= 0, not {self.external}")
        for position in self.inputs:
            allowed = range(self.external + self.block_of[position])
            if any(type(v) is not int or v not in allowed for v in self.choices[position]):
                raise ValueError(f"input position {position} may only name the external states "
                                 f"and earlier blocks ({list(allowed)}), not "
                                 f"{self.choices[position]}")

    @classmethod
    def flat(cls, choices: Sequence[Hashable], length: int, block_size: Optional[int] = None
             ) -> "GenomeLayout":
        """``length`` positions that each hold one of ``choices`` (no inputs), in blocks of
        ``block_size`` consecutive positions; by default one block, so a mutation changes one
        position (NAS-Bench-201: ``GenomeLayout.flat(nb201.OPS, 6)``)."""
        size = block_size or length
        if not 1 <= size <= length:
            raise ValueError(f"block_size must lie in [1, {length}], not {block_size}")
        return cls((tuple(choices),) * length,
                   tuple(tuple(range(start, min(start + size, length)))
                         for start in range(0, length, size)))

    @functools.cached_property
    def block_of(self) -> dict[int, int]:
        """The block of every position."""
        return {p: b for b, block in enumerate(self.blocks) for p in block}

    def check(self, tokens: Sequence) -> None:
        """Raise a ``ValueError`` naming the first token that does not fit the layout."""
        if len(tokens) != len(self.choices):
            raise ValueError(f"the layout has {len(self.choices)} positions, the genome "
                             f"{len(tokens)}")
        for position, (token, options) in enumerate(zip(tokens, self.choices)):
            if token not in options:
                raise ValueError(f"position {position} holds {token!r}, not one of {options}")

    def alternatives(self, tokens: Sequence, position: int, exclude_current: bool = True
                     ) -> list:
        """The values ``position`` may be changed to (all but its current one by default)."""
        return [v for v in self.choices[position]
                if not (exclude_current and v == tokens[position])]


def init_layout(container: Callable[[list], Sequence], layout: GenomeLayout,
                rng: Optional[random.Random] = None) -> Sequence:
    """A genome of ``layout`` with every position drawn uniformly among its choices, in order
    (the random initialisation of :func:`deapnas.spaces.nasnet.init_cell` and
    :func:`deapnas.spaces.nb201.init_cell`, draw for draw), from ``rng`` (default: the
    ``random`` module's stream)."""
    return container([(rng or random).choice(options) for options in layout.choices])


def mut_layout(individual: list, layout: GenomeLayout, exclude_current: bool = True
               ) -> tuple[list]:
    """Random mutation with the controller's action structure (RENAS's EA baseline): in every
    block, one position drawn uniformly among those that can change takes a value drawn
    uniformly among its alternatives."""
    for block in layout.blocks:
        movable = [p for p in block if layout.alternatives(individual, p, exclude_current)]
        if movable:
            position = random.choice(movable)
            individual[position] = random.choice(
                layout.alternatives(individual, position, exclude_current))
    return individual,


def on_one_thread(method: Callable) -> Callable:
    """Run ``method`` with torch on one thread, the process's thread count restored after."""
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        with torch_threads(1):
            return method(*args, **kwargs)
    return wrapper


class ControllerNet(nn.Module):
    """The controller's layers (see the module docstring): embedding, bidirectional LSTM
    encoder, learned begin states, router, op mutator and input attention."""

    def __init__(self, layout: GenomeLayout, embedding_size: int = 100, hidden_size: int = 100):
        super().__init__()
        self.layout = layout
        self.string: list[Optional[int]] = []  # a position, or None for a combination token
        self.position_rows, self.block_rows = [0] * len(layout.choices), []
        for block in layout.blocks:
            for position in block:
                self.position_rows[position] = len(self.string)
                self.string.append(position)
            self.block_rows.append(len(self.string))
            self.string.append(None)
        self.token_ids = {("combine",): 0}
        for position, options in enumerate(layout.choices):
            for value in options:
                self.token_ids.setdefault(self._kind(position, value), len(self.token_ids))
        operations = sorted({v for p, options in enumerate(layout.choices)
                             if p not in layout.inputs for v in options}, key=str)
        self.op_columns = {p: [operations.index(v) for v in options]
                           for p, options in enumerate(layout.choices) if p not in layout.inputs}
        width = 2 * hidden_size
        self.embedding = nn.Embedding(len(self.token_ids), embedding_size)
        self.encoder = nn.LSTM(embedding_size, hidden_size, batch_first=True, bidirectional=True)
        self.begin = nn.Parameter(torch.zeros(layout.external, width))
        self.router = nn.Linear(width, 1)
        self.op_mutator = nn.Linear(width, max(len(operations), 1))
        self.attention = nn.Sequential(nn.Linear(2 * width, hidden_size), nn.Tanh(),
                                       nn.Linear(hidden_size, 1, bias=False))

    def _kind(self, position: int, value) -> tuple:
        """Input tokens and operation tokens are embedded apart (input 1 is not op 1)."""
        return ("input" if position in self.layout.inputs else "op", value)

    def encode(self, tokens: Sequence) -> tuple[torch.Tensor, torch.Tensor]:
        """Hidden states of the genome's positions (positions x 2H) and of the blocks'
        combination tokens (blocks x 2H)."""
        ids = [self.token_ids[("combine",) if p is None else self._kind(p, tokens[p])]
               for p in self.string]
        states = self.encoder(self.embedding(torch.tensor([ids])))[0][0]
        return states[self.position_rows], states[self.block_rows]

    def router_logits(self, states: torch.Tensor, positions: Sequence[int]) -> torch.Tensor:
        """One logit per position of ``positions``."""
        return self.router(states[list(positions)]).squeeze(-1)

    def value_logits(self, states: torch.Tensor, block_states: torch.Tensor, position: int
                     ) -> torch.Tensor:
        """One logit per choice of ``position``: attention over its candidate inputs for an
        input position, the op mutator otherwise."""
        if position not in self.layout.inputs:
            return self.op_mutator(states[position])[self.op_columns[position]]
        candidates = torch.cat([self.begin, block_states])[list(self.layout.choices[position])]
        query = states[position].expand(len(candidates), -1)
        return self.attention(torch.cat([candidates, query], 1)).squeeze(-1)


class MutationController:
    """RENAS's mutation controller for genomes of ``layout``; see the module docstring.

    :param layout: the genome's :class:`GenomeLayout`.
    :param embedding_size: token embedding size (paper: 100).
    :param hidden_size: LSTM hidden size per direction (paper: 100).
    :param temperature: logits are divided by it (paper: 5.0).
    :param tanh_constant: then squashed to ``tanh_constant * tanh(logits)`` (paper: 2.5).
    :param entropy_weight: the weight of the decisions' entropy added to the reward (paper: 0.1).
    :param lr: Adam's learning rate (paper: 0.001).
    :param init_std: parameters start from N(0, init_std) (paper: 0.01).
    :param baseline_decay: the moving-average baseline keeps this fraction of its value at
        each reward (the paper names a moving average, not its decay); it starts at the first
        reward.
    :param fitness_scale: the fitness value that means 100 % accuracy (1 for
        :class:`~deapnas.fitness.TrainEvaluator`, 100 for NAS-Bench-201's percentages).
    :param max_accuracy: accuracies are clipped to ``[0, max_accuracy]`` before the reward
        (tan diverges at 1).
    :param exclude_current: the new value always differs from the old one (the paper says
        the controller "changes" the chosen ingredient, not whether it may keep it).
    :param seed: seeds the initial weights and the sampling (default: drawn from ``random``).
    """

    def __init__(self, layout: GenomeLayout, *, embedding_size: int = 100,
                 hidden_size: int = 100, temperature: float = 5.0, tanh_constant: float = 2.5,
                 entropy_weight: float = 0.1, lr: float = 1e-3, init_std: float = 0.01,
                 baseline_decay: float = 0.95, fitness_scale: float = 1.0,
                 max_accuracy: float = 0.999, exclude_current: bool = True,
                 seed: Optional[int] = None):
        for name, value in (("temperature", temperature), ("tanh_constant", tanh_constant),
                            ("lr", lr), ("init_std", init_std), ("fitness_scale", fitness_scale)):
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be positive, not {value}")
        if not 0 <= baseline_decay < 1:
            raise ValueError(f"baseline_decay must lie in [0, 1), not {baseline_decay}")
        if not 0 < max_accuracy < 1:
            raise ValueError(f"max_accuracy must lie in (0, 1), not {max_accuracy}")
        self.layout = layout
        self.temperature, self.tanh_constant = temperature, tanh_constant
        self.entropy_weight, self.baseline_decay = entropy_weight, baseline_decay
        self.fitness_scale, self.max_accuracy = fitness_scale, max_accuracy
        self.exclude_current = exclude_current
        self.generator = torch.Generator().manual_seed(
            random.getrandbits(63) if seed is None else seed)
        self.net = ControllerNet(layout, embedding_size, hidden_size)
        for parameter in self.net.parameters():
            nn.init.normal_(parameter, 0.0, init_std, generator=self.generator)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr)
        self.baseline: Optional[float] = None
        self.updates = 0

    # -- acting ----------------------------------------------------------------------------

    @on_one_thread
    def mutate(self, individual: list) -> tuple[list]:
        """Change one position per block of ``individual`` in place, as the controller samples;
        the actions go to ``individual.mutation`` = ``{"parent": tokens, "actions":
        [[position, value], ...]}``. Fitness untouched (DEAP's contract)."""
        parent = list(individual)
        self.layout.check(parent)
        with torch.no_grad():
            actions = [action for action, _, _ in self._decisions(parent)]
        for position, value in actions:
            individual[position] = value
        individual.mutation = {"parent": parent, "actions": [list(a) for a in actions]}
        return individual,

    def log_prob(self, parent: Sequence, actions: Iterable[Sequence]
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """The log-probability that the controller takes ``actions`` on ``parent`` and the
        summed entropy of the distributions it draws them from (with gradients)."""
        total, entropy = torch.zeros(()), torch.zeros(())
        for _, log_prob, block_entropy in self._decisions(list(parent), list(actions)):
            total, entropy = total + log_prob, entropy + block_entropy
        return total, entropy

    def _decisions(self, tokens: list, actions: Optional[list] = None):
        """Per block with something to change: ``((position, value), log-probability,
        entropy)``, sampling the action or, given ``actions`` (one per such block), scoring
        it. All decisions read the parent's encoding (Algorithm 2)."""
        states, block_states = self.net.encode(tokens)
        given = iter(actions) if actions is not None else None
        for block in self.layout.blocks:
            movable = [p for p in block if self._alternatives(tokens, p)]
            if not movable:
                continue
            chosen = next(given, None) if given is not None else None
            if given is not None and chosen is None:
                raise ValueError(f"fewer actions than blocks that can change: {actions}")
            position, router_lp, router_entropy = self._pick(
                self.net.router_logits(states, movable), movable,
                None if chosen is None else chosen[0])
            options = self._alternatives(tokens, position)
            logits = self.net.value_logits(states, block_states, position)
            columns = [self.layout.choices[position].index(v) for v in options]
            value, value_lp, value_entropy = self._pick(logits[columns], options,
                                                        None if chosen is None else chosen[1])
            yield (position, value), router_lp + value_lp, router_entropy + value_entropy
        if given is not None and next(given, None) is not None:
            raise ValueError(f"more actions than blocks that can change: {actions}")

    def _alternatives(self, tokens: Sequence, position: int) -> list:
        return self.layout.alternatives(tokens, position, self.exclude_current)

    def _pick(self, logits: torch.Tensor, options: list, chosen: Any = None
              ) -> tuple[Any, torch.Tensor, torch.Tensor]:
        """Draw one of ``options`` (or take ``chosen``) from ``logits`` after temperature and
        tanh constant; ``(option, log-probability, entropy)``."""
        log_probs = torch.log_softmax(
            self.tanh_constant * torch.tanh(logits / self.temperature), 0)
        if chosen is None:
            index = int(torch.multinomial(log_probs.exp(), 1, generator=self.generator))
        elif chosen in options:
            index = options.index(chosen)
        else:
            raise ValueError(f"action value {chosen!r} is not one of {options}")
        return options[index], log_probs[index], -(log_probs.exp() * log_probs).sum()

    # -- learning --------------------------------------------------------------------------

    def reward(self, fitness: float) -> float:
        """tan(f * pi / 2) of the accuracy f = fitness / fitness_scale (§4.3), f clipped to
        [0, max_accuracy]; a failed candidate (non-finite fitness) earns 0."""
        accuracy = fitness / self.fitness_scale
        if not math.isfinite(accuracy):
            return 0.0
        return math.tan(min(max(accuracy, 0.0), self.max_accuracy) * math.pi / 2)

    @on_one_thread
    def update(self, individuals: Iterable) -> Optional[float]:
        """One REINFORCE step (Adam) from the scored children among ``individuals`` that carry
        a ``mutation`` record; the loss, or None when there was none. Each reward, plus
        ``entropy_weight`` times the entropy of the child's decisions, is compared with the
        moving-average baseline. A record is consumed (deleted) so that it teaches once."""
        losses = []
        for individual in individuals:
            record = getattr(individual, "mutation", None)
            if record is None or not individual.fitness.valid:
                continue
            log_prob, entropy = self.log_prob(record["parent"], record["actions"])
            reward = (self.reward(individual.fitness.values[0])
                      + self.entropy_weight * entropy.item())
            baseline = reward if self.baseline is None else self.baseline
            losses.append(-(reward - baseline) * log_prob)
            self.baseline = self.baseline_decay * baseline + (1 - self.baseline_decay) * reward
            del individual.mutation
        if not losses:
            return None
        loss = torch.stack(losses).mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.updates += 1
        return loss.item()

    # -- checkpoints -----------------------------------------------------------------------

    def state_dict(self) -> dict:
        """Weights, Adam's state, the sampling generator, the baseline and the update count:
        tensors and plain values (loadable with ``torch.load(weights_only=True)``)."""
        return {"net": self.net.state_dict(), "optimizer": self.optimizer.state_dict(),
                "generator": self.generator.get_state(), "baseline": self.baseline,
                "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        """Continue from a :meth:`state_dict` of a controller with the same layout and sizes."""
        self.net.load_state_dict(state["net"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.baseline, self.updates = state["baseline"], state["updates"]
