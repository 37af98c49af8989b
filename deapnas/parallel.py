"""Maps to register as ``toolbox.map``: a local pool of worker processes pinned to devices.

DEAP parallelises by swapping the toolbox's ``map``::

    pool = DevicePool(workers=4)                # 4 GPUs: one worker each; no GPU: CPU slots
    toolbox.register("map", pool.map)

:class:`DevicePool` differs from ``multiprocessing.Pool`` where a search needs it to:

- each worker is pinned to a *slot*, a device plus a torch thread count, so several candidates
  can share a GPU and CPU workers do not oversubscribe the cores;
- the function is sent to a worker once and kept there, so an evaluator's dataset is loaded and
  moved to the worker's device once, not once per candidate; a function with a
  ``for_device(device)`` method (like :class:`~deapnas.fitness.TrainEvaluator`) is retargeted
  to the worker's device, and one with a ``prepare()`` method is warmed up there before its
  first item, so that a time limit counts the items alone. A worker keeps only the latest function, recognised by its
  :func:`fingerprint`, so a function changed after it was sent is sent again, never served
  stale;
- a worker that dies (killed, out of memory, segfault) or exceeds the per-item time limit costs
  only the item it held: that item's result is :func:`~deapnas.fitness.failure` with the reason
  (after ``retries`` further attempts), the worker is replaced, and the map goes on.

Results come back in input order, each as soon as it and all before it are done.
"""
from __future__ import annotations

import hashlib
import io
import multiprocessing
import os
import pickle
import signal
import time
import traceback
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence

import torch

from .fitness import failure
from .safefiles import RunDirectoryError


class _Fingerprinter(pickle.Pickler):
    """Pickles an object with every tensor replaced by its identity and version counter."""

    def __init__(self, file):
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.tensors: list[torch.Tensor] = []

    def persistent_id(self, obj):
        if isinstance(obj, torch.Tensor):
            self.tensors.append(obj)
            return ("tensor", id(obj), obj._version)
        return None


def fingerprint(function: Callable) -> tuple[str, list]:
    """A digest of ``function``'s pickled state, and the tensors it holds.

    Tensors count by identity and by their version counter (which every in-place change
    increments), so the digest is cheap for an evaluator holding a whole dataset and changes
    whenever any attribute or tensor of the function does. Keep the returned tensors alive
    while the digest is in use, so that no other tensor can take their identity.
    """
    buffer = io.BytesIO()
    pickler = _Fingerprinter(buffer)
    pickler.dump(function)
    return hashlib.blake2b(buffer.getvalue(), digest_size=16).hexdigest(), pickler.tensors


@dataclass(frozen=True)
class Slot:
    """Where one worker runs: a torch device and how many threads torch may use there."""

    device: str
    threads: int


def device_slots(workers: Optional[int] = None, devices: str | Sequence[str] = "auto",
                 slots_per_gpu: int = 1, threads: Optional[int] = None) -> list[Slot]:
    """The workers' slots: ``devices`` round-robin (``"auto"``: every visible GPU, each
    ``slots_per_gpu`` times, else the CPU). CPU workers share the cores evenly, or run
    ``threads`` torch threads each when given (see
    :func:`~deapnas.training.torch_threads`).

    ``workers=None`` takes one worker per slot (or per two cores on a CPU-only machine).
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if devices == "auto":
        gpus = torch.cuda.device_count()
        devices = [f"cuda:{i}" for i in range(gpus) for _ in range(slots_per_gpu)] or ["cpu"]
    elif isinstance(devices, str):
        devices = [d.strip() for d in devices.split(",") if d.strip()]
    if not devices:
        raise ValueError("no devices given: use 'auto', 'cpu', or a list like 'cuda:0,cuda:1'")
    if workers is None:
        workers = len(devices) if devices != ["cpu"] else max(1, (cores or 1) // 2)
    if workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    chosen = [devices[i % len(devices)] for i in range(workers)]
    cpu_workers = sum(d == "cpu" for d in chosen)
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be at least 1 (or None for a share of the cores), "
                         f"not {threads}")
    threads = threads or max(1, (cores or 1) // max(cpu_workers, 1))
    return [Slot(d, threads if d == "cpu" else 1) for d in chosen]



def _serve(slot: Slot, channel: Connection) -> None:
    """A worker's loop: keep the latest function it is sent, apply it to the items it is sent."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle
    torch.set_num_threads(slot.threads)
    if slot.device.startswith("cuda"):
        torch.cuda.set_device(torch.device(slot.device))
    function = None
    while True:
        message = channel.recv()
        if message is None:
            return
        if message[0] == "function":
            function = ready_function(message[1], slot.device)
            channel.send(("ready", None, None))  # its warm-up is not the items' time
            continue
        _, index, item = message
        channel.send(("started", index, None))  # the time limit counts from here
        try:
            channel.send(("result", index, function(item)))
        except RunDirectoryError as error:  # a full disk, say: the caller says so, as itself
            channel.send(("refused", index, str(error)))
        except Exception:  # the caller re-raises it: a bug in the function is not a failure
            channel.send(("error", index, traceback.format_exc()))


