"""Label catalogues as astropy Tables, written to FITS and ECSV."""
from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
from astropy.table import Table

from ..errors import ConfigError, DataError
from ..execution.store import atomic_path
from .results import LabelResult

log = logging.getLogger(__name__)


def make_catalog(ids: Sequence[str], result: LabelResult, label_units: Sequence[str],
                 snr: np.ndarray | None = None, true_labels: np.ndarray | None = None) -> Table:
    """The catalogue of N stars.

    Columns: ``id``; per label ``<label>`` and ``<label>_err`` (formal error, sqrt of the
    covariance diagonal); ``converged``, ``rmse``, ``chi2`` (reduced), ``snr``; per label
    ``<label>_init`` (initial guess); and ``<label>_true`` when the input had labels.
    """
    names = result.label_names
    units = list(label_units) + [""] * (len(names) - len(label_units))
    t = Table()
    t["id"] = np.asarray(ids, dtype=str)
    err = result.errors
    for j, (name, unit) in enumerate(zip(names, units)):
        t[name] = result.labels[:, j]
        t[f"{name}_err"] = err[:, j]
        if unit:
            t[name].unit = unit
            t[f"{name}_err"].unit = unit
    t["converged"] = np.asarray(result.converged, dtype=bool)
    t["rmse"] = result.rmse
    t["chi2"] = result.chi2
    t["snr"] = np.full(len(t), np.nan) if snr is None else np.asarray(snr, float)
    for j, name in enumerate(names):
        t[f"{name}_init"] = result.init[:, j]
        if units[j]:
            t[f"{name}_init"].unit = units[j]
    if true_labels is not None:
        for j, name in enumerate(names):
            t[f"{name}_true"] = true_labels[:, j]
    t.meta["comments"] = ["slamfw label catalogue: <label>_err is the formal error from the likelihood; "
                          "chi2 is reduced chi^2; <label>_init is the initial guess"]
    return t


def catalog_from_parts(parts: Sequence[dict[str, np.ndarray]], label_units: Sequence[str]) -> Table:
    """The catalogue of the stars of several parts, in order. A part holds ``ids``, ``snr`` and
    ``true_labels`` (when known) beside a :class:`LabelResult`'s arrays; an empty part (no star
    survived preparation) holds only ``ids``."""
    full = [p for p in parts if p["ids"].size]
    if not full:
        raise DataError("no star of the data could be prepared and inferred")
    result = LabelResult.concatenate([LabelResult.from_arrays(p) for p in full])
    truth = np.concatenate([p["true_labels"] for p in full]) if all("true_labels" in p for p in full) else None
    return make_catalog(np.concatenate([p["ids"] for p in full]), result, label_units,
                        snr=np.concatenate([p["snr"] for p in full]), true_labels=truth)


FORMATS = {".fits": "fits", ".ecsv": "ascii.ecsv"}


def check_catalog_path(path: str | os.PathLike) -> Path:
    """``path`` as a Path, or an error if its suffix names no catalogue format (before any work)."""
    path = Path(path)
    if path.suffix.lower() not in FORMATS:
        raise ConfigError(f"catalogue {str(path)!r}: use a .fits or .ecsv file name")
    return path


def write_catalog(table: Table, path: str | os.PathLike) -> Path:
    """Write ``table`` to ``path`` (format from the suffix: .fits or .ecsv), atomically."""
    path = check_catalog_path(path)
    fmt = FORMATS[path.suffix.lower()]
    with warnings.catch_warnings(), atomic_path(path) as tmp:
        # FITS has no 'dex'; the unit stays in the ECSV catalogue and in the model's metadata
        warnings.filterwarnings("ignore", message=".*could not be saved in native FITS format.*")
        table.write(tmp, format=fmt, overwrite=True)
    log.info("catalogue written: %s (%d stars)", path, len(table))
    return path
