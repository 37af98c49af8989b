"""A map to register as ``toolbox.map`` that evaluates on a Ray cluster (or a local Ray).

It is :class:`~deapnas.parallel.DevicePool` spread over several machines::

    with RayMap(address="auto") as raymap:      # the running cluster; None starts a local one
        toolbox.register("map", raymap.map)

Each worker is a Ray *actor* holding one slot (``num_cpus_per_worker`` cores and
``num_gpus_per_worker`` GPUs), so, as in :class:`~deapnas.parallel.DevicePool`:

- the function is put in Ray's object store once per map function and loaded once per actor,
  which keeps the latest one (an evaluator's dataset is moved to the actor's device once, not
  once per candidate); a function changed since it was sent is recognised by its
  :func:`~deapnas.parallel.fingerprint` and sent again; a function with a ``for_device(device)`` method (like
  :class:`~deapnas.fitness.TrainEvaluator`) is retargeted to ``"cuda"`` (the GPU Ray gave the
  actor) or ``"cpu"``;
- an actor that dies (killed, out of memory, its node lost) costs only the item it held: Ray
  restarts the actor and retries the item ``retries`` times, then the item's result is
  :func:`~deapnas.fitness.failure` with the reason, and the map goes on;
- an item running longer than ``timeout`` seconds gets its actor killed and restarted by Ray,
  and is tried again (``retries`` times) or given a failure.

Results come back in input order, each as soon as it and all before it are done.

Ray is an optional dependency: ``pip install deapnas[ray]``.
"""
from __future__ import annotations

import math
import pickle
import sys
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Optional

from .safefiles import RunDirectoryError  # the standard library only

# Only the standard library and Ray are imported here: an actor imports this module to run, and
# importing torch (seconds) is left to the functions that use it. The driver's helpers from
# deapnas.fitness and deapnas.parallel are imported where they are used.
try:
    import ray
except ImportError:  # RayMap says what to install when it is used
    ray = None

# How much of a Ray error message a failure's reason keeps.
_REASON_LENGTH = 200


def _require_ray() -> None:
    if ray is None:
        raise ImportError("RayMap needs Ray, an optional dependency of deapnas: "
                          "pip install deapnas[ray]")


def _actor_lost_errors() -> tuple[type[BaseException], ...]:
    """What ``ray.get`` raises when the actor running a task died, after Ray's own retries.

    A SIGKILLed or restarted actor gives :class:`ray.exceptions.ActorUnavailableError`, a
    permanently dead one :class:`~ray.exceptions.ActorDiedError` (both ``RayActorError``); Ray's
    memory monitor and lost nodes give the others.
    """
    errors = ray.exceptions
    return (errors.RayActorError, errors.WorkerCrashedError, errors.OutOfMemoryError,
            errors.NodeDiedError, errors.LocalRayletDiedError)


def _retried_until_back(method: Callable) -> Callable:
    """Declare an actor method that Ray retries for as long as the actor restarts."""
    return ray.method(max_task_retries=-1)(method) if ray is not None else method


class _Slot:
    """The actor: keeps the functions it is given, applies them to the items it is sent.

    Functions arrive as an object reference nested in a list, which Ray leaves unresolved: the
    actor fetches each function once, and fetches it again after a restart (its state is lost).
    """

    def __init__(self, device: str, threads: int):
        self.device, self.threads = device, threads
        self.token: Optional[str] = None
        self.function: Optional[Callable] = None

    @_retried_until_back
    def prepare(self, token: str, box: list) -> str:
        """Load the function (untimed, before any item); the id of this actor process.

        Called right after the actor was killed, it waits for the restart.
        """
        self._function(token, box)
        return ray.get_runtime_context().get_worker_id()

    def run(self, token: str, box: list, payload: bytes) -> Any:
        return self._function(token, box)(pickle.loads(payload))

    def _function(self, token: str, box: list) -> Callable:
        if token != self.token:
            from .parallel import ready_function

            function = ray.get(box[0])
            self._limit_threads()
            self.function, self.token = ready_function(function, self.device), token
        return self.function

    def _limit_threads(self) -> None:
        """Let torch use the slot's cores, once a function has brought torch in.

        (Before that, Ray's ``OMP_NUM_THREADS``, set to the actor's CPUs, does the same.)
        """
        torch = sys.modules.get("torch")
        if torch is not None and torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)


