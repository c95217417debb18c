"""Priors ``uniform`` and ``gaussian``: the same for every star.

``uniform`` is a box per label (by default the training labels' range); ``gaussian`` is an
independent Gaussian on the labels it names, optionally cut to a box. Both are independent
Gaussians on a box, so both have a :class:`~slamfw.LeastSquaresForm` and least-squares inferers
(``lm``) use them as extra residuals and bounds; ``log_prob`` is that form's density.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import numpy as np
from pydantic import AfterValidator, Field, ValidationInfo, field_validator

from slamfw import (
    ConfigError,
    DataError,
    LeastSquaresForm,
    NotFittedError,
    Params,
    Prior,
    hookimpl,
)

SLAMFW_PLUGIN_API = (1, 1)

#: label name -> (lo, hi)
Bounds = dict[str, tuple[float, float]]

BOUNDS_HELP = "label name -> [lo, hi]"


def _check_bounds(bounds: Bounds) -> Bounds:
    """``bounds`` unchanged, or a ValueError naming the label whose lo is not below hi."""
    for name, (lo, hi) in bounds.items():
        if not lo < hi:
            raise ValueError(f"{name}: lo ({lo:g}) must be below hi ({hi:g})")
    return bounds


def _finite(value: float) -> float:
    """``value``, or a ValueError (pydantic puts the key, ``mean.Teff``, in front of it)."""
    if not np.isfinite(value):
        raise ValueError(f"must be finite (got {value})")
    return value


def _finite_positive(value: float) -> float:
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"must be finite and > 0 (got {value})")
    return value


def _check_names(what: str, keys: Sequence[str], label_names: Sequence[str]) -> None:
    """A ConfigError naming ``what.<key>`` for the first key that is not a label."""
    for key in keys:
        if key not in label_names:
            raise ConfigError(f"{what}.{key}: no such label (the labels are {', '.join(label_names)})")


def _training_labels(name: str, train_labels: np.ndarray, label_names: Sequence[str]) -> np.ndarray:
    """train_labels as a float (M, L) array, or a DataError."""
    labels = np.asarray(train_labels, dtype=float)
    if labels.ndim != 2 or labels.shape[1] != len(label_names):
        raise DataError(f"{name} prior: training labels of shape {labels.shape} do not match the "
                        f"{len(label_names)} label names {list(label_names)}")
    return labels


def _apply_bounds(what: str, bounds: Bounds, label_names: Sequence[str], lo: np.ndarray, hi: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    """lo, hi (L,) with the labels named in ``bounds`` replaced by their box."""
    _check_names(what, list(bounds), label_names)
    lo, hi = lo.copy(), hi.copy()
    for key, (a, b) in bounds.items():
        j = list(label_names).index(key)
        lo[j], hi[j] = a, b
    return lo, hi


class _BoxGaussianPrior(Prior):
    """What both priors share: a fitted form (``mean_``, ``sigma_``, ``lo_``, ``hi_``, each (L,))
    and a log_prob that is its density."""

    def _require_fit(self) -> None:
        if not hasattr(self, "lo_"):
            raise NotFittedError(f"{type(self).__name__} is not fitted: call fit(train_labels, label_names) first")

    def least_squares_form(self, star: str | None = None) -> LeastSquaresForm:
        """The prior as independent Gaussians on a box: four (L,) arrays (copies)."""
        self._require_fit()
        return LeastSquaresForm(mean=self.mean_.copy(), sigma=self.sigma_.copy(), lo=self.lo_.copy(),
                                hi=self.hi_.copy())

    def log_prob(self, theta: np.ndarray, star: str | None = None) -> np.ndarray:
        """(W,) log density (up to a constant) of theta (W, L); ``star`` is ignored."""
        self._require_fit()
        theta = np.atleast_2d(np.asarray(theta, dtype=float))
        if theta.ndim != 2 or theta.shape[1] != self.n_labels_:
            raise DataError(f"{type(self).__name__}: theta has shape {theta.shape}, expected (W, {self.n_labels_})")
        return self.least_squares_form().log_prob(theta) + 0.0      # + 0.0: no -0.0 inside the box


class UniformPrior(_BoxGaussianPrior):
    """A box per label: flat inside, impossible outside (default: the training labels' range)."""

    class Params(Params):
        bounds: Bounds = Field(default_factory=dict, description=f"{BOUNDS_HELP}; other labels: the training range")
        infinite_ok = ("bounds",)               # a side left open: Teff = [4000, inf]
        margin: float = Field(0.0, ge=0, description="widen the training-range boxes by this fraction of their "
                                                      "width on each side")

        bounds_ordered = field_validator("bounds")(_check_bounds)

    def fit(self, train_labels: np.ndarray, label_names: Sequence[str]) -> UniformPrior:
        """Sets ``lo_``, ``hi_`` (L,): ``bounds`` where given, else the training range (M, L) widened by
        ``margin``; ``mean_`` (L,) NaN and ``sigma_`` (L,) inf (no Gaussian term)."""
        super().fit(train_labels, label_names)
        labels = _training_labels("uniform", train_labels, self.label_names_)
        lo, hi = self._training_box(labels)
        self.lo_, self.hi_ = _apply_bounds("uniform prior: bounds", self.bounds, self.label_names_, lo, hi)
        self.mean_ = np.full(self.n_labels_, np.nan)
        self.sigma_ = np.full(self.n_labels_, np.inf)
        return self

    def _training_box(self, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(lo, hi) (L,): the finite training range of each label (M, L), widened by ``margin``."""
        lo = np.full(self.n_labels_, np.nan)
        hi = np.full(self.n_labels_, np.nan)
        for j, name in enumerate(self.label_names_):
            finite = labels[:, j][np.isfinite(labels[:, j])]
            if finite.size:
                lo[j], hi[j] = finite.min(), finite.max()
            elif name not in self.bounds:
                raise DataError(f"uniform prior: no finite training value of {name}, so no default box; "
                                f"give bounds.{name}")
        pad = self.margin * (hi - lo)
        return lo - pad, hi + pad


class GaussianPrior(_BoxGaussianPrior):
    """Independent Gaussians on the named labels (others free), optionally cut to a box."""

    class Params(Params):
        mean: dict[str, Annotated[float, AfterValidator(_finite)]] = Field(
            default_factory=dict, description="label name -> mean")
        sigma: dict[str, Annotated[float, AfterValidator(_finite_positive)]] = Field(
            default_factory=dict, validate_default=True, description="label name -> standard deviation (> 0)")
        bounds: Bounds = Field(default_factory=dict, description=f"{BOUNDS_HELP}; other labels: open")
        infinite_ok = ("bounds",)               # a side left open: Teff = [4000, inf]

        bounds_ordered = field_validator("bounds")(_check_bounds)

        @field_validator("sigma")
        @classmethod
        def _same_labels(cls, sigma: dict[str, float], info: ValidationInfo) -> dict[str, float]:
            # Checked on sigma, after mean (when mean is valid), so that the message has a key.
            mean = info.data.get("mean")
            if mean is not None and set(mean) != set(sigma):
                odd = sorted(set(mean) ^ set(sigma))
                raise ValueError(f"mean and sigma must name the same labels; only one of them names {odd}")
            return sigma

    def fit(self, train_labels: np.ndarray, label_names: Sequence[str]) -> GaussianPrior:
        """Sets ``mean_``, ``sigma_`` (L,) (NaN, inf for labels without a Gaussian) and ``lo_``, ``hi_``
        (L,) (``-inf``, ``inf`` where there are no bounds). The training labels are not used."""
        super().fit(train_labels, label_names)
        _training_labels("gaussian", train_labels, self.label_names_)
        _check_names("gaussian prior: mean", list(self.mean), self.label_names_)
        self.mean_ = np.array([self.mean.get(n, np.nan) for n in self.label_names_], dtype=float)
        self.sigma_ = np.array([self.sigma.get(n, np.inf) for n in self.label_names_], dtype=float)
        open_lo, open_hi = np.full(self.n_labels_, -np.inf), np.full(self.n_labels_, np.inf)
        self.lo_, self.hi_ = _apply_bounds("gaussian prior: bounds", self.bounds, self.label_names_, open_lo, open_hi)
        return self


@hookimpl
def slamfw_register_priors(register):
    register("uniform", UniformPrior)
    register("gaussian", GaussianPrior)
