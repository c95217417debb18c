"""Cubic smoothing splines for many spectra at once, with knots at every pixel.

The spline of a star minimises ``sum_i w_i (y_i - f(x_i))^2 + lam * int f''(t)^2 dt`` (the
integral over the star's pixel range) over cubic splines with knots at all its pixels x_i; the
normaliser gives its kept pixels weight 1 and its rejected ones weight 0. That minimiser is the
natural smoothing spline of the kept pixels alone (scipy's ``make_smoothing_spline(x[keep],
y[keep], lam)``): a knot at a rejected pixel costs nothing and is not used, and beyond the first
and last kept pixels the minimiser is the straight line a natural spline is there (scipy's
``BSpline`` would extrapolate its end cubic instead).

It is solved in the B-spline basis, ``(B^T W B + lam Omega) c = B^T W y``, a symmetric positive
definite banded system (bandwidth 3) per star: B (the basis at the pixels) and Omega (the
penalty, ``int B_j'' B_k''``, exact: B'' is linear on each interval) depend on the wavelengths
only, so they are built once per block of stars, with array operations, and every rejection
iteration only reweights B^T W B and solves. With numba installed (``slamfw[fast]``) assembly,
factorisation (``L D L^T``, no square roots), solves and values run in one compiled forward and
one backward sweep per star: 25 us per star and solve on 1900 pixels, each star on its own grid,
97 us on 7214 (``benchmarks/bench_spline.py``'s cases, 2026-11-28; the same operations in the same
order as the sweeps before, bit for bit, which took 34 and 133 us that day with the open rows in
a 4 x 4 array indexed by row % 4 and the factor's rows read back through numba's negative-index
checks; 51 and 211 us for the Cholesky kernel before those, which summed, factored and solved 8
stars side by side in separate passes) against 290-310 us for the fallback (numpy's assembly, then
LAPACK's banded Cholesky called once per star); the two agree to rounding (3e-8 to 8e-8 of a unit
continuum at 100-150 A). Against scipy on the kept pixels either agrees to 1e-7 (100 A) to 1e-6
(150 A) of the continuum on a 1 A grid of 1900 pixels; the agreement loosens as the system's
conditioning grows with the smoothing length and the number of pixels (measured: 4e-6 at 300 A on
that grid, 6.5e-6 at 100 A and 4e-4 at 300 A on APOGEE's 7214 pixels), far below any spectrum's
noise.
``tests/test_smoothing.py`` checks grids up to 1900 pixels.

A penalty too stiff for the grid is refused with a ValueError: a system whose factorisation fails,
or has a pivot at most :data:`PIVOT_FLOOR` (1e-12) of its diagonal entry (the pivot D_k of ``L D
L^T``, the square of Cholesky's: the compiled kernel and the LAPACK fallback test the same number). There the penalty
swamps the data term, whose digits are lost when the two are added, and the continuum's error (to
the exact spline) grows roughly as 3e-14 / (smallest pivot / its diagonal): measured on 700 and
1900 pixels with straight-line data (every spline of them is the line), 8e-4 at a ratio of 4e-11
(lam = 1e12: 1000 A on a 1 A grid), 5e-3 at 4e-12, 0.1 at 4e-13, before this floor refused them
(at lam = 1e30 on 700 pixels the compiled kernel gave a continuum near 1e-13). The normaliser's
usual settings are above it: ratios of 5e-8 and 2e-9 at 100 and 300 A on a 1 A grid, 2e-11 (20
times the floor) at 300 A on APOGEE's 7214 pixels (``benchmarks/spline_conditioning.py`` prints
these).
"""
from __future__ import annotations

from typing import NoReturn

import numpy as np

from slamfw import ConfigError

from .._jit import Kernel


#: A pivot (D_k of ``L D L^T``: a squared Cholesky pivot) at most this fraction of its diagonal entry
#: is mostly rounding: the penalty is too stiff for the grid, and the system is refused (see the
#: module's docstring for the measured errors).
PIVOT_FLOOR = 1e-12


