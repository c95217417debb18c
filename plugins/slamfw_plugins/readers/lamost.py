"""Reader ``lamost``: LAMOST low-resolution (LRS) spectra, DR5-DR7 images and DR8+ tables.

:class:`LamostReader` reads many files (a directory, a glob, a list of files; see
:class:`~slamfw.FileReader`), each star on its own vacuum log-linear grid, with labels from a
LASP catalogue joined by OBSID (``labels``). :func:`read_lamost_file` reads one LAMOST LRS
spectrum file into a one-star :class:`SpectralSet`; :func:`read_lamost_labels` reads a LASP label
table (CSV) keyed by the same OBSIDs.

File formats (both plain ``.fits`` and gzipped ``.fits.gz``; gzip is recognised by its magic bytes):

* **DR5-DR7**: the primary HDU is a float32 image of shape ``(5, npix)`` with rows
  FLUX, IVAR, WAVELENGTH, ANDMASK, ORMASK (``EXTEN0 = 'Flux, Inverse, Wavelength, Andmask, Ormask'``).
* **DR8 and later**: the primary HDU is header-only; a binary-table extension (``EXTNAME='COADD'``)
  holds **one row** of vector columns FLUX, IVAR, WAVELENGTH, ANDMASK, ORMASK (and NORMALIZATION,
  the pipeline's continuum-normalised flux, which is not read).

Oddities of real files that this parser handles (see ``shared/data/lamost_samples/SOURCE.md``):

* ``npix`` varies (3748 ... 3909) and so does the first wavelength (``COEFF0`` 3.5682 or 3.5842):
  nothing is hard-coded, every file keeps its own grid.
* The grid is log10-linear although ``CTYPE1 = 'LINEAR'``; ``CRVAL1`` (about 3.57) is log10(Angstrom),
  not Angstrom. Some DR5 headers even carry ``-9999`` in ``CRPIX1``/``CTYPE1``/``WFITTYPE``. The
  wavelengths are therefore taken from the file's own wavelength row/column (see :func:`_wavelengths`).
* Masks are stored as float32, not integers.
* ``Z = -9999`` (and ``Z_ERR = -9999``) marks a failed redshift: ``rv`` is NaN and ``z_flag`` True.
* ``FLUX == 0`` with ``IVAR > 0`` occurs (e.g. the last pixels of DR10 spectra, whose IVAR was copied from
  a neighbour) and is treated as bad; so is ``IVAR == 0`` with all-zero masks (common in DR5-DR7).
* DR10 primary headers keep stale ``NAXIS1``/``NAXIS2`` although ``NAXIS = 0``, which astropy's strict
  ``verify('exception')`` rejects: the file is read without verifying it, and a header card
  that astropy cannot parse is fixed alone, as ``verify('silentfix+ignore')`` fixes it (an
  unquoted string, a stray quote); a value still unparsable is treated as missing.
* LAMOST MRS (medium-resolution, ``med-*.fits.gz``: per-pixel tables ``COADD_B``/``COADD_R``) is a
  different product; it is recognised and refused with a clear :class:`DataError`.

Every failure (not a LAMOST file, an MRS file, truncated/corrupt/empty file, unexpected layout,
inconsistent wavelengths) raises :class:`slamfw.DataError` with the file name and the problem.
"""
from __future__ import annotations

import csv
import gzip
import io
import logging
import os
import warnings
import zlib
from pathlib import Path

import numpy as np
from astropy import constants
from astropy.io import fits
from astropy.io.fits.verify import VerifyError
from astropy.table import Table

from pydantic import Field

from slamfw import DataError, FileReader, SpectralSet, air_to_vacuum, hookimpl, name_some, repeated

SLAMFW_PLUGIN_API = (1, 11)

log = logging.getLogger(__name__)

__all__ = ["C_KMS", "LABEL_UNITS", "SENTINEL", "read_lamost_file", "read_lamost_labels"]

