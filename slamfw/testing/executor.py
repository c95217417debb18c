"""The executor conformance kit: ``check_executor``.

It runs small tasks on the executor (started with ``with executor:``) and checks the contract of
:class:`slamfw.Executor`: results come back in task order, with the shared arguments; ``map``
calls ``on_result`` in order; ``imap`` consumes a stream of tasks lazily (a bounded number taken
and not yet handed back, even while the caller is slow, so a stream of chunks never piles up in
memory); a failing stream of tasks gives back the results taken before its error; an exception
in a task reaches the caller; a large shared array arrives intact; tasks use at most cores /
workers BLAS threads; ``n_workers`` is a positive integer and ``workers_on_this_machine`` and
``workers_share_files`` bools;
starting and closing twice is harmless. (That workers die with the process that started them is
checked by slamfw's own tests for its executors, not here: it needs a process to kill.)

Usage: ``check_executor(MyExecutor)`` or ``check_executor(MyExecutor, {"workers": 2})``. Tasks
are module-level functions of this module, so executors that send them to other processes or
machines can import them.
"""
from __future__ import annotations

import time
from typing import Any, Iterator

import numpy as np

from ..components.executor import Executor, available_cores
from ._common import Case, CheckResult, checker, params_check, resolve, run_checks

__all__ = ["check_executor", "EXECUTOR_CHECKS", "ExecutorCase"]

#: How many tasks of a stream may be taken and not yet handed back to the caller (or 4 per
#: worker, if more).
MAX_AHEAD = 64

#: Seconds the lazy check's caller pauses after its first result.
PAUSE_S = 0.5


class ExecutorCase(Case):
    """An executor under test, started once for all checks."""

    base = Executor

    def started(self) -> Executor:
        if not hasattr(self, "_executor"):
            self._executor = self.fresh().start()
        return self._executor

    def close(self) -> None:
        if hasattr(self, "_executor"):
            self._executor.close()
            del self._executor


check = checker(ExecutorCase)


def _affine(x: float, scale: float = 1.0, offset: float = 0.0) -> float:
    return scale * x + offset


def _checksum(i: int, data: np.ndarray) -> tuple[int, float]:
    return i, float(data.sum() + i)


