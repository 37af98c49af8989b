"""Gene expression programming (Ferreira, 2001) on DEAP's ``gp`` primitives.

A GEP chromosome is a fixed-length string of symbols of a ``deap.gp.PrimitiveSet``: a *head*
of functions or terminals followed by a *tail* of terminals only. With a tail of
``head * (n - 1) + 1`` symbols, where ``n`` is the largest arity of the set, every chromosome
decodes to a valid expression, whatever its symbols, so every operator below only has to keep
the tail free of functions. :class:`Chromosome` enforces that rule when it is constructed.

Decoding is Ferreira's Karva notation: the symbols are read breadth first, the first one is the
root and each function takes the next unused symbols as its arguments; symbols left over form a
non-coding region. :func:`karva` returns the expression as a ``deap.gp.PrimitiveTree`` (prefix
order), so DEAP's tree utilities (``str``, ``height``, ``searchSubtree``, ``gp.graph``,
``gp.compile``) work on decoded chromosomes::

    pset = gp.PrimitiveSet("cell", 0)
    pset.addPrimitive(operator.add, 2, name="add")
    pset.addTerminal("a", name="a"); pset.addTerminal("b", name="b")
    chromosome = Chromosome.from_string("add add | a b a", pset)   # head 2, tail 3
    str(karva(chromosome))                                         # 'add(add(a, b), a)'

The variation operators follow DEAP's contracts (``mutate(ind) -> (ind,)``, ``mate(a, b) ->
(a, b)``, in place, fitness untouched) and carry Ferreira's usual rates as keyword defaults:
point mutation at about two points per chromosome, IS and RIS transposition at 0.1 with
transposons of 1, 2 or 3 symbols, one-point and two-point recombination at 0.3 each.
:func:`reproduce` applies them in that order to two clones, as NASGEP (Alves & de Oliveira,
2020) reproduces its cells and genes.
"""
from __future__ import annotations

import copy
import random
from typing import Callable, Iterable, Optional, Sequence

from deap import gp

#: Ferreira's transposon lengths for IS and RIS transposition.
TRANSPOSON_LENGTHS = (1, 2, 3)


def max_arity(pset: gp.PrimitiveSet) -> int:
    """The largest arity among the set's primitives (0 for a set of terminals only)."""
    return max((p.arity for p in pset.primitives[pset.ret]), default=0)


def tail_length(head: int, arity: int) -> int:
    """Ferreira's rule: a head of ``head`` symbols needs a tail of ``head * (arity - 1) + 1``
    terminals for every chromosome to decode, ``arity`` being the largest function arity."""
    return head * (max(arity, 1) - 1) + 1


def functions(pset: gp.PrimitiveSet) -> list:
    """The set's functions (``gp.Primitive``)."""
    return list(pset.primitives[pset.ret])


def terminals(pset: gp.PrimitiveSet) -> list:
    """The set's terminals (``gp.Terminal``, arguments included)."""
    return list(pset.terminals[pset.ret])


class Chromosome(list):
    """A GEP chromosome: a list of ``gp.Primitive`` / ``gp.Terminal`` symbols of ``pset``, the
    first ``head`` of which form the head.

    The constructor checks the structure (length ``head + tail_length(head, max_arity(pset))``,
    terminals only in the tail, every symbol from ``pset``) and raises ``ValueError`` saying
    what is wrong. Copies and unpickled chromosomes skip the check, as they copy a valid one.
    """

    def __init__(self, symbols: Iterable, head: int, pset: gp.PrimitiveSet):
        super().__init__(symbols)
        self.head = head
        check(self, pset)

    def plain(self) -> "Chromosome":
        """A copy as a plain :class:`Chromosome` (no fitness or other attributes)."""
        clone = Chromosome.__new__(Chromosome)
        clone.extend(self)
        clone.head = self.head
        return clone

    def __str__(self) -> str:
        names = [symbol.name for symbol in self]
        return " ".join(names[:self.head] + ["|"] + names[self.head:])

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"

    @classmethod
    def from_string(cls, text: str, pset: gp.PrimitiveSet, **kwargs) -> "Chromosome":
        """Inverse of ``str``: symbol names separated by spaces, ``|`` between head and tail
        (``"add sep3x3 | h1 h2 h1"``). Extra keywords go to the class (individual classes)."""
        head_text, bar, tail_text = text.partition("|")
        if not bar:
            raise ValueError(f"{text!r} is not a chromosome: write the head and the tail "
                             "separated by ' | '")
        names = head_text.split() + tail_text.split()
        unknown = [name for name in names if name not in pset.mapping]
        if unknown:
            raise ValueError(f"unknown symbols {unknown} in {text!r}; the set has "
                             f"{', '.join(sorted(pset.mapping))}")
        return cls([pset.mapping[name] for name in names], len(head_text.split()), pset,
                   **kwargs)


