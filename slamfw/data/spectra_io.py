"""The spectra table format: any :class:`SpectralSet` as one FITS, ECSV or npz file.

This is the layout the ``table`` reader reads (documented in ``docs/table-format.md``) and what
``slamfw convert`` writes, so that spectra from any reader can be inspected and reused:

- ``id`` (N,) str; ``flux``, ``ivar`` (N, P) float; ``mask`` (N, P) bool, True = good;
- ``wave`` (N, P) float with a unit (Angstrom when written here): one row per star, equal rows
  when the set has one grid;
- one float column per label, with its unit (``K``, ``dex``); numeric metadata columns
  (``snr``, ``rv`` in km/s, ``ra``, ``dec`` in deg, ...);
- table metadata: ``MEDIUM`` ("air" / "vacuum"), ``SOURCE``, ``LABELS`` (the label columns, in
  order) and ``SLAMFW`` (the writing version).

npz files hold the same arrays under the same names, with ``wave_unit``, ``medium``,
``label_names`` and ``label_units`` as 0-d/1-d string arrays.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from .._version import __version__
from ..errors import DataError
from ..execution.store import atomic_path
from .spectra import META_UNITS, SpectralSet

log = logging.getLogger(__name__)

#: Suffixes of the spectra table format, and the astropy format of each (npz: numpy).
TABLE_FORMATS = {".fits": "fits", ".fits.gz": "fits", ".ecsv": "ascii.ecsv", ".npz": "npz"}


def table_suffix(path: str | Path) -> str:
    """The format suffix of ``path`` (``.fits.gz`` counts as one), or a DataError."""
    name = Path(path).name.lower()
    for suffix in sorted(TABLE_FORMATS, key=len, reverse=True):
        if name.endswith(suffix):
            return suffix
    raise DataError(f"{str(path)!r}: spectra tables are .fits, .fits.gz, .ecsv or .npz files")


def write_spectra_table(ss: SpectralSet, path: str | Path) -> Path:
    """Write ``ss`` in the spectra table format (see the module docstring), atomically."""
    suffix = table_suffix(path)
    path = Path(path)
    wave = np.broadcast_to(ss.wave, ss.flux.shape).astype(float)
    numeric_meta = {k: np.asarray(v, float) for k, v in ss.meta.items()
                    if np.asarray(v).dtype.kind in "fiub" and k not in ("id", *ss.label_names)}
    label_names = list(ss.label_names) if ss.labels is not None else []
    if suffix == ".npz":
        arrays = {"id": ss.ids.astype(str), "wave": wave, "flux": ss.flux, "ivar": ss.ivar, "mask": ss.mask,
                  "wave_unit": np.array("Angstrom"), "medium": np.array(ss.medium),
                  "label_names": np.array(label_names, dtype=str),
                  "label_units": np.array(list(ss.label_units)[:len(label_names)], dtype=str), **numeric_meta}
        arrays.update({n: ss.labels[:, j] for j, n in enumerate(label_names)})
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)
        return path
    import astropy.units as u
    from astropy.table import Table

    t = Table()
    t["id"] = ss.ids.astype(str)
    t["wave"] = wave * u.AA
    t["flux"] = ss.flux
    t["ivar"] = ss.ivar
    t["mask"] = ss.mask
    for j, name in enumerate(label_names):
        unit = ss.label_units[j] if j < len(ss.label_units) else ""
        t[name] = ss.labels[:, j]
        if unit:
            t[name].unit = u.Unit(unit, parse_strict="silent")
    for k, v in numeric_meta.items():
        t[k] = v
        if k in META_UNITS:
            t[k].unit = u.Unit(META_UNITS[k])
    t.meta.update({"MEDIUM": ss.medium, "SOURCE": str(ss.source)[:60], "LABELS": ",".join(label_names),
                   "SLAMFW": __version__})
    with atomic_path(path) as tmp:
        if TABLE_FORMATS[suffix] == "fits":      # keep units FITS does not know (dex), as the catalogue does
            from astropy.io import fits

            from .catalog import table_hdu
            fits.HDUList([fits.PrimaryHDU(), table_hdu(t)]).writeto(tmp, overwrite=True)
        else:
            t.write(tmp, format=TABLE_FORMATS[suffix], overwrite=True)
    log.info("spectra written: %s (%d stars x %d pixels)", path, ss.n_stars, ss.n_pixels)
    return path