def _blas_threads(i: int) -> int:
    from threadpoolctl import threadpool_info
    return max((p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"), default=1)


def _fails_on_three(i: int) -> int:
    if i == 3:
        raise ValueError("task 3 fails on purpose")
    return i


@check("results come back in task order, with the shared arguments")
def check_order(case: ExecutorCase) -> str:
    """``map(func, tasks, shared=...)`` equals ``[func(*t, **shared) for t in tasks]``."""
    tasks = [(float(i),) for i in range(23)]
    got = case.started().map(_affine, tasks, shared={"scale": 2.0, "offset": 1.0}, progress=False)
    want = [2.0 * t[0] + 1.0 for t in tasks]
    return "" if got == want else f"map gave {got[:6]}..., expected {want[:6]}..."


@check("map calls on_result in order as results arrive")
def check_on_result(case: ExecutorCase) -> str:
    seen: list[tuple[int, float]] = []
    out = case.started().map(_affine, [(float(i),) for i in range(9)], on_result=lambda i, r: seen.append((i, r)),
                             progress=False)
    return "" if seen == list(enumerate(out)) else f"on_result saw {seen}, the results are {out}"


@check("imap takes a stream of tasks lazily, and no further than a bounded number ahead of its caller")
def check_lazy(case: ExecutorCase) -> str:
    """The first result comes back before more than ``max(MAX_AHEAD, 4 x n_workers)`` tasks were
    taken, and while the caller then pauses (a slow consumer: a GPU fit, a slow disk), the executor
    takes at most that many tasks beyond those it handed back (results must not pile up in memory)."""
    ex = case.started()
    bound = max(MAX_AHEAD, 4 * ex.n_workers)
    n_tasks = 10 * bound
    taken: list[int] = []

    def tasks() -> Iterator[tuple[float]]:
        for i in range(n_tasks):
            taken.append(i)
            yield (float(i),)

    it = ex.imap(_affine, tasks(), progress=False)
    first = next(it)
    ahead = len(taken)
    time.sleep(PAUSE_S)
    ahead_after_pause = len(taken) - 1
    rest = list(it)
    if first != 0.0 or rest != [float(i) for i in range(1, n_tasks)]:
        return "imap gave wrong results for a generator of tasks"
    if ahead > bound:
        return f"{ahead} tasks were taken before the first result (> {bound})"
    if ahead_after_pause > bound:
        return f"{ahead_after_pause} tasks were taken beyond the one handed back while the caller paused " \
               f"{PAUSE_S} s (> {bound}): imap runs ahead of a slow consumer"
    return ""


def _failing_stream() -> Iterator[tuple[float]]:
    yield (1.0,)
    yield (2.0,)
    raise OSError("the stream's third task cannot be read")


@check("a failing stream of tasks gives back the results taken before its error")
def check_failing_stream(case: ExecutorCase) -> str:
    """Results of the tasks taken before the stream failed come back first (a streaming run saves
    them), then the stream's own error."""
    got: list[float] = []
    try:
        for result in case.started().imap(_affine, _failing_stream(), progress=False):
            got.append(result)
    except OSError as err:
        if "third task" not in str(err):
            return f"raised another OSError: {err}"
        return "" if got == [1.0, 2.0] else f"gave {got} before the stream's error, expected [1.0, 2.0]"
    except Exception as err:  # noqa: BLE001
        return f"raised {type(err).__name__} ({err}), not the stream's OSError"
    return "the stream's error did not reach the caller"


@check("an exception in a task reaches the caller")
def check_errors(case: ExecutorCase) -> str:
    try:
        case.started().map(_fails_on_three, [(i,) for i in range(6)], progress=False)
    except ValueError as err:
        return "" if "task 3" in str(err) else f"raised ValueError without the task's message: {err}"
    except Exception as err:  # noqa: BLE001 - executors may wrap, but must not hide
        return "" if "task 3" in str(err) else f"raised {type(err).__name__}: {err}"
    return "a failing task did not raise"


@check("a large shared array arrives intact")
def check_shared_array(case: ExecutorCase) -> str:
    data = np.random.default_rng(0).normal(size=(300, 500))   # 1.2 MB: above joblib's memmapping threshold
    got = case.started().map(_checksum, [(i,) for i in range(5)], shared={"data": data}, progress=False)
    want = [(i, float(data.sum() + i)) for i in range(5)]
    return "" if got == want else f"results {got} differ from {want}"


@check("tasks use at most cores / workers BLAS threads")
def check_threads(case: ExecutorCase) -> str:
    """Inside a task, BLAS runs at most ``max(1, cores // n_workers)`` threads, so that workers x
    threads fits the cores (threadpoolctl's view; a note when no BLAS library is found)."""
    ex = case.started()
    limit = max(1, available_cores() // max(ex.n_workers, 1))
    seen = ex.map(_blas_threads, [(i,) for i in range(max(2, 2 * ex.n_workers))], progress=False)
    if max(seen) > limit:
        return f"tasks ran {max(seen)} BLAS threads with {ex.n_workers} workers on {available_cores()} cores " \
               f"(at most {limit}: use slamfw.call_limited, or threadpoolctl)"
    return ""


@check("n_workers is a positive integer, workers_on_this_machine and workers_share_files bools; start() and close() "
       "may be called twice")
def check_lifecycle(case: ExecutorCase) -> str:
    ex = case.fresh()
    with ex:
        ex.start()
        n, here, files = ex.n_workers, ex.workers_on_this_machine, ex.workers_share_files
        ok = ex.map(_affine, [(1.0,)], progress=False) == [1.0]
    ex.close()
    if not (isinstance(n, int) and n >= 1):
        return f"n_workers is {n!r}"
    if not isinstance(here, bool):
        return f"workers_on_this_machine is {here!r}, not a bool"
    if not isinstance(files, bool):
        return f"workers_share_files is {files!r}, not a bool"
    return "" if ok else "a started-twice executor gave a wrong result"


def _failing_prepare() -> None:
    raise RuntimeError("a preparation that fails")


@check("prestart() and prestart(prepare) return, a failing prepare included, and the tasks after them give their "
       "results")
def check_prestart(case: ExecutorCase) -> str:
    from functools import partial

    from ..components.executor import import_modules
    ex = case.fresh()
    ex.prestart()                            # as slamfw predict: before the executor's with block
    ex.prestart(_failing_prepare)
    ex.prestart(partial(import_modules, ["colorsys"]))
    with ex:
        got = ex.map(_affine, [(1.0,), (2.0,)], shared={"offset": 1.0}, progress=False)
    return "" if got == [2.0, 3.0] else f"after prestart, map gave {got!r} instead of [2.0, 3.0]"


EXECUTOR_CHECKS = [params_check(ExecutorCase), check_order, check_on_result, check_lazy, check_failing_stream,
                   check_errors, check_shared_array, check_threads, check_lifecycle, check_prestart]


def check_executor(executor: type[Executor] | Executor, params: dict[str, Any] | None = None, *,
                   raise_on_fail: bool = True) -> list[CheckResult]:
    """Run the executor conformance checks; one :class:`CheckResult` per check.

    ``executor`` is a class (built with ``params``) or an instance (its ``get_params()``).
    Raises :class:`ComponentCheckError` listing the failures when ``raise_on_fail``.
    """
    cls, params = resolve(executor, params, Executor)
    case = ExecutorCase(cls, params)
    try:
        return run_checks(EXECUTOR_CHECKS, case, raise_on_fail)
    finally:
        case.close()
