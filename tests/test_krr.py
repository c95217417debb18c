"""Kernel ridge regression: exact leave-one-out against refitting, and against scikit-learn."""
import numpy as np
import pytest
from sklearn.kernel_ridge import KernelRidge

from slamfw import DataError
from slamfw.testing import make_check_data
from slamfw_plugins.emulators.krr import KRREmulator


@pytest.fixture(scope="module")
def fitted():
    labels, flux, ivar = make_check_data(n_stars=40, n_pixels=6, seed=2)
    ivar[[3, 17], 2] = 0.0           # pixel 2 has a different mask: solved on its own good stars
    flux[3, 2] = np.nan
    emu = KRREmulator(gamma=[0.05, 0.5], alpha=[1e-3, 1e-1]).fit(labels, flux, ivar)
    return emu, labels, flux, ivar


def brute_loo(X, y, gamma, alpha):
    pred = np.empty_like(y)
    for i in range(y.size):
        keep = np.arange(y.size) != i
        pred[i] = KernelRidge(alpha=alpha, kernel="rbf", gamma=gamma).fit(X[keep], y[keep]).predict(X[i:i + 1])[0]
    return pred - y


@pytest.mark.parametrize("j", [0, 2, 5])
def test_loo_equals_refitting_and_picks_the_best_grid_point(fitted, j):
    emu, labels, flux, ivar = fitted
    good = ivar[:, j] > 0
    X = emu.label_scaler_.transform(labels[good])
    y = emu.flux_scaler_.transform(flux)[good, j]
    grid = {(g, a): brute_loo(X, y, g, a) for g in (0.05, 0.5) for a in (1e-3, 1e-1)}
    mse = {k: np.mean(r ** 2) for k, r in grid.items()}
    best = min(mse, key=mse.get)
    assert (emu.gamma_[j], emu.alpha_[j]) == best
    np.testing.assert_allclose(emu.cv_mse_[j], mse[best], rtol=1e-7)
    np.testing.assert_allclose(emu.cv_md_[j], np.mean(grid[best]), rtol=1e-6, atol=1e-12)


def test_prediction_equals_sklearn_kernel_ridge(fitted):
    emu, labels, flux, ivar = fitted
    theta = labels[:5] * 1.01
    ours = emu.predict(theta)
    for j in (0, 2):
        good = ivar[:, j] > 0
        ref = KernelRidge(alpha=emu.alpha_[j], kernel="rbf", gamma=emu.gamma_[j]).fit(
            emu.label_scaler_.transform(labels[good]), emu.flux_scaler_.transform(flux)[good, j])
        expect = ref.predict(emu.label_scaler_.transform(theta)) * emu.flux_scaler_.scale_[j] + emu.flux_scaler_.mean_[j]
        np.testing.assert_allclose(ours[:, j], expect, rtol=1e-8)
    assert np.all(emu.dual_coef_[2, [3, 17]] == 0)


def test_model_error_is_loo_mse_less_training_noise(fitted):
    emu = fitted[0]
    cv_var = emu.cv_mse_ * emu.flux_scaler_.scale_ ** 2
    np.testing.assert_allclose(emu.model_error_, np.sqrt(np.maximum(cv_var - emu.noise_var_, 0.01 * cv_var)))
    assert emu.cv_scheme_ == "leave-one-out"


def test_refuses_training_sets_beyond_max_stars():
    labels, flux, ivar = make_check_data(n_stars=30, n_pixels=3)
    with pytest.raises(DataError, match="exceed max_stars=20"):
        KRREmulator(max_stars=20).fit(labels, flux, ivar)


@pytest.mark.parametrize("name,key", [("krr", "alpha"), ("slam", "C")])
def test_grids_must_be_positive(name, key):
    from slamfw import ConfigError, registry
    with pytest.raises(ConfigError, match=rf"emulator\.{key}\.1: Input should be greater than 0"):
        registry.create("emulator", name, {key: [1.0, -1.0]}, where="emulator.name")
