"""Conversions between :class:`~slamfw.SpectralSet` and specutils' ``Spectrum`` objects.

``specutils`` (>= 2.0, where ``Spectrum1D`` became ``Spectrum``; 1.x's ``Spectrum1D`` works too) is
imported only inside these functions: slamfw does not need it otherwise (``pip install specutils``).

:func:`spectral_set_from_spectra` (``SpectralSet.from_spectra``)
    One ``Spectrum`` (1-D flux, or 2-D flux: several spectra sharing its spectral axis) or a
    sequence of them (each on its own grid) -> one set.

    - **Wavelengths**: the spectral axis in any spectral unit (length, frequency, energy,
      wavenumber; ``astropy.units.spectral`` equivalencies) becomes Angstrom; a decreasing axis
      (a frequency axis, APOGEE apVisit chips) is sorted to increasing, flux, uncertainty and
      mask with it. A pixel or velocity axis is a :class:`DataError`. One grid for all stars
      when every spectrum has the same axis, else a grid per star (:meth:`SpectralSet.stack`).
    - **Flux**: ``spectrum.flux.value``. **The flux unit is dropped** (slamfw normalises every
      spectrum by its own continuum); uncertainties given in another unit than the flux are
      converted to the flux's unit first.
    - **ivar** from ``spectrum.uncertainty``: ``InverseVariance`` as it is, ``StdDevUncertainty``
      1/sigma^2, ``VarianceUncertainty`` 1/var. A pixel whose uncertainty is not finite or <= 0
      gets ivar 0. **A spectrum without uncertainty (or of another kind) gets ivar 1 at every
      pixel**, with a logged warning: ivar 0 would mark every pixel useless, and 1 weighs all
      pixels equally (fits still work; their label uncertainties are then meaningless).
    - **Mask**: specutils' mask is True (nonzero) for a *bad* pixel, slamfw's ``mask`` True for a
      *good* one: ``mask = ~(spectrum.mask != 0)``. No mask: every pixel good.
    - Non-finite flux becomes 0 with ivar 0 and mask False.
    - **Ids**: ``ids`` if given; else the first of ``meta["id"]``, ``OBJID``, ``OBSID``,
      ``APOGEE_ID``, ``OBJ``, ``OBJECT`` found in ``spectrum.meta`` or in its FITS header
      ``spectrum.meta["header"]`` (a 2-D spectrum's rows get ``<id>/<row>``, unless the value
      is a list of one id per row); else ``<source stem>-<k>``, k counting the stars from 0.
      Ids that would repeat get ``/<k>`` appended.
    - **Metadata** (one value per star): ``ra``, ``dec`` (deg) and ``snr`` from ``meta`` keys
      ``ra``/``RA``, ``dec``/``DEC``, ``snr``/``SNR`` or the same header keywords (numeric
      values only: a sexagesimal "RA" string is ignored); ``rv`` (km/s, the shift still to be
      removed, see ``preprocess.rv_correct``) only from ``meta["rv"]``, else from
      ``spectrum.radial_velocity`` when that is non-zero, never from a header (a header's
      velocity may already have been removed, as in APOGEE apStar files). Any other top-level
      ``meta`` entry holding a number, a string, or one value per row is kept as a column
      under its own name; ``header`` is not.
    - **Labels**: ``meta["labels"]`` (a dict name -> value) and ``meta["label_units"]``, as
      :func:`spectral_set_to_spectra` writes them; a star without a label gets NaN.
    - **Medium**: ``medium``; when ``""``, what every spectrum says alike: its ``meta["medium"]``,
      else its FITS header's ``CTYPE1`` (``AWAV``: air, ``WAVE``: vacuum).

:func:`spectral_set_to_spectra` (``SpectralSet.to_spectra``)
    One ``Spectrum`` per star on its own grid row (padding pixels of a per-star grid are kept,
    masked), flux in ``flux_unit`` (default dimensionless), ``InverseVariance(ivar)``,
    ``mask = ~ss.mask`` (True = bad), ``radial_velocity`` = ``rv`` when finite and non-zero,
    and ``meta`` = ``{"id": ..., <each meta column's value>, "labels": {name: value},
    "label_units": {name: unit}, "medium": ...}``. Reading the list back with
    :func:`spectral_set_from_spectra` gives the set back.
"""
from __future__ import annotations

import logging
import numbers
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from .spectra import MEDIA, SpectralSet

log = logging.getLogger(__name__)

