"""Maximum-likelihood (or maximum-posterior) labels by least squares, from several starts (paper §2.3).

Each star is fitted from the ``n_starts`` training stars whose emulated spectra match it best
(the paper starts from the best one only), in standardised label space, and the solution of
lowest cost (chi^2 plus the prior's Gaussian terms) is kept: a fit that one start leaves in a
local minimum, another start escapes. A prior's Gaussian terms become extra residuals and its box
becomes bounds (then the bounded ``trf`` method replaces ``lm``, which has none).

Covariance: ``(J^T J)^-1`` of the kept solution's jacobian, in physical units; where ``J^T J``
is singular (a label the spectrum does not constrain), that label's variance is infinite and its
covariances NaN (:func:`covariances`). ``converged``: the kept solution's optimiser met a
tolerance within ``max_nfev`` evaluations, is finite, and ``J^T J`` is not singular.
"""
from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..components.executor import SerialExecutor, current_executor
from ..components.inferer import InferenceModel
from ..components.prior import LeastSquaresForm, Prior
from ..data.results import LabelResult
from ..errors import ConfigError, DataError
from ..execution.chunks import chunks
from ..execution.threads import limit_threads
from .batched_lm import batched_lm
from .device import array_module, device_evaluator
from .library import library_flux, library_jacobian
from .likelihood import best_library_matches, likelihood_weights, reduced_chi2, rmse

log = logging.getLogger(__name__)

#: Batched: a block looks its starts up in the emulated library (slamfw.stats.library) when it has
#: at least this fraction of the library's stars as rows (stars x starts).
LIBRARY_MIN_FRACTION = 0.25
#: Stars per task when one call's spectra are spread over the executor's workers.
STARS_PER_TASK = 50
#: Batched: at most this many stars per task, and the rows' jacobians within about this many bytes.
BATCH_STARS = 512
BATCH_BYTES = 128 * 2 ** 20
#: The same on a GPU (``device = "cuda"``), where each iteration of a batch costs a fixed time
#: (kernel launches, and the transfers of the active and accepted rows' counts to the host) that
#: only large batches amortise: on an H200, 2026-11-28 (``benchmarks/gpu_check.py``, 20,000 spectra,
#: 3 starts), 0.76 ms per spectrum in blocks of 512 stars, 0.22 ms in blocks of 19,844 (the budget
#: then left out the kernel matrices: 11,916 now). On the GPU the budget also counts three (rows, M)
#: kernel-matrix arrays of the M training stars; the solver's peak memory is then at most about 1.7
#: times it (measured through the same code on numpy arrays, ``tests/test_device.py``). A batch that
#: the GPU cannot hold is fitted in halves (:func:`_device_lm`, with a warning): lower
#: BATCH_BYTES_DEVICE for a small GPU to avoid the retries.
BATCH_STARS_DEVICE = 2 ** 16
BATCH_BYTES_DEVICE = 2 * 2 ** 30


