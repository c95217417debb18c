"""Kernel ridge regression per pixel, RBF kernel, hyper-parameters by exact leave-one-out CV.

The fast sibling of SLAM's SVR: the same RBF kernel on standardised labels and the same
standardised flux (paper eq. 2-4), but a squared loss with ridge ``alpha`` instead of the
epsilon-insensitive loss, so every fit is linear algebra.

For each gamma of the grid the kernel matrix is decomposed once, ``K = U diag(e) U^T``. Then, for
every ridge ``alpha`` and every pixel at once (Y is the (M, P) standardised flux):

- dual coefficients ``A = (K + alpha I)^-1 Y = U diag(1 / (e + alpha)) U^T Y``;
- the exact leave-one-out residual of star i is ``A_i / [(K + alpha I)^-1]_ii`` (no refitting),
  with ``[(K + alpha I)^-1]_ii = sum_k U_ik^2 / (e_k + alpha)``;
- the fit to all stars misses by ``alpha * A``.

Each pixel takes the (gamma, alpha) of lowest LOO MSE; pixels sharing a gamma form one group at
prediction time. Pixels where some training stars are masked (ivar 0) are solved on their good
stars, one decomposition per distinct mask. Model error = ``sqrt(LOO MSE) * s_j`` as in SLAM.
"""
from __future__ import annotations

import logging

import numpy as np
from pydantic import Field, PositiveFloat

from slamfw import DataError, Params, StandardizedEmulator, check_training_data, hookimpl

from ._rbf import RBFExpansion, RBFPrediction, sq_dist
from ._state import require

SLAMFW_PLUGIN_API = (1, 8)

log = logging.getLogger(__name__)


def loo_search(d2: np.ndarray, gammas: list[float], Y: np.ndarray, alphas: list[float]) -> dict[str, np.ndarray]:
    """Exact LOO over a (gamma, alpha) grid for the columns of Y (m, p), all good.

    d2: (m, m) squared distances of the standardised training labels; the kernel of one gamma
    at a time is built from it (memory: three m x m arrays). Returns per pixel the best grid
    indices, LOO MSE and MD (predicted - true), the training MSE and MD, and the dual
    coefficients (p, m).
    """
    import scipy.linalg                     # fitting only: the start-up of predict and its workers skips it
    m, p = Y.shape
    out = {"cv_mse": np.full(p, np.inf), "cv_md": np.zeros(p), "mse": np.zeros(p), "md": np.zeros(p),
           "gamma_index": np.zeros(p, np.int64), "alpha": np.zeros(p), "dual": np.zeros((p, m))}
    for a, gamma in enumerate(gammas):
        K = np.multiply(d2, -gamma)
        np.exp(K, out=K)
        # MRRR (evr) needs O(m) workspace and overwrites K in place (K.T: the Fortran-ordered view
        # of the symmetric K, so no copy is made): d2, K and U are the only m x m arrays
        e, U = scipy.linalg.eigh(K.T, overwrite_a=True, check_finite=False, driver="evr")
        del K
        e = np.maximum(e, 0.0)          # a PSD kernel: clip rounding below zero
        Q = U.T @ Y
        for alpha in alphas:
            inv = 1.0 / (e + alpha)
            dual = U @ (inv[:, None] * Q)            # (m, p)
            ginv_diag = np.einsum("ik,ik,k->i", U, U, inv)   # [(K + alpha I)^-1]_ii, no m x m temporary
            loo = -dual / ginv_diag[:, None]         # predicted - true, leaving each star out
            mse = np.mean(loo ** 2, axis=0)
            better = mse < out["cv_mse"]
            if not better.any():
                continue
            fit_resid = -alpha * dual[:, better]
            out["cv_mse"][better] = mse[better]
            out["cv_md"][better] = np.mean(loo[:, better], axis=0)
            out["mse"][better] = np.mean(fit_resid ** 2, axis=0)
            out["md"][better] = np.mean(fit_resid, axis=0)
            out["gamma_index"][better] = a
            out["alpha"][better] = alpha
            out["dual"][better] = dual[:, better].T
        del U, Q                         # free this gamma's m x m eigenvectors before the next kernel
    return out


