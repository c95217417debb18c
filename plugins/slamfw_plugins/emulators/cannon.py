"""The Cannon (Ness et al. 2015), with the L1 regularisation of Casey et al. (2016), as an emulator.

Per pixel j, the normalised flux is a polynomial of the labels, offset and scaled by the training
set (``z = (theta - mean) / std``, the core :class:`~slamfw.Standardizer`)::

    f_j(z) = v(z) . c_j,   v(z) = [1, z_1, ..., z_L, z_1^2, z_1 z_2, ..., (cubic terms for order 3)]

with ``order`` 1, 2 (the classic quadratic Cannon) or 3. Training star i at pixel j has variance
``sigma_ij^2 + s_j^2`` (its noise plus the pixel's intrinsic scatter). For each pixel the
coefficients ``c_j`` and the scatter ``s_j`` maximise the likelihood

    ln L_j = -1/2 sum_i [ (f_ij - v(z_i).c_j)^2 / (sigma_ij^2 + s_j^2) + ln(sigma_ij^2 + s_j^2) ]
             - regularization * sum_{non-linear k} |c_jk|

Without regularisation ``c_j`` is the weighted least-squares solution for a given ``s_j``, and
``s_j`` maximises the profile likelihood (a coarse grid, then golden section, for all pixels at
once). With ``regularization`` > 0 (Casey et al. 2016: the L1 norm of the non-linear
coefficients, added to the negative log-likelihood, flux in normalised units) ``c_j`` comes from
proximal gradient descent (FISTA) and ``c_j``, ``s_j`` are updated in turn.

Cross-validation (for the comparison with SLAM, paper Fig. 2): ``n_folds``-fold, the same split
as ``slam`` for the same ``random_state``; ``cv_mse_``, ``cv_md_`` in standardised flux units.

Model error for the likelihood (``model_error``):
- ``"combined"`` (default): ``max(s_j, cv)``: the CV model error, never below the fitted
  intrinsic scatter;
- ``"cv"``: the rule of every standardised emulator (``StandardizedEmulator.model_error_from_cv``):
  the held-out residual variance minus the training noise (which an observed spectrum's own
  noise replaces), ``sqrt(max(CV MSE_j s_flux_j^2 - <sigma_j^2>, (0.1 sqrt(CV MSE_j) s_flux_j)^2))``;
- ``"scatter"``: ``s_j``, The Cannon's own.
"""
from __future__ import annotations

import itertools
import logging
from typing import Any, Callable, Literal

import numpy as np
from pydantic import Field

from slamfw import DataError, Params, StandardizedEmulator, check_training_data, hookimpl, residual_stats

from ._state import require

SLAMFW_PLUGIN_API = (1, 0)

log = logging.getLogger(__name__)

#: Golden-section ratio.
_INVPHI = (np.sqrt(5.0) - 1.0) / 2.0
#: Floor of the model error, as a fraction of the pixel's training-set flux scatter.
_MIN_ERROR = 1e-6


def label_terms(n_labels: int, order: int) -> list[tuple[int, ...]]:
    """The monomials of the design vector: ``()`` is the constant, ``(0, 1)`` is z_0 z_1."""
    terms: list[tuple[int, ...]] = [()]
    for o in range(1, order + 1):
        terms += list(itertools.combinations_with_replacement(range(n_labels), o))
    return terms


def design_matrix(z: np.ndarray, terms: list[tuple[int, ...]], xp: Any = np) -> np.ndarray:
    """(K, D) design vectors at standardised labels z (K, L) (arrays of ``xp``: numpy or CuPy)."""
    out = xp.ones((z.shape[0], len(terms)))
    for t, idx in enumerate(terms):
        for i in idx:
            out[:, t] *= z[:, i]
    return out


def design_gradient(z: np.ndarray, terms: list[tuple[int, ...]], xp: Any = np) -> np.ndarray:
    """(K, D, L) derivatives of the design vectors with respect to z."""
    k, n_lab = z.shape
    out = xp.zeros((k, len(terms), n_lab))
    for t, idx in enumerate(terms):
        for pos, i in enumerate(idx):
            part = xp.ones(k)
            for q, i2 in enumerate(idx):
                if q != pos:
                    part *= z[:, i2]
            out[:, t, i] += part
    return out


