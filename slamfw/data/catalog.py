"""Label catalogues as astropy Tables, written to FITS and ECSV."""
from __future__ import annotations

import io
import logging
import os
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
from astropy.io import fits
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


def _layout(parts: Callable[[], Iterable[dict[str, np.ndarray]]]) -> tuple[int, int, bool]:
    """(stars, widest id, whether every part has true labels) of the non-empty parts."""
    n, width, truth = 0, 1, True
    for part in parts():
        if part["ids"].size:
            n += part["ids"].size
            width = max(width, int(np.char.str_len(part["ids"].astype(str)).max()))
            truth &= "true_labels" in part
    return n, width, truth


def _part_table(part: dict[str, np.ndarray], label_units: Sequence[str], width: int, truth: bool) -> Table:
    return make_catalog(part["ids"].astype(f"U{width}"), LabelResult.from_arrays(part), label_units,
                        snr=part["snr"], true_labels=part["true_labels"] if truth else None)


def _fits_data(table: Table) -> tuple[Any, bytes]:
    """The FITS header of ``table`` as a binary table, and its rows as astropy writes them."""
    hdu = fits.table_to_hdu(table)
    buf = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(buf)
    start = len(fits.PrimaryHDU().header.tostring()) + len(hdu.header.tostring())
    return hdu.header, buf.getvalue()[start:start + len(table) * hdu.header["NAXIS1"]]


def _write_fits_rows(fh: Any, tables: Iterable[Table], n: int) -> None:
    fh.write(fits.PrimaryHDU().header.tostring().encode("ascii"))
    written = 0
    for i, table in enumerate(tables):
        header, rows = _fits_data(table)
        if i == 0:
            header["NAXIS2"] = n
            fh.write(header.tostring().encode("ascii"))
        fh.write(rows)
        written += len(rows)
    fh.write(b"\0" * (-written % 2880))


def _write_ecsv_rows(fh: Any, tables: Iterable[Table]) -> None:
    for i, table in enumerate(tables):
        text = io.StringIO()
        table.write(text, format="ascii.ecsv")
        lines = text.getvalue().splitlines(keepends=True)
        if i:  # the header and the column names once, from the first part
            lines = lines[next(j for j, line in enumerate(lines) if not line.startswith("#")) + 1:]
        fh.write("".join(lines).encode())


def write_catalog_parts(parts: Callable[[], Iterable[dict[str, np.ndarray]]], label_units: Sequence[str],
                        path: str | os.PathLike) -> tuple[Path, int, int]:
    """Write the catalogue of several parts, in order, one part at a time: the memory used does not
    depend on the number of stars, and the file is the one :func:`write_catalog` would write for
    all of them at once (byte for byte).

    ``parts()`` returns a fresh iterable each call (it is read twice). A part holds ``ids``,
    ``snr`` and ``true_labels`` (when known) beside a :class:`LabelResult`'s arrays; an empty part
    (no star survived preparation) holds only ``ids``. Returns the path, the number of stars and
    how many of them converged.
    """
    path = check_catalog_path(path)
    n, width, truth = _layout(parts)
    if n == 0:
        raise DataError("no star of the data could be prepared and inferred")
    converged = [0]

    def tables() -> Iterable[Table]:
        for part in parts():
            if part["ids"].size:
                converged[0] += int(np.sum(part["converged"]))
                yield _part_table(part, label_units, width, truth)

    with warnings.catch_warnings(), atomic_path(path) as tmp, open(tmp, "wb") as fh:
        warnings.filterwarnings("ignore", message=".*could not be saved in native FITS format.*")
        if FORMATS[path.suffix.lower()] == "fits":
            _write_fits_rows(fh, tables(), n)
        else:
            _write_ecsv_rows(fh, tables())
    log.info("catalogue written: %s (%d stars)", path, n)
    return path, n, converged[0]


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
