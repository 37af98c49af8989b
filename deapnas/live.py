"""A live view of a search: the logbook's statistics and each evaluation written to TensorBoard
event files while the search runs (``deapnas search --tensorboard DIR``), for
``tensorboard --logdir DIR`` to show as they come.

:class:`TensorBoardView` takes a :class:`~deapnas.journal.Journal`'s records: pass its
:meth:`~TensorBoardView.evaluation` as the journal's ``on_record`` and its
:meth:`~TensorBoardView.statistics` as ``on_logbook``, in a script of your own as the command
line does::

    with TensorBoardView("tensorboard/my-run") as view, \\
            Journal("runs/my-run", space, on_record=view.evaluation,
                    on_logbook=view.statistics) as journal:
        ...

It needs the ``tensorboard`` package (``pip install 'deapnas[tensorboard]'``); the event files
are written with :class:`torch.utils.tensorboard.SummaryWriter`.
"""
from __future__ import annotations

import importlib.util
import math
import os
from numbers import Real
from typing import Sequence

#: How to get what the live view needs.
INSTALL = "pip install 'deapnas[tensorboard]' (or: pip install tensorboard)"
#: Seconds at most between a scalar's writing and its reaching the event file.
FLUSH_SECONDS = 5


def available() -> bool:
    """Whether the ``tensorboard`` package the live view writes with is installed."""
    return importlib.util.find_spec("tensorboard") is not None


class TensorBoardView:
    """TensorBoard event files in ``directory`` (made if missing), one scalar per number:

    - ``evaluation/OBJECTIVE`` (``objectives`` names the fitness values, e.g. ``accuracy``) at
      step = the evaluation's number, ``evaluation/failed`` (1) for a failed candidate, and
      ``info/KEY`` for each number the evaluator measured (``params``, ``train_seconds``...);
    - ``logbook/KEY`` for each number of a logbook record (``avg``, ``max``, ``nevals``...) at
      step = the record's position in the logbook, from 0.

    A resumed run adds files to the same folder; TensorBoard shows them as one run.
    """

    def __init__(self, directory: str | os.PathLike, objectives: Sequence[str] = ("fitness",)):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ImportError(f"--tensorboard {directory}: the live view needs the tensorboard "
                              f"package, which is not installed: {INSTALL}") from None
        self.objectives = tuple(objectives)
        self.writer = SummaryWriter(os.fspath(directory), flush_secs=FLUSH_SECONDS)

    def __enter__(self) -> "TensorBoardView":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def evaluation(self, record: dict) -> None:
        """Write one history record (:data:`deapnas.schema.EVALUATION`)."""
        step = record["evaluation"]
        if record.get("fitness") is None:
            self.writer.add_scalar("evaluation/failed", 1, step)
        else:
            for name, value in zip(self.objectives, record["fitness"]):
                self.writer.add_scalar(f"evaluation/{name}", value, step)
        self._numbers("info", record.get("info", {}), step)

    def statistics(self, record: dict, index: int) -> None:
        """Write the logbook's record number ``index`` (from 0)."""
        self._numbers("logbook", record, index)

    def _numbers(self, prefix: str, values: dict, step: int) -> None:
        for key, value in values.items():
            if isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value):
                self.writer.add_scalar(f"{prefix}/{key}", value, step)

    def close(self) -> None:
        """Write what is pending and close the event file."""
        self.writer.close()