#: Speed of light in km/s (rv = c * z).
C_KMS = float(constants.c.to("km/s").value)
#: LAMOST's "no value" marker in headers and catalogues.
SENTINEL = -9999.0

#: Row order of the DR5-DR7 primary image.
_IMAGE_ROWS = ("FLUX", "IVAR", "WAVELENGTH", "ANDMASK", "ORMASK")
_REQUIRED_COLUMNS = _IMAGE_ROWS
#: How far (in pixels) the header's log-linear solution may sit from the wavelength row. COEFF0 is
#: written with 4 decimals for a 1e-4 step, so rounding alone can account for up to half a pixel.
_MAX_HEADER_OFFSET_PIX = 1.0
#: Largest departure of log10(wavelength row) from a straight line, in pixels (float32 rounding of the
#: row is about 1e-3 pixel).
_MAX_LOGLIN_RESID_PIX = 0.05
_GZIP_MAGIC = b"\x1f\x8b"


# ---------------------------------------------------------------------------------------- helpers
def _is_sentinel(value: float) -> bool:
    return abs(value - SENTINEL) < 0.5


def _header_value(hdr: fits.Header, key: str):
    """The header value of ``key``, or None when absent or unparsable (never raises). A card that
    strict FITS rejects (an unquoted string, a stray quote, a value with trailing text) is fixed
    first, alone, as ``verify("silentfix+ignore")`` would fix it (verifying the whole file parsed
    every card, most of a file's reading time)."""
    try:
        return hdr.get(key)
    except Exception:  # noqa: BLE001 - astropy's VerifyError, or its parser's own
        pass
    try:
        card = hdr.cards[key]
        card.verify("silentfix+ignore")
        return card.value
    except Exception:  # noqa: BLE001 - a card astropy cannot parse even after silentfix
        return None


def _header_float(hdr: fits.Header, key: str) -> float:
    """``key`` as a float; NaN when absent, not a number, non-finite or the -9999 sentinel."""
    value = _header_value(hdr, key)
    if value is None or isinstance(value, bool):
        return np.nan
    try:
        out = float(value)
    except (TypeError, ValueError):
        return np.nan
    return np.nan if not np.isfinite(out) or _is_sentinel(out) else out


def _header_str(hdr: fits.Header, key: str) -> str:
    value = _header_value(hdr, key)
    return "" if value is None else str(value).strip()


def _obsid(hdr: fits.Header, name: str) -> str:
    value = _header_value(hdr, "OBSID")
    if value is None or isinstance(value, bool) or str(value).strip() == "":
        raise DataError(f"{name}: no OBSID keyword in the primary header (LAMOST spectra always have one)")
    return _normalise_id(value)


def _normalise_id(value) -> str:
    """OBSID as a string of digits: 938505172, '938505172', 938505172.0 -> '938505172'."""
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        return text
    if np.isfinite(number) and number == int(number):
        return str(int(number))
    return text


def _load_bytes(path: Path) -> bytes:
    """The FITS bytes of ``path``, gunzipped when the file starts with the gzip magic number.

    Decompressing the whole stream up front catches truncated or corrupt ``.gz`` files: astropy
    would otherwise silently drop the extensions past the break (a truncated DR10 file then looks
    like a header-only file). LRS files are about 100 KB, so this costs nothing.
    """
    raw = path.read_bytes()
    if not raw:
        raise DataError(f"{path}: the file is empty")
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as exc:
            raise DataError(f"{path}: truncated or corrupt gzip data ({exc})") from exc
        if not raw:
            raise DataError(f"{path}: the gzip stream is empty")
    return raw


