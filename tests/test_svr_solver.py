"""The numba SMO epsilon-SVR solver (slam's solver = "smo") against LIBSVM (scikit-learn's SVR)."""
import numpy as np
import pytest
from sklearn.svm import SVR

from slamfw import registry
from slamfw_plugins.emulators import _svr_solver
from slamfw_plugins.emulators._svr_solver import dual_objective, solve_svr

needs_numba = pytest.mark.skipif(not _svr_solver.HAVE_NUMBA, reason="numba is not installed")


def _problem(seed: int, n: int, gamma: float, n_test: int = 20):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n + n_test, 3))
    y = np.sin(X[:, 0]) + 0.5 * X[:, 1] * X[:, 2] + rng.normal(scale=0.3, size=n + n_test)
    d2 = ((X[:, None, :] - X[None, :, :]) ** 2).sum(-1)
    K = np.exp(-gamma * d2)
    return K[:n, :n].copy(), y[:n].copy(), K[n:, :n].copy()


def _libsvm(K, y, C, eps, tol):
    svr = SVR(kernel="precomputed", C=C, epsilon=eps, tol=tol, shrinking=True).fit(K, y)
    beta = np.zeros(y.size)
    beta[svr.support_] = svr.dual_coef_[0]
    return beta, svr.intercept_[0], svr


@needs_numba
@pytest.mark.parametrize("packed", [True, False])
@pytest.mark.parametrize("seed,n,gamma,C,eps", [
    (0, 40, 0.1, 1.0, 0.05), (1, 60, 1.0, 10.0, 0.05), (2, 80, 0.5, 100.0, 0.1), (3, 50, 2.0, 3.0, 0.01),
    (4, 70, 0.01, 10.0, 0.05), (5, 30, 1.0, 0.1, 0.2),
])
def test_tight_tolerance_equals_libsvm(seed, n, gamma, C, eps, packed):
    """Both solvers at a tight tolerance reach the same optimum: objective, coefficients' predictions,
    intercept."""
    K, y, K_te = _problem(seed, n, gamma)
    ref_beta, ref_b, ref = _libsvm(K, y, C, eps, 1e-9)
    beta, b, n_iter = solve_svr(K, y, C, eps, tol=1e-9, packed=packed)
    assert n_iter > 0
    assert abs(beta.sum()) < 1e-9 * max(C, 1) * n and np.all(np.abs(beta) <= C)
    f_ref, f = dual_objective(K, y, ref_beta, eps), dual_objective(K, y, beta, eps)
    # LIBSVM caches kernel rows in single precision, so it agrees to ~1e-7 relative only
    assert f == pytest.approx(f_ref, rel=1e-6, abs=1e-8)
    np.testing.assert_allclose(K_te @ beta + b, ref.predict(K_te), atol=1e-4 * max(1.0, np.abs(y).max()))
    assert b == pytest.approx(ref_b, abs=1e-4)


@needs_numba
@pytest.mark.parametrize("seed,gamma,C", [(10, 0.1, 1.0), (11, 1.0, 10.0), (12, 1.0, 100.0), (13, 0.01, 100.0)])
def test_default_tolerance_close_to_libsvm(seed, gamma, C):
    """At LIBSVM's default tolerance (1e-3) both stop near the optimum: ours no worse in objective,
    predictions and intercept within a few tolerances."""
    K, y, K_te = _problem(seed, 120, gamma, n_test=40)
    _, _, ref = _libsvm(K, y, C, 0.05, 1e-3)
    opt_beta, _, _ = _libsvm(K, y, C, 0.05, 1e-10)
    beta, b, _ = solve_svr(K, y, C, 0.05, tol=1e-3)
    f_opt = dual_objective(K, y, opt_beta, 0.05)
    f_ref = dual_objective(K, y, np.bincount(ref.support_, ref.dual_coef_[0], minlength=y.size), 0.05)
    f = dual_objective(K, y, beta, 0.05)
    assert f - f_opt <= max(2 * (f_ref - f_opt), 1e-3 * abs(f_opt)) + 1e-9
    np.testing.assert_allclose(K_te @ beta + b, ref.predict(K_te), atol=2e-2)


@needs_numba
def test_warm_start_and_shrinking_reach_the_same_optimum():
    K, y, K_te = _problem(20, 80, 1.0)
    cold, b_cold, _ = solve_svr(K, y, 10.0, 0.05, tol=1e-10)
    small, _, _ = solve_svr(K, y, 1.0, 0.05, tol=1e-3)          # feasible for C = 10
    warm, b_warm, _ = solve_svr(K, y, 10.0, 0.05, tol=1e-10, beta0=small)
    noshrink, b_ns, _ = solve_svr(K, y, 10.0, 0.05, tol=1e-10, shrinking=False)
    flat, b_flat, _ = solve_svr(K, y, 10.0, 0.05, tol=1e-10, packed=False)     # the unpacked SMO loop
    for other, b in ((warm, b_warm), (noshrink, b_ns), (flat, b_flat)):
        np.testing.assert_allclose(K_te @ other + b, K_te @ cold + b_cold, atol=1e-6)
    # an infeasible start is made feasible first
    wild, b_wild, _ = solve_svr(K, y, 10.0, 0.05, tol=1e-10, beta0=np.linspace(-50, 30, y.size))
    np.testing.assert_allclose(K_te @ wild + b_wild, K_te @ cold + b_cold, atol=1e-6)


@needs_numba
def test_iteration_cap_warns():
    K, y, _ = _problem(40, 60, 1.0)
    with pytest.warns(RuntimeWarning, match="max_iter"):
        _, _, n_iter = solve_svr(K, y, 100.0, 0.05, max_iter=5)
    assert n_iter == 5


