"""The one container that carries spectra through every step: :class:`SpectralSet`."""
from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ..errors import DataError, name_some, repeated

log = logging.getLogger(__name__)

#: Per-star metadata columns that slamfw understands (others are carried along untouched).
KNOWN_META = ("snr", "rv", "ra", "dec")
#: The unit of each of them that has one (astropy's spelling): ``rv`` in km/s, positions in degrees.
META_UNITS = {"rv": "km / s", "ra": "deg", "dec": "deg"}


def real_array(value: object, what: str, src: str = "") -> np.ndarray:
    """``value`` as a float array (no copy when it is one), or a :class:`DataError` naming ``what``
    when it holds no real numbers: numpy would drop a complex array's imaginary part with only a
    warning, and read strings of digits as numbers."""
    arr = np.asarray(value)
    if arr.dtype.kind in "biuf":
        return arr.astype(float, copy=False)
    if arr.dtype.kind == "O" and not any(isinstance(x, (str, bytes)) for x in arr.flat):
        try:
            return arr.astype(float)
        except (TypeError, ValueError):
            pass
    kind = {"c": "complex numbers", "U": "text", "S": "text", "O": "text or other objects", "M": "dates",
            "m": "time spans"}.get(arr.dtype.kind, "values")
    raise DataError(f"{what}{src} holds {kind} (dtype {arr.dtype}), not real numbers")
#: Wavelength media a reader may declare ("" = unknown: never converted).
MEDIA = ("", "air", "vacuum")


