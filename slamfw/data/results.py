"""Inferred labels of N spectra: :class:`LabelResult`."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Sequence

import numpy as np

_EXTRA = "extra/"
_UNIT = "extra_unit/"


@dataclass
class LabelResult:
    """Labels inferred for N spectra.

    labels, init : (N, L) physical units (the solution and the initial guess)
    cov : (N, L, L) covariance in physical units; ``errors`` is sqrt of its diagonal
    converged : (N,) bool
    rmse : (N,) root-mean-square of observed - model flux over good pixels
    chi2 : (N,) reduced chi^2 over good pixels (likelihood weights)
    nfev : (N,) function evaluations
    samples : optional (N, S, L) posterior samples (MCMC inferers)
    extra : further per-star arrays, each with N rows: (N,) becomes the catalogue column
        ``<key>``, (N, L) the columns ``<label>_<key>``
    extra_units : unit of an ``extra`` array's columns, by key: ``"label"`` for the label's own
        unit (percentiles of a label, say), or an astropy unit string; none: dimensionless
    errors_calibrated : optional (N, L) uncertainties calibrated on the training set (the
        model's error model); ``errors`` stays the formal one, from ``cov``
    """

    labels: np.ndarray
    cov: np.ndarray
    converged: np.ndarray
    rmse: np.ndarray
    chi2: np.ndarray
    init: np.ndarray
    label_names: list[str]
    nfev: np.ndarray | None = None
    samples: np.ndarray | None = None
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    extra_units: dict[str, str] = field(default_factory=dict)
    errors_calibrated: np.ndarray | None = None

    ARRAYS: ClassVar[tuple[str, ...]] = ("labels", "cov", "converged", "rmse", "chi2", "init", "nfev", "samples",
                                         "errors_calibrated")

    @property
    def errors(self) -> np.ndarray:
        return np.sqrt(np.clip(np.diagonal(self.cov, axis1=1, axis2=2), 0, None))

    @property
    def n(self) -> int:
        return self.labels.shape[0]

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Every field as named numpy arrays (``extra`` under ``extra/<key>``), for ``np.savez``."""
        out = {k: np.asarray(getattr(self, k)) for k in self.ARRAYS if getattr(self, k) is not None}
        out.update({_EXTRA + k: np.asarray(v) for k, v in self.extra.items()})
        out.update({_UNIT + k: np.asarray(v, dtype=str) for k, v in self.extra_units.items()})
        out["label_names"] = np.asarray(self.label_names, dtype=str)
        return out

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> "LabelResult":
        """The inverse of :meth:`to_arrays`."""
        kw = {k: arrays[k] for k in cls.ARRAYS if k in arrays}
        extra = {k[len(_EXTRA):]: v for k, v in arrays.items() if k.startswith(_EXTRA)}
        units = {k[len(_UNIT):]: str(v) for k, v in arrays.items() if k.startswith(_UNIT)}
        return cls(label_names=[str(n) for n in arrays["label_names"]], extra=extra, extra_units=units, **kw)

    def rows(self, start: int, stop: int) -> "LabelResult":
        """The stars ``start:stop`` (views of this result's arrays); the inverse of :meth:`concatenate`."""
        return self.take(slice(start, stop))

    def take(self, index: slice | np.ndarray | Sequence[int]) -> "LabelResult":
        """The stars ``index``: a slice (views), or integer positions, in that order (copies)."""
        index = index if isinstance(index, slice) else np.asarray(index, dtype=np.intp)
        kw = {k: getattr(self, k)[index] for k in self.ARRAYS if getattr(self, k) is not None}
        return type(self)(label_names=list(self.label_names), extra={k: v[index] for k, v in self.extra.items()},
                          extra_units=dict(self.extra_units), **kw)

    @classmethod
    def concatenate(cls, parts: Sequence["LabelResult"]) -> "LabelResult":
        """One result with the stars of ``parts`` in order; every field is kept."""
        first = parts[0]
        kw = {k: np.concatenate([getattr(p, k) for p in parts]) for k in cls.ARRAYS
              if getattr(first, k) is not None}
        extra = {k: np.concatenate([p.extra[k] for p in parts]) for k in first.extra}
        return cls(label_names=list(first.label_names), extra=extra, extra_units=dict(first.extra_units), **kw)
