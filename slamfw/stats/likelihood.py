"""The likelihood of a spectrum given labels (paper eq. 7-8), and the quantities built on it.

Pixel j of an observed spectrum has variance ``1/ivar_j + sigma_j^2``, where ``sigma_j`` is the
emulator's ``model_error_``. The ln(2 pi var) term does not depend on the labels, so maximising
eq. (8) is weighted least squares with weights ``w_j = (1/ivar_j + sigma_j^2)^(-1/2)`` (0 for bad
pixels).
"""
from __future__ import annotations

import numpy as np


def likelihood_weights(ivar: np.ndarray, model_error: np.ndarray | None) -> np.ndarray:
    """(N, P) weights ``(1/ivar + sigma_model^2)^(-1/2)``, 0 where ivar is 0."""
    sig2 = 0.0 if model_error is None else np.asarray(model_error, float) ** 2
    good = ivar > 0
    var = np.where(good, 1.0 / np.where(good, ivar, 1.0), np.inf) + sig2
    return np.where(good, 1.0 / np.sqrt(var), 0.0)


def library_chi2(flux: np.ndarray, weights: np.ndarray, library_flux: np.ndarray) -> np.ndarray:
    """(N, M) chi^2 of N spectra (N, P) against M library spectra (M, P), as three matrix products:
    ``chi2_nm = sum_j w_nj^2 (f_nj - F_mj)^2``."""
    w2 = weights ** 2
    f = np.where(weights > 0, flux, 0.0)
    return ((w2 * f ** 2).sum(1)[:, None] - 2.0 * (w2 * f) @ library_flux.T + w2 @ (library_flux ** 2).T)


