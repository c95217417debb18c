"""A small, non-linear spectral model for mock surveys (demo and tests).

Absorption lines at real (air) wavelengths with depths that depend non-linearly on Teff, log g
and [Fe/H] through a saturating curve of growth ``depth = d_max * eta / (1 + eta)``:

- Balmer lines: core strength peaks near 9000 K (as in A stars) and falls to both sides, while
  the Stark wings keep widening with Teff and with log g (which breaks the degeneracy between
  the two sides of the peak). A quadratic in Teff cannot follow this over 4000-9500 K.
- neutral metal lines (Fe I, Mg I, Ca I, Cr I, Na I, Mn I): strong in cool stars, fading
  exponentially with Teff (still visible in A stars), proportional to 10^[Fe/H]; Mg b, Na D and Ca I 4227 have
  pressure-broadened wings that grow with log g.
- ionised lines (Fe II, Ti II, Sr II, Ba II): peak near 7000 K and grow as log g falls.
- Ca II H and K: saturated and broad; CH G band and MgH bands in cool stars.
- a forest of weak metal blends at fixed pseudo-random wavelengths (synthetic, drawn once
  with a fixed seed), behaving like the neutral lines.

The result is multiplied by a Planck continuum (and a smooth instrument response) so that
normalisation has work to do, and photon-like noise at a given S/N.
"""
from __future__ import annotations

import numpy as np

BALMER = [3889.05, 3970.07, 4101.74, 4340.47, 4861.33, 6562.80]
CA_HK = [3933.66, 3968.47]
NEUTRAL = [  # (wavelength, relative strength, pressure-broadened?)
    (4045.81, 1.5, False), (4063.59, 1.2, False), (4071.74, 1.1, False), (4143.87, 0.8, False),
    (4202.03, 0.9, False), (4250.79, 0.8, False), (4260.47, 1.0, False), (4271.76, 1.0, False),
    (4325.76, 1.1, False), (4383.55, 1.5, False), (4404.75, 1.3, False), (4415.12, 1.0, False),
    (4528.61, 0.7, False), (4891.49, 0.7, False), (4920.50, 0.8, False), (4957.60, 0.8, False),
    (5227.19, 0.9, False), (5269.54, 1.2, False), (5328.04, 1.1, False), (5371.49, 0.9, False),
    (5397.13, 0.8, False), (5405.77, 0.8, False), (5429.70, 0.8, False), (5446.92, 0.8, False),
    (5455.61, 0.7, False), (5615.64, 0.6, False), (6494.98, 0.5, False), (4030.75, 0.8, False),
    (5206.04, 0.6, False), (5208.42, 0.7, False), (4226.73, 2.5, True), (5167.32, 1.6, True),
    (5172.68, 2.0, True), (5183.60, 2.4, True), (5889.95, 2.5, True), (5895.92, 2.2, True),
]
IONISED = [(4233.17, 0.6), (4923.93, 0.8), (5018.44, 0.9), (5169.03, 0.8), (5316.61, 0.6),
           (4443.80, 0.6), (4468.49, 0.6), (4501.27, 0.6), (4571.97, 0.6), (4077.71, 1.0),
           (4215.52, 0.8), (4554.03, 0.7)]


def _weak_forest(n: int = 220) -> np.ndarray:
    rng = np.random.default_rng(20200101)  # fixed: part of the model, not of the survey
    return np.column_stack([rng.uniform(3850, 6600, n), rng.uniform(0.05, 0.35, n)])


WEAK = _weak_forest()


def _profile(dx: np.ndarray, sigma: np.ndarray, lorentz: np.ndarray) -> np.ndarray:
    """Pseudo-Voigt of unit depth: Gaussian core (sigma) mixed with Lorentzian wings (HWHM)."""
    a = lorentz / (lorentz + sigma)
    return (1 - a) * np.exp(-0.5 * (dx / sigma) ** 2) + a / (1 + (dx / lorentz) ** 2)


def _cog(eta: np.ndarray, dmax: float) -> np.ndarray:
    return dmax * eta / (1.0 + eta)