# ---------------------------------------------------------------------------------- wavelengths
def _header_log_solution(hdr: fits.Header) -> tuple[float, float] | None:
    """(log10 wavelength of pixel 0, log10 step) from the header, or None if it has no usable one.

    ``COEFF0``/``COEFF1`` (0-based pixel index, no reference pixel) are preferred. Failing those,
    ``CRVAL1``/``CD1_1`` (or ``CDELT1``) with ``CRPIX1``, but only when CRVAL1 is obviously a log10
    value (< 5): LAMOST writes ``CTYPE1 = 'LINEAR'`` for what is a log-linear grid, and some headers
    have ``CRPIX1 = -9999``, so these keywords are not trusted blindly.
    """
    c0, c1 = _header_float(hdr, "COEFF0"), _header_float(hdr, "COEFF1")
    if np.isfinite(c0) and np.isfinite(c1) and c1 > 0:
        return c0, c1
    crval = _header_float(hdr, "CRVAL1")
    step = _header_float(hdr, "CD1_1")
    if not np.isfinite(step):
        step = _header_float(hdr, "CDELT1")
    crpix = _header_float(hdr, "CRPIX1")
    if np.isfinite(crpix) and crpix >= 1 and np.isfinite(crval) and 0 < crval < 5 \
            and np.isfinite(step) and 0 < step < 0.01:
        return crval - step * (crpix - 1), step
    return None


def _wavelengths(row: np.ndarray, hdr: fits.Header, name: str) -> np.ndarray:
    """The vacuum wavelength grid (Angstrom, float64) of one LRS spectrum.

    Where the wavelengths come from: the file's own WAVELENGTH row (DR5-DR7) or column (DR8+) is the
    pipeline's per-pixel vacuum wavelength and is authoritative. The header keywords are not enough on
    their own: ``CTYPE1 = 'LINEAR'`` although ``CRVAL1 = COEFF0`` is log10(Angstrom) (a generic FITS-WCS
    reader would give 3.57 Angstrom), ``COEFF0`` is rounded to 4 decimals (spec-...sp11-177's row starts
    at 3700.000 A while 10**COEFF0 = 3699.986 A), and ``CRPIX1``/``CTYPE1`` can be -9999.

    So: the row must be finite, positive and strictly increasing; log10(row) must be a straight line
    in the pixel index (LAMOST LRS grids are log10-linear, step 1e-4); and, when the header has a
    usable log-linear solution (``COEFF0``/``COEFF1``, see :func:`_header_log_solution`), it must agree
    with the row to within a pixel everywhere. Any failure is a :class:`DataError` (a corrupt or
    mis-ordered file). The grid returned is the least-squares log-linear fit to the row, evaluated in
    float64: exactly log-linear, and within float32 rounding (~3e-7 relative) of the stored row.
    """
    wave = np.asarray(row, dtype=float)
    if wave.size < 2:
        raise DataError(f"{name}: the wavelength array has {wave.size} pixel(s)")
    if not np.all(np.isfinite(wave)) or np.any(wave <= 0):
        raise DataError(f"{name}: the wavelength array has non-finite or non-positive values")
    if not np.all(np.diff(wave) > 0):
        i = int(np.argmin(np.diff(wave)))
        raise DataError(f"{name}: wavelengths do not increase strictly (pixel {i + 1}: "
                        f"{wave[i + 1]:.3f} A after {wave[i]:.3f} A)")
    pix = np.arange(wave.size, dtype=float)
    loglam = np.log10(wave)
    step, start = np.polyfit(pix, loglam, 1)
    resid = float(np.max(np.abs(loglam - (start + step * pix)))) / step
    if resid > _MAX_LOGLIN_RESID_PIX:
        raise DataError(f"{name}: the wavelength array is not log-linear (departs by {resid:.2f} pixel "
                        f"from a straight line in log10 wavelength); LAMOST LRS grids are log-linear")
    solution = _header_log_solution(hdr)
    if solution is None:
        log.debug("%s: no usable log-linear header keywords; using the wavelength array alone", name)
    else:
        c0, c1 = solution
        ends = np.array([0.0, pix[-1]])
        offset = float(np.max(np.abs((c0 + c1 * ends) - (start + step * ends)))) / step
        if offset > _MAX_HEADER_OFFSET_PIX:
            raise DataError(
                f"{name}: the wavelength array ({wave[0]:.2f}-{wave[-1]:.2f} A) disagrees with the header's "
                f"log-linear solution (COEFF0={c0}, COEFF1={c1}: {10 ** c0:.2f}-{10 ** (c0 + c1 * pix[-1]):.2f} A) "
                f"by {offset:.1f} pixel(s)")
    return 10.0 ** (start + step * pix)