def _normal_equations(V: np.ndarray, f: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel ``A = V^T W V`` (P, D, D) and ``b = V^T W f`` (P, D) for weights w (M, P)."""
    d = V.shape[1]
    iu, ju = np.triu_indices(d)
    # A is symmetric: one product for its upper triangle, d (d + 1) / 2 columns instead of d^2
    upper = w.T @ (V[:, iu] * V[:, ju])                 # (P, d (d + 1) / 2)
    A = np.empty((upper.shape[0], d, d))
    A[:, iu, ju] = upper
    A[:, ju, iu] = upper
    b = (w * f).T @ V
    # a whisker of ridge keeps pixels with few good stars solvable
    A += np.eye(d)[None] * (1e-10 * np.maximum(np.trace(A, axis1=1, axis2=2) / d, 1e-300))[:, None, None]
    return A, b


def _solve(A: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.linalg.solve(A, b[..., None])[..., 0]


def _l1_solve(A: np.ndarray, b: np.ndarray, c0: np.ndarray, lam: float, nonlinear: np.ndarray,
              max_iter: int, tol: float) -> np.ndarray:
    """argmin_c 1/2 c^T A c - b^T c + lam |c_nonlinear|_1 per pixel, by FISTA. A (P, D, D), b, c0 (P, D)."""
    lip = np.linalg.eigvalsh(A)[:, -1][:, None]
    thresh = (lam / lip) * nonlinear[None, :]
    c, y, t = c0.copy(), c0.copy(), 1.0
    for _ in range(max_iter):
        grad = np.einsum("pde,pe->pd", A, y) - b
        step = y - grad / lip
        c_new = np.sign(step) * np.maximum(np.abs(step) - thresh, 0.0)
        t_new = (1.0 + np.sqrt(1.0 + 4.0 * t * t)) / 2.0
        y = c_new + ((t - 1.0) / t_new) * (c_new - c)
        change = np.max(np.abs(c_new - c)) / max(np.max(np.abs(c_new)), 1e-300)
        c, t = c_new, t_new
        if change < tol:
            break
    return c


def _golden_min(objective: Callable[[np.ndarray], np.ndarray], s_max: np.ndarray, n_grid: int,
                n_golden: int) -> np.ndarray:
    """Per-pixel minimiser s in [0, s_max] (P,) of a vectorised objective(s (P,)) -> (P,).

    A coarse grid (0 and log-spaced up to s_max) locates the best cell; golden section refines it.
    """
    p = s_max.size
    cand = np.concatenate([[0.0], np.geomspace(1e-4, 1.0, n_grid - 1)])
    vals = np.array([objective(s_max * c) for c in cand])           # (G, P)
    best = np.argmin(vals, axis=0)
    lo = s_max * cand[np.maximum(best - 1, 0)]
    hi = s_max * cand[np.minimum(best + 1, cand.size - 1)]
    x1 = hi - _INVPHI * (hi - lo)
    x2 = lo + _INVPHI * (hi - lo)
    f1, f2 = objective(x1), objective(x2)
    for _ in range(n_golden):
        left = f1 < f2                      # the minimum lies in [lo, x2]
        hi = np.where(left, x2, hi)
        lo = np.where(left, lo, x1)
        new_x = np.where(left, hi - _INVPHI * (hi - lo), lo + _INVPHI * (hi - lo))
        f_new = objective(new_x)
        x1, x2, f1, f2 = (np.where(left, new_x, x2), np.where(left, x1, new_x),
                          np.where(left, f_new, f2), np.where(left, f1, f_new))
    # the best of the final bracket and of the grid
    s_fit = (lo + hi) / 2.0
    grid_best = s_max * cand[best]
    return np.where(objective(s_fit) <= vals[best, np.arange(p)], s_fit, grid_best)


def fit_pixels(V: np.ndarray, flux: np.ndarray, noise_var: np.ndarray, good: np.ndarray, s_max: np.ndarray,
               regularization: float, nonlinear: np.ndarray, n_grid: int = 16, n_golden: int = 30,
               l1_max_iter: int = 2000, l1_tol: float = 1e-7, alternations: int = 3
               ) -> tuple[np.ndarray, np.ndarray]:
    """Maximum-likelihood coefficients (P, D) and intrinsic scatter (P,) of every pixel at once.

    V (M, D) design matrix; flux, noise_var, good (M, P); s_max (P,) upper bound of the scatter.
    """
    def weights(s: np.ndarray) -> np.ndarray:
        return np.where(good, 1.0 / (noise_var + s[None, :] ** 2), 0.0)

    def nll(coef: np.ndarray, s: np.ndarray) -> np.ndarray:
        var = noise_var + s[None, :] ** 2
        r2 = (flux - V @ coef.T) ** 2
        return 0.5 * np.sum(np.where(good, r2 / var + np.log(var), 0.0), axis=0)

    def wls(s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        A, b = _normal_equations(V, flux, weights(s))
        return A, b, _solve(A, b)

    s = _golden_min(lambda s_: nll(wls(s_)[2], s_), s_max, n_grid, n_golden)
    A, b, coef = wls(s)
    if regularization == 0 or not nonlinear.any():
        return coef, s
    for _ in range(alternations):  # coordinate descent on (c, s): the penalty does not involve s
        coef = _l1_solve(A, b, coef, regularization, nonlinear, l1_max_iter, l1_tol)
        s = _golden_min(lambda s_: nll(coef, s_), s_max, n_grid, n_golden)
        A, b = _normal_equations(V, flux, weights(s))
    return _l1_solve(A, b, coef, regularization, nonlinear, l1_max_iter, l1_tol), s


class CannonEmulator(StandardizedEmulator):
    """The Cannon: a polynomial in the labels per pixel, with intrinsic scatter (Ness et al. 2015).

    Fitted attributes (P pixels, L labels, D polynomial terms): ``label_scaler_``, ``flux_scaler_``;
    ``terms_`` (D tuples of label indices); ``coef_`` (P, D); ``scatter_`` (P,) intrinsic scatter
    s_j in flux units; ``cv_mse_``, ``cv_md_`` (P,) ``n_folds``-fold CV in standardised flux
    units; ``mse_``, ``md_`` (P,) of the fit to all stars; ``noise_var_`` (P,) the mean training
    noise variance; ``model_error_`` (P,) in flux units.
    """

    class Params(Params):
        order: int = Field(2, ge=1, le=3, description="polynomial order (2: the classic quadratic Cannon)")
        regularization: float = Field(0.0, ge=0, description="L1 strength on the non-linear coefficients "
                                      "(Casey et al. 2016), added to -ln L with flux in normalised units")
        model_error: Literal["combined", "cv", "scatter"] = Field(
            "combined", description="combined: max(s, the CV model error); cv: sqrt(CV MSE - training noise), the "
                                    "rule of every standardised emulator; "
                                    "scatter: the fitted s")
        n_folds: int = Field(5, ge=2, description="k of the k-fold cross-validation")
        random_state: int | None = Field(0, description="seed of the fold split")
        scatter_grid: int = Field(16, ge=3, description="coarse grid points of the scatter search")
        golden_steps: int = Field(30, ge=0, description="golden-section refinements of the scatter")
        l1_max_iter: int = Field(2000, ge=1)
        l1_tol: float = Field(1e-7, gt=0)
        alternations: int = Field(3, ge=1, description="L1 only: coefficient/scatter update rounds")

    def _fit_options(self) -> dict[str, Any]:
        return dict(n_grid=self.scatter_grid, n_golden=self.golden_steps, l1_max_iter=self.l1_max_iter,
                    l1_tol=self.l1_tol, alternations=self.alternations)

    def fit(self, labels: np.ndarray, flux: np.ndarray, ivar: np.ndarray) -> "CannonEmulator":
        """Train on labels (M, L), flux (M, P), ivar (M, P); ivar 0 excludes a star from a pixel."""
        labels, flux, ivar = check_training_data(labels, flux, ivar)
        m, p = flux.shape
        terms = label_terms(labels.shape[1], self.order)
        smallest_fold_train = m - -(-m // self.n_folds)
        if m < self.n_folds or smallest_fold_train < len(terms):
            raise DataError(f"cannon: order {self.order} with {labels.shape[1]} labels has {len(terms)} "
                            f"coefficients per pixel; {m} training stars leave {smallest_fold_train} per "
                            f"{self.n_folds}-fold training set, fewer than that. Add stars or lower the order.")
        good = ivar > 0
        self.fit_standardizers(labels, flux, good, min_count=2, ivar=ivar)
        V = design_matrix(self.label_scaler_.transform(labels), terms)
        noise_var = np.where(good, 1.0 / np.where(good, ivar, 1.0), 1.0)
        nonlinear = np.array([len(t) >= 2 for t in terms])
        s_max = self.flux_scaler_.scale_      # the pixel's flux scatter: the bound of s_j, and the CV unit
        log.info("cannon: order %d (%d terms), %d pixels x %d stars, %d folds, L1 %g",
                 self.order, len(terms), p, m, self.n_folds, self.regularization)
        pred = np.zeros_like(flux)
        from sklearn.model_selection import KFold      # imported here: inference never needs scikit-learn
        for tr, te in KFold(self.n_folds, shuffle=True, random_state=self.random_state).split(V):
            coef, _ = fit_pixels(V[tr], flux[tr], noise_var[tr], good[tr], s_max, self.regularization,
                                 nonlinear, **self._fit_options())
            pred[te] = V[te] @ coef.T
        self.cv_mse_, self.cv_md_ = residual_stats(pred, flux, good, s_max)
        self.coef_, self.scatter_ = fit_pixels(V, flux, noise_var, good, s_max, self.regularization, nonlinear,
                                               **self._fit_options())
        self.mse_, self.md_ = residual_stats(V @ self.coef_.T, flux, good, s_max)
        self.rebuild()
        log.info("cannon: median CV MSE %.4f, median final MSE %.4f (standardised units)",
                 np.nanmedian(self.cv_mse_), np.nanmedian(self.mse_))
        return self

    def rebuild(self) -> None:
        """Derived attributes (also after loading)."""
        self.n_labels_ = self.label_scaler_.mean_.size
        self.n_pixels_ = self.coef_.shape[0]
        self.terms_ = label_terms(self.n_labels_, self.order)
        if self.coef_.shape[1] != len(self.terms_):
            raise DataError(f"cannon: {self.coef_.shape[1]} coefficients per pixel do not match order "
                            f"{self.order} with {self.n_labels_} labels ({len(self.terms_)} terms)")
        self._check_state()
        self.cv_scheme_ = f"{self.n_folds}-fold"
        scale = self.flux_scaler_.scale_
        if self.model_error == "cv":
            err = self.model_error_from_cv(self.cv_mse_)
        elif self.model_error == "scatter":
            err = self.scatter_.copy()
        else:
            err = np.maximum(self.scatter_, self.model_error_from_cv(self.cv_mse_))
        self.model_error_ = np.maximum(err, _MIN_ERROR * scale)

    def _check_state(self) -> None:
        """A :class:`DataError` naming the array and its first bad pixel when a loaded state's per-pixel
        arrays are not one number per pixel, or the scatter or CV MSE (the model error) are not finite
        and not negative."""
        p = self.coef_.shape[0]
        for name in ("scatter_", "cv_mse_", "cv_md_", "mse_", "md_"):
            arr = np.asarray(getattr(self, name))
            if arr.shape != (p,) or arr.dtype.kind not in "fiu":
                raise DataError(f"cannon: {name.rstrip('_')} ({arr.dtype} of shape {arr.shape}) needs one number "
                                f"per pixel ({p})")
        for name in ("scatter", "cv_mse"):
            values = np.asarray(getattr(self, name + "_"), float)
            require(np.isfinite(values) & (values >= 0), f"cannon: {name} is not finite and not negative",
                    values=values)

    # ------------------------------------------------------------------ evaluation
    def predict(self, labels: np.ndarray) -> np.ndarray:
        """Normalised flux (K, P) at labels (K, L) in physical units."""
        theta = self._check_labels(labels)
        return design_matrix(self.label_scaler_.transform(theta), self.terms_) @ self.coef_.T

    def jacobian(self, labels: np.ndarray) -> np.ndarray:
        """Analytic d flux / d label (K, P, L) in physical units."""
        theta = self._check_labels(labels)
        z = self.label_scaler_.transform(theta)
        jac = np.einsum("kdl,pd->kpl", design_gradient(z, self.terms_), self.coef_, optimize=True)
        return jac / self.label_scaler_.scale_[None, None, :]

    def on_device(self, xp: Any):
        """:meth:`predict_and_jacobian` on the array module ``xp`` (CuPy: the GPU), for labels
        (K, L) an unchecked ``xp`` array; the jacobian a (K, P, L) view of a (K, L, P) array."""
        coef = xp.asarray(self.coef_)
        mean, scale = xp.asarray(self.label_scaler_.mean_), xp.asarray(self.label_scaler_.scale_)
        terms = self.terms_

        def evaluate(labels):
            z = (labels - mean) / scale
            grad = design_gradient(z, terms, xp) / scale[None, None, :]          # (K, D, L)
            jac = xp.matmul(grad.transpose(0, 2, 1), coef.T)                     # (K, L, P)
            return design_matrix(z, terms, xp) @ coef.T, jac.transpose(0, 2, 1)
        return evaluate

    # ------------------------------------------------------------------ state
    STATE_ARRAYS = ("coef_", "scatter_", "cv_mse_", "cv_md_", "mse_", "md_")   # noise_var_: saved by the base
    STATE_KIND = "cannon"

    def state_metadata(self) -> dict[str, Any]:
        return {"kind": self.STATE_KIND, "terms": [list(t) for t in self.terms_]}


@hookimpl
def slamfw_register_emulators(register):
    register("cannon", CannonEmulator)