def normalized_flux(wave: np.ndarray, teff: np.ndarray, logg: np.ndarray, feh: np.ndarray,
                    fwhm: float = 2.5) -> np.ndarray:
    """Continuum-normalised flux (N, P) for N stars on ``wave`` (P,)."""
    from scipy.special import expit       # here: loading the plugins (every command's start-up) skips scipy
    t = np.asarray(teff, float)[:, None]
    g = np.asarray(logg, float)[:, None]
    z = np.asarray(feh, float)[:, None]
    w = np.asarray(wave, float)[None, :]
    sig_inst = fwhm / 2.3548
    logf = np.zeros((t.shape[0], w.shape[1]))

    def add(center: float, depth: np.ndarray, lorentz: np.ndarray, window: float) -> None:
        sel = np.abs(w[0] - center) < window
        if not sel.any():
            return
        p = _profile(w[:, sel] - center, sig_inst, np.maximum(lorentz, 1e-3))
        logf[:, sel] += np.log1p(-np.clip(depth * p, 0.0, 0.98))

    # Balmer: peak near 9000 K, Stark wings with gravity
    h_eta = 10.0 * np.exp(-0.5 * ((t - 9000.0) / 1300.0) ** 2) + 0.05
    for k, c in enumerate(BALMER):
        depth = _cog(h_eta * (0.55 + 0.1 * k), 0.85)
        lor = (0.8 + 6.0 * expit((t - 8000.0) / 1500.0)) * 10 ** (0.15 * (g - 4.0))
        add(c, depth, lor, 120.0)
    # neutral metals: cool and metal-rich stars; pressure wings grow with log g
    metal = 10 ** z
    cool = np.exp(-(t - 4500.0) / 1500.0)
    for c, s, pressure in NEUTRAL:
        eta = s * metal * cool * 10 ** (0.05 * (g - 4.0))
        lor = (0.3 + 0.9 * np.sqrt(eta) * 10 ** (0.25 * (g - 4.0))) if pressure else np.full_like(eta, 0.05)
        add(c, _cog(eta, 0.9), lor, 60.0 if pressure else 12.0)
    # ionised lines: peak near 6500 K, stronger at low gravity
    ion = np.exp(-0.5 * ((t - 7000.0) / 2000.0) ** 2) * 10 ** (-0.35 * (g - 4.0))
    for c, s in IONISED:
        add(c, _cog(1.2 * s * metal * ion, 0.8), np.full_like(t, 0.05), 12.0)
    # Ca II H & K: saturated, broad
    hk = 8.0 * 10 ** (0.7 * z) * np.exp(-(t - 5000.0) / 2500.0)
    for c in CA_HK:
        add(c, _cog(hk, 0.95), 1.0 + 1.5 * np.sqrt(hk), 80.0)
    # weak blends
    for c, s in WEAK:
        add(c, _cog(s * metal * cool, 0.6), np.full_like(t, 0.05), 8.0)
    # molecular bands: CH G band (4300), MgH (4900-5200) in cool dwarfs
    gband = 0.25 * 10 ** (0.5 * z) * expit(-(t - 5300.0) / 350.0)
    edge = expit((w - 4296.0) / 1.5) * expit(-(w - 4313.0) / 1.5)
    logf += np.log1p(-gband * edge)
    mgh = 0.2 * expit(-(t - 4700.0) / 250.0) * np.clip(g / 5.0, 0, 1) ** 2
    band = np.clip((5210.0 - w) / 300.0, 0, 1) * (w > 4900)
    logf += np.log1p(-mgh * band)
    return np.exp(logf)


def continuum(wave: np.ndarray, teff: np.ndarray) -> np.ndarray:
    """Planck shape (scaled to 1 at 5000 A) times a smooth instrument response, (N, P)."""
    lam_cm = np.asarray(wave, float)[None, :] * 1e-8
    x = 1.4388 / (lam_cm * np.asarray(teff, float)[:, None])
    x0 = 1.4388 / (5000e-8 * np.asarray(teff, float)[:, None])
    planck = (5000e-8 / lam_cm) ** 5 * np.expm1(x0) / np.expm1(x)
    u = (np.asarray(wave, float) - 5000.0) / 1500.0
    response = 1.0 + 0.15 * u - 0.1 * u ** 2
    return planck * response[None, :]
