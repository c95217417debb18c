"""Reader ``apogee``: SDSS APOGEE spectra, apStar, apVisit and aspcapStar FITS files.

:class:`ApogeeReader` reads many files (:class:`~slamfw.FileReader`); the functions below turn one
file into a :class:`~slamfw.SpectralSet` (or, for the ASPCAP labels, an astropy Table) and raise
:class:`~slamfw.DataError`, naming the file and the problem, for anything that is not a readable
APOGEE file of a known layout. The layouts and their oddities are those of DR13 (IDL apred r6,
ASPCAP l30e.2), r13 (apVisit) and DR17 (Python apogee_drp) files; see
``shared/data/apogee_samples/SOURCE.md``.

Common to every result
----------------------
- ``wave``: Angstrom, **vacuum**, strictly increasing (``medium="vacuum"``).
- Bad pixels have ``ivar == 0`` and ``mask == False`` (mask True = good) and a finite flux
  (non-finite flux becomes 0; a finite flux of a flagged pixel is kept as it is). A pixel is bad
  when its flux or error is not finite (DR17 chip gaps: NaN), its error is <= 0 (DR17 visit rows and
  aspcapStar gaps: 0) or > 1e9 (DR13 gaps: 1e10; DR17 bad pixels: > 1e9), its flux is exactly 0
  (the gap value in every product; in aspcapStar also pixels ASPCAP rejected, error 10), or, for
  apStar and apVisit, its ``APOGEE_PIXMASK`` value has one of the bits in ``bad_bits``.
- ``bad_bits`` defaults to :data:`BAD_PIXMASK`: bits 0-7 (BADPIX, CRPIX, SATPIX, UNFIXABLE, BADDARK,
  BADFLAT, BADERR, NOSKY), 12 (SIG_SKYLINE) and 14 (NOT_ENOUGH_PSF), i.e. the pipeline's "bad" bits
  plus sky lines, as in Bovy's ``apogee`` tools. Persistence (9-11), LITTROW_GHOST (8) and
  SIG_TELLURIC (13) are warnings and keep the pixel.
- ``meta`` (one value per spectrum): ``ra``, ``dec`` (deg), ``snr``, ``rv``, ``vhelio`` (km/s),
  ``starflag`` and product-specific columns (below).

Radial velocities: ``meta['rv']`` is what slamfw's pre-processing still has to shift by to reach
the rest frame (it shifts by ``rv`` when ``rv_correct`` is on). apStar and aspcapStar spectra are
already in the rest frame, so their ``rv`` is **0** and the measured heliocentric velocity is in
``meta['vhelio']``. apVisit wavelengths are in the observed (telescope) frame, so ``rv`` is the
visit's ``VRAD`` (= ``VREL``, the velocity relative to the telescope; ``vhelio = VRAD + BC``).

Ids
---
- apStar combined spectrum: the APOGEE_ID, e.g. ``"2M17335483-2753043"``;
- apStar visit k (1-based, the ``k`` of the header's ``SFILEk``/``VHELIOk``): ``"<APOGEE_ID>/visit<k>"``;
- apVisit: ``"<APOGEE_ID>/<plate>-<mjd>-<fiber:03d>"`` as in the file name, e.g.
  ``"2M01183798+8403419/5095-55844-128"``;
- aspcapStar: the APOGEE_ID.

apStar rows
-----------
Row 0 is the combined spectrum (pixel-by-pixel weighting), row 1 the combined spectrum with global
weighting (not returned: a second estimate of the same spectrum; all zeros in DR17 single-visit
files, and with hidden flux-0 edge pixels in DR13), rows 2... the visits resampled to the rest frame.
A star with one visit has no visit rows (DR13: 1-D arrays; DR17: two rows, the second all zeros):
its combined spectrum *is* the visit. ``visits="visits"`` then returns row 0 with the id
``<APOGEE_ID>/visit1``, and ``visits="all"`` returns row 0 once, as the combined spectrum.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.io.fits.verify import VerifyError
from astropy.table import Table

from pydantic import Field, field_validator

from slamfw import DataError, FileReader, SpectralSet, hookimpl

from ._fitstable import PLAIN, BinTable, column_names

SLAMFW_PLUGIN_API = (1, 2)

__all__ = [
    "ApogeeReader", "BAD_PIXMASK", "PIXMASK_BITS", "detect_product", "read_apogee_file", "read_apstar", "read_apvisit",
    "read_aspcap_labels", "read_aspcapstar",
]

#: ``APOGEE_PIXMASK`` bit names (sdss/apogee_drp ``PixelBitMask``; DR12-DR17).
PIXMASK_BITS = {
    0: "BADPIX", 1: "CRPIX", 2: "SATPIX", 3: "UNFIXABLE", 4: "BADDARK", 5: "BADFLAT", 6: "BADERR",
    7: "NOSKY", 8: "LITTROW_GHOST", 9: "PERSIST_HIGH", 10: "PERSIST_MED", 11: "PERSIST_LOW",
    12: "SIG_SKYLINE", 13: "SIG_TELLURIC", 14: "NOT_ENOUGH_PSF", 16: "FERRE_MASK",
}
#: Default bits that make a pixel bad: 0-7, 12 (SIG_SKYLINE), 14 (NOT_ENOUGH_PSF) = 20735.
BAD_PIXMASK = sum(1 << b for b in (0, 1, 2, 3, 4, 5, 6, 7, 12, 14))

#: Errors at or above this are sentinels (DR13 gaps: 1e10; DR17 bad pixels: > 1e9).
ERR_SENTINEL = 1e9
#: The APOGEE H band; a grid outside it means a damaged or foreign header.
H_BAND = (15000.0, 17100.0)
#: ASPCAP PARAM order in DR12-DR14 (SOURCE.md: likely, not certain for the last two).
ASPCAP_PARAMS = [  # (column, PARAM index, unit)
    ("Teff", 0, "K"), ("logg", 1, "dex"), ("log_vmicro", 2, "dex"), ("FeH", 3, "dex"),
    ("C_M", 4, "dex"), ("N_M", 5, "dex"), ("alpha_M", 6, "dex"), ("log_vsini", 7, "dex"),
]
LABEL_NAMES = ["Teff", "logg", "FeH"]
LABEL_UNITS = ["K", "dex", "dex"]
#: ASPCAPFLAG bit 23: STAR_BAD.
ASPCAP_STAR_BAD = 1 << 23
VISITS = ("combined", "all", "visits")

_ID_IN_NAME = re.compile(r"2M\d{8}[+-]\d{7}")
_HISTORY_HDU = re.compile(r"\bHDU(\d+)\b")
_IMAGE = (fits.PrimaryHDU, fits.ImageHDU, fits.CompImageHDU)
_READ_ERRORS = (OSError, ValueError, EOFError, KeyError, IndexError, TypeError, AttributeError, VerifyError)


# ---------------------------------------------------------------------------------- public API
def read_apogee_file(path, visits: str = "combined", *, bad_bits: int = BAD_PIXMASK) -> SpectralSet:
    """Read an apStar, apVisit or aspcapStar file, recognised by its HDU layout (file name as a fallback).

    ``visits`` applies to apStar files only (see :func:`read_apstar`). An aspcapStar file gives its
    ASPCAP pseudo-continuum-normalised spectrum with labels Teff (K), logg, FeH (= [M/H]) attached.
    """
    def parse(hl: fits.HDUList, p: str) -> SpectralSet:       # one opening of the file: its headers read once
        kind = detect_product(hl, p)
        if kind == "apStar":
            _check_visits(p, visits)
            return _apstar(hl, p, visits, bad_bits)
        if kind == "apVisit":
            return _apvisit(hl, p, bad_bits)
        return _aspcapstar(hl, p)
    return _guarded(path, parse)


def read_apstar(path, visits: str = "combined", *, bad_bits: int = BAD_PIXMASK) -> SpectralSet:
    """An apStar file on its log-linear rest-frame vacuum grid (8575 pixels, 15100.8-16999.8 A).

    ``visits``: ``"combined"`` (row 0 only), ``"visits"`` (each visit, ids ``<APOGEE_ID>/visit<k>``)
    or ``"all"`` (combined first, then the visits). See the module docstring for one-visit stars.
    """
    _check_visits(path, visits)
    return _guarded(path, lambda hl, p: _apstar(hl, p, visits, bad_bits))


def _check_visits(path, visits: str) -> None:
    """A DataError naming ``path`` when ``visits`` is not one of :data:`VISITS`."""
    if visits not in VISITS:
        raise DataError(f"{path}: visits must be one of {VISITS}, got {visits!r}")


def read_apvisit(path, *, bad_bits: int = BAD_PIXMASK) -> SpectralSet:
    """An apVisit file: the three chips' pixels sorted by their (observed-frame, vacuum) wavelength."""
    return _guarded(path, lambda hl, p: _apvisit(hl, p, bad_bits))


