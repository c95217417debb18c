"""The error model: label uncertainty against S/N, learned on the training set (paper §4.3, Table 1).

The paper describes the label scatter at a given S/N by ``sigma(SNR) = a exp(-b SNR) + c`` per
label. slamfw fits it by cross-validation on the training stars alone (see
:mod:`slamfw.workflows.calibrate`) and uses it to calibrate every star's formal error:

1. ``excess(SNR)^2 = max(sigma(SNR)^2 - <formal^2>(SNR), 0)``: what the scatter holds beyond
   the typical formal error at that S/N (the emulator's own errors, correlated across pixels,
   which a per-pixel model error cannot represent);
2. ``err = sqrt(formal^2 + excess(SNR)^2) * k(SNR)``, where ``k`` is the robust standard deviation
   (1.4826 MAD) of the cross-validation pulls after step 1, so that the calibrated pulls of the
   training stars have unit robust width at every S/N; where their tails are heavy, ``k`` is
   raised until their standard deviation is at most 1.4, as long as their robust width stays at
   least 0.8 (:func:`pull_factor`).

Quantities tabulated on the S/N grid (``<formal^2>``, ``k``) are interpolated linearly in ln S/N
and held constant beyond its ends. The S/N of a star is :func:`slamfw.spectrum_snr` of its
prepared spectrum, the same estimator in the cross-validation and for the survey.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np


def sigma_snr(snr: np.ndarray, a: float, b: float, c: float) -> np.ndarray:
    """The paper's ``a exp(-b SNR) + c``."""
    return a * np.exp(-b * np.asarray(snr, float)) + c


def fit_sigma_snr(snr: np.ndarray, scatter: np.ndarray) -> tuple[float, float, float]:
    """(a, b, c) >= 0 of ``a exp(-b SNR) + c`` fitted to a scatter (B,) at S/N (B,), by least
    squares relative to the scatter (each bin weighs alike)."""
    from scipy.optimize import OptimizeWarning, curve_fit   # fitting only: predict's start-up skips scipy.optimize
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


#: The calibrated cross-validation pulls: standard deviation at most this ...
PULL_STD_MAX = 1.4
#: ... unless that would make their robust width smaller than this.
PULL_ROBUST_MIN = 0.8


