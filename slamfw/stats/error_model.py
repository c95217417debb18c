"""The error model: label uncertainty against S/N, learned on the training set (paper §4.3, Table 1).

The paper describes the label scatter at a given S/N by ``sigma(SNR) = a exp(-b SNR) + c`` per
label. slamfw fits it by cross-validation on the training stars alone (see
:mod:`slamfw.workflows.calibrate`) and uses it to calibrate every star's formal error:

1. ``excess(SNR)^2 = max(sigma(SNR)^2 - <formal^2>(SNR), 0)``: what the scatter holds beyond
   the typical formal error at that S/N (the emulator's own errors, correlated across pixels,
   which a per-pixel model error cannot represent);
2. ``err = sqrt(formal^2 + excess(SNR)^2) * k(SNR)``, where ``k`` is the robust standard deviation
   (1.4826 MAD) of the cross-validation pulls after step 1, so that the calibrated pulls of the
   training stars have unit robust width at every S/N.

Quantities tabulated on the S/N grid (``<formal^2>``, ``k``) are interpolated linearly in ln S/N
and held constant beyond its ends. The S/N of a star is :func:`slamfw.spectrum_snr` of its
prepared spectrum, the same estimator in the cross-validation and for the survey.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import OptimizeWarning, curve_fit
from scipy.stats import median_abs_deviation


def sigma_snr(snr: np.ndarray, a: float, b: float, c: float) -> np.ndarray:
    """The paper's ``a exp(-b SNR) + c``."""
    return a * np.exp(-b * np.asarray(snr, float)) + c


def fit_sigma_snr(snr: np.ndarray, scatter: np.ndarray) -> tuple[float, float, float]:
    """(a, b, c) >= 0 of ``a exp(-b SNR) + c`` fitted to a scatter (B,) at S/N (B,), by least
    squares relative to the scatter (each bin weighs alike)."""
    snr, scatter = np.asarray(snr, float), np.asarray(scatter, float)
    ok = np.isfinite(snr) & np.isfinite(scatter)
    snr, scatter = snr[ok], scatter[ok]
    c0 = float(scatter[np.argmax(snr)])
    a0 = max(float(scatter[np.argmin(snr)]) - c0, 1e-12)
    try:
        with warnings.catch_warnings():   # 3 parameters on few bins: the covariance is not used
            warnings.simplefilter("ignore", OptimizeWarning)
            (a, b, c), _ = curve_fit(sigma_snr, snr, scatter, p0=(a0, 2.0 / max(np.median(snr), 1e-3), c0),
                                     sigma=np.maximum(scatter, 1e-12), bounds=(0, np.inf), maxfev=20000)
    except (RuntimeError, ValueError):
        a, b, c = 0.0, 0.0, float(np.median(scatter))
    return float(a), float(b), float(c)


def _interp(snr: np.ndarray, grid: np.ndarray, values: np.ndarray) -> np.ndarray:
    """(N, L) values (B, L) on the S/N grid (B,), interpolated in ln S/N at snr (N,)."""
    x = np.log(np.clip(np.asarray(snr, float), 1e-3, None))
    xs = np.log(grid)
    out = np.empty((x.size, values.shape[1]))
    for j in range(values.shape[1]):
        out[:, j] = np.interp(x, xs, values[:, j])
    return out


