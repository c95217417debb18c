"""Reader ``mock``: a mock survey drawn from the built-in spectral model (:mod:`.mockspec`).

Labels are drawn uniformly in the given ranges; spectra get a Planck continuum (unless
``continuum = false``), an optional random radial velocity, and photon-like Gaussian noise at the
given S/N (a list of S/N values is assigned to the stars in turn). Deterministic given ``seed``.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np
from astropy.constants import c
from pydantic import Field, field_validator

from slamfw import Params, Reader, SpectralSet, chunks, hookimpl

from . import mockspec

SLAMFW_PLUGIN_API = (1, 0)
C_KMS = c.to_value("km/s")


class MockReader(Reader):
    """A mock survey: no files needed."""

    class Params(Params):
        n_stars: int = Field(500, ge=1)
        teff: list[float] = Field(default=[4000.0, 9500.0], description="Teff range (K)")
        logg: list[float] = Field(default=[1.0, 5.0], description="log g range (dex)")
        feh: list[float] = Field(default=[-2.0, 0.5], description="[Fe/H] range (dex)")
        snr: float | list[float] = Field(100.0, description="S/N per pixel; a list is cycled over the stars")
        n_pixels: int = Field(1000, ge=10)
        wave_range: list[float] = Field(default=[3900.0, 5800.0])
        resolution_fwhm: float = Field(2.5, gt=0, description="instrumental FWHM (A)")
        continuum: bool = Field(True, description="multiply by a Planck continuum (else already normalised)")
        rv_sigma: float = Field(0.0, ge=0, description="spread of random radial velocities (km/s)")
        seed: int = 0
        id_prefix: str = "mock"

        @field_validator("teff", "logg", "feh", "wave_range")
        @classmethod
        def _pair(cls, v: list[float]) -> list[float]:
            if len(v) != 2 or not all(np.isfinite(v)) or v[0] >= v[1]:
                raise ValueError("expected [low, high] with finite low < high")
            return v

        @field_validator("snr")
        @classmethod
        def _snr(cls, v):
            vals = v if isinstance(v, list) else [v]
            if not vals or not all(np.isfinite(vals)) or any(s <= 0 for s in vals):
                raise ValueError("S/N values must be finite and > 0")
            return v

    def read(self) -> SpectralSet:
        return next(self.iter_chunks(self.n_stars))

    def iter_chunks(self, chunk_size: int) -> Iterator[SpectralSet]:
        """Generated chunk by chunk: the random numbers are drawn in the same order as one
        ``read()`` draws them (labels, velocities, then the noise star by star), so any chunking
        gives the same survey, and memory does not grow with ``n_stars``."""
        rng = np.random.default_rng(self.seed)
        n = self.n_stars
        labels = np.column_stack([rng.uniform(*self.teff, n), rng.uniform(*self.logg, n), rng.uniform(*self.feh, n)])
        snr_list = np.atleast_1d(np.asarray(self.snr, float))
        snr = snr_list[np.arange(n) % snr_list.size]
        # observed-frame grid a little wider than the range, so RV shifts do not leave gaps
        pad = 3 * self.rv_sigma / C_KMS * self.wave_range[1] + 5.0 if self.rv_sigma else 0.0
        wave = np.linspace(self.wave_range[0] - pad, self.wave_range[1] + pad, self.n_pixels)
        rv = rng.normal(0.0, self.rv_sigma, n) if self.rv_sigma else np.zeros(n)
        width = len(str(n - 1))
        for s, e in chunks(n, chunk_size):
            flux, ivar = self._spectra(rng, wave, labels[s:e], rv[s:e], snr[s:e])
            yield SpectralSet(
                wave=wave, flux=flux, ivar=ivar, ids=[f"{self.id_prefix}{i:0{width}d}" for i in range(s, e)],
                labels=labels[s:e], label_names=["Teff", "logg", "FeH"], label_units=["K", "dex", "dex"],
                meta={"snr": snr[s:e], "rv": rv[s:e]}, source=f"mock(seed={self.seed})")

    def _spectra(self, rng: np.random.Generator, wave: np.ndarray, labels: np.ndarray, rv: np.ndarray,
                 snr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Flux and ivar (n, P) of n stars with labels (n, 3), velocities and S/N (n,)."""
        teff, logg, feh = labels.T
        if not self.rv_sigma:
            norm = mockspec.normalized_flux(wave, teff, logg, feh, fwhm=self.resolution_fwhm)
        else:
            rest = wave[None, :] / (1 + rv[:, None] / C_KMS)
            norm = np.empty((len(teff), wave.size))
            for i in range(len(teff)):  # per star because of the per-star rest-frame grid
                norm[i] = mockspec.normalized_flux(rest[i], teff[i:i + 1], logg[i:i + 1], feh[i:i + 1],
                                                   fwhm=self.resolution_fwhm)[0]
        cont = mockspec.continuum(wave, teff) if self.continuum else np.ones_like(norm)
        clean = norm * cont
        level = np.median(cont, axis=1, keepdims=True)
        sigma = np.sqrt(np.maximum(clean, 1e-3) * level) / snr[:, None]
        return clean + rng.normal(size=clean.shape) * sigma, 1.0 / sigma ** 2


@hookimpl
def slamfw_register_readers(register):
    register("mock", MockReader)