@needs_numba
def test_all_inside_the_tube_gives_zero_coefficients_and_libsvm_intercept():
    K, _, _ = _problem(30, 25, 1.0)
    y = 0.3 + 0.01 * np.random.default_rng(0).normal(size=25)
    beta, b, _ = solve_svr(K, y, 1.0, 0.1)
    _, ref_b, ref = _libsvm(K, y, 1.0, 0.1, 1e-3)
    assert not beta.any() and ref.support_.size == 0
    assert b == pytest.approx(ref_b, abs=1e-12)


@needs_numba
def test_slam_smo_chooses_libsvm_grid_points(small_train):
    """slam with solver='smo' reproduces the LIBSVM path's CV grid and choices on the mock spectra."""
    params = dict(C=[1.0, 10.0, 100.0], gamma=[0.1, 1.0], n_folds=3, shuffle_folds=False, prune_grid=False)
    ref = registry.create("emulator", "slam", dict(params, solver="libsvm"))
    ref.fit(small_train.labels, small_train.flux, small_train.ivar)
    ours = registry.create("emulator", "slam", dict(params, solver="smo"))
    ours.fit(small_train.labels, small_train.flux, small_train.ivar)
    p = ref.n_pixels_
    np.testing.assert_allclose(ours.cv_mse_grid_, ref.cv_mse_grid_, rtol=2e-2, atol=1e-5)
    at_ref = ours.cv_mse_grid_.reshape(p, -1)[np.arange(p), [
        ref.gamma.index(g) * len(ref.C) + ref.C.index(c) for g, c in zip(ref.gamma_, ref.C_)]]
    same = (ours.C_ == ref.C_) & (ours.gamma_ == ref.gamma_)
    near = np.abs(ours.cv_mse_ - at_ref) <= 0.01 * at_ref
    assert np.mean(same | near) >= 0.95
    np.testing.assert_allclose(ours.predict(small_train.labels[:10])[:, same],
                               ref.predict(small_train.labels[:10])[:, same],
                               atol=2e-2 * np.max(ref.flux_scaler_.scale_))
    assert np.all(ours.n_support_ > 0)


def test_slam_smo_without_numba_falls_back_to_libsvm(small_train, monkeypatch, caplog):
    monkeypatch.setattr(_svr_solver, "HAVE_NUMBA", False)
    params = dict(C=[1.0, 10.0], gamma=[0.1], n_folds=3)
    ours = registry.create("emulator", "slam", dict(params, solver="smo")).fit(
        small_train.labels, small_train.flux[:, :10], small_train.ivar[:, :10])
    ref = registry.create("emulator", "slam", params).fit(
        small_train.labels, small_train.flux[:, :10], small_train.ivar[:, :10])
    np.testing.assert_array_equal(ours.cv_mse_grid_, ref.cv_mse_grid_)
    np.testing.assert_array_equal(ours.dual_coef_, ref.dual_coef_)
    assert "needs numba" in caplog.text
    with pytest.raises(ImportError, match="numba"):
        solve_svr(np.eye(3), np.zeros(3), 1.0, 0.1)


@needs_numba
@pytest.mark.parametrize("seed", range(6))
def test_selection_helpers_equal_plain_loops(seed):
    """The working-set selection's running max (four accumulators) and last-index scan (eight entries
    per branch) give the plain loops' answers, ties included, for every active length."""
    rng = np.random.default_rng(seed)
    for size in (1, 3, 4, 7, 8, 9, 16, 17, 40):
        s = rng.integers(-3, 4, size=size).astype(float)      # many ties
        s[rng.random(size) < 0.2] = _svr_solver.NEG
        for na in range(size + 1):
            expect = max([-1.0, *s[:na]])
            assert _svr_solver._running_max(s, na, -1.0) == expect
            assert _svr_solver._running_max(s, na, _svr_solver.NEG) == max([_svr_solver.NEG, *s[:na]])
            for value in (expect, 2.0, 10.0):
                hits = np.flatnonzero(s[:na] == value)
                assert _svr_solver._last_equal(s, na, value) == (hits[-1] if hits.size else -1)


@needs_numba
def test_submatrix_equals_fancy_indexing_and_checks_its_indices():
    rng = np.random.default_rng(1)
    K = rng.normal(size=(30, 30))
    rows, cols = np.sort(rng.choice(30, 17, replace=False)), rng.choice(30, 9, replace=False)
    for r, c in ((rows, cols), (rows, rows), (np.arange(30), np.arange(30)), (rows[:0], cols)):
        out = _svr_solver.submatrix(K, r, c)
        np.testing.assert_array_equal(out, K[np.ix_(r, c)])
        assert out.flags.c_contiguous and out.flags.writeable
    for r, c in ((rows.astype(float), cols), (rows, np.array([0, 30])), (np.array([-1]), cols), (rows[:, None], cols),
                 (np.ones(30, bool), cols)):
        with pytest.raises(ValueError, match="submatrix"):
            _svr_solver.submatrix(K, r, c)
    # into a buffer: written in place and returned; a buffer of another shape, dtype or order is refused
    buf = np.full((17, 9), np.nan)
    assert _svr_solver.submatrix(K, rows, cols, out=buf) is buf
    np.testing.assert_array_equal(buf, K[np.ix_(rows, cols)])
    for bad in (np.empty((9, 17)), np.empty((17, 9), np.float32), np.empty((9, 17)).T):
        with pytest.raises(ValueError, match="submatrix: out must be"):
            _svr_solver.submatrix(K, rows, cols, out=bad)
