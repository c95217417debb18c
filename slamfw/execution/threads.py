"""Limiting the threads of BLAS and OpenMP in this process, cheaply enough to do it per task.

``threadpoolctl.threadpool_limits`` finds the thread pools afresh at each call, by reading the
list of the process's loaded libraries (``/proc/self/maps`` on Linux): 3.2 ms a call in a worker
of ``slamfw predict`` (numpy, scipy, scikit-learn and numba loaded), against 0.03 ms for the
``limit`` of a :class:`threadpoolctl.ThreadpoolController` made once. slamfw limits the threads
several times per chunk of spectra (the executor's task, the fit, the emulated library), so
:func:`limit_threads` keeps one controller per process. A library that loads after it was made
would not be limited: native libraries load when Python imports an extension module, so the
controller is made again whenever the process has imported modules since.
"""
from __future__ import annotations

import sys
import threading
from contextlib import contextmanager
from typing import Any, Iterator

_LOCK = threading.Lock()
_CONTROLLER: list[Any] = [None, -1]      # the controller, and len(sys.modules) when it was made


def _controller() -> Any:
    """This process's ThreadpoolController, made again if modules were imported since."""
    from threadpoolctl import ThreadpoolController
    with _LOCK:
        if _CONTROLLER[0] is None or _CONTROLLER[1] != len(sys.modules):
            # made first, counted after: the controller's own imports then do not make it stale
            _CONTROLLER[0] = ThreadpoolController()
            _CONTROLLER[1] = len(sys.modules)
        return _CONTROLLER[0]


@contextmanager
def limit_threads(limits: int | None) -> Iterator[None]:
    """Within the block, at most ``limits`` threads for every BLAS and OpenMP library loaded in
    this process (``threadpoolctl.threadpool_limits(limits=limits)``, without finding the
    libraries again at each call); None: no limit."""
    with _controller().limit(limits=limits):
        yield
