"""RBF kernel expansions shared by the kernel emulators (``slam``, ``krr``).

Both models are, per pixel j, ``f_j(z) = sum_i dual[j, i] exp(-gamma_j |z - x_i|^2) + intercept_j``
over standardised training labels ``x_i``. Pixels that share a gamma share the kernel row, so
evaluation is one matrix product per gamma.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def sq_dist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances (K, M) between rows of a (K, L) and b (M, L)."""
    d = a @ b.T                      # built in place: one (K, M) array, no temporaries
    d *= -2.0
    d += (a * a).sum(1)[:, None]
    d += (b * b).sum(1)[None, :]
    return np.maximum(d, 0.0, out=d)


@dataclass
class _Group:
    gamma: float
    pixels: np.ndarray   # (p,) pixel indices
    centres: np.ndarray  # (S, L) training labels with a non-zero coefficient in any of these pixels
    dual: np.ndarray     # (S, p)


class RBFExpansion:
    """Evaluates the expansion and its gradient for (K, L) standardised labels.

    Parameters
    ----------
    X : (M, L) standardised training labels
    dual : (P, M) coefficients (0 where a star does not contribute to a pixel)
    intercept : (P,)
    gamma : (P,) RBF width of each pixel
    """

    def __init__(self, X: np.ndarray, dual: np.ndarray, intercept: np.ndarray, gamma: np.ndarray) -> None:
        self.n_pixels, self.n_labels = dual.shape[0], X.shape[1]
        self.intercept = intercept
        self.groups = []
        for g in np.unique(gamma):
            pix = np.flatnonzero(gamma == g)
            rows = np.flatnonzero(np.any(dual[pix] != 0, axis=0))
            self.groups.append(_Group(float(g), pix, np.ascontiguousarray(X[rows]),
                                      np.ascontiguousarray(dual[pix][:, rows].T)))

    def value(self, z: np.ndarray) -> np.ndarray:
        """(K, P) expansion at z (K, L)."""
        out = np.empty((z.shape[0], self.n_pixels))
        for grp in self.groups:
            out[:, grp.pixels] = np.exp(-grp.gamma * sq_dist(z, grp.centres)) @ grp.dual + self.intercept[grp.pixels]
        return out

    def gradient(self, z: np.ndarray) -> np.ndarray:
        """(K, P, L) derivative of the expansion with respect to z."""
        return self.value_and_gradient(z)[1]

    def value_and_gradient(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(K, P) expansion and (K, P, L) its derivative at z (K, L), sharing the kernel matrix:
        per gamma group, ``K @ dual`` and, per label l, ``d/dz_l = -2 gamma (z_l (K @ dual) -
        (K * x_l) @ dual)``: L + 1 matrix products of (K, S) by (S, p)."""
        k = z.shape[0]
        val = np.empty((k, self.n_pixels))
        jac = np.empty((k, self.n_pixels, self.n_labels))
        for grp in self.groups:
            kz = np.exp(-grp.gamma * sq_dist(z, grp.centres))           # (K, S)
            kd = kz @ grp.dual                                           # (K, p)
            val[:, grp.pixels] = kd + self.intercept[grp.pixels]
            for l_ in range(self.n_labels):
                kx = (kz * grp.centres[:, l_][None, :]) @ grp.dual      # (K, p)
                jac[:, grp.pixels, l_] = -2.0 * grp.gamma * (z[:, l_, None] * kd - kx)
        return val, jac

    @property
    def flops_per_evaluation(self) -> float:
        """Floating-point operations of :meth:`value_and_gradient` per row of labels (the matrix
        products and the kernel matrix; exp counted as one)."""
        total = 0.0
        for grp in self.groups:
            s, p = grp.centres.shape[0], grp.dual.shape[1]
            total += s * (2 * self.n_labels + 3) + (self.n_labels + 1) * (2 * s * p + s) + 3 * self.n_labels * p
        return total


class RBFPrediction:
    """``predict`` and analytic ``jacobian`` for emulators keeping an :class:`RBFExpansion` in ``_rbf``
    over standardised labels and flux."""

    def predict(self, labels: np.ndarray) -> np.ndarray:
        """Normalised flux (K, P) at labels (K, L) in physical units."""
        theta = self._check_labels(labels)
        return self.flux_scaler_.inverse_transform(self._rbf.value(self.label_scaler_.transform(theta)))

    def jacobian(self, labels: np.ndarray) -> np.ndarray:
        """Analytic d flux / d label (K, P, L) in physical units."""
        theta = self._check_labels(labels)
        jac = self._rbf.gradient(self.label_scaler_.transform(theta))
        return jac * self.flux_scaler_.scale_[None, :, None] / self.label_scaler_.scale_[None, None, :]

    def predict_and_jacobian(self, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`predict` and :meth:`jacobian` together, from one kernel matrix per gamma group."""
        theta = self._check_labels(labels)
        val, jac = self._rbf.value_and_gradient(self.label_scaler_.transform(theta))
        return (self.flux_scaler_.inverse_transform(val),
                jac * self.flux_scaler_.scale_[None, :, None] / self.label_scaler_.scale_[None, None, :])

    @property
    def flops_per_evaluation(self) -> float:
        """Floating-point operations of :meth:`predict_and_jacobian` per row of labels."""
        return self._rbf.flops_per_evaluation