def pull_factor(pulls: np.ndarray) -> np.ndarray:
    """(L,) the factor ``k`` of K cross-validation pulls (K, L) of one S/N bin: their robust width
    (1.4826 MAD), so that the calibrated pulls ``pulls / k`` have unit robust width; raised where
    the emulator's errors have heavy tails, until the calibrated pulls' standard deviation is at
    most :data:`PULL_STD_MAX`, but never so far that their robust width drops below
    :data:`PULL_ROBUST_MIN`. (A single width cannot describe both the core and the tails of a
    heavy-tailed error distribution; this one keeps the core within 0.8-1.25 and the tails' pulls
    bounded. With Gaussian pulls it is simply the robust width.)"""
    from scipy.stats import median_abs_deviation           # fitting only: predict's start-up skips scipy.stats
    robust = median_abs_deviation(pulls, axis=0, scale="normal")
    std = np.std(pulls, axis=0)
    robust = np.where(robust > 0, robust, std)        # over half the pulls equal (a one-star bin): no core width
    return np.minimum(np.maximum(robust, std / PULL_STD_MAX), robust / PULL_ROBUST_MIN)


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
    neighbours : 0, or the number of cross-validation results near a star (in inferred labels and
        S/N) whose mean squared error, less their mean formal variance, gives that star's excess
        (the *local* calibration, an extension of the paper's per-S/N model: emulators err more in
        some parts of label space than in others)
    cv_labels, cv_snr, cv_delta, cv_formal : (K, L), (K,), (K, L), (K, L) the cross-validation
        results it was fitted on (kept for the local calibration)
    inferer : the name of the inferer the cross-validation ran (its errors are what it calibrates)
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
    neighbours: int = 0
    cv_labels: np.ndarray | None = None
    cv_snr: np.ndarray | None = None
    cv_delta: np.ndarray | None = None
    cv_formal: np.ndarray | None = None
    inferer: str = ""

    #: Weight of ln(S/N) against standardised labels in the neighbour distance: S/N a factor 2
    #: apart weigh like labels 2 standard deviations apart.
    SNR_WEIGHT = 3.0

    def _local_excess2(self, labels: np.ndarray, snr: np.ndarray, exclude: np.ndarray | None = None) -> np.ndarray:
        """(N, L) ``max(mean(delta^2) - mean(formal^2), 0)`` over the ``neighbours`` nearest
        cross-validation results of each star (labels (N, L), snr (N,)); ``exclude`` (N,) the index
        of a result to leave out (the star itself, when calibrating the results themselves)."""
        mean, scale = self.cv_labels.mean(0), self.cv_labels.std(0)
        scale = np.where(scale > 0, scale, 1.0)
        zc = np.column_stack([(self.cv_labels - mean) / scale, self.SNR_WEIGHT * np.log(self.cv_snr)])
        k = min(self.neighbours, len(zc) - 1)
        d2_minus = self.cv_delta ** 2 - self.cv_formal ** 2
        out = np.empty((labels.shape[0], labels.shape[1]))
        for s in range(0, labels.shape[0], 256):
            z = np.column_stack([(labels[s:s + 256] - mean) / scale, self.SNR_WEIGHT * np.log(snr[s:s + 256])])
            dist = ((z[:, None, :] - zc[None, :, :]) ** 2).sum(-1)
            if exclude is not None:
                dist[np.arange(len(z)), exclude[s:s + 256]] = np.inf
            near = np.argpartition(dist, k - 1, axis=1)[:, :k]
            out[s:s + 256] = np.maximum(d2_minus[near].mean(axis=1), 0.0)
        return out

    def sigma(self, snr: np.ndarray) -> np.ndarray:
        """(N, L) the fitted ``a exp(-b SNR) + c`` at snr (N,)."""
        snr = np.asarray(snr, float)
        return np.column_stack([sigma_snr(snr, *self.abc[j]) for j in range(len(self.label_names))])

    def excess2(self, snr: np.ndarray) -> np.ndarray:
        """(N, L) ``max(sigma^2 - <formal^2>, 0)`` at snr (N,)."""
        return np.maximum(self.sigma(snr) ** 2 - _interp(snr, self.snr, self.formal2), 0.0)

    def calibrate(self, errors: np.ndarray, snr: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
        """(N, L) calibrated uncertainties from formal errors (N, L) at the stars' S/N (N,) and,
        for the local calibration, their inferred labels (N, L). A star of unknown S/N (NaN) gets
        the calibration of the lowest S/N bin; one without finite labels the per-S/N excess."""
        snr = np.where(np.isfinite(snr), snr, self.snr[0])
        return np.sqrt(errors ** 2 + self.excess(snr, labels)) * _interp(snr, self.snr, self.factor)

    def excess(self, snr: np.ndarray, labels: np.ndarray | None = None, exclude: np.ndarray | None = None
               ) -> np.ndarray:
        """(N, L) the excess variance: local when the model has ``neighbours`` and labels are given."""
        ex2 = self.excess2(snr)
        if self.neighbours and labels is not None and self.cv_labels is not None:
            ok = np.all(np.isfinite(labels), axis=1) & np.isfinite(snr)
            if ok.any():
                ex2[ok] = self._local_excess2(labels[ok], snr[ok], None if exclude is None else exclude[ok])
        return ex2

    @classmethod
    def fit(cls, label_names: list[str], snr: np.ndarray, delta: np.ndarray, formal: np.ndarray,
            bins: np.ndarray, folds: int = 0, labels: np.ndarray | None = None, neighbours: int = 0) -> ErrorModel:
        """Fit from cross-validation results: for K inferences, snr (K,) measured S/N, delta (K, L)
        inferred - true, formal (K, L) formal errors, bins (K,) the S/N bin of each (0..B-1), and
        for the local calibration (``neighbours`` > 0) the inferred labels (K, L)."""
        from scipy.stats import median_abs_deviation
        per = [bins == b for b in np.unique(bins)]      # only bins that hold results
        grid = np.array([np.median(snr[m]) for m in per])
        scatter = np.array([median_abs_deviation(delta[m], axis=0, scale="normal") for m in per])
        bias = np.array([np.median(delta[m], axis=0) for m in per])
        formal2 = np.array([np.median(formal[m] ** 2, axis=0) for m in per])
        order = np.argsort(grid)
        grid, scatter, bias, formal2 = grid[order], scatter[order], bias[order], formal2[order]
        abc = np.array([fit_sigma_snr(grid, scatter[:, j]) for j in range(len(label_names))])
        model = cls(list(label_names), grid, scatter, bias, formal2, np.ones_like(scatter), abc,
                    np.array([m.sum() for m in per])[order], folds)
        if neighbours and labels is not None:
            model.neighbours = int(neighbours)
            model.cv_labels, model.cv_snr, model.cv_delta, model.cv_formal = labels, snr, delta, formal
        pulls = delta / np.sqrt(formal ** 2 + model.excess(snr, labels, exclude=np.arange(snr.size)))
        model.factor = np.array([pull_factor(pulls[per[b]]) for b in order])
        return model

    def to_dict(self) -> dict[str, Any]:
        """JSON-able (the model file's metadata holds it)."""
        return {"label_names": list(self.label_names), "snr": self.snr.tolist(), "scatter": self.scatter.tolist(),
                "bias": self.bias.tolist(), "formal2": self.formal2.tolist(), "factor": self.factor.tolist(),
                "abc": {name: dict(zip("abc", map(float, self.abc[j]))) for j, name in enumerate(self.label_names)},
                "n": self.n.tolist(), "folds": self.folds, "neighbours": self.neighbours, "inferer": self.inferer,
                **({} if not self.neighbours else {
                    "cv": {"labels": self.cv_labels.tolist(), "snr": self.cv_snr.tolist(),
                           "delta": self.cv_delta.tolist(), "formal": self.cv_formal.tolist()}})}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ErrorModel:
        names = list(d["label_names"])
        arr = {k: np.asarray(d[k], float) for k in ("snr", "scatter", "bias", "formal2", "factor")}
        abc = np.array([[d["abc"][name][k] for k in "abc"] for name in names], float)
        nb = arr["snr"].size
        if any(arr[k].shape != (nb, len(names)) for k in ("scatter", "bias", "formal2", "factor")) or nb < 1:
            raise ValueError(f"error model arrays do not match {nb} S/N bins and {len(names)} labels")
        model = cls(names, arr["snr"], arr["scatter"], arr["bias"], arr["formal2"], arr["factor"], abc,
                    np.asarray(d.get("n", [0] * nb), int), int(d.get("folds", 0)))
        model.inferer = str(d.get("inferer", ""))
        if d.get("neighbours"):
            cv = d["cv"]
            model.neighbours = int(d["neighbours"])
            model.cv_labels, model.cv_snr = np.asarray(cv["labels"], float), np.asarray(cv["snr"], float)
            model.cv_delta, model.cv_formal = np.asarray(cv["delta"], float), np.asarray(cv["formal"], float)
        return model
