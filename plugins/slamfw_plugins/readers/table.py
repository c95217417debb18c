"""Reader ``table``: any survey, as one FITS, ECSV or npz file (``docs/table-format.md``).

Layout: ``wave`` (P,) or a per-row (N, P) column (a grid per star when the rows differ),
``flux`` and ``ivar`` (N, P), optional ``mask`` (N, P; True/nonzero = good), optional ``id``,
optional ``snr``/``rv``/``ra``/``dec`` (N,), and label columns (N,). The labels are ``labels``
when given, else those the file's ``LABELS`` metadata names (``slamfw convert`` writes it), else
every other 1-D numeric column. The wavelength unit is the ``wave`` column's (any astropy length
unit: Angstrom, nm, um), or the npz file's ``wave_unit``; only a file that states none falls back
to the ``wave_unit`` parameter. The medium (air or vacuum) is the file's ``MEDIUM`` metadata, else
the ``medium`` parameter.
"""
from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any, Iterator, Literal

import numpy as np
from pydantic import Field

from slamfw import (
    KNOWN_META, META_UNITS, ChunkSource, DataError, InputPath, Params, Reader, SpectralSet, chunks, hookimpl, name_some,
    repeated,
)

from ._select import Where, where_mask

SLAMFW_PLUGIN_API = (1, 11)

log = logging.getLogger(__name__)

_RESERVED = {"wave", "flux", "ivar", "mask", "id", "ids"}


