"""MINPACK's Levenberg-Marquardt steps for many rows at once (``lm.steps = "minpack"``).

The per-star solver (``batched = false``) is ``scipy.optimize.least_squares(method="lm")``:
MINPACK's ``lmder`` (Moré 1978), a trust region in labels scaled by the columns of J
(``x_scale = "jac"``, pinned there). On spectra with several minima the batched solver's other
step rule (``steps = "secant"``, :mod:`slamfw.stats.batched_lm`: Gauss-Newton's model with a
secant term, Nielsen's damping) takes another path than ``lmder``'s and can end in another
minimum. These steps, the default, are ``lmder``'s, so that both solvers take the same path to
within rounding:

- the scaling D: the norms of J's columns at the start, then at each accepted point the larger
  of them and the last D;
- the trust region: ``delta = 100 |D z|`` (100 when z = 0), cut to the first step's length;
- each step: ``lmpar``'s Levenberg-Marquardt parameter ``par``, for which the step p solving
  ``(J^T J + par D^2) p = -J^T r`` has ``|D p|`` within 10 % of delta (or ``par = 0``, the
  Gauss-Newton step, when that is inside 1.1 delta), found by up to 10 safeguarded Newton
  iterations between the bounds ``parl`` and ``paru``;
- the ratio of the actual to the predicted reduction, the updates of delta and par from it,
  acceptance at a ratio of at least 1e-4, and the tests: ``ftol`` (actual and predicted
  relative reductions), ``xtol`` (delta against ``|D z|``), ``gtol`` (the largest cosine of the
  angle between r and a column of J, at each accepted point), ``max_nfev``, and the
  tolerances at machine precision (MINPACK's info 6-8, counted converged: nothing can move
  the row further; with tolerances of at least the machine precision, which scipy demands,
  the other tests stop such a row first).

``lmder`` computes them from a QR factorisation of J with column pivoting; here they come from
the same quantities through the normal equations (J^T J, J^T r and the cost are what
:meth:`slamfw.Emulator.least_squares_terms` gives): ``|J p|^2 = p^T J^T J p``, the norms of the
columns are the roots of J^T J's diagonal, and ``lmpar``'s Newton correction
``|S^-T P^T D^2 p| / |D p|`` is ``w^T (J^T J + par D^2)^-1 w`` with ``w = D^2 p / |D p|``. The
two differ by rounding (the normal equations square J's condition number; with 3 to 5
standardised labels it is far from double's limit). Where J^T J is singular (``lmder``'s
``nsing < n``) the Gauss-Newton step is the least-norm one; ``lmder``'s sets the components of
the last pivoted columns to zero instead: the same step where a label has no effect on the
model, another in general. A step whose actual-to-predicted ratio is not a number is rejected
(``lmder`` would accept it), and a row whose cost at its start is not finite is given up.

A prior's box (``lmder`` has none; ``batched = false`` then uses ``trf``, another algorithm) is
kept by holding the labels that lie on a side of it which the gradient pushes outwards (the
step is ``lmder``'s in the other labels) and projecting each trial point into it; the gradient
test then takes the other labels' components. Such a step's predicted reduction and slope are
the quadratic model's along the step actually taken, and a step that predicts no reduction is
not accepted, nor does it count for the ``ftol`` tests; after a rejected projected step the
region shrinks by at least half (``lmder``'s factor, capped at 0.5: a projected step's slope can
be uphill). On 300 mock spectra with the training range as the box (``method = "trf"``;
benchmarks/RESULTS.md gives the model), every row converged, and 6 ended more than 0.05 of the
formal error from the one-by-one ``trf``'s labels (the secant rule: 245 converged, 3 of them that
far).

Each row evaluates the emulator at every trial point, as ``lmder`` calls the residuals there;
``lmder`` evaluates J only at accepted points, while the batched terms give both at once. So
``nfev`` counts the same evaluations as ``lmder``'s.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

#: MINPACK's initial step bound factor (``factor``, scipy's choice: 100).
FACTOR = 100.0
#: The last step is not evaluated when it would move the labels by at most this many formal
#: errors and predicts a relative reduction of at most ``ftol`` (the default of
#: :func:`minpack_steps`'s ``last_step``; ``lm``'s ``last_step``) ...
LAST_STEP = 0.01
#: ... and the row's last evaluated step's ratio of actual to predicted reduction was within this
#: of 1.
LAST_RATIO = 0.5
#: The smallest positive double (MINPACK's ``dwarf``) and the machine precision (``epsmch``).
DWARF = np.finfo(float).tiny
EPSMCH = np.finfo(float).eps


def _solve(a: Any, b: Any, xp: Any = np) -> tuple[Any, Any]:
    """x (m, L) solving a x = b for a (m, L, L), b (m, L), and which rows were solved (m,) bool;
    a singular row (numpy raises for it, CuPy gives inf or NaN) gets the least-norm solution
    (and False)."""
    m = b.shape[0]
    if m == 0:
        return xp.zeros(b.shape), xp.ones(0, bool)
    try:
        x = xp.linalg.solve(a, b[:, :, None])[:, :, 0]
    except np.linalg.LinAlgError:          # numpy: some row is singular; the others solved together
        x = xp.full(b.shape, xp.nan)
        with np.errstate(invalid="ignore"):
            ok = xp.flatnonzero(xp.linalg.det(a) != 0.0)
        try:
            x[ok] = xp.linalg.solve(a[ok], b[ok, :, None])[:, :, 0]
        except np.linalg.LinAlgError:
            x[ok] = xp.stack([_one(a[i], b[i], xp) for i in ok])
    solved = xp.all(xp.isfinite(x), axis=1)
    finite = xp.all(xp.isfinite(a), axis=(1, 2)) & xp.all(xp.isfinite(b), axis=1)
    for i in xp.flatnonzero(~solved & finite).tolist():   # (a row of NaN, from an emulator's NaN, stays NaN)
        try:
            x[i] = xp.linalg.lstsq(a[i], b[i], rcond=None)[0]
        except np.linalg.LinAlgError:
            pass
    return x, solved


def _one(a: Any, b: Any, xp: Any) -> Any:
    """One row's solution, NaN where it is singular (:func:`_solve` then takes the least-norm one)."""
    try:
        return xp.linalg.solve(a, b)
    except np.linalg.LinAlgError:
        return xp.full(b.shape, xp.nan)