def _fit_rows_py(basis, omega, y, w, lam, rows, out):  # pragma: no cover - compiled by numba
    """basis (4, N, n), omega (4, N, n + 2), y, w (M, n), lam (M,), rows (M,) int in [0, N), out
    (M, n) (checked by the caller: numba does not check bounds). The loops follow the layout of
    :attr:`SmoothingSplines.first` (``min(i, n - 2)``: the first B-spline non-zero at point i).

    What :meth:`SmoothingSplines.values` computes, one star at a time in one forward and one
    backward sweep. Forward: the banded normal equations of star s (penalty rows[s] of omega,
    basis rows[s]) are summed point by point, each entry from ``lam omega`` in point order, in
    scalars: point k (k < n - 2) adds to rows k .. k + 3 and completes row k; the last two points
    both add to rows n - 2 .. n + 1 (``tail``), which close after them. As each row closes it is
    factored, ``A = L D L^T`` with L unit lower triangular of bandwidth 3 (no square roots; the
    last three rows' ``L[k + d, k]`` (u), its product with D_k (t) and z in scalars), and the
    forward solve ``L z = B^T W y`` takes its next value; back[k] keeps z_k (1 / D_k) and column k
    of L. Backward: ``L^T c = D^-1 z``, and the spline at each point as soon as its 4 coefficients
    are known, into out[s]. Nothing of one star depends on another. Returns -1, or the first star
    whose system is not positive definite (a pivot D_k at most PIVOT_FLOOR of its diagonal entry,
    or not a number)."""
    M, n = y.shape
    m = n + 2
    back = np.empty((m, 4))                    # row k: z_k (1 / D_k), L[k + 1, k], L[k + 2, k], L[k + 3, k]
    tail = np.empty((4, 5))                    # rows n - 2 .. n + 1: bands 0..3, right-hand side
    for s in range(M):
        r = rows[s]
        ls = lam[s]
        # the started entries of the open rows k .. k + 2 (lam omega, then each point's term in
        # turn): row k bands 0..2, row k + 1 bands 0..1, row k + 2 band 0; their right-hand sides
        a00, a01, a02 = ls * omega[0, r, 0], ls * omega[1, r, 0], ls * omega[2, r, 0]
        a10, a11 = ls * omega[0, r, 1], ls * omega[1, r, 1]
        a20 = ls * omega[0, r, 2]
        h0 = h1 = h2 = 0.0
        # rows k - 1, k - 2, k - 3 (zeros before row 0): u (L), t (L D), z
        pu1 = pu2 = pu3 = pt1 = pt2 = pt3 = pz = 0.0
        qu2 = qu3 = qt2 = qt3 = qz = 0.0
        ru3 = rt3 = rz = 0.0
        for k in range(m):                     # row k closes
            if k < n - 2:                      # after point k, which adds to rows k .. k + 3
                b0, b1, b2, b3 = basis[0, r, k], basis[1, r, k], basis[2, r, k], basis[3, r, k]
                wi = w[s, k]
                yv = wi * y[s, k] if wi > 0.0 else 0.0
                v0, v1, v2, v3 = wi * b0, wi * b1, wi * b2, wi * b3
                c0 = a00 + v0 * b0             # row k, complete
                c1 = a01 + v0 * b1
                c2 = a02 + v0 * b2
                c3 = ls * omega[3, r, k] + v0 * b3
                hk = h0 + yv * b0
                a00 = a10 + v1 * b1            # the entries b3 starts, and the next rows move up
                a01 = a11 + v1 * b2
                a02 = ls * omega[2, r, k + 1] + v1 * b3
                a10 = a20 + v2 * b2
                a11 = ls * omega[1, r, k + 2] + v2 * b3
                a20 = ls * omega[0, r, k + 3] + v3 * b3
                h0 = h1 + yv * b1
                h1 = h2 + yv * b2
                h2 = 0.0 + yv * b3             # from 0.0, as summed (-0.0 becomes 0.0)
            else:                              # the last 4 rows close after the last point
                if k == n - 2:                 # the last two points both add to rows n - 2 .. n + 1
                    tail[0, 0], tail[0, 1], tail[0, 2], tail[0, 4] = a00, a01, a02, h0
                    tail[1, 0], tail[1, 1], tail[1, 4] = a10, a11, h1
                    tail[2, 0], tail[2, 4] = a20, h2
                    tail[3, 4] = 0.0
                    for j in range(4):
                        for d in range(3 - j, 4):
                            tail[j, d] = ls * omega[d, r, k + j]
                    for i in range(n - 2, n):
                        b0, b1, b2, b3 = basis[0, r, i], basis[1, r, i], basis[2, r, i], basis[3, r, i]
                        wi = w[s, i]
                        yv = wi * y[s, i] if wi > 0.0 else 0.0
                        tail[0, 4] += yv * b0
                        tail[1, 4] += yv * b1
                        tail[2, 4] += yv * b2
                        tail[3, 4] += yv * b3
                        v0, v1, v2, v3 = wi * b0, wi * b1, wi * b2, wi * b3
                        tail[0, 0] += v0 * b0
                        tail[0, 1] += v0 * b1
                        tail[0, 2] += v0 * b2
                        tail[0, 3] += v0 * b3
                        tail[1, 0] += v1 * b1
                        tail[1, 1] += v1 * b2
                        tail[1, 2] += v1 * b3
                        tail[2, 0] += v2 * b2
                        tail[2, 1] += v2 * b3
                        tail[3, 0] += v3 * b3
                j = k - (n - 2)
                c0, c1, c2, c3, hk = tail[j, 0], tail[j, 1], tail[j, 2], tail[j, 3], tail[j, 4]
            dk = c0 - pu1 * pt1 - qu2 * qt2 - ru3 * rt3
            if not dk > PIVOT_FLOOR * c0:
                return s
            rk = 1.0 / dk
            t1 = c1 - pu2 * pt1 - qu3 * qt2
            t2 = c2 - pu3 * pt1
            zk = hk - pu1 * pz - qu2 * qz - ru3 * rz
            u1, u2, u3 = t1 * rk, t2 * rk, c3 * rk
            back[k, 0], back[k, 1], back[k, 2], back[k, 3] = zk * rk, u1, u2, u3
            ru3, rt3, rz = qu3, qt3, qz
            qu2, qu3, qt2, qt3, qz = pu2, pu3, pt2, pt3, pz
            pu1, pu2, pu3, pt1, pt2, pt3, pz = u1, u2, u3, t1, t2, c3, zk
        c1 = c2 = c3 = 0.0                     # c[k + 1], c[k + 2], c[k + 3] (0 past the last)
        for k in range(m - 1, -1, -1):
            ck = back[k, 0] - back[k, 1] * c1 - back[k, 2] * c2 - back[k, 3] * c3
            if k <= n - 2:                     # point k's coefficients are k .. k + 3; the last point's, n - 2 ..
                out[s, k] = basis[0, r, k] * ck + basis[1, r, k] * c1 + basis[2, r, k] * c2 + basis[3, r, k] * c3
                if k == n - 2:
                    p = n - 1
                    out[s, p] = (basis[0, r, p] * ck + basis[1, r, p] * c1 + basis[2, r, p] * c2
                                 + basis[3, r, p] * c3)
            c3, c2, c1 = c2, c1, ck
    return -1


