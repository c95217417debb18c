"""The paper's pseudo-continuum (§2.1): smoothing spline with iterative sigma rejection.

For each spectrum: fit a smoothing spline to the good pixels; in wavelength bins of width
``bin_width`` compute the standard deviation of the residuals and reject pixels farther than
``k`` of them (``k_upper`` above, ``k`` below the spline, if given); refit on the kept pixels;
repeat ``n_iter`` times. The spline's softness is set as a smoothing length in Angstrom
(the penalty of scipy's ``make_smoothing_spline`` is ``lam = density * smoothing_length^4``,
whose equivalent kernel has about that width). The spline is scipy's on the kept pixels (to
about 1e-7 of the continuum on a 1 A grid at 100-150 A, see :mod:`._smoothing`), a straight line
beyond the first and last kept pixels, as a natural spline is there, and the end value beyond the
first and last good pixels. It is computed for a block of stars at once, with knots at every
pixel and weight 0 on the rejected ones, as is the rejection.
"""
from __future__ import annotations

import numpy as np
from pydantic import Field

from slamfw import Normalizer, Params, hookimpl

from ._smoothing import SmoothingSplines

SLAMFW_PLUGIN_API = (1, 0)


class SplineNormalizer(Normalizer):
    """Smoothing-spline pseudo-continuum with k-sigma rejection in wavelength bins."""

    class Params(Params):
        smoothing_length: float = Field(100.0, gt=0, description="softness of the spline (A)")
        k: float = Field(1.5, gt=0, description="rejection threshold in residual sigmas (paper: 1.5)")
        k_upper: float | None = Field(None, gt=0, description="threshold above the spline (default: k)")
        bin_width: float = Field(100.0, gt=0, description="wavelength bins for the residual sigma (A)")
        n_iter: int = Field(3, ge=0, description="rejection-refit iterations")
        min_pixels: int = Field(20, ge=5, description="fewest kept pixels to fit a continuum")

    def normalize(self, wave: np.ndarray, flux: np.ndarray, ivar: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All stars of the block at once (each star's result does not depend on the others):
        wave (P,) or (N, P) strictly increasing, flux and ivar (N, P) -> norm_flux, norm_ivar,
        continuum (N, P). A subclass that overrides :meth:`normalize_one` is run star by star."""
        if type(self).normalize_one is not SplineNormalizer.normalize_one:
            return super().normalize(wave, flux, ivar)
        return self._normalize_block(wave, flux, ivar)

    def normalize_one(self, wave: np.ndarray, flux: np.ndarray, ivar: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        nf, ni, cont = self._normalize_block(wave, flux[None], ivar[None])
        return nf[0], ni[0], cont[0]

    def _normalize_block(self, wave: np.ndarray, flux: np.ndarray, ivar: np.ndarray
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        flux = np.atleast_2d(np.asarray(flux, float))
        ivar = np.atleast_2d(np.asarray(ivar, float))
        wave = np.broadcast_to(np.asarray(wave, float), flux.shape)
        N, P = flux.shape
        cont = np.full((N, P), np.nan)
        with np.errstate(invalid="ignore"):
            bad_grid = np.flatnonzero(~np.all(np.isfinite(wave), axis=1) | np.any(~(np.diff(wave, axis=1) > 0), axis=1))
        if bad_grid.size:
            raise ValueError(f"spline normaliser: the wavelengths of spectrum {int(bad_grid[0])} of this block "
                             f"(and {bad_grid.size - 1} more) are not finite and strictly increasing")
        good = (ivar > 0) & np.isfinite(flux)
        rows = np.flatnonzero(good.sum(axis=1) >= self.min_pixels)
        if rows.size:
            cont[rows] = self._continuum(wave[rows], flux[rows], good[rows])
        ok = np.isfinite(cont) & (cont > 0)
        safe = np.where(ok, cont, 1.0)
        return np.where(ok, flux / safe, 1.0), np.where(ok, ivar * safe ** 2, 0.0), cont

    def _lam(self, x: np.ndarray, keep: np.ndarray) -> np.ndarray:
        """(n,) the penalty of each row's spline: ``density * smoothing_length^4``, the density
        of its kept points x (n, P)."""
        count = keep.sum(axis=1)
        lo = np.where(keep, x, np.inf).min(axis=1)
        hi = np.where(keep, x, -np.inf).max(axis=1)
        return count / np.maximum(hi - lo, 1e-9) * self.smoothing_length ** 4

    def _continuum(self, wave: np.ndarray, flux: np.ndarray, good: np.ndarray) -> np.ndarray:
        """(n, P) the continua of stars with at least ``min_pixels`` good pixels. Each star is fitted
        on the span from its first to its last good pixel (stars of equal span length together),
        so that bad pixels after it (a shorter spectrum padded in a block) change nothing; beyond
        its span the continuum is the span's end value. The rejection bins start at the row's
        first pixel, as they always have."""
        n, P = flux.shape
        # wavelength bins of width bin_width from each star's first pixel
        bins = np.empty((n, P), dtype=np.int64)
        for i in range(n):
            edges = np.arange(wave[i, 0], wave[i, -1] + self.bin_width, self.bin_width)
            bins[i] = np.clip(np.searchsorted(edges, wave[i], side="right") - 1, 0, max(edges.size - 2, 0))
        lo = np.argmax(good, axis=1)
        length = P - np.argmax(good[:, ::-1], axis=1) - lo
        cont = np.empty((n, P))
        for span in np.unique(length):
            rows = np.flatnonzero(length == span)
            cols = lo[rows, None] + np.arange(span)
            fit = self._clip_and_fit(*(np.take_along_axis(a[rows], cols, axis=1) for a in (wave, flux, good, bins)))
            cont[rows] = np.take_along_axis(fit, np.clip(np.arange(P) - lo[rows, None], 0, span - 1), axis=1)
        return cont

    def _clip_and_fit(self, wave: np.ndarray, flux: np.ndarray, good: np.ndarray, bins: np.ndarray) -> np.ndarray:
        """(n, S) the continua of stars (n, S) whose first and last pixels are good: the spline
        fit, then ``n_iter`` rounds of rejection in the wavelength bins ``bins`` and refits."""
        n = flux.shape[0]
        keep = good.copy()
        splines = SmoothingSplines(wave)              # basis and penalty: once for all the iterations
        cont = splines.values(flux, keep.astype(float), self._lam(wave, keep))
        width = int(bins.max()) + 1
        flat = bins + width * np.arange(n)[:, None]            # one bin index per (star, bin)
        k_hi = self.k_upper if self.k_upper is not None else self.k
        active = np.ones(n, bool)
        for _ in range(self.n_iter):
            resid = flux - cont
            sigma = self._bin_sigma(np.where(keep, resid, 0.0), keep, flat, n * width)
            with np.errstate(invalid="ignore"):
                new_keep = good & (resid < k_hi * sigma) & (resid > -self.k * sigma)
            refit = active & (new_keep.sum(axis=1) >= self.min_pixels) & np.any(new_keep != keep, axis=1)
            active = refit
            if not refit.any():
                break
            rows = np.flatnonzero(refit)
            keep[rows] = new_keep[rows]
            cont[rows] = splines.values(flux[rows], keep[rows].astype(float), self._lam(wave[rows], keep[rows]), rows)
        return cont

    @staticmethod
    def _bin_sigma(resid: np.ndarray, keep: np.ndarray, flat: np.ndarray, size: int) -> np.ndarray:
        """(n, P) at each pixel, the standard deviation of the kept residuals (n, P) in its
        (star, bin) ``flat`` (n, P); inf where the bin keeps at most 2 pixels, 0 where it keeps none."""
        count = np.bincount(flat[keep], minlength=size)
        mean = np.bincount(flat[keep], weights=resid[keep], minlength=size) / np.maximum(count, 1)
        dev = resid - mean[flat]
        var = np.bincount(flat[keep], weights=(dev ** 2)[keep], minlength=size) / np.maximum(count, 1)
        sigma = np.where(count > 2, np.sqrt(var), np.where(count > 0, np.inf, 0.0))
        return sigma[flat]


@hookimpl
def slamfw_register_normalizers(register):
    register("spline", SplineNormalizer)
