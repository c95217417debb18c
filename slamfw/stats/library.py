"""The emulated library: the emulator's spectra at its own training labels, kept per process.

Every block of stars that :func:`~slamfw.stats.maxlike.maximum_likelihood` fits is matched
against the same library (the paper's initial guess, §2.3), and the batched solver's first
evaluation of each row is at a library star. Both are the same for every block of a survey, so
they are computed once per process and emulator and looked up afterwards, instead of once per
block (on case (a) of the speed benchmark, 1000 library spectra per block of 500 stars, and one
evaluation in six of each row).

The cache holds the emulator weakly (it goes with the emulator) and checks, at each lookup, that
the training labels are the same and that the emulator still gives the same spectra at the
first two of them (bit for bit: an emulator fitted again in place is computed afresh).
"""
from __future__ import annotations

import threading
import weakref
from typing import Any

import numpy as np

#: The largest library jacobian (M, P, L) kept, in bytes; a larger one is not computed (the
#: solver then evaluates the emulator at the starts, as without the library).
LIBRARY_JACOBIAN_BYTES = 256 * 2 ** 20

_CACHE: "weakref.WeakKeyDictionary[Any, dict[str, Any]]" = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def _entry(emulator: Any, train: np.ndarray) -> dict[str, Any]:
    """The cache entry of ``emulator`` at training labels ``train`` (M, L): an empty one if there
    is none, or if the one kept is for other labels or an emulator that changed since."""
    probe = np.asarray(emulator.predict(train[:2]), float)
    try:
        entry = _CACHE.get(emulator)
    except TypeError:                       # an emulator that cannot be weakly referenced: no cache
        return {"train": train, "probe": probe}
    if (entry is None or entry["train"].shape != train.shape or not np.array_equal(entry["train"], train)
            or not np.array_equal(entry["probe"], probe, equal_nan=True)):
        entry = {"train": train.copy(), "probe": probe}
        _CACHE[emulator] = entry
    return entry


def library_flux(emulator: Any, train: np.ndarray) -> np.ndarray:
    """(M, P) the emulator's flux at the training labels ``train`` (M, L), physical units:
    ``emulator.predict(train)``, computed once per process and emulator. Read-only."""
    train = np.asarray(train, float)
    with _LOCK:
        entry = _entry(emulator, train)
        if "flux" not in entry:
            flux = np.asarray(emulator.predict(train), float)
            flux.setflags(write=False)
            entry["flux"] = flux
        return entry["flux"]


def library_jacobian(emulator: Any, train: np.ndarray) -> np.ndarray | None:
    """(M, P, L) the emulator's d flux / d label at the training labels ``train`` (M, L), from
    ``emulator.predict_and_jacobian``, computed once per process and emulator; None when it would
    take more than :data:`LIBRARY_JACOBIAN_BYTES`. Read-only."""
    train = np.asarray(train, float)
    n_pix = int(emulator.n_pixels_)
    if 8 * train.shape[0] * n_pix * train.shape[1] > LIBRARY_JACOBIAN_BYTES:
        return None
    with _LOCK:
        entry = _entry(emulator, train)
        if "jacobian" not in entry:
            jac = np.ascontiguousarray(emulator.predict_and_jacobian(train)[1], dtype=float)
            jac.setflags(write=False)
            entry["jacobian"] = jac
        return entry["jacobian"]


def clear_library_cache() -> None:
    """Forget every library kept in this process."""
    with _LOCK:
        _CACHE.clear()
