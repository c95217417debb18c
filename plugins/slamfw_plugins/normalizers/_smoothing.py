"""Cubic smoothing splines for many spectra at once: scipy's ``make_smoothing_spline``, batched.

The spline of a star minimises ``sum_i (y_i - f(x_i))^2 + lam * int f''(t)^2 dt`` over the
natural cubic splines with knots at its kept points x_i. scipy solves this (Green & Silverman's
natural-spline basis) as the banded system ``(X + lam E) c = y``, X the design matrix in the
natural basis and E the penalty, building E one point at a time in a Python loop
(``_coeff_of_divided_diff``), which made the spline normaliser most of a ``slamfw predict``.

Here the same system is built with array operations for a block of stars at once. Stars keep
different numbers of points, so each star's kept points are moved to the front of its row and the
row is padded with points of weight 0 beyond its last kept point: the system multiplied by the
weights, ``(W X + lam E) c = W y``, is scipy's for weights 1, and a row of weight 0 reads
``E_i c = 0`` (no knot at x_i), so beyond the last kept point the spline is the straight line a
natural spline is there, and inside it is scipy's spline. Only the small banded solves (LAPACK,
one per star) run in a Python loop. Values at the rejected points come from the spline's
B-spline form, as scipy's ``BSpline`` gives them (its end cubic extrapolated beyond the kept points).

The values agree with scipy's to about 1e-8 relative at the penalties the normaliser uses (the
system's own conditioning: perturbing scipy's input by one padded point moves its answer as
much); ``tests/test_smoothing.py`` checks it.
"""
from __future__ import annotations

import numpy as np
from scipy.linalg import solve_banded


def _divided_difference_coefficients(xw: np.ndarray) -> np.ndarray:
    """(..., k) the coefficients of the divided difference over the last axis of xw (..., k):
    ``1 / prod_{m != i} (x_i - x_m)``."""
    k = xw.shape[-1]
    d = xw[..., :, None] - xw[..., None, :]
    d[..., np.arange(k), np.arange(k)] = 1.0
    return 1.0 / np.prod(d, axis=-1)


def _five_point_coefficients(x: np.ndarray) -> np.ndarray:
    """(N, n - 4, 5) ``_divided_difference_coefficients`` of every window x[:, j:j+5] of x (N, n),
    from the ten differences between window points, without (N, n, 5, 5) temporaries."""
    n = x.shape[1]
    g = {(a, b): x[:, b:n - 4 + b] - x[:, a:n - 4 + a] for a in range(5) for b in range(a + 1, 5)}
    out = np.empty((x.shape[0], n - 4, 5))
    for i in range(5):
        prod = np.ones_like(g[0, 1])
        for m in range(5):
            if m != i:
                prod = prod * (g[m, i] if m < i else g[i, m])
        out[..., i] = (1.0 if (4 - i) % 2 == 0 else -1.0) / prod
    return out


def _knots(x: np.ndarray) -> np.ndarray:
    """(N, n + 6) the knots of cubic splines with knots at x (N, n): triple end knots added."""
    return np.concatenate([np.repeat(x[:, :1], 3, 1), x, np.repeat(x[:, -1:], 3, 1)], axis=1)


def _bspline_values(u: np.ndarray, t: np.ndarray, m: np.ndarray) -> np.ndarray:
    """(N, p, 4) the cubic B-splines ``m - 3 .. m`` of knots t (N, K) at points u (N, p), each in
    (or extrapolated from) the knot interval ``[t_m, t_m+1)``, m (N, p) or (p,). Cox-de Boor."""
    if np.ndim(m) == 1:       # the same intervals on every row
        tk = {j: t[:, m + j] for j in range(-2, 4)}
    else:
        tk = {j: np.take_along_axis(t, m + j, axis=1) for j in range(-2, 4)}
    left = [None] + [u - tk[1 - j] for j in range(1, 4)]      # u - t[m + 1 - j]
    right = [None] + [tk[j] - u for j in range(1, 4)]         # t[m + j] - u
    vals = [np.ones_like(u)]
    for j in range(1, 4):
        saved = np.zeros_like(u)
        new = []
        for r in range(j):
            temp = vals[r] / (right[r + 1] + left[j - r])
            new.append(saved + right[r + 1] * temp)
            saved = left[j - r] * temp
        vals = [*new, saved]
    return np.stack(vals, axis=-1)