#: The compiled :func:`_fit_rows_py` (numba, on first use), or the numpy + LAPACK path.
KERNEL = Kernel(_fit_rows_py, "smoothing splines", "solving with numpy and LAPACK")


def _knots(x: np.ndarray) -> np.ndarray:
    """(N, n + 6) the knots of cubic splines with knots at x (N, n): fourfold end knots."""
    return np.concatenate([np.repeat(x[:, :1], 3, 1), x, np.repeat(x[:, -1:], 3, 1)], axis=1)


def _knot_values(x: np.ndarray, t: np.ndarray) -> np.ndarray:
    """(4, N, n) the cubic B-splines first_i .. first_i + 3 at each point x_i (N, n) of knots t at
    the points: at an inner knot t_m (= x_i, m = i + 3) B-splines m-3, m-2, m-1 are
    ``(t_m+1 - t_m)^2 / ((t_m+1 - t_m-2)(t_m+1 - t_m-1))``, the rest to 1, and
    ``(t_m - t_m-1)^2 / ((t_m+2 - t_m-1)(t_m+1 - t_m-1))``; B-spline m is 0 there. At the last
    point only the last B-spline (first + 3) is non-zero, 1."""
    N, n = x.shape

    def knot(k: int) -> np.ndarray:           # t_(m + k) for the points 0 .. n - 2
        return t[:, 3 + k:3 + k + n - 1]
    t0, tp1 = knot(0), knot(1)
    b0 = (tp1 - t0) ** 2 / ((tp1 - knot(-2)) * (tp1 - knot(-1)))
    b2 = (t0 - knot(-1)) ** 2 / ((knot(2) - knot(-1)) * (tp1 - knot(-1)))
    out = np.zeros((4, N, n))
    out[0, :, :-1], out[1, :, :-1], out[2, :, :-1] = b0, 1.0 - b0 - b2, b2
    out[3, :, -1] = 1.0
    return out


