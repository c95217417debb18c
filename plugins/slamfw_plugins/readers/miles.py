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


def _num(text: str) -> float:
    """A parameter table's value; ``--`` or nothing: missing (NaN); a ValueError for other text."""
    text = text.strip()
    return np.nan if text in ("", "--") else float(text)


def _lines(path: Path) -> list[str]:
    """The lines of a parameter table (a byte that is not UTF-8, in a star's name or a comment,
    read as U+FFFD: the values are ASCII), or a DataError naming it when it cannot be read."""
    try:
        return path.read_bytes().decode("utf-8", errors="replace").splitlines()
    except OSError as err:
        raise DataError(f"miles: cannot read the parameter table {str(path)!r} ({err})") from None


def _parsed(path: Path, number: int, sid: str, fields: list[str]) -> tuple[float, float, float] | None:
    """(Teff, log g, [Fe/H]) of star ``sid`` on line ``number`` of ``path``, or None, with a
    warning naming the line and the value, when one is not a number (the star is then left out)."""
    try:
        t, g, z = (_num(x) for x in fields)
    except ValueError as err:
        log.warning("miles: %s, line %d: cannot parse the parameters of %s (%s): the star is left out",
                    path.name, number, sid, err)
        return None
    return t, g, z


def read_params_db(path: Path) -> dict[str, tuple[float, float, float]]:
    """``MILES_params.db``: ``ID Teff logg [Fe/H]`` per line; 99999 (Teff), 9999 (the others) or
    ``--`` mark a missing value."""
    out = {}
    for number, line in enumerate(_lines(path), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split()
        if len(parts) < 4 or (sid := _miles_id(parts[0])) is None:
            continue
        if (values := _parsed(path, number, sid, parts[1:4])) is not None:
            t, g, z = values
            out[sid] = (np.nan if t >= 99999 else t, np.nan if g >= 9999 else g, np.nan if z >= 9999 else z)
    return out


def read_params_txt(path: Path) -> dict[str, tuple[float, float, float]]:
    """The original fixed-width MILES v9.1 table: MILES id in columns 22-27, Teff 50-58,
    log g 58-66, [Fe/H] 66-74; ``--`` marks a missing value."""
    out = {}
    for number, line in enumerate(_lines(path)[3:], start=4):
        if len(line) < 70 or (sid := _miles_id(line[22:27])) is None:
            continue
        if (values := _parsed(path, number, sid, [line[50:58], line[58:66], line[66:74]])) is not None:
            out[sid] = values
    return out


def _read_fits(path: str) -> tuple[np.ndarray, np.ndarray]:
    with fits.open(path, memmap=False) as hdul:
        hdr, data = hdul[0].header, np.asarray(hdul[0].data, dtype=float)
    if data.ndim != 1:
        raise DataError(f"{path}: expected a 1-D spectrum in the primary HDU, got shape {data.shape}")
    step = "CDELT1" if "CDELT1" in hdr else "CD1_1"
    for key, name in (("CRVAL1", "CRVAL1"), (step, "CDELT1 (nor CD1_1)")):
        if key not in hdr:
            raise DataError(f"{path}: no {name} wavelength keyword in the header")
    values = {key: hdr.get(key, 1.0) for key in ("CRVAL1", step, "CRPIX1")}
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
            raise DataError(f"{path}: the wavelength keyword {key} is {value!r}, not a finite number")
    wave = values["CRVAL1"] + values[step] * (np.arange(data.size) + 1 - values["CRPIX1"])
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


def _common_grid(waves: list[np.ndarray]) -> tuple[np.ndarray | None, int]:
    """The wavelength grid most of ``waves`` share (the first read of them; among equally common
    grids, the one read first) and how many share it; (None, 0) for none. A file on another grid is
    the odd one, even when it is read first."""
    grids: list[list] = []                          # [grid, how many], in the order first read
    for w in waves:
        same = next((g for g in grids if g[0].size == w.size and np.allclose(g[0], w)), None)
        if same is None:
            grids.append([w, 1])
        else:
            same[1] += 1
    return tuple(max(grids, key=lambda g: g[1])) if grids else (None, 0)


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
        grid, sharing = _common_grid([w for w, _, reason in spectra if reason is None])
        example = next((files[sel[j]].name for j, s in enumerate(spectra) if s[0] is grid), None)
        self.rejected_ = []
        ok = []
        for k, (w, f, reason) in enumerate(spectra):
            if reason is None and (w.size != grid.size or not np.allclose(w, grid)):
                reason = (f"its wavelength grid differs from that of the {sharing} files that share one "
                          f"(e.g. {example})")
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
