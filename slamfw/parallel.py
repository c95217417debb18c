"""One way to run independent tasks in parallel, with a progress bar.

Local processes through joblib (loky) by default; ``n_jobs=1`` runs in-process. Large numpy
arguments are memory-mapped by joblib rather than copied to each worker.
"""
from __future__ import annotations

import logging
import os
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
                 desc: str = "", shared: dict[str, Any] | None = None, progress: bool = True) -> list[Any]:
    """``[func(*task, **shared) for task in tasks]``, in order, on ``n_jobs`` processes."""
    shared = shared or {}
    n = effective_n_jobs(n_jobs)
    bar = tqdm(total=len(tasks), desc=desc, disable=not progress or None, leave=False, unit="task")
    try:
        if n == 1 or len(tasks) <= 1:
            out = []
            for task in tasks:
                out.append(func(*task, **shared))
                bar.update(1)
            return out
        from joblib import Parallel, delayed
        gen: Iterable[Any] = Parallel(n_jobs=n, return_as="generator")(
            delayed(func)(*task, **shared) for task in tasks)
        out = []
        for res in gen:
            out.append(res)
            bar.update(1)
        return out
    finally:
        bar.close()


def chunks(n: int, size: int) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` covering ``range(n)`` in pieces of ``size``."""
    size = max(1, int(size))
    return [(s, min(s + size, n)) for s in range(0, n, size)]
