"""The smoothing spline of ``scipy.interpolate.make_smoothing_spline``, without its Python loop.

scipy builds the penalty matrix one point at a time (``_coeff_of_divided_diff`` in a Python loop:
n x 5 x 5 scalar operations per fit), which made the spline normaliser about 95 % of a
``slamfw predict`` process. This module builds the same banded system with array operations and
solves it with the same LAPACK routine, so the spline is bit-for-bit scipy's (a test checks it):
the minimiser of ``sum (y_i - f(x_i))^2 + lam * int f''(t)^2 dt`` over natural cubic splines with
knots at x (Green & Silverman's natural-spline basis, as scipy uses it).
"""
from __future__ import annotations

import numpy as np
from scipy.interpolate import BSpline
from scipy.linalg import solve_banded


def _divided_difference_coefficients(xw: np.ndarray) -> np.ndarray:
    """(J, k) the coefficients of the divided difference over each row of xw (J, k):
    ``1 / prod_{m != i} (x_i - x_m)``."""
    k = xw.shape[1]
    d = xw[:, :, None] - xw[:, None, :]
    d[:, np.arange(k), np.arange(k)] = 1.0
    return 1.0 / np.prod(d, axis=2)


def smoothing_spline(x: np.ndarray, y: np.ndarray, lam: float) -> BSpline:
    """``make_smoothing_spline(x, y, lam=lam)`` (unit weights) for x (n,) strictly increasing,
    n >= 5, and y (n,)."""
    x = np.ascontiguousarray(x, float)
    y = np.ascontiguousarray(y, float)
    n = x.size
    if n < 5 or np.any(np.diff(x) <= 0):
        raise ValueError("smoothing_spline: x must hold at least 5 strictly increasing values")
    t = np.r_[[x[0]] * 3, x, [x[-1]] * 3]
    design = BSpline.design_matrix(x, t, 3).tocsr()
    n_basis = design.shape[1]
    values = design.data.reshape(n, 4)            # each row: the 4 cubic B-splines that can be
    first = design.indices.reshape(n, 4)[:, 0]    # non-zero there, in consecutive columns from `first`

    def basis(rows: np.ndarray | list[int], cols: np.ndarray | list[int]) -> np.ndarray:
        rows, cols = np.asarray(rows), np.asarray(cols)
        pos = cols - first[rows]
        return np.where((pos >= 0) & (pos < 4), values[rows, np.clip(pos, 0, 3)], 0.0)

    # the design matrix in the natural-spline basis, in solve_banded's (2, 2) storage
    X = np.zeros((5, n))
    c = np.arange(2, n - 2)
    for i in range(1, 4):
        X[i, 2:-2] = basis(c + i - 2, c + 1)
    b00, b11, b12, b22 = basis([0, 1, 1, 2], [0, 1, 2, 2])
    X[1, 1] = b00
    X[2, :2] = ((x[2] + x[1] - 2 * x[0]) * b00, b11 + b12)
    X[3, :2] = ((x[2] - x[0]) * b11, b22)
    e33, e23, e22, e11 = basis([n - 3, n - 2, n - 2, n - 1], [n_basis - 3, n_basis - 3, n_basis - 2, n_basis - 1])
    X[1, -2:] = (e33, (x[-1] - x[-3]) * e22)
    X[2, -2:] = (e23 + e22, (2 * x[-1] - x[-2] - x[-3]) * e11)
    X[3, -2] = e11
    # the penalty matrix
    E = np.zeros((5, n))
    E[2:, 0] = _divided_difference_coefficients(x[None, :3])[0]
    E[1:, 1] = _divided_difference_coefficients(x[None, :4])[0]
    win = np.lib.stride_tricks.sliding_window_view(x, 5)          # x[j-2 .. j+2] for j = 2 .. n-3
    E[:, 2:-2] = ((win[:, 4] - win[:, 0])[:, None] * _divided_difference_coefficients(win)).T
    E[:-1, -2] = -_divided_difference_coefficients(x[None, -4:])[0]
    E[:-2, -1] = _divided_difference_coefficients(x[None, -3:])[0]
    E *= 6
    cc = solve_banded((2, 2), X + lam * E, y)
    # back to the B-spline basis
    coef = np.r_[cc[0] * (t[5] + t[4] - 2 * t[3]) + cc[1], cc[0] * (t[5] - t[3]) + cc[1], cc[1:-1],
                 cc[-1] * (t[-4] - t[-6]) + cc[-2], cc[-1] * (2 * t[-4] - t[-5] - t[-6]) + cc[-2]]
    return BSpline.construct_fast(t, coef, 3)
