"""The emulated library: the emulator's spectra at its own training labels, kept per process.

Every block of stars that :func:`~slamfw.stats.maxlike.maximum_likelihood` fits is matched
against the same library (the paper's initial guess, §2.3), and the batched solver's first
evaluation of each row is at a library star. Both are the same for every block of a survey, so
they are computed once per process and emulator and looked up afterwards, instead of once per
block (on case (a) of the speed benchmark: 1000 library spectra for each chunk of 500 spectra that
``slamfw predict`` hands it, and one evaluation in five or six of each row).

Both are computed with one BLAS thread, in blocks of :data:`LIBRARY_ROWS` training stars, so that
they are the same bits in every process, whatever executor runs it. The cache holds the emulator
weakly (it goes with the emulator) and checks, at each lookup, that the training labels are the
same and that the emulator still gives the same spectra at the first two of them (to 1e-12: an
emulator fitted again in place is computed afresh). An emulator that cannot be weakly referenced
is not cached: its library flux is computed at each call, and it gets no library jacobian.
"""
from __future__ import annotations

import threading
import weakref
from typing import Any

import numpy as np

from ..execution.threads import limit_threads

#: The largest library jacobian (M, L, P) kept, in bytes (256 MiB); a larger one is not computed (the
#: solver then evaluates the emulator at the starts, as without the library).
LIBRARY_JACOBIAN_BYTES = 256 * 2 ** 20
#: Training stars per emulator call while the library is computed (its transient memory).
LIBRARY_ROWS = 64

_CACHE: "weakref.WeakKeyDictionary[Any, dict[str, Any]]" = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def _predict(emulator: Any, train: np.ndarray) -> np.ndarray:
    """(M, P) ``emulator.predict`` at ``train`` (M, L), in blocks of LIBRARY_ROWS, one BLAS thread."""
    with limit_threads(1):
        return np.concatenate([np.asarray(emulator.predict(train[s:s + LIBRARY_ROWS]), float)
                               for s in range(0, len(train), LIBRARY_ROWS)])


def _entry(emulator: Any, train: np.ndarray) -> dict[str, Any] | None:
    """The cache entry of ``emulator`` at training labels ``train`` (M, L): an empty one if there
    is none, or if the one kept is for other labels or an emulator that changed since; None for an
    emulator that cannot be weakly referenced."""
    try:
        entry = _CACHE.get(emulator)
    except TypeError:
        return None
    probe = _predict(emulator, train[:2])
    if (entry is None or entry["train"].shape != train.shape or not np.array_equal(entry["train"], train)
            or not np.allclose(entry["probe"], probe, rtol=1e-12, atol=0.0, equal_nan=True)):
        entry = {"train": train.copy(), "probe": probe}
        _CACHE[emulator] = entry
    return entry


def library_flux(emulator: Any, train: np.ndarray) -> np.ndarray:
    """(M, P) the emulator's flux at the training labels ``train`` (M, L), physical units:
    ``emulator.predict(train)``, computed once per process and emulator. Read-only."""
    train = np.asarray(train, float)
    with _LOCK:
        entry = _entry(emulator, train)
        if entry is None:
            return _predict(emulator, train)
        if "flux" not in entry:
            flux = _predict(emulator, train)
            flux.setflags(write=False)
            entry["flux"] = flux
        return entry["flux"]


def library_jacobian(emulator: Any, train: np.ndarray) -> np.ndarray | None:
    """(M, L, P) the emulator's d flux / d label at the training labels ``train`` (M, L), from
    ``emulator.predict_and_jacobian`` (whose (M, P, L) it is, transposed: pixels last, the layout
    the solver's sums over pixels want), computed once per process and emulator; None when it
    would take more than :data:`LIBRARY_JACOBIAN_BYTES`, or for an emulator that cannot be
    cached. Read-only."""
    train = np.asarray(train, float)
    n_pix = int(emulator.n_pixels_)
    if 8 * train.shape[0] * n_pix * train.shape[1] > LIBRARY_JACOBIAN_BYTES:
        return None
    with _LOCK:
        entry = _entry(emulator, train)
        if entry is None:
            return None
        if "jacobian" not in entry:
            jac = np.empty((train.shape[0], train.shape[1], n_pix))
            with limit_threads(1):
                for s in range(0, len(train), LIBRARY_ROWS):
                    jac[s:s + LIBRARY_ROWS] = np.asarray(
                        emulator.predict_and_jacobian(train[s:s + LIBRARY_ROWS])[1], float).transpose(0, 2, 1)
            jac.setflags(write=False)
            entry["jacobian"] = jac
        return entry["jacobian"]


def clear_library_cache() -> None:
    """Forget every library kept in this process."""
    with _LOCK:
        _CACHE.clear()
