"""Fitting the error model by cross-validation on the training set (paper §4.3, Table 1).

The training stars are split into ``folds`` folds (seeded). For each fold, a clone of the
emulator is trained on the other folds; the fold's own stars, degraded to every S/N of the grid,
are inferred with the experiment's inferer and prior. The differences from their known labels
and the formal errors, per S/N, give the :class:`~slamfw.stats.error_model.ErrorModel`. No
test-set star is ever used.

Noise is added to the *raw* spectra, as a survey's spectra carry it, which are then prepared
(shifted, normalised, resampled) exactly like the training set: the continuum placed on a noisy
spectrum is part of the error. The noise is photon-like, ``sigma = sqrt(f f_med) / SNR`` with
``f_med`` the star's median flux. Without the raw spectra (a training set given already
prepared), the prepared spectra are degraded instead, with ``sigma = 1 / SNR``.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..components.emulator import Emulator
from ..components.inferer import Inferer, TrainedEmulator
from ..components.normalizer import Normalizer
from ..components.prior import Prior
from ..data.spectra import SpectralSet
from ..errors import DataError
from ..preprocess import prepare
from ..stats.error_model import ErrorModel
from ..stats.likelihood import spectrum_snr

log = logging.getLogger(__name__)


def degrade(flux: np.ndarray, ivar: np.ndarray, snr: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Spectra (N, P) with Gaussian noise added so that each good pixel's noise is at least
    ``1/snr`` (normalised flux: the continuum over the S/N); pixels already noisier keep theirs."""
    good = ivar > 0
    var = np.where(good, 1.0 / np.where(good, ivar, 1.0), 0.0)
    target = 1.0 / snr ** 2
    add = np.where(good, np.maximum(target - var, 0.0), 0.0)
    noisy = flux + rng.standard_normal(flux.shape) * np.sqrt(add)
    new_var = np.maximum(var, target)
    return np.where(good, noisy, flux), np.where(good, 1.0 / new_var, 0.0)


def degrade_raw(raw: SpectralSet, snr: float, rng: np.random.Generator) -> SpectralSet:
    """Raw spectra with photon-like noise added: each good pixel's noise at least
    ``sqrt(f f_med) / snr`` (``f_med`` the star's median flux); noisier pixels keep theirs."""
    ivar = raw.weight_ivar
    good = ivar > 0
    f = np.where(good, raw.flux, np.nan)
    med = np.nanmedian(np.where(f > 0, f, np.nan), axis=1, keepdims=True)
    target = np.maximum(np.nan_to_num(f, nan=0.0), 0.0) * np.nan_to_num(med, nan=1.0) / snr ** 2
    var = np.where(good, 1.0 / np.where(good, ivar, 1.0), 0.0)
    add = np.where(good, np.maximum(target - var, 0.0), 0.0)
    new_var = np.maximum(var, target)
    out = raw.subset(np.arange(raw.n_stars))
    out.flux = np.where(good, raw.flux + rng.standard_normal(raw.flux.shape) * np.sqrt(add), raw.flux)
    out.ivar = np.where(good & (new_var > 0), 1.0 / np.where(new_var > 0, new_var, 1.0), 0.0)
    return out


@dataclass
class RawSource:
    """How to degrade and prepare raw training spectra: the raw set (its ids those of the
    prepared training set, or more), and the preparation of the training set."""

    raw: SpectralSet
    preprocess: Any
    normalizer: Normalizer | None