__all__ = ["source_stem", "spectral_set_from_spectra", "spectral_set_to_spectra", "spectrum_class",
           "spectrum_list_class"]

#: Keys (``meta``, then the FITS header ``meta["header"]``) that give a spectrum's id, in order.
ID_KEYS = ("id", "ID", "OBJID", "OBSID", "APOGEE_ID", "OBJ", "OBJECT")
#: slamfw metadata column -> keys of ``meta`` / the FITS header that give it (numeric values only).
META_KEYS = {"ra": ("ra", "RA"), "dec": ("dec", "DEC"), "snr": ("snr", "SNR")}
#: ``meta`` entries that are not per-star metadata columns.
RESERVED_META = frozenset({"header", "labels", "label_units", "medium", *ID_KEYS, *(k for ks in META_KEYS.values()
                                                                                  for k in ks), "rv"})

_INSTALL = "slamfw's specutils support needs the specutils package: pip install specutils"


def _import_specutils():
    try:
        import specutils
    except ImportError as err:
        raise ImportError(f"{_INSTALL} ({err})") from err
    return specutils


def spectrum_class() -> type:
    """specutils' ``Spectrum`` class (``Spectrum1D`` in specutils 1.x); ImportError if missing."""
    specutils = _import_specutils()
    return getattr(specutils, "Spectrum", None) or specutils.Spectrum1D


def spectrum_list_class() -> type:
    """specutils' ``SpectrumList`` class; ImportError if specutils is missing."""
    return _import_specutils().SpectrumList


# ------------------------------------------------------------------------------ from spectra
#: FITS WCS spectral axis types (``CTYPE1``, first four characters): wavelengths in air or vacuum.
_CTYPE_MEDIA = {"AWAV": "air", "WAVE": "vacuum"}


def _medium_said(meta: Mapping) -> str:
    """The medium a spectrum's ``meta["medium"]`` says, else its FITS header's ``CTYPE1`` (``AWAV``:
    air, ``WAVE``: vacuum, per the FITS WCS paper III), else ""."""
    said = str(meta.get("medium", "") or "").strip().lower()
    if said:
        return said
    ctype = _header_get(meta.get("header"), "CTYPE1")
    if not isinstance(ctype, str):
        return ""
    ctype = ctype.strip().upper()             # AWAV, WAVE, or with an algorithm code: WAVE-LOG
    return _CTYPE_MEDIA.get(ctype[:4], "") if len(ctype) == 4 or ctype[4:5] == "-" else ""


def _header_get(header: Any, key: str) -> Any:
    """``header[key]`` or None, for FITS headers with unparsable cards too."""
    if header is None or not hasattr(header, "get"):
        return None
    try:
        return header.get(key)
    except Exception:  # astropy VerifyError on a broken card: treat as missing
        return None


def _lookup(meta: Mapping, keys: Sequence[str], header: bool = True) -> Any:
    """The first value of ``keys`` in ``meta``, then (``header``) in ``meta["header"]``."""
    for key in keys:
        v = meta.get(key)
        if v is not None:
            return v
    if header:
        hdr = meta.get("header")
        for key in keys:
            v = _header_get(hdr, key)
            if v is not None:
                return v
    return None


def _per_row(value: Any, n: int, kind: str) -> np.ndarray | None:
    """``value`` as (n,) values of ``kind`` ("float" or "str"), or None if it does not fit:
    a scalar is repeated, a sequence must have n items."""
    if value is None:
        return None
    if hasattr(value, "unit") and hasattr(value, "value"):          # a Quantity: keep the number
        value = value.value
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    arr = np.asarray(value)
    if arr.ndim == 0:
        arr = np.full(n, arr.item(), dtype=object)
    elif arr.shape != (n,):
        return None
    if kind == "str":
        return np.array([x.decode(errors="replace") if isinstance(x, bytes) else str(x) for x in arr])
    try:
        out = np.array([float(x) for x in arr])
    except (TypeError, ValueError):
        return None
    return out


def _to_angstrom(spectrum: Any, where: str) -> np.ndarray:
    import astropy.units as u

    axis = spectrum.spectral_axis
    unit = getattr(axis, "unit", None)
    try:
        return np.asarray(u.Quantity(axis).to_value(u.AA, equivalencies=u.spectral()), dtype=float)
    except (u.UnitsError, TypeError, ValueError) as err:
        raise DataError(f"{where}: the spectral axis is in {str(unit)!r}, which is not a wavelength, frequency, "
                        f"energy or wavenumber ({err})") from None


