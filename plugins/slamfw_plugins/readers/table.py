"""Reader ``table``: any survey, as one FITS, ECSV or npz file.

Layout: ``wave`` (P,) (a table's ``wave`` may also be a per-row (N, P) column with identical
rows), ``flux`` and ``ivar`` (N, P), optional ``mask`` (N, P; True/nonzero = good), optional
``id``, optional ``snr``/``rv``/``ra``/``dec`` (N,), and label columns (N,). By default every
other 1-D numeric column is a label; ``labels`` names them explicitly.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from pydantic import Field

from slamfw import KNOWN_META, DataError, InputPath, Params, Reader, SpectralSet, hookimpl

from ._select import Where, where_mask

SLAMFW_PLUGIN_API = (1, 0)

log = logging.getLogger(__name__)

_RESERVED = {"wave", "flux", "ivar", "mask", "id", "ids"}


def _load_columns(path: Path) -> tuple[dict[str, np.ndarray], dict]:
    suffix = "".join(path.suffixes[-2:]).lower() if path.suffix.lower() == ".gz" else path.suffix.lower()
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}, {}
    from astropy.table import Table
    fmt = {".fits": "fits", ".fits.gz": "fits", ".fit": "fits", ".ecsv": "ascii.ecsv"}.get(suffix)
    if fmt is None:
        raise DataError(f"table: {str(path)!r}: use a .fits, .ecsv or .npz file")
    t = Table.read(path, format=fmt)
    cols = {name: np.asarray(t[name]) for name in t.colnames}
    units = {name: str(t[name].unit) for name in t.colnames if t[name].unit is not None}
    if "wave" not in cols and "wave" in t.meta:
        cols["wave"] = np.asarray(t.meta["wave"], dtype=float)
    return cols, units


class TableReader(Reader):
    """Spectra and labels from one FITS/ECSV/npz file."""

    class Params(Params):
        path: InputPath = Field(..., description="the .fits, .ecsv or .npz file")
        labels: list[str] | None = Field(None, description="label columns (default: all other 1-D numeric columns)")
        where: Where = Field(default_factory=dict, description="label ranges to keep")

    def read(self) -> SpectralSet:
        path = Path(self.path)
        if not path.is_file():
            raise DataError(f"table: file {self.path!r} does not exist")
        try:
            cols, units = _load_columns(path)
        except DataError:
            raise
        except Exception as err:
            raise DataError(f"table: cannot read {self.path!r}: {type(err).__name__}: {err}") from None
        for key in ("wave", "flux", "ivar"):
            if key not in cols:
                raise DataError(f"table: {self.path!r} has no {key!r} array/column (has {sorted(cols)})")
        flux = np.atleast_2d(np.asarray(cols["flux"], dtype=float))
        n = flux.shape[0]
        wave = np.asarray(cols["wave"], dtype=float)
        if wave.ndim == 2:
            if not np.allclose(wave, wave[:1]):
                raise DataError(f"table: {self.path!r}: rows have different wavelength grids; "
                                f"resample them to one grid first")
            wave = wave[0]
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
                            f"good pixel(s), first at {wave[j]:.2f} A; set ivar 0 or mask False there")
        neg = (ivar < 0) | ~np.isfinite(ivar)
        if neg.any():
            i, j = np.argwhere(neg)[0]
            raise DataError(f"table: star {str(ids[i])!r} in {self.path!r} has ivar {float(ivar[i, j])!r} < 0 or not finite "
                            f"at {wave[j]:.2f} A ({int(neg[i].sum())} pixel(s)); ivar must be >= 0")
        finite = np.isfinite(flux)
        flux, ivar, mask = np.where(finite, flux, 0.0), np.where(finite, ivar, 0.0), mask & finite
        one_d = {k: np.asarray(v) for k, v in cols.items()
                 if k not in _RESERVED and np.ndim(v) == 1 and np.asarray(v).shape[0] == n}
        meta = {k: one_d[k].astype(float) for k in KNOWN_META if k in one_d}
        if self.labels is not None:
            missing = [k for k in self.labels if k not in one_d]
            if missing:
                raise DataError(f"table: {self.path!r} has no label column(s) {missing}")
            names = list(self.labels)
        else:
            names = [k for k, v in one_d.items() if k not in meta and np.issubdtype(v.dtype, np.number)]
        labels = np.column_stack([one_d[k].astype(float) for k in names]) if names else None
        keep = where_mask(labels, names, self.where, "table") if (self.where and labels is not None) else np.ones(n, bool)
        ss = SpectralSet(wave=wave, flux=flux, ivar=ivar, ids=ids, mask=mask, labels=labels,
                         label_names=names if labels is not None else [],
                         label_units=[units.get(k, "") for k in names] if labels is not None else [],
                         meta=meta, source=self.path)
        return ss.subset(keep) if not keep.all() else ss


@hookimpl
def slamfw_register_readers(register):
    register("table", TableReader)
