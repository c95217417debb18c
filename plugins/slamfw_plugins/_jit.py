"""numba for the plugins' inner loops, optional (the extra ``slamfw[fast]``).

A :class:`Kernel` wraps a plain Python function written for numba. It is compiled on first use
(numba is imported only then) and cached on disk; where numba is not installed, or does not work
(an import that fails, numpy too new, a compiler error), :meth:`Kernel.get` gives None and the
caller's numpy path serves (silently without numba; after one warning saying why when it fails).
"""
from __future__ import annotations

import importlib.util
import logging
import threading
from typing import Callable

log = logging.getLogger(__name__)


class Kernel:
    """``func`` compiled by numba on first :meth:`get`. ``what`` names the computation and
    ``fallback`` what serves without numba, for the warning."""

    def __init__(self, func: Callable, what: str, fallback: str) -> None:
        self.func, self.what, self.fallback = func, what, fallback
        self.compiled: Callable | bool | None = None     # None: not tried yet; False: unusable
        self._lock = threading.Lock()

    def get(self) -> Callable | None:
        """The compiled function, or None (numba missing or unusable). Threads that ask while
        another compiles wait for it, so that none takes the numpy path meanwhile (the two agree
        to rounding only: a result must not depend on thread timing)."""
        if self.compiled is None:
            with self._lock:
                if self.compiled is None:
                    compiled: Callable | bool = False
                    if importlib.util.find_spec("numba") is not None:
                        try:
                            import numba
                            compiled = numba.njit(cache=True, nogil=True)(self.func)
                        except Exception as exc:   # a numba that does not import (numpy too new, say)
                            self.failed(exc)
                    self.compiled = compiled
        return self.compiled or None

    def failed(self, exc: Exception) -> None:
        """Fall back for the rest of the process (the compiled function raised ``exc``: numba
        compiles on the first call), saying why once."""
        self.compiled = False
        log.warning("%s: numba's kernel is not usable (%s: %s); %s instead (the same results, slower)",
                    self.what, type(exc).__name__, exc, self.fallback)