def natural_spline_system(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The banded system for points x (N, n), n >= 5, strictly increasing along each row: the
    natural-basis design matrix X and the penalty E, both (N, 5, n) in ``solve_banded``'s (2, 2)
    storage (``ab[2 + i - j, j] = a[i, j]``), as scipy's ``make_smoothing_spline`` builds them."""
    x = np.asarray(x, float)
    N, n = x.shape
    first = np.minimum(np.arange(n), n - 2)          # the first B-spline non-zero at each point
    values = _bspline_values(x, _knots(x), first + 3)
    n_basis = n + 2

    def basis(rows, cols) -> np.ndarray:
        """(N, len(rows)) B-spline ``cols`` at points ``rows``."""
        rows, cols = np.asarray(rows), np.asarray(cols)
        pos = cols - first[rows]
        return np.where((pos >= 0) & (pos < 4), values[:, rows, np.clip(pos, 0, 3)], 0.0)

    X = np.zeros((N, 5, n))
    c = np.arange(2, n - 2)
    for i in range(1, 4):
        X[:, i, 2:-2] = basis(c + i - 2, c + 1)
    b00, b11, b12, b22 = basis([0, 1, 1, 2], [0, 1, 2, 2]).T
    X[:, 1, 1] = b00
    X[:, 2, 0] = (x[:, 2] + x[:, 1] - 2 * x[:, 0]) * b00
    X[:, 2, 1] = b11 + b12
    X[:, 3, 0] = (x[:, 2] - x[:, 0]) * b11
    X[:, 3, 1] = b22
    e33, e23, e22, e11 = basis([n - 3, n - 2, n - 2, n - 1],
                               [n_basis - 3, n_basis - 3, n_basis - 2, n_basis - 1]).T
    X[:, 1, -2] = e33
    X[:, 1, -1] = (x[:, -1] - x[:, -3]) * e22
    X[:, 2, -2] = e23 + e22
    X[:, 2, -1] = (2 * x[:, -1] - x[:, -2] - x[:, -3]) * e11
    X[:, 3, -2] = e11
    E = np.zeros((N, 5, n))
    E[:, 2:, 0] = _divided_difference_coefficients(x[:, :3])
    E[:, 1:, 1] = _divided_difference_coefficients(x[:, :4])
    E[:, :, 2:-2] = np.swapaxes((x[:, 4:] - x[:, :-4])[..., None] * _five_point_coefficients(x), 1, 2)
    E[:, :-1, -2] = -_divided_difference_coefficients(x[:, -4:])
    E[:, :-2, -1] = _divided_difference_coefficients(x[:, -3:])
    E *= 6
    return X, E


#: Trailing points whose system a star's last columns are taken from (>= 10: see below).
_TAIL = 10


def smoothing_spline_values(x: np.ndarray, y: np.ndarray, keep: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """Smoothing splines fitted to the kept points of each row, and their values at every point.

    Parameters
    ----------
    x : (N, n) strictly increasing along each row
    y : (N, n) data (only kept points are read)
    keep : (N, n) bool, at least 5 True per row: the points each spline is fitted to
    lam : (N,) penalties

    Returns
    -------
    (N, n) each row's spline at all its x: ``make_smoothing_spline(x[keep], y[keep], lam)(x)``.
    """
    x = np.asarray(x, float)
    N, n = x.shape
    keep = np.asarray(keep, bool)
    lam = np.asarray(lam, float)
    counts = keep.sum(axis=1)
    if np.any(counts < 5):
        raise ValueError("smoothing_spline_values: each row needs at least 5 kept points")
    if np.any(np.diff(x, axis=1) <= 0):
        raise ValueError("smoothing_spline_values: x must be strictly increasing along each row")
    rows = np.arange(N)
    order = np.argsort(~keep, axis=1, kind="stable")              # kept points first, in order
    xs = np.take_along_axis(x, order, axis=1)
    ys = np.take_along_axis(np.asarray(y, float), order, axis=1)
    cols = np.arange(n)
    real = cols[None, :] < counts[:, None]
    last = xs[rows, counts - 1]
    step = (last - xs[:, 0]) / (counts - 1)
    # the rest of each row: increasing filler, so that the system is built for all rows at once
    xs = np.where(real, xs, last[:, None] + (cols[None, :] - counts[:, None] + 1) * step[:, None])
    X, E = natural_spline_system(xs)
    # A system's column j holds rows j-2 .. j+2 and reads the points j-5 .. j+5 at most, so the
    # first n_s - 5 columns of star s's are those of its kept points alone; its last 5 come from
    # the system of its last _TAIL kept points (whose first columns see that tail's start).
    long = counts >= _TAIL
    if long.any():
        tail = np.take_along_axis(xs[long], counts[long, None] - _TAIL + np.arange(_TAIL), axis=1)
        Xt, Et = natural_spline_system(tail)
        dest = counts[long, None] - 5 + np.arange(5)               # (k, 5) columns to replace
        X[rows[long, None], :, dest] = np.swapaxes(Xt[:, :, -5:], 1, 2)
        E[rows[long, None], :, dest] = np.swapaxes(Et[:, :, -5:], 1, 2)
    cc = np.zeros_like(xs)
    for s in range(N):
        m = counts[s]
        if long[s]:
            ab = X[s, :, :m] + lam[s] * E[s, :, :m]
        else:
            Xs, Es = natural_spline_system(xs[s:s + 1, :m])
            ab = Xs[0] + lam[s] * Es[0]
        cc[s, :m] = solve_banded((2, 2), ab, ys[s, :m], overwrite_ab=True, check_finite=False)
    # each star's knots (its own triple end knots after its last kept point; filler beyond)
    t = _knots(xs)
    t[rows[:, None], counts[:, None] + np.arange(3, 6)] = last[:, None]
    # scipy's change from the natural basis to the B-spline basis, (N, n + 2) (zeros beyond n_s + 2)
    t3, t4, t5 = t[:, 3], t[:, 4], t[:, 5]
    te4, te5, te6 = (t[rows, counts + k] for k in (2, 1, 0))      # t[-4], t[-5], t[-6] of each star
    c_first, c_last = cc[:, 0], cc[rows, counts - 1]
    c_second, c_before = cc[:, 1], cc[rows, counts - 2]
    coef = np.zeros((N, n + 2))
    coef[:, 0] = c_first * (t5 + t4 - 2 * t3) + c_second
    coef[:, 1] = c_first * (t5 - t3) + c_second
    inner = (cols[None, :] >= 1) & (cols[None, :] < counts[:, None] - 1)
    coef[:, 2:n + 1] = np.where(inner[:, 1:], cc[:, 1:], 0.0)
    coef[rows, counts] = c_last * (te4 - te6) + c_before
    coef[rows, counts + 1] = c_last * (2 * te4 - te5 - te6) + c_before
    # each point's piece: the kept interval it falls in, the first or last one outside them
    piece = np.clip(np.cumsum(keep, axis=1) - 1, 0, (counts - 2)[:, None])
    vals = _bspline_values(x, t, piece + 3)
    idx = piece[..., None] + np.arange(4)
    return np.einsum("npk,npk->np", vals, np.take_along_axis(coef[:, None, :], idx, axis=2))
