"""The executor: one way to run independent tasks in parallel, with a progress bar.

Local processes through joblib (loky) by default; ``n_jobs=1`` runs in-process. Large numpy
arguments are memory-mapped by joblib rather than copied to each worker.
"""
from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any, Callable, Iterable, Sequence

from tqdm.auto import tqdm

log = logging.getLogger(__name__)


def effective_n_jobs(n_jobs: int) -> int:
    """``n_jobs`` as a positive count (-1: all cores, -2: all but one, ...)."""
    cores = os.cpu_count() or 1
    if n_jobs is None or n_jobs == 0:
        return 1
    return max(1, n_jobs if n_jobs > 0 else cores + 1 + n_jobs)


def parallel_map(func: Callable[..., Any], tasks: Sequence[tuple], n_jobs: int = 1,
                 desc: str = "", shared: dict[str, Any] | None = None, progress: bool = True,
                 on_result: Callable[[int, Any], None] | None = None) -> list[Any]:
    """``[func(*task, **shared) for task in tasks]``, in order, on ``n_jobs`` processes.

    ``on_result(i, result)`` is called in this process as each result arrives (in order), so
    callers can save finished work before the whole map is done.
    """
    shared = shared or {}
    n = effective_n_jobs(n_jobs)
    tty = progress and sys.stderr.isatty()
    bar = tqdm(total=len(tasks), desc=desc, disable=not tty, leave=False, unit="task")
    # without a terminal (batch jobs, CI), log progress every ~10% instead of drawing a bar
    every = max(1, len(tasks) // 10) if progress and not tty and len(tasks) > 1 else 0
    t0 = time.perf_counter()

    def tick(done: int) -> None:
        if on_result is not None:
            on_result(done - 1, out[-1])
        bar.update(1)
        if every and (done % every == 0 or done == len(tasks)):
            dt = time.perf_counter() - t0
            log.info("%s: %d/%d tasks (%.0f%%), %.0f s elapsed, about %.0f s left", desc or "progress", done,
                     len(tasks), 100.0 * done / len(tasks), dt, dt * (len(tasks) - done) / done)

    try:
        out: list[Any] = []
        if n == 1 or len(tasks) <= 1:
            for task in tasks:
                out.append(func(*task, **shared))
                tick(len(out))
            return out
        from joblib import Parallel, delayed
        gen: Iterable[Any] = Parallel(n_jobs=n, return_as="generator")(
            delayed(func)(*task, **shared) for task in tasks)
        for res in gen:
            out.append(res)
            tick(len(out))
        return out
    finally:
        bar.close()


def chunks(n: int, size: int) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` covering ``range(n)`` in pieces of ``size``."""
    size = max(1, int(size))
    return [(s, min(s + size, n)) for s in range(0, n, size)]