def read_aspcapstar(path) -> SpectralSet:
    """An aspcapStar file: the normalised spectrum (HDU 1, error HDU 2) with Teff, logg, FeH labels."""
    return _guarded(path, _aspcapstar)


def read_aspcap_labels(path) -> Table:
    """ASPCAP labels of an aspcapStar file, one row per star.

    Columns: ``id``; ``Teff`` (K), ``logg``, ``log_vmicro``, ``FeH`` (= [M/H], PARAM "METALS"),
    ``C_M``, ``N_M``, ``alpha_M``, ``log_vsini`` (dex) from the calibrated ``PARAM``, each with
    ``<name>_err`` (sqrt of the ``PARAM_COV`` diagonal) and ``<name>_flag`` (``PARAMFLAG``);
    ``aspcapflag``, ``star_bad`` (ASPCAPFLAG bit 23), ``starflag``, ``class``, ``field``, ``snr``,
    ``vhelio``, ``ra``, ``dec``; ``X_H``, ``X_M`` (and ``_ERR``) as (N, 26) columns (element names
    are not stored in the file). Sentinels become NaN: values of -9999 (a rejected label); uncertainties
    whose ``PARAM_COV`` variance is -9999 (what reads as "sigma = 100": no uncertainty, e.g. the
    uncalibrated DR13 C and N, whose values are kept) or 0 (a parameter held fixed, ``PARAMFLAG``
    bit 16, value kept) or +9999.
    """
    def parse(hl: fits.HDUList, p: str) -> Table:
        cols, units = _aspcap_columns(hl, p)
        table = Table(cols)
        for name, unit in units.items():
            table[name].unit = unit
        return table
    return _guarded(path, parse)


