"""The Cannon emulator: terms, maximum-likelihood scatter, L1, CV, model error, and against SLAM."""
import numpy as np
import pytest
from scipy.optimize import minimize_scalar

from slamfw import DataError, registry
from slamfw_plugins.emulators.cannon import (
    CannonEmulator,
    _normal_equations,
    _solve,
    design_matrix,
    fit_pixels,
    label_terms,
)


def quadratic_data(m=400, p=6, s_true=0.01, noise=0.005, seed=3):
    rng = np.random.default_rng(seed)
    labels = np.column_stack([rng.uniform(4000, 6000, m), rng.uniform(1, 5, m), rng.uniform(-1.5, 0.3, m)])
    z = (labels - labels.mean(0)) / labels.std(0, ddof=1)
    terms = label_terms(3, 2)
    coef = rng.normal(0, 0.05, (p, len(terms)))
    coef[:, 0] = 0.8
    truth = design_matrix(z, terms) @ coef.T
    flux = truth + rng.normal(0, s_true, truth.shape) + rng.normal(0, noise, truth.shape)
    return labels, flux, np.full_like(flux, noise ** -2), coef


def test_terms_of_each_order():
    assert label_terms(3, 1) == [(), (0,), (1,), (2,)]
    assert len(label_terms(3, 2)) == 10 and len(label_terms(3, 3)) == 20
    assert (0, 1) in label_terms(2, 2) and (1, 1, 1) in label_terms(2, 3)


def test_normal_equations_are_the_per_pixel_weighted_sums():
    """A (P, D, D) from its upper triangle equals V^T diag(w_j) V pixel by pixel, plus the whisker of ridge."""
    rng = np.random.default_rng(8)
    V = design_matrix(rng.normal(size=(50, 3)), label_terms(3, 2))
    f, w = rng.normal(size=(50, 4)), rng.uniform(0, 2, (50, 4))
    w[rng.random(w.shape) < 0.2] = 0.0
    A, b = _normal_equations(V, f, w)
    d = V.shape[1]
    for j in range(4):
        direct = V.T @ (w[:, j, None] * V)
        ridge = 1e-10 * np.trace(direct) / d              # the whisker of ridge on the diagonal
        np.testing.assert_allclose(A[j], direct + ridge * np.eye(d), rtol=1e-12, atol=1e-12 * np.abs(direct).max())
        np.testing.assert_allclose(np.diag(A[j] - direct), ridge, rtol=1e-2)
        np.testing.assert_allclose(b[j], V.T @ (w[:, j] * f[:, j]), rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(A[j], A[j].T)
    # a pixel with fewer good stars than coefficients is still solvable
    w[:, 0] = 0.0
    w[:3, 0] = 1.0
    assert np.all(np.isfinite(_solve(*_normal_equations(V, f, w))[0]))


def test_recovers_coefficients_and_intrinsic_scatter():
    labels, flux, ivar, coef = quadratic_data()
    emu = CannonEmulator().fit(labels, flux, ivar)
    np.testing.assert_allclose(emu.coef_, coef, atol=3e-3)
    np.testing.assert_allclose(emu.scatter_, 0.01, rtol=0.15)
    # the CV MSE of a correct model is its noise + scatter over the pixel's variance
    expect = (0.01 ** 2 + 0.005 ** 2) / emu.flux_scaler_.scale_ ** 2
    np.testing.assert_allclose(emu.cv_mse_, expect, rtol=0.25)
    assert np.all(emu.mse_ <= emu.cv_mse_)


def test_scatter_maximises_the_profile_likelihood():
    labels, flux, ivar, _ = quadratic_data(m=120, p=3, seed=5)
    ivar[::3] *= 4.0                                # heteroscedastic noise
    emu = CannonEmulator().fit(labels, flux, ivar)
    V = design_matrix(emu.label_scaler_.transform(labels), emu.terms_)
    for j in range(3):
        var0 = 1.0 / ivar[:, j]

        def nll(s):
            w = 1.0 / (var0 + s ** 2)
            c = np.linalg.solve(V.T @ (w[:, None] * V), V.T @ (w * flux[:, j]))
            return 0.5 * np.sum(w * (flux[:, j] - V @ c) ** 2 - np.log(w))
        best = minimize_scalar(nll, bounds=(0, 0.1), method="bounded", options={"xatol": 1e-9})
        assert nll(emu.scatter_[j]) <= best.fun + 1e-6
        np.testing.assert_allclose(emu.scatter_[j], best.x, rtol=1e-3)


def test_l1_shrinks_only_the_nonlinear_terms():
    labels, flux, ivar, _ = quadratic_data(m=200, p=4)
    plain = CannonEmulator().fit(labels, flux, ivar)
    nonlinear = np.array([len(t) >= 2 for t in plain.terms_])
    strong = CannonEmulator(regularization=1e9).fit(labels, flux, ivar)
    assert np.all(strong.coef_[:, nonlinear] == 0)
    assert np.all(np.abs(strong.coef_[:, 1:4]) > 1e-3)
    mild = CannonEmulator(regularization=3e4).fit(labels, flux, ivar)
    assert np.abs(mild.coef_[:, nonlinear]).sum() < np.abs(plain.coef_[:, nonlinear]).sum()
    # the L1 path without penalty reproduces weighted least squares
    V = design_matrix(plain.label_scaler_.transform(labels), plain.terms_)
    good = ivar > 0
    coef0, s0 = fit_pixels(V, flux, 1 / ivar, good, plain.flux_scaler_.scale_, 0.0, nonlinear)
    np.testing.assert_allclose(coef0, plain.coef_)


def test_model_error_modes():
    labels, flux, ivar, _ = quadratic_data(m=150, p=5)
    cv = CannonEmulator(model_error="cv").fit(labels, flux, ivar)
    cv_var = cv.cv_mse_ * cv.flux_scaler_.scale_ ** 2   # the training noise is removed from the CV MSE
    noise = np.mean(1 / ivar, axis=0)
    np.testing.assert_allclose(cv.noise_var_, noise)
    np.testing.assert_allclose(cv.model_error_, np.sqrt(np.maximum(cv_var - noise, 0.01 * cv_var)))
    assert np.all(cv.model_error_ < np.sqrt(cv_var))
    sc = CannonEmulator(model_error="scatter").fit(labels, flux, ivar)
    np.testing.assert_allclose(sc.model_error_, sc.scatter_)
    comb = CannonEmulator().fit(labels, flux, ivar)
    assert np.all(comb.model_error_ >= comb.scatter_ - 1e-15)
    assert np.all(comb.model_error_ <= cv.model_error_)


def test_too_few_stars_for_the_order():
    labels, flux, ivar, _ = quadratic_data(m=20, p=2)
    with pytest.raises(DataError, match="order 3 with 3 labels has 20 coefficients"):
        CannonEmulator(order=3).fit(labels, flux, ivar)


def test_slam_beats_the_quadratic_cannon_across_a_wide_teff_range(small_slam, small_train):
    """Paper Fig. 2: over 4500-9000 K around H-beta, SVR's CV MSE is lower than the quadratic's."""
    cannon = registry.create("emulator", "cannon", {"n_folds": 3}).fit(
        small_train.labels, small_train.flux, small_train.ivar)
    assert np.median(small_slam.cv_mse_) < np.median(cannon.cv_mse_)
    core = np.abs(small_train.wave - 4861.3) < 3
    assert np.median(small_slam.cv_mse_[core]) < 0.5 * np.median(cannon.cv_mse_[core])
