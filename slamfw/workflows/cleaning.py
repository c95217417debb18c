"""Training-set cleaning (paper §4.2).

Leave-1/k-out: split the training set into ``folds`` parts; for each part, train a clone of the
emulator on the others and infer the labels of the held-out stars. Stars whose inferred labels
deviate from their training labels by more than ``nsigma`` times the standard deviation of the
residuals, in any label, are dropped; the caller retrains on the rest.
"""
from __future__ import annotations

import logging

import numpy as np

from ..components.emulator import Emulator
from ..components.inferer import Inferer, TrainedEmulator
from ..data.spectra import SpectralSet
from ..errors import DataError, name_some

log = logging.getLogger(__name__)


def clean_training_set(emulator: Emulator, inferer: Inferer, train: SpectralSet, folds: int = 10,
                       nsigma: float = 4.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Flag outliers of ``train`` (labels required).

    Returns
    -------
    keep : (M,) bool, False for stars to drop
    predicted : (M, L) labels inferred for each star by the model that did not see it
    """
    if train.labels is None:
        raise DataError("training-set cleaning needs labels")
    m = train.n_stars
    if m < 2 * folds:
        raise DataError(f"training-set cleaning with {folds} folds needs at least {2 * folds} stars, got {m}")
    predicted = np.full_like(train.labels, np.nan)
    from sklearn.base import clone                 # imported here: inference never needs scikit-learn
    from sklearn.model_selection import KFold
    kf = KFold(folds, shuffle=True, random_state=seed)
    for k, (tr, te) in enumerate(kf.split(np.arange(m))):
        log.info("cleaning: fold %d/%d (train %d, predict %d)", k + 1, folds, tr.size, te.size)
        emu = clone(emulator).fit(train.labels[tr], train.flux[tr], train.ivar[tr])
        res = inferer.infer(TrainedEmulator(emu, train.labels[tr], train.label_names), train.flux[te], train.ivar[te])
        predicted[te] = np.where(res.converged[:, None], res.labels, np.nan)
    resid = predicted - train.labels
    sigma = np.nanstd(resid, axis=0)
    with np.errstate(invalid="ignore"):
        outlier = np.any(np.abs(resid) > nsigma * sigma, axis=1)
    keep = ~outlier
    if outlier.any():
        log.info("cleaning: dropping %d of %d training stars deviating > %g sigma (sigma = %s): %s",
                 int(outlier.sum()), m, nsigma,
                 ", ".join(f"{n}={s:.3g}" for n, s in zip(train.label_names, sigma)),
                 name_some(train.ids[outlier], 20))
    return keep, predicted