def _ivar(spectrum: Any, shape: tuple[int, int], where: str, orient=lambda a: a) -> np.ndarray | None:
    """(n, p) inverse variance from ``spectrum.uncertainty`` in the flux's unit; None without one."""
    import astropy.units as u
    from astropy.nddata import InverseVariance, StdDevUncertainty, VarianceUncertainty

    unc = spectrum.uncertainty
    if unc is None:
        return None
    power = {StdDevUncertainty: 1, VarianceUncertainty: 2, InverseVariance: -2}.get(type(unc))
    if power is None:
        for cls, p in ((StdDevUncertainty, 1), (VarianceUncertainty, 2), (InverseVariance, -2)):
            if isinstance(unc, cls):
                power = p
        if power is None:
            log.warning("%s: uncertainty of kind %s is not understood: ivar 1 at every pixel", where,
                        type(unc).__name__)
            return None
    arr = orient(np.asarray(unc.array, dtype=float))
    flux_unit = getattr(spectrum.flux, "unit", None)
    unc_unit = unc.unit
    if unc_unit is not None and flux_unit is not None:
        target = flux_unit ** power
        if unc_unit != target:
            try:
                arr = (arr * unc_unit).to_value(target)
            except u.UnitsError as err:
                raise DataError(f"{where}: the uncertainty's unit {str(unc_unit)!r} does not match the flux's "
                                f"{str(flux_unit)!r} ({err})") from None
    try:
        arr = np.broadcast_to(arr, shape)
    except ValueError:
        raise DataError(f"{where}: uncertainty of shape {np.shape(unc.array)} for flux of shape {shape}") from None
    ok = np.isfinite(arr) & (arr > 0)
    safe = np.where(ok, arr, 1.0)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        ivar = {1: 1.0 / safe ** 2, 2: 1.0 / safe, -2: safe}[power]
    ivar = np.where(ok & np.isfinite(ivar), ivar, 0.0)
    return ivar


def _good(spectrum: Any, shape: tuple[int, int], where: str, orient=lambda a: a) -> np.ndarray:
    """(n, p) slamfw mask (True = good) from specutils' mask (True / nonzero = BAD)."""
    mask = spectrum.mask
    if mask is None:
        return np.ones(shape, bool)
    bad = orient(np.asarray(mask))
    bad = bad if bad.dtype == bool else (bad != 0)      # an integer bitmask: any bit set = bad
    try:
        bad = np.broadcast_to(bad, shape)
    except ValueError:
        raise DataError(f"{where}: mask of shape {np.shape(mask)} for flux of shape {shape}") from None
    return ~bad                                           # polarity: specutils True = bad, slamfw True = good


def _convert_one(spectrum: Any, where: str) -> dict:
    """The arrays and per-row metadata of one Spectrum (its rows share its grid)."""
    flux = np.asarray(getattr(spectrum.flux, "value", spectrum.flux), dtype=float)
    axis_index = getattr(spectrum, "spectral_axis_index", None)
    if flux.ndim == 2 and axis_index is not None and axis_index % 2 == 0:
        def orient(a: np.ndarray) -> np.ndarray:          # spectral axis first: rows = spectra
            return a.T if np.ndim(a) == 2 else a
    else:
        def orient(a: np.ndarray) -> np.ndarray:
            return a
    flux = orient(flux)
    if flux.ndim == 1:
        flux = flux[None]
    elif flux.ndim != 2:
        raise DataError(f"{where}: flux of shape {flux.shape}: only 1-D spectra, or 2-D (spectra x pixels) "
                        f"sharing one spectral axis, can be read")
    n, p = flux.shape
    wave = _to_angstrom(spectrum, where)
    if wave.shape != (p,):
        raise DataError(f"{where}: {wave.size} spectral-axis values for {p} flux pixels")
    ivar = _ivar(spectrum, (n, p), where, orient)
    no_uncertainty = ivar is None
    if ivar is None:
        ivar = np.ones((n, p))
    good = _good(spectrum, (n, p), where, orient)
    finite = np.isfinite(flux)
    flux, ivar, good = np.where(finite, flux, 0.0), np.where(finite, ivar, 0.0), good & finite
    if p > 1 and np.any(np.diff(wave) < 0):             # decreasing (frequency axis, APOGEE chips): sort
        order = np.argsort(wave, kind="stable")
        wave, flux, ivar, good = wave[order], flux[:, order], ivar[:, order], good[:, order]
    meta = dict(spectrum.meta or {})
    return {"wave": wave, "flux": flux, "ivar": ivar, "good": good, "meta": meta, "n": n,
            "no_uncertainty": no_uncertainty, "rv": _rv(spectrum, meta, n)}


