"""Cross-validated flux residuals of any emulator, by refitting (paper eq. 5-6).

Emulators that measure their own CV MSE and CV MD during training expose ``cv_mse_`` and
``cv_md_``; for those that do not, :func:`cross_validate_flux` refits clones on k-1 folds
and predicts the held-out stars. Results are in standardised flux units (eq. 2-4), so that a
constant model has MSE = 1.
"""
from __future__ import annotations

import logging

import numpy as np

from ..components.emulator import Emulator, check_training_data
from .standardize import Standardizer

log = logging.getLogger(__name__)


def cross_validate_flux(emulator: Emulator, labels: np.ndarray, flux: np.ndarray,
                        ivar: np.ndarray, n_folds: int = 5, seed: int | None = 0
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel CV MSE and CV MD (predicted - true), both (P,), over the good (ivar > 0) entries.

    ``emulator`` is cloned (``sklearn.base.clone``: same parameters, unfitted) for every fold;
    labels (M, L), flux and ivar (M, P).
    """
    from sklearn.base import clone                 # imported here: inference never needs scikit-learn
    from sklearn.model_selection import KFold
    labels, flux, ivar = check_training_data(labels, flux, ivar)
    good = ivar > 0
    scaler = Standardizer().fit(flux, good)
    pred = np.zeros_like(flux)
    for k, (tr, te) in enumerate(KFold(n_folds, shuffle=True, random_state=seed).split(labels)):
        log.info("cross-validation: fold %d/%d (%d stars held out)", k + 1, n_folds, te.size)
        pred[te] = clone(emulator).fit(labels[tr], flux[tr], ivar[tr]).predict(labels[te])
    return residual_stats(pred, flux, good, scaler.scale_)


def residual_stats(pred: np.ndarray, flux: np.ndarray, good: np.ndarray, scale: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel MSE and MD (eq. 5-6) of ``(pred - flux) / scale`` over the good entries.

    pred, flux, good (M, P); scale (P,) the pixels' training-set standard deviations. Returns two
    (P,) arrays, NaN for a pixel without good entries.
    """
    resid = np.where(good, (pred - flux) / scale, 0.0)
    count = good.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        n = np.where(count > 0, count, np.nan)
        return (resid ** 2).sum(axis=0) / n, resid.sum(axis=0) / n
