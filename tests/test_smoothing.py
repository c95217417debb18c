"""The spline normaliser's smoothing splines: scipy's make_smoothing_spline, batched over stars.

The batched splines are checked against scipy on the kept points alone, and the whole normaliser
against a star-by-star reference written here with scipy (the pre-batching implementation)."""
import numpy as np
import pytest
from scipy.interpolate import make_smoothing_spline

from slamfw_plugins.normalizers._smoothing import natural_spline_system, smoothing_spline_values
from slamfw_plugins.normalizers.spline import SplineNormalizer


def _uneven(rng, rows, n):
    return np.cumsum(rng.uniform(0.2, 3.0, (rows, n)), axis=1) + 3900.0


@pytest.mark.parametrize("n", [5, 6, 50, 601, 1900])
@pytest.mark.parametrize("lam", [0.0, 1e2, 5e8, 1e13])
def test_all_points_kept_is_scipy_to_rounding(n, lam):
    rng = np.random.default_rng(n)
    x = _uneven(rng, 3, n)
    y = 1 + 0.3 * np.sin(x / 150.0) + rng.normal(0, 0.05, x.shape)
    mine = smoothing_spline_values(x, y, np.ones_like(x, bool), np.full(3, lam))
    for s in range(3):
        np.testing.assert_allclose(mine[s], make_smoothing_spline(x[s], y[s], lam=lam)(x[s]), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n", [12, 601, 1900])
@pytest.mark.parametrize("lam", [0.0, 1e2, 1e6, 1e8])
def test_rejected_points_are_left_out(n, lam):
    """Fitted to the kept points only, valued everywhere as scipy's BSpline values it (its end
    cubic beyond the first and last kept points); differences are the system's conditioning."""
    rng = np.random.default_rng(n + 1)
    x = _uneven(rng, 4, n)
    y = 1 + 0.3 * np.sin(x / 150.0) + rng.normal(0, 0.05, x.shape)
    keep = rng.uniform(size=x.shape) > 0.3
    keep[0, :3] = False                                # the first and last points rejected too
    keep[1, -4:] = False
    keep[:, n // 2:n // 2 + 5] = True                  # at least 5 kept points per row
    mine = smoothing_spline_values(x, y, keep, np.full(4, lam))
    tol = 1e-9
    for s in range(4):
        ref = make_smoothing_spline(x[s, keep[s]], y[s, keep[s]], lam=lam)(x[s])
        np.testing.assert_allclose(mine[s], ref, rtol=0, atol=tol * max(1.0, np.abs(ref).max()))
    # rows do not depend on each other: row 2 alone gives the same values, bit for bit
    np.testing.assert_array_equal(smoothing_spline_values(x[2:3], y[2:3], keep[2:3], np.full(1, lam))[0], mine[2])


def test_system_is_scipys_design_matrix():
    from scipy.interpolate import BSpline
    rng = np.random.default_rng(0)
    x = _uneven(rng, 2, 40)
    X, E = natural_spline_system(x)
    assert X.shape == E.shape == (2, 5, 40)
    t = np.r_[[x[1, 0]] * 3, x[1], [x[1, -1]] * 3]
    design = BSpline.design_matrix(x[1], t, 3).toarray()
    # the natural basis's interior columns are B-splines 1 .. n-2 of the B-spline basis
    for j in range(2, 38):
        for r in range(5):
            i = j + r - 2
            np.testing.assert_allclose(X[1, r, j], design[i, j + 1], rtol=1e-13, atol=1e-15)


def test_bad_grids_are_refused():
    with pytest.raises(ValueError, match="strictly increasing"):
        smoothing_spline_values(np.array([[1.0, 2, 2, 3, 4, 5]]), np.ones((1, 6)), np.ones((1, 6), bool), [1.0])
    with pytest.raises(ValueError, match="at least 5"):
        smoothing_spline_values(np.arange(6.0)[None], np.ones((1, 6)), np.arange(6)[None] < 4, [1.0])


def _reference_continuum(norm: SplineNormalizer, wave, flux, ivar):
    """The normaliser star by star with scipy's spline on the kept pixels (as before batching)."""
    good = (ivar > 0) & np.isfinite(flux)
    if good.sum() < norm.min_pixels:
        return np.full_like(flux, np.nan)

    def spline(keep):
        x = wave[keep]
        return make_smoothing_spline(x, flux[keep], lam=x.size / (x[-1] - x[0]) * norm.smoothing_length ** 4)

    keep = good.copy()
    spl = spline(keep)
    edges = np.arange(wave[0], wave[-1] + norm.bin_width, norm.bin_width)
    bins = np.clip(np.searchsorted(edges, wave, side="right") - 1, 0, max(edges.size - 2, 0))
    for _ in range(norm.n_iter):
        resid = flux - spl(wave)
        sigma = np.zeros_like(flux)
        for b in np.unique(bins[keep]):
            in_bin = keep & (bins == b)
            sigma[bins == b] = np.std(resid[in_bin]) if in_bin.sum() > 2 else np.inf
        with np.errstate(invalid="ignore"):
            new_keep = good & (resid < norm.k * sigma) & (resid > -norm.k * sigma)
        if new_keep.sum() < norm.min_pixels or np.array_equal(new_keep, keep):
            break
        keep = new_keep
        spl = spline(keep)
    return spl(wave)


def test_normaliser_equals_star_by_star_reference():
    from slamfw import registry
    ss = registry.create("reader", "mock", {"n_stars": 24, "seed": 3, "snr": [20, 50, 100], "rv_sigma": 30}).read()
    wave = np.broadcast_to(ss.wave, ss.flux.shape) / (1 + ss.meta_column("rv", 0.0)[:, None] / 299792.458)
    ivar = ss.weight_ivar.copy()
    flux = ss.flux.copy()
    ivar[1, 200:260] = 0                     # a gap
    ivar[2, :] = 0                           # nothing to fit
    ivar[3, 15:] = 0                         # too few pixels
    flux[4, 500] = np.nan                    # a NaN pixel
    norm = SplineNormalizer()
    nf, ni, cont = norm.normalize(wave, flux, ivar)
    for s in range(len(flux)):
        ref = _reference_continuum(norm, wave[s], flux[s], ivar[s])
        if s in (2, 3):
            assert np.all(np.isnan(cont[s])) and np.all(ni[s] == 0) and np.all(nf[s] == 1)
            continue
        np.testing.assert_allclose(cont[s], ref, rtol=1e-6)
        ok = cont[s] > 0
        np.testing.assert_allclose(ni[s][ok], (ivar[s] * cont[s] ** 2)[ok], rtol=1e-12)
    # one star alone gives the same as in the block, bit for bit
    one = norm.normalize(wave[5], flux[5:6], ivar[5:6])
    np.testing.assert_array_equal(one[2][0], cont[5])


def test_normaliser_names_a_spectrum_whose_wavelengths_do_not_increase():
    wave = np.tile(np.linspace(4000.0, 5000.0, 200), (3, 1))
    wave[2, 50] = wave[2, 49]
    with pytest.raises(ValueError, match="spectrum 2 of this block"):
        SplineNormalizer().normalize(wave, np.ones((3, 200)), np.ones((3, 200)))