def _quad(w: Any, a: Any, xp: Any = np) -> Any:
    """(m,) w^T a^-1 w for w (m, L), a (m, L, L) positive definite."""
    x, _ = _solve(a, w, xp)
    return xp.einsum("bl,bl->b", w, x)


def _model_terms(step: Any, grad: Any, jtj: Any, par: Any, pnorm: Any, fn: Any, projected: Any,
                 xp: Any = np) -> tuple[Any, Any, Any]:
    """``(|J p|^2, prered, dirder)`` (b,) of steps p (b, L) from rows of gradient J^T r ``grad``
    (b, L), J^T J ``jtj`` (b, L, L), damping ``par`` (b,), ``pnorm`` = |D p| (b,) and fnorm
    ``fn`` = |r| (b,). ``prered`` is the reduction of |r|^2 that the step predicts, relative to
    fnorm^2, and ``dirder`` = g.p / fnorm^2 the slope of |r|^2 / 2 along p (``lmder``'s, which
    shrinks the trust region from them after a failed step). For ``lmder``'s own step,
    p = -(J^T J + par D^2)^-1 J^T r, they are lmder's ``temp1^2 + temp2^2/0.5`` and ``-(temp1^2 +
    temp2^2)``; a step ``projected`` into a box (b,) bool is not that step, so its are the
    undamped quadratic model's: ``(-2 g.p - |J p|^2) / fnorm^2`` and ``g.p / fnorm^2`` (for lmder's
    step both pairs agree)."""
    jp = xp.einsum("bl,blm,bm->b", step, jtj, step)
    with np.errstate(divide="ignore", invalid="ignore"):
        jp2, dp2 = jp / fn ** 2, par * pnorm ** 2 / fn ** 2   # (|J p| / fnorm)^2, (sqrt(par) |D p| / fnorm)^2
        gp = xp.einsum("bl,bl->b", grad, step) / fn ** 2
        prered = xp.where(projected, -2.0 * gp - jp2, jp2 + 2.0 * dp2)
        dirder = xp.where(projected, gp, -(jp2 + dp2))
    return jp, prered, dirder