def _rv(spectrum: Any, meta: Mapping, n: int) -> np.ndarray | None:
    rv = _per_row(meta.get("rv"), n, "float")
    if rv is not None:
        return rv
    try:
        import astropy.units as u
        vel = spectrum.radial_velocity
        kms = float(np.asarray(vel.to_value(u.km / u.s))) if vel is not None else 0.0
    except Exception:  # no radial velocity, or an array of them
        return None
    return np.full(n, kms) if np.isfinite(kms) and kms != 0.0 else None


def _auto_ids(parts: list[dict], source: str) -> list[str]:
    base = source_stem(source) or "spectrum"
    ids, k = [], 0
    for part in parts:
        n = part["n"]
        value = _lookup(part["meta"], ID_KEYS)
        row_ids = _per_row(value, n, "str") if value is not None and np.ndim(value) > 0 else None
        if row_ids is None and value is not None and np.ndim(value) == 0 and str(value).strip():
            one = str(value.decode() if isinstance(value, bytes) else value).strip()
            row_ids = np.array([one] if n == 1 else [f"{one}/{r}" for r in range(n)])
        if row_ids is None or not all(str(i).strip() for i in row_ids):
            row_ids = [f"{base}-{k + r}" for r in range(n)]
        ids.extend(str(i).strip() for i in row_ids)
        k += n
    counts: dict[str, int] = {}
    for i in ids:
        counts[i] = counts.get(i, 0) + 1
    return [f"{i}/{row}" if counts[i] > 1 else i for row, i in enumerate(ids)]


def source_stem(source: str) -> str:
    """The file name of ``source`` without its directory and its data-file suffixes."""
    if not source:
        return ""
    name = Path(str(source)).name
    for suffix in (".gz", ".bz2", ".xz", ".fits", ".fit", ".fts", ".ecsv", ".txt", ".dat", ".csv"):
        name = name.removesuffix(suffix)
    return name


def _meta_columns(part: dict) -> dict[str, np.ndarray]:
    meta, n = part["meta"], part["n"]
    out: dict[str, np.ndarray] = {}
    for key, keys in META_KEYS.items():
        col = _per_row(_lookup(meta, keys), n, "float")
        if col is not None:
            out[key] = col
    if part["rv"] is not None:
        out["rv"] = part["rv"]
    for key, value in meta.items():
        if not isinstance(key, str) or key in RESERVED_META or key in out:
            continue
        if isinstance(value, (bool, np.bool_, numbers.Number)) and not isinstance(value, complex):
            out[key] = np.full(n, value)
        elif isinstance(value, (str, bytes)):
            out[key] = _per_row(value, n, "str")
        elif isinstance(value, (list, tuple, np.ndarray)) and np.shape(value) == (n,) and \
                np.asarray(value).dtype.kind in "biufUS":
            out[key] = np.asarray(value)
    return out


def _labels(parts: list[dict], where: str) -> tuple[np.ndarray | None, list[str], list[str]]:
    names: list[str] = []
    units: dict[str, str] = {}
    for part in parts:
        lab = part["meta"].get("labels")
        if isinstance(lab, Mapping):
            names.extend(str(k) for k in lab if str(k) not in names)
            lu = part["meta"].get("label_units")
            if isinstance(lu, Mapping):
                units.update({str(k): str(v) for k, v in lu.items() if str(k) not in units})
    if not names:
        return None, [], []
    rows = []
    for part in parts:
        lab = part["meta"].get("labels")
        lab = lab if isinstance(lab, Mapping) else {}
        cols = []
        for name in names:
            col = _per_row(lab.get(name), part["n"], "float")
            if col is None and lab.get(name) is not None:
                raise DataError(f"{where}: label {name!r} = {lab.get(name)!r} is not a number per spectrum")
            cols.append(col if col is not None else np.full(part["n"], np.nan))
        rows.append(np.column_stack(cols))
    return np.vstack(rows), names, [units.get(n, "") for n in names]


