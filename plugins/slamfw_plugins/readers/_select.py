"""Label selection shared by the readers: ``where = {Teff = [4000, 7000], ...}``."""
from __future__ import annotations

import logging
from typing import Annotated

import numpy as np

from slamfw import ConfigError, ParamRole

log = logging.getLogger(__name__)

#: ``where = {label = [low, high], ...}``: which stars to read (a selection, not how to read them).
Where = Annotated[dict[str, list[float]], ParamRole.SELECTION]


def where_mask(labels: np.ndarray, names: list[str], where: dict[str, list[float]], what: str) -> np.ndarray:
    """(N,) bool: stars whose labels lie inside every ``[lo, hi]`` of ``where`` (NaN fails)."""
    keep = np.ones(labels.shape[0], bool)
    for key, bounds in where.items():
        if key not in names:
            raise ConfigError(f"{what}.where: unknown label {key!r}; labels are {names}")
        if len(bounds) != 2 or bounds[0] > bounds[1]:
            raise ConfigError(f"{what}.where.{key}: expected [low, high], got {bounds}")
        col = labels[:, names.index(key)]
        with np.errstate(invalid="ignore"):
            keep &= (col >= bounds[0]) & (col <= bounds[1])
    return keep