def ready_function(function: Callable, device: str) -> Callable:
    """``function`` as a worker on ``device`` runs it: retargeted with its ``for_device`` and
    warmed up (:func:`warm_up`) when it has them."""
    retarget = getattr(function, "for_device", None)
    function = retarget(device) if retarget else function
    warm_up(function)
    return function


def warm_up(function: Callable) -> None:
    """Pay ``function``'s first-use costs now, with its ``prepare`` when it has one (a
    :class:`~deapnas.fitness.TrainEvaluator` moves its data and takes one training step: torch
    imports its compiler stack, a second or more of CPU, at the first optimizer it builds), so
    that the first candidate's ``train_seconds`` and time limit measure the candidate alone."""
    prepare = getattr(function, "prepare", None)
    if prepare is not None:
        prepare()


class Worker:
    """One worker process, its channel, and what it is doing."""

    def __init__(self, slot: Slot, context):
        self.slot = slot
        self.channel, remote = context.Pipe()
        self.process = context.Process(target=_serve, args=(slot, remote), daemon=True)
        self.process.start()
        remote.close()
        self.function: Optional[str] = None  # the fingerprint of the function it holds
        self.task: Optional[tuple[int, Any, int]] = None  # index, item, attempt
        self.started: Optional[float] = None  # when the worker began the task

    def send(self, token: str, function: Callable, index: int, item: Any, attempt: int) -> None:
        if token != self.function:
            self.channel.send(("function", function))
            self.function = token
        self.channel.send(("task", index, item))
        self.task, self.started = (index, item, attempt), None

    def stop(self, kill: bool = False) -> None:
        if kill:
            self.process.kill()
        else:
            try:
                self.channel.send(None)
            except (BrokenPipeError, OSError):
                pass
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.channel.close()


class WorkerError(RuntimeError):
    """The mapped function raised an exception in a worker (its traceback is the message)."""


