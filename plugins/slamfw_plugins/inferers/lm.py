"""Levenberg-Marquardt maximum likelihood labels (paper §2.3).

Likelihood, eq. (8): pixel j of an observed spectrum has variance ``1/ivar_j + sigma_j^2`` where
``sigma_j`` is the emulator's ``model_error_`` (SLAM: from the CV MSE). The ln(2 pi var) term does
not depend on the labels, so maximising eq. (8) is weighted least squares with weights
``w_j = (1/ivar_j + sigma_j^2)^(-1/2)`` (0 for bad pixels), solved by ``scipy.optimize.least_squares``
(method "lm") in standardised label space.

Initial guess: the training star of maximum likelihood (eq. 8 evaluated against every training
star, using the emulator's spectrum at that star's labels). Covariance: ``(J^T J)^-1`` from the
jacobian at the solution, converted to physical units. ``converged``: the optimiser met a
tolerance within ``max_nfev`` evaluations and the solution is finite.

``method = "trf"`` (an extension, off by default) bounds the labels to the training range widened
by ``bound_margin`` of its width on each side, so that no star is extrapolated far beyond what the
emulator learned; LM, the paper's choice, is unbounded.
"""
from __future__ import annotations

import logging
import warnings
from typing import Literal

import numpy as np
from pydantic import Field
from scipy.optimize import least_squares

from slamfw import (
    DataError, InferenceModel, Inferer, LabelResult, Params, Prior, chunks, current_executor, hookimpl,
)

SLAMFW_PLUGIN_API = (1, 0)
#: Stars per task when one call's spectra are spread over the executor's workers.
STARS_PER_TASK = 50

log = logging.getLogger(__name__)


def likelihood_weights(ivar: np.ndarray, model_error: np.ndarray | None) -> np.ndarray:
    """(N, P) weights ``(1/ivar + sigma_model^2)^(-1/2)``, 0 where ivar is 0."""
    sig2 = 0.0 if model_error is None else np.asarray(model_error, float) ** 2
    with np.errstate(divide="ignore"):
        var = np.where(ivar > 0, 1.0 / np.where(ivar > 0, ivar, 1.0), np.inf) + sig2
    return np.where(ivar > 0, 1.0 / np.sqrt(var), 0.0)


def initial_guess(flux: np.ndarray, weights: np.ndarray, library_flux: np.ndarray) -> np.ndarray:
    """Index (N,) of the library spectrum (M, P) of maximum likelihood for each of N spectra.

    chi^2_nm = sum_j w_nj^2 (f_nj - F_mj)^2, expanded to three matrix products.
    """
    w2 = weights ** 2
    chi2 = ((w2 * flux ** 2).sum(1)[:, None] - 2.0 * (w2 * flux) @ library_flux.T
            + w2 @ (library_flux ** 2).T)
    return np.argmin(chi2, axis=1)


def _gaussian_prior(prior: Prior | None, n_labels: int) -> tuple[np.ndarray, np.ndarray] | None:
    if prior is None:
        return None
    mean = np.asarray(getattr(prior, "mean", None), dtype=float)
    sigma = np.asarray(getattr(prior, "sigma", None), dtype=float)
    if mean.shape != (n_labels,) or sigma.shape != (n_labels,):
        raise DataError("the lm inferer takes Gaussian priors only: an object with mean and sigma of "
                        f"shape ({n_labels},) (sigma inf for no prior on a label)")
    return mean, sigma


