"""Label catalogues as astropy Tables, written to FITS and ECSV."""
from __future__ import annotations

import functools
import io
import logging
import os
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
from astropy.io import fits
from astropy.table import Column, Table

from ..errors import ConfigError, DataError
from ..execution.store import atomic_path
from ..stats.metrics import label_distance
from ..stats.quality import FLAGS
from .results import LabelResult

log = logging.getLogger(__name__)


#: Flag columns, in order (what each means: :mod:`slamfw.stats.quality` and ``docs/catalogue.md``).
FLAG_COLUMNS = FLAGS
#: Extra arrays the pipeline writes in fixed places (not again among the inferer's extras).
_PLACED = set(FLAG_COLUMNS) | {"snr_spec", "at_bound", "grid_coverage"}
#: The catalogue's own columns, and the endings of its per-label ones: no label may be named so.
RESERVED_COLUMNS = frozenset({"id", "ra", "dec", "converged", "rmse", "chi2", "snr", "label_distance", *_PLACED})
PER_LABEL_SUFFIXES = ("_err", "_err_formal", "_init", "_true")


def check_label_names(names: Sequence[str], what: str = "labels") -> None:
    """A ConfigError naming the label whose name is a column of the catalogue (``chi2``, ``snr``) or
    ends as a label's own columns do (``Teff_err``): its values would replace that column's, or be
    replaced by them, silently."""
    for name in names:
        if name in RESERVED_COLUMNS or name.endswith(PER_LABEL_SUFFIXES):
            ending = next((s for s in PER_LABEL_SUFFIXES if name.endswith(s)), "")
            clash = f"<label>{ending}" if ending else name
            raise ConfigError(f"{what}: the label {name!r} has the name of a catalogue column ({clash}), whose values "
                              f"it would overwrite or be overwritten by; rename the label column (reserved: "
                              f"{', '.join(sorted(RESERVED_COLUMNS))}, and names ending in "
                              f"{', '.join(PER_LABEL_SUFFIXES)})")


def _unit(units: Sequence[str], j: int) -> str | None:
    return units[j] or None


def _label_columns(t: Table, result: LabelResult, units: Sequence[str]) -> None:
    formal = result.errors
    err = formal if result.errors_calibrated is None else result.errors_calibrated
    for j, name in enumerate(result.label_names):
        t[name] = Column(result.labels[:, j], unit=_unit(units, j))
        t[f"{name}_err"] = Column(err[:, j], unit=_unit(units, j))
        t[f"{name}_err_formal"] = Column(formal[:, j], unit=_unit(units, j))


def _extra_columns(t: Table, result: LabelResult, units: Sequence[str]) -> None:
    """The inferer's own per-star arrays: (N,) as ``<key>``, (N, L) as ``<label>_<key>``."""
    for key in sorted(k for k in result.extra if k not in _PLACED):
        arr = np.asarray(result.extra[key])
        unit = result.extra_units.get(key)
        if arr.ndim == 1:
            t[key] = Column(arr, unit=None if unit in (None, "label") else unit)
        elif arr.ndim == 2 and arr.shape[1] == len(result.label_names):
            for j, name in enumerate(result.label_names):
                u = _unit(units, j) if unit == "label" else unit
                t[f"{name}_{key}"] = Column(arr[:, j], unit=u)


