"""Reader ``miles``: the MILES stellar library, one FITS file per star.

A directory of ``MILES_res2.50_star_mNNNNV.fits`` (1-D flux, linear air wavelengths from
CRVAL1/CDELT1/CRPIX1; MILES measures wavelengths in air, and the reader says so) plus ``MILES_params.db`` (``ID Teff logg [Fe/H]``, missing = 99999/9999)
or, failing that, ``paramsMILES_v9.1.txt``. Labels ``Teff`` (K), ``logg`` (dex), ``FeH`` (dex);
ids ``mNNNN``. MILES has no error arrays: ``assumed_snr`` sets ivar = (snr / flux)^2 (pixels with
flux <= 0 get ivar 0).
"""
from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
from astropy.io import fits
from pydantic import Field

from slamfw import DataError, InputPath, Params, Reader, SpectralSet, current_executor, hookimpl, name_some

from ._select import Where, where_mask

SLAMFW_PLUGIN_API = (1, 11)

log = logging.getLogger(__name__)

LABELS = ["Teff", "logg", "FeH"]
UNITS = ["K", "dex", "dex"]
_FILE = re.compile(r"(m\d{4})V?\.fits$", re.IGNORECASE)


def _miles_id(token: str) -> str | None:
    """'0272' -> 'm0272'; the DB's typo '022.' means 0221."""
    token = token.strip()
    if token == "022.":
        return "m0221"
    return f"m{int(token):04d}" if token.isdigit() else None


def read_params_db(path: Path) -> dict[str, tuple[float, float, float]]:
    out = {}
    for line in path.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split()
        if len(parts) < 4 or (sid := _miles_id(parts[0])) is None:
            continue
        t, g, z = (float(x) for x in parts[1:4])
        out[sid] = (np.nan if t >= 99999 else t, np.nan if g >= 9999 else g, np.nan if z >= 9999 else z)
    return out


def read_params_txt(path: Path) -> dict[str, tuple[float, float, float]]:
    """The original fixed-width MILES v9.1 table: MILES id in columns 22-27, Teff 50-58,
    log g 58-66, [Fe/H] 66-74; ``--`` marks a missing value."""
    def num(text: str) -> float:
        text = text.strip()
        return np.nan if text in ("", "--") else float(text)

    out = {}
    for line in path.read_text().splitlines()[3:]:
        if len(line) < 70 or (sid := _miles_id(line[22:27])) is None:
            continue
        try:
            out[sid] = (num(line[50:58]), num(line[58:66]), num(line[66:74]))
        except ValueError:
            log.warning("miles: cannot parse the parameters of %s in %s", sid, path.name)
    return out


def _read_fits(path: str) -> tuple[np.ndarray, np.ndarray]:
    with fits.open(path, memmap=False) as hdul:
        hdr, data = hdul[0].header, np.asarray(hdul[0].data, dtype=float)
    if data.ndim != 1:
        raise DataError(f"{path}: expected a 1-D spectrum in the primary HDU, got shape {data.shape}")
    try:
        crval, cdelt, crpix = hdr["CRVAL1"], hdr.get("CDELT1", hdr.get("CD1_1")), hdr.get("CRPIX1", 1.0)
    except KeyError:
        raise DataError(f"{path}: no CRVAL1/CDELT1 wavelength keywords in the header") from None
    wave = crval + cdelt * (np.arange(data.size) + 1 - crpix)
    return wave, data


def _try_read_fits(path: str) -> tuple[np.ndarray | None, np.ndarray | None, str | None]:
    """(wave, flux, None), or (None, None, why) for a file that cannot be read: the reader
    rejects it (``rejected_``, ``rejected.csv``) and goes on with the others."""
    try:
        wave, flux = _read_fits(path)
        return wave, flux, None
    except DataError as err:
        return None, None, str(err)
    except (OSError, ValueError, EOFError, TypeError, IndexError, KeyError) as err:
        return None, None, f"not a readable FITS spectrum ({type(err).__name__}: {err})"


class MilesReader(Reader):
    """The MILES library (Sánchez-Blázquez et al. 2006; Cenarro et al. 2007 parameters)."""

    class Params(Params):
        path: InputPath = Field(..., description="directory with the MILES FITS files and parameter table")
        where: Where = Field(default_factory=dict, description="label ranges to keep")
        assumed_snr: float = Field(100.0, gt=0, description="per-pixel S/N used to set ivar")

    def read(self) -> SpectralSet:
        root = Path(self.path)
        if not root.is_dir():
            raise DataError(f"miles: data directory {self.path!r} does not exist")
        files = sorted(p for p in root.iterdir() if _FILE.search(p.name))
        if not files:
            raise DataError(f"miles: no MILES FITS files (MILES_*_mNNNNV.fits) in {self.path!r}")
        if (root / "MILES_params.db").is_file():
            params = read_params_db(root / "MILES_params.db")
        elif (root / "paramsMILES_v9.1.txt").is_file():
            params = read_params_txt(root / "paramsMILES_v9.1.txt")
        else:
            raise DataError(f"miles: no MILES_params.db or paramsMILES_v9.1.txt in {self.path!r}")
        ids = [_FILE.search(p.name).group(1).lower() for p in files]
        no_entry = [i for i in ids if i not in params]
        if no_entry:
            log.info("miles: %d file(s) have no entry in the parameter table, dropped: %s",
                     len(no_entry), name_some(no_entry))
        labels = np.array([params.get(i, (np.nan,) * 3) for i in ids], dtype=float)
        keep = np.array([i in params for i in ids])
        if self.where:
            keep &= where_mask(labels, LABELS, self.where, "miles")
        sel = np.flatnonzero(keep)
        if sel.size == 0:
            raise DataError(f"miles: no star in {self.path!r} passes the selection {self.where}")
        spectra = current_executor().map(_try_read_fits, [(str(files[i]),) for i in sel], desc="miles: reading",
                                         progress=False)
        self.rejected_ = []
        ok = []
        for k, (w, f, reason) in enumerate(spectra):
            first = next((spectra[j] for j in ok), None)
            if reason is None and first is not None and (w.size != first[0].size or not np.allclose(w, first[0])):
                reason = f"its wavelength grid differs from {files[sel[ok[0]]].name}'s"
            if reason is not None:
                log.warning("miles: rejected %s: %s", files[sel[k]].name, reason)
                self.rejected_.append((str(files[sel[k]]), reason))
            else:
                ok.append(k)
        if not ok:
            raise DataError(f"miles: none of the {sel.size} MILES files in {self.path!r} could be read "
                            f"({self.rejected_[0][1]})")
        sel, spectra = sel[ok], [spectra[k] for k in ok]
        wave = spectra[0][0]
        flux = np.empty((sel.size, wave.size))
        for k, (_, f, _) in enumerate(spectra):
            flux[k] = f
        finite = np.isfinite(flux) & (flux > 0)
        ivar = np.where(finite, (self.assumed_snr / np.where(finite, flux, 1.0)) ** 2, 0.0)
        ss = SpectralSet(wave=wave, flux=np.where(np.isfinite(flux), flux, 0.0), ivar=ivar,
                         ids=[ids[i] for i in sel], mask=finite, labels=labels[sel], label_names=LABELS,
                         label_units=UNITS, meta={"snr": np.full(sel.size, self.assumed_snr)}, source=self.path,
                         medium="air")
        log.info("miles: read %d stars from %s", ss.n_stars, self.path)
        return ss


@hookimpl
def slamfw_register_readers(register):
    register("miles", MilesReader)