class DevicePool:
    """A pool of worker processes, one per device slot, whose :meth:`map` goes in a toolbox.

    :param workers: number of worker processes (default: one per slot, see
        :func:`device_slots`).
    :param devices: ``"auto"``, ``"cpu"``, or devices like ``"cuda:0,cuda:1"`` / a list.
    :param slots_per_gpu: workers sharing each GPU when ``devices="auto"``.
    :param timeout: seconds one item may take; a worker past it is killed and replaced.
    :param retries: further attempts for an item whose worker died or timed out.
    :param threads: torch threads of each CPU worker (default: a share of the cores).
    """

    def __init__(self, workers: Optional[int] = None, devices: str | Sequence[str] = "auto",
                 slots_per_gpu: int = 1, timeout: Optional[float] = None, retries: int = 0,
                 threads: Optional[int] = None):
        self.slots = device_slots(workers, devices, slots_per_gpu, threads)
        self.timeout, self.retries = timeout, retries
        self._context = multiprocessing.get_context("spawn")  # CUDA cannot survive a fork
        self.workers = [Worker(slot, self._context) for slot in self.slots]
        self._held: list = []  # the tensors of the latest function, kept alive (see fingerprint)

    def __enter__(self) -> "DevicePool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __len__(self) -> int:
        return len(self.workers)

    def close(self) -> None:
        """Stop every worker."""
        for worker in self.workers:
            worker.stop()
        self.workers = []

    def __getstate__(self):
        raise TypeError("a DevicePool cannot be pickled; register its map in the main process")

    def map(self, function: Callable, iterable: Iterable) -> Iterator:
        """``function`` applied to each item in the workers; results in input order."""
        if not self.workers:
            raise RuntimeError("the pool is closed")
        token, self._held = fingerprint(function)
        return self._results(token, function, list(iterable))

    def _results(self, token: str, function: Callable, items: list) -> Iterator:
        todo = deque((index, item, 0) for index, item in enumerate(items))
        done: dict[int, Any] = {}
        next_out = 0
        try:
            while next_out < len(items):
                for worker in self.workers:
                    if worker.task is None and todo:
                        worker.send(token, function, *todo.popleft())
                while next_out in done:
                    yield done.pop(next_out)
                    next_out += 1
                if next_out < len(items):
                    self._collect(done, todo)
        finally:
            self._abandon_running()

    def _collect(self, done: dict, todo: deque) -> None:
        """Wait for results, deaths or time-outs, and account for each."""
        busy = [w for w in self.workers if w.task is not None]
        ready = set(wait([w.channel for w in busy] + [w.process.sentinel for w in busy],
                         timeout=self._time_to_deadline(busy)))
        for worker in busy:
            if worker.channel in ready:
                try:
                    kind, index, value = worker.channel.recv()
                except (EOFError, OSError):
                    self._lose(worker, todo, done, f"worker died ({self._exit(worker)})")
                    continue
                if kind == "ready":
                    continue
                if kind == "started":
                    worker.started = time.monotonic()
                    continue
                worker.task = None
                if kind == "refused":
                    raise RunDirectoryError(value)
                if kind == "error":
                    raise WorkerError(f"item {index} raised in a worker:\n{value}")
                done[index] = value
            elif worker.process.sentinel in ready:
                self._lose(worker, todo, done, f"worker died ({self._exit(worker)})")
            elif self._overdue(worker):
                self._lose(worker, todo, done, f"exceeded the time limit of {self.timeout:g} s")

    def _overdue(self, worker: Worker) -> bool:
        return (self.timeout is not None and worker.started is not None
                and time.monotonic() - worker.started > self.timeout)

    def _time_to_deadline(self, busy: list[Worker]) -> Optional[float]:
        started = [w.started for w in busy if w.started is not None]
        if self.timeout is None or not started:
            return None
        return max(0.0, min(started) + self.timeout - time.monotonic())

    @staticmethod
    def _exit(worker: Worker) -> str:
        worker.process.join(timeout=5)
        code = worker.process.exitcode
        if code is not None and code < 0:
            return f"killed by signal {-code}"
        return f"exit code {code}"

    def _lose(self, worker: Worker, todo: deque, done: dict, reason: str) -> None:
        """The worker's item failed: retry it or give it the worst fitness; replace the worker."""
        index, item, attempt = worker.task
        if attempt < self.retries:
            todo.appendleft((index, item, attempt + 1))
        else:
            done[index] = failure(reason, item)
        worker.stop(kill=True)
        self.workers[self.workers.index(worker)] = Worker(worker.slot, self._context)

    def _abandon_running(self) -> None:
        """After an interrupted map, replace workers still busy with its items."""
        for i, worker in enumerate(self.workers):
            if worker.task is not None:
                worker.stop(kill=True)
                self.workers[i] = Worker(worker.slot, self._context)