def lmpar(a: Any, g: Any, d: Any, delta: Any, par: Any, xp: Any = np) -> tuple[Any, Any]:
    """MINPACK's ``lmpar`` for m rows: J^T J ``a`` (m, L, L), J^T r ``g`` (m, L), the scaling
    ``d`` (m, L) > 0, the step bounds ``delta`` (m,) and the last parameters ``par`` (m,) ->
    the new parameters (m,) and the steps (m, L): ``-(a + par d^2)^-1 g``, whose scaled length
    ``|d p|`` is within 10 % of delta, or the Gauss-Newton step (``par = 0``) where that one's is
    at most 1.1 delta."""
    m, n_lab = g.shape
    x, full = _solve(a, g, xp)                       # Gauss-Newton: lmder's step is -x
    dx = xp.linalg.norm(d * x, axis=1)
    fp = dx - delta
    par = xp.where(fp <= 0.1 * delta, 0.0, par)
    live = xp.flatnonzero(fp > 0.1 * delta)
    if live.size == 0:
        return par, -x
    a_l, g_l, d_l, de, x_l, fp_l, dx_l = a[live], g[live], d[live], delta[live], x[live], fp[live], dx[live]
    # the lower bound: Newton's step at par = 0, where J has full rank; else 0
    w = d_l * (d_l * x_l) / dx_l[:, None]
    parl = xp.where(full[live], fp_l / de / xp.where(full[live], _quad(w, a_l, xp), 1.0), 0.0)
    # the upper bound: |D^-1 J^T r| / delta
    gnorm = xp.linalg.norm(g_l / d_l, axis=1)
    paru = gnorm / de
    paru = xp.where(paru == 0.0, DWARF / xp.minimum(de, 0.1), paru)
    p = xp.minimum(xp.maximum(par[live], parl), paru)
    p = xp.where(p == 0.0, gnorm / dx_l, p)
    idx = xp.arange(n_lab)
    going = xp.ones(live.size, bool)
    for it in range(1, 11):
        rows = xp.flatnonzero(going)
        if rows.size == 0:
            break
        pr = xp.where(p[rows] == 0.0, xp.maximum(DWARF, 0.001 * paru[rows]), p[rows])
        p[rows] = pr
        mat = a_l[rows].copy()
        mat[:, idx, idx] += pr[:, None] * d_l[rows] ** 2
        xr, _ = _solve(mat, g_l[rows], xp)
        x_l[rows] = xr
        dxr = xp.linalg.norm(d_l[rows] * xr, axis=1)
        prev, fpr = fp_l[rows], dxr - de[rows]
        fp_l[rows] = fpr
        stop = ((xp.abs(fpr) <= 0.1 * de[rows]) | ((parl[rows] == 0.0) & (fpr <= prev) & (prev < 0.0))
                | (it == 10))
        going[rows[stop]] = False
        on = xp.flatnonzero(~stop)
        if on.size == 0:
            break
        r_on = rows[on]
        wr = d_l[r_on] * (d_l[r_on] * xr[on]) / dxr[on, None]
        parc = fpr[on] / de[r_on] / _quad(wr, mat[on], xp)
        parl[r_on] = xp.where(fpr[on] > 0.0, xp.maximum(parl[r_on], pr[on]), parl[r_on])
        paru[r_on] = xp.where(fpr[on] < 0.0, xp.minimum(paru[r_on], pr[on]), paru[r_on])
        p[r_on] = xp.maximum(parl[r_on], pr[on] + parc)
    par = par.copy()
    par[live] = p
    x[live] = x_l
    return par, -x


def _held(z: Any, g: Any, lo: Any, hi: Any) -> Any:
    """(m, L) the labels on a side of the box (lo, hi (m, L)) that the gradient g (m, L) of the
    cost pushes outwards: a descent step would leave the box there."""
    return ((z <= lo) & (g > 0.0)) | ((z >= hi) & (g < 0.0))


def free_gradient(z: Any, g: Any, lo: Any, hi: Any, xp: Any = np) -> Any:
    """The gradient g (m, L) at z (m, L) with the labels :func:`_held` on a side of the box lo, hi
    (m, L) set to 0: what a gradient test looks at (:func:`held_terms` gives it with the step's
    matrix)."""
    return xp.where(_held(z, g, lo, hi), 0.0, g)


def held_terms(z: Any, g: Any, a: Any, lo: Any, hi: Any, xp: Any = np) -> tuple[Any, Any, Any]:
    """``(held, g, a)`` for rows at z (m, L) in the box lo, hi (m, L), of gradient g (m, L) and
    J^T J (or its secant-corrected form) a (m, L, L): the labels :func:`_held` on a side of the
    box, and g and a with those labels taken out (their gradient 0, their rows and columns of a
    reduced to the diagonal), so that a Newton step moves the other labels as if the held ones
    were fixed, and a gradient test looks at the free labels only. Nothing held: g and a as given."""
    held = _held(z, g, lo, hi)
    if held.any():
        free = ~held
        eye = xp.eye(z.shape[1], dtype=bool)[None]
        g = xp.where(held, 0.0, g)
        a = xp.where(free[:, :, None] & free[:, None, :], a, xp.where(eye, a, 0.0))
    return held, g, a


