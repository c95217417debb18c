"""Levenberg-Marquardt for many stars at once: every step is a few matrix products for the batch.

The per-star solver (:mod:`slamfw.stats.maxlike`, ``scipy.optimize.least_squares``) calls the
emulator once per star and step, with one row of labels: for a kernel emulator that is a
matrix-vector product per call, and Python overhead dominates. Here the rows of all stars (and
all their starts) that are still iterating are stacked, so that each step is one call of
``emulator.least_squares_terms`` on a (B, L) batch (the cost, J^T r and J^T J; by default from
``predict_and_jacobian``; for ``slam``: one kernel matrix and one matrix-matrix product per
gamma group, then one compiled pass over it), then B small L x L damped normal equations solved
together by ``numpy.linalg.solve``. A row leaves the batch when it converges; the others go on.

Each row steps by one of two rules (``steps``): by default MINPACK ``lmder``'s trust region,
the per-star solver's (:mod:`.minpack_steps`: the same path, and so the same labels, star by
star), or this module's own secant rule (``steps = "secant"``, described below), which takes
fewer evaluations but another path. Both share the batch's evaluations, the starts and what is
returned.

The problem of each row is the same weighted least squares as the per-star solver's, in
standardised labels ``z = (theta - mean) / scale``::

    r(z) = w * (f - emulator(mean + z * scale))      (P,), plus the prior's Gaussian residuals
    J(z) = dr/dz                                     (P, L)

With the secant rule each step solves ``(H + lambda D) dz = -J^T r`` with ``D`` the diagonal of
``J^T J`` (Marquardt's scaling; floored so that a label the data do not constrain still moves), and
adapts the damping ``lambda`` per row by the ratio of actual to predicted reduction (Nielsen's
rule). ``H`` is Gauss-Newton's ``J^T J``, or ``J^T J + S``, where S estimates the part of the
Hessian that Gauss-Newton leaves out (``sum_p r_p d2r_p/dz2``) from the steps taken: after each
accepted step s, S gets the symmetric rank-one update that makes ``(J^T J_new + S) s`` equal the
gradient's actual change ``g_new - g`` (a structured secant condition; NL2SOL, Dennis, Gay &
Welsch 1981, updates S with a sized rank-two formula from ``(J_new - J)^T r_new``, which needs
the previous point's J, not kept here, and on ``slam``'s compiled path never formed: its
``least_squares_terms`` gives J^T r and J^T J only). Each row's next step uses the
model, J^T J or J^T J + S, that predicted the last step's actual reduction better (NL2SOL's
rule). Gauss-Newton converges only linearly where that left-out part is not small against
J^T J, on labels the spectrum constrains weakly: its steps zig-zag around the minimum or creep
towards it. On case (a)'s 1500 test spectra (one start), the 192
stars that took 10 or more evaluations had a median log g error of 0.22 dex against 0.09 for the
others, and 58 % of them are hotter than 7500 K (38 % of all); S took them from 15.7 evaluations
on average to 8.7, and all rows from 6.4 to 5.3 (at most 28 instead of 52), their labels within
0.017 of their formal errors of Gauss-Newton's; on MILES's 117 test stars, 5.2 instead of 6.6.
A prior's box is kept by projecting each trial point into it.

With the secant rule a row stops, converged, when an accepted step lowers the cost by less than
``ftol`` of it, or a
step moves z by less than ``xtol`` of its size, or when the gradient's largest component falls
below ``gtol``, or when at an accepted point the undamped Gauss-Newton step would lower the cost
by at most ``ftol`` of it (``g^T (J^T J)^-1 g / 2``, the quadratic model's whole reduction: the
step the first test would stop after is not evaluated; on case (a)'s 1500 test spectra this
saves one evaluation in ten and moves labels by at most 0.005 of their formal errors). After a
step from ``J^T J + S`` the first two tests stop nothing (a wrong S can make a step short where
the minimum is far): the row goes on with Gauss-Newton, S starts afresh and so does the
damping. It stops, not converged, after ``max_nfev`` evaluations or when the damping grows
without bound. The covariance is ``(J^T J)^-1`` at the solution, whichever model the steps used.
The model choice is a comparison: where it is nearly a tie, rounding (another BLAS, the GPU) can
send a row along another path to the same minimum, to within the tolerances.

With ``jacobian_precision = "single"`` (on numpy, for an emulator whose ``least_squares_terms``
offers it: ``slam``) the jacobian's matrix products are computed in float32, at about twice the
rate of double's; for 3 labels they are three quarters of a step's products, for 5 five sixths
(on case (c)'s 5-label model the fit took 1.5 times less time). The model and the
cost stay in double: each step is accepted or rejected, and the ``ftol`` test stops a row, on
double's cost. J^T r and J^T J carry float32's rounding (at most 3e-5 and 5e-6 of their largest
entries on case (a)'s model, where the terms took 1.45 times less time per row:
``benchmarks/bench_lm_terms.py``), and so does all that is built on them: the steps (and through
them the ``xtol`` test), the ``gtol`` and decrement tests, the secant term and the covariance
(the formal errors within 0.1 % of double's on the tests' mock spectra). A row can then take
another path. On case (a)'s 20,000 survey spectra (one start) the labels moved by a median 1e-4
of the formal error; 4 stars moved by more than 0.05 of it: two along flat valleys (0.07 and 0.08
of the error, reduced chi^2 within 3e-5) and two into another minimum (2.4 and 9.4 times the
error; one of lower chi^2, one of higher), as the per-star solver's paths differ from the batched
one's on such spectra.

The first evaluation of each row is at its start, a training star: with ``start_model`` (the
emulated library, :mod:`slamfw.stats.library`) it is looked up instead.

The code is written against an array module ``xp``: numpy, or CuPy to run on a GPU
(:mod:`slamfw.stats.device`), with the emulator's ``on_device(xp)`` evaluator.
"""
from __future__ import annotations