def _inverse(span: np.ndarray) -> np.ndarray:
    """1 / span, 0 where the span is empty (a B-spline of no support)."""
    return np.where(span > 0, 1.0 / np.where(span > 0, span, 1.0), 0.0)


def _second_derivatives(t: np.ndarray, n: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The second derivatives of the cubic B-splines i .. i + 3 at the left and the right end of
    each interval [x_i, x_i+1] (knot interval m = i + 3): two lists of 4 arrays (N, n - 1), from
    the derivative recurrence ``B'_(j,k) = k (B_(j,k-1) / (t_j+k - t_j) - B_(j+1,k-1) / (t_j+k+1 -
    t_j+1))`` applied twice to the linear B-splines, which are 1 and 0 (left end) or 0 and 1
    (right end)."""
    def knot(k: int) -> np.ndarray:           # t_(m + k) for the intervals 0 .. n - 2
        return t[:, 3 + k:3 + k + n - 1]
    a1 = _inverse(knot(1) - knot(-1))
    a2 = _inverse(knot(2) - knot(0))
    c = [(_inverse(knot(a) - knot(a - 3)), _inverse(knot(a + 1) - knot(a - 2))) for a in range(4)]
    # first derivatives of the quadratic B-splines m-3 .. m+1 (the outer two vanish on the interval)
    left = [0.0, -2 * a1, 2 * a1, 0.0, 0.0]
    right = [0.0, 0.0, -2 * a2, 2 * a2, 0.0]
    return ([3 * (left[a] * c[a][0] - left[a + 1] * c[a][1]) for a in range(4)],
            [3 * (right[a] * c[a][0] - right[a + 1] * c[a][1]) for a in range(4)])


class SmoothingSplines:
    """Cubic smoothing splines with knots at every point of each row of x (N, n), n >= 4,
    strictly increasing along each row: the basis and the penalty, built once for many fits."""

    def __init__(self, x: np.ndarray, compiled: bool = True) -> None:
        """``compiled``: solve with the numba kernel when numba is installed and works (the same
        systems, one star at a time in compiled loops: see the module's docstring); False, or
        without numba: numpy and LAPACK."""
        self.compiled = compiled
        x = np.asarray(x, float)
        N, n = x.shape
        if n < 4:
            raise ValueError("SmoothingSplines: each row needs at least 4 points")
        if np.any(np.diff(x, axis=1) <= 0):
            raise ValueError("SmoothingSplines: x must be strictly increasing along each row")
        self.n = n
        self.first = np.minimum(np.arange(n), n - 2)                 # the first B-spline non-zero at each point
        t = _knots(x)
        self.basis = _knot_values(x, t)                              # (4, N, n)
        lo, hi = _second_derivatives(t, n)
        h6 = np.diff(x, axis=1) / 6.0                                # (N, n - 1)
        # int over an interval of two linear functions: h/6 (2 l l' + l r' + r l' + 2 r r')
        lo2 = [h6 * (2 * lo[b] + hi[b]) for b in range(4)]
        hi2 = [h6 * (lo[b] + 2 * hi[b]) for b in range(4)]
        # the penalty's upper bands: omega[d, :, j] = int B_j'' B_j+d''
        self.omega = np.zeros((4, N, n + 2))
        for d in range(4):
            for a in range(4 - d):
                self.omega[d, :, a:a + n - 1] += lo[a] * lo2[a + d] + hi[a] * hi2[a + d]

    def values(self, y: np.ndarray, w: np.ndarray, lam: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """(M, n) the fitted splines at the points, for data y and weights w >= 0 (M, n) (at least
        2 positive weights per row; NaN y where w is 0 is fine) and penalties lam (M,) > 0, on the
        rows ``rows`` (M,) of x (default all)."""
        y = np.asarray(y, float)
        w = np.asarray(w, float)
        lam = np.asarray(lam, float)
        N = self.basis.shape[1]
        index = np.arange(N) if rows is None else np.asarray(rows)
        M = index.size
        if index.ndim != 1 or index.dtype.kind not in "iu" or (M and (index.min() < 0 or index.max() >= N)):
            raise ValueError(f"SmoothingSplines.values: rows must be integer row numbers in [0, {N})")
        if y.shape != (M, self.n) or w.shape != (M, self.n) or lam.shape != (M,):
            raise ValueError(f"SmoothingSplines.values: y {y.shape} and w {w.shape} must be ({M}, {self.n}) and "
                             f"lam {lam.shape} ({M},): one row per fitted row of x")
        kernel = KERNEL.get() if self.compiled else None
        if kernel is not None:
            out = np.empty(w.shape)
            try:
                bad = kernel(self.basis, self.omega, y, w, lam, index.astype(np.int64), out)
            except Exception as exc:   # numba that imports but cannot compile here
                KERNEL.failed(exc)
            else:
                if bad >= 0:
                    self._too_stiff(bad, lam[bad])
                return out
        from scipy.linalg import cho_solve_banded, cholesky_banded   # here: numba's kernel needs no scipy
        rows = slice(None) if rows is None else index
        v = self.basis[:, rows]                       # (4, M, n)
        wy = np.where(w > 0, w * np.where(w > 0, y, 0.0), 0.0)
        M, n = w.shape
        # LAPACK's upper band storage (cholesky_banded): ab[:, 3 - d, k] = a[k - d, k]; point i adds to
        # the rows and columns first_i .. first_i + 3 (first_i = i, except the last point's n - 2)
        ab = np.zeros((M, 4, n + 2))
        rhs = np.zeros((M, n + 2))
        for d in range(4):
            ab[:, 3 - d, d:] = lam[:, None] * self.omega[d, rows, :n + 2 - d]
        for a in range(4):
            q = wy * v[a]
            rhs[:, a:a + n - 1] += q[:, :n - 1]
            rhs[:, n - 2 + a] += q[:, n - 1]
            wv = w * v[a]
            for d in range(4 - a):
                q = wv * v[a + d]
                ab[:, 3 - d, a + d:a + d + n - 1] += q[:, :n - 1]
                ab[:, 3 - d, n - 2 + a + d] += q[:, n - 1]
        coef = np.empty((M, n + 2))
        for s in range(M):
            diag = ab[s, 3].copy()
            try:
                u = cholesky_banded(ab[s], overwrite_ab=True, lower=False, check_finite=False)
            except np.linalg.LinAlgError:
                break
            if np.any(u[3] ** 2 <= PIVOT_FLOOR * diag):
                break
            coef[s] = cho_solve_banded((u, False), rhs[s], overwrite_b=False, check_finite=False)
        else:
            s = -1
        if s >= 0:
            self._too_stiff(s, lam[s])
        out = v[0] * coef[:, self.first]
        for a in range(1, 4):
            out += v[a] * coef[:, self.first + a]
        return out

    def _too_stiff(self, row: int, lam: float) -> NoReturn:
        raise ConfigError(f"smoothing spline: the system of row {row} is not positive definite in double "
                          f"precision (a Cholesky pivot below {PIVOT_FLOOR:g} of its diagonal): the penalty "
                          f"{lam:.3g} is too stiff for its {self.n} points (use a shorter smoothing_length)")


def smoothing_spline_values(x: np.ndarray, y: np.ndarray, keep: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """(N, n) the smoothing splines of the kept points (N, n) of each row, at all points x (N, n):
    ``make_smoothing_spline(x[keep], y[keep], lam)`` between the first and last kept points,
    straight lines beyond them. At least 2 kept points per row, lam (N,) > 0."""
    keep = np.asarray(keep, bool)
    if np.any(keep.sum(axis=1) < 2):
        raise ValueError("smoothing_spline_values: each row needs at least 2 kept points")
    return SmoothingSplines(x).values(y, keep.astype(float), lam)