@dataclass
class _Task:
    """An item handed to an actor: where it stands and since when it runs."""

    index: int
    item: Any
    attempt: int
    ref: Any  # ray.ObjectRef
    started: float


class _Worker:
    """One actor and what it is doing: loading the map's function, running an item, or idle."""

    def __init__(self, actor):
        self.actor = actor
        self.loading = None  # the ray.ObjectRef of a prepare() in flight
        self.ready = False  # prepared for the current map
        self.task: Optional[_Task] = None
        self.process: Optional[str] = None  # the actor's process, as prepare() reported it
        self.killed: Optional[str] = None  # the process restart() killed, until a new one reports

    @property
    def idle(self) -> bool:
        return self.ready and self.task is None

    def prepare(self, token: str, box: list) -> None:
        self.loading, self.ready = self.actor.prepare.remote(token, box), False

    def send(self, token: str, box: list, index: int, item: Any, attempt: int) -> None:
        # Items travel as standard pickles: cloudpickle would copy a DEAP ``creator`` class by
        # value once deap.creator has rebound its name (every unpickling does), and its
        # metaclass cannot be rebuilt that way; DEAP's own reduction can.
        ref = self.actor.run.remote(token, box, pickle.dumps(item))
        self.task = _Task(index, item, attempt, ref, time.monotonic())

    def restart(self) -> None:
        """Kill the actor; Ray restarts it. Its item, if any, is not retried by Ray."""
        if self.task is not None:
            ray.cancel(self.task.ref)  # a cancelled task is not retried
        ray.kill(self.actor, no_restart=False)
        self.task, self.loading, self.ready = None, None, False
        self.killed = self.process

    def loaded(self, process: str) -> bool:
        """Record the process that prepared; False if it is the one killed, still dying
        (``ray.kill`` lands a little later, and an item sent to it would be lost)."""
        if process == self.killed:
            return False
        self.process, self.killed, self.loading, self.ready = process, None, None, True
        return True