def minpack_steps(evaluate: Callable[..., tuple[Any, Any, Any]], z: Any, cost: Any, grad: Any, jtj: Any,
                  model: np.ndarray | None, nfev: Any, lo: Any, hi: Any, pad: Any, max_nfev: int, xtol: float,
                  ftol: float, gtol: float, xp: Any = np, last_step: float | None = None) -> Any:
    """Iterate rows (R) from their starts z (R, L) with ``lmder``'s steps (see the module's
    docstring), in place: z, the cost (R,), J^T r ``grad`` (R, L), J^T J (R, L, L), ``model``
    (R, P; or None) and ``nfev`` (R,) hold each row's accepted point when it returns; the box
    ``lo + pad`` .. ``hi - pad`` (R, L). ``evaluate(rows, z, model_out)`` -> cost, J^T r, J^T J of
    ``rows`` at z (b, L), filling ``model_out`` (b, P) when given. Returns ``converged`` (R,).

    ``last_step`` (formal errors; 0: off, every evaluation lmder makes; default
    :data:`LAST_STEP`): ``lmder`` stops on ``ftol`` only after evaluating a step whose actual and
    predicted relative reductions are both at most ftol, an evaluation that mostly confirms the
    row has converged. Here a row stops, converged, before evaluating a step (neither projected
    into a box nor holding a label on one) whose predicted reduction is at most ftol and whose
    length ``s = sqrt(p^T J^T J p)`` is at most ``last_step``, provided its last evaluated step's
    ratio rho of actual to predicted reduction was within :data:`LAST_RATIO` (0.5) of 1. Where
    the cost is locally quadratic along one direction, Gauss-Newton's steps shrink by ``|rho -
    1|`` each (rho = 2 - h/a, with h the cost's curvature along the step and a J^T J's), so the
    steps ``lmder`` would still take add up to at most ``s |rho - 1| / (1 - |rho - 1|) <= s``:
    the labels end within about ``2 last_step`` formal errors (the covariance is ``(J^T
    J)^-1``) of ``lmder``'s. That is a bound from that model, not a guarantee: with several
    labels one step's ratio averages over directions, and a slow one can hide behind a fast one
    (a constructed two-label example ended 0.034 of the error from lmder's labels). Without the
    ratio condition a row creeping along a valley (rho near 2, each step nearly as long as the
    last) would stop far from lmder's end. On case (a)'s 20,000 survey spectra: 6.22 evaluations
    per star instead of lmder's 7.17 with one start, 7.24 instead of 8.14 with three, the labels
    within 0.0038 and 0.0042 of the error of the one-by-one solver's."""
    last_step = LAST_STEP if last_step is None else last_step
    n_rows, n_lab = z.shape
    n_pix = None if model is None else model.shape[1]
    diag = xp.ones((n_rows, n_lab))
    delta = xp.zeros(n_rows)
    par = xp.zeros(n_rows)
    xnorm = xp.zeros(n_rows)
    gnorm = xp.zeros(n_rows)
    first = xp.ones(n_rows, bool)               # lmder's iter == 1: before the first accepted step
    outer = xp.ones(n_rows, bool)               # at a new point: scale, gradient test
    done = xp.zeros(n_rows, bool)
    converged = xp.zeros(n_rows, bool)
    ratio_seen = xp.full(n_rows, xp.nan)        # the ratio of actual to predicted reduction of the last step
    while True:
        # at each new point: the columns' norms, lmder's scaling and its gradient test
        o = xp.flatnonzero(outer & ~done)
        if o.size:
            acn = xp.sqrt(xp.maximum(xp.diagonal(jtj[o], axis1=1, axis2=2), 0.0))
            fn = xp.sqrt(2.0 * cost[o])
            f1 = first[o]
            diag[o] = xp.where(f1[:, None], xp.where(acn == 0.0, 1.0, acn), xp.maximum(diag[o], acn))
            xn = xp.linalg.norm(diag[o] * z[o], axis=1)
            xnorm[o] = xp.where(f1, xn, xnorm[o])
            delta[o] = xp.where(f1, xp.where(xn == 0.0, FACTOR, FACTOR * xn), delta[o])
            g_free = free_gradient(z[o], grad[o], lo[o] + pad[o], hi[o] - pad[o], xp)
            with np.errstate(divide="ignore", invalid="ignore"):
                cosine = xp.where(acn > 0.0, xp.abs(g_free) / (fn[:, None] * xp.where(acn > 0.0, acn, 1.0)), 0.0)
            gn = xp.where(fn > 0.0, xp.max(cosine, axis=1), 0.0)
            gnorm[o] = gn
            small = gn <= gtol
            finite = xp.isfinite(fn)                       # a start whose cost is not finite: given up
            done[o[small | ~finite]] = True
            converged[o[small & finite]] = True
            outer[o] = False
        act = xp.flatnonzero(~done)
        if act.size == 0:
            break
        z_a, d_a, lo_a, hi_a = z[act], diag[act], lo[act] + pad[act], hi[act] - pad[act]
        # labels on a side of the box that the gradient pushes outwards are held there: the
        # step is lmder's in the others, then projected into the box
        held, g_a, a_a = held_terms(z_a, grad[act], jtj[act], lo_a, hi_a, xp)
        par_a, step = lmpar(a_a, g_a, d_a, delta[act], par[act], xp)
        trial = xp.clip(z_a + step, lo_a, hi_a)
        projected = xp.any(held, axis=1) | xp.any(trial != z_a + step, axis=1)
        step = trial - z_a
        pnorm = xp.linalg.norm(d_a * step, axis=1)
        fn = xp.sqrt(2.0 * cost[act])
        jp, prered, dirder = _model_terms(step, grad[act], jtj[act], par_a, pnorm, fn, projected, xp)
        last = (~projected & (prered <= ftol) & (jp <= last_step ** 2)
                & (xp.abs(ratio_seen[act] - 1.0) <= LAST_RATIO))
        if last.any():
            done[act[last]] = True
            converged[act[last]] = True
            keep = xp.flatnonzero(~last)
            act, z_a, d_a, par_a, step, trial, projected, pnorm, fn, prered, dirder = (
                v[keep] for v in (act, z_a, d_a, par_a, step, trial, projected, pnorm, fn, prered, dirder))
            if act.size == 0:
                continue
        de = xp.where(first[act], xp.minimum(delta[act], pnorm), delta[act])
        m_new = None if model is None else np.empty((act.size, n_pix))
        c_new, g_new, a_new = evaluate(act, trial, m_new)
        nfev[act] += 1
        fn1 = xp.sqrt(2.0 * c_new)
        with np.errstate(divide="ignore", invalid="ignore"):
            actred = xp.where(0.1 * fn1 < fn, 1.0 - (fn1 / fn) ** 2, -1.0)
            # (lmder's own prered is never negative; a projected step's can be: such a step
            # predicts no reduction, and is not accepted whatever its actual reduction)
            ratio = xp.where(prered > 0.0, actred / xp.where(prered > 0.0, prered, 1.0), 0.0)
            temp = xp.where(actred >= 0.0, 0.5, 0.5 * dirder / (dirder + 0.5 * actred))
        temp = xp.where((0.1 * fn1 >= fn) | (temp < 0.1) | ~xp.isfinite(temp), 0.1, temp)
        # (lmder's steps go downhill, dirder < 0, and temp <= 0.5; a projected step need not, and
        # a temp above 1 would grow the region after a rejection, to the same trial again)
        temp = xp.minimum(temp, 0.5)
        shrink = ~(ratio > 0.25)                          # lmder's branch: a NaN ratio shrinks
        grow = ~shrink & ((par_a == 0.0) | (ratio >= 0.75))
        de = xp.where(shrink, temp * xp.minimum(de, pnorm / 0.1), xp.where(grow, pnorm / 0.5, de))
        par_a = xp.where(shrink, par_a / temp, xp.where(grow, 0.5 * par_a, par_a))
        delta[act], par[act] = de, par_a
        ratio_seen[act] = ratio
        oi = xp.flatnonzero(ratio >= 1e-4)               # lmder's successful iteration
        acc = act[oi]
        z[acc], cost[acc], grad[acc], jtj[acc] = trial[oi], c_new[oi], g_new[oi], a_new[oi]
        if model is not None:
            model[acc] = m_new[oi]
        xnorm[acc] = xp.linalg.norm(diag[acc] * z[acc], axis=1)
        first[acc] = False
        outer[acc] = True
        xn = xnorm[act]
        # (a projected step that predicts no reduction says nothing of convergence: not the ftol tests)
        modelled = ~projected | (prered > 0.0)
        stop = ((xp.abs(actred) <= ftol) & (prered <= ftol) & (0.5 * ratio <= 1.0) & modelled) | (de <= xtol * xn)
        # lmder's info 6-8: the tolerances at machine precision, nothing can move the row further
        tiny = (((xp.abs(actred) <= EPSMCH) & (prered <= EPSMCH) & (0.5 * ratio <= 1.0) & modelled)
                | (de <= EPSMCH * xn)
                | (gnorm[act] <= EPSMCH))
        converged[act] |= stop | tiny
        done[act] |= stop | tiny | (nfev[act] >= max_nfev)
    return converged