# --------------------------------------------------------------------------------- data layouts
def _is_mrs(hdul: fits.HDUList) -> bool:
    """LAMOST MRS files: COADD_B/COADD_R (and B-/R- exposure) per-pixel tables with a LOGLAM column."""
    for hdu in hdul[1:]:
        if hdu.name.upper().startswith("COADD_"):
            return True
        if isinstance(hdu, fits.BinTableHDU) and "LOGLAM" in [c.upper() for c in hdu.columns.names]:
            return True
    return False


def _arrays_from_image(data: np.ndarray, name: str) -> dict[str, np.ndarray]:
    if data.ndim != 2 or data.shape[0] != 5 or data.shape[1] < 2:
        raise DataError(f"{name}: unexpected layout: the primary image has shape {data.shape}; a LAMOST LRS "
                        f"DR5-DR7 file has shape (5, npix) with rows {', '.join(_IMAGE_ROWS)}")
    return {key: np.asarray(data[i], dtype=float) for i, key in enumerate(_IMAGE_ROWS)}


def _find_table(hdul: fits.HDUList) -> fits.BinTableHDU | None:
    """The DR8+ spectrum table: EXTNAME 'COADD' if present, else the first table with the columns."""
    tables = [h for h in hdul[1:] if isinstance(h, fits.BinTableHDU)
              and {"FLUX", "IVAR", "WAVELENGTH"} <= {c.upper() for c in h.columns.names}]
    named = [h for h in tables if h.name.upper() == "COADD"]
    return (named or tables or [None])[0]


def _arrays_from_table(hdu: fits.BinTableHDU, name: str) -> dict[str, np.ndarray]:
    names = {c.upper(): c for c in hdu.columns.names}
    missing = [c for c in _REQUIRED_COLUMNS if c not in names]
    if missing:
        raise DataError(f"{name}: unexpected layout: table {hdu.name!r} lacks column(s) {missing} "
                        f"(has {hdu.columns.names})")
    data = hdu.data
    n_rows = 0 if data is None else len(data)
    if n_rows != 1:
        raise DataError(f"{name}: unexpected layout: table {hdu.name!r} has {n_rows} rows; a LAMOST LRS "
                        f"DR8+ file has one row of vector columns")
    out = {key: np.asarray(data[names[key]][0], dtype=float).ravel() for key in _REQUIRED_COLUMNS}
    sizes = {key: arr.size for key, arr in out.items()}
    if len(set(sizes.values())) != 1:
        raise DataError(f"{name}: unexpected layout: the columns of table {hdu.name!r} have different "
                        f"lengths {sizes}")
    return out


def _spectrum_arrays(hdul: fits.HDUList, name: str) -> dict[str, np.ndarray]:
    primary = hdul[0].data
    if primary is not None and np.asarray(primary).size:
        return _arrays_from_image(np.asarray(primary), name)
    table = _find_table(hdul)
    if table is None:
        raise DataError(
            f"{name}: unexpected layout: no LRS spectrum found (neither a (5, npix) primary image as in "
            f"DR5-DR7 nor a binary table with FLUX/IVAR/WAVELENGTH columns as in DR8+; "
            f"HDUs: {[h.name for h in hdul]}). Is the file truncated?")
    return _arrays_from_table(table, name)