def detect_product(hl: fits.HDUList, path="") -> str:
    """``"apStar"``, ``"apVisit"`` or ``"aspcapStar"`` from the HDU layout (file name as a fallback)."""
    n = len(hl)
    if n >= 5 and isinstance(hl[4], fits.BinTableHDU) and "PARAM" in _colnames(hl[4]):
        return "aspcapStar"
    if n >= 5 and all(isinstance(hl[i], _IMAGE) for i in (1, 2, 3, 4)):
        shape1, shape4 = _shape(hl[1]), _shape(hl[4])
        ctype = str(_card(hl[1].header, "CTYPE1", "")).strip().lower()
        no_grid = _card(hl[1].header, "CRVAL1") is None and _card(hl[0].header, "CRVAL1") is None
        if len(shape1) == 2 and shape1 == shape4 and hl[4].header.get("BITPIX", 0) < 0 and (
                ctype == "pixel" or no_grid):
            return "apVisit"
    if n >= 4 and all(isinstance(hl[i], _IMAGE) for i in (1, 2, 3)) and hl[3].header.get("BITPIX", 0) > 0 and (
            _card(hl[1].header, "CRVAL1") is not None or _card(hl[0].header, "CRVAL1") is not None) and (
            "NVISITS" in hl[0].header or "OBJID" in hl[0].header):
        return "apStar"
    name = Path(str(path)).name.lower()
    for prefix, kind in (("aspcapstar", "aspcapStar"), ("apstar", "apStar"), ("asstar", "apStar"),
                         ("apvisit", "apVisit"), ("asvisit", "apVisit")):
        if name.startswith(prefix):
            return kind
    layout = ", ".join(f"{i}:{type(h).__name__}{list(_shape(h)) if isinstance(h, _IMAGE) else ''}"
                       for i, h in enumerate(hl))
    raise DataError(f"{path}: not an APOGEE apStar, apVisit or aspcapStar file (HDU layout {layout})")