class RayMap:
    """A set of Ray actors, one per slot, whose :meth:`map` goes in a toolbox.

    :param workers: number of actors (default: as many slots as the cluster's nodes hold).
    :param address: the cluster to join (``"auto"``, ``"ray://host:10001"``...); ``None``
        starts a local one. A Ray this process already started is used as it is.
    :param num_cpus_per_worker: cores reserved per actor (torch uses that many threads).
    :param num_gpus_per_worker: GPUs per actor, fractions letting actors share one;
        ``"auto"``: one per actor when the cluster has GPUs, else none.
    :param timeout: seconds one item may run, counted from when an idle actor (its function
        loaded) is handed the item; the actor is then killed and restarted.
    :param retries: further attempts for an item whose actor died (Ray retries it, on the
        restarted actor, within the item's time limit) or timed out (the map hands it out again,
        with a new time limit and Ray's retries anew).
    :param init_kwargs: passed to ``ray.init`` when this map starts Ray (e.g. ``num_cpus``).

    Actors waiting for resources that other jobs hold start when those are freed; the map
    hands them items only once they are up.
    """

    def __init__(self, workers: Optional[int] = None, address: Optional[str] = None,
                 num_cpus_per_worker: float = 1, num_gpus_per_worker: float | str = "auto",
                 timeout: Optional[float] = None, retries: int = 0, **init_kwargs: Any):
        _require_ray()
        if retries < 0 or (timeout is not None and timeout <= 0) or num_cpus_per_worker < 0:
            raise ValueError("retries and num_cpus_per_worker must be >= 0, timeout positive")
        self.timeout, self.retries = timeout, retries
        self.workers: list[_Worker] = []
        self._latest: Optional[tuple[str, list, list]] = None  # token, box, tensors held
        self._owns_ray = _connect(address, init_kwargs)
        try:
            self._start(workers, num_cpus_per_worker, num_gpus_per_worker)
        except BaseException:
            self.close()
            raise

    def _start(self, workers: Optional[int], num_cpus: float, num_gpus: float | str) -> None:
        """Start the actors: restarted by Ray without limit, an item retried ``retries`` times."""
        self.num_cpus, self.num_gpus = num_cpus, _gpus(num_gpus)
        self.device = "cuda" if self.num_gpus > 0 else "cpu"  # Ray sets CUDA_VISIBLE_DEVICES
        count = _worker_count(workers, self.num_cpus, self.num_gpus)
        actor_class = ray.remote(num_cpus=self.num_cpus, num_gpus=self.num_gpus, max_restarts=-1,
                                 max_task_retries=self.retries)(_Slot)
        threads = max(1, int(self.num_cpus))
        self.workers = [_Worker(actor_class.remote(self.device, threads)) for _ in range(count)]

    def __enter__(self) -> "RayMap":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __len__(self) -> int:
        return len(self.workers)

    def __getstate__(self):
        raise TypeError("a RayMap cannot be pickled; register its map in the driver process")

    def close(self) -> None:
        """Stop every actor (and the local Ray this map started, if it did)."""
        if ray.is_initialized():
            for worker in self.workers:
                ray.kill(worker.actor)
        self.workers, self._latest = [], None
        if self._owns_ray:
            ray.shutdown()
            self._owns_ray = False

    def map(self, function: Callable, iterable: Iterable) -> Iterator:
        """``function`` applied to each item in the actors; results in input order."""
        if not self.workers:
            raise RuntimeError("the RayMap is closed")
        from .parallel import fingerprint

        token, tensors = fingerprint(function)
        if self._latest is None or self._latest[0] != token:
            self._latest = (token, [ray.put(function)], tensors)
        return self._results(token, self._latest[1], list(iterable))

    def _results(self, token: str, box: list, items: list) -> Iterator:
        todo = deque((index, item, 0) for index, item in enumerate(items))
        done: dict[int, Any] = {}
        next_out = 0
        if items:
            for worker in self.workers:
                worker.prepare(token, box)
        try:
            while next_out < len(items):
                for worker in self.workers:
                    if worker.idle and todo:
                        worker.send(token, box, *todo.popleft())
                while next_out in done:
                    yield done.pop(next_out)
                    next_out += 1
                if next_out < len(items):
                    self._collect(done, todo, token, box)
        finally:
            self._abandon_running()

    def _collect(self, done: dict, todo: deque, token: str, box: list) -> None:
        """Wait for a result, a prepared actor or a time-out, and account for it."""
        waiting = {w.loading: w for w in self.workers if w.loading is not None}
        waiting.update({w.task.ref: w for w in self.workers if w.task is not None})
        ready, _ = ray.wait(list(waiting), num_returns=1, timeout=self._time_to_deadline())
        for ref in ready:
            worker = waiting[ref]
            if ref == worker.loading:
                self._loaded(worker, token, box)
            else:
                self._finished(worker, done, token, box)
        for worker in self.workers:
            if self._overdue(worker):
                self._lose(worker, todo, done, f"exceeded the time limit of {self.timeout:g} s")
                worker.restart()
                worker.prepare(token, box)

    def _loaded(self, worker: _Worker, token: str, box: list) -> None:
        try:
            process = ray.get(worker.loading)
        except _actor_lost_errors():  # killed while loading: load again once restarted
            worker.prepare(token, box)
            return
        except ray.exceptions.RayTaskError as error:
            from .parallel import WorkerError

            raise WorkerError(f"loading the function failed in a worker:\n{error}") from error
        if not worker.loaded(process):
            worker.prepare(token, box)  # ask again until the restarted actor answers

    def _finished(self, worker: _Worker, done: dict, token: str, box: list) -> None:
        from .fitness import failure
        from .parallel import WorkerError

        task = worker.task
        try:
            done[task.index] = ray.get(task.ref)
            worker.task = None
        except _actor_lost_errors() as error:  # Ray's retries are spent
            done[task.index] = failure(f"worker died: {_summary(error)}", task.item)
            worker.task = None
            worker.prepare(token, box)  # idle again once Ray has restarted it
        except ray.exceptions.RayTaskError as error:
            worker.task = None
            if isinstance(error.cause, RunDirectoryError):  # a full disk, say: as itself
                raise RunDirectoryError(str(error.cause)) from None
            raise WorkerError(f"item {task.index} raised in a worker:\n{error}") from error

    def _overdue(self, worker: _Worker) -> bool:
        return (self.timeout is not None and worker.task is not None
                and time.monotonic() - worker.task.started > self.timeout)

    def _time_to_deadline(self) -> Optional[float]:
        started = [w.task.started for w in self.workers if w.task is not None]
        if self.timeout is None or not started:
            return None
        return max(0.0, min(started) + self.timeout - time.monotonic())

    def _lose(self, worker: _Worker, todo: deque, done: dict, reason: str) -> None:
        """The worker's item failed: try it again or give it the worst fitness."""
        from .fitness import failure

        task = worker.task
        if task.attempt < self.retries:
            todo.appendleft((task.index, task.item, task.attempt + 1))
        else:
            done[task.index] = failure(reason, task.item)

    def _abandon_running(self) -> None:
        """After an interrupted map, restart the actors still busy with its items."""
        for worker in self.workers:
            if worker.task is not None:
                worker.restart()
            worker.loading = None