def make_catalog(ids: Sequence[str], result: LabelResult, label_units: Sequence[str],
                 snr: np.ndarray | None = None, true_labels: np.ndarray | None = None,
                 ra: np.ndarray | None = None, dec: np.ndarray | None = None) -> Table:
    """The catalogue of N stars (every column is described in ``docs/catalogue.md``).

    Columns: ``id``; ``ra``, ``dec`` (deg) when the reader gives them; per label ``<label>``,
    ``<label>_err`` (the uncertainty to use: calibrated by the model's error model when it has
    one, else the formal error) and ``<label>_err_formal`` (sqrt of the covariance diagonal);
    ``converged``, the flags (``flag_extrapolated``, ``flag_bound``, ``flag_chi2``,
    ``flag_chi2_train``, ``flag_coverage``, ``flag_rv``), ``rmse``, ``chi2`` (reduced), ``snr`` (from the
    reader), ``snr_spec`` (measured on the prepared spectrum), ``grid_coverage`` (the fraction of
    the model's grid the spectrum covers); the inferer's own per-star quantities (e.g. the MCMC summaries); per label
    ``<label>_init`` (initial guess); and, when the input had labels, ``<label>_true`` and
    ``label_distance`` (eq. 11, over the labels it has a scale for).
    """
    names = result.label_names
    units = list(label_units) + [""] * (len(names) - len(label_units))
    n = result.n
    t = Table()
    t["id"] = np.asarray(ids, dtype=str)
    if ra is not None and dec is not None:
        t["ra"] = Column(np.asarray(ra, float), unit="deg")
        t["dec"] = Column(np.asarray(dec, float), unit="deg")
    _label_columns(t, result, units)
    t["converged"] = np.asarray(result.converged, dtype=bool)
    for flag in FLAG_COLUMNS:
        t[flag] = np.asarray(result.extra.get(flag, np.zeros(n, bool)), dtype=bool)
    t["rmse"] = result.rmse
    t["chi2"] = result.chi2
    t["snr"] = np.full(n, np.nan) if snr is None else np.asarray(snr, float)
    t["snr_spec"] = np.asarray(result.extra.get("snr_spec", np.full(n, np.nan)), float)
    t["grid_coverage"] = np.asarray(result.extra.get("grid_coverage", np.full(n, np.nan)), float)
    _extra_columns(t, result, units)
    for j, name in enumerate(names):
        t[f"{name}_init"] = Column(result.init[:, j], unit=_unit(units, j))
    if true_labels is not None:
        for j, name in enumerate(names):
            t[f"{name}_true"] = Column(true_labels[:, j], unit=_unit(units, j))
        try:
            t["label_distance"] = label_distance(result.labels, true_labels, names)
        except ValueError:
            pass
    t.meta["comments"] = ["slamfw label catalogue: <label>_err is the uncertainty to use (calibrated on the "
                          "training set when the model has an error model), <label>_err_formal the formal one; "
                          "chi2 is reduced chi^2; columns are described in slamfw's docs/catalogue.md"]
    return t


#: Per-star arrays of a catalogue part beside the result's, used only when every part has them.
_OPTIONAL = ("true_labels", "ra", "dec")


def _layout(parts: Callable[[], Iterable[dict[str, np.ndarray]]]) -> tuple[int, int, set[str]]:
    """(stars, widest id, the optional arrays every part has) of the non-empty parts."""
    n, width, common = 0, 1, set(_OPTIONAL)
    for part in parts():
        if part["ids"].size:
            n += part["ids"].size
            width = max(width, _utf8_width(part["ids"].astype(str)))
            common &= set(part)
    return n, width, common


def _parts_table(parts: list[dict[str, np.ndarray]], label_units: Sequence[str], width: int,
                 common: set[str]) -> Table:
    """The catalogue of non-empty ``parts``, in order: their arrays joined, then one table (making a
    table costs ~4 ms whatever its rows: 0.15 s for 40 parts of 500 stars, one at a time)."""
    def joined(key: str) -> np.ndarray:
        return np.concatenate([p[key] for p in parts]) if len(parts) > 1 else parts[0][key]
    result = LabelResult.concatenate([LabelResult.from_arrays(p) for p in parts])
    opt = {k: joined(k) if k in common else None for k in _OPTIONAL}
    return make_catalog(joined("ids").astype(f"U{width}"), result, label_units, snr=joined("snr"), **opt)


@functools.lru_cache(maxsize=None)
def _fits_knows(unit: str) -> bool:
    """Whether the FITS standard has ``unit`` (asked once per unit: astropy's refusal is slow)."""
    import astropy.units as u
    try:
        u.Unit(unit).to_string(format="fits")
    except u.UnitScaleError:          # a scaled unit ("2.5 K"): astropy refuses it, as it always has
        return True
    except (ValueError, TypeError, u.UnitsError):
        return False
    return True


def _utf8_width(text: np.ndarray) -> int:
    """The widest of ``text`` (str array) in UTF-8 bytes, as FITS stores it (at least 1)."""
    return max(1, np.char.encode(text, "utf-8").dtype.itemsize)


def _utf8_beyond_ascii(text: np.ndarray) -> np.ndarray | None:
    """``text`` (str array) as UTF-8 bytes, as wide as its ``U<k>`` type when they fit, if it
    holds a character beyond ASCII (one of more than one byte); else None."""
    utf8 = np.char.encode(text, "utf-8")
    if np.all(np.char.str_len(utf8) == np.char.str_len(text)):
        return None
    return utf8.astype(f"S{max(text.dtype.itemsize // 4, utf8.dtype.itemsize)}")