def _degraded(train: SpectralSet, te: np.ndarray, snr: float, rng: np.random.Generator,
              source: RawSource | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(flux, ivar, index into ``train``) of the held-out stars ``te`` degraded to ``snr``, prepared."""
    if source is None:
        flux, ivar = degrade(train.flux[te], train.weight_ivar[te], snr, rng)
        return flux, ivar, te
    raw = source.raw.subset(np.isin(source.raw.ids, train.ids[te]))
    prepared = prepare(degrade_raw(raw, snr, rng), source.preprocess, source.normalizer, grid=train.wave,
                       what=f"calibration spectra at S/N {snr:g}", allow_empty=True, medium=train.medium)
    if prepared is None:
        return np.zeros((0, train.n_pixels)), np.zeros((0, train.n_pixels)), te[:0]
    where = {star: i for i, star in enumerate(train.ids)}
    return prepared.flux, prepared.weight_ivar, np.array([where[s] for s in prepared.ids], int)


def _fold_results(emulator: Emulator, inferer: Inferer, prior: Prior | None, train: SpectralSet,
                  tr: np.ndarray, te: np.ndarray, snrs: Sequence[float], rng: np.random.Generator,
                  source: RawSource | None, workdir: Path | None = None):
    """Train on ``tr`` (keeping finished pieces under ``workdir``), infer ``te`` at every S/N:
    lists of (snr measured, delta, formal, bin)."""
    from sklearn.base import clone                 # imported here: inference never needs scikit-learn
    emu = clone(emulator)
    emu.workdir = workdir
    emu.fit(train.labels[tr], train.flux[tr], train.ivar[tr])
    emu.workdir = None
    model = TrainedEmulator(emu, train.labels[tr], list(train.label_names))
    fold_prior = None if prior is None else clone(prior).fit(train.labels[tr], train.label_names)
    out = []
    for b, snr in enumerate(snrs):
        flux, ivar, idx = _degraded(train, te, snr, rng, source)
        if idx.size == 0:
            continue
        res = inferer.infer(model, flux, ivar, prior=fold_prior, ids=train.ids[idx])
        out.append((spectrum_snr(flux, ivar), res.labels - train.labels[idx], res.errors, np.full(idx.size, b),
                    res.labels))
    return out


def fit_error_model(emulator: Emulator, inferer: Inferer, prior: Prior | None, train: SpectralSet,
                    folds: int, snrs: Sequence[float], seed: int, source: RawSource | None = None,
                    neighbours: int = 0, max_stars: int | None = None, workdir: Path | None = None) -> ErrorModel:
    """The error model of ``emulator`` (unfitted, with its parameters) and ``inferer`` on the
    prepared training set ``train``, by ``folds``-fold cross-validation at the S/N values
    ``snrs``, degrading the raw spectra of ``source`` when given, at most ``max_stars`` held-out
    stars in all (a subset drawn from ``seed``); deterministic given ``seed``. ``workdir``: where
    the folds' emulators keep the finished pieces of their training (an emulator that keeps none
    ignores it), so that a run killed in the calibration resumes it."""
    if train.n_stars < 2 * folds:
        raise DataError(f"calibration: {train.n_stars} training stars are too few for {folds}-fold "
                        f"cross-validation; set calibration.enabled = false or lower calibration.folds")
    from sklearn.model_selection import KFold
    rng = np.random.default_rng([seed, 7919])
    parts = []
    per_fold = None if max_stars is None else -(-max_stars // folds)
    for k, (tr, te) in enumerate(KFold(folds, shuffle=True, random_state=seed).split(train.labels)):
        if per_fold is not None and te.size > per_fold:
            te = np.sort(np.random.default_rng([seed, k]).choice(te, per_fold, replace=False))
        log.info("calibration: fold %d of %d (%d stars held out, %d S/N values)", k + 1, folds, te.size, len(snrs))
        parts += _fold_results(emulator, inferer, prior, train, tr, te, snrs, rng, source, workdir)
    snr, delta, formal, bins, labels = (np.concatenate([p[i] for p in parts]) for i in range(5))
    ok = np.all(np.isfinite(delta), axis=1) & np.all(np.isfinite(formal), axis=1) & np.isfinite(snr)
    if ok.sum() < 10:
        raise DataError("calibration: fewer than 10 cross-validated inferences succeeded; the error model "
                        "cannot be fitted (set calibration.enabled = false)")
    model = ErrorModel.fit(list(train.label_names), snr[ok], delta[ok], formal[ok], bins[ok], folds, labels[ok],
                           neighbours)
    for j, name in enumerate(model.label_names):
        a, b, c = model.abc[j]
        log.info("calibration: %s sigma(SNR) = %.4g exp(-%.4g SNR) + %.4g", name, a, b, c)
    return model
