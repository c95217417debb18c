"""The spline normaliser's smoothing splines: scipy's make_smoothing_spline, for blocks of stars.

The splines (knots at every pixel, weight 0 on rejected ones) are checked against scipy on the
kept points alone, and the whole normaliser against a star-by-star reference written here with
scipy (the implementation before batching)."""
import numpy as np
import pytest
from scipy.interpolate import make_smoothing_spline

from slamfw import ConfigError
from slamfw_plugins.normalizers._smoothing import SmoothingSplines, smoothing_spline_values
from slamfw_plugins.normalizers.spline import SplineNormalizer


def _uneven(rng, rows, n):
    return np.cumsum(rng.uniform(0.2, 3.0, (rows, n)), axis=1) + 3900.0


def _inside(x, keep):
    """Points from the first to the last kept one."""
    return (x >= x[keep][0]) & (x <= x[keep][-1])


#: (smoothing length in A, tolerance): the normaliser's penalty is density * smoothing_length^4.
#: Agreement with scipy is limited by the system's conditioning, which grows with the penalty.
LENGTHS = [(5.0, 1e-9), (50.0, 5e-8), (150.0, 2e-6), (400.0, 1e-4)]


@pytest.mark.parametrize("n,step", [(12, 2.0), (601, 3.0), (1900, 1.0)])
@pytest.mark.parametrize("length,tol", LENGTHS)
@pytest.mark.parametrize("frac", [0.0, 0.3])
def test_splines_are_scipys_on_the_kept_points(n, step, length, tol, frac):
    """Fitted to the kept points only: scipy's spline of those points between the first and the
    last of them, a straight line beyond them (a natural spline's). Spectra's grids: regular, each
    star's shifted by its own Doppler factor; rejection makes the kept points uneven."""
    rng = np.random.default_rng(n)
    x = (3900.0 + step * np.arange(n)) * (1 + rng.normal(0, 1e-4, (4, 1)))
    y = 1 + 0.3 * np.sin(x / 150.0) + rng.normal(0, 0.05, x.shape)
    keep = rng.uniform(size=x.shape) >= frac
    keep[0, :3] = False                               # the first and last points rejected too
    keep[1, -4:] = False
    keep[:, n // 2 - 3:n // 2 + 3] = True             # enough kept points per row
    lam = keep.sum(1) / (x[:, -1] - x[:, 0]) * length ** 4
    mine = smoothing_spline_values(x, y, keep, lam)
    for s in range(4):
        inside = _inside(x[s], keep[s])
        ref = make_smoothing_spline(x[s, keep[s]], y[s, keep[s]], lam=lam[s])(x[s])
        np.testing.assert_allclose(mine[s, inside], ref[inside], rtol=0, atol=tol)
        for part in (x[s] <= x[s, keep[s]][0], x[s] >= x[s, keep[s]][-1]):   # straight beyond the ends
            if part.sum() >= 3:
                slope = np.diff(mine[s, part]) / np.diff(x[s, part])
                np.testing.assert_allclose(slope, slope[0], rtol=0, atol=1e-6)
    # rows do not depend on each other: row 2 alone gives the same values, bit for bit
    np.testing.assert_array_equal(smoothing_spline_values(x[2:3], y[2:3], keep[2:3], lam[2:3])[0], mine[2])


def test_basis_and_penalty_are_exact():
    """The B-splines at the points are scipy's design matrix; the penalty is int B_j'' B_k'' (by
    two-point Gauss quadrature per interval, exact for B'' linear)."""
    from scipy.interpolate import BSpline
    rng = np.random.default_rng(0)
    x = _uneven(rng, 2, 15)
    sp = SmoothingSplines(x)
    for row in range(2):
        t = np.r_[[x[row, 0]] * 3, x[row], [x[row, -1]] * 3]
        design = BSpline.design_matrix(x[row], t, 3).toarray()
        for i in range(15):
            np.testing.assert_allclose(sp.basis[:, row, i], design[i, sp.first[i]:sp.first[i] + 4], atol=1e-14)
        g = np.array([-1.0, 1.0]) / np.sqrt(3.0)
        mid, half = (x[row, :-1] + x[row, 1:]) / 2, np.diff(x[row]) / 2
        pts = (mid[:, None] + half[:, None] * g).ravel()
        d2 = np.stack([BSpline(t, np.eye(17)[j], 3)(pts, nu=2) for j in range(17)], axis=1)
        omega = d2.T @ (np.repeat(half, 2)[:, None] * d2)
        for d in range(4):
            np.testing.assert_allclose(sp.omega[d, row, :17 - d], np.diagonal(omega, d), rtol=0,
                                       atol=1e-9 * np.abs(omega).max())


def test_bad_grids_are_refused():
    with pytest.raises(ValueError, match="strictly increasing"):
        smoothing_spline_values(np.array([[1.0, 2, 2, 3, 4, 5]]), np.ones((1, 6)), np.ones((1, 6), bool), [1.0])
    with pytest.raises(ValueError, match="at least 2 kept"):
        smoothing_spline_values(np.arange(6.0)[None], np.ones((1, 6)), np.arange(6)[None] < 1, [1.0])


@pytest.mark.parametrize("n,length", [(1900, 100.0), (1900, 150.0), (601, 5.0)])
def test_compiled_kernel_solves_the_same_systems(n, length):
    """numba's kernel (the default where numba is installed) and the numpy + LAPACK path solve the
    same banded systems: equal to rounding, amplified by the system's conditioning."""
    pytest.importorskip("numba")
    from slamfw_plugins.normalizers import _smoothing
    assert _smoothing.KERNEL.get() is not None            # else this would compare the numpy path with itself
    rng = np.random.default_rng(n)
    x = (3900.0 + np.arange(n)) * (1 + rng.normal(0, 1e-4, (6, 1)))
    y = 1 + 0.3 * np.sin(x / 150.0) + rng.normal(0, 0.05, x.shape)
    w = (rng.uniform(size=x.shape) > 0.2).astype(float)
    y[w == 0] = np.nan                                 # rejected pixels' values are never used
    lam = w.sum(1) / (x[:, -1] - x[:, 0]) * length ** 4
    fast, plain = SmoothingSplines(x), SmoothingSplines(x, compiled=False)
    got = fast.values(y, w, lam)
    np.testing.assert_allclose(got, plain.values(y, w, lam), rtol=0, atol=2e-7)
    rows = np.array([4, 1])
    np.testing.assert_array_equal(fast.values(y[rows], w[rows], lam[rows], rows), got[rows])


@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize("n,lam", [(1900, 1e24), (1900, 1e14), (700, 1e30)])
def test_too_stiff_a_penalty_is_refused_naming_smoothing_length(compiled, n, lam):
    """Refused whether the factorisation fails (1e24) or succeeds with pivots that are mostly
    rounding (1e14 on 1900 pixels: smallest pivot 4e-13 of its diagonal, where the continuum was
    off by 0.1); on 700 pixels at 1e30 the compiled kernel used to return a continuum near 1e-13.
    A ConfigError (a bad-input hunt found the ValueError reported as an internal error by the CLI)."""
    x = (3900.0 + np.arange(float(n)))[None]
    y = 1 + 0.1 * np.sin(x / 50.0)
    with pytest.raises(ConfigError, match="row 0 is not positive definite.*smoothing_length"):
        SmoothingSplines(x, compiled=compiled).values(y, np.ones((1, n)), np.array([lam]))


@pytest.mark.parametrize("compiled", [True, False])
def test_stiff_but_usable_penalties_are_solved(compiled):
    """Just above the pivot floor (1e13 on 700 pixels: smallest pivot 1.5e-12 of its diagonal) the
    system is solved. The data are a straight line, which is every smoothing spline of them, so what
    is left is rounding: 2.5e-3 (compiled) and 3.3e-3 (LAPACK) measured; 1e-2 allowed."""
    x = (3900.0 + np.arange(700.0))[None]
    y = 1 + 1e-3 * (x - 4200.0)
    out = SmoothingSplines(x, compiled=compiled).values(y, np.ones((1, 700)), np.array([1e13]))
    np.testing.assert_allclose(out, y, rtol=0, atol=1e-2)


@pytest.mark.parametrize("shared", [True, False])
def test_compiled_kernel_gives_each_star_its_own_result(shared):
    """A star's spline is the same, to the last bit, alone or in a block, on one basis or on a
    basis per star (the kernel's arrays, reused from star to star, carry nothing over); a star
    whose system is not positive definite, after others that are, is named by its own row."""
    pytest.importorskip("numba")
    from slamfw_plugins.normalizers import _smoothing
    assert _smoothing.KERNEL.get() is not None
    rng = np.random.default_rng(5)
    m = 11
    x = (3900.0 + np.arange(700.0)) * (1 + rng.normal(0, 1e-4, (1 if shared else m, 1)))
    y = 1 + 0.3 * np.sin(x[:1] / 90.0) + rng.normal(0, 0.05, (m, 700))
    w = (rng.uniform(size=y.shape) > 0.2).astype(float)
    lam = rng.uniform(1e4, 1e6, m)
    rows = np.zeros(m, np.int64) if shared else np.arange(m)
    splines = SmoothingSplines(x)
    block = splines.values(y, w, lam, rows)
    for i in range(m):
        np.testing.assert_array_equal(splines.values(y[i:i + 1], w[i:i + 1], lam[i:i + 1], rows[i:i + 1]), block[i:i + 1])
    lam[m - 2] = -1e30                                  # no longer positive definite, after 9 that are
    with pytest.raises(ConfigError, match=f"row {m - 2} is not positive definite"):
        splines.values(y, w, lam, rows)


def test_a_numba_that_fails_falls_back_to_numpy_with_a_warning(monkeypatch, caplog):
    from slamfw_plugins.normalizers import _smoothing

    def broken(*args):
        raise RuntimeError("cannot compile here")
    monkeypatch.setattr(_smoothing.KERNEL, "compiled", broken)
    x = (3900.0 + np.arange(50.0))[None]
    y = np.sin(x / 7.0)
    out = SmoothingSplines(x).values(y, np.ones_like(y), np.array([10.0]))
    assert "numba's kernel is not usable (RuntimeError: cannot compile here)" in caplog.text
    assert _smoothing.KERNEL.compiled is False
    np.testing.assert_array_equal(out, SmoothingSplines(x, compiled=False).values(y, np.ones_like(y), np.array([10.0])))


@pytest.mark.parametrize("compiled", [True, False])
def test_values_refuses_arrays_of_the_wrong_shape(compiled):
    x = 3900.0 + np.arange(40.0).reshape(2, 20)
    spl = SmoothingSplines(x, compiled=compiled)
    y, w, lam = np.ones((2, 20)), np.ones((2, 20)), np.ones(2)
    for args in [(y[:, :19], w[:, :19], lam), (y, w, lam[:1]), (y[:1], w[:1], lam[:1])]:
        with pytest.raises(ValueError, match="must be"):
            spl.values(*args)
    for rows in [np.array([True, False]), np.array([0, 2]), np.array([-1])]:
        with pytest.raises(ValueError, match="integer row numbers in"):
            spl.values(y[:rows.size], w[:rows.size], lam[:rows.size], rows)


def test_without_numba_the_numpy_path_serves(monkeypatch):
    from slamfw_plugins.normalizers import _smoothing
    monkeypatch.setattr(_smoothing.KERNEL, "compiled", False)     # as when numba is not installed
    assert _smoothing.KERNEL.get() is None
    x = (3900.0 + np.arange(50.0))[None]
    y = np.sin(x / 7.0)
    out = SmoothingSplines(x).values(y, np.ones_like(y), np.array([10.0]))
    np.testing.assert_array_equal(out, SmoothingSplines(x, compiled=False).values(y, np.ones_like(y), np.array([10.0])))


def _reference_continuum(norm: SplineNormalizer, wave, flux, ivar):
    """The normaliser star by star with scipy's spline on the kept pixels (as before batching)."""
    good = (ivar > 0) & np.isfinite(flux)
    if good.sum() < norm.min_pixels:
        return np.full_like(flux, np.nan), good

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
    return spl(wave), keep


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
        ref, keep = _reference_continuum(norm, wave[s], flux[s], ivar[s])
        if s in (2, 3):
            assert np.all(np.isnan(cont[s])) and np.all(ni[s] == 0) and np.all(nf[s] == 1)
            continue
        inside = _inside(wave[s], keep)          # beyond the kept pixels: a line here, scipy's end cubic there
        assert inside.mean() > 0.95
        np.testing.assert_allclose(cont[s, inside], ref[inside], rtol=1e-6)
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
    for bad in (np.nan, np.inf):                       # anywhere, the first and last pixels included
        for pixel in (0, 100, 199):
            w = np.tile(np.linspace(4000.0, 5000.0, 200), (3, 1))
            w[1, pixel] = bad
            with pytest.raises(ValueError, match="spectrum 1 of this block.*finite"):
                SplineNormalizer().normalize(w, np.ones((3, 200)), np.ones((3, 200)))


def _mock_block(n_stars=40, rv_sigma=3000.0):
    from slamfw import registry
    ss = registry.create("reader", "mock", {"n_stars": n_stars, "seed": 3, "snr": [20, 50, 100]}).read()
    doppler = 1 + np.random.default_rng(1).normal(0, rv_sigma, n_stars) / 299792.458
    ivar = ss.weight_ivar.copy()
    ivar[1, 200:260] = 0                       # a gap
    ivar[5:7, :40] = 0                         # two stars starting later: one basis for both
    ivar[7, -30:] = 0                          # one ending earlier
    ivar[8, 15:] = 0                           # too few pixels
    return ss.wave, doppler, ss.flux, ivar


def test_rest_frame_splines_equal_splines_on_the_shifted_wavelengths():
    """normalize_rest_frame builds the basis on the observed grid and scales each star's penalty
    by doppler^3: the same continua as normalising the rest-frame wavelengths (measured: 8e-9
    relative at 30 and 3000 km/s; a wrong power of the doppler factor moves them by ~6e-3 at
    3000 km/s), star by star bit for bit what the star gets alone."""
    wave, doppler, flux, ivar = _mock_block()
    norm = SplineNormalizer()
    want = norm.normalize(wave[None, :] / doppler[:, None], flux, ivar)
    got = norm.normalize_rest_frame(wave, doppler, flux, ivar)
    assert np.all(np.isnan(got[2][8])) and np.all(got[1][8] == 0)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=5e-7, atol=0)
    for i in (0, 5, 7):
        alone = norm.normalize_rest_frame(wave, doppler[i:i + 1], flux[i:i + 1], ivar[i:i + 1])
        for a, b in zip(alone, got):
            np.testing.assert_array_equal(a[0], b[i])


