"""The Executor contract: where independent tasks run (in-process, local processes, a cluster).

An executor is chosen by the ``[executor]`` config section or ``--executor NAME --workers N``. It is
not a parameter of any component: components ask for the one in use with
:func:`current_executor`, which the workflows set with :func:`using_executor`. Execution settings
are therefore stored neither in model files nor in checkpoint keys, and results do not depend on
them (``slamfw.testing`` and the test suite check catalogues bit for bit across executors; on a
GPU, where the calling process joins chunks into large calls, they agree to the device's rounding).

This base class runs tasks in the calling process, one after another; it is what
:func:`current_executor` gives when no executor was set (a component used from Python).
"""
from __future__ import annotations

import contextvars
import logging
import os
import sys
import time
from collections import deque
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator, Sequence

from .base import Component

log = logging.getLogger(__name__)


def available_cores() -> int:
    """CPU cores this process may use (its affinity, where the system tells)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


class Progress:
    """A progress bar on a terminal, or log lines without one (about every 10% of a known total, or
    every ``interval`` seconds for a stream of unknown length); counts ``unit``s (tasks, or spectra
    when tasks carry weights) and reports their rate per second."""

    def __init__(self, total: float | None, desc: str, unit: str, enabled: bool = True,
                 interval: float = 10.0) -> None:
        self.total, self.desc, self.unit, self.done = total, desc or "progress", unit, 0.0
        self.t0 = time.perf_counter()
        self.bar = None
        self.next_log = 0.1
        self.interval, self.next_time = interval, self.t0 + interval
        self.enabled = enabled
        if enabled and sys.stderr.isatty():
            from tqdm.auto import tqdm
            self.bar = tqdm(total=total, desc=desc, unit=unit, leave=False)

    def update(self, amount: float = 1.0) -> None:
        self.done += amount
        if self.bar is not None:
            self.bar.update(amount)
            return
        if not self.enabled:
            return
        if not self.total:
            now = time.perf_counter()
            if now >= self.next_time:
                self.next_time = now + self.interval
                log.info("%s: %s", self.desc, self.summary())
            return
        frac = self.done / self.total
        if frac >= self.next_log or self.done >= self.total:
            dt = time.perf_counter() - self.t0
            rate = self.done / dt if dt > 0 else float("inf")
            log.info("%s: %d/%d %s (%.0f%%), %.1f %s/s, %.0f s elapsed, about %.0f s left", self.desc, self.done,
                     self.total, self.unit, 100 * frac, rate, self.unit, dt, (self.total - self.done) / rate if rate else 0)
            self.next_log = min(1.0, frac + 0.1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.enabled and not self.total and self.done:
            log.info("%s: %s", self.desc, self.summary())

    def summary(self) -> str:
        dt = time.perf_counter() - self.t0
        return f"{self.done:.0f} {self.unit} in {dt:.1f} s ({self.done / dt if dt > 0 else 0:.1f} {self.unit}/s)"


def results_in_order(tasks: Iterable[tuple], submit: Callable[[tuple], Any], result: Callable[[Any], Any], *,
                     ahead: int | None, bar: Progress | None = None, weight: Callable[[tuple], float] | None = None,
                     abandon: Callable[[list[Any]], None] | None = None) -> Iterator[Any]:
    """The results of a stream of tasks in task order, for an executor's ``imap`` (plugin API 1.4).

    ``submit(task)`` starts a task and returns a handle (a future); ``result(handle)`` waits for
    it and returns its result. At most ``ahead`` tasks are taken from ``tasks`` and not yet
    yielded (None: no limit, for a list already in memory), however slow the caller. If the stream
    itself fails (a chunk cannot be read), the results of the tasks taken before are yielded
    first, then its error is raised. If the caller stops early, or a result raises (or the wait
    for it is interrupted), ``abandon`` gets the handles not yet yielded, that one included
    (cancel them there). ``bar`` is updated by each task's ``weight`` (1 without) as its result
    is yielded.
    """
    pending: deque = deque()                  # (handle, weight), in task order

    def next_result() -> Any:
        handle, amount = pending[0]
        value = result(handle)            # on an error (or Ctrl-C) here, the handle stays for abandon
        pending.popleft()
        if bar is not None:
            bar.update(amount)
        return value

    finished = False
    try:
        stream = iter(tasks)
        while True:
            try:
                task = next(stream)
            except StopIteration:
                break
            except Exception:       # the stream failed: first the results of the tasks taken
                while pending:
                    yield next_result()
                raise
            amount = weight(task) if weight else 1.0
            pending.append((submit(task), amount))
            while ahead is not None and len(pending) >= ahead:
                yield next_result()
        while pending:
            yield next_result()
        finished = True
    finally:
        if not finished and pending and abandon is not None:
            abandon([handle for handle, _ in pending])


def collected(results: Iterable[Any], on_result: Callable[[int, Any], None] | None) -> list[Any]:
    """``list(results)``, calling ``on_result(i, result)`` as each arrives (an executor's ``map``)."""
    out = []
    for i, result in enumerate(results):
        if on_result is not None:
            on_result(i, result)
        out.append(result)
    return out


class Executor(Component):
    """Runs independent tasks ``func(*task, **shared)`` and gives their results in task order.

    Contract:

    - ``imap(func, tasks, shared=..., ...)`` consumes ``tasks`` (any iterable, possibly a generator
      that reads data as it goes) lazily, keeping a bounded number taken and not yet handed back
      (even while the caller is slow to take them), and yields results in the order of the tasks;
      if the stream itself fails, the results of the tasks taken before come back first, then its
      error; ``map`` collects the results into a list;
    - ``func`` is a module-level function (it may be sent to other processes or machines);
      ``shared`` holds large read-only arguments common to all tasks, sent once where the
      executor can;
    - ``n_workers`` is how many tasks run at once; each worker limits its BLAS/OpenMP threads so that
      workers x threads fits the cores;
    - ``with executor:`` starts and stops what it needs (processes, a cluster connection); worker
      processes die with the process that started them.
    """

    @property
    def n_workers(self) -> int:
        """How many tasks run at once."""
        return 1

    @property
    def workers_on_this_machine(self) -> bool:
        """Whether the workers run on this machine, sharing its cores and devices with this
        process (plugin API 1.3): an inferer that drives one accelerator
        (:meth:`~slamfw.Inferer.stars_per_call`) then infers in this process, while the workers
        prepare. It is also the default of :attr:`workers_share_files`. False here, the earlier
        behaviour (each worker infers the chunks this process reads and sends), for executors
        written before 1.3 that may send tasks to other machines; ``serial``, ``local`` and a Dask
        LocalCluster say True."""
        return False

    @property
    def workers_share_files(self) -> bool:
        """Whether the workers see this process's files by the same absolute paths (the
        survey's and the checkpoints'; plugin API 1.7, and 1.6 under the name of
        :attr:`workers_on_this_machine`): ``slamfw predict`` then lets each worker read its own
        chunks where the reader describes them (:meth:`~slamfw.Reader.chunk_sources`). By
        default, :attr:`workers_on_this_machine`; a cluster on a shared file system may say True
        (``dask``'s ``shared_files``)."""
        return self.workers_on_this_machine

    def start(self) -> "Executor":
        """Start workers or connect (idempotent)."""
        return self

    def prestart(self, prepare: Callable[[], Any] | None = None) -> None:
        """Start the workers now, ahead of the first task, so that their start (a new
        interpreter, its imports) overlaps what this process still has to do before it has tasks
        (loading a model, opening a survey); with ``prepare`` (a module-level function, or a
        ``functools.partial`` of one), the workers run ``prepare()`` ahead of the tasks
        (:func:`import_modules`: the modules the tasks will need), as many times as there are
        workers, each queued before any task: meant as one per worker, but a worker that is
        ready much later than another may find them all taken and go without (its first task
        then does the work). A hint that returns at once: an error in ``prepare`` is logged and
        ignored (the tasks then meet it themselves), and an executor with no worker to start
        ignores the call (the default). May be called again (with another ``prepare``); the
        caller closes the executor (:meth:`close`) when it is done, also after a failure.
        Plugin API 1.10."""

    def close(self) -> None:
        """Stop what :meth:`start` started."""

    def __enter__(self) -> "Executor":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def imap(self, func: Callable[..., Any], tasks: Iterable[tuple], *, shared: dict[str, Any] | None = None,
             desc: str = "", unit: str = "task", total: float | None = None,
             weight: Callable[[tuple], float] | None = None, progress: bool = True) -> Iterator[Any]:
        """Yield ``func(*task, **shared)`` for each task, in order.

        ``total`` (tasks, or the sum of ``weight(task)``) sizes the progress display; ``weight``
        counts what a task carries (e.g. its number of spectra) so that the rate is in ``unit``s.
        """
        shared = shared or {}
        bar = Progress(total, desc, unit, progress)
        try:
            for task in tasks:
                result = func(*task, **shared)
                bar.update(weight(task) if weight else 1.0)
                yield result
        finally:
            bar.close()

    def map(self, func: Callable[..., Any], tasks: Sequence[tuple], *, shared: dict[str, Any] | None = None,
            desc: str = "", unit: str = "task", on_result: Callable[[int, Any], None] | None = None,
            progress: bool = True) -> list[Any]:
        """``[func(*task, **shared) for task in tasks]``; ``on_result(i, result)`` is called in this
        process as each result arrives, in order, so finished work can be saved before the end."""
        return collected(self.imap(func, tasks, shared=shared, desc=desc, unit=unit, total=len(tasks),
                                   progress=progress), on_result)


class SerialExecutor(Executor):
    """In this process, one task after another (no parallelism; the simplest to debug)."""

    workers_on_this_machine = True


_current: contextvars.ContextVar[Executor | None] = contextvars.ContextVar("slamfw_executor", default=None)


def executor_in_use() -> Executor | None:
    """The executor set by :func:`using_executor`, or None outside one."""
    return _current.get()


def import_modules(modules: Sequence[str]) -> None:
    """Import ``modules`` (names), each that can be (one that fails is logged at DEBUG and
    skipped): a worker's preparation for :meth:`Executor.prestart`."""
    import importlib
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as exc:   # a preparation only: the task that needs the module will say why
            log.debug("preparing a worker: could not import %s (%s: %s)", name, type(exc).__name__, exc)


def current_executor() -> Executor:
    """The executor in use (set by :func:`using_executor`); a :class:`SerialExecutor` when none is."""
    ex = _current.get()
    return ex if ex is not None else SerialExecutor()


@contextmanager
def using_executor(executor: Executor) -> Iterator[Executor]:
    """Make ``executor`` the one :func:`current_executor` returns, started, for the ``with`` block."""
    token = _current.set(executor)
    try:
        with executor:
            yield executor
    finally:
        _current.reset(token)