def check(chromosome: Chromosome, pset: gp.PrimitiveSet) -> None:
    """Raise ``ValueError`` unless ``chromosome`` is a valid chromosome of ``pset``."""
    head = chromosome.head
    if head < 1:
        raise ValueError(f"a chromosome needs a head of at least one symbol, not {head}")
    tail = tail_length(head, max_arity(pset))
    if len(chromosome) != head + tail:
        raise ValueError(f"a head of {head} over a set of maximum arity {max_arity(pset)} needs "
                         f"a tail of {head} x ({max_arity(pset)} - 1) + 1 = {tail} terminals: "
                         f"{head + tail} symbols, not {len(chromosome)}")
    unknown = [s.name for s in chromosome if pset.mapping.get(s.name) != s]
    if unknown:
        raise ValueError(f"symbols {unknown} are not in the primitive set {pset.name!r}")
    in_tail = [s.name for s in chromosome[head:] if s.arity > 0]
    if in_tail:
        raise ValueError(f"the tail may hold only terminals; it holds {in_tail}")


def init_chromosome(container: Callable[..., Chromosome], pset: gp.PrimitiveSet, head: int,
                    head_functions_only: bool = False) -> Chromosome:
    """A random chromosome: head symbols drawn uniformly from the functions and terminals (from
    the functions only with ``head_functions_only``), tail symbols from the terminals."""
    head_symbols = functions(pset) if head_functions_only else functions(pset) + terminals(pset)
    if not head_symbols or not terminals(pset):
        raise ValueError(f"primitive set {pset.name!r} needs functions and terminals")
    tail = tail_length(head, max_arity(pset))
    symbols = [random.choice(head_symbols) for _ in range(head)] + \
        [random.choice(terminals(pset)) for _ in range(tail)]
    return container(symbols, head, pset)


# -- decoding ----------------------------------------------------------------------------------

def karva_arguments(chromosome: Sequence) -> list[list[int]]:
    """For each position of the coding region (Karva, breadth first), the positions of its
    arguments; the coding region is as long as the returned list."""
    arguments: list[list[int]] = []
    next_free = 1
    while len(arguments) < next_free:
        arity = chromosome[len(arguments)].arity
        arguments.append(list(range(next_free, next_free + arity)))
        next_free += arity
    return arguments


def karva(chromosome: Sequence) -> gp.PrimitiveTree:
    """The expression a chromosome encodes, as a ``deap.gp.PrimitiveTree`` (Karva decoding)."""
    arguments = karva_arguments(chromosome)
    prefix, stack = [], [0]
    while stack:
        position = stack.pop()
        prefix.append(chromosome[position])
        stack.extend(reversed(arguments[position]))
    return gp.PrimitiveTree(prefix)


def tree_arguments(tree: Sequence) -> list[list[int]]:
    """For each node of a prefix-ordered tree (a ``PrimitiveTree``), the indices of its
    arguments."""
    arguments: list[list[int]] = [[] for _ in tree]
    open_nodes: list[int] = []
    for index, node in enumerate(tree):
        if open_nodes:
            parent = open_nodes[-1]
            arguments[parent].append(index)
            if len(arguments[parent]) == tree[parent].arity:
                open_nodes.pop()
        if node.arity:
            open_nodes.append(index)
    return arguments


# -- variation ---------------------------------------------------------------------------------

def mut_point(individual: Chromosome, pset: gp.PrimitiveSet, pb: Optional[float] = None,
              head_functions_only: bool = False) -> tuple[Chromosome]:
    """Point mutation: each symbol changes, with probability ``pb``, into another one: a head
    symbol into any function or terminal (into a function only with ``head_functions_only``,
    NASGEP's rule for cells), a tail symbol into another terminal. ``pb`` defaults to two
    mutations per chromosome on average, Ferreira's usual rate."""
    pb = 2 / len(individual) if pb is None else pb
    head_symbols = functions(pset) if head_functions_only else functions(pset) + terminals(pset)
    for position, symbol in enumerate(individual):
        if random.random() < pb:
            pool = head_symbols if position < individual.head else terminals(pset)
            others = [s for s in pool if s.name != symbol.name]
            if others:
                individual[position] = random.choice(others)
    return individual,