def test_rest_frame_refuses_bad_doppler_factors_and_shapes():
    wave, doppler, flux, ivar = _mock_block(10)
    doppler, flux, ivar = doppler[:4], flux[:4], ivar[:4]
    norm = SplineNormalizer()
    for bad in (0.0, -1.0, np.nan, np.inf):
        d = doppler.copy()
        d[2] = bad
        with pytest.raises(ValueError, match="doppler factor.*spectrum 2"):
            norm.normalize_rest_frame(wave, d, flux, ivar)
    with pytest.raises(ValueError, match="needs wave \\(P,\\) and doppler \\(N,\\)"):
        norm.normalize_rest_frame(wave, doppler[:3], flux, ivar)


def test_bins_are_numpys_arange_and_searchsorted():
    """_bins, vectorised, against the loop it replaced, on grids where edges fall on pixels."""
    from slamfw_plugins.normalizers.spline import _bins
    rng = np.random.default_rng(0)
    for trial in range(600):
        p = int(rng.integers(2, 300))
        kind = trial % 3
        if kind == 0:
            w = np.arange(p, dtype=float) + rng.integers(3000, 9000)          # integer grid: edges on pixels
        elif kind == 1:
            w = np.cumsum(rng.uniform(0.01, 3, p)) + rng.uniform(3000, 16000)
        else:
            w = (np.arange(p) * 0.1 + 4000.0) * (1 + rng.normal(0, 1e-4))
        width = [100.0, 50.0, 0.1, 7.3, 1.0, 1e4][trial % 6]
        edges = np.arange(w[0], w[-1] + width, width)
        want = np.clip(np.searchsorted(edges, w, side="right") - 1, 0, max(edges.size - 2, 0))
        np.testing.assert_array_equal(_bins(w[None], width)[0], want)