import inspect
from functools import partial
from typing import Any

import numpy as np

from ..components.emulator import check_jacobian_precision
from ..components.prior import LeastSquaresForm
from .device import to_numpy
from .minpack_steps import _solve, free_gradient, held_terms, minpack_steps

#: Damping: starting value and the bound beyond which a row gives up. lambda multiplies D, the
#: diagonal of J^T J, so both have no units: 1e-3 starts close to a Gauss-Newton step. (Until
#: 2026-11-27 it started at 1e-3 times the largest diagonal of J^T J, the starting value for a
#: damping of the identity: on case (a) it damped the first steps to a half or less of Gauss-Newton's,
#: and rows took 9.0 evaluations on average instead of 6.4.)
LAMBDA_START = 1e-3
LAMBDA_MAX = 1e16
#: The step rules of :func:`batched_lm`: MINPACK ``lmder``'s (:mod:`.minpack_steps`, the default) and this module's.
STEPS = ("minpack", "secant")


def _prior_terms(forms: list[LeastSquaresForm | None], n_lab: int, mean: np.ndarray, scale: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per row: the prior's Gaussian weights (B, L) (0: none) and means (B, L) in physical units,
    and its box (B, L) lo, hi in standardised units (+-inf: open)."""
    n = len(forms)
    pw, pm = np.zeros((n, n_lab)), np.zeros((n, n_lab))
    lo, hi = np.full((n, n_lab), -np.inf), np.full((n, n_lab), np.inf)
    for i, form in enumerate(forms):
        if form is None:
            continue
        g = form.has_gaussian
        pw[i] = np.where(g, 1.0 / np.where(g, form.sigma, 1.0), 0.0)
        pm[i] = np.where(g, form.mean, 0.0)
        lo[i] = (form.lo - mean) / scale
        hi[i] = (form.hi - mean) / scale
    return pw, pm, lo, hi


class _Batch:
    """The rows' data and the emulator, evaluated for any subset of rows."""

    def __init__(self, emulator: Any, flux: np.ndarray, weights: np.ndarray, mean: np.ndarray, scale: np.ndarray,
                 pw: np.ndarray, pm: np.ndarray, xp: Any = np, evaluate: Any = None,
                 jacobian_precision: str = "double") -> None:
        self.emulator, self.mean, self.scale, self.xp = emulator, mean, scale, xp
        self.predict_and_jacobian = evaluate or emulator.predict_and_jacobian
        # on numpy, the emulator's own least-squares terms (no (b, P, L) jacobian for a kernel emulator)
        terms = getattr(emulator, "least_squares_terms", None) if evaluate is None and xp is np else None
        if terms is not None and jacobian_precision != "double" and declares(terms, "jacobian_precision"):
            terms = partial(terms, jacobian_precision=jacobian_precision)
        self.terms = terms
        #: whether :meth:`evaluate` gives the model it evaluated: with the emulator's own terms,
        #: where they declare ``model_out`` (plugin API 1.8), or its ``predict_and_jacobian``; not
        #: through a device's evaluator (the rows' models would be copied back at every step)
        self.gives_model = evaluate is None and xp is np and (terms is None or declares(terms, "model_out"))
        self.wf = xp.where(weights > 0, weights * xp.where(weights > 0, flux, 0.0), 0.0)
        self.w = weights
        self.pw, self.pm = pw, pm
        self.n_evals = 0
        self.flops = 0.0

    def evaluate(self, rows: np.ndarray, z: np.ndarray, known: tuple[np.ndarray, np.ndarray] | None = None,
                 model_out: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Cost (b,), gradient J^T r (b, L) and J^T J (b, L, L) of ``rows`` at z (b, L); ``known``:
        the emulator's flux (b, P) and jacobian (b, L, P) (pixels last) there, looked up instead
        of evaluated; ``model_out`` (b, P), where :attr:`gives_model`: filled with that flux."""
        xp = self.xp
        theta = self.mean + z * self.scale
        if known is None:
            self.n_evals += len(rows)
            flops = getattr(self.emulator, "flops_per_evaluation", None)
            if flops is not None:
                self.flops += len(rows) * flops
        pw = self.pw[rows]
        rp = pw * (theta - self.pm[rows])                               # (b, L) prior residuals (0 where none)
        jp = pw * self.scale[None, :]                                   # their jacobian is diagonal
        n_lab, n_pix = z.shape[1], self.w.shape[1]
        if self.terms is not None and known is None:
            more = {} if model_out is None else {"model_out": model_out}
            cost, grad, jtj = self.terms(theta, self.w[rows], self.wf[rows], **more)   # physical labels: to z
            cost = cost + 0.5 * xp.einsum("bl,bl->b", rp, rp)
            grad = grad * self.scale[None, :] + jp * rp
            jtj = jtj * (self.scale[:, None] * self.scale[None, :])[None]
        else:
            if known is None:
                model, jac = self.predict_and_jacobian(theta)                   # (b, P), (b, P, L)
                jac_t = jac.transpose(0, 2, 1)          # (b, L, P): a view without copying for the kernel emulators
            else:
                model, jac_t = known
            if model_out is not None:
                model_out[...] = model
            w = self.w[rows]
            r = self.wf[rows] - w * model                                   # (b, P)
            # dr/dz as (b, L, P), pixels last
            jzt = xp.multiply(jac_t, -w[:, None, :])
            jzt *= self.scale[None, :, None]
            cost = 0.5 * (xp.einsum("bp,bp->b", r, r) + xp.einsum("bl,bl->b", rp, rp))
            grad = xp.matmul(jzt, r[:, :, None])[:, :, 0] + jp * rp         # batched products: matmul, not einsum
            jtj = xp.matmul(jzt, jzt.transpose(0, 2, 1))
        idx = xp.arange(n_lab)
        jtj[:, idx, idx] += jp ** 2
        self.flops += len(rows) * n_pix * (n_lab ** 2 + 2 * n_lab) * 2.0
        return cost, grad, jtj


def declares(method: Any, keyword: str) -> bool:
    """Whether an emulator's ``least_squares_terms`` declares ``keyword``: ``jacobian_precision``
    (plugin API 1.5), ``model_out`` (1.8); one written for an earlier API is called without it."""
    try:
        return keyword in inspect.signature(method).parameters
    except (TypeError, ValueError):
        return False


def _predicted(g: Any, step: Any, a: Any) -> Any:
    """(b,) the cost reduction ``-(g.s + s.A.s / 2)`` that the quadratic model with gradient g
    (b, L) and Hessian a (b, L, L) predicts for the steps s (b, L)."""
    return -((g * step).sum(axis=1) + 0.5 * (step[:, None, :] @ a @ step[:, :, None])[:, 0, 0])


def _sr1(sec: Any, s: Any, y: Any, xp: Any = np) -> Any:
    """(b, L, L) the symmetric rank-one update of ``sec`` (b, L, L) that makes ``sec @ s = y`` for
    the steps s (b, L) and their second-order gradient changes y (b, L); a row whose update is
    ill-defined (``|v.s| <= 1e-8 |v| |s|``, v = y - sec s) keeps its ``sec``."""
    v = y - (sec @ s[:, :, None])[:, :, 0]
    den = xp.einsum("bl,bl->b", v, s)
    use = xp.abs(den) > 1e-8 * xp.linalg.norm(v, axis=1) * xp.linalg.norm(s, axis=1)
    return sec + xp.where(use, 1.0 / xp.where(use, den, 1.0), 0.0)[:, None, None] * (v[:, :, None] * v[:, None, :])


def _stops(small_cost: Any, small_step: Any, small_grad: Any, small_next: Any, used: Any) -> tuple[Any, Any]:
    """(b,) which rows stop, converged, after a step, and which go on with Gauss-Newton and a fresh
    secant: a small gain or step (``small_cost``, ``small_step``) stops a row whose step came from
    Gauss-Newton's model, but not one whose step used the secant term (``used``): that may be the
    term's fault (too much curvature: a short step far from the minimum), so that row restarts it.
    A small gradient, or a small Gauss-Newton decrement at the new point, stops either."""
    stop = small_grad | small_next | ((small_cost | small_step) & ~used)
    return stop, used & (small_cost | small_step) & ~stop


def _decrement(a: Any, g: Any, xp: Any = np) -> Any:
    """(b,) ``g^T a^-1 g / 2``, the cost reduction of the undamped Gauss-Newton step that the
    quadratic model with gradient g (b, L) and J^T J a (b, L, L) predicts; inf for a row whose a
    is singular."""
    x, solved = _solve(a, g, xp)
    out = 0.5 * xp.einsum("bl,bl->b", g, x)
    return xp.where(solved & xp.isfinite(out) & (out >= 0), out, xp.inf)


def batched_lm(emulator: Any, flux: np.ndarray, weights: np.ndarray, starts: np.ndarray,
               forms: list[LeastSquaresForm | None], mean: np.ndarray, scale: np.ndarray, max_nfev: int = 200,
               xtol: float = 1e-8, ftol: float = 1e-8, gtol: float = 1e-8, xp: Any = np,
               evaluate: Any = None, start_model: tuple[np.ndarray, np.ndarray] | None = None,
               jacobian_precision: str = "double", steps: str = "minpack",
               last_step: float | None = None) -> dict[str, np.ndarray]:
    """Fit n stars (flux, weights (n, P)) from k starts each (starts (n, k, L), standardised);
    ``forms`` (n,) each star's prior (None: flat). Returns per-row numpy arrays for the n * k
    rows, in star-major order: ``z`` (R, L), ``cost`` (R,), ``jtj`` (R, L, L) at the solution,
    ``converged`` (R,), ``nfev`` (R,), ``model`` (R, P), the emulator's flux at ``z`` (on numpy
    without ``evaluate``, unless the emulator's ``least_squares_terms`` cannot give it: plugin
    API < 1.8), and the totals ``n_evals`` and ``flops`` (when the emulator reports
    ``flops_per_evaluation``). ``xp``: the array module to compute with (numpy, or CuPy
    with ``evaluate = emulator.on_device(cupy)``); ``evaluate``: labels (b, L) -> flux (b, P)
    and jacobian (b, P, L) on ``xp`` (default: ``emulator.predict_and_jacobian``). ``start_model``:
    the emulator's flux (n, k, P) and jacobian (n, k, L, P) (pixels last) at the starts (the
    emulated library's, :mod:`slamfw.stats.library`), used instead of evaluating it there (a
    start that the prior's box moves is evaluated). ``jacobian_precision``: "single" lets the
    emulator's ``least_squares_terms`` compute the jacobian's products in single precision (on
    numpy; the cost, which accepts or rejects each step, stays in double). ``steps``: "minpack"
    (``lmder``'s, the per-star solver's: :mod:`.minpack_steps`) or "secant" (this module's);
    ``last_step``: the minpack steps' last-step rule (formal errors; 0: off; default
    :data:`.minpack_steps.LAST_STEP`)."""
    check_jacobian_precision(jacobian_precision, "batched_lm")
    if steps not in STEPS:
        raise ValueError(f"batched_lm: steps must be one of {STEPS}, not {steps!r}")
    n, k, n_lab = starts.shape
    rows_star = np.repeat(np.arange(n), k)
    pw, pm, lo, hi = (xp.asarray(a[rows_star]) for a in _prior_terms(forms, n_lab, mean, scale))
    mean, scale = xp.asarray(mean), xp.asarray(scale)
    batch = _Batch(emulator, xp.asarray(flux[rows_star]), xp.asarray(weights[rows_star]), mean, scale, pw, pm,
                   xp=xp, evaluate=evaluate, jacobian_precision=jacobian_precision)
    span = xp.where(xp.isfinite(hi - lo), hi - lo, 1.0)
    pad = 1e-6 * span
    z = xp.clip(xp.asarray(starts.reshape(n * k, n_lab)), lo + pad, hi - pad)
    n_rows = n * k
    n_pix = flux.shape[1]
    # each row's model at its current point, where the evaluations give it: the model at the
    # solution then costs no evaluation more
    model = np.empty((n_rows, n_pix)) if batch.gives_model else None

    def model_rows(b: int) -> np.ndarray | None:
        return None if model is None else np.empty((b, n_pix))
    if start_model is None:
        cost, grad, jtj = batch.evaluate(xp.arange(n_rows), z, model_out=model)
    else:
        cost, grad = xp.empty(n_rows), xp.empty((n_rows, n_lab))
        jtj = xp.empty((n_rows, n_lab, n_lab))
        flux0 = xp.asarray(start_model[0]).reshape(n_rows, -1)
        jac0 = xp.asarray(start_model[1]).reshape(n_rows, n_lab, -1)
        moved = xp.any(z != xp.asarray(starts.reshape(n_rows, n_lab)), axis=1)
        for sel, known in ((xp.flatnonzero(~moved), True), (xp.flatnonzero(moved), False)):
            if sel.size:
                m_sel = model_rows(sel.size)
                cost[sel], grad[sel], jtj[sel] = batch.evaluate(sel, z[sel], (flux0[sel], jac0[sel]) if known else None,
                                                                model_out=m_sel)
                if model is not None:
                    model[sel] = m_sel
    nfev = xp.ones(n_rows, xp.int64)
    if steps == "minpack":
        converged = minpack_steps(lambda rows, zr, mo: batch.evaluate(rows, zr, model_out=mo), z, cost, grad, jtj,
                                  model, nfev, lo, hi, pad, max_nfev, xtol, ftol, gtol, xp, last_step)
        return _result(z, cost, jtj, converged, nfev, model, batch, xp)
    lam = xp.full(n_rows, LAMBDA_START)
    nu = xp.full(n_rows, 2.0)
    done = xp.zeros(n_rows, bool)
    converged = xp.zeros(n_rows, bool)
    # a start that already sits at a stationary point (of the labels not held on the box)
    flat = xp.max(xp.abs(free_gradient(z, grad, lo + pad, hi - pad, xp)), axis=1) <= gtol
    done[flat], converged[flat] = True, True
    eye = xp.eye(n_lab)
    sec = xp.zeros((n_rows, n_lab, n_lab))      # secant estimate of the Hessian's second-order part
    use_sec = xp.zeros(n_rows, bool)             # the next step from J^T J + sec (else Gauss-Newton's J^T J)
    while True:
        act = xp.flatnonzero(~done)
        if act.size == 0:
            break
        g, a_gn, used = grad[act], jtj[act], use_sec[act]
        lo_a, hi_a = lo[act] + pad[act], hi[act] - pad[act]
        # labels on a side of the box that the gradient pushes outwards are held there (as on
        # MINPACK's path): the step moves the others as if they were fixed
        _, g_step, a = held_terms(z[act], g, a_gn + xp.where(used[:, None, None], sec[act], 0.0), lo_a, hi_a, xp)
        diag = xp.diagonal(a_gn, axis1=1, axis2=2)
        floor = 1e-10 * xp.maximum(diag.max(axis=1, keepdims=True), 1e-300)
        damp = lam[act, None, None] * (xp.maximum(diag, floor)[:, :, None] * eye)
        try:
            step = xp.linalg.solve(a + damp, -g_step[:, :, None])[:, :, 0]
        except np.linalg.LinAlgError:
            step = xp.stack([xp.linalg.lstsq(a[i] + damp[i], -g_step[i], rcond=None)[0] for i in range(act.size)])
        trial = xp.clip(z[act] + step, lo_a, hi_a)
        step = trial - z[act]
        m_new = model_rows(act.size)
        c_new, g_new, a_new = batch.evaluate(act, trial, model_out=m_new)
        nfev[act] += 1
        # the reductions both models predict for this step; the step came from the one in ``a``
        gain_gn, gain_sec = _predicted(g, step, a_gn), _predicted(g, step, a_gn + sec[act])
        predicted = xp.where(used, gain_sec, gain_gn)
        actual = cost[act] - c_new
        ok = xp.isfinite(c_new) & (actual > 0)
        # the accepted rows as indices: one device-to-host transfer of their count (on a GPU, each
        # boolean-mask index would be one), the rest of the step's bookkeeping by xp.where
        oi = xp.flatnonzero(ok)
        rho = xp.where(ok & (predicted > 0), actual / xp.where(predicted > 0, predicted, 1.0), 0.0)
        acc = act[oi]
        small_cost = ok & (actual <= ftol * cost[act])
        # a step this small (accepted or not) means z is a minimum to xtol, as MINPACK's test
        small_step = xp.linalg.norm(step, axis=1) <= xtol * (xtol + xp.linalg.norm(z[act], axis=1))
        # the next step from the model that predicted this one's actual reduction better (NL2SOL's choice)
        use_sec[act] = xp.where(xp.isfinite(c_new), xp.abs(actual - gain_sec) < xp.abs(actual - gain_gn), used)
        s_ok, g_ok, a_ok = step[oi], g_new[oi], a_new[oi]
        if oi.size:
            sec[acc] = _sr1(sec[acc], s_ok, g_ok - g[oi] - xp.einsum("blm,bm->bl", a_ok, s_ok), xp)
        z[acc], cost[acc], grad[acc], jtj[acc] = trial[oi], c_new[oi], g_ok, a_ok
        if model is not None:
            model[acc] = m_new[oi]
        lam_act, nu_act = lam[act], nu[act]
        lam_act = xp.where(ok, lam_act * xp.maximum(1.0 / 3.0, 1.0 - (2.0 * rho - 1.0) ** 3), lam_act * nu_act)
        nu_act = xp.where(ok, 2.0, nu_act * 2.0)
        # the tests at an accepted row's new point look at the labels not held there
        _, g_free, a_free = held_terms(trial[oi], g_ok, a_ok, lo_a[oi], hi_a[oi], xp)
        small_grad = xp.zeros(act.size, bool)
        small_grad[oi] = xp.max(xp.abs(g_free), axis=1) <= gtol
        # at the new point, the Gauss-Newton step would lower the cost by at most ftol of it: no need to take it
        small_next = xp.zeros(act.size, bool)
        small_next[oi] = _decrement(a_free, g_free, xp) <= ftol * c_new[oi]
        stop_ok, restart = _stops(small_cost, small_step, small_grad, small_next, used)
        use_sec[act] &= ~restart
        sec[act] = xp.where(restart[:, None, None], 0.0, sec[act])
        lam[act] = xp.where(restart, LAMBDA_START, lam_act)     # not the damping the secant steps built up
        nu[act] = xp.where(restart, 2.0, nu_act)
        converged[act] |= stop_ok
        give_up = (nfev[act] >= max_nfev) | (lam[act] > LAMBDA_MAX)
        done[act] |= stop_ok | give_up
    return _result(z, cost, jtj, converged, nfev, model, batch, xp)


def _result(z: Any, cost: Any, jtj: Any, converged: Any, nfev: Any, model: np.ndarray | None, batch: _Batch,
            xp: Any) -> dict[str, Any]:
    """:func:`batched_lm`'s dict of per-row numpy arrays and totals (a row with a point or cost
    not finite is not converged)."""
    converged = converged & xp.all(xp.isfinite(z), axis=1) & xp.isfinite(cost)
    out = {"z": to_numpy(z), "cost": to_numpy(cost), "jtj": to_numpy(jtj), "converged": to_numpy(converged),
           "nfev": to_numpy(nfev), "n_evals": batch.n_evals, "flops": batch.flops}
    if model is not None:
        out["model"] = model
    return out