def _k_best(chi2: np.ndarray, k: int) -> np.ndarray:
    """(N, k) column indices of the k smallest values per row of ``chi2`` (N, M), smallest first."""
    if k == 1:        # the first smallest, NaN last (as argpartition; its choice among exact ties is not fixed)
        return np.argmin(np.where(np.isnan(chi2), np.inf, chi2), axis=1)[:, None]
    part = np.argpartition(chi2, k - 1, axis=1)[:, :k] if k < chi2.shape[1] else np.tile(np.arange(k), (len(chi2), 1))
    order = np.argsort(np.take_along_axis(chi2, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def best_library_matches(flux: np.ndarray, weights: np.ndarray, library_flux: np.ndarray, k: int = 1,
                         library_labels: np.ndarray | None = None, separation: float = 0.0) -> np.ndarray:
    """(N, k) indices of the k library spectra of highest likelihood for each of N spectra, best
    first (the paper's initial guess is the first).

    With ``library_labels`` (M, L), standardised, and ``separation`` > 0, the matches are spread
    over label space: the best match, then, for each next place, the best match at least
    ``separation`` (Euclidean, standardised units) from every match already chosen, over the whole
    library. So a spectrum that two regions of label space fit about equally well (a warm star on
    either side of the Balmer maximum) gets a start in each. Where no match is that far from the
    others, the best remaining ones fill the k places."""
    chi2 = library_chi2(flux, weights, library_flux)
    n, m = chi2.shape
    k = min(k, m)
    if library_labels is None or separation <= 0 or k == 1:
        return _k_best(chi2, k)
    z = np.asarray(library_labels, float)
    score = np.where(np.isfinite(chi2), chi2, np.inf)
    chosen = np.zeros((n, k), np.int64)
    block = max(1, int(2 ** 23 // max(m * z.shape[1], 1)))      # stars per pass: (block, M, L) within 64 MB
    for s in range(0, n, block):
        chosen[s:s + block] = _spread(score[s:s + block], z, k, separation)
    return chosen


def _spread(score: np.ndarray, z: np.ndarray, k: int, separation: float) -> np.ndarray:
    """(n, k) for :func:`best_library_matches`: per place, the best match (lowest ``score`` (n, M))
    at least ``separation`` from the matches chosen, else the best not yet chosen."""
    n, m = score.shape
    rows = np.arange(n)
    chosen = np.zeros((n, k), np.int64)
    taken = np.zeros((n, m), bool)
    allowed = np.ones((n, m), bool)
    open_ = np.empty((n, m), bool)
    masked = np.empty((n, m))
    for place in range(k):
        np.logical_and(allowed, ~taken, out=open_)
        masked.fill(np.inf)
        np.copyto(masked, score, where=open_)
        pick = np.argmin(masked, axis=1)
        none = ~open_[rows, pick]                              # nothing far enough: the best not yet taken
        if none.any():
            pick[none] = np.argmin(np.where(taken[none], np.inf, score[none]), axis=1)
        chosen[:, place] = pick
        taken[rows, pick] = True
        if place < k - 1:
            allowed &= _distances(z, pick) >= separation
    return chosen


def _distances(z: np.ndarray, pick: np.ndarray) -> np.ndarray:
    """(n, M) ``|z_m - z_pick_i|`` for the library labels z (M, L) and the rows ``pick`` (n,): the
    bits of ``np.linalg.norm(z[None] - z[pick][:, None], axis=2)``. Up to 7 labels, whose sum of
    squares numpy adds in order, label by label into (n, M) arrays (a third of the time, without the
    (n, M, L) temporaries); from 8 on (numpy then sums pairwise) with that expression itself."""
    zp = z[pick]
    if z.shape[1] >= 8:
        return np.linalg.norm(z[None, :, :] - zp[:, None, :], axis=2)
    d2 = np.empty((len(pick), len(z)))
    diff = np.empty_like(d2)
    for lab in range(z.shape[1]):
        np.subtract(z[None, :, lab], zp[:, lab, None], out=diff)
        if lab == 0:
            np.multiply(diff, diff, out=d2)
        else:
            d2 += diff * diff
    return np.sqrt(d2, out=d2)


def chi2(flux: np.ndarray, weights: np.ndarray, model_flux: np.ndarray) -> np.ndarray:
    """(N,) sum over good pixels of ``(w (f - model))^2``."""
    r = np.where(weights > 0, weights * (np.where(weights > 0, flux, 0.0) - model_flux), 0.0)
    return np.sum(r ** 2, axis=1)


def reduced_chi2(flux: np.ndarray, weights: np.ndarray, model_flux: np.ndarray, n_labels: int) -> np.ndarray:
    """(N,) chi^2 over good pixels divided by (good pixels - labels)."""
    dof = np.maximum((weights > 0).sum(axis=1) - n_labels, 1)
    return chi2(flux, weights, model_flux) / dof


def rmse(flux: np.ndarray, weights: np.ndarray, model_flux: np.ndarray) -> np.ndarray:
    """(N,) root-mean-square of flux - model over the good pixels (weights > 0) of N spectra (N, P)."""
    good = weights > 0
    return np.sqrt(np.sum(np.where(good, flux - model_flux, 0.0) ** 2, axis=1) / np.maximum(good.sum(axis=1), 1))


def spectrum_snr(flux: np.ndarray, ivar: np.ndarray) -> np.ndarray:
    """(N,) float64, the S/N per pixel of each spectrum: median of ``|flux| sqrt(ivar)`` over its
    good pixels (ivar > 0; a pixel whose product is NaN is left out; NaN for a spectrum without
    any). From one sort of the rows (NaN sorts last): the middle value of an odd count, the mean
    of the middle two of an even one, in the inputs' precision; ``np.nanmedian``'s values to the
    bit (tested) but where it overflows (products above half the largest float), in a third of
    its time on 500 spectra of 500 pixels."""
    good = ivar > 0
    s = np.where(good, np.abs(np.where(good, flux, 0.0)) * np.sqrt(np.where(good, ivar, 0.0)), np.nan)
    s = np.sort(s, axis=1)
    n = (~np.isnan(s)).sum(axis=1)
    rows = np.arange(s.shape[0])
    lo, hi = s[rows, np.maximum(n - 1, 0) // 2], s[rows, np.maximum(n, 1) // 2 - (n == 0)]
    with np.errstate(invalid="ignore", over="ignore"):
        mid = np.where(n % 2 == 1, lo, (lo + hi) / 2)
    return np.where(n > 0, mid, np.nan).astype(np.float64)