class KRREmulator(RBFPrediction, StandardizedEmulator):
    """Kernel ridge regression per pixel (RBF), (alpha, gamma) by exact leave-one-out CV.

    Fitted attributes (P pixels, M stars): ``label_scaler_``, ``flux_scaler_``; ``X_train_`` (M, L);
    ``dual_coef_`` (P, M); ``gamma_``, ``alpha_`` (P,) chosen per pixel; ``cv_mse_``, ``cv_md_``
    (P,) leave-one-out in standardised flux units; ``mse_``, ``md_`` (P,) of the fit to all stars;
    ``model_error_`` (P,) in flux units.
    """

    class Params(Params):
        gamma: list[PositiveFloat] = Field(default=[0.01, 0.03, 0.1, 0.3, 1.0], min_length=1,
                                           description="RBF width grid")
        alpha: list[PositiveFloat] = Field(default=[1e-4, 1e-3, 1e-2, 1e-1, 1.0], min_length=1,
                                           description="ridge grid (standardised flux units)")
        max_stars: int = Field(10000, ge=2, description="refuse larger training sets: the exact LOO holds "
                               "three M x M arrays (2.4 GB at 10,000 stars)")

    def fit(self, labels: np.ndarray, flux: np.ndarray, ivar: np.ndarray) -> "KRREmulator":
        """Train on labels (M, L), flux (M, P), ivar (M, P); ivar 0 excludes a star from a pixel."""
        labels, flux, ivar = check_training_data(labels, flux, ivar)
        m, p = flux.shape
        if m > self.max_stars:
            raise DataError(f"krr: {m} training stars exceed max_stars={self.max_stars}: exact LOO needs an "
                            f"{m} x {m} eigendecomposition per gamma and about {3 * 8 * m * m / 1e9:.1f} GB. "
                            f"Raise max_stars if the memory is there, or use slam.")
        good = ivar > 0
        self.fit_standardizers(labels, flux, good, min_count=3, ivar=ivar)
        X = self.label_scaler_.transform(labels)
        Y = np.where(good, self.flux_scaler_.transform(flux), 0.0)
        d2 = sq_dist(X, X)
        patterns, which = np.unique(good.T, axis=0, return_inverse=True)
        which = np.ravel(which)
        log.info("krr: %d pixels x %d stars, grid %d gamma x %d alpha, %d mask pattern(s)",
                 p, m, len(self.gamma), len(self.alpha), len(patterns))
        self.dual_coef_ = np.zeros((p, m))
        self.gamma_ = np.zeros(p)
        self.alpha_ = np.zeros(p)
        self.cv_mse_, self.cv_md_, self.mse_, self.md_ = (np.zeros(p) for _ in range(4))
        for k, pattern in enumerate(patterns):
            pix = np.flatnonzero(which == k)
            rows = np.flatnonzero(pattern)
            sub = d2 if rows.size == m else d2[np.ix_(rows, rows)]
            res = loo_search(sub, list(self.gamma), Y[np.ix_(rows, pix)], list(self.alpha))
            self.dual_coef_[np.ix_(pix, rows)] = res["dual"]
            self.gamma_[pix] = np.asarray(self.gamma)[res["gamma_index"]]
            self.alpha_[pix] = res["alpha"]
            for key in ("cv_mse", "cv_md", "mse", "md"):
                getattr(self, key + "_")[pix] = res[key]
        self.X_train_ = X
        self.rebuild()
        log.info("krr: median LOO MSE %.4f, median final MSE %.4f (standardised units)",
                 np.median(self.cv_mse_), np.median(self.mse_))
        return self

    def rebuild(self) -> None:
        self._check_state()
        self.n_labels_ = self.X_train_.shape[1]
        self.n_pixels_ = self.dual_coef_.shape[0]
        self.cv_scheme_ = "leave-one-out"
        self.model_error_ = self.model_error_from_cv(self.cv_mse_)
        self._rbf = RBFExpansion(self.X_train_, self.dual_coef_, np.zeros(self.n_pixels_), self.gamma_)

    def _check_state(self) -> None:
        """A :class:`DataError` naming the array and its first bad pixel (or training star) when a
        loaded state is inconsistent: shapes, non-finite coefficients or labels, a gamma or alpha
        not finite and positive, a CV MSE (the model error) not finite and not negative."""
        X, dual = np.asarray(self.X_train_), np.asarray(self.dual_coef_)
        if X.ndim != 2 or X.dtype.kind not in "fiu":
            raise DataError(f"krr: X_train ({X.dtype} of shape {X.shape}) must be a (stars, labels) array of numbers")
        if dual.ndim != 2 or dual.shape[1] != X.shape[0] or dual.dtype.kind not in "fiu":
            raise DataError(f"krr: dual_coef ({dual.dtype} of shape {dual.shape}) needs one column per training "
                            f"star ({X.shape[0]} in X_train)")
        p = dual.shape[0]
        for name in ("gamma_", "alpha_", "cv_mse_", "cv_md_", "mse_", "md_"):
            arr = np.asarray(getattr(self, name))
            if arr.shape != (p,) or arr.dtype.kind not in "fiu":
                raise DataError(f"krr: {name.rstrip('_')} ({arr.dtype} of shape {arr.shape}) needs one number per "
                                f"pixel ({p})")
        gamma, alpha, cv_mse = (np.asarray(a, float) for a in (self.gamma_, self.alpha_, self.cv_mse_))
        for name, ok, rule, where in (
                ("gamma", np.isfinite(gamma) & (gamma > 0), "finite and positive", "pixel"),
                ("alpha", np.isfinite(alpha) & (alpha > 0), "finite and positive", "pixel"),
                ("cv_mse", np.isfinite(cv_mse) & (cv_mse >= 0), "finite and not negative", "pixel"),
                ("dual_coef", np.all(np.isfinite(dual), axis=1), "finite", "pixel"),
                ("X_train", np.all(np.isfinite(X), axis=1), "finite", "training star")):
            require(ok, f"krr: {name} is not {rule}", where)

    STATE_ARRAYS = ("X_train_", "dual_coef_", "gamma_", "alpha_", "cv_mse_", "cv_md_", "mse_", "md_")
    STATE_KIND = "krr-rbf"


@hookimpl
def slamfw_register_emulators(register):
    register("krr", KRREmulator)