class _FileRows:
    """Rows of a C-ordered array stored at ``offset`` in the file ``path`` (an uncompressed npz
    member), read from the file when indexed: ``a[i:j]`` and ``a[rows]`` (increasing row numbers)
    return in-memory arrays. Unlike a memory map, what was read is not kept mapped, so the
    process's resident memory holds the pieces in use, not every page of the file read so far."""

    def __init__(self, path: Path, offset: int, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.path, self.offset, self.shape, self.dtype = path, offset, tuple(shape), np.dtype(dtype)
        self.ndim = len(self.shape)
        self.row_items = int(np.prod(self.shape[1:], dtype=np.int64))

    def _read(self, start: int, stop: int) -> np.ndarray:
        """Rows [start, stop) (within the array: the callers check)."""
        n = max(0, stop - start)
        with open(self.path, "rb") as fh:
            fh.seek(self.offset + start * self.row_items * self.dtype.itemsize)
            out = np.fromfile(fh, dtype=self.dtype, count=n * self.row_items)
        if out.size != n * self.row_items:
            raise DataError(f"table: {str(self.path)!r} is shorter than its arrays' headers say (cut short?)")
        return out.reshape((n, *self.shape[1:]))

    def __getitem__(self, index: int | slice | np.ndarray) -> np.ndarray:
        """Row ``index``, rows ``index`` (a slice of step 1), or the rows numbered ``index``
        (increasing ints), as an in-memory array."""
        if isinstance(index, slice):
            start, stop, step = index.indices(self.shape[0])
            if step != 1:
                raise IndexError("rows of a table file: a slice with step 1, or row numbers")
            return self._read(start, stop)
        rows = np.asarray(index)
        if rows.dtype.kind not in "iu" or rows.ndim > 1:
            raise IndexError(f"rows of a table file: an int, a slice or int row numbers, not {rows.dtype} "
                             f"{rows.shape}")
        if rows.size and (rows.min() < 0 or rows.max() >= self.shape[0] or np.any(np.diff(rows.reshape(-1)) <= 0)):
            raise IndexError(f"rows of a table file: row numbers must increase within [0, {self.shape[0]})")
        if rows.ndim == 0:
            return self._read(int(rows), int(rows) + 1)[0]
        if rows.size == 0:
            return np.empty((0, *self.shape[1:]), self.dtype)
        first, last = int(rows[0]), int(rows[-1])
        if last - first + 1 <= 2 * rows.size:           # dense: the span in one read, then the rows
            return self._read(first, last + 1)[rows - first]
        breaks = np.flatnonzero(np.diff(rows) != 1) + 1  # sparse: each run of consecutive rows in one read
        return np.concatenate([self._read(int(r[0]), int(r[-1]) + 1) for r in np.split(rows, breaks)])


class _FitsRows(_FileRows):
    """Rows of an (N, P) column of a FITS binary table, read from the file when indexed: the
    table's rows of ``row_bytes`` bytes start at ``offset`` (its data's place in the file), the
    column at ``field_offset`` in each row, in the file's big-endian ``dtype``; a logical column
    (``L``: the bytes 'T', 'F', or 0 for null) gives True for 'T', as astropy reads it. The
    columns of one table share ``span``, the last rows' bytes read, so that a chunk's flux, ivar,
    mask and wave come from one read of its rows."""

    def __init__(self, path: Path, offset: int, row_bytes: int, field_offset: int, shape: tuple[int, ...],
                 dtype: np.dtype, logical: bool = False, span: dict | None = None) -> None:
        super().__init__(path, offset, shape, dtype)
        self.row_bytes, self.field_offset, self.logical = int(row_bytes), int(field_offset), bool(logical)
        self.span = {} if span is None else span

    def _read(self, start: int, stop: int) -> np.ndarray:
        n = max(0, stop - start)
        if self.span.get("rows") != (start, stop):
            with open(self.path, "rb") as fh:
                fh.seek(self.offset + start * self.row_bytes)
                raw = fh.read(n * self.row_bytes)
            if len(raw) != n * self.row_bytes:
                raise DataError(f"table: {str(self.path)!r} is shorter than its table's header says (cut short?)")
            self.span.update(rows=(start, stop), raw=raw)
        field = np.ndarray((n, *self.shape[1:]), dtype=self.dtype, buffer=self.span["raw"], offset=self.field_offset,
                           strides=(self.row_bytes, self.dtype.itemsize))
        return field == ord("T") if self.logical else field.astype(self.dtype.newbyteorder("="))


#: FITS binary-table column formats read a piece at a time: numbers, and logical.
_FITS_NUMBERS = {"B", "I", "J", "K", "E", "D", "L"}


def _fits_columns(path: Path, names: tuple[str, ...]) -> dict[str, _FitsRows] | None:
    """The columns ``names`` of the table that astropy's ``Table.read`` reads from ``path`` (the
    file's first table HDU, which must be a binary table), as :class:`_FitsRows` by absolute
    path: when ``path`` is an uncompressed FITS file (by its first bytes) whose rows hold just
    its columns, and each column of ``names`` that it has holds one row of numbers or logicals
    per star (no scaling, no null value, no variable-length array); else None, and the table is
    read in the calling process (which reports a damaged file). From the headers: no data is
    read."""
    if path.suffix.lower() not in (".fits", ".fit") or not path.is_file():
        return None
    from astropy.io import fits
    try:
        with open(path, "rb") as fh:
            if fh.read(9) != b"SIMPLE  =":           # gzip or bzip2 under a .fits name: astropy decompresses
                return None
        with fits.open(path, memmap=True) as hdul:
            tables = [h for h in hdul if isinstance(h, (fits.BinTableHDU, fits.TableHDU, fits.GroupsHDU))]
            if not tables or not isinstance(tables[0], fits.BinTableHDU):
                return None
            hdu = tables[0]
            fields = hdu.columns.dtype.fields      # the columns' layout, from the header (hdu.data would convert)
            row_bytes = int(hdu.header["NAXIS1"])
            if hdu.columns.dtype.itemsize != row_bytes:
                return None                        # rows padded beyond their columns
            where, span, out = path.absolute(), {}, {}
            for c in hdu.columns:
                if c.name not in names:
                    continue
                base, sub = fields[c.name][0].base, fields[c.name][0].shape
                if (c.format.format not in _FITS_NUMBERS or c.bscale not in (None, 1) or c.bzero not in (None, 0)
                        or c.null is not None or len(sub) != 1):
                    return None
                out[c.name] = _FitsRows(where, hdu.fileinfo()["datLoc"], row_bytes, fields[c.name][1],
                                        (int(hdu.header["NAXIS2"]), sub[0]), base.newbyteorder(">"),
                                        logical=c.format.format == "L", span=span)
            return out
    except Exception:  # noqa: BLE001 - anything astropy refuses: the calling process reads and reports it
        return None


def _stored_large(info: Any) -> bool:
    """Whether an npz member (its ``zipfile.ZipInfo``) is one :func:`_npz_members` may read a
    piece at a time: stored uncompressed (``np.savez``) and 1 MiB or more."""
    import zipfile
    return info.compress_type == zipfile.ZIP_STORED and info.file_size >= 1 << 20


def _npz_members(path: Path, lazy: bool) -> dict[str, np.ndarray]:
    """The arrays of an npz file; with ``lazy``, each large member stored uncompressed
    (``np.savez``) as a :class:`_FileRows`, read a piece at a time when indexed (a compressed
    member, ``np.savez_compressed``, is read whole)."""
    with np.load(path, allow_pickle=False) as npz:
        names = list(npz.files)
        if not lazy:
            return {k: npz[k] for k in names}
        cols = {}
        with open(path, "rb") as fh:
            for k in names:
                try:
                    info = npz.zip.getinfo(f"{k}.npy")   # the archive np.load has already opened
                except KeyError:                        # a member numpy names otherwise: as np.load reads it
                    cols[k] = npz[k]
                    continue
                if not _stored_large(info):
                    cols[k] = npz[k]                    # compressed or small: read
                    continue
                fh.seek(info.header_offset)             # local header: 30 bytes, then its name and extra field
                local = fh.read(30)
                fh.seek(info.header_offset + 30 + int.from_bytes(local[26:28], "little")
                        + int.from_bytes(local[28:30], "little"))
                version = np.lib.format.read_magic(fh)
                header = {(1, 0): np.lib.format.read_array_header_1_0,
                          (2, 0): np.lib.format.read_array_header_2_0}.get(version)
                if header is None:
                    cols[k] = npz[k]                    # a later .npy version: read
                    continue
                shape, fortran, dtype = header(fh)
                if dtype.hasobject:
                    cols[k] = npz[k]                    # refused by allow_pickle=False, with numpy's message
                    continue
                if fortran or len(shape) < 2:
                    cols[k] = npz[k]                    # a column (N,), or not row-major: read
                    continue
                cols[k] = _FileRows(path, fh.tell(), shape, dtype)
        return cols


def _npz_members_stored(path: Path) -> bool:
    """Whether ``path`` is an npz file whose flux, ivar and mask members (those it has) are ones
    :func:`_npz_members` reads a piece at a time (:func:`_stored_large`; it checks the rest, from
    their headers); from the archive's directory alone."""
    import zipfile
    if path.suffix.lower() != ".npz" or not path.is_file():
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            infos = {i.filename: i for i in archive.infolist()}
    except (OSError, zipfile.BadZipFile):
        return False
    members = [infos.get(f"{k}.npy") for k in ("flux", "ivar", *(["mask"] if "mask.npy" in infos else []))]
    return all(i is not None and _stored_large(i) for i in members)


def _word(value: Any) -> str:
    """An npz file's text (a 0-d array, or an element of one; str or bytes) as str: bytes were
    read as their repr ("b'air'")."""
    value = value.item() if isinstance(value, np.ndarray) and value.ndim == 0 else value
    return value.decode("utf-8", errors="replace") if isinstance(value, (bytes, np.bytes_)) else str(value)


def _load_columns(path: Path, lazy: bool = False) -> tuple[dict[str, np.ndarray], dict, dict]:
    """(columns, units, file metadata) of a table file. ``lazy``: the large (N, P) arrays of an
    npz file (stored uncompressed) as :class:`_FileRows`, or the columns of a FITS file (not
    gzipped) memory-mapped: read when indexed."""
    suffix = "".join(path.suffixes[-2:]).lower() if path.suffix.lower() == ".gz" else path.suffix.lower()
    if suffix == ".npz":
        cols = _npz_members(path, lazy)
        meta = {key.upper(): cols.pop(key) for key in ("wave_unit", "medium", "label_names", "label_units")
                if key in cols}
        units = {"wave": _word(meta.pop("WAVE_UNIT"))} if "WAVE_UNIT" in meta else {}
        if "LABEL_NAMES" in meta and "LABEL_UNITS" in meta:
            units.update({_word(n): _word(un) for n, un in zip(np.atleast_1d(meta["LABEL_NAMES"]),
                                                               np.atleast_1d(meta.pop("LABEL_UNITS"))) if _word(un)})
        if "MEDIUM" in meta:
            meta["MEDIUM"] = _word(meta["MEDIUM"])
        if "LABEL_NAMES" in meta:
            meta["LABELS"] = ",".join(_word(x) for x in np.atleast_1d(meta.pop("LABEL_NAMES")))
        return cols, units, meta
    from astropy.table import Table
    fmt = {".fits": "fits", ".fits.gz": "fits", ".fit": "fits", ".ecsv": "ascii.ecsv"}.get(suffix)
    if fmt is None:
        raise DataError(f"table: {str(path)!r}: use a .fits, .ecsv or .npz file")
    kwargs = {}
    if fmt == "fits":       # a NaN stays a NaN (a bad flux is refused, below); a masked cell is an empty one
        kwargs["mask_invalid"] = False
    if fmt == "ascii.ecsv":   # multidimensional columns are long fields
        import csv
        csv.field_size_limit(max(csv.field_size_limit(), 2 ** 31 - 1))
    elif lazy and suffix != ".fits.gz":
        kwargs["memmap"] = True
    with warnings.catch_warnings():     # a label's unit FITS does not know (dex, as slamfw writes it): read as text
        warnings.filterwarnings("ignore", message=".*did not parse as fits unit.*")
        t = Table.read(path, format=fmt, **kwargs)
    cols = {name: t[name].data if kwargs.get("memmap") else np.asarray(t[name]) for name in t.colnames}
    _fill_empty_cells(t, cols, str(path))
    units = {name: str(t[name].unit) for name in t.colnames if t[name].unit is not None}
    if "wave" not in cols and "wave" in t.meta:
        cols["wave"] = np.asarray(t.meta["wave"], dtype=float)
    return cols, units, {str(k).upper(): v for k, v in t.meta.items()}


def _fill_empty_cells(t: Any, cols: dict[str, np.ndarray], path: str) -> None:
    """Give the empty cells of table ``t``'s columns (an ECSV's empty fields, a FITS integer
    column's TNULL value: astropy's masked values) the meaning of a missing value in ``cols``,
    instead of the value stored under the mask (0, or the TNULL number), which would be read as
    real: a number is NaN (an unknown label or rv; a star without a requested label is left out),
    a flux or ivar pixel is a bad pixel (``mask`` False there, ivar 0), a ``mask`` cell False; a
    missing wavelength or star id is a DataError naming the rows."""
    empty = {name: np.asarray(t[name].mask) for name in t.colnames
             if getattr(t[name], "mask", None) is not None and np.any(t[name].mask)}
    for name, where in empty.items():
        rows = np.flatnonzero(where.reshape(where.shape[0], -1).any(axis=1) if where.ndim else where)
        if name in ("wave", "id", "ids"):
            raise DataError(f"table: {path!r}: column {name!r} has empty cells, in row(s) {name_some(rows, 5)} "
                            f"(counted from 0)")
        values = np.array(cols[name])
        if name == "mask":
            values[where] = False
        elif values.dtype.kind in "biuf":
            values = values.astype(float)
            values[where] = 0.0 if name == "ivar" else np.nan
        cols[name] = values
    # a flux or ivar cell without a value: a bad pixel (an ivar 0 is one already); arrays of other
    # shapes are left as they are, for the reader's check of shapes to name
    shape = np.shape(cols.get("flux"))
    bad = [empty[k] for k in ("flux", "ivar") if k in empty]
    if bad and all(b.shape == shape for b in bad) and np.shape(cols.get("mask", bad[0])) == shape:
        cols["mask"] = np.asarray(cols.get("mask", True), bool) & ~np.logical_or.reduce(bad)


#: Spellings of Angstrom in survey files that astropy reads as something else, or not at all.
_ANGSTROM_SPELLINGS = {"A": "Angstrom", "Angstroms": "Angstrom", "angstroms": "Angstrom", "ANGSTROMS": "Angstrom",
                       "ANGSTROM": "Angstrom", "Ang": "Angstrom"}


def _angstrom(wave: np.ndarray, unit: str, path: str) -> np.ndarray:
    """``wave`` in ``unit`` (an astropy length unit) as Angstrom; a DataError for other units."""
    import astropy.units as u
    # FITS files write Angstrom as "A" (astropy: ampere) or "Angstroms" (SDSS): both mean Angstrom
    unit = _ANGSTROM_SPELLINGS.get(str(unit).strip(), unit)
    try:
        return (wave * u.Unit(unit)).to_value(u.AA, equivalencies=u.spectral())
    except (ValueError, TypeError, u.UnitsError) as err:
        raise DataError(f"table: {path!r}: the wavelength unit {unit!r} is not a length ({err})") from None


class TableChunk(ChunkSource):
    """Rows of a table file that any process reads (:meth:`read`): the file's path (as the user
    gave it, for messages), where its (N, P) arrays lie in it (:class:`_FileRows` or
    :class:`_FitsRows`, by absolute path), the row numbers (n,), and those rows' ids, labels and
    metadata (a few hundred bytes per star, pickled with the task)."""

    def __init__(self, path: str, cols: dict[str, _FileRows], layout: dict[str, Any], rows: np.ndarray,
                 stamp: tuple[int, int]) -> None:
        self.path, self.cols, self.rows, self.stamp = path, cols, np.asarray(rows), stamp
        self.layout = {**layout, "ids": layout["ids"][rows], "keep": None,
                       "labels": None if layout["labels"] is None else layout["labels"][rows],
                       "meta": {k: v[rows] for k, v in layout["meta"].items()}}
        self.n_stars = int(self.rows.size)

    def read(self) -> SpectralSet:
        """These rows, checked, as :meth:`TableReader.iter_chunks` gives them (a DataError when
        the file changed since it was described: its size or time, ``stamp``)."""
        where = next(iter(self.cols.values())).path
        if _stamp(where) != self.stamp:
            raise DataError(f"table: {self.path!r} changed while it was being read (its size or time differ from "
                            f"when the run began): run the command again")
        try:
            return _rows(self.path, self.cols, self.layout, self.rows, np.arange(self.n_stars))
        finally:
            for col in self.cols.values():      # a FITS table's rows, read once for all columns: let go
                getattr(col, "span", {}).clear()


def _stamp(path: Path) -> tuple[int, int]:
    """A file's size and modification time (ns), or (-1, -1) when it is gone."""
    try:
        st = path.stat()
    except OSError:
        return (-1, -1)
    return (st.st_size, st.st_mtime_ns)


class TableReader(Reader):
    """Spectra and labels from one FITS/ECSV/npz file."""

    class Params(Params):
        path: InputPath = Field(..., description="the .fits, .ecsv or .npz file")
        labels: list[str] | None = Field(None, description="label columns (default: the file's LABELS, else all "
                                                           "other 1-D numeric columns)")
        wave_unit: str = Field("Angstrom", description="the wavelength unit of a file that states none")
        medium: Literal["", "air", "vacuum"] = Field("", description="wavelength medium of a file that states none")
        where: Where = Field(default_factory=dict, description="label ranges to keep")

    def read(self) -> SpectralSet:
        cols, layout = self._open(lazy=False)
        return _rows(self.path, cols, layout, layout["keep"])

    def iter_chunks(self, chunk_size: int) -> Iterator[SpectralSet]:
        """The stars of :meth:`read`, in order, ``chunk_size`` at most per piece, read a piece at
        a time: the (N, P) arrays of an npz file stored uncompressed (``np.savez``, as the
        benchmarks write them) are read from the file a piece at a time, and a FITS file that is
        not gzipped is memory-mapped (its pages count in resident memory as they are read), so
        memory holds a piece, not the file. Read whole first: a compressed npz member
        (``np.savez_compressed``, as ``slamfw convert`` writes npz), ``.fits.gz``, ECSV, and a
        FITS column astropy must convert (logical, such as ``mask``, or scaled). The label and
        metadata columns (N,) are read whole (``where`` selects on them). Each piece's spectra are
        checked as it is read: a bad star is reported after the pieces before it."""
        cols, layout = self._open(lazy=True)
        keep = layout["keep"]
        for s, e in chunks(keep.size, chunk_size):
            yield _rows(self.path, cols, layout, keep[s:e])

    def chunk_sources(self, chunk_size: int) -> Iterator[TableChunk] | None:
        """The pieces of :meth:`iter_chunks`, described (:class:`TableChunk`) for the workers to
        read, when every (N, P) array the pieces need is read from the file a piece at a time:
        an npz file whose flux, ivar and mask members are stored uncompressed, 1 MiB or more
        each, row-major; or an uncompressed FITS file whose first table holds them as one row of
        numbers or logicals per star, unscaled (as ``slamfw convert`` writes .fits; decided by
        :func:`_fits_columns`); else None (the pieces are read in this process). The file is
        referred to by its absolute path: a worker's working folder may be another; a piece read
        after the file changed (its size or time) is refused."""
        path = Path(self.path)
        fits_rows = None
        if not _npz_members_stored(path):              # decided from the archive's directory, reading no array
            fits_rows = _fits_columns(path, ("flux", "ivar", "mask", "wave"))     # or from a FITS table's header
            if fits_rows is None:
                return None
        cols, layout = self._open(lazy=True)
        big = ["flux", "ivar", *(["mask"] if "mask" in cols else []), *(["wave"] if layout["wave"] is None else [])]
        if fits_rows is not None:
            if not all(k in fits_rows and fits_rows[k].shape == np.shape(cols[k]) for k in big):
                return None
            files = {k: fits_rows[k] for k in big}
        else:
            if not all(isinstance(cols[k], _FileRows) for k in big):
                return None
            where = path.absolute()
            files = {k: _FileRows(where, cols[k].offset, cols[k].shape, cols[k].dtype) for k in big}
        keep, stamp = layout["keep"], _stamp(path.absolute())
        return (TableChunk(self.path, files, layout, keep[s:e], stamp) for s, e in chunks(keep.size, chunk_size))

    def _open(self, lazy: bool) -> tuple[dict[str, np.ndarray], dict]:
        """The file's columns (the large ones read when indexed, with ``lazy``), checked for
        shapes and unique ids, and what every piece shares: ``n``, ``wave`` (Angstrom, (P,), or
        None for a grid per star) and ``wave_unit`` (of the file's column), ``ids`` (n,), label
        ``names``, their ``units`` and ``labels`` (n, L) or None, ``meta`` {name: (n,)},
        ``medium``, ``keep`` (the rows ``where`` keeps, in order) and ``lazy``."""
        path = Path(self.path)
        if path.is_dir():
            raise DataError(f"table: {self.path!r} is a folder; the table reader reads one file (.npz, .fits, .ecsv, "
                            "...)")
        if not path.is_file():
            raise DataError(f"table: file {self.path!r} does not exist")
        try:
            cols, units, file_meta = _load_columns(path, lazy)
        except DataError:
            raise
        except Exception as err:
            text = str(err)              # astropy's text of a bad ECSV row holds the whole row (115 kB seen)
            text = text if len(text) <= 500 else f"{text[:500]} ... ({len(text)} characters)"
            raise DataError(f"table: cannot read {self.path!r}: {type(err).__name__}: {text}") from None
        for key in ("wave", "flux", "ivar"):
            if key not in cols:
                raise DataError(f"table: {self.path!r} has no {key!r} array/column (has {sorted(cols)})")
        for key in ("wave", "flux", "ivar", "mask"):      # a complex flux would lose its imaginary part silently
            if key in cols:
                _check_real(cols[key].dtype, key, self.path)
        flux = cols["flux"]
        if flux.ndim not in (1, 2):
            raise DataError(f"table: {self.path!r}: flux has shape {flux.shape}; it must be (N, P)")
        n = 1 if flux.ndim == 1 else flux.shape[0]
        shape = (n, flux.shape[-1])
        if 0 in shape:
            raise DataError(f"table: {self.path!r} holds no {'spectra' if n == 0 else 'pixels'} (flux has shape "
                            f"{flux.shape})")
        for key in ("ivar", "mask"):                   # checked before any row is read
            if key in cols and (cols[key].ndim not in (1, 2) or (1,) * (2 - cols[key].ndim) + cols[key].shape != shape):
                raise DataError(f"table: {self.path!r}: {key} has shape {cols[key].shape}, flux {flux.shape}; they "
                                "must be the same")
        wave_unit = units.get("wave", self.wave_unit)
        wave = cols["wave"]
        if wave.ndim == 2 and wave.shape != shape:
            raise DataError(f"table: {self.path!r}: wave has shape {wave.shape} for flux {flux.shape}; it must be "
                            f"({shape[1]},) or one row per spectrum, {shape}")
        if wave.ndim == 2 and _rows_equal(wave):       # (n, P): checked above
            wave = wave[0]                         # one grid written per row
        wave = _angstrom(np.asarray(wave, dtype=float), wave_unit, self.path) if wave.ndim != 2 else None
        medium = str(file_meta.get("MEDIUM", "") or self.medium).strip().lower()
        if medium not in ("", "air", "vacuum"):
            raise DataError(f"table: {self.path!r}: MEDIUM {medium!r} is neither 'air' nor 'vacuum'")
        ids_key = "id" if "id" in cols else ("ids" if "ids" in cols else None)
        ids = _text(cols[ids_key], ids_key, self.path) if ids_key else np.array([f"{path.stem}-{i}" for i in range(n)])
        if ids.shape != (n,):
            raise DataError(f"table: {self.path!r}: {ids.size} star ids in {ids_key!r} for {n} spectra")
        blank = np.char.str_len(np.char.strip(ids)) == 0    # FITS writes an empty cell of text as ""
        if blank.any():
            raise DataError(f"table: {self.path!r}: column {ids_key!r} has empty cells, in row(s) "
                            f"{name_some(np.flatnonzero(blank), 5)} (counted from 0)")
        # a column of another length is misaligned; an rv of another shape would leave the spectra
        # unshifted (silently wrong labels); an (N, k) S/N or position (one per band) is left out
        wrong, left_out = {}, {}
        for k in (k for k in KNOWN_META if k in cols):
            if n == 1 and np.shape(cols[k]) == ():       # one spectrum's scalar: its one value
                cols[k] = np.reshape(cols[k], (1,))
            shape = np.shape(cols[k])
            if shape != (n,):
                (wrong if k == "rv" or shape[:1] != (n,) else left_out)[k] = shape
        if wrong:
            shapes = ", ".join(f"{k!r} of shape {v}" for k, v in wrong.items())
            raise DataError(f"table: {self.path!r}: column(s) {shapes}; each must hold one value per spectrum, ({n},)")
        for k, shape in left_out.items():
            log.warning("table: %r: column %r has shape %s, not one value per spectrum (%d,): not used as the "
                        "spectra's %s", self.path, k, shape, n, k)
        one_d = {k: np.asarray(v) for k, v in cols.items()
                 if k not in _RESERVED and not isinstance(v, _FileRows) and np.ndim(v) == 1 and np.shape(v)[0] == n}
        meta = {k: _in_unit(_real_column(one_d[k], k, self.path), k, units.get(k), self.path)
                for k in KNOWN_META if k in one_d}
        if "rv" in meta and not np.all(np.isfinite(meta["rv"])):
            unknown = ~np.isfinite(meta["rv"])
            log.warning("table: %r: %d spectra have no finite rv (%s), so no shift to the rest frame: with "
                        "preprocess.rv_correct on (the default), a training set leaves them out, and a catalogue "
                        "has them fitted unshifted, with flag_rv", self.path,
                        int(unknown.sum()), name_some(ids[unknown], 5))
        declared = self.labels
        if declared is None and "LABELS" in file_meta:
            declared = [x for x in str(file_meta["LABELS"]).split(",") if x]
        if declared is not None:
            missing = [k for k in declared if k not in one_d]
            if missing:
                raise DataError(f"table: {self.path!r} has no label column(s) {missing}")
            names = list(declared)
        else:
            names = [k for k, v in one_d.items() if k not in meta and v.dtype.kind in "biuf"]
        labels = np.column_stack([_real_column(one_d[k], k, self.path) for k in names]) if names else None
        if declared is None and labels is not None and np.isinf(labels).any():
            i, j = np.argwhere(np.isinf(labels))[0]
            raise DataError(f"table: {self.path!r}: column {names[j]!r} is infinite for star {str(ids[i])!r}; the "
                            f"file names no labels, so every numeric column ({', '.join(names)}) was taken for one: "
                            f"name them with the reader's labels parameter (--reader-param 'labels=[\"Teff\", ...]') "
                            f"or the file's LABELS")
        keep = where_mask(labels, names, self.where, "table") if (self.where and labels is not None) else np.ones(n, bool)
        dup = repeated(ids[keep])                       # checked here: iter_chunks checks no more than a piece
        if dup.size:
            raise DataError(f"table: {self.path!r}: duplicate star ids {name_some(dup, 5, quoted=True)}")
        return cols, {"n": n, "wave": wave, "wave_unit": wave_unit, "ids": ids, "names": names, "labels": labels,
                      "units": [units.get(k, "") for k in names], "meta": meta, "medium": medium,
                      "keep": np.flatnonzero(keep), "lazy": lazy}

def _in_unit(values: np.ndarray, name: str, unit: str | None, path: str) -> np.ndarray:
    """The metadata column ``name`` (N,) in the unit the pipeline uses (``META_UNITS``; ``snr``: as it is),
    converted from the column's own ``unit`` when it has one (an rv in m/s was read as km/s,
    1000 times too large); a DataError naming the column for a unit of another kind. Without a
    unit, the values are taken to be in that unit already (an rv whose values are all below
    0.1 km/s, not all 0, is warned about: a redshift z written as rv)."""
    import astropy.units as u
    if name not in META_UNITS:                     # snr: a number, whatever its column says
        return values
    if unit is None:
        speeds = np.abs(values[np.isfinite(values)]) if name == "rv" else np.zeros(0)
        if speeds.size and 0 < speeds.max() < 0.1:
            log.warning("table: %r: every rv is below 0.1 km/s in size (the largest %.3g): if the column holds "
                        "redshifts z, write rv = c z in km/s, or give the column a unit", path, speeds.max())
        return values
    try:
        try:
            given = u.Unit(unit)
        except ValueError:                         # FITS headers in capitals: KM/S, DEG
            given = u.Unit(unit.lower())
        return (values * given).to_value(u.Unit(META_UNITS[name]))
    except (ValueError, TypeError, u.UnitsError) as err:
        raise DataError(f"table: {path!r}: column {name!r} has the unit {unit!r}, which is not convertible to "
                        f"{META_UNITS[name]} ({err})"
                        f"{'; for a redshift z, write rv = c z in km/s' if name == 'rv' else ''}") from None


def _text(values: np.ndarray, name: str, path: str) -> np.ndarray:
    """The column ``name`` as str: FITS text (bytes) decoded as UTF-8, as slamfw writes star ids
    beyond ASCII ('α Cen A'); a DataError naming the column for bytes that are not UTF-8."""
    values = np.asarray(values)
    if values.dtype.kind != "S":
        return values.astype(str)
    try:
        return np.char.decode(values, "utf-8")
    except UnicodeDecodeError as err:
        raise DataError(f"table: {path!r}: column {name!r} holds text that is not UTF-8 ({err})") from None


def _check_real(dtype: Any, what: str, path: str) -> None:
    """A :class:`DataError` naming ``what`` when its ``dtype`` holds no real numbers (a complex
    array lost its imaginary part with only numpy's warning; text failed inside numpy)."""
    if np.dtype(dtype).kind not in "biuf":
        raise DataError(f"table: {path!r}: {what} holds {np.dtype(dtype)} values, not real numbers")


def _real_column(values: np.ndarray, name: str, path: str) -> np.ndarray:
    """The (N,) column ``name`` as floats (:func:`_check_real`)."""
    _check_real(values.dtype, f"column {name!r}", path)
    return values.astype(float)


def _rows(path: str, cols: dict[str, np.ndarray | _FileRows], layout: dict[str, Any], rows: np.ndarray,
          at: np.ndarray | None = None) -> SpectralSet:
    """The stars ``rows`` (increasing row numbers) of the file ``path``, checked, as a SpectralSet;
    ``at``: where they are in the layout's per-star arrays (``ids``, ``labels``, ``meta``;
    default ``rows``)."""
    at = rows if at is None else at
    ids = layout["ids"][at]

    def take(a: np.ndarray | _FileRows, dtype: type) -> np.ndarray:
        """Rows ``rows`` of the (N, P) column ``a`` (or of a (P,) one, for one star) as an
        in-memory, writable array of ``dtype``."""
        if isinstance(a, np.ndarray) and a.ndim == 1:
            a = a[None, :]
        if rows.size and rows[-1] - rows[0] + 1 == rows.size:     # a run of rows: a slice, read in one go
            part = a[rows[0]:rows[-1] + 1]
        else:
            part = a[rows]
        if isinstance(a, _FileRows):                 # read from the file just now
            return part.astype(dtype, copy=False)
        # a memory-mapped FITS column: copied, never a view of the file
        return np.array(part, dtype=dtype) if layout["lazy"] else np.asarray(part, dtype=dtype)
    flux = take(cols["flux"], float)
    ivar = take(cols["ivar"], float)
    mask = take(cols["mask"], bool) if "mask" in cols else np.ones_like(flux, bool)
    wave = layout["wave"]
    if wave is None:
        wave = _angstrom(take(cols["wave"], float), layout["wave_unit"], path)
    # (flux, ivar and mask have one shape: _open checked the whole file's)
    # non-finite flux is acceptable only where the pixel is already bad
    bad = ~np.isfinite(flux) & mask & (ivar > 0)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise DataError(f"table: star {str(ids[i])!r} in {path!r} has NaN/inf flux at {int(bad[i].sum())} "
                        f"good pixel(s), first at {np.broadcast_to(wave, flux.shape)[i, j]:.2f} A; set ivar 0 or mask False there")
    neg = (ivar < 0) | ~np.isfinite(ivar)
    if neg.any():
        i, j = np.argwhere(neg)[0]
        raise DataError(f"table: star {str(ids[i])!r} in {path!r} has ivar {float(ivar[i, j])!r} < 0 or not finite "
                        f"at {np.broadcast_to(wave, flux.shape)[i, j]:.2f} A ({int(neg[i].sum())} pixel(s)); ivar must be >= 0")
    finite = np.isfinite(flux)
    if not finite.all():
        flux, ivar, mask = np.where(finite, flux, 0.0), np.where(finite, ivar, 0.0), mask & finite
    labels = layout["labels"]
    return SpectralSet(wave=wave, flux=flux, ivar=ivar, ids=ids, mask=mask,
                       labels=None if labels is None else labels[at],
                       label_names=layout["names"] if labels is not None else [],
                       label_units=layout["units"] if labels is not None else [],
                       meta={k: v[at] for k, v in layout["meta"].items()}, source=path,
                       medium=layout["medium"])


def _rows_equal(wave: np.ndarray, block: int = 4096) -> bool:
    """Whether every row of ``wave`` (N, P) equals the first, compared ``block`` rows at a time
    (a column read when indexed is not read whole)."""
    first = np.asarray(wave[0])
    return all(np.array_equal(np.asarray(wave[s:s + block]), np.broadcast_to(first, (min(block, wave.shape[0] - s),
                                                                                      first.size)))
               for s in range(0, wave.shape[0], block))


@hookimpl
def slamfw_register_readers(register):
    register("table", TableReader)