# ------------------------------------------------------------------------------------- metadata
def _metadata(hdr: fits.Header, obsid: str) -> dict[str, np.ndarray]:
    z = _header_float(hdr, "Z")
    z_failed = not np.isfinite(z)  # missing, unparsable or the -9999 "redshift failed" sentinel
    snr = {band: _header_float(hdr, f"SNR{band.upper()}") for band in "ugriz"}
    meta = {
        "obsid": np.array([int(obsid)] if obsid.isdigit() else [obsid]),
        "ra": np.array([_header_float(hdr, "RA")]),
        "dec": np.array([_header_float(hdr, "DEC")]),
        **{f"snr_{band}": np.array([value]) for band, value in snr.items()},
        # slamfw's single S/N per star (used for S/N bins, error models and catalogues): the g-band S/N,
        # the number LAMOST/LASP quote as "the" S/N of a spectrum.
        "snr": np.array([snr["g"]]),
        "z": np.array([z]),
        "z_err": np.array([_header_float(hdr, "Z_ERR")]),
        # rv = c*z (km/s); NaN when the redshift failed, which the pre-processing treats as unknown
        "rv": np.array([np.nan if z_failed else C_KMS * z]),
        "z_flag": np.array([z_failed]),
        "class": np.array([_header_str(hdr, "CLASS")]),
        "subclass": np.array([_header_str(hdr, "SUBCLASS")]),
        "data_v": np.array([_header_str(hdr, "DATA_V")]),
    }
    return meta


# ------------------------------------------------------------------------------------ public API
def read_lamost_file(path: str | os.PathLike, bad_ormask: bool = True) -> SpectralSet:
    """One LAMOST LRS file (.fits or .fits.gz; DR5-DR7 5-row image or DR8+ binary table) -> a
    SpectralSet of one star on its own 1-D wavelength grid (vacuum, Angstrom, strictly increasing).

    Parameters
    ----------
    path
        The spectrum file. Gzip is detected from the content, not the name.
    bad_ormask
        True (default, the paper's section 2.1 choice): a pixel with ``ORMASK != 0`` (bad in at least one
        exposure) is bad; ``ANDMASK != 0`` is bad too, as ANDMASK is a subset of ORMASK by definition.
        False: only ``ANDMASK != 0`` (bad in every exposure) marks a pixel bad.

    Returns
    -------
    SpectralSet
        ``wave`` (P,) float64 vacuum Angstrom (log10-linear; see :func:`_wavelengths`), ``flux`` and
        ``ivar`` (1, P), ``mask`` (1, P) True = good, ``ids = [OBSID]`` (a string), ``source`` the file
        name, ``medium = "vacuum"``. A pixel is bad (mask False, ivar set to 0) when flux or ivar is
        not finite, ``ivar <= 0``, ``flux == 0`` (LAMOST writes 0 for missing flux, sometimes with a
        copied ivar > 0), or the mask above is set. Flux keeps its value (non-finite -> 0).
        ``meta`` (each a (1,) array): ``obsid`` (int), ``ra``, ``dec`` (deg), ``snr_u``... ``snr_z``,
        ``snr`` (= ``snr_g``), ``z``, ``z_err``, ``rv`` (= c*z, km/s), ``z_flag`` (True when Z is missing
        or -9999: then ``z`` and ``rv`` are NaN), ``class``, ``subclass``, ``data_v``. Header values of
        -9999 become NaN.

    Raises
    ------
    DataError
        With the file name and the problem: missing, empty, truncated or corrupt file; not FITS; not a
        LAMOST file (no LAMOST in TELESCOP/DATA_V/ORIGIN, or no OBSID); a LAMOST MRS file; an unexpected
        layout; wavelengths that are not strictly increasing, not log-linear or inconsistent with the
        header.
    """
    path = Path(path)
    try:
        return _read_lamost_file(path, bool(bad_ormask))
    except DataError:
        raise
    except (OSError, EOFError, ValueError, TypeError, IndexError, KeyError, zlib.error,
            VerifyError) as exc:
        raise DataError(f"{path}: cannot read as a LAMOST LRS FITS file ({type(exc).__name__}: {exc})") from exc