# ------------------------------------------------------------------------------ file handling
def _guarded(path, parse: Callable[[fits.HDUList, str], Any]) -> Any:
    """Open ``path`` and run ``parse(hdulist, path)``; every failure becomes a DataError naming the file."""
    path = str(path)
    try:
        with fits.open(path, memmap=False) as hl:
            _check_complete(hl, path)
            return parse(hl, path)
    except DataError:
        raise
    except _READ_ERRORS as err:
        if isinstance(err, FileNotFoundError):
            raise DataError(f"{path}: no such file") from err
        msg = " ".join(str(err).split()) or type(err).__name__
        if "Empty or corrupt FITS file" in msg:
            msg = "empty, not a FITS file, or corrupt"
        elif "No SIMPLE card found" in msg:
            msg = "not a FITS file (no SIMPLE card)"
        elif "Header missing END card" in msg:
            msg = "a header is cut short or corrupt (no END card)"
        raise DataError(f"{path}: cannot read the APOGEE file ({type(err).__name__}: {msg})") from err


def _check_complete(hl: fits.HDUList, path: str) -> None:
    """Every HDU's data must be in the file, and nothing but padding may follow the last one: a file cut
    short inside a data unit, or inside a header (which astropy skips with a warning), is truncated."""
    n = len(hl)  # reads every header
    with open(path, "rb") as fh:
        if fh.read(len(PLAIN)) != PLAIN:
            return  # compressed: astropy's decompressor reports damage itself
        size = fh.seek(0, 2)
        info = hl[n - 1].fileinfo()  # not HDUList.fileinfo: that one re-verifies every header (warnings)
        if not info or info.get("datLoc") is None:
            return
        end = int(info["datLoc"]) + int(info["datSpan"])
        if end > size:
            raise DataError(f"{path}: the file is truncated: it has {size} bytes, its headers describe {end} "
                            f"(HDU {n - 1} is incomplete)")
        if end < size:
            fh.seek(end)
            if fh.read(size - end).strip(b"\0 "):
                raise DataError(f"{path}: the file is truncated or corrupt: {size - end} bytes after HDU {n - 1} "
                                f"are not a complete HDU")


def _card(header, key: str, default=None):
    """``header[key]``, or ``default`` when absent or unparsable (e.g. ``AKTARG = NAN``)."""
    try:
        value = header[key]
    except (KeyError, IndexError, VerifyError, ValueError):
        return default
    return default if value is None or isinstance(value, fits.card.Undefined) else value


def _num(header, key: str, default: float = np.nan) -> float:
    value = _card(header, key)
    try:
        out = float(value)
    except (TypeError, ValueError):
        return default
    return out if np.isfinite(out) else default


def _colnames(hdu) -> list[str]:
    """Upper-case column names of a binary table HDU, from its header ([] for any other HDU)."""
    return [c.upper() for c in column_names(hdu.header)] if isinstance(hdu, fits.BinTableHDU) else []


def _shape(hdu) -> tuple[int, ...]:
    naxis = hdu.header.get("NAXIS", 0)
    return tuple(int(hdu.header.get(f"NAXIS{i}", 0)) for i in range(naxis, 0, -1))


def _image(hl: fits.HDUList, index: int, what: str, path: str) -> np.ndarray:
    if index >= len(hl) or not isinstance(hl[index], _IMAGE):
        raise DataError(f"{path}: HDU {index} ({what}) is missing or not an image; "
                        f"the file has {len(hl)} HDUs")
    data = hl[index].data
    if data is None:
        raise DataError(f"{path}: HDU {index} ({what}) is empty")
    return np.asarray(data)


def _require_hdus(hl: fits.HDUList, path: str, n_min: int, product: str, layout: str) -> None:
    """At least ``n_min`` HDUs, and every HDU that the pipeline's HISTORY cards list ("HDU10 : ...")."""
    listed = [int(m) for card in _card(hl[0].header, "HISTORY", []) for m in _HISTORY_HDU.findall(str(card))]
    if listed and max(listed) + 1 > n_min:
        n_min, layout = max(listed) + 1, "as its HISTORY cards list"
    if len(hl) < n_min:
        raise DataError(f"{path}: has {len(hl)} HDU(s), an {product} file has at least {n_min} ({layout}); "
                        f"truncated or not an {product} file")


def _star_id(path: str, *candidates) -> str:
    for value in candidates:
        text = value.decode() if isinstance(value, bytes) else (str(value) if value is not None else "")
        if text.strip():
            return text.strip()
    match = _ID_IN_NAME.search(Path(path).name)
    if match:
        return match.group(0)
    raise DataError(f"{path}: no APOGEE_ID (OBJID/OBJ keyword or APOGEE_ID column) and none in the file name")