def table_hdu(table: Table) -> fits.BinTableHDU:
    """``table`` as a FITS binary table, keeping every unit: a unit FITS does not know (``dex``)
    is written as its name in ``TUNITn``, which astropy reads back as an unrecognised unit. A
    text column with characters beyond ASCII (a star id 'α Cen A') is written as UTF-8, which
    astropy reads back as text (it would encode it as ASCII, and fail after the whole inference),
    as wide as the column's ``U<k>`` type when the bytes fit (:func:`_layout` counts bytes, so the
    parts of one catalogue share one width)."""
    units = {name: table[name].unit for name in table.colnames}
    foreign = [name for name, unit in units.items() if unit is not None and not _fits_knows(unit.to_string())]
    utf8 = {name: text for name in table.colnames if table[name].dtype.kind == "U" and table[name].ndim == 1
            and (text := _utf8_beyond_ascii(np.asarray(table[name]))) is not None}
    if foreign or utf8:               # left to the loop below, instead of astropy's failed conversion
        table = table.copy(copy_data=False)
        for name in foreign:
            table[name].unit = None
        for name, text in utf8.items():
            table.replace_column(name, Column(text, unit=table[name].unit, description=table[name].description))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*could not be saved in native FITS format.*")
        hdu = fits.table_to_hdu(table)
    for i, name in enumerate(table.colnames, start=1):
        unit = units[name]
        if unit is not None and f"TUNIT{i}" not in hdu.header:
            hdu.header.insert(f"TFORM{i}", (f"TUNIT{i}", unit.to_string()), after=True)
    return hdu


def _fits_data(table: Table) -> tuple[Any, bytes]:
    """The FITS header of ``table`` as a binary table, and its rows as astropy writes them."""
    hdu = table_hdu(table)
    buf = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(buf)
    start = len(fits.PrimaryHDU().header.tostring()) + len(hdu.header.tostring())
    return hdu.header, buf.getvalue()[start:start + len(table) * hdu.header["NAXIS1"]]


#: Catalogue rows converted to the file's format at a time by :func:`write_catalog_parts`: parts are
#: joined up to this many rows first (astropy's table and conversion cost ~50 ms per call,
#: whatever the rows: 2 s for 40 parts of 500 stars; a few MB of memory per 10^4 rows, the
#: parts' posterior samples left out).
ROWS_PER_WRITE = 20_000


#: What a catalogue part holds that the catalogue does not write (emcee's posterior samples, (n,
#: S, L)): left out before parts are joined.
_UNWRITTEN = ("samples",)


def _joined(parts: Iterable[dict[str, np.ndarray]], rows: int) -> Iterator[list[dict[str, np.ndarray]]]:
    """``parts`` (non-empty; without the arrays the catalogue does not write) in groups of
    consecutive parts of at least ``rows`` rows (the last one fewer), and of the same arrays (a
    part that holds others, from another run, starts a group of its own)."""
    group: list[dict[str, np.ndarray]] = []
    size = 0
    for part in parts:
        part = {k: v for k, v in part.items() if k not in _UNWRITTEN}
        if group and set(part) != set(group[0]):
            yield group
            group, size = [], 0
        group.append(part)
        size += part["ids"].size
        if size >= rows:
            yield group
            group, size = [], 0
    if group:
        yield group


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
                        path: str | os.PathLike, on_part: Callable[[dict[str, np.ndarray]], None] | None = None
                        ) -> tuple[Path, int, int]:
    """Write the catalogue of several parts, in order, one part at a time: the memory used does not
    depend on the number of stars, and the file is the one :func:`write_catalog` would write for
    all of them at once (byte for byte).

    ``parts()`` returns a fresh iterable each call (it is read twice). A part holds ``ids``,
    ``snr`` and ``true_labels`` (when known) beside a :class:`LabelResult`'s arrays; an empty part
    (no star survived preparation) holds only ``ids``. ``on_part(part)`` is called once for every
    part, empty ones included, as it is written (to gather more from the parts without reading
    them again), and before the DataError when every part is empty. Returns the path, the number of
    stars and how many of them converged.
    """
    path = check_catalog_path(path)
    n, width, common = _layout(parts)
    if n == 0:
        for part in parts() if on_part is not None else ():
            on_part(part)
        raise DataError("no star of the data could be prepared and inferred")
    converged = [0]

    def filled() -> Iterable[dict[str, np.ndarray]]:
        for part in parts():
            if on_part is not None:
                on_part(part)
            if part["ids"].size:
                converged[0] += int(np.sum(part["converged"]))
                yield part

    def tables() -> Iterator[Table]:
        first = None
        for group in _joined(filled(), ROWS_PER_WRITE):
            table = _parts_table(group, label_units, width, common)
            layout = [(name, table[name].dtype) for name in table.colnames]
            if first is None:
                first = layout
            elif layout != first:
                odd = sorted(str(name) for name, _ in set(first) ^ set(layout))
                raise DataError(f"catalogue {path}: its parts do not have the same columns (they differ in "
                                f"{', '.join(odd[:4])}): parts of runs with other settings cannot make one catalogue")
            yield table

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
    with atomic_path(path) as tmp:
        if fmt == "fits":
            fits.HDUList([fits.PrimaryHDU(), table_hdu(table)]).writeto(tmp, overwrite=True)
        else:
            table.write(tmp, format=fmt, overwrite=True)
    log.info("catalogue written: %s (%d stars)", path, len(table))
    return path
