"""A flux model linear in the standardised labels, one weighted ridge regression per pixel.

    f_j(z) = c_j0 + sum_l c_jl z_l,    z = (theta - mean) / std over the training set

It is the simplest honest emulator: a baseline for ``slamfw compare``, and a template for
plugin authors. Only slamfw's public API is used.
"""
from __future__ import annotations

import numpy as np
from pydantic import Field

from slamfw import DataError, Params, StandardizedEmulator, check_training_data, hookimpl

SLAMFW_PLUGIN_API = (1, 0)                      # the plugin API this plugin is written for


class LinearEmulator(StandardizedEmulator):
    """Flux linear in the labels per pixel (ridge), with exact leave-one-out CV MSE.

    Fitted attributes (P pixels, L labels): ``label_scaler_``, ``flux_scaler_``; ``coef_`` (P, L+1);
    ``cv_mse_``, ``cv_md_`` (P,) leave-one-out, standardised flux units; ``model_error_`` (P,).
    """

    class Params(Params):                       # the config section; unknown keys are errors
        ridge: float = Field(1e-6, ge=0, description="ridge on the slopes (standardised units)")

    # ---------------------------------------------------------------- training
    def fit(self, labels: np.ndarray, flux: np.ndarray, ivar: np.ndarray) -> "LinearEmulator":
        """labels (M, L), flux (M, P), ivar (M, P) -> self; ivar 0 leaves a star out of a pixel."""
        labels, flux, ivar = check_training_data(labels, flux, ivar)
        m, n_lab = labels.shape
        if m < n_lab + 2:
            raise DataError(f"linear: {m} training stars cannot constrain {n_lab + 1} coefficients")
        good = (ivar > 0).astype(float)                                    # (M, P)
        self.fit_standardizers(labels, flux, good > 0, ivar=ivar)          # paper eq. 2-4
        X = np.column_stack([np.ones(m), self.label_scaler_.transform(labels)])   # (M, D)
        Y = np.where(good > 0, self.flux_scaler_.transform(flux), 0.0)         # (M, P)
        d = X.shape[1]
        # per-pixel normal equations A_j = X^T W_j X + ridge (slopes only), all pixels at once
        A = np.einsum("mp,md,me->pde", good, X, X) + self.ridge * np.diag([0.0] + [1.0] * (d - 1))
        A_inv = np.linalg.inv(A)                                           # (P, D, D)
        self.coef_ = np.einsum("pde,me,mp->pd", A_inv, X, good * Y)       # (P, D)
        # exact leave-one-out: residual / (1 - leverage), no refitting
        resid = X @ self.coef_.T - Y                                       # (M, P) predicted - true
        leverage = np.einsum("md,pde,me->mp", X, A_inv, X) * good
        loo = np.where(good > 0, resid / (1.0 - leverage), 0.0)
        n_good = good.sum(axis=0)
        self.cv_mse_ = (loo ** 2).sum(axis=0) / n_good
        self.cv_md_ = loo.sum(axis=0) / n_good
        self.rebuild()
        return self

    # ---------------------------------------------------------------- state (never pickled)
    STATE_ARRAYS = ("coef_", "cv_mse_", "cv_md_")   # saved; the standardisers are saved by the base
    STATE_KIND = "linear-ridge"

    def rebuild(self) -> None:
        """Everything derived from the state (after fit and after loading)."""
        self.n_pixels_, self.n_labels_ = self.coef_.shape[0], self.coef_.shape[1] - 1
        self.cv_scheme_ = "leave-one-out"
        self.model_error_ = self.model_error_from_cv(self.cv_mse_)      # CV MSE less the training noise

    # ---------------------------------------------------------------- evaluation
    def predict(self, labels: np.ndarray) -> np.ndarray:
        """Normalised flux (K, P) at labels (K, L) in physical units."""
        theta = self._check_labels(labels)                 # shape, NaN and fitted checks
        z = self.label_scaler_.transform(theta)
        y = self.coef_[:, 0] + z @ self.coef_[:, 1:].T
        return self.flux_scaler_.inverse_transform(y)

    def jacobian(self, labels: np.ndarray) -> np.ndarray:
        """d flux / d label (K, P, L) in physical units: constant for a linear model."""
        theta = self._check_labels(labels)
        slope = self.coef_[:, 1:] * self.flux_scaler_.scale_[:, None] / self.label_scaler_.scale_[None, :]
        return np.broadcast_to(slope, (theta.shape[0], *slope.shape)).copy()


# ---------------------------------------------------------------- registration
@hookimpl
def slamfw_register_emulators(register):
    register("linear", LinearEmulator)
