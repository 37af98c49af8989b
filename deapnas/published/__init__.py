"""Each paper's own networks, rebuilt by deapnas at the paper's final settings.

A reviewer's first check of a NAS library is whether it builds the networks the papers publish
to the sizes the papers report. Each method has a module here (``re``, ``minigen``, ``nasgep``,
``egnas``, ``renas``) whose ``NETWORKS`` lists :class:`PublishedNetwork` records: the encoding as
the paper prints it (or the authors' released genotype where the paper only draws it), loaded
through the space's own ``from_json`` or builder, and the parameter count the paper reports.

``python benchmarks/parity.py`` writes each method's parity table to ``docs/figures/`` and the
method's docs page includes it; ``tests/test_parity_METHOD.py`` builds each network and checks its
count.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

from torch import nn

METHODS = ("re", "minigen", "nasgep", "egnas", "renas")


@dataclass(frozen=True)
class PublishedNetwork:
    """A network a paper publishes, with the size the paper reports for it.

    ``build`` returns the network as deapnas builds it at the paper's final settings;
    ``paper_parameters`` is the paper's count (``reported_as`` the way the paper prints it, for
    instance ``"3.62 M ± 0.18"``); ``why`` says why deapnas's count differs, when it does.
    """
    name: str
    source: str
    paper_parameters: float
    reported_as: str
    build: Callable[[], nn.Module]
    why: str = ""

    def parameters(self) -> int:
        """The trainable parameters of the network deapnas builds."""
        return sum(p.numel() for p in self.build().parameters() if p.requires_grad)


def networks(method: str) -> list[PublishedNetwork]:
    """The published networks of ``method`` (one of :data:`METHODS`)."""
    if method not in METHODS:
        raise ValueError(f"no published networks for {method!r}; choose one of {', '.join(METHODS)}")
    return list(importlib.import_module(f"deapnas.published.{method}").NETWORKS)