def _log_grid(hl: fits.HDUList, path: str, n_pix: int) -> np.ndarray:
    """Vacuum wavelengths of the log-linear grid: log10(wave) = CRVAL1 + CDELT1 * (i + 1 - CRPIX1)."""
    for hdr in (hl[1].header, hl[0].header):
        crval, cdelt = _num(hdr, "CRVAL1"), _num(hdr, "CDELT1")
        if np.isfinite(crval) and np.isfinite(cdelt):
            break
    else:
        raise DataError(f"{path}: no CRVAL1/CDELT1 wavelength keywords in HDU 1 or HDU 0")
    ctype = str(_card(hdr, "CTYPE1", "")).strip().upper()
    if ctype and not ctype.startswith("LOG") and _card(hdr, "DC-FLAG") != 1:
        raise DataError(f"{path}: expected a LOG-LINEAR wavelength axis, got CTYPE1 = {ctype!r}")
    nwave = _card(hl[0].header, "NWAVE")
    if nwave is not None and int(nwave) != n_pix:
        raise DataError(f"{path}: the header says NWAVE = {nwave} but the spectra have {n_pix} pixels")
    crpix = _num(hdr, "CRPIX1", 1.0)
    wave = 10.0 ** (crval + cdelt * (np.arange(n_pix) + 1.0 - crpix))
    # APOGEE's step is 6e-6 in log10: a step far from it (1e-14 made 8575 pixels 3e-6 A wide) is a damaged card
    if not (1e-6 <= cdelt <= 1e-4 and H_BAND[0] <= wave[0] and wave[-1] <= H_BAND[1]):
        raise DataError(f"{path}: CRVAL1 = {crval}, CDELT1 = {cdelt} give {wave[0]:.1f}-{wave[-1]:.1f} A, "
                        f"not an APOGEE grid (expected log10 wavelengths within {H_BAND} A, in steps of 1e-6 to "
                        f"1e-4)")
    return wave


