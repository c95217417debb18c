"""Checks of an emulator's state as a model file gives it back (shared by the emulators here)."""
from __future__ import annotations

import numpy as np

from slamfw import DataError


def require(ok: np.ndarray, problem: str, where: str = "pixel", values: np.ndarray | None = None) -> None:
    """A :class:`DataError` ``"<problem> at <where> <j> (<n> such)"`` naming the first entry ``j``
    of ``ok`` (bool, one per pixel or training star) that is False, and how many are, with that
    entry's value from ``values`` when given; nothing when every entry is True."""
    if np.all(ok):
        return
    bad = np.flatnonzero(~np.asarray(ok))
    j = int(bad[0])
    value = "" if values is None else f": {float(values[j])!r}"
    raise DataError(f"{problem} at {where} {j} ({bad.size} such){value}")