def transpose_is(individual: Chromosome, pb: float = 0.1,
                 lengths: Sequence[int] = TRANSPOSON_LENGTHS,
                 head_functions_only: bool = False) -> tuple[Chromosome]:
    """IS transposition, with probability ``pb``: a copy of a random segment (of one of
    ``lengths``) is inserted into the head after the root; the head keeps its length, so its
    last symbols drop off. The tail is untouched. A head of one symbol has no target. With
    ``head_functions_only`` (NASGEP's cells) the segment is taken from the head, so that the
    head keeps holding functions only."""
    if random.random() >= pb or individual.head < 2:
        return individual,
    source = individual.head if head_functions_only else len(individual)
    length = min(random.choice(lengths), source)
    start = random.randrange(source - length + 1)
    target = random.randrange(1, individual.head)
    segment = list(individual[start:start + length])
    individual[:individual.head] = (individual[:target] + segment +
                                    individual[target:individual.head])[:individual.head]
    return individual,


def transpose_ris(individual: Chromosome, pb: float = 0.1,
                  lengths: Sequence[int] = TRANSPOSON_LENGTHS,
                  head_functions_only: bool = False) -> tuple[Chromosome]:
    """Root IS transposition, with probability ``pb``: from a random head position, the head is
    scanned for a function; a copy of the segment (of one of ``lengths``) starting there becomes
    the start of the head, which keeps its length. Nothing happens when no function is found.
    With ``head_functions_only`` (NASGEP's cells) the segment ends at the end of the head at the
    latest, so that the head keeps holding functions only."""
    if random.random() >= pb:
        return individual,
    start = random.randrange(individual.head)
    found = [p for p in range(start, individual.head) if individual[p].arity > 0]
    if found:
        end = found[0] + random.choice(lengths)
        segment = list(individual[found[0]:min(end, individual.head) if head_functions_only
                                  else end])
        individual[:individual.head] = (segment + individual[:individual.head])[:individual.head]
    return individual,


def _check_pair(first: Chromosome, second: Chromosome) -> None:
    if (len(first), first.head) != (len(second), second.head):
        raise ValueError(f"recombination needs chromosomes of one structure: {first!s} and "
                         f"{second!s} differ")


def cx_one_point(first: Chromosome, second: Chromosome, pb: float = 0.3
                 ) -> tuple[Chromosome, Chromosome]:
    """One-point recombination, with probability ``pb``: the chromosomes swap everything after
    a random point. Positions keep their role, so both children stay valid."""
    _check_pair(first, second)
    if random.random() < pb and len(first) > 1:
        point = random.randrange(1, len(first))
        first[point:], second[point:] = second[point:], first[point:]
    return first, second


def cx_two_point(first: Chromosome, second: Chromosome, pb: float = 0.3
                 ) -> tuple[Chromosome, Chromosome]:
    """Two-point recombination, with probability ``pb``: the chromosomes swap the segment
    between two random points."""
    _check_pair(first, second)
    if random.random() < pb and len(first) > 2:
        start, end = sorted(random.sample(range(1, len(first)), 2))
        first[start:end], second[start:end] = second[start:end], first[start:end]
    return first, second


def reproduce(first: Chromosome, second: Chromosome, pset: gp.PrimitiveSet,
              head_functions_only: bool = False, mutation: Optional[float] = None,
              is_transposition: float = 0.1, ris_transposition: float = 0.1,
              lengths: Sequence[int] = TRANSPOSON_LENGTHS, one_point: float = 0.3,
              two_point: float = 0.3) -> tuple[Chromosome, Chromosome]:
    """Two children of two parents, made by GEP's operators in NASGEP's order: point mutation,
    IS transposition and RIS transposition of each clone, then one-point and two-point
    recombination of the pair. The parents are untouched; the children's fitness is invalid.
    With ``head_functions_only`` every operator keeps the heads free of terminals (recombination
    does by itself: positions keep their role)."""
    children = copy.deepcopy(first), copy.deepcopy(second)
    for child in children:
        mut_point(child, pset, mutation, head_functions_only)
        transpose_is(child, is_transposition, lengths, head_functions_only)
        transpose_ris(child, ris_transposition, lengths, head_functions_only)
    cx_one_point(*children, one_point)
    cx_two_point(*children, two_point)
    for child in children:
        if hasattr(child, "fitness"):
            del child.fitness.values
    return children
