"""Executor ``dask``: a Dask cluster (``dask.distributed``), local or remote.

Without ``address`` it starts a ``LocalCluster`` of ``workers`` processes on this machine; with
``address`` (``tcp://host:8786``) it connects to a running scheduler, e.g. one started on a Slurm
or PBS cluster with dask-jobqueue (see ``docs/executors.md``). The function and the shared
arguments are pickled and scattered to the workers once per map; tasks are submitted a few at a
time, so a stream of chunks never piles up in memory, and results come back in task order.
Needs ``pip install 'slamfw[dask]'``.

Everything crosses to and from the workers as pickled bytes, unpickled at the other end: numpy
then allocates every array itself. Arrays that Dask deserialises in place can sit at addresses
that are not even 8-byte aligned, and numpy sums unaligned arrays in another order, so results
would differ in the last bit from the other executors'; this way they do not.

The worker processes of a ``LocalCluster`` watch the process that started them (this one, where
the nannies live) and exit once it is gone, so a killed run leaves no orphans; the workers of a
remote cluster belong to that cluster and are left running. Each worker keeps the pickled shared
arguments and their unpickled copy, so shared arrays cost twice their size per worker (the local
executor's workers read them from a temporary file and keep only the unpickled copy).
"""
from __future__ import annotations

import logging
import os
import pickle
from typing import Any, Callable, Iterable, Iterator, Sequence

from pydantic import Field, field_validator

from slamfw import (
    ConfigError, Executor, Params, Progress, available_cores, call_limited, collected, hookimpl, results_in_order,
    allocator_tuned, tune_allocator, watch_parent,
)

SLAMFW_PLUGIN_API = (1, 10)

log = logging.getLogger(__name__)


def _import_distributed():
    try:
        import distributed
    except ImportError:
        raise ConfigError("executor 'dask' needs dask.distributed: pip install 'slamfw[dask]'") from None
    return distributed


def _watch_own_parent(tune: bool = False) -> None:
    """Run in a LocalCluster's worker: exit when the process that started this one is gone, and,
    with ``tune`` (that process set its own: ``slamfw predict``), set glibc's allocator for large
    arrays (:func:`slamfw.tune_allocator`; this LocalCluster's nannies set no
    ``MALLOC_TRIM_THRESHOLD_``, which would leave the allocator as it is)."""
    watch_parent(os.getppid())
    if tune:
        tune_allocator()


def _worker_plugin() -> Any:
    """A worker plugin that makes a LocalCluster's worker processes exit once the process that
    started them (this one: a LocalCluster's nannies live in it) is gone, and sets their
    allocator where this process's is set (:func:`_watch_own_parent`)."""
    from distributed.diagnostics.plugin import WorkerPlugin

    class WorkerDiesWithParent(WorkerPlugin):
        name = "slamfw-worker-dies-with-parent"

        def __init__(self, tune: bool) -> None:
            self.tune = tune

        def setup(self, worker: Any) -> None:
            _watch_own_parent(self.tune)

    return WorkerDiesWithParent(allocator_tuned())


_LOADED: list[Any] = [None, None]   # the last shared blob a worker unpickled, and what it held


def run_pickled(shared_blob: bytes, task_blob: bytes, threads: int) -> bytes:
    """On a worker: unpickle ``(func, shared)`` (once per map) and the task, run, pickle the result."""
    if _LOADED[0] is not shared_blob:
        _LOADED[:] = [shared_blob, pickle.loads(shared_blob)]
    func, shared = _LOADED[1]
    return pickle.dumps(call_limited(func, threads, pickle.loads(task_blob), shared), protocol=5)


def _dumps(obj: Any) -> bytes:
    import cloudpickle
    return cloudpickle.dumps(obj, protocol=5)