def _batch_stars(n_starts: int, n_pixels: int, n_labels: int, device: str = "cpu", n_train: int = 0) -> int:
    """Stars per task of the batched solver: a batch whose (rows, P, L) jacobians fit BATCH_BYTES;
    on a GPU, whose jacobians and (rows, ``n_train``) kernel matrices fit BATCH_BYTES_DEVICE."""
    k, n_lab = max(n_starts, 1), max(n_labels, 1)
    if device == "cpu":
        return int(max(1, min(BATCH_STARS, BATCH_BYTES // (8 * k * n_pixels * n_lab * 3))))
    return int(max(1, min(BATCH_STARS_DEVICE, BATCH_BYTES_DEVICE // (8 * k * (3 * n_pixels * n_lab + 3 * n_train)))))


@dataclass
class Solver:
    """How each star is solved (``scipy.optimize.least_squares`` settings)."""

    max_nfev: int = 200
    xtol: float = 1e-8
    ftol: float = 1e-8
    gtol: float = 1e-8
    method: str = "lm"
    device: str = "cpu"      # the batched solver's: "cpu" or "cuda" (slamfw.stats.device)
    #: the batched solver's jacobian on the CPU: "double", or "single" (its products in float32;
    #: see slamfw.stats.batched_lm)
    jacobian_precision: str = "double"
    #: the batched solver's step rule: "minpack" (lmder's, the per-star solver's path with
    #: method "lm"; see slamfw.stats.minpack_steps) or "secant" (fewer evaluations; see
    #: slamfw.stats.batched_lm)
    steps: str = "minpack"
    #: the minpack steps' last-step rule, in formal errors (0: every evaluation lmder makes; None:
    #: slamfw.stats.minpack_steps.LAST_STEP)
    last_step: float | None = None

    def batch_stars(self, n_starts: int, n_pixels: int, n_labels: int, n_train: int) -> int:
        """Stars per batch of the batched solver on this device, for ``n_starts`` starts, ``n_pixels``
        pixels, ``n_labels`` labels and ``n_train`` training stars (BATCH_BYTES and BATCH_STARS;
        on a GPU BATCH_BYTES_DEVICE and BATCH_STARS_DEVICE)."""
        return _batch_stars(n_starts, n_pixels, n_labels, self.device, n_train)


def check_observations(name: str, flux: np.ndarray, ivar: np.ndarray, n_pixels: int) -> tuple[np.ndarray, np.ndarray]:
    """flux, ivar as (N, P) floats, or a :class:`DataError` naming the problem and the star."""
    flux = np.atleast_2d(np.asarray(flux, float))
    ivar = np.atleast_2d(np.asarray(ivar, float))
    if flux.shape != ivar.shape or flux.ndim != 2 or flux.shape[1] != n_pixels:
        raise DataError(f"{name}: flux {flux.shape} and ivar {ivar.shape} must both be (N, {n_pixels})")
    bad = ~np.isfinite(flux) & (ivar > 0)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise DataError(f"{name}: star {i} has non-finite flux at pixel {j}, where ivar > 0")
    if np.any(~np.isfinite(ivar) | (ivar < 0)):
        i = int(np.argwhere(~np.isfinite(ivar) | (ivar < 0))[0, 0])
        raise DataError(f"{name}: star {i} has ivar < 0 or not finite")
    return flux, ivar


def prior_forms(name: str, prior: Prior | None, ids: np.ndarray | None, n: int) -> list[LeastSquaresForm | None]:
    """The least-squares form of ``prior`` for each of n stars (None: no prior), or a
    :class:`ConfigError` naming the prior that has none."""
    if prior is None:
        return [None] * n
    if prior.per_star and ids is None:
        raise ConfigError(f"{name}: the prior {type(prior).__name__} differs from star to star and needs the "
                          "stars' ids, which were not given")
    stars: Sequence[Any] = [None] * n if not prior.per_star else [str(i) for i in ids]
    forms = {}
    for star in dict.fromkeys(stars):
        form = prior.least_squares_form(star)
        if form is None:
            raise ConfigError(f"{name} cannot use the prior {type(prior).__name__}: it has no Gaussian or box form "
                              "(independent Gaussians on a box); sample it with the emcee inferer instead")
        forms[star] = form
    return [forms[s] for s in stars]


def _residual_fns(fu: np.ndarray, wu: np.ndarray, use: np.ndarray, emulator: Any, mean: np.ndarray,
                  scale: np.ndarray, form: LeastSquaresForm | None):
    if form is not None and form.has_gaussian.any():
        g = form.has_gaussian
        p_mean, p_w = np.where(g, form.mean, 0.0), np.where(g, 1.0 / np.where(g, form.sigma, 1.0), 0.0)
    else:
        g = None

    def resid(z: np.ndarray) -> np.ndarray:
        theta = mean + z * scale
        r = wu * (fu - emulator.predict(theta[None])[0][use])
        return r if g is None else np.concatenate([r, (p_w * (theta - p_mean))[g]])

    def jac(z: np.ndarray) -> np.ndarray:
        theta = mean + z * scale
        j = -wu[:, None] * emulator.jacobian(theta[None])[0][use] * scale[None, :]
        return j if g is None else np.vstack([j, np.diag(p_w * scale)[g]])

    return resid, jac


def _bounds(form: LeastSquaresForm | None, mean: np.ndarray, scale: np.ndarray):
    if form is None or not form.has_box:
        return None
    return (form.lo - mean) / scale, (form.hi - mean) / scale


def _fit_star(f: np.ndarray, w: np.ndarray, starts: np.ndarray, emulator: Any, mean: np.ndarray,
              scale: np.ndarray, form: LeastSquaresForm | None, solver: Solver) -> dict[str, Any] | None:
    use = w > 0
    n_lab = starts.shape[1]
    if use.sum() < n_lab:
        return None
    resid, jac = _residual_fns(f[use], w[use], use, emulator, mean, scale, form)
    bounds = _bounds(form, mean, scale)
    from scipy.optimize import least_squares        # imported here: the batched solver (the default) needs none
    method = solver.method if bounds is None else "trf"
    best, best_cost, costs = None, np.inf, []
    for z0 in starts:
        if bounds is not None:  # a start on or outside the box moves just inside it
            span = bounds[1] - bounds[0]
            pad = np.where(np.isfinite(span), 1e-6 * span, 1e-6)
            z0 = np.clip(z0, bounds[0] + pad, bounds[1] - pad)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            # lm: the scaling by J's columns pinned (scipy's default for "lm" since 1.16; 1 before),
            # which the batched solver's "minpack" steps follow
            res = least_squares(resid, z0, jac=jac, method=method, max_nfev=solver.max_nfev, xtol=solver.xtol,
                                ftol=solver.ftol, gtol=solver.gtol, x_scale="jac" if method == "lm" else 1.0,
                                bounds=bounds if bounds is not None else (-np.inf, np.inf))
        cost = res.cost if np.all(np.isfinite(res.x)) else np.inf
        costs.append(cost)
        if best is None or cost < best_cost:
            best, best_cost = res, cost
    return {"res": best, "costs": np.array(costs)}


def _at_bound(theta: np.ndarray, form: LeastSquaresForm | None, rtol: float = 1e-4) -> bool:
    """Whether labels (L,) lie on a side of the prior's box (within ``rtol`` of its width, or of
    max(|bound|, 1) for a half-open side)."""
    if form is None or not form.has_box:
        return False
    width = np.where(np.isfinite(form.hi - form.lo), form.hi - form.lo, np.maximum(np.abs(np.where(
        np.isfinite(form.lo), form.lo, form.hi)), 1.0))
    tol = rtol * width
    return bool(np.any(np.isfinite(form.lo) & (theta <= form.lo + tol))
                or np.any(np.isfinite(form.hi) & (theta >= form.hi - tol)))


def _free_covariance(jtj: np.ndarray) -> np.ndarray:
    """The covariance (L, L) of a singular ``jtj`` (L, L): the labels it leaves free (a flat
    emulator's, one no pixel depends on) have an infinite variance, and NaN covariances with the
    others; the rest, the inverse on the constrained subspace. pinv would give them 0, an error 0."""
    w, v = np.linalg.eigh(jtj)
    free = w <= max(w.max(initial=0.0), 0.0) * w.size * np.finfo(float).eps
    cov = (v[:, ~free] / w[~free]) @ v[:, ~free].T
    loose = np.any(np.abs(v[:, free]) > 1e-8, axis=1)           # the labels a free direction moves
    cov[loose, :] = np.nan
    cov[:, loose] = np.nan
    cov[loose, loose] = np.inf
    return cov


def covariances(jtj: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(J^T J)^-1 of each of ``jtj`` (n, L, L), and (n,) whether it is singular: a label the
    spectrum does not constrain, whose variance is infinite (:func:`_free_covariance`)."""
    try:
        return np.linalg.inv(jtj), np.zeros(jtj.shape[0], bool)
    except np.linalg.LinAlgError:
        pass
    cov, singular = np.empty_like(jtj), np.zeros(jtj.shape[0], bool)
    for i, m in enumerate(jtj):
        try:
            cov[i] = np.linalg.inv(m)
        except np.linalg.LinAlgError:
            cov[i], singular[i] = _free_covariance(m), True
    return cov, singular


def _unfitted(n: int, n_lab: int) -> dict[str, np.ndarray]:
    """The per-star arrays of n stars that no fit has reached (NaN labels, not converged)."""
    return {"labels": np.full((n, n_lab), np.nan), "cov": np.full((n, n_lab, n_lab), np.nan),
            "converged": np.zeros(n, bool), "nfev": np.zeros(n, np.int64), "start": np.full(n, -1, np.int64),
            "n_starts_agree": np.zeros(n, np.int64), "at_bound": np.zeros(n, bool)}


def _fit_block(flux: np.ndarray, weights: np.ndarray, starts: np.ndarray, forms: list, emulator: Any,
               mean: np.ndarray, scale: np.ndarray, solver: Solver) -> dict[str, np.ndarray]:
    """Fit n stars (flux, weights (n, P); starts (n, k, L) standardised) -> per-star arrays."""
    n, k, n_lab = starts.shape
    out = _unfitted(n, n_lab)
    for i in range(n):
        fit = _fit_star(flux[i], weights[i], starts[i], emulator, mean, scale, forms[i], solver)
        if fit is None:
            continue
        res, costs = fit["res"], fit["costs"]
        theta = mean + res.x * scale
        cov_z, singular = covariances((res.jac.T @ res.jac)[None])
        out["labels"][i] = theta
        out["cov"][i] = cov_z[0] * np.outer(scale, scale)
        out["converged"][i] = bool(res.status > 0 and np.all(np.isfinite(theta)) and not singular[0])
        out["nfev"][i] = res.nfev
        agree = costs <= res.cost * (1 + 1e-6) + 1e-9
        out["start"][i] = int(np.argmax(agree))          # the first start that reached the kept cost
        out["n_starts_agree"][i] = int(agree.sum())
        out["at_bound"][i] = _at_bound(theta, forms[i])
    return out


#: Per device: the most stars one batch may hold in this process, after the device ran out of memory.
_DEVICE_MAX_STARS: dict[str, int] = {}


def _device_lm(device: str, emulator: Any, flux: np.ndarray, weights: np.ndarray, starts: np.ndarray, forms: list,
               mean: np.ndarray, scale: np.ndarray, **kwargs: Any) -> dict[str, Any]:
    """:func:`~slamfw.stats.batched_lm.batched_lm` on a GPU (n stars: flux, weights (n, P), starts
    (n, k, L)). A batch the device's memory cannot hold (CuPy's ``OutOfMemoryError`` is a
    ``MemoryError``) is fitted in halves, and this process's later batches on that device in pieces
    of at most the half's size: each row's fit does not depend on the others. Returns
    ``batched_lm``'s dict (rows star-major, as for one call)."""
    n = len(flux)
    cap = _DEVICE_MAX_STARS.get(device)
    pieces = chunks(n, cap) if cap is not None and n > cap else None
    if pieces is None:
        try:
            return batched_lm(emulator, flux, weights, starts, forms, mean, scale, **kwargs)
        except MemoryError as exc:
            if n < 2:
                raise
            half = (n + 1) // 2
            if half < _DEVICE_MAX_STARS.get(device, n + 1):
                _DEVICE_MAX_STARS[device] = half
                # the error as text: a log record that a handler keeps (pytest's caplog, a memory
                # handler) would otherwise keep the exception, its traceback, and through it the
                # failed batch's arrays on the device
                log.warning("device %r: out of memory fitting %d stars at once (%s); fitting at most %d at once "
                            "from now on in this process (lower slamfw.stats.maxlike.BATCH_BYTES_DEVICE to avoid "
                            "the retries)", device, n, str(exc), half)
            pieces = [(0, half), (half, n)]
        # out of the except clause, the failed batch's arrays (held by its traceback) are gone: give
        # the blocks they leave in CuPy's pool back to the device
        pool = getattr(kwargs.get("xp"), "get_default_memory_pool", None)
        if pool is not None:
            pool().free_all_blocks()
    parts = [_device_lm(device, emulator, flux[a:b], weights[a:b], starts[a:b], forms[a:b], mean, scale, **kwargs)
             for a, b in pieces]
    return {key: (sum(p[key] for p in parts) if np.isscalar(parts[0][key]) else np.concatenate([p[key] for p in parts]))
            for key in parts[0]}


def _fit_block_batched(flux: np.ndarray, weights: np.ndarray, forms: list, start_index: np.ndarray,
                       emulator: Any, mean: np.ndarray, scale: np.ndarray, solver: Solver,
                       train: np.ndarray) -> dict[str, np.ndarray]:
    """:func:`_fit_block`, all stars and starts iterated together (:func:`~slamfw.stats.batched_lm.batched_lm`);
    ``start_index`` (n, k): the training star (of ``train`` (M, L)) each start is: the start is its
    standardised labels, and the solver looks up its emulated spectrum and jacobian in the library
    (:mod:`slamfw.stats.library`)."""
    starts = (train[start_index] - mean) / scale                  # (n, k, L), the bits of z_train[start_index]
    n, k, n_lab = starts.shape
    out = _unfitted(n, n_lab)
    fit = (weights > 0).sum(axis=1) >= n_lab
    if not fit.any():
        return _with_fit_quality(out, flux, weights, emulator)
    idx = np.flatnonzero(fit)
    xp = array_module(solver.device)
    evaluate = None if xp is np else device_evaluator(emulator, xp, solver.device)
    # one BLAS thread: the matrix products then sum in the same order in this process and on any
    # executor's workers, so the labels do not depend on where they were computed (the catalogue
    # is the same file under every executor)
    with limit_threads(1):
        start_model = None
        # the library's jacobian costs an evaluation of all its M stars, once per process: a block
        # of fewer rows than M * LIBRARY_MIN_FRACTION evaluates its starts instead (decided by the
        # block alone, so that a star's labels do not depend on which process fitted it)
        if xp is np and idx.size * k >= LIBRARY_MIN_FRACTION * len(train):
            lib_jac = library_jacobian(emulator, train)
            if lib_jac is not None:
                at = start_index[idx]
                start_model = (library_flux(emulator, train)[at], lib_jac[at])
        args = (emulator, flux[idx], weights[idx], starts[idx], [forms[i] for i in idx], mean, scale)
        kwargs = dict(max_nfev=solver.max_nfev, xtol=solver.xtol, ftol=solver.ftol, gtol=solver.gtol, xp=xp,
                      evaluate=evaluate, steps=solver.steps, last_step=solver.last_step)
        res = (batched_lm(*args, **kwargs, start_model=start_model, jacobian_precision=solver.jacobian_precision)
               if xp is np
               else _device_lm(solver.device, *args, **kwargs))
        return _fitted_block(out, res, flux, weights, forms, idx, k, mean, scale, emulator)


def _fitted_block(out: dict[str, np.ndarray], res: dict[str, Any], flux: np.ndarray, weights: np.ndarray,
                  forms: list, idx: np.ndarray, k: int, mean: np.ndarray, scale: np.ndarray,
                  emulator: Any) -> dict[str, np.ndarray]:
    """``out``, the per-star arrays of a block of n stars (flux, weights (n, P)), with the fits of
    its stars ``idx`` (``batched_lm``'s result ``res``, ``k`` starts each) filled in: each star's best
    start, its labels (n, L), covariance (n, L, L), convergence, and its fit's rmse and chi2 (n,)."""
    cost = np.where(np.isfinite(res["cost"]) & np.all(np.isfinite(res["z"]), axis=1), res["cost"], np.inf)
    cost = cost.reshape(idx.size, k)
    best = np.argmin(cost, axis=1)
    rows = np.arange(idx.size) * k + best
    theta = mean + res["z"][rows] * scale
    out["labels"][idx] = theta
    cov_z, singular = covariances(res["jtj"][rows])
    out["cov"][idx] = cov_z * np.outer(scale, scale)[None]
    out["converged"][idx] = res["converged"][rows] & np.all(np.isfinite(theta), axis=1) & ~singular
    out["nfev"][idx] = res["nfev"][rows]
    kept = cost[np.arange(idx.size), best]
    agree = cost <= kept[:, None] * (1 + 1e-6) + 1e-9
    out["start"][idx] = np.argmax(agree, axis=1)
    out["n_starts_agree"][idx] = agree.sum(axis=1)
    out["at_bound"][idx] = [_at_bound(theta[j], forms[i]) for j, i in enumerate(idx)]
    kept_model = None
    if "model" in res:
        kept_model = np.full(flux.shape, np.nan)
        kept_model[idx] = res["model"][rows]
    return _with_fit_quality(out, flux, weights, emulator, kept_model)


def _with_fit_quality(out: dict[str, np.ndarray], flux: np.ndarray, weights: np.ndarray, emulator: Any,
                      model: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """``out`` (a block's per-star arrays) with ``rmse`` and ``chi2`` (reduced) of its n stars
    (flux, weights (n, P)) at their labels: from ``model`` (n, P), the emulator's flux that the
    least squares kept at each solution, where it has it, else evaluated there; NaN model (so
    NaN, or 0 without good pixels, as before) for a star without finite labels."""
    fitted = np.isfinite(out["labels"]).all(axis=1)
    if model is None:
        model = np.full(flux.shape, np.nan)
        if fitted.any():
            model[fitted] = emulator.predict(out["labels"][fitted])
    else:
        model[~fitted] = np.nan
    out["rmse"] = rmse(flux, weights, model)
    out["chi2"] = reduced_chi2(flux, weights, model, out["labels"].shape[1])
    return out


def maximum_likelihood(model: InferenceModel, flux: np.ndarray, ivar: np.ndarray, prior: Prior | None = None,
                       ids: np.ndarray | None = None, n_starts: int = 3, use_model_error: bool = True,
                       solver: Solver | None = None, name: str = "inferer", start_separation: float = 1.0,
                       batched: bool = False) -> LabelResult:
    """Labels of N spectra (flux, ivar (N, P) on the model's grid) of highest likelihood times
    ``prior``, each from ``n_starts`` best-matching training stars, spread over label space (each
    start at least ``start_separation`` standardised units from the others, see
    :func:`~slamfw.stats.likelihood.best_library_matches`; 0: simply the best); the stars are
    spread over the executor in use. ``batched``: iterate all the stars of a task together
    (:mod:`slamfw.stats.batched_lm`, the same problem) instead of one by one with
    ``scipy.optimize.least_squares``; on a GPU (``solver.device``) the batches run in this process,
    one after another. ``LabelResult.extra`` holds ``start`` (which start won, 0 the best
    library match), ``n_starts_agree`` (how many starts reached the kept solution's cost) and
    ``at_bound`` (the solution lies on a side of the prior's box)."""
    emu = model.emulator
    flux, ivar = check_observations(name, flux, ivar, emu.n_pixels_)
    train = np.asarray(model.train_labels, float)
    mean, scale = train.mean(0), train.std(0, ddof=1)
    scale = np.where(scale > 0, scale, 1.0)
    w = likelihood_weights(ivar, emu.model_error_ if use_model_error else None)
    z_train = (train - mean) / scale
    idx = best_library_matches(flux, w, library_flux(emu, train), n_starts, z_train, start_separation)
    forms = prior_forms(name, prior, ids, flux.shape[0])
    solver = solver or Solver()
    per_task = solver.batch_stars(n_starts, emu.n_pixels_, train.shape[1], len(train)) if batched else STARS_PER_TASK
    blocks = chunks(flux.shape[0], per_task)
    if batched:       # each task's starts: the standardised labels of its library matches idx
        func, tasks = _fit_block_batched, [(flux[s:e], w[s:e], forms[s:e], idx[s:e]) for s, e in blocks]
        shared = dict(emulator=emu, mean=mean, scale=scale, solver=solver, train=train)
    else:
        starts = z_train[idx]                                 # (N, k, L)
        func, tasks = _fit_block, [(flux[s:e], w[s:e], starts[s:e], forms[s:e]) for s, e in blocks]
        shared = dict(emulator=emu, mean=mean, scale=scale, solver=solver)
    # on a GPU the batches run one after another in this process, which drives the device (the
    # executor's workers would each open it); on the CPU they are spread over the workers
    executor = current_executor() if solver.device == "cpu" or not batched else SerialExecutor()
    parts = executor.map(func, tasks, desc=f"{name}: fitting spectra", progress=False, shared=shared)
    cat = {key: np.concatenate([p[key] for p in parts]) for key in parts[0] if key not in ("evals", "flops")}
    if "rmse" not in cat:     # the one-by-one solver: the model at the solutions
        cat = _with_fit_quality(cat, flux, w, emu)
    return LabelResult(labels=cat["labels"], cov=cat["cov"], converged=cat["converged"], rmse=cat["rmse"],
                       chi2=cat["chi2"], init=train[idx[:, 0]],
                       nfev=cat["nfev"], label_names=list(model.label_names),
                       extra={"start": cat["start"], "n_starts_agree": cat["n_starts_agree"],
                              "at_bound": cat["at_bound"]})
