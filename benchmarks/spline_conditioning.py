"""How accurate the spline normaliser's smoothing splines are as the penalty stiffens, and where
they are refused: the numbers behind ``normalizers/_smoothing.py``'s docstring.

    python benchmarks/spline_conditioning.py

For grids of 700 and 1900 pixels on 1 A steps and APOGEE's 7214, and penalties from the usual
(``density * smoothing_length^4`` at 100-300 A) to absurd, it prints the smallest Cholesky pivot
over its diagonal entry (the ratio ``PIVOT_FLOOR`` refuses below), and the error of both solvers
(compiled and LAPACK) against the exact spline, where that is known: data that are exactly a
straight line, which every smoothing spline of them is. For data with structure (a sine plus
noise, 30 % of the pixels rejected) it prints the error against the same system solved in long
double (which measures the factorisation's rounding only, not the assembly's). About a minute.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
from scipy.linalg import cholesky_banded

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "plugins"), str(ROOT / "benchmarks")]

from slamfw_plugins.normalizers._smoothing import PIVOT_FLOOR, SmoothingSplines  # noqa: E402


def banded_system(sp: SmoothingSplines, y: np.ndarray, w: np.ndarray, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """The upper band storage (4, n + 2) and right-hand side (n + 2,) of one row's system."""
    n = sp.n
    v = sp.basis[:, 0]
    ab = np.zeros((4, n + 2))
    rhs = np.zeros(n + 2)
    for d in range(4):
        ab[3 - d, d:] = lam * sp.omega[d, 0, :n + 2 - d]
    wy = w * y
    for a in range(4):
        q = wy * v[a]
        rhs[a:a + n - 1] += q[:n - 1]
        rhs[n - 2 + a] += q[n - 1]
        wv = w * v[a]
        for d in range(4 - a):
            q = wv * v[a + d]
            ab[3 - d, a + d:a + d + n - 1] += q[:n - 1]
            ab[3 - d, n - 2 + a + d] += q[n - 1]
    return ab, rhs


def long_double_solve(ab: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """The banded system solved by Cholesky in long double (80-bit on x86)."""
    m = ab.shape[1]
    A = ab.astype(np.longdouble)
    b = rhs.astype(np.longdouble)
    L = np.zeros((m, 4), dtype=np.longdouble)        # L[k, d] = l[k, k - d]
    for k in range(m):
        for d in range(3, 0, -1):
            j = k - d
            if j < 0:
                continue
            s = A[3 - d, k]
            for e in range(1, 4 - d):
                if j - e >= 0:
                    s -= L[k, d + e] * L[j, e]
            L[k, d] = s / L[j, 0]
        s = A[3, k] - sum(L[k, d] ** 2 for d in range(1, 4))
        L[k, 0] = np.sqrt(s) if s > 0 else np.nan
    z = np.zeros(m, dtype=np.longdouble)
    for k in range(m):
        z[k] = (b[k] - sum(L[k, d] * z[k - d] for d in range(1, 4) if k - d >= 0)) / L[k, 0]
    c = np.zeros(m, dtype=np.longdouble)
    for k in range(m - 1, -1, -1):
        c[k] = (z[k] - sum(L[k + d, d] * c[k + d] for d in range(1, 4) if k + d < m)) / L[k, 0]
    return c


def pivot_ratio(ab: np.ndarray) -> float:
    """The smallest Cholesky pivot over its diagonal entry (nan where the factorisation fails)."""
    try:
        u = cholesky_banded(ab, lower=False)
    except np.linalg.LinAlgError:
        return np.nan
    return float((u[3] ** 2 / ab[3]).min())


def errors(x: np.ndarray, y: np.ndarray, w: np.ndarray, lam: float, exact: np.ndarray | None) -> str:
    """Both solvers' largest error against ``exact`` (or the long-double solve), or 'refused'."""
    fast, plain = SmoothingSplines(x[None]), SmoothingSplines(x[None], compiled=False)
    if exact is None:
        ab, rhs = banded_system(fast, y, w, lam)
        c = long_double_solve(ab, rhs)
        exact = np.asarray(sum(fast.basis[a, 0] * c[fast.first + a] for a in range(4)), float)
    out = []
    for name, sp in (("compiled", fast), ("LAPACK", plain)):
        try:
            got = sp.values(y[None], w[None], np.array([lam]))[0]
            out.append(f"{name} {np.abs(got - exact).max():.1e}")
        except ValueError:
            out.append(f"{name} refused")
    return ", ".join(out)


def main() -> None:
    print(f"PIVOT_FLOOR = {PIVOT_FLOOR:g}: a system with a smaller pivot / diagonal is refused\n")
    rng = np.random.default_rng(0)
    print("Straight-line data (the exact spline is the line): error of the continuum")
    for n in (700, 1900):
        x = 3900.0 + np.arange(float(n))
        y = 1 + 1e-3 * (x - 4200.0)
        w = np.ones(n)
        for lam in (1e8, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e30):
            ab, _ = banded_system(SmoothingSplines(x[None]), y, w, lam)
            print(f"  {n} px, lam {lam:.0e}: pivot / diagonal {pivot_ratio(ab):.1e}; {errors(x, y, w, lam, y)}")
    print("\nA sine plus noise, 30 % rejected: error against the same system in long double")
    grids = {"1900 px, 1 A": 3900.0 + np.arange(1900.0)}
    if os.environ.get("SLAMFW_SHARED_DATA") or (ROOT.parent / "shared" / "data").is_dir():
        from harness_cases import apogee_wavelength
        grids["APOGEE 7214 px"] = apogee_wavelength(np.arange(7214))
    for name, x in grids.items():
        n = x.size
        density = n / (x[-1] - x[0])
        y = 1 + 0.3 * np.sin(x / 150.0) + rng.normal(0, 0.02, n)
        w = (rng.uniform(size=n) > 0.3).astype(float)
        for length in (100.0, 300.0, 1000.0):
            lam = density * length ** 4
            ab, _ = banded_system(SmoothingSplines(x[None]), y, w, lam)
            print(f"  {name}, smoothing length {length:g} A (lam {lam:.1e}): pivot / diagonal "
                  f"{pivot_ratio(ab):.1e}; {errors(x, y, w, lam, None)}")


if __name__ == "__main__":
    main()