class DaskExecutor(Executor):
    """Tasks on a Dask cluster: a LocalCluster of ``workers`` processes, or the scheduler at ``address``."""

    class Params(Params):
        address: str | None = Field(None, description="scheduler address (tcp://host:port); none: a LocalCluster")
        workers: int | None = Field(None, ge=1, description="LocalCluster worker processes (default: the cores)")
        threads_per_worker: int | None = Field(None, ge=1, description="BLAS/OpenMP threads per task (default: "
                                               "cores / workers on a LocalCluster; 1 on a remote cluster)")
        memory_limit: str = Field("auto", description="LocalCluster memory limit per worker")
        shared_files: bool = Field(False, description="with address: the cluster's workers see this machine's files "
                                   "by the same paths (a shared file system), so that each reads its own chunks of a "
                                   "survey (a LocalCluster's always do)")

        @field_validator("memory_limit")
        @classmethod
        def _a_size(cls, value: str) -> str:
            """"auto", or a size dask reads ("4GB", "2 GiB", a number of bytes): checked here, not by a
            worker's start (dask's ValueError was an internal error)."""
            if value.strip().lower() != "auto":
                try:
                    from dask.utils import parse_bytes
                except ImportError:         # dask is not installed: start() says so
                    return value
                try:
                    parse_bytes(value)
                except (ValueError, TypeError):
                    raise ValueError(f"{value!r} is not a size: write \"auto\" or e.g. \"4GB\"") from None
            return value

    def start(self) -> "DaskExecutor":
        if getattr(self, "client_", None) is not None:
            return self
        distributed = _import_distributed()
        if self.address and self.workers:
            raise ConfigError("executor.dask.workers sizes a LocalCluster; with executor.dask.address the cluster's "
                              "own workers are used: leave workers unset")
        if self.address:
            self.cluster_ = None
            try:
                self.client_ = distributed.Client(self.address)
            except (OSError, ValueError, TypeError) as err:      # no scheduler there (after dask's timeout), a bad form
                raise ConfigError(f"executor.dask.address: cannot connect to the scheduler at {self.address!r} "
                                  f"({type(err).__name__}: {err})") from None
        else:
            import dask
            # Dask's nannies set MALLOC_TRIM_THRESHOLD_=65536 in their workers' environment (to hand
            # freed memory back to the system sooner). Set, it also turns off glibc's dynamic mmap
            # threshold, so every large temporary array is mapped and unmapped: the local
            # executor's predict took 1.3-1.5 times as long with it (2 workers, case (a)'s model).
            # This LocalCluster's workers keep glibc's default (None: the nanny sets no such
            # variable; a value in this process's own environment still reaches them); a
            # cluster's own configuration is its own.
            with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
                self.cluster_ = distributed.LocalCluster(
                    n_workers=self.n_workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                    memory_limit=self.memory_limit, silence_logs=logging.WARNING)
            self.client_ = distributed.Client(self.cluster_)
            self.client_.register_plugin(_worker_plugin())
        log.info("dask: %s with %d workers", self.address or "LocalCluster", self.n_workers)
        return self

    def close(self) -> None:
        client, cluster = getattr(self, "client_", None), getattr(self, "cluster_", None)
        self.client_ = self.cluster_ = None
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()

    @property
    def workers_on_this_machine(self) -> bool:
        """A LocalCluster's workers are on this machine; a remote scheduler's are not."""
        return not self.address

    @property
    def workers_share_files(self) -> bool:
        """A LocalCluster's workers see this machine's files; a remote scheduler's where
        ``shared_files`` says so (a file system that the cluster's machines share)."""
        return not self.address or self.shared_files

    @property
    def n_workers(self) -> int:
        client = getattr(self, "client_", None)
        if self.address and client is not None:
            return max(1, len(client.scheduler_info()["workers"]))
        return self.workers or available_cores()

    @property
    def threads(self) -> int:
        """BLAS/OpenMP threads per task: this machine's cores shared by a LocalCluster's workers;
        1 on a remote cluster, whose workers should each have a core (jobqueue: processes = cores)."""
        if self.threads_per_worker:
            return self.threads_per_worker
        return 1 if self.address else max(1, available_cores() // self.n_workers)

    def imap(self, func: Callable[..., Any], tasks: Iterable[tuple], *, shared: dict[str, Any] | None = None,
             desc: str = "", unit: str = "task", total: float | None = None,
             weight: Callable[[tuple], float] | None = None, progress: bool = True) -> Iterator[Any]:
        """As :meth:`Executor.imap`; at most two tasks per worker of the stream are taken and not
        yet handed back, so a slow consumer holds back the reading of the stream."""
        return self._results(func, tasks, shared, desc, unit, total, weight, progress, ahead=2 * self.n_workers)

    def map(self, func: Callable[..., Any], tasks: Sequence[tuple], *, shared: dict[str, Any] | None = None,
            desc: str = "", unit: str = "task", on_result: Callable[[int, Any], None] | None = None,
            progress: bool = True) -> list[Any]:
        """As :meth:`Executor.map`, with every task submitted at once (they are in memory already):
        a slow task keeps no other worker waiting."""
        return collected(self._results(func, tasks, shared, desc, unit, len(tasks), None, progress, ahead=None),
                         on_result)

    def _results(self, func: Callable[..., Any], tasks: Iterable[tuple], shared: dict[str, Any] | None, desc: str,
                 unit: str, total: float | None, weight: Callable[[tuple], float] | None, progress: bool,
                 ahead: int | None) -> Iterator[Any]:
        """``func(*task, **shared)`` of each task, in order, with at most ``ahead`` tasks submitted
        and not yet yielded (None: no limit); tasks abandoned (the caller stopped, one failed) are
        cancelled."""
        self.start()
        client = self.client_
        shared_blob = client.scatter(_dumps((func, shared or {})), broadcast=True, hash=False)
        bar = Progress(total, desc, unit, progress)

        def submit(task: tuple) -> Any:
            task_blob = client.scatter(_dumps(task), hash=False)   # data to a worker, not into the task graph
            return client.submit(run_pickled, shared_blob, task_blob, self.threads, pure=False)
        try:
            yield from results_in_order(tasks, submit, lambda fut: pickle.loads(fut.result()),
                                        ahead=ahead, bar=bar, weight=weight,
                                        abandon=lambda futures: [fut.cancel() for fut in futures])
        finally:
            bar.close()


@hookimpl
def slamfw_register_executors(register):
    register("dask", DaskExecutor)