def test_a_subclass_with_its_own_normalize_gets_it_for_shifted_stars():
    """normalize_rest_frame goes through a subclass's own normalize (or normalize_one)."""
    wave, doppler, flux, ivar = _mock_block()
    doppler, flux, ivar = doppler[:6], flux[:6], ivar[:6]
    calls = []

    class MaskFirst(SplineNormalizer):
        def normalize(self, wave, flux, ivar):
            calls.append(np.shape(wave))
            ivar = np.array(ivar)
            ivar[:, :50] = 0
            return super().normalize(wave, flux, ivar)

    got = MaskFirst().normalize_rest_frame(wave, doppler, flux, ivar)
    assert calls == [(6, wave.size)]
    assert np.all(got[1][:, :50] == 0)
    star = SplineNormalizer().normalize_one(wave / doppler[0], flux[0], ivar[0])
    np.testing.assert_array_equal(star[2], SplineNormalizer().normalize(wave / doppler[0], flux[:1], ivar[:1])[2][0])


def test_threads_asking_for_a_kernel_while_it_compiles_wait_for_it(monkeypatch):
    """No thread gets the numpy path (None) because another is compiling at that moment."""
    import threading
    import time

    from slamfw_plugins import _jit

    pytest.importorskip("numba")
    import numba

    def slow_njit(**kwargs):
        def wrap(func):
            time.sleep(0.2)
            return func
        return wrap
    monkeypatch.setattr(numba, "njit", slow_njit)
    kernel = _jit.Kernel(lambda x: x, "test", "nothing")
    got = []
    threads = [threading.Thread(target=lambda: got.append(kernel.get())) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 4 and all(g is not None for g in got)


def _rejection_block(n_stars: int = 24, seed: int = 3):
    from slamfw import registry
    ss = registry.create("reader", "mock", {"n_stars": n_stars, "seed": seed, "snr": [20, 50, 100],
                                            "rv_sigma": 30}).read()
    flux, ivar = ss.flux.copy(), ss.weight_ivar.copy()
    ivar[1, 200:260] = 0                     # a gap
    ivar[3, :40] = 0                         # starts late: its span is shorter than the row
    ivar[5, -70:] = 0                        # ends early
    ivar[6, ::3] = 0                         # sparse: bins with few kept pixels
    flux[4, 500] = np.nan
    doppler = 1 + ss.meta_column("rv", 0.0) / 299792.458
    return ss.wave, doppler, flux, ivar


@pytest.mark.parametrize("k_upper", [None, 3.0])
def test_compiled_rejection_gives_numpys_bits(monkeypatch, k_upper):
    """The compiled rejection round (bin sigmas, new mask, which stars refit) equals numpy's
    bincount path bit for bit, on whole normalisations and on single rounds with inactive stars,
    bins of 0-2 kept pixels (sigma 0 and inf) and NaN flux."""
    pytest.importorskip("numba")
    from slamfw_plugins.normalizers import spline
    assert spline.REJECT.get() is not None                 # else this would compare numpy with itself
    wave, doppler, flux, ivar = _rejection_block()
    norm = SplineNormalizer(k_upper=k_upper, bin_width=20.0)
    fast = [norm.normalize(wave[None, :] / doppler[:, None], flux, ivar),
            norm.normalize_rest_frame(wave, doppler, flux, ivar)]
    rng = np.random.default_rng(0)
    n, S = 30, 300
    good = rng.random((n, S)) > 0.1
    keep = good & (rng.random((n, S)) > 0.3)
    keep[0] = False                                           # no kept pixel at all
    keep[1, 3:] = False                                       # bins of 0-2 kept pixels
    f = np.where(good, rng.normal(1, 0.1, (n, S)), np.nan)
    cont = np.ones((n, S))
    bins = np.repeat(np.arange(S // 25), 25)[None].repeat(n, axis=0)
    active = rng.random(n) > 0.2
    one = norm._reject(f, cont, keep, good, bins, S // 25, active)
    mixed = bins.copy()                                       # rows whose bins decrease: the kernel's general loop
    mixed[::3] = rng.permuted(mixed[::3], axis=1)
    mixed[1::3, -1] = 0
    two = norm._reject(f, cont, keep, good, mixed, S // 25, active)
    assert spline.REJECT.compiled                          # the kernel ran: it did not fail over to numpy
    monkeypatch.setattr(spline.REJECT, "compiled", False)  # numpy's path
    assert spline.REJECT.get() is None
    slow = [norm.normalize(wave[None, :] / doppler[:, None], flux, ivar),
            norm.normalize_rest_frame(wave, doppler, flux, ivar)]
    for a, b in zip(fast, slow):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
    new_keep, refit = norm._reject(f, cont, keep, good, bins, S // 25, active)
    np.testing.assert_array_equal(one[1], refit)
    assert refit.any() and not refit[~active].any()
    np.testing.assert_array_equal(one[0][refit], new_keep[refit])
    new_keep, refit = norm._reject(f, cont, keep, good, mixed, S // 25, active)
    np.testing.assert_array_equal(two[1], refit)
    assert refit.any()
    np.testing.assert_array_equal(two[0][refit], new_keep[refit])


def test_penalty_uses_the_first_and_last_kept_points():
    rng = np.random.default_rng(2)
    x = _uneven(rng, 6, 80)
    keep = rng.random(x.shape) > 0.5
    keep[:, [3, 70]] = True
    norm = SplineNormalizer(smoothing_length=50.0)
    lo = np.where(keep, x, np.inf).min(axis=1)
    hi = np.where(keep, x, -np.inf).max(axis=1)
    np.testing.assert_array_equal(norm._lam(x, keep), keep.sum(1) / (hi - lo) * 50.0 ** 4)


def test_compiled_bins_are_numpys_bits():
    """The compiled bins (numba) against the numpy path, on grids per row and on shifted copies of one grid."""
    from slamfw_plugins.normalizers.spline import BINS, _bins, _bins_numpy
    if BINS.get() is None:
        pytest.skip("numba is not installed")
    rng = np.random.default_rng(3)
    for trial in range(200):
        p = int(rng.integers(2, 400))
        n = int(rng.integers(1, 6))
        if trial % 2:
            w = np.cumsum(rng.uniform(0.01, 3, (n, p)), axis=1) + rng.uniform(3000, 16000, (n, 1))
        else:
            common = np.arange(p) * rng.choice([0.1, 1.0, 3.6]) + 4000.0
            w = common[None] / (1 + rng.normal(0, 1e-4, (n, 1)))
        width = [100.0, 50.0, 0.1, 7.3, 1.0, 1e4][trial % 6]
        got = _bins(w, width)
        assert got.dtype == np.int64
        np.testing.assert_array_equal(got, _bins_numpy(w, width))
    assert BINS.compiled                                      # the kernel ran: it did not fail over to numpy