def _summary(error: BaseException) -> str:
    """The error's type and the first line of its message, short enough for a record."""
    lines = str(error).strip().splitlines()
    text = f"{type(error).__name__}: {lines[0] if lines else ''}"
    return text if len(text) <= _REASON_LENGTH else text[:_REASON_LENGTH - 3] + "..."


def _connect(address: Optional[str], init_kwargs: dict) -> bool:
    """Join or start Ray unless this process already did; whether this call started it."""
    if ray.is_initialized():
        return False
    options = {"log_to_driver": False, **init_kwargs}
    if address is None:  # a local instance: keep it light
        options = {"include_dashboard": False, **options}
    ray.init(address=address, **options)
    return address is None


def _gpus(num_gpus_per_worker: float | str) -> float:
    if num_gpus_per_worker == "auto":
        return 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
    if float(num_gpus_per_worker) < 0:
        raise ValueError(f"num_gpus_per_worker must be >= 0, not {num_gpus_per_worker}")
    return float(num_gpus_per_worker)


def _worker_count(workers: Optional[int], num_cpus: float, num_gpus: float) -> int:
    """``workers``, checked against the slots the cluster's live nodes hold (the default)."""
    slots = sum(_node_slots(node["Resources"], num_cpus, num_gpus)
                for node in ray.nodes() if node.get("Alive"))
    if workers is None:
        if slots == math.inf:
            raise ValueError("with no CPU or GPU per worker, give the number of workers")
        workers = slots
    if workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers} (the cluster holds "
                         f"{slots} slots of {num_cpus:g} CPUs and {num_gpus:g} GPUs)")
    if workers > slots:
        raise ValueError(f"the cluster holds {slots} slots of {num_cpus:g} CPUs and "
                         f"{num_gpus:g} GPUs, not {workers}: ask for fewer workers or "
                         f"smaller slots")
    return int(workers)


def _node_slots(resources: dict, num_cpus: float, num_gpus: float) -> float:
    """How many actors of the given size fit on one node."""
    fits = [math.floor(resources.get(name, 0) / need + 1e-9)
            for name, need in (("CPU", num_cpus), ("GPU", num_gpus)) if need > 0]
    return min(fits) if fits else math.inf