@dataclass
class ErrorModel:
    """A label error model against S/N (see the module docstring).

    label_names : the L labels
    snr : (B,) the median S/N of each cross-validation bin (increasing)
    scatter : (B, L) robust scatter of inferred - true labels per bin
    bias : (B, L) median of inferred - true
    formal2 : (B, L) median formal variance per bin
    factor : (B, L) the pull-width factor ``k``
    abc : (L, 3) ``(a, b, c)`` of ``sigma(SNR)`` per label
    n : (B,) stars per bin
    folds : the cross-validation folds it was fitted with
    """

    label_names: list[str]
    snr: np.ndarray
    scatter: np.ndarray
    bias: np.ndarray
    formal2: np.ndarray
    factor: np.ndarray
    abc: np.ndarray
    n: np.ndarray
    folds: int = 0

    def sigma(self, snr: np.ndarray) -> np.ndarray:
        """(N, L) the fitted ``a exp(-b SNR) + c`` at snr (N,)."""
        snr = np.asarray(snr, float)
        return np.column_stack([sigma_snr(snr, *self.abc[j]) for j in range(len(self.label_names))])

    def excess2(self, snr: np.ndarray) -> np.ndarray:
        """(N, L) ``max(sigma^2 - <formal^2>, 0)`` at snr (N,)."""
        return np.maximum(self.sigma(snr) ** 2 - _interp(snr, self.snr, self.formal2), 0.0)

    def calibrate(self, errors: np.ndarray, snr: np.ndarray) -> np.ndarray:
        """(N, L) calibrated uncertainties from formal errors (N, L) at the stars' S/N (N,).
        A star of unknown S/N (NaN) gets the calibration of the lowest S/N bin."""
        snr = np.where(np.isfinite(snr), snr, self.snr[0])
        return np.sqrt(errors ** 2 + self.excess2(snr)) * _interp(snr, self.snr, self.factor)

    @classmethod
    def fit(cls, label_names: list[str], snr: np.ndarray, delta: np.ndarray, formal: np.ndarray,
            bins: np.ndarray, folds: int = 0) -> ErrorModel:
        """Fit from cross-validation results: for K inferences, snr (K,) measured S/N, delta (K, L)
        inferred - true, formal (K, L) formal errors, bins (K,) the S/N bin of each (0..B-1)."""
        nb = int(bins.max()) + 1
        per = [bins == b for b in range(nb)]
        grid = np.array([np.median(snr[m]) for m in per])
        scatter = np.array([median_abs_deviation(delta[m], axis=0, scale="normal") for m in per])
        bias = np.array([np.median(delta[m], axis=0) for m in per])
        formal2 = np.array([np.median(formal[m] ** 2, axis=0) for m in per])
        order = np.argsort(grid)
        grid, scatter, bias, formal2 = grid[order], scatter[order], bias[order], formal2[order]
        abc = np.array([fit_sigma_snr(grid, scatter[:, j]) for j in range(len(label_names))])
        model = cls(list(label_names), grid, scatter, bias, formal2, np.ones_like(scatter), abc,
                    np.array([m.sum() for m in per])[order], folds)
        pulls = delta / np.sqrt(formal ** 2 + model.excess2(snr))
        model.factor = np.array([median_abs_deviation(pulls[per[b]], axis=0, scale="normal") for b in order])
        return model

    def to_dict(self) -> dict[str, Any]:
        """JSON-able (the model file's metadata holds it)."""
        return {"label_names": list(self.label_names), "snr": self.snr.tolist(), "scatter": self.scatter.tolist(),
                "bias": self.bias.tolist(), "formal2": self.formal2.tolist(), "factor": self.factor.tolist(),
                "abc": {name: dict(zip("abc", map(float, self.abc[j]))) for j, name in enumerate(self.label_names)},
                "n": self.n.tolist(), "folds": self.folds}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ErrorModel:
        names = list(d["label_names"])
        arr = {k: np.asarray(d[k], float) for k in ("snr", "scatter", "bias", "formal2", "factor")}
        abc = np.array([[d["abc"][name][k] for k in "abc"] for name in names], float)
        nb = arr["snr"].size
        if any(arr[k].shape != (nb, len(names)) for k in ("scatter", "bias", "formal2", "factor")) or nb < 1:
            raise ValueError(f"error model arrays do not match {nb} S/N bins and {len(names)} labels")
        return cls(names, arr["snr"], arr["scatter"], arr["bias"], arr["formal2"], arr["factor"], abc,
                   np.asarray(d.get("n", [0] * nb), int), int(d.get("folds", 0)))