def _read_lamost_file(path: Path, bad_ormask: bool) -> SpectralSet:
    raw = _load_bytes(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with fits.open(io.BytesIO(raw), memmap=False) as hdul:
            hdr = hdul[0].header
            truncated = [str(w.message) for w in caught if "truncated" in str(w.message).lower()]
            if truncated:
                raise DataError(f"{path}: the file is truncated ({truncated[0]})")
            origin = " ".join(_header_str(hdr, k) for k in ("TELESCOP", "DATA_V", "ORIGIN")).upper()
            if "LAMOST" not in origin:
                raise DataError(f"{path}: not a LAMOST file (TELESCOP/DATA_V/ORIGIN do not name LAMOST)")
            obsid = _obsid(hdr, str(path))
            if _is_mrs(hdul):
                raise DataError(
                    f"{path}: this is a LAMOST MRS (medium-resolution) file (per-pixel tables "
                    f"{[h.name for h in hdul[1:3]]}); read_lamost_file reads LAMOST LRS (low-resolution) "
                    f"spectra only")
            arrays = _spectrum_arrays(hdul, str(path))
        truncated = [str(w.message) for w in caught if "truncated" in str(w.message).lower()]
        if truncated:
            raise DataError(f"{path}: the file is truncated ({truncated[0]})")
    for w in caught:
        log.debug("%s: astropy: %s", path.name, w.message)

    wave = _wavelengths(arrays["WAVELENGTH"], hdr, str(path))
    if hdr.get("VACUUM", True) is False:     # every LAMOST LRS file seen says T; one that says air is made vacuum
        log.info("%s: VACUUM = F in the header: air wavelengths, converted to vacuum", path.name)
        wave = air_to_vacuum(wave)
    flux, ivar = arrays["FLUX"], arrays["IVAR"]
    flagged = arrays["ANDMASK"] != 0  # NaN != 0 is True: a NaN mask value counts as bad
    if bad_ormask:
        flagged |= arrays["ORMASK"] != 0
    finite_flux = np.isfinite(flux)
    good = finite_flux & np.isfinite(ivar) & (ivar > 0) & (flux != 0) & ~flagged
    if not good.any():
        log.warning("%s: OBSID %s has no good pixel", path.name, obsid)
    return SpectralSet(
        wave=wave,
        flux=np.where(finite_flux, flux, 0.0)[None, :],
        ivar=np.where(good, ivar, 0.0)[None, :],
        ids=[obsid],
        mask=good[None, :],
        meta=_metadata(hdr, obsid),
        source=path.name,
        medium="vacuum",
    )


# ---------------------------------------------------------------------------------------- labels
#: Label columns of a LASP table: output name -> accepted input names (lower case), and units.
_LABEL_COLUMNS = {
    "Teff": ("teff", "teff_lasp"),
    "logg": ("logg", "logg_lasp"),
    "FeH": ("feh", "fe_h", "[fe/h]", "feh_lasp"),
}
LABEL_UNITS = {"Teff": "K", "logg": "dex", "FeH": "dex"}


def _to_float(text: str) -> float:
    """A catalogue number; NaN for empty, 'nan' or the -9999 sentinel. ValueError if not a number."""
    text = text.strip()
    if text == "" or text.lower() in ("nan", "null", "none", "--"):
        return np.nan
    value = float(text)
    return np.nan if not np.isfinite(value) or _is_sentinel(value) else value


def read_lamost_labels(path: str | os.PathLike) -> Table:
    """A LAMOST LASP label table (CSV with a header line, e.g. ``labels_dr10_lasp.csv``).

    Input columns (case-insensitive): ``obsid`` and ``teff``, ``logg``, ``feh`` (also accepted:
    ``teff_lasp``, ``logg_lasp``, ``fe_h``, ``[fe/h]``, ``feh_lasp``); any others (in the sample file
    ``filename, class, subclass, snrg, ra, dec, z``) are carried along.

    Returns an astropy Table with, in order: ``id`` (str OBSID, as in the ids of
    :func:`read_lamost_file`, so the two join), ``Teff`` (K), ``logg`` (dex), ``FeH`` (dex) as float
    with NaN for a missing value (empty or -9999), then the other columns under their lower-case names:
    float (-9999 -> NaN) when every value parses as a number, else str. ``meta['source']`` is the file name.

    Raises DataError (naming the file) for a missing/empty file, missing columns, a non-numeric label
    value or a duplicated OBSID.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read the label table ({exc})") from exc
    rows = [r for r in csv.reader(io.StringIO(text)) if any(cell.strip() for cell in r)]
    if not rows:
        raise DataError(f"{path}: the label table is empty")
    header = [h.strip().lower() for h in rows[0]]
    body = rows[1:]
    for k, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise DataError(f"{path}: line {k} has {len(row)} fields, the header has {len(header)}")
    if "obsid" not in header:
        raise DataError(f"{path}: the label table has no 'obsid' column (columns: {header})")
    picked = {}
    for out_name, aliases in _LABEL_COLUMNS.items():
        found = [a for a in aliases if a in header]
        if not found:
            raise DataError(f"{path}: the label table has no {out_name} column (one of {list(aliases)}); "
                            f"columns: {header}")
        picked[out_name] = header.index(found[0])

    ids = [_normalise_id(r[header.index("obsid")]) for r in body]
    if len(set(ids)) != len(ids):
        raise DataError(f"{path}: duplicated obsid(s) {name_some(repeated(ids), 5, quoted=True)} in the label table")
    table = Table()
    table["id"] = np.array(ids, dtype=str)
    for out_name, col in picked.items():
        values = []
        for k, row in enumerate(body, start=2):
            try:
                values.append(_to_float(row[col]))
            except ValueError:
                raise DataError(f"{path}: line {k}: {header[col]} = {row[col]!r} is not a number") from None
        table[out_name] = np.array(values, dtype=float)
        table[out_name].unit = LABEL_UNITS[out_name]
    used = {header.index("obsid"), *picked.values()}
    for col, name in enumerate(header):
        if col in used:
            continue
        cells = [row[col] for row in body]
        try:
            table[name] = np.array([_to_float(c) for c in cells], dtype=float)
        except ValueError:
            table[name] = np.array([c.strip() for c in cells], dtype=str)
    table.meta["source"] = path.name
    return table


class LamostReader(FileReader):
    """Reader ``lamost``: LAMOST LRS files (``.fits``, ``.fits.gz``), one star per file.

    ``bad_ormask`` (default True, the paper's §2.1 choice): a pixel with ORMASK != 0 is bad;
    False uses ANDMASK only. ``labels`` joins a LASP catalogue by OBSID (by default its ``obsid``,
    ``teff``, ``logg``, ``feh`` columns become Teff, logg, FeH; -9999 = missing). A failed redshift
    (Z = -9999) gives ``z_flag`` True and no RV: with ``preprocess.rv_correct`` on (the default),
    the spectrum is fitted unshifted, with ``flag_rv`` in a catalogue, and left out of a training set.
    """

    patterns = ("spec-*.fits", "spec-*.fits.gz", "*.fits", "*.fits.gz")
    medium = "vacuum"

    class Params(FileReader.Params):
        bad_ormask: bool = Field(True, description="ORMASK != 0 marks a bad pixel (else ANDMASK)")
        labels_id: str = Field("obsid", description="the catalogue's id column")
        labels_columns: dict[str, str] = Field(
            default_factory=lambda: {"Teff": "teff", "logg": "logg", "FeH": "feh"},
            description="label name -> catalogue column")

    def read_file(self, path: Path) -> SpectralSet:
        ss = read_lamost_file(path, self.bad_ormask)
        ss.meta = {k: v for k, v in ss.meta.items() if np.asarray(v).dtype.kind in "fiub"}
        return ss


@hookimpl
def slamfw_register_readers(register):
    register("lamost", LamostReader)