def _fit_block(flux: np.ndarray, weights: np.ndarray, z0: np.ndarray, emulator, mean: np.ndarray,
               scale: np.ndarray, prior: tuple[np.ndarray, np.ndarray] | None, max_nfev: int,
               xtol: float, ftol: float, gtol: float, method: str = "lm",
               bounds: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    n, n_lab = z0.shape
    out = {"labels": np.full((n, n_lab), np.nan), "cov": np.full((n, n_lab, n_lab), np.nan),
           "converged": np.zeros(n, bool), "rmse": np.full(n, np.nan), "chi2": np.full(n, np.nan),
           "nfev": np.zeros(n, np.int64)}
    if prior is not None:
        p_mean, p_sigma = prior
        has = np.isfinite(p_sigma) & (p_sigma > 0)
        p_w = np.where(has, 1.0 / np.where(has, p_sigma, 1.0), 0.0)
    for i in range(n):
        f, w = flux[i], weights[i]
        use = w > 0
        if use.sum() < n_lab:
            continue
        fu, wu = f[use], w[use]

        def resid(z: np.ndarray) -> np.ndarray:
            theta = mean + z * scale
            r = wu * (fu - emulator.predict(theta[None])[0][use])
            if prior is not None:
                r = np.concatenate([r, p_w * (theta - p_mean)])
            return r

        def jac(z: np.ndarray) -> np.ndarray:
            theta = mean + z * scale
            j = -wu[:, None] * emulator.jacobian(theta[None])[0][use] * scale[None, :]
            if prior is not None:
                j = np.vstack([j, np.diag(p_w * scale)])
            return j

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            res = least_squares(resid, z0[i], jac=jac, method=method, max_nfev=max_nfev,
                                xtol=xtol, ftol=ftol, gtol=gtol,
                                bounds=bounds if bounds is not None else (-np.inf, np.inf))
        theta = mean + res.x * scale
        jtj = res.jac.T @ res.jac
        try:
            cov_z = np.linalg.inv(jtj)
        except np.linalg.LinAlgError:
            cov_z = np.linalg.pinv(jtj)
        model = emulator.predict(theta[None])[0]
        n_good = int(use.sum())
        out["labels"][i] = theta
        out["cov"][i] = cov_z * np.outer(scale, scale)
        out["converged"][i] = bool(res.status > 0 and np.all(np.isfinite(theta)))
        out["rmse"][i] = np.sqrt(np.mean((fu - model[use]) ** 2))
        out["chi2"][i] = np.sum((wu * (fu - model[use])) ** 2) / max(n_good - n_lab, 1)
        out["nfev"][i] = res.nfev
    return out


class LMInferer(Inferer):
    """Maximum likelihood labels by Levenberg-Marquardt; the stars of one call are spread over the
    executor's workers."""

    class Params(Params):
        max_nfev: int = Field(200, ge=1, description="cap on function evaluations per star")
        xtol: float = Field(1e-8, gt=0)
        ftol: float = Field(1e-8, gt=0)
        gtol: float = Field(1e-8, gt=0)
        use_model_error: bool = Field(True, description="add the emulator's model error to the variance (eq 8)")
        method: Literal["lm", "trf"] = Field("lm", description="lm (paper, unbounded) or trf (bounded)")
        bound_margin: float = Field(0.0, ge=0, description="trf: bounds = training range +- this fraction of it")

    def infer(self, model: InferenceModel, flux: np.ndarray, ivar: np.ndarray,
              prior: Prior | None = None) -> LabelResult:
        """Labels for flux, ivar (N, P) on the model grid; see the module docstring."""
        emu = model.emulator
        flux = np.atleast_2d(np.asarray(flux, float))
        ivar = np.atleast_2d(np.asarray(ivar, float))
        if flux.shape != ivar.shape or flux.shape[1] != emu.n_pixels_:
            raise DataError(f"lm: flux {flux.shape} and ivar {ivar.shape} must both be (N, {emu.n_pixels_})")
        if not np.all(np.isfinite(flux[ivar > 0])):
            raise DataError("lm: non-finite flux at pixels with ivar > 0")
        train = np.asarray(model.train_labels, float)
        mean, scale = train.mean(0), train.std(0, ddof=1)
        scale = np.where(scale > 0, scale, 1.0)
        w = likelihood_weights(ivar, emu.model_error_ if self.use_model_error else None)
        library = emu.predict(train)
        init = train[initial_guess(np.where(ivar > 0, flux, 0.0), w, library)]
        gp = _gaussian_prior(prior, train.shape[1])
        bounds = None
        if self.method == "trf":
            lo, hi = train.min(0), train.max(0)
            pad = self.bound_margin * (hi - lo)
            bounds = ((lo - pad - mean) / scale, (hi + pad - mean) / scale)
        blocks = chunks(flux.shape[0], STARS_PER_TASK)
        parts = current_executor().map(
            _fit_block, [(flux[s:e], w[s:e], (init[s:e] - mean) / scale) for s, e in blocks],
            desc="lm: fitting spectra", progress=False,
            shared=dict(emulator=emu, mean=mean, scale=scale, prior=gp, max_nfev=self.max_nfev,
                        xtol=self.xtol, ftol=self.ftol, gtol=self.gtol, method=self.method, bounds=bounds))
        cat = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        n_bad = int((~cat["converged"]).sum())
        if n_bad:
            log.info("lm: %d of %d spectra did not converge (flagged converged=False)", n_bad, flux.shape[0])
        return LabelResult(labels=cat["labels"], cov=cat["cov"], converged=cat["converged"], rmse=cat["rmse"],
                           chi2=cat["chi2"], init=init, nfev=cat["nfev"], label_names=list(model.label_names))


@hookimpl
def slamfw_register_inferers(register):
    register("lm", LMInferer)