def _clean(flux: np.ndarray, err: np.ndarray, bitmask: np.ndarray | None,
           bad_bits: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(flux, ivar, good) with every sentinel and flagged pixel turned into ivar 0 / good False."""
    flux = np.asarray(flux, dtype=float)
    err = np.asarray(err, dtype=float)
    with np.errstate(invalid="ignore"):
        good = np.isfinite(flux) & np.isfinite(err) & (err > 0) & (err < ERR_SENTINEL) & (flux != 0)
    if bitmask is not None:
        good &= (np.asarray(bitmask).astype(np.int64) & int(bad_bits)) == 0
    ivar = np.zeros_like(flux)
    ivar[good] = 1.0 / err[good] ** 2
    good &= np.isfinite(ivar) & (ivar > 0)  # errors so small that 1/err^2 overflows
    ivar[~good] = 0.0
    return np.where(np.isfinite(flux), flux, 0.0), ivar, good


# ---------------------------------------------------------------------------------- apStar
def _apstar(hl: fits.HDUList, path: str, visits: str, bad_bits: int) -> SpectralSet:
    h0 = hl[0].header
    _require_hdus(hl, path, 10, "apStar", "header, flux, error, bitmask, sky, sky error, telluric, "
                  "telluric error, LSF, RV table")
    flux = _image(hl, 1, "flux", path)
    err = _image(hl, 2, "flux error", path)
    bitmask = _image(hl, 3, "pixel bitmask", path)
    if flux.ndim not in (1, 2):
        raise DataError(f"{path}: expected 1-D or 2-D flux in HDU 1, got shape {flux.shape}")
    if err.shape != flux.shape or bitmask.shape != flux.shape:
        raise DataError(f"{path}: flux {flux.shape}, error {err.shape} and bitmask {bitmask.shape} "
                        f"(HDU 1-3) differ in shape")
    if not np.issubdtype(bitmask.dtype, np.integer):
        raise DataError(f"{path}: HDU 3 should be the integer pixel bitmask, got {bitmask.dtype}")
    flux, err, bitmask = np.atleast_2d(flux), np.atleast_2d(err), np.atleast_2d(bitmask)
    n_rows, n_pix = flux.shape
    wave = _log_grid(hl, path, n_pix)
    nvisits = _card(h0, "NVISITS")
    if nvisits is None:  # infer: 1 row (DR13) or 2 rows (DR17) = one visit, else combined x2 + visits
        nvisits = 1 if n_rows <= 2 else n_rows - 2
    nvisits = int(nvisits)
    expected = (1, 2) if nvisits == 1 else (nvisits + 2,)
    if nvisits < 1 or n_rows not in expected:
        raise DataError(f"{path}: NVISITS = {nvisits} but HDU 1 has {n_rows} row(s) "
                        f"(expected {' or '.join(map(str, expected))})")
    star = _star_id(path, _card(h0, "OBJID"), _card(h0, "OBJ"), _card(h0, "APOGEE_ID"))

    combined = {"row": 0, "id": star, "visit": 0, "visit_file": "", "snr": _num(h0, "SNR"),
                "vhelio": _num(h0, "VHELIO"), "starflag": int(_num(h0, "STARFLAG", 0))}
    visit_rows = []
    for k in range(1, nvisits + 1):
        one = nvisits == 1  # the combined spectrum is the visit
        snr = _num(h0, f"SNRVIS{k}")
        visit_rows.append({
            "row": 0 if one else k + 1, "id": f"{star}/visit{k}", "visit": k,
            "visit_file": str(_card(h0, f"SFILE{k}", "")).strip(),
            "snr": combined["snr"] if one or not snr > 0 else snr,
            "vhelio": _num(h0, f"VHELIO{k}"), "starflag": int(_num(h0, f"FLAG{k}", 0))})
    rows = {"combined": [combined], "visits": visit_rows,
            "all": [combined] + ([] if nvisits == 1 else visit_rows)}[visits]

    idx = [r["row"] for r in rows]
    f, ivar, good = _clean(flux[idx], err[idx], bitmask[idx], bad_bits)
    n = len(rows)
    meta = {
        "ra": np.full(n, _num(h0, "RA")), "dec": np.full(n, _num(h0, "DEC")),
        "snr": np.array([r["snr"] for r in rows], float), "rv": np.zeros(n),  # rest frame already
        "vhelio": np.array([r["vhelio"] for r in rows], float),
        "starflag": np.array([r["starflag"] for r in rows], np.int64),
        "nvisits": np.full(n, nvisits), "visit": np.array([r["visit"] for r in rows]),
        "visit_file": np.array([r["visit_file"] for r in rows], dtype=str),
    }
    return SpectralSet(wave=wave, flux=f, ivar=ivar, ids=[r["id"] for r in rows], mask=good, meta=meta,
                       source=Path(path).name, medium="vacuum")


# ---------------------------------------------------------------------------------- apVisit
def _apvisit(hl: fits.HDUList, path: str, bad_bits: int) -> SpectralSet:
    h0 = hl[0].header
    _require_hdus(hl, path, 11, "apVisit", "header, flux, error, bitmask, wavelength, sky, sky error, "
                  "telluric, telluric error, wavelength and LSF coefficients")
    flux = _image(hl, 1, "flux", path)
    err = _image(hl, 2, "flux error", path)
    bitmask = _image(hl, 3, "pixel bitmask", path)
    wave = _image(hl, 4, "wavelength", path)
    if flux.ndim != 2 or any(a.shape != flux.shape for a in (err, bitmask, wave)):
        raise DataError(f"{path}: expected (chip, pixel) arrays of one shape in HDU 1-4 (flux, error, "
                        f"bitmask, wavelength), got {flux.shape}, {err.shape}, {bitmask.shape}, {wave.shape}")
    if not np.issubdtype(bitmask.dtype, np.integer):
        raise DataError(f"{path}: HDU 3 should be the integer pixel bitmask, got {bitmask.dtype}")
    wave = np.asarray(wave, dtype=float).ravel()
    if not np.all(np.isfinite(wave)):      # named as such: the range of the others looked right
        j = int(np.flatnonzero(~np.isfinite(wave))[0])
        raise DataError(f"{path}: HDU 4 (wavelength) is {wave[j]} at pixel {j} of {wave.size} (chips end to end; "
                        f"{int(np.sum(~np.isfinite(wave)))} such)")
    if wave.min() < H_BAND[0] or wave.max() > H_BAND[1]:
        raise DataError(f"{path}: HDU 4 is not an APOGEE wavelength array (values {np.nanmin(wave):.4g}-"
                        f"{np.nanmax(wave):.4g}, expected Angstrom within {H_BAND})")
    order = np.argsort(wave, kind="stable")  # chips run red->blue, each in decreasing wavelength
    wave = wave[order]
    if np.any(np.diff(wave) <= 0):
        i = int(np.argmin(np.diff(wave)))
        raise DataError(f"{path}: two pixels share the wavelength {wave[i]:.4f} A (overlapping chips?)")
    f, ivar, good = _clean(flux.ravel()[order], err.ravel()[order], bitmask.ravel()[order], bad_bits)

    table = BinTable(hl[11], path) if len(hl) > 11 and isinstance(hl[11], fits.BinTableHDU) else None

    def value(key: str, column: str | None = None):
        v = _card(h0, key)
        if v is None and column and table is not None and column in table and len(table):
            v = table[column][0]
        return v.decode() if isinstance(v, bytes) else v

    star = _star_id(path, value("OBJID", "APOGEE_ID"))
    plate, mjd, fiber = value("PLATE", "PLATE"), value("MJD5", "MJD"), value("FIBERID", "FIBERID")
    if plate is None or mjd is None or fiber is None:
        raise DataError(f"{path}: PLATE, MJD5 or FIBERID missing from the header (and the HDU 11 table)")
    plate, mjd, fiber = str(plate).strip(), int(mjd), int(fiber)

    def number(key: str, column: str | None = None) -> float:
        try:
            out = float(value(key, column))
        except (TypeError, ValueError):
            return np.nan
        return out if np.isfinite(out) else np.nan

    meta = {
        "ra": [number("RA", "RA")], "dec": [number("DEC", "DEC")], "snr": [number("SNR", "SNR")],
        "rv": [number("VRAD", "VREL")], "vhelio": [number("VHELIO", "VHELIO")], "bc": [number("BC", "BC")],
        "starflag": [int(np.nan_to_num(number("STARFLAG", "STARFLAG")))],
        "plate": [plate], "mjd": [mjd], "fiber": [fiber],
    }
    return SpectralSet(wave=wave, flux=f[None], ivar=ivar[None], ids=[f"{star}/{plate}-{mjd}-{fiber:03d}"],
                       mask=good[None], meta={k: np.asarray(v) for k, v in meta.items()},
                       source=Path(path).name, medium="vacuum")


# ------------------------------------------------------------------------------- aspcapStar
def _sentinel_nan(values: np.ndarray) -> np.ndarray:
    out = np.array(values, dtype=float)
    out[~np.isfinite(out) | (out <= -9998.0)] = np.nan
    return out


def _aspcap_columns(hl: fits.HDUList, path: str) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The columns of :func:`read_aspcap_labels` (name -> (N, ...) array), and their units."""
    _require_hdus(hl, path, 5, "aspcapStar", "header, normalised flux, error, model, ASPCAP table")
    data = BinTable(hl[4], path) if isinstance(hl[4], fits.BinTableHDU) else None
    if data is None or "PARAM" not in data:
        raise DataError(f"{path}: not an aspcapStar file (no ASPCAP table with a PARAM column in HDU 4)")
    n = len(data)
    if n == 0:
        raise DataError(f"{path}: the ASPCAP table in HDU 4 has no rows")
    param = np.asarray(data["PARAM"], dtype=float).reshape(n, -1)
    if param.shape[1] < 8:
        raise DataError(f"{path}: PARAM has {param.shape[1]} entries, expected 9 (DR12-DR14 order)")
    cov = (np.asarray(data["PARAM_COV"], dtype=float).reshape(n, param.shape[1], param.shape[1])
           if "PARAM_COV" in data else np.full((n,) + param.shape[1:] * 2, np.nan))
    var = np.diagonal(cov, axis1=1, axis2=2).copy()
    var[~np.isfinite(var) | (var <= 0) | np.isclose(var, 9999.0, rtol=1e-4) | (var <= -9998.0)] = np.nan
    pflag = (np.asarray(data["PARAMFLAG"]).reshape(n, -1).astype(np.int64) if "PARAMFLAG" in data
             else np.zeros(param.shape, np.int64))
    h0 = hl[0].header

    def column(name: str, default, kind=float):
        if name in data:
            vals = np.asarray(data[name]).reshape(n, -1)[:, 0]
            if kind is str:
                return np.array([v.decode().strip() if isinstance(v, bytes) else str(v).strip() for v in vals])
            return vals.astype(kind)
        return np.full(n, default, dtype=kind if kind is not str else object).astype(kind)

    ids = column("APOGEE_ID", "", str)
    if n == 1 and not ids[0]:
        ids = np.array([_star_id(path, _card(h0, "OBJ"), _card(h0, "OBJID"))])
    cols: dict[str, np.ndarray] = {"id": ids}
    units: dict[str, str] = {}
    for name, i, unit in ASPCAP_PARAMS:
        cols[name], cols[f"{name}_err"] = _sentinel_nan(param[:, i]), np.sqrt(var[:, i])
        cols[f"{name}_flag"] = pflag[:, i]
        units[name] = units[f"{name}_err"] = unit
    flag = column("ASPCAPFLAG", 0, np.int64)
    cols["aspcapflag"] = flag
    cols["star_bad"] = (flag & ASPCAP_STAR_BAD) != 0
    cols["starflag"] = column("STARFLAG", 0, np.int64)
    cols["class"] = column("CLASS", "", str)
    cols["field"] = column("FIELD", "", str)
    for name, col, unit in (("snr", "SNR", None), ("vhelio", "VHELIO", "km/s"), ("ra", "RA", "deg"),
                            ("dec", "DEC", "deg")):
        cols[name] = _sentinel_nan(column(col, np.nan))
        if unit:
            units[name] = unit
    for name in ("X_H", "X_H_ERR", "X_M", "X_M_ERR"):
        if name in data:
            cols[name] = _sentinel_nan(np.asarray(data[name], dtype=float).reshape(n, -1))
    return cols, units


def _aspcapstar(hl: fits.HDUList, path: str) -> SpectralSet:
    cols, _ = _aspcap_columns(hl, path)
    if len(cols["id"]) != 1:
        raise DataError(f"{path}: an aspcapStar table should have one row, it has {len(cols['id'])}")
    flux = _image(hl, 1, "normalised flux", path)
    err = _image(hl, 2, "normalised flux error", path)
    if flux.ndim != 1 or err.shape != flux.shape:
        raise DataError(f"{path}: expected 1-D flux and error of one shape in HDU 1-2, got {flux.shape}, {err.shape}")
    wave = _log_grid(hl, path, flux.size)
    f, ivar, good = _clean(flux, err, None, 0)  # no pixel mask: flux 0 / error 0 or 10 mark bad pixels
    labels = np.array([[cols[name][0] for name in LABEL_NAMES]], dtype=float)
    meta = {key: np.asarray(cols[key]) for key in ("ra", "dec", "snr", "vhelio", "aspcapflag", "starflag")}
    meta["rv"] = np.zeros(1)  # the spectrum is in the rest frame
    return SpectralSet(wave=wave, flux=f[None], ivar=ivar[None], ids=[str(cols["id"][0])], mask=good[None],
                       labels=labels, label_names=list(LABEL_NAMES), label_units=list(LABEL_UNITS),
                       meta=meta, source=Path(path).name, medium="vacuum")


class ApogeeReader(FileReader):
    """Reader ``apogee``: apStar, apVisit and aspcapStar files (one star, or its visits, per file).

    ``path`` is a file, a directory, a glob or a list of files (:class:`~slamfw.FileReader`);
    each file's product is recognised from its layout, so they may be mixed. ``visits`` chooses
    the apStar rows (``combined``, ``all``, ``visits``). aspcapStar files bring ASPCAP's labels
    (Teff, logg, FeH = [M/H]; -9999 missing); ``labels`` joins another catalogue (an allStar
    table, say, with ``labels_id = "APOGEE_ID"`` and ``labels_columns``) instead. Wavelengths are
    vacuum on log-linear grids; apVisit spectra keep their own grids, which pre-processing
    resamples after normalisation.
    """

    patterns = ("*.fits", "*.fits.gz", "*.fits.bz2")
    medium = "vacuum"

    class Params(FileReader.Params):
        visits: str = Field("combined", description="apStar rows: combined, all, or visits")
        bad_bits: int = Field(BAD_PIXMASK, ge=0, description="APOGEE_PIXMASK bits that make a pixel bad")

        @field_validator("visits")
        @classmethod
        def _visits(cls, v: str) -> str:
            if v not in VISITS:
                raise ValueError(f"expected one of {VISITS}")
            return v

    def read_file(self, path: Path) -> SpectralSet:
        return read_apogee_file(path, self.visits, bad_bits=self.bad_bits)


@hookimpl
def slamfw_register_readers(register):
    register("apogee", ApogeeReader)