@dataclass
class SpectralSet:
    """Spectra of N stars on one wavelength grid of P pixels, or on a grid per star, with optional labels.

    Attributes
    ----------
    wave : (P,) or (N, P) float array
        Wavelength in Angstrom, strictly increasing: one grid for all stars, or one row per star
        (raw survey spectra: LAMOST, APOGEE visits). Stars with fewer pixels than P are padded at
        the end with pixels of ivar 0 whose wavelengths continue the grid (see :meth:`stack`).
        Pre-processing resamples every star onto one common grid.
    flux : (N, P) float array
        Flux (raw or normalised); finite everywhere (bad pixels carry ivar 0).
    ivar : (N, P) float array
        Inverse variance of ``flux``, >= 0; 0 marks a pixel without information.
    mask : (N, P) bool array
        True for good pixels. Bad pixels get zero weight everywhere downstream.
    ids : (N,) str array
        Star identifiers.
    labels : (N, L) float array or None
        Stellar labels in physical units; NaN where a star's label is unknown.
    label_names : list of L str
    label_units : list of L str
    meta : dict of (N,) arrays
        Per-star metadata such as ``snr``, ``rv`` (km/s), ``ra``, ``dec`` (deg).
    source : str
        Where the spectra came from (for messages).
    medium : str
        ``"air"`` or ``"vacuum"``: the medium of the wavelengths, as the reader declares it
        (``""`` unknown). Pre-processing converts a survey to the training set's medium.

    The set validates itself once, on creation, and raises :class:`DataError`
    naming the star and the problem.
    """

    wave: np.ndarray
    flux: np.ndarray
    ivar: np.ndarray
    ids: Sequence[str] | np.ndarray
    mask: np.ndarray | None = None
    labels: np.ndarray | None = None
    label_names: list[str] = field(default_factory=list)
    label_units: list[str] = field(default_factory=list)
    meta: dict[str, np.ndarray] = field(default_factory=dict)
    source: str = ""
    medium: str = ""

    def __post_init__(self) -> None:
        src = f" in {self.source}" if self.source else ""
        self.wave = real_array(self.wave, "the wavelength array", src)
        self.flux = np.atleast_2d(real_array(self.flux, "flux", src))
        self.ivar = np.atleast_2d(real_array(self.ivar, "ivar", src))
        self.ids = np.asarray([str(i) for i in self.ids])
        if self.medium not in MEDIA:
            raise DataError(f"wavelength medium{src} must be one of {MEDIA}, got {self.medium!r}")
        n, p = self.flux.shape
        if self.wave.ndim not in (1, 2):
            raise DataError(f"wavelength array{src} must be 1-D (one grid) or 2-D (a grid per star), "
                            f"got shape {self.wave.shape}")
        if self.wave.shape[-1] != p:
            raise DataError(f"flux{src} has {p} pixels but the wavelength grid has {self.wave.shape[-1]}")
        if self.wave.ndim == 2 and self.wave.shape[0] != n:
            raise DataError(f"{self.wave.shape[0]} wavelength rows{src} for {n} spectra")
        if self.ivar.shape != (n, p):
            raise DataError(f"ivar{src} has shape {self.ivar.shape}, flux has {(n, p)}")
        if self.ids.shape != (n,):
            raise DataError(f"{self.ids.size} star ids{src} for {n} spectra")
        if n and len(set(self.ids.tolist())) != n:
            raise DataError(f"duplicate star ids{src}: {name_some(repeated(self.ids), 5, quoted=True)}")
        rows = np.atleast_2d(self.wave)
        if not np.all(np.isfinite(rows)):
            r, i = np.argwhere(~np.isfinite(rows))[0]
            who = f" of star {str(self.ids[r])!r}" if self.wave.ndim == 2 else ""
            raise DataError(f"the wavelength grid{who}{src} has {int((~np.isfinite(rows[r])).sum())} value(s) that "
                            f"are not finite, the first at pixel {i} ({float(rows[r, i])}); a grid padded to a common "
                            f"length needs increasing wavelengths there too, with ivar 0")
        if p > 1 and not np.all(np.diff(rows, axis=1) > 0):
            r, i = np.argwhere(np.diff(rows, axis=1) <= 0)[0]
            who = f" of star {str(self.ids[r])!r}" if self.wave.ndim == 2 else ""
            raise DataError(f"wavelengths{who}{src} must increase strictly (pixel {i + 1}: "
                            f"{float(rows[r, i + 1])!r} after {float(rows[r, i])!r})")
        self.mask = (np.ones((n, p), bool) if self.mask is None
                     else np.atleast_2d(np.asarray(self.mask, dtype=bool)))
        if self.mask.shape != (n, p):
            raise DataError(f"mask{src} has shape {self.mask.shape}, flux has {(n, p)}")
        self._check_star_values(src)
        self._check_labels(n, src)
        meta = {}
        for key, val in dict(self.meta).items():
            arr = np.asarray(val)
            if arr.shape != (n,):
                raise DataError(f"metadata column {key!r}{src} has shape {arr.shape}, expected ({n},)")
            meta[key] = arr
        self.meta = meta

    def _check_star_values(self, src: str) -> None:
        bad_flux = ~np.isfinite(self.flux)
        if bad_flux.any():
            i, j = np.argwhere(bad_flux)[0]
            count = int(bad_flux[i].sum())
            raise DataError(
                f"star {str(self.ids[i])!r}{src}: flux is not finite (NaN or inf) at {count} pixel(s), "
                f"first at {self.star_wave(i)[j]:.2f} A. Give such pixels ivar 0 and a finite flux, "
                f"or mask them in the reader.")
        bad_ivar = ~np.isfinite(self.ivar) | (self.ivar < 0)
        if bad_ivar.any():
            i, j = np.argwhere(bad_ivar)[0]
            raise DataError(
                f"star {str(self.ids[i])!r}{src}: ivar must be finite and >= 0, got {float(self.ivar[i, j])!r} "
                f"at {self.star_wave(i)[j]:.2f} A ({int(bad_ivar[i].sum())} such pixel(s)).")

    def _check_labels(self, n: int, src: str) -> None:
        if self.labels is None:
            return
        self.labels = np.atleast_2d(real_array(self.labels, "the label array", src))
        if self.labels.shape[0] != n:
            raise DataError(f"{self.labels.shape[0]} label rows{src} for {n} spectra")
        n_lab = self.labels.shape[1]
        if len(self.label_names) != n_lab:
            raise DataError(f"{n_lab} label columns{src} but {len(self.label_names)} label names")
        self.label_names = list(self.label_names)
        self.label_units = list(self.label_units) or [""] * n_lab
        if len(self.label_units) != n_lab:
            raise DataError(f"{n_lab} label columns{src} but {len(self.label_units)} label units")
        if np.isinf(self.labels).any():
            i, j = np.argwhere(np.isinf(self.labels))[0]
            raise DataError(f"star {str(self.ids[i])!r}{src}: label {self.label_names[j]} is infinite")

    # ------------------------------------------------------------------ accessors
    @property
    def n_stars(self) -> int:
        return self.flux.shape[0]

    @property
    def n_pixels(self) -> int:
        return self.wave.shape[-1]

    @property
    def per_star_grid(self) -> bool:
        """True when each star has its own wavelength row (``wave`` is (N, P))."""
        return self.wave.ndim == 2

    def star_wave(self, i: int) -> np.ndarray:
        """(P,) the wavelengths of star ``i``."""
        return self.wave[i] if self.wave.ndim == 2 else self.wave

    def wave_range(self) -> tuple[float, float]:
        """The smallest and largest wavelength of any good pixel (Angstrom); the whole grid when
        no pixel is good."""
        w = np.broadcast_to(self.wave, self.flux.shape)
        good = self.weight_ivar > 0
        if not good.any():
            return float(w.min()), float(w.max())
        return float(w[good].min()), float(w[good].max())

    @property
    def weight_ivar(self) -> np.ndarray:
        """(N, P) ivar with masked pixels set to 0: what every step uses as weights."""
        return np.where(self.mask, self.ivar, 0.0)

    def subset(self, index: np.ndarray | Sequence[int]) -> "SpectralSet":
        """A new set with the stars ``index`` (integer or boolean index)."""
        idx = np.asarray(index)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        return SpectralSet(
            wave=self.wave[idx] if self.wave.ndim == 2 else self.wave, flux=self.flux[idx], ivar=self.ivar[idx], ids=self.ids[idx],
            mask=self.mask[idx], labels=None if self.labels is None else self.labels[idx],
            label_names=list(self.label_names), label_units=list(self.label_units),
            meta={k: v[idx] for k, v in self.meta.items()}, source=self.source, medium=self.medium)

    def select_labels(self, names: Sequence[str]) -> "SpectralSet":
        """A new set whose labels are ``names`` in that order (error if one is absent); it shares
        this set's spectra, not copies of them."""
        if self.labels is None:
            raise DataError(f"the spectra{' in ' + self.source if self.source else ''} have no labels; "
                            f"needed: {list(names)}")
        missing = [n for n in names if n not in self.label_names]
        if missing:
            raise DataError(f"label(s) {missing} not provided by the data"
                            f"{' in ' + self.source if self.source else ''}; it has {self.label_names}")
        cols = [self.label_names.index(n) for n in names]
        return self._relabelled(self.labels[:, cols], list(names), [self.label_units[c] for c in cols])

    def without_labels(self) -> "SpectralSet":
        """A new set of the same stars without labels (its spectra shared, as :meth:`select_labels`)."""
        return self._relabelled(None, [], [])

    def _relabelled(self, labels: np.ndarray | None, names: list[str], units: list[str]) -> "SpectralSet":
        """This set with the labels (N, L) or None, ``names`` and ``units``: a new set that shares
        this one's spectra, ids and metadata arrays (no copy, and no second validation of what was
        validated when this set was made; nothing in slamfw writes into a set's arrays). The copy and
        the checks took 33 ms per chunk of 500 spectra of 1900 pixels in the process that reads the
        survey for ``slamfw predict`` (its wall time on 20,000 spectra did not change measurably)."""
        out = copy.copy(self)
        out.labels, out.label_names, out.label_units = labels, names, units
        out.meta = dict(self.meta)
        return out

    def drop_unlabelled(self, what: str = "") -> "SpectralSet":
        """Drop stars with any NaN label, logging which ones."""
        if self.labels is None:
            return self
        bad = np.isnan(self.labels).any(axis=1)
        if bad.any():
            log.info("%sdropping %d star(s) missing a requested label: %s",
                     f"{what}: " if what else "", int(bad.sum()), name_some(self.ids[bad]))
        return self.subset(~bad)

    def meta_column(self, key: str, default: float = np.nan) -> np.ndarray:
        """(N,) float metadata column ``key``, filled with ``default`` if absent."""
        if key in self.meta:
            return np.asarray(self.meta[key], dtype=float)
        return np.full(self.n_stars, default, dtype=float)

    @classmethod
    def stack(cls, sets: Sequence["SpectralSet"], source: str = "") -> "SpectralSet":
        """One set of the stars of ``sets``, in order.

        Equal grids give one grid (P,); otherwise each star keeps its own row of an (N, P) grid,
        P the longest, shorter rows padded at the end with pixels of ivar 0, flux 0, mask False,
        whose wavelengths continue the row's last step. Labels must have the same names in every
        set that has them (stars of a set without labels get NaN); a metadata column missing from a set is NaN there (or ""
        for text), except ``rv``, which is 0 there: a reader that gives no rv has spectra at rest (a NaN
        rv would mean an unknown one). The sets must declare the same wavelength medium.
        """
        sets = list(sets)
        if not sets:
            raise DataError(f"no spectra to combine{' from ' + source if source else ''}")
        empty = next((s for s in sets if s.n_pixels == 0), None)
        if empty is not None:
            raise DataError(f"spectra{' from ' + (empty.source or source) if (empty.source or source) else ''} "
                            f"have no pixels")
        media = {s.medium for s in sets}
        if len(media) > 1:
            raise DataError(f"spectra{' from ' + source if source else ''} mix wavelength media {sorted(media)}")
        labelled = [s for s in sets if s.labels is not None]
        names = labelled[0].label_names if labelled else None
        other = next((s.label_names for s in labelled if s.label_names != names), None)
        if other is not None:
            raise DataError(f"spectra{' from ' + source if source else ''} carry different labels: "
                            f"{names} and {other}")
        first = sets[0].wave
        same = all(s.wave.ndim == 1 and s.wave.shape == first.shape and np.array_equal(s.wave, first) for s in sets)
        p = max(s.n_pixels for s in sets)
        if same:
            wave = first
        else:
            rows = []
            for s in sets:
                w = np.broadcast_to(s.wave, s.flux.shape) if s.n_pixels else np.zeros((s.n_stars, 0))
                extra = p - s.n_pixels
                if extra:
                    step = (w[:, -1] - w[:, -2]) if s.n_pixels > 1 else np.ones(s.n_stars)
                    w = np.hstack([w, w[:, -1:] + step[:, None] * np.arange(1, extra + 1)[None, :]])
                rows.append(w)
            wave = np.vstack(rows)

        def pad(a: np.ndarray, value) -> np.ndarray:
            return a if a.shape[1] == p else np.hstack([a, np.full((a.shape[0], p - a.shape[1]), value, a.dtype)])

        keys = list(dict.fromkeys(k for s in sets for k in s.meta))
        meta = {}
        for k in keys:
            cols = []
            for s in sets:
                if k in s.meta:
                    cols.append(np.asarray(s.meta[k]))
                else:
                    text = any(np.asarray(o.meta[k]).dtype.kind in "USO" for o in sets if k in o.meta)
                    fill = "" if text else 0.0 if k == "rv" else np.nan
                    cols.append(np.full(s.n_stars, fill, dtype=object if text else float))
            meta[k] = np.concatenate(cols)
        return cls(wave=wave, flux=np.vstack([pad(s.flux, 0.0) for s in sets]),
                   ivar=np.vstack([pad(s.ivar, 0.0) for s in sets]),
                   ids=np.concatenate([s.ids for s in sets]), mask=np.vstack([pad(s.mask, False) for s in sets]),
                   labels=None if names is None else np.vstack(
                       [s.labels if s.labels is not None else np.full((s.n_stars, len(names)), np.nan) for s in sets]),
                   label_names=list(names or []), label_units=list(labelled[0].label_units if labelled else []),
                   meta=meta,
                   source=source or sets[0].source, medium=sets[0].medium)

    @classmethod
    def from_spectra(cls, spectra, ids=None, medium: str = "", source: str = "") -> "SpectralSet":
        """A set from specutils ``Spectrum`` objects: one (1-D flux, or 2-D flux sharing one axis)
        or a list (a grid per star). specutils' mask (True = bad) is inverted into slamfw's
        (True = good). See :func:`slamfw.data.specutils_io.spectral_set_from_spectra`; needs
        ``pip install specutils``."""
        from .specutils_io import spectral_set_from_spectra
        return spectral_set_from_spectra(spectra, ids=ids, medium=medium, source=source)

    def to_spectra(self, flux_unit=None) -> list:
        """One specutils ``Spectrum`` per star, with ``InverseVariance(ivar)`` and
        ``mask = ~self.mask`` (specutils: True = bad). See
        :func:`slamfw.data.specutils_io.spectral_set_to_spectra`."""
        from .specutils_io import spectral_set_to_spectra
        return spectral_set_to_spectra(self, flux_unit=flux_unit)

    def fingerprint(self) -> str:
        """SHA-256 of the arrays (wave, flux, ivar, mask, labels, ids): the training-set hash."""
        import hashlib
        h = hashlib.sha256()
        for arr in (self.wave, self.flux, self.ivar, self.mask,
                    self.labels if self.labels is not None else np.zeros(0)):
            h.update(np.ascontiguousarray(arr).data)          # the array's bytes, not a copy of them
        h.update("\n".join(self.ids.tolist()).encode())
        return h.hexdigest()
