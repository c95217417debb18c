"""The paper's pseudo-continuum (§2.1): smoothing spline with iterative sigma rejection.

For each spectrum: fit a smoothing spline to the good pixels; in wavelength bins of width
``bin_width`` compute the standard deviation of the residuals and reject pixels farther than
``k`` of them (``k_upper`` above, ``k`` below the spline, if given); refit on the kept pixels;
repeat ``n_iter`` times. The spline's softness is set as a smoothing length in Angstrom
(the penalty of scipy's ``make_smoothing_spline`` is ``lam = density * smoothing_length^4``,
whose equivalent kernel has about that width). The spline is scipy's, bit for bit, built without
its Python loop (:mod:`._smoothing`).
"""
from __future__ import annotations

import numpy as np
from pydantic import Field

from slamfw import Normalizer, Params, hookimpl

from ._smoothing import smoothing_spline

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

    def _spline(self, x: np.ndarray, y: np.ndarray) -> np.ndarray | None:
        if x.size < self.min_pixels:
            return None
        density = x.size / max(x[-1] - x[0], 1e-9)
        lam = density * self.smoothing_length ** 4
        return smoothing_spline(x, y, lam)

    def normalize_one(self, wave: np.ndarray, flux: np.ndarray, ivar: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        good = (ivar > 0) & np.isfinite(flux)
        keep = good.copy()
        spl = self._spline(wave[keep], flux[keep])
        if spl is None:
            return np.ones_like(flux), np.zeros_like(ivar), np.full_like(flux, np.nan)
        edges = np.arange(wave[0], wave[-1] + self.bin_width, self.bin_width)
        bins = np.clip(np.searchsorted(edges, wave, side="right") - 1, 0, max(edges.size - 2, 0))
        k_hi = self.k_upper if self.k_upper is not None else self.k
        for _ in range(self.n_iter):
            resid = flux - spl(wave)
            sigma = np.zeros_like(flux)
            for b in np.unique(bins[keep]):
                in_bin = keep & (bins == b)
                sigma[bins == b] = np.std(resid[in_bin]) if in_bin.sum() > 2 else np.inf
            new_keep = good & (resid < k_hi * sigma) & (resid > -self.k * sigma)
            if new_keep.sum() < self.min_pixels or np.array_equal(new_keep, keep):
                break
            keep = new_keep
            spl = self._spline(wave[keep], flux[keep])
        cont = spl(wave)
        ok = cont > 0
        safe = np.where(ok, cont, 1.0)
        return (np.where(ok, flux / safe, 1.0), np.where(ok, ivar * safe ** 2, 0.0), cont)


@hookimpl
def slamfw_register_normalizers(register):
    register("spline", SplineNormalizer)
