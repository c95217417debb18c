"""The Prior contract: what is known about a star's labels before its spectrum is read."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .base import Component


@dataclass
class LeastSquaresForm:
    """A prior as least-squares solvers use it: independent Gaussians restricted to a box.

    mean, sigma : (L,) Gaussian per label; sigma ``inf`` (mean NaN) where a label has none
    lo, hi : (L,) the box; ``-inf``/``inf`` on open sides

    ``log_prob(theta) = -0.5 * sum(((theta - mean) / sigma)^2)`` (finite sigma only) inside the
    box, ``-inf`` outside, up to a constant.
    """

    mean: np.ndarray
    sigma: np.ndarray
    lo: np.ndarray
    hi: np.ndarray

    @property
    def has_gaussian(self) -> np.ndarray:
        """(L,) bool: the labels with a Gaussian term."""
        return np.isfinite(self.sigma) & (self.sigma > 0)

    @property
    def has_box(self) -> bool:
        return bool(np.any(np.isfinite(self.lo)) or np.any(np.isfinite(self.hi)))

    def log_prob(self, theta: np.ndarray) -> np.ndarray:
        """(W,) for theta (W, L)."""
        theta = np.atleast_2d(theta)
        g = self.has_gaussian
        z = np.where(g, (theta - np.where(g, self.mean, 0.0)) / np.where(g, self.sigma, 1.0), 0.0)
        inside = np.all((theta >= self.lo) & (theta <= self.hi), axis=1)
        return np.where(inside, -0.5 * np.sum(z ** 2, axis=1), -np.inf)


class Prior(Component):
    """A prior on physical labels, applied by every inferer.

    Contract (``slamfw.testing.check_prior``):

    - ``fit(train_labels (M, L), label_names) -> self``: learn what the prior takes from the
      training set (the default box of ``uniform`` is the training labels' range); the pipeline
      calls it once per model, before inference.
    - ``log_prob(theta (W, L), star=None) -> (W,)``: the log prior density, up to a constant, of
      W label vectors for one star (``star``: its id; priors that differ from star to star need
      it, the others ignore it); ``-inf`` outside the support. Vectorised over W (MCMC walkers).
    - ``least_squares_form(star=None) -> LeastSquaresForm | None``: the same prior as independent
      Gaussians on a box, when it has that form, so that least-squares inferers (``lm``) turn it
      into extra residuals and bounds. None: it has no such form (such a prior serves sampling
      inferers only, and ``lm`` refuses it by name).
    - ``per_star``: True when the prior depends on the star (its id must be passed).
    """

    per_star: ClassVar[bool] = False

    def fit(self, train_labels: np.ndarray, label_names: Sequence[str]) -> Prior:
        self.label_names_ = list(label_names)
        self.n_labels_ = len(self.label_names_)
        return self

    def log_prob(self, theta: np.ndarray, star: str | None = None) -> np.ndarray:
        form = self.least_squares_form(star)
        if form is None:
            raise NotImplementedError(f"{type(self).__name__} must implement log_prob")
        return form.log_prob(np.asarray(theta, float))

    def least_squares_form(self, star: str | None = None) -> LeastSquaresForm | None:
        return None
