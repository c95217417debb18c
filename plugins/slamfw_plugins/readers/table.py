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
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from slamfw import KNOWN_META, DataError, InputPath, Params, Reader, SpectralSet, hookimpl

from ._select import Where, where_mask

SLAMFW_PLUGIN_API = (1, 2)

log = logging.getLogger(__name__)

_RESERVED = {"wave", "flux", "ivar", "mask", "id", "ids"}


def _load_columns(path: Path) -> tuple[dict[str, np.ndarray], dict, dict]:
    """(columns, units, file metadata) of a table file."""
    suffix = "".join(path.suffixes[-2:]).lower() if path.suffix.lower() == ".gz" else path.suffix.lower()
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as npz:
            cols = {k: npz[k] for k in npz.files}
        meta = {key.upper(): cols.pop(key) for key in ("wave_unit", "medium", "label_names", "label_units")
                if key in cols}
        units = {"wave": str(meta.pop("WAVE_UNIT"))} if "WAVE_UNIT" in meta else {}
        if "LABEL_NAMES" in meta and "LABEL_UNITS" in meta:
            units.update({str(n): str(un) for n, un in zip(np.atleast_1d(meta["LABEL_NAMES"]),
                                                           np.atleast_1d(meta.pop("LABEL_UNITS"))) if str(un)})
        if "MEDIUM" in meta:
            meta["MEDIUM"] = str(meta["MEDIUM"])
        if "LABEL_NAMES" in meta:
            meta["LABELS"] = ",".join(str(x) for x in np.atleast_1d(meta.pop("LABEL_NAMES")))
        return cols, units, meta
    from astropy.table import Table
    fmt = {".fits": "fits", ".fits.gz": "fits", ".fit": "fits", ".ecsv": "ascii.ecsv"}.get(suffix)
    if fmt is None:
        raise DataError(f"table: {str(path)!r}: use a .fits, .ecsv or .npz file")
    if fmt == "ascii.ecsv":   # multidimensional columns are long fields
        import csv
        csv.field_size_limit(max(csv.field_size_limit(), 2 ** 31 - 1))
    t = Table.read(path, format=fmt)
    cols = {name: np.asarray(t[name]) for name in t.colnames}
    units = {name: str(t[name].unit) for name in t.colnames if t[name].unit is not None}
    if "wave" not in cols and "wave" in t.meta:
        cols["wave"] = np.asarray(t.meta["wave"], dtype=float)
    return cols, units, {str(k).upper(): v for k, v in t.meta.items()}


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
        path = Path(self.path)
        if not path.is_file():
            raise DataError(f"table: file {self.path!r} does not exist")
        try:
            cols, units, file_meta = _load_columns(path)
        except DataError:
            raise
        except Exception as err:
            raise DataError(f"table: cannot read {self.path!r}: {type(err).__name__}: {err}") from None
        for key in ("wave", "flux", "ivar"):
            if key not in cols:
                raise DataError(f"table: {self.path!r} has no {key!r} array/column (has {sorted(cols)})")
        flux = np.atleast_2d(np.asarray(cols["flux"], dtype=float))
        n = flux.shape[0]
        wave = _angstrom(np.asarray(cols["wave"], dtype=float), units.get("wave", self.wave_unit), self.path)
        if wave.ndim == 2 and wave.shape[0] == n and np.array_equal(wave, np.broadcast_to(wave[:1], wave.shape)):
            wave = wave[0]                         # one grid written per row
        medium = str(file_meta.get("MEDIUM", "") or self.medium).strip().lower()
        ivar = np.atleast_2d(np.asarray(cols["ivar"], dtype=float))
        mask = np.atleast_2d(np.asarray(cols["mask"]).astype(bool)) if "mask" in cols else np.ones_like(flux, bool)
        ids_key = "id" if "id" in cols else ("ids" if "ids" in cols else None)
        ids = (np.asarray(cols[ids_key]).astype(str) if ids_key else np.array([f"{path.stem}-{i}" for i in range(n)]))
        if ivar.shape != flux.shape or mask.shape != flux.shape:
            raise DataError(f"table: {self.path!r}: flux {flux.shape}, ivar {ivar.shape} and mask {mask.shape} differ")
        # non-finite flux is acceptable only where the pixel is already bad
        bad = ~np.isfinite(flux) & mask & (ivar > 0)
        if bad.any():
            i, j = np.argwhere(bad)[0]
            raise DataError(f"table: star {str(ids[i])!r} in {self.path!r} has NaN/inf flux at {int(bad[i].sum())} "
                            f"good pixel(s), first at {np.broadcast_to(wave, flux.shape)[i, j]:.2f} A; set ivar 0 or mask False there")
        neg = (ivar < 0) | ~np.isfinite(ivar)
        if neg.any():
            i, j = np.argwhere(neg)[0]
            raise DataError(f"table: star {str(ids[i])!r} in {self.path!r} has ivar {float(ivar[i, j])!r} < 0 or not finite "
                            f"at {np.broadcast_to(wave, flux.shape)[i, j]:.2f} A ({int(neg[i].sum())} pixel(s)); ivar must be >= 0")
        finite = np.isfinite(flux)
        flux, ivar, mask = np.where(finite, flux, 0.0), np.where(finite, ivar, 0.0), mask & finite
        one_d = {k: np.asarray(v) for k, v in cols.items()
                 if k not in _RESERVED and np.ndim(v) == 1 and np.asarray(v).shape[0] == n}
        meta = {k: one_d[k].astype(float) for k in KNOWN_META if k in one_d}
        declared = self.labels
        if declared is None and "LABELS" in file_meta:
            declared = [x for x in str(file_meta["LABELS"]).split(",") if x]
        if declared is not None:
            missing = [k for k in declared if k not in one_d]
            if missing:
                raise DataError(f"table: {self.path!r} has no label column(s) {missing}")
            names = list(declared)
        else:
            names = [k for k, v in one_d.items() if k not in meta and np.issubdtype(v.dtype, np.number)]
        labels = np.column_stack([one_d[k].astype(float) for k in names]) if names else None
        if medium not in ("", "air", "vacuum"):
            raise DataError(f"table: {self.path!r}: MEDIUM {medium!r} is neither 'air' nor 'vacuum'")
        keep = where_mask(labels, names, self.where, "table") if (self.where and labels is not None) else np.ones(n, bool)
        ss = SpectralSet(wave=wave, flux=flux, ivar=ivar, ids=ids, mask=mask, labels=labels,
                         label_names=names if labels is not None else [],
                         label_units=[units.get(k, "") for k in names] if labels is not None else [],
                         meta=meta, source=self.path, medium=medium)
        return ss.subset(keep) if not keep.all() else ss


@hookimpl
def slamfw_register_readers(register):
    register("table", TableReader)