def spectral_set_from_spectra(spectra: Any, ids: Sequence[str] | None = None, medium: str = "",
                              source: str = "") -> SpectralSet:
    """A :class:`SpectralSet` of specutils spectra (see the module docstring for every rule).

    ``spectra``: one ``Spectrum`` (1-D flux, or 2-D flux of several spectra sharing its
    spectral axis) or a sequence of them (a ``SpectrumList``, say), each on its own grid.
    ``ids``: one per star (default: from each spectrum's meta or header). ``medium``: "air",
    "vacuum" or "" (then ``meta["medium"]`` if all spectra agree). ``source``: for messages and
    default ids.
    """
    Spectrum = spectrum_class()
    items = [spectra] if isinstance(spectra, Spectrum) else list(spectra)
    where = f"specutils spectra{' from ' + str(source) if source else ''}"
    if not items:
        raise DataError(f"{where}: no spectra")
    for k, sp in enumerate(items):
        if not isinstance(sp, Spectrum):
            raise DataError(f"{where}: item {k} is a {type(sp).__name__}, not a specutils Spectrum")
    if medium not in MEDIA:
        raise DataError(f"{where}: medium must be one of {MEDIA}, got {medium!r}")
    parts = [_convert_one(sp, f"{where}, spectrum {k}" if len(items) > 1 else where) for k, sp in enumerate(items)]
    n_total = sum(p["n"] for p in parts)
    if ids is None:
        star_ids = _auto_ids(parts, source)
    else:
        star_ids = [str(i) for i in (np.atleast_1d(ids) if np.ndim(ids) == 0 else ids)]
        if len(star_ids) != n_total:
            raise DataError(f"{where}: {len(star_ids)} ids for {n_total} spectra")
    if any(p["no_uncertainty"] for p in parts):
        log.warning("%s: %d spectrum/spectra without a (usable) uncertainty: ivar 1 at every pixel", where,
                    sum(p["no_uncertainty"] for p in parts))
    if not medium:
        said = {_medium_said(p["meta"]) for p in parts}
        medium = said.pop() if len(said) == 1 and next(iter(said)) in MEDIA else ""
    sets, k = [], 0
    for part in parts:
        sets.append(SpectralSet(wave=part["wave"], flux=part["flux"], ivar=part["ivar"], mask=part["good"],
                                ids=star_ids[k:k + part["n"]], meta=_meta_columns(part), source=str(source),
                                medium=medium))
        k += part["n"]
    out = sets[0] if len(sets) == 1 else SpectralSet.stack(sets, source=str(source))
    labels, names, units = _labels(parts, where)
    if labels is None:
        return out
    return SpectralSet(wave=out.wave, flux=out.flux, ivar=out.ivar, ids=out.ids, mask=out.mask, labels=labels,
                       label_names=names, label_units=units, meta=out.meta, source=out.source, medium=out.medium)


# -------------------------------------------------------------------------------- to spectra
def _scalar(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def spectral_set_to_spectra(ss: SpectralSet, flux_unit: Any = None) -> list:
    """One specutils ``Spectrum`` per star of ``ss`` (see the module docstring).

    ``flux_unit``: an astropy unit (or its name) for the flux; default dimensionless
    (a :class:`SpectralSet` carries no flux unit). The mask is inverted: True = bad in specutils.
    """
    Spectrum = spectrum_class()
    import astropy.units as u
    from astropy.nddata import InverseVariance

    unit = u.dimensionless_unscaled if flux_unit is None else u.Unit(flux_unit)
    out = []
    for i in range(ss.n_stars):
        meta: dict[str, Any] = {"id": str(ss.ids[i])}
        meta.update({k: _scalar(v[i]) for k, v in ss.meta.items()})
        if ss.labels is not None:
            meta["labels"] = {n: float(ss.labels[i, j]) for j, n in enumerate(ss.label_names)}
            meta["label_units"] = dict(zip(ss.label_names, ss.label_units))
        if ss.medium:
            meta["medium"] = ss.medium
        kwargs = {}
        rv = meta.get("rv")
        if isinstance(rv, numbers.Real) and np.isfinite(rv) and rv != 0:
            kwargs["radial_velocity"] = float(rv) * u.km / u.s
        out.append(Spectrum(flux=np.array(ss.flux[i], dtype=float) * unit,
                            spectral_axis=np.array(ss.star_wave(i), dtype=float) * u.AA,
                            uncertainty=InverseVariance(np.array(ss.ivar[i], dtype=float)),
                            mask=~np.asarray(ss.mask[i], dtype=bool),   # polarity: specutils True = bad
                            meta=meta, **kwargs))
    return out
