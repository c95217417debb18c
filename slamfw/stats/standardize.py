"""Standardisation of labels and fluxes, paper eq. (2)-(4).

Each column j (a label, or a pixel of the training spectra) is mapped to zero mean and unit
variance over the training set: ``f_ij = (F_ij - mu_j) / s_j`` with the sample standard
deviation (ddof = 1, eq. 3). Emulators use this core utility rather than re-writing it.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ..errors import DataError, NotFittedError


class Standardizer:
    """Column-wise standardisation, optionally over good entries only.

    Parameters
    ----------
    describe : callable(int) -> str, optional
        Turns a column index into words for error messages, e.g.
        ``lambda j: f"pixel {j} ({wave[j]:.2f} A)"``.
    min_count : int
        Fewest good entries a column needs (default 2, the least that defines a variance).
    remedy : str
        What the error for a constant column advises, e.g. "Mask it, or narrow the wavelength
        range." for pixels.
    """

    def __init__(self, describe: Callable[[int], str] | None = None, min_count: int = 2,
                 remedy: str = "Mask it, narrow the wavelength range, or drop the label."):
        self.describe = describe
        self.min_count = min_count
        self.remedy = remedy

    def _name(self, j: int) -> str:
        return self.describe(j) if self.describe else f"column {j}"

    def fit(self, X: np.ndarray, good: np.ndarray | None = None) -> Standardizer:
        """Learn ``mean_`` and ``scale_`` (both (D,)) from X (M, D); ``good`` (M, D) bool."""
        X = np.asarray(X, dtype=float)
        good = np.isfinite(X) if good is None else (np.asarray(good, bool) & np.isfinite(X))
        count = good.sum(axis=0)
        few = np.flatnonzero(count < self.min_count)
        if few.size:
            j = int(few[0])
            raise DataError(f"{self._name(j)} has only {int(count[j])} usable training value(s); "
                            f"at least {self.min_count} are needed ({few.size} such column(s)).")
        Xz = np.where(good, X, 0.0)
        mean = Xz.sum(axis=0) / count
        var = (np.where(good, X - mean, 0.0) ** 2).sum(axis=0) / (count - 1)
        scale = np.sqrt(var)
        const = np.flatnonzero(~(scale > 1e-12 * np.maximum(1.0, np.abs(mean))))
        if const.size:
            j = int(const[0])
            raise DataError(
                f"{self._name(j)} is constant across the training set (value {mean[j]:.6g}); "
                f"it carries no information and cannot be standardised. "
                f"{const.size} such column(s). {self.remedy}")
        self.mean_ = mean
        self.scale_ = scale
        return self

    def _check(self) -> None:
        if not hasattr(self, "mean_"):
            raise NotFittedError("Standardizer is not fitted")

    def transform(self, X: np.ndarray) -> np.ndarray:
        self._check()
        return (np.asarray(X, dtype=float) - self.mean_) / self.scale_

    def inverse_transform(self, Z: np.ndarray) -> np.ndarray:
        self._check()
        return np.asarray(Z, dtype=float) * self.scale_ + self.mean_

    def to_state(self, prefix: str) -> dict[str, np.ndarray]:
        self._check()
        return {f"{prefix}mean": self.mean_, f"{prefix}scale": self.scale_}

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray], prefix: str) -> Standardizer:
        """The standardiser saved by :meth:`to_state` under ``prefix``; a :class:`DataError` naming
        the first column whose mean is not finite or whose scale is not finite and positive (what
        :meth:`fit` never gives)."""
        obj = cls()
        obj.mean_ = np.asarray(arrays[f"{prefix}mean"], dtype=float)
        obj.scale_ = np.asarray(arrays[f"{prefix}scale"], dtype=float)
        for name, bad in (("mean", ~np.isfinite(obj.mean_)), ("scale", ~(np.isfinite(obj.scale_) & (obj.scale_ > 0)))):
            if np.any(bad):
                j = int(np.flatnonzero(bad)[0])
                raise DataError(f"'{prefix}{name}' is {float(getattr(obj, name + '_')[j])!r} at index {j} "
                                f"({int(bad.sum())} such); a standardiser's means are finite and its scales positive")
        return obj


def pixel_namer(wave: Sequence[float] | np.ndarray | None) -> Callable[[int], str]:
    """Describe pixel j by index and wavelength, for error messages."""
    w = None if wave is None else np.asarray(wave, dtype=float)

    def describe(j: int) -> str:
        if w is not None and 0 <= j < w.size:
            return f"pixel {j} ({w[j]:.2f} A)"
        return f"pixel {j}"
    return describe


def label_namer(names: Sequence[str]) -> Callable[[int], str]:
    names = list(names)
    return lambda j: f"label {names[j]!r}" if 0 <= j < len(names) else f"label {j}"
