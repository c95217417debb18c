"""Limiting the threads of BLAS and OpenMP in this process, cheaply enough to do it per task.

``threadpoolctl.threadpool_limits`` finds the thread pools afresh at each call, by reading the
list of the process's loaded libraries (``/proc/self/maps`` on Linux): 3.2 ms a call in a worker
of ``slamfw predict`` (numpy, scipy, scikit-learn and numba loaded), against 0.03 ms for the
``limit`` of a :class:`threadpoolctl.ThreadpoolController` made once. slamfw limits the threads
several times per chunk of spectra (the executor's task, the fit, the emulated library), so
:func:`limit_threads` keeps one controller per process: threadpoolctl's own cached controller
(``get_cached_controller``, in its recent versions), else one kept here by the same rule. A
library that loads after the controller was made would not be limited: native libraries load
when Python imports an extension module, so the controller is made again whenever the process
has imported modules since (the count taken before it is made, so that an import in another
thread meanwhile makes it stale rather than missed).
"""
from __future__ import annotations

import sys
import threading
from contextlib import contextmanager
from typing import Any, Iterator

_LOCK = threading.Lock()
_CONTROLLER: list[Any] = [None, -1]      # the controller, and len(sys.modules) before it was made


def _own_controller() -> Any:
    """A ThreadpoolController kept in this module, made again if modules were imported since."""
    from threadpoolctl import ThreadpoolController
    with _LOCK:
        n_modules = len(sys.modules)
        if _CONTROLLER[0] is None or _CONTROLLER[1] != n_modules:
            _CONTROLLER[0], _CONTROLLER[1] = ThreadpoolController(), n_modules
        return _CONTROLLER[0]


def _controller() -> Any:
    """This process's cached ThreadpoolController (threadpoolctl's, where it has one)."""
    import threadpoolctl
    cached = getattr(threadpoolctl, "get_cached_controller", None)
    return cached() if cached is not None else _own_controller()


@contextmanager
def limit_threads(limits: int | None) -> Iterator[None]:
    """Within the block, at most ``limits`` threads for every BLAS and OpenMP library loaded in
    this process (``threadpoolctl.threadpool_limits(limits=limits)``, without finding the
    libraries again at each call); None: no limit."""
    with _controller().limit(limits=limits):
        yield
