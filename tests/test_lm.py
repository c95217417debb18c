from functools import partial

import numpy as np
import pytest

from slamfw import (
    ConfigError,
    DataError,
    LeastSquaresForm,
    Prior,
    TrainedEmulator,
    best_library_matches,
    likelihood_weights,
    registry,
)

from .conftest import mock_set


@pytest.fixture(scope="module")
def lm():
    return registry.create("inferer", "lm", {})


def test_recovers_labels_of_noiseless_emulator_spectra(small_model, lm):
    truth = np.array([[5200.0, 4.1, -0.3], [6600.0, 3.0, -1.2], [7800.0, 2.5, 0.1]])
    flux = small_model.emulator.predict(truth)
    res = lm.infer(small_model, flux, np.full_like(flux, 1e6))
    assert res.converged.all()
    assert np.all(np.abs(res.labels - truth) < [2.0, 0.01, 0.01]), res.labels - truth
    assert np.all(res.rmse < 1e-4)


def test_errors_are_consistent_with_noise_scatter(small_model, lm, rng):
    """Formal errors from the jacobian match the scatter over noise realisations."""
    truth = np.array([6000.0, 3.8, -0.5])
    clean = small_model.emulator.predict(truth[None])[0]
    sigma = 0.01
    flux = clean + rng.normal(0, sigma, size=(60, clean.size))
    ivar = np.full_like(flux, 1 / sigma ** 2)
    lm_nomod = registry.create("inferer", "lm", {"use_model_error": False})
    res = lm_nomod.infer(small_model, flux, ivar)
    assert res.converged.all()
    ratio = res.labels.std(0) / np.median(res.errors, axis=0)
    assert np.all((ratio > 0.6) & (ratio < 1.6)), ratio
    assert abs(np.median(res.chi2) - 1) < 0.2


def test_spectrum_snr_and_the_best_match_are_numpys(rng):
    """spectrum_snr gives np.nanmedian's values to the bit, as float64 (rows of 1 to 6 and 500
    pixels, odd and even counts of good pixels, none at all, float32 input, infinite flux, NaN
    products at good pixels, values near 1e300); the single best library match is the first
    smallest chi^2, NaN last."""
    import warnings

    from slamfw.stats.likelihood import _k_best, spectrum_snr
    for p in (1, 2, 3, 6, 500):
        for dtype in (np.float64, np.float32):
            flux = rng.normal(1.0, 0.2, (300, p))
            ivar = np.where(rng.random((300, p)) < 0.3, 0.0, rng.uniform(1.0, 1e4, (300, p)))
            ivar[:4] = 0.0
            flux[7] = np.nan
            ivar[7] = 0.0
            flux[10:20][rng.random((10, p)) < 0.3] = np.inf
            flux[20:30][rng.random((10, p)) < 0.3] = np.nan          # NaN products at pixels with ivar > 0
            if dtype is np.float64:
                flux[30:40][rng.random((10, p)) < 0.3] = 1e300
            flux, ivar = flux.astype(dtype), ivar.astype(dtype)
            good = ivar > 0
            s = np.where(good, np.abs(np.where(good, flux, 0.0)) * np.sqrt(np.where(good, ivar, 0.0)), np.nan)
            want = np.full(300, np.nan)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)          # all-NaN rows
                want[good.any(1)] = np.nanmedian(s[good.any(1)], axis=1)
            got = spectrum_snr(flux, ivar)
            assert got.dtype == np.float64 and np.array_equal(got, want, equal_nan=True), (p, dtype)
            assert np.isnan(got[:4]).all() and np.isfinite(got[40:]).any()
    chi2 = np.array([[3.0, 1.0, 2.0, 1.0], [np.nan, 0.5, np.nan, 0.2], [np.nan, np.nan, np.nan, np.nan]])
    assert _k_best(chi2, 1).tolist() == [[1], [3], [0]]
    assert _k_best(np.array([[3.0, 1.0, 2.0, 1.5], [np.nan, 0.5, np.nan, 0.2]]), 2).tolist() == [[1, 3], [3, 1]]


def test_initial_guess_is_training_star_of_max_likelihood(small_model, lm, rng):
    emu = small_model.emulator
    flux = emu.predict(small_model.train_labels[[3, 50]]) + rng.normal(0, 1e-3, (2, emu.n_pixels_))
    ivar = np.full_like(flux, 1e6)
    w = likelihood_weights(ivar, emu.model_error_)
    lib = emu.predict(small_model.train_labels)
    idx = best_library_matches(flux, w, lib, k=3)
    brute = [np.argsort([np.sum(w[i] ** 2 * (flux[i] - lib[m]) ** 2) for m in range(lib.shape[0])])[:3]
             for i in range(2)]
    assert idx.tolist() == [b.tolist() for b in brute] and idx[:, 0].tolist() == [3, 50]
    res = lm.infer(small_model, flux, ivar)
    np.testing.assert_array_equal(res.init, small_model.train_labels[[3, 50]])


def _spread_by_hand(chi2_row, z, k, sep):
    order = list(np.argsort(chi2_row, kind="stable"))
    chosen = [order[0]]
    for j in order[1:]:
        if len(chosen) < k and all(np.linalg.norm(z[j] - z[c]) >= sep for c in chosen):
            chosen.append(j)
    return chosen + [j for j in order if j not in chosen][:k - len(chosen)]


@pytest.mark.parametrize("sep", [0.5, 1.0, 3.0, 50.0])
def test_spread_starts_are_the_best_matches_far_enough_apart(small_model, rng, sep):
    emu = small_model.emulator
    train = small_model.train_labels
    z = (train - train.mean(0)) / train.std(0, ddof=1)
    flux = emu.predict(train[[3, 50, 7]]) + rng.normal(0, 0.02, (3, emu.n_pixels_))
    w = likelihood_weights(np.full_like(flux, 2500.0), emu.model_error_)
    lib = emu.predict(train)
    idx = best_library_matches(flux, w, lib, k=3, library_labels=z, separation=sep)
    chi2 = np.array([[np.sum(w[i] ** 2 * (flux[i] - lib[m]) ** 2) for m in range(len(lib))] for i in range(3)])
    assert idx.tolist() == [_spread_by_hand(chi2[i], z, 3, sep) for i in range(3)]
    assert idx[:, 0].tolist() == best_library_matches(flux, w, lib, k=1)[:, 0].tolist()   # the best comes first
    if sep <= 1.0:        # far enough apart wherever the candidates allow it
        for row in idx:
            assert min(np.linalg.norm(z[a] - z[b]) for a in row for b in row if a != b) >= sep
    assert all(len(set(row)) == 3 for row in idx.tolist())          # never the same start twice


def test_spread_starts_edge_cases():
    z = np.array([[0.0, 0.0], [0.0, 0.0], [0.1, 0.0], [5.0, 0.0]])     # a duplicate, a near one, a far one
    lib = np.array([[1.0, 1.0], [1.0, 1.0], [1.1, 1.0], [3.0, 3.0]])
    flux, w = np.array([[1.0, 1.0]]), np.ones((1, 2))
    idx = best_library_matches(flux, w, lib, k=3, library_labels=z, separation=1.0)
    assert idx.tolist() == [[0, 3, 1]]                   # best, the far one, then the best of the rest
    assert best_library_matches(flux, w, lib, k=9, library_labels=z, separation=1.0).shape == (1, 4)
    lib_nan = lib.copy()
    lib_nan[0] = np.nan                                  # a library spectrum that cannot be compared
    assert best_library_matches(flux, w, lib_nan, k=2, library_labels=z, separation=1.0)[0, 0] != 0


@pytest.mark.parametrize("n_labels", [1, 3, 5, 7, 8, 10])
def test_spread_distances_are_the_bits_of_numpys_norm(n_labels):
    """The starts' spread depends on each distance only through ``>= separation``, but the labels of
    a catalogue should not change with how the distances are computed: the same bits as the
    expression they replace, whatever the number of labels."""
    from slamfw.stats.likelihood import _distances
    rng = np.random.default_rng(n_labels)
    z = rng.normal(size=(400, n_labels)) * rng.uniform(0.1, 10.0, n_labels)
    pick = rng.integers(0, 400, 150)
    np.testing.assert_array_equal(_distances(z, pick), np.linalg.norm(z[None, :, :] - z[pick][:, None, :], axis=2))


def test_likelihood_weights_include_model_error():
    w = likelihood_weights(np.array([[4.0, 0.0, 1.0]]), np.array([0.0, 1.0, 1.0]))
    np.testing.assert_allclose(w, [[2.0, 0.0, 1 / np.sqrt(2)]])


def test_not_converged_flag(small_model):
    flux = small_model.emulator.predict(np.array([[5500.0, 4.0, 0.0]]))
    res = registry.create("inferer", "lm", {"max_nfev": 1}).infer(
        small_model, flux, np.full_like(flux, 1e4))
    assert not res.converged[0]


def test_real_noisy_mock_spectra(small_model, lm):
    test = mock_set(40, seed=99, snr=100)
    res = lm.infer(small_model, test.flux, test.ivar)
    d = res.labels - test.labels
    assert res.converged.mean() > 0.9
    assert np.std(d[:, 0]) < 250 and np.std(d[:, 1]) < 0.5


def test_gaussian_prior_pulls_labels(small_model, lm):
    flux = small_model.emulator.predict(np.array([[6000.0, 3.5, -0.5]]))
    ivar = np.full_like(flux, 100.0)

    class Narrow(Prior):
        def least_squares_form(self, star=None):
            inf = np.full(3, np.inf)
            return LeastSquaresForm(np.array([np.nan, 1.0, np.nan]), np.array([np.inf, 0.01, np.inf]), -inf, inf)

    class NoForm(Prior):
        def log_prob(self, theta, star=None):
            return np.zeros(len(theta))

    res = lm.infer(small_model, flux, ivar, prior=Narrow())
    assert abs(res.labels[0, 1] - 1.0) < 0.1
    with pytest.raises(ConfigError, match="cannot use the prior NoForm.*emcee"):
        lm.infer(small_model, flux, ivar, prior=NoForm())


def test_box_prior_bounds_the_fit_and_flags_it(small_model, lm):
    flux = small_model.emulator.predict(np.array([[6000.0, 3.5, -0.5]]))

    class Box(Prior):
        def least_squares_form(self, star=None):
            return LeastSquaresForm(np.full(3, np.nan), np.full(3, np.inf), np.array([6500.0, 0.0, -3.0]),
                                    np.array([9000.0, 5.0, 1.0]))

    res = lm.infer(small_model, flux, np.full_like(flux, 1e4), prior=Box())
    assert res.labels[0, 0] >= 6500.0 - 1e-6 and abs(res.labels[0, 0] - 6500.0) < 1.0
    assert res.extra["at_bound"][0]
    free = lm.infer(small_model, flux, np.full_like(flux, 1e4))
    assert not free.extra["at_bound"][0]


def test_more_starts_never_end_worse(small_model):
    """The kept solution is the best over the starts: with 5 starts, no star ends at a higher
    chi^2 than from the best library match alone, and the solution keeps the start that won."""
    test = mock_set(40, seed=5, snr=20)
    one = registry.create("inferer", "lm", {"n_starts": 1}).infer(small_model, test.flux, test.ivar)
    five = registry.create("inferer", "lm", {"n_starts": 5}).infer(small_model, test.flux, test.ivar)
    assert np.all(five.chi2 <= one.chi2 * (1 + 1e-6) + 1e-9)
    assert np.all(one.extra["start"] == 0) and set(np.unique(five.extra["start"])) <= set(range(5))
    np.testing.assert_array_equal(five.init, one.init)


def test_shape_errors(small_model, lm):
    with pytest.raises(DataError, match="must both be"):
        lm.infer(small_model, np.ones((2, 5)), np.ones((2, 5)))


def test_trf_keeps_labels_inside_the_training_range(small_model):
    """The bounded option never extrapolates; the paper's LM may."""
    train = small_model.train_labels
    # just beyond the hottest training star, where the RBF emulator still extrapolates smoothly
    hot = np.array([[train[:, 0].max() + 100.0, 3.0, -0.5]])
    flux = small_model.emulator.predict(hot)
    ivar = np.full_like(flux, 1e5)
    free = registry.create("inferer", "lm", {}).infer(small_model, flux, ivar)
    bounded = registry.create("inferer", "lm", {"method": "trf"}).infer(small_model, flux, ivar)
    assert abs(free.labels[0, 0] - hot[0, 0]) < 20  # LM follows the emulator out of the range
    assert np.all(bounded.labels[0] <= train.max(0) + 1e-6) and np.all(bounded.labels[0] >= train.min(0) - 1e-6)
    assert abs(bounded.labels[0, 0] - train[:, 0].max()) < 1.0
    wide = registry.create("inferer", "lm", {"method": "trf", "bound_margin": 0.5}).infer(
        small_model, flux, ivar)
    assert abs(wide.labels[0, 0] - hot[0, 0]) < 20


# ------------------------------------------------------------------ batched: all stars iterated together
@pytest.fixture(scope="module")
def noisy():
    return mock_set(60, seed=17, snr=[20, 100])


def _agree(a, b):
    """|labels_a - labels_b| / formal error of a, over the stars where both converged."""
    both = a.converged & b.converged
    assert both.mean() > 0.9
    return np.abs(a.labels - b.labels)[both] / a.errors[both]


def test_batched_equals_per_star(small_model, noisy):
    one = registry.create("inferer", "lm", {"batched": False}).infer(small_model, noisy.flux, noisy.ivar)
    bat = registry.create("inferer", "lm", {"batched": True}).infer(small_model, noisy.flux, noisy.ivar)
    assert _agree(one, bat).max() < 0.05
    both = one.converged & bat.converged
    np.testing.assert_allclose(bat.errors[both], one.errors[both], rtol=0.02)
    np.testing.assert_allclose(bat.chi2[both], one.chi2[both], rtol=1e-4)
    np.testing.assert_array_equal(bat.init, one.init)
    assert set(bat.extra) == set(one.extra)


@pytest.fixture(scope="module")
def krr_and_cannon(small_train):
    t = small_train
    return {name: TrainedEmulator(registry.create("emulator", name, {}).fit(t.labels, t.flux, t.ivar), t.labels,
                                  t.label_names) for name in ("krr", "cannon")}


@pytest.mark.parametrize("name", ["krr", "cannon"])
def test_batched_equals_per_star_for_krr_and_cannon(krr_and_cannon, noisy, name):
    """The batched solver through the other emulators' own ``least_squares_terms`` (krr's compiled
    pass, the Cannon's from its jacobian): the per-star labels within 0.05 of their errors with
    either step rule, within the last-step bound (0.01) on MINPACK's path, the default."""
    model = krr_and_cannon[name]
    one = registry.create("inferer", "lm", {"batched": False}).infer(model, noisy.flux, noisy.ivar)
    bat = registry.create("inferer", "lm", {"batched": True}).infer(model, noisy.flux, noisy.ivar)
    assert _agree(one, bat).max() < 0.01
    secant = registry.create("inferer", "lm", {"steps": "secant"}).infer(model, noisy.flux, noisy.ivar)
    assert _agree(one, secant).max() < 0.05
    both = one.converged & bat.converged
    np.testing.assert_allclose(bat.errors[both], one.errors[both], rtol=0.02)
    np.testing.assert_array_equal(bat.init, one.init)


def test_batched_with_a_gaussian_prior_and_a_box(small_model, noisy):
    train = small_model.train_labels

    class GaussBox(Prior):
        def least_squares_form(self, star=None):
            return LeastSquaresForm(np.array([np.nan, 3.5, np.nan]), np.array([np.inf, 0.3, np.inf]),
                                    train.min(0) + [500.0, 0.0, 0.0], train.max(0) - [500.0, 0.0, 0.0])

    one = registry.create("inferer", "lm", {"batched": False}).infer(small_model, noisy.flux, noisy.ivar,
                                                                    prior=GaussBox())
    bat = registry.create("inferer", "lm", {"batched": True}).infer(small_model, noisy.flux, noisy.ivar,
                                                                     prior=GaussBox())
    lo, hi = train.min(0)[0] + 500.0, train.max(0)[0] - 500.0
    assert np.all((bat.labels[:, 0] >= lo) & (bat.labels[:, 0] <= hi))
    inside = ~one.extra["at_bound"] & ~bat.extra["at_bound"]
    assert inside.sum() > 30
    d = np.abs(one.labels - bat.labels)[inside & one.converged & bat.converged] / one.errors[inside & one.converged
                                                                                             & bat.converged]
    assert d.max() < 0.05
    np.testing.assert_array_equal(one.extra["at_bound"], bat.extra["at_bound"])


def test_batched_not_converged_and_unfit_stars(small_model):
    flux = small_model.emulator.predict(np.array([[5500.0, 4.0, 0.0], [6500.0, 3.0, -1.0]]))
    ivar = np.full_like(flux, 1e4)
    ivar[1, 2:] = 0.0                                     # 2 good pixels for 3 labels: not fitted
    res = registry.create("inferer", "lm", {"batched": True, "max_nfev": 1}).infer(small_model, flux, ivar)
    assert not res.converged.any() and np.all(np.isnan(res.labels[1]))
    ok = registry.create("inferer", "lm", {"batched": True}).infer(small_model, flux[:1], ivar[:1])
    assert ok.converged[0] and np.all(np.abs(ok.labels[0] - [5500.0, 4.0, 0.0]) < [2.0, 0.01, 0.01])


def _lsq_inputs(train_labels, noisy, k=25):
    theta = np.asarray(train_labels)[:k] * np.array([1.02, 0.98, 1.0]) + np.array([0.0, 0.05, 0.03])
    w = np.sqrt(noisy.ivar[:k]) * (np.arange(noisy.flux.shape[1]) % 7 != 0)     # some weights 0
    return theta, w, w * noisy.flux[:k]


def test_slam_least_squares_terms_compiled_equal_the_jacobians(small_model, noisy):
    """slam's least-squares terms in one compiled pass over each gamma group's product (no
    (K, P, L) jacobian) equal those built from predict_and_jacobian, to rounding."""
    pytest.importorskip("numba")
    from slamfw import Emulator
    from slamfw_plugins.emulators import _rbf
    emu = small_model.emulator
    assert _rbf.LSQ_KERNEL.get() is not None          # else this compares the default with itself
    assert len(emu._rbf.groups) == 2
    theta, w, wf = _lsq_inputs(small_model.train_labels, noisy)
    got = emu.least_squares_terms(theta, w, wf)
    want = Emulator.least_squares_terms(emu, theta, w, wf)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12 * np.abs(b).max())
    np.testing.assert_array_equal(got[2], got[2].transpose(0, 2, 1))
    with pytest.raises(DataError, match="weights .* must both be \\(25, 120\\)"):
        emu.least_squares_terms(theta, w[:, 1:], wf[:, 1:])


@pytest.mark.parametrize("n_lab", [1, 2, 4, 5])
@pytest.mark.parametrize("single", [False, True])
def test_rbf_least_squares_terms_for_any_number_of_labels(n_lab, single):
    """The compiled RBF terms (a loop specialised for 3 labels, the general one for others) equal
    cost, J^T r and J^T J built from value_and_gradient, and fill the model, for 1-5 labels, in
    double and with the derivatives' products in float32."""
    pytest.importorskip("numba")
    from slamfw_plugins.emulators._rbf import LSQ_KERNEL, RBFExpansion
    rng = np.random.default_rng(n_lab)
    M, P, K = 40, 30, 7
    X = rng.normal(size=(M, n_lab))
    dual = rng.normal(size=(P, M)) * (rng.random((P, M)) > 0.2)
    rbf = RBFExpansion(X, dual, rng.normal(size=P), rng.choice([0.1, 0.5], P))
    z = rng.normal(size=(K, n_lab))
    w = rng.uniform(0.5, 2, (K, P))
    w[:, ::5] = 0.0
    wf = w * rng.normal(1, 0.1, (K, P))
    fs, fm, inv_ls = rng.uniform(0.5, 2, P), rng.normal(size=P), rng.uniform(0.5, 2, n_lab)
    model = np.full((K, P), np.nan)
    got = rbf.least_squares_terms(z, w, wf, fs, fm, inv_ls, single=single, model=model)
    assert got is not None and LSQ_KERNEL.compiled              # the compiled pass, not a fallback
    val, jac = rbf.value_and_gradient(z)                         # (K, P), (K, P, L) by z
    m = val * fs + fm
    r = wf - w * m
    jr = -(w * fs)[:, :, None] * jac * inv_ls                    # dr / d label (K, P, L)
    want = (0.5 * (r * r).sum(1), np.einsum("kpl,kp->kl", jr, r), np.einsum("kpl,kpm->klm", jr, jr))
    np.testing.assert_allclose(model, m, rtol=1e-12, atol=1e-12)
    tol = 1e-4 if single else 1e-10
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol * np.abs(b).max())


def _random_rbf(seed=0, M=300, P=60, n_lab=3):
    from slamfw_plugins.emulators._rbf import RBFExpansion
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(M, n_lab))
    dual = rng.normal(size=(P, M)) * (rng.random((P, M)) > 0.2)
    rbf = RBFExpansion(X, dual, rng.normal(size=P), rng.choice([0.1, 0.5], P))
    fs, fm, inv_ls = rng.uniform(0.5, 2, P), rng.normal(size=P), rng.uniform(0.5, 2, n_lab)
    return rbf, rng, (fs, fm, inv_ls)


def _terms_inputs(rng, k, P, n_lab=3):
    z = rng.normal(size=(k, n_lab))
    w = rng.uniform(0.5, 2, (k, P))
    w[:, ::5] = 0.0
    return z, w, w * rng.normal(1, 0.1, (k, P))


def test_rbf_least_squares_terms_in_row_blocks_equal_one_pass(monkeypatch):
    """A batch taller than ROW_BLOCK is evaluated in near-equal blocks of rows (each block's kernel
    matrix and product stay in cache): the same terms and model as in one pass, to rounding
    (OpenBLAS computes the distances of a shorter block by another kernel: here a few of them,
    and then a few terms, differ in the last bit; on case (a) none did), and the kernel did see
    blocks, not the whole batch."""
    pytest.importorskip("numba")
    from slamfw_plugins.emulators import _rbf
    rbf, rng, consts = _random_rbf()
    z, w, wf = _terms_inputs(rng, 1100, rbf.n_pixels)
    compiled, seen = _rbf.LSQ_KERNEL.get(), []

    def recording(kd, kx, pixels, gamma, zb, *args):
        seen.append(zb.shape[0])
        return compiled(kd, kx, pixels, gamma, zb, *args)
    monkeypatch.setattr(_rbf.LSQ_KERNEL, "compiled", recording)
    results = {}
    for block in (10 ** 9, 512, 300):
        monkeypatch.setattr(_rbf, "ROW_BLOCK", block)
        seen.clear()
        model = np.empty(w.shape)
        results[block] = (*rbf.least_squares_terms(z, w, wf, *consts, model=model), model)
        n_blocks = max(1, 1100 // block)
        assert sorted(set(seen)) == sorted({1100 // n_blocks, -(-1100 // n_blocks)})   # near-equal blocks
        assert len(seen) == n_blocks * len(rbf.groups)
    for block in (512, 300):
        for a, b in zip(results[block], results[10 ** 9]):
            np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-13 * np.abs(b).max())


def test_rbf_work_arrays_are_reused_never_returned_and_stay_in_their_thread(monkeypatch):
    """The expansion's work arrays (kernel matrix, product) are kept between calls, per thread:
    what a call returns is never overwritten by a later call, threads evaluating at once get
    what each gets alone, pickling carries no work arrays, and none bigger than SCRATCH_BYTES is
    kept."""
    import pickle
    import threading

    from slamfw_plugins.emulators import _rbf
    rbf, rng, consts = _random_rbf(1)
    size = len(pickle.dumps(rbf))
    inputs = [_terms_inputs(rng, k, rbf.n_pixels) for k in (700, 40, 700, 3)]

    def evaluate(z, w, wf):
        model = np.empty(w.shape)
        return (*rbf.least_squares_terms(z, w, wf, *consts, model=model), model, *rbf.value_and_gradient(z),
                rbf.value(z))
    returned, alone = [], []
    for args in inputs:
        returned.append(evaluate(*args))
        alone.append(tuple(np.array(x, copy=True) for x in returned[-1]))
    assert {"kz", "product"} <= set(rbf._scratch.arrays)          # kept, grown to the largest call
    assert rbf._scratch.arrays["kz"].size >= 700 * 300
    for args in inputs:
        evaluate(*args)
    for a, b in zip(returned, alone):   # what was returned is not a view of the arrays reused since
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
    assert len(pickle.dumps(rbf)) == size
    copy = pickle.loads(pickle.dumps(rbf))
    assert copy._scratch is not rbf._scratch and not copy._scratch.arrays
    got: dict[int, list] = {}

    def worker(i):
        z, w, wf = inputs[i % len(inputs)]
        out = []
        for _ in range(5):
            model = np.empty(w.shape)
            out.append((*rbf.least_squares_terms(z, w, wf, *consts, model=model), model))
        got[i] = out
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, out in got.items():
        for res in out:
            for x, y in zip(res, alone[i % len(inputs)][:4]):
                np.testing.assert_array_equal(x, y)
    monkeypatch.setattr(_rbf, "SCRATCH_BYTES", 8 * 700 * 300 - 1)
    fresh = pickle.loads(pickle.dumps(rbf))
    np.testing.assert_array_equal(fresh.value_and_gradient(inputs[0][0])[1], alone[0][5])
    assert set(fresh._scratch.arrays) == {"product"}        # the (700, 300) distances and kernel: too big to keep


def test_a_numba_that_fails_leaves_least_squares_terms_to_the_jacobian(small_model, noisy, monkeypatch, caplog):
    from slamfw import Emulator
    from slamfw_plugins.emulators import _rbf

    def broken(*args):
        raise RuntimeError("cannot compile here")
    monkeypatch.setattr(_rbf.LSQ_KERNEL, "compiled", broken)
    theta, w, wf = _lsq_inputs(small_model.train_labels, noisy)
    got = small_model.emulator.least_squares_terms(theta, w, wf)
    assert "numba's kernel is not usable (RuntimeError: cannot compile here)" in caplog.text
    assert _rbf.LSQ_KERNEL.compiled is False
    for a, b in zip(got, Emulator.least_squares_terms(small_model.emulator, theta, w, wf)):
        np.testing.assert_array_equal(a, b)


def _small_krr(noisy):
    """A krr on 80 mock stars, and least-squares inputs at 10 rows."""
    train = mock_set(80, seed=5)
    emu = registry.create("emulator", "krr", {"alpha": [0.01], "gamma": [0.1, 1.0]}).fit(train.labels, train.flux,
                                                                                         train.ivar)
    return emu, _lsq_inputs(train.labels, noisy, k=10)


def test_krr_least_squares_terms_compiled_equal_the_jacobians(noisy):
    pytest.importorskip("numba")
    from slamfw import Emulator
    emu, (theta, w, wf) = _small_krr(noisy)
    assert emu._rbf.least_squares_terms(emu.label_scaler_.transform(theta), w, wf, emu.flux_scaler_.scale_,
                                        emu.flux_scaler_.mean_, 1 / emu.label_scaler_.scale_) is not None
    for a, b in zip(emu.least_squares_terms(theta, w, wf), Emulator.least_squares_terms(emu, theta, w, wf)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12 * np.abs(b).max())


def test_a_subclass_that_changes_the_model_is_honoured_by_the_least_squares_terms(small_model, noisy):
    """A slam subclass that overrides predict/predict_and_jacobian gets its own model in the
    batched least squares, not the expansion's compiled terms."""
    from slamfw import Emulator
    from slamfw_plugins.emulators.slam import SlamEmulator

    class Offset(SlamEmulator):
        def predict_and_jacobian(self, labels):
            flux, jac = super().predict_and_jacobian(labels)
            return flux + 0.01, jac

    emu = small_model.emulator
    shifted = Offset.__new__(Offset)
    shifted.__dict__.update(emu.__dict__)                  # the same fitted model
    theta, w, wf = _lsq_inputs(small_model.train_labels, noisy)
    got = shifted.least_squares_terms(theta, w, wf)
    np.testing.assert_allclose(got[0], Emulator.least_squares_terms(shifted, theta, w, wf)[0], rtol=1e-12)
    assert not np.allclose(got[0], emu.least_squares_terms(theta, w, wf)[0], rtol=1e-3)


def test_weighted_flux_where_the_weight_is_zero_is_ignored(small_model, noisy):
    theta, w, wf = _lsq_inputs(small_model.train_labels, noisy)
    dirty = np.where(w == 0, 5.0, wf)
    for a, b in zip(small_model.emulator.least_squares_terms(theta, w, dirty),
                    small_model.emulator.least_squares_terms(theta, w, wf)):
        np.testing.assert_array_equal(a, b)


def test_batched_stops_where_the_gauss_newton_step_would_gain_less_than_ftol(small_model, noisy, monkeypatch):
    """A row whose next Gauss-Newton step would lower the cost by at most ftol of it stops there,
    one evaluation before the actual-reduction test would; the labels move by far less than
    their errors."""
    from slamfw.stats import batched_lm as blm
    assert blm._decrement(np.eye(2)[None] * 2.0, np.array([[2.0, 4.0]]))[0] == pytest.approx(5.0)
    assert blm._decrement(np.zeros((2, 2, 2)), np.ones((2, 2)))[0] == np.inf        # singular: never stops
    inferer = registry.create("inferer", "lm", {"batched": True, "steps": "secant"})
    calls = []
    real = blm.batched_lm

    def counted(*args, **kwargs):
        out = real(*args, **kwargs)
        calls.append(out["nfev"])
        return out
    monkeypatch.setattr("slamfw.stats.maxlike.batched_lm", counted)
    with_test = inferer.infer(small_model, noisy.flux, noisy.ivar)
    monkeypatch.setattr(blm, "_decrement", lambda a, g, xp=np: np.full(len(g), np.inf))
    without = inferer.infer(small_model, noisy.flux, noisy.ivar)
    n_with, n_without = np.concatenate(calls[:len(calls) // 2]), np.concatenate(calls[len(calls) // 2:])
    assert n_with.sum() < 0.95 * n_without.sum()
    assert _agree(without, with_test).max() < 0.01


def test_batched_lm_on_a_linear_model_takes_gauss_newton_steps():
    """On a linear model the first step from any start is nearly Gauss-Newton's (the damping
    starts at 1e-3 of J^T J's diagonal, which has no units): 4 evaluations reach the least-squares
    solution, however large J^T J is. (Damping that started at 1e-3 times J^T J's largest
    diagonal, 5.9e4 here, so at 59, took 11.)"""
    from slamfw.stats.batched_lm import batched_lm
    rng = np.random.default_rng(4)
    a = rng.normal(size=(60, 3))

    class Linear:
        def predict_and_jacobian(self, theta):
            return theta @ a.T, np.broadcast_to(a, (len(theta), 60, 3))
    truth = np.array([[1.0, -2.0, 0.5], [0.3, 0.2, -1.0]])
    w = np.full((2, 60), 30.0)                                   # diag(J^T J) ~ 5e4
    flux = truth @ a.T + rng.normal(size=(2, 60)) / 30.0
    starts = np.array([[[10.0, 10.0, 10.0]], [[-5.0, 3.0, 8.0]]])
    res = batched_lm(Linear(), flux, w, starts, [None, None], np.zeros(3), np.ones(3), steps="secant")
    exact = np.array([np.linalg.lstsq(a, f, rcond=None)[0] for f in flux])
    assert res["converged"].all() and np.all(res["nfev"] <= 4), res["nfev"]
    np.testing.assert_allclose(res["z"], exact, atol=1e-6)


# ------------------------------------------------------------------ the secant term of the batched solver
class _LineModel:
    """A Gaussian absorption line of depth, centre and width theta (3 labels) on 80 pixels: fitted to
    data that no line matches well (large residuals), where Gauss-Newton converges slowly."""
    x = np.linspace(-5.0, 5.0, 80)

    def predict_and_jacobian(self, theta):
        d, c, s = theta[:, :1], theta[:, 1:2], theta[:, 2:3]
        u = (self.x[None, :] - c) / s
        e = np.exp(-0.5 * u ** 2)
        model = 1.0 - d * e
        jac = np.stack([-e, -d * e * u / s, -d * e * u ** 2 / s], axis=2)
        return model, jac


def _line_problem(n=40, seed=9):
    rng = np.random.default_rng(seed)
    x = _LineModel.x
    truth = np.column_stack([rng.uniform(0.3, 0.8, n), rng.uniform(-1, 1, n), rng.uniform(0.5, 1.5, n)])
    # two blended lines and a sloping continuum: no single line fits them (large residuals)
    flux = (1.0 - truth[:, :1] * np.exp(-0.5 * ((x - truth[:, 1:2]) / truth[:, 2:3]) ** 2)
            - 0.6 * np.exp(-0.5 * ((x - truth[:, 1:2] - 2.0) / 0.8) ** 2) + 0.03 * x + rng.normal(0, 0.05, (n, x.size)))
    starts = (truth + rng.normal(0, [0.1, 0.5, 0.2], truth.shape))[:, None, :]
    return flux, np.full(flux.shape, 20.0), starts


def test_batched_lm_secant_term_converges_where_gauss_newton_creeps(monkeypatch):
    """On large-residual problems the secant term S cuts the evaluations, and every row ends at the
    minimum that scipy's least_squares finds from the same start (its cost, and the model there)."""
    import slamfw.stats.batched_lm as blm
    flux, w, starts = _line_problem()
    emu = _LineModel()
    with_s = blm.batched_lm(emu, flux, w, starts, [None] * len(flux), np.zeros(3), np.ones(3), max_nfev=500,
                            steps="secant")
    monkeypatch.setattr(blm, "_sr1", lambda sec, s, y, xp=np: sec)      # S stays 0: Gauss-Newton's model
    gn = blm.batched_lm(emu, flux, w, starts, [None] * len(flux), np.zeros(3), np.ones(3), max_nfev=500,
                        steps="secant")
    assert with_s["converged"].all() and gn["converged"].all()
    assert with_s["nfev"].sum() < 0.85 * gn["nfev"].sum(), (with_s["nfev"].sum(), gn["nfev"].sum())   # 404 vs 573
    _at_scipys_minimum(emu, flux, w, starts, with_s)


def _at_scipys_minimum(emu, flux, w, starts, res):
    """Every row of ``res`` ends at the minimum scipy's least_squares finds from its start."""
    from scipy.optimize import least_squares
    for i in range(len(flux)):
        def resid(t, i=i):
            return w[i] * (flux[i] - emu.predict_and_jacobian(t[None])[0][0])
        ref = least_squares(resid, starts[i, 0], method="lm", xtol=1e-12, ftol=1e-12, gtol=1e-12)
        assert res["cost"][i] <= ref.cost * (1 + 1e-7), i
        # the same line (a width and its negative are one line: compare the model, not the labels)
        np.testing.assert_allclose(emu.predict_and_jacobian(res["z"][i][None])[0],
                                   emu.predict_and_jacobian(ref.x[None])[0], atol=1e-4)


def test_rows_that_the_secant_steps_left_short_go_on_to_the_minimum(monkeypatch):
    """A small step or gain from the secant model restarts the row with Gauss-Newton (it does not
    stop it): on these problems some rows restart, and every row still ends at scipy's minimum."""
    import slamfw.stats.batched_lm as blm
    restarts = []
    real = blm._stops

    def spy(*args):
        stop, restart = real(*args)
        restarts.append(int(restart.sum()))
        return stop, restart
    monkeypatch.setattr(blm, "_stops", spy)
    for seed in (10, 11):
        flux, w, starts = _line_problem(seed=seed)
        res = blm.batched_lm(_LineModel(), flux, w, starts, [None] * len(flux), np.zeros(3), np.ones(3), max_nfev=500,
                             steps="secant")
        assert res["converged"].all()
        _at_scipys_minimum(_LineModel(), flux, w, starts, res)
    assert sum(restarts) >= 2, restarts


def test_sr1_update_meets_the_secant_condition():
    from slamfw.stats.batched_lm import _sr1
    rng = np.random.default_rng(3)
    sec = rng.normal(size=(5, 3, 3))
    sec = sec + sec.transpose(0, 2, 1)
    s, y = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    u = rng.normal(size=3)
    y[4] = sec[4] @ s[4] + (u - (u @ s[4]) / (s[4] @ s[4]) * s[4])    # v = y - sec s orthogonal to s: ill-defined
    new = _sr1(sec, s, y)
    np.testing.assert_allclose(np.einsum("blm,bm->bl", new[:4], s[:4]), y[:4], atol=1e-10)
    np.testing.assert_allclose(new, new.transpose(0, 2, 1), atol=1e-12)
    np.testing.assert_array_equal(new[4], sec[4])


def test_a_small_step_from_the_secant_model_does_not_stop_the_row():
    from slamfw.stats.batched_lm import _stops
    t, f = True, False
    #                    small_cost      small_step      small_grad      small_next      used
    stop, restart = _stops(np.array([t, t, f, t, f]), np.array([f, f, t, f, f]), np.array([f, f, f, t, f]),
                           np.array([f, f, f, f, t]), np.array([f, t, t, t, t]))
    np.testing.assert_array_equal(stop, [t, f, f, t, t])
    np.testing.assert_array_equal(restart, [f, t, t, f, f])


def test_slam_least_squares_terms_in_single_precision(small_model, noisy, monkeypatch):
    """``jacobian_precision="single"``: the compiled pass gets the model's products in double and
    the derivatives' in float32, multiplied in float32 (``kz`` cast, not only the coefficients);
    the cost is double's to the last digits, J^T r and J^T J differ by float32's rounding, not
    more, and not by nothing."""
    pytest.importorskip("numba")
    from slamfw import Emulator
    from slamfw_plugins.emulators import _rbf
    emu = small_model.emulator
    theta, w, wf = _lsq_inputs(small_model.train_labels, noisy)
    double = emu.least_squares_terms(theta, w, wf)
    compiled, seen = _rbf.LSQ_KERNEL.get(), []

    def recording(kd, kx, *args):
        seen.append((kd.dtype, kx.dtype, kx.copy()))
        return compiled(kd, kx, *args)
    monkeypatch.setattr(_rbf.LSQ_KERNEL, "compiled", recording)
    single = emu.least_squares_terms(theta, w, wf, jacobian_precision="single")
    z = emu.label_scaler_.transform(theta)
    assert [s[:2] for s in seen] == [(np.float64, np.float32)] * len(emu._rbf.groups)
    for (grp, kz), (_, _, kx) in zip(emu._rbf._kernels(z), seen):
        np.testing.assert_array_equal(kx, kz.astype(np.float32) @ grp.single)
    np.testing.assert_allclose(single[0], double[0], rtol=1e-12)
    for a, b in zip(single[1:], double[1:]):
        err = np.abs(a - b).max() / np.abs(b).max()
        assert 0 < err < 1e-5, err
    for terms in (emu.least_squares_terms, partial(Emulator.least_squares_terms, emu)):
        with pytest.raises(ValueError, match=r"SlamEmulator.least_squares_terms: jacobian_precision must be one of "
                                             r"\('double', 'single'\), got 'half'"):
            terms(theta, w, wf, jacobian_precision="half")


def test_batched_with_a_single_precision_jacobian_agrees_with_double(small_model, noisy):
    """The batched solver with the jacobian's products in float32: the same minima as in double,
    within 1e-3 of the formal errors, and formal errors within 0.1 % (the steps' directions differ by rounding, the cost that
    accepts them and stops the fit does not)."""
    pytest.importorskip("numba")
    double = registry.create("inferer", "lm", {"batched": True}).infer(small_model, noisy.flux, noisy.ivar)
    single = registry.create("inferer", "lm", {"batched": True, "jacobian_precision": "single"}).infer(
        small_model, noisy.flux, noisy.ivar)
    assert single.converged.all() and double.converged.all()
    d = _agree(double, single)
    assert 0 < d.max() < 1e-3, d.max()
    np.testing.assert_allclose(single.errors, double.errors, rtol=1e-3)     # from J^T J in float32


def test_an_emulator_without_the_precision_keyword_is_called_in_double(small_model, noisy):
    """A third-party emulator whose ``least_squares_terms`` predates ``jacobian_precision`` (plugin
    API < 1.5) is called without it: the single-precision request then changes nothing."""
    from slamfw.stats.batched_lm import declares

    class OldTerms(type(small_model.emulator)):
        calls = 0

        def least_squares_terms(self, labels, weights, weighted_flux):
            OldTerms.calls += 1
            return super().least_squares_terms(labels, weights, weighted_flux)

    old = object.__new__(OldTerms)
    old.__dict__.update(small_model.emulator.__dict__)
    assert not declares(old.least_squares_terms, "jacobian_precision")
    assert declares(small_model.emulator.least_squares_terms, "jacobian_precision")
    model = TrainedEmulator(old, small_model.train_labels, small_model.label_names)
    flux, ivar = noisy.flux[:10], noisy.ivar[:10]
    single = registry.create("inferer", "lm", {"batched": True, "jacobian_precision": "single"}).infer(model, flux, ivar)
    assert OldTerms.calls > 0
    double = registry.create("inferer", "lm", {"batched": True}).infer(small_model, flux, ivar)
    np.testing.assert_array_equal(single.labels, double.labels)


def test_krr_computes_its_terms_in_double_when_single_is_asked(noisy):
    """krr's dual coefficients are large and cancel: it declines float32 and gives double's terms."""
    pytest.importorskip("numba")
    emu, (theta, w, wf) = _small_krr(noisy)
    for a, b in zip(emu.least_squares_terms(theta, w, wf, jacobian_precision="single"),
                    emu.least_squares_terms(theta, w, wf)):
        np.testing.assert_array_equal(a, b)
    assert all(grp.single is None for grp in emu._rbf.groups)


@pytest.mark.parametrize("params", [{"batched": False}, {"device": "cuda"}])
def test_a_single_precision_jacobian_is_refused_where_it_does_nothing(params):
    with pytest.raises(ConfigError, match="jacobian_precision 'single' is for the batched solver on the CPU"):
        registry.create("inferer", "lm", {"jacobian_precision": "single", **params})


def test_single_precision_terms_where_the_double_stack_is_too_big(small_model, noisy, monkeypatch):
    """A model whose float64 stacked coefficients exceed STACKED_BYTES (double's terms then come
    from the jacobian) still gets the compiled pass in single precision when its float32 label
    columns fit: built label by label, not from the float64 stack."""
    pytest.importorskip("numba")
    from slamfw import Emulator
    from slamfw_plugins.emulators import _rbf
    emu = small_model.emulator
    for grp in emu._rbf.groups:
        grp.stacked = grp.single = None
    need64 = max(grp.dual.nbytes * (emu.n_labels_ + 1) for grp in emu._rbf.groups)
    need32 = max(grp.dual.nbytes // 2 * emu.n_labels_ for grp in emu._rbf.groups)
    assert need32 < need64
    monkeypatch.setattr(_rbf, "STACKED_BYTES", (need32 + need64) // 2)
    theta, w, wf = _lsq_inputs(small_model.train_labels, noisy)
    z = emu.label_scaler_.transform(theta)
    args = (w, wf, emu.flux_scaler_.scale_, emu.flux_scaler_.mean_, 1 / emu.label_scaler_.scale_)
    assert emu._rbf.least_squares_terms(z, *args) is None                 # double: too big to stack
    single = emu._rbf.least_squares_terms(z, *args, single=True)
    assert single is not None and all(grp.stacked is None and grp.single.dtype == np.float32
                                      for grp in emu._rbf.groups)
    want = Emulator.least_squares_terms(emu, theta, w, wf)
    np.testing.assert_allclose(single[0], want[0], rtol=1e-12)
    for a, b in zip(single[1:], want[1:]):
        assert 0 < np.abs(a - b).max() / np.abs(b).max() < 1e-5


@pytest.mark.parametrize("how", ["compiled", "base", "old"])
def test_the_fit_quality_comes_from_the_model_kept_at_each_solution(small_model, noisy, how, monkeypatch):
    """The batched solver keeps each row's model at its solution (``model_out``, plugin API 1.8):
    the catalogue's rmse and chi2 equal those of the emulator's ``predict`` at the inferred labels
    (to rounding), and no evaluation is spent on them. Through slam's compiled terms, through the
    base class's (from ``predict_and_jacobian``), and through an emulator's terms written before
    1.8 (no ``model_out``: then evaluated at the solutions)."""
    from slamfw import Emulator
    from slamfw.stats import batched_lm as blm
    from slamfw.stats.likelihood import likelihood_weights, reduced_chi2, rmse
    if how == "compiled":
        pytest.importorskip("numba")
    emu = small_model.emulator

    class OldTerms(type(emu)):
        def least_squares_terms(self, labels, weights, weighted_flux):
            return Emulator.least_squares_terms(self, labels, weights, weighted_flux)

    class BaseTerms(type(emu)):
        def least_squares_terms(self, labels, weights, weighted_flux, *, jacobian_precision="double", model_out=None):
            return Emulator.least_squares_terms(self, labels, weights, weighted_flux, model_out=model_out)
    if how != "compiled":
        other = object.__new__(OldTerms if how == "old" else BaseTerms)
        other.__dict__.update(emu.__dict__)
        emu = other
    model = TrainedEmulator(emu, small_model.train_labels, small_model.label_names)
    kept = []
    real = blm.batched_lm

    def spy(*args, **kwargs):
        out = real(*args, **kwargs)
        kept.append("model" in out)
        return out
    monkeypatch.setattr("slamfw.stats.maxlike.batched_lm", spy)
    predicted, compiled = [], []
    real_predict = emu.predict                   # on the instance: the class's own predict stays (the
    real_pass = emu._rbf.least_squares_terms     # compiled pass serves only RBFPrediction's)

    def counted(labels):
        predicted.append(np.array(labels, float, ndmin=2))
        return real_predict(labels)

    def compiled_pass(*args, **kwargs):
        out = real_pass(*args, **kwargs)
        compiled.append(out is not None and kwargs.get("model") is not None)
        return out
    monkeypatch.setattr(emu, "predict", counted)
    monkeypatch.setattr(emu._rbf, "least_squares_terms", compiled_pass)
    flux, ivar = noisy.flux[:12], noisy.ivar[:12]
    res = registry.create("inferer", "lm", {"batched": True, "n_starts": 2}).infer(model, flux, ivar)
    monkeypatch.undo()
    assert kept and all(k == (how != "old") for k in kept), kept
    assert (bool(compiled) and all(compiled)) == (how == "compiled"), compiled
    # predict runs at the 12 solutions only without model_out (else for the library alone)
    at_solutions = sum(a.shape == res.labels.shape and np.array_equal(a, res.labels) for a in predicted)
    assert np.isfinite(res.labels).all() and at_solutions == (how == "old"), at_solutions
    w = likelihood_weights(ivar, emu.model_error_)
    at = emu.predict(res.labels)
    np.testing.assert_allclose(res.rmse, rmse(flux, w, at), rtol=1e-9)
    np.testing.assert_allclose(res.chi2, reduced_chi2(flux, w, at, res.labels.shape[1]), rtol=1e-9)


def test_the_model_is_not_kept_through_a_device_evaluator(small_model, noisy):
    """Through an evaluator (``on_device``: a GPU's path, here on numpy) the rows' models are not
    kept (they would come back from the device at every step): ``batched_lm`` gives no ``model``,
    and the fit's rmse is then evaluated at the solutions, as without ``model_out``."""
    from slamfw.stats.batched_lm import batched_lm
    emu = small_model.emulator
    train = np.asarray(small_model.train_labels, float)
    mean, scale = train.mean(0), train.std(0, ddof=1)
    flux, w = noisy.flux[:4], np.sqrt(noisy.ivar[:4])
    starts = ((train[[0, 5]] - mean) / scale)[None].repeat(4, axis=0)
    on_numpy = batched_lm(emu, flux, w, starts, [None] * 4, mean, scale)
    through = batched_lm(emu, flux, w, starts, [None] * 4, mean, scale, evaluate=emu.on_device(np))
    assert "model" in on_numpy and "model" not in through


def test_covariance_of_a_label_the_spectrum_does_not_constrain_is_infinite():
    """(J^T J)^-1 where it exists; where a label leaves J^T J singular its variance is infinite
    (pinv gave 0: an error of 0 on a label nothing constrains) and its covariances NaN, while a
    constrained label keeps its own (here label 0, uncorrelated with the free one)."""
    from slamfw.stats.maxlike import covariances
    good = np.array([[4.0, 1.0], [1.0, 2.0]])
    jtj = np.stack([good, np.diag([4.0, 0.0]), np.zeros((2, 2))])
    cov, singular = covariances(jtj)
    np.testing.assert_allclose(cov[0], np.linalg.inv(good))
    assert singular.tolist() == [False, True, True]
    assert cov[1, 0, 0] == 0.25 and cov[1, 1, 1] == np.inf and np.isnan(cov[1, 0, 1]) and np.isnan(cov[1, 1, 0])
    assert np.all(np.diagonal(cov[2]) == np.inf)
    np.testing.assert_array_equal(covariances(good[None])[0][0], np.linalg.inv(good))


@pytest.mark.parametrize("batched", [True, False])
def test_a_flat_emulator_gives_infinite_errors_not_converged(small_train, small_slam, batched, caplog):
    """Found by a bad-input hunt: krr with alpha = 1e300 (an emulator that predicts the mean
    spectrum whatever the labels) gave every star its starting labels with error 0, converged and
    unflagged. Now the errors are infinite and no star converged; training warns."""
    from slamfw.workflows.train import warn_if_flat
    assert not warn_if_flat(small_slam, "slam")
    emu = registry.create("emulator", "krr", {"alpha": [1e300], "gamma": [0.1]}).fit(
        small_train.labels, small_train.flux, small_train.ivar)
    with caplog.at_level("WARNING"):
        assert warn_if_flat(emu, "krr")
    assert "predicts no pixel better than the mean spectrum" in caplog.text
    model = TrainedEmulator(emu, small_train.labels, small_train.label_names)
    flux = small_train.flux[:4]
    res = registry.create("inferer", "lm", {"batched": batched}).infer(model, flux, np.full_like(flux, 1e4))
    assert not res.converged.any() and np.all(np.isinf(res.errors)), res.errors


def test_bound_margin_without_trf_is_refused():
    """Found by a bad-input hunt: ``bound_margin = 0.1`` with the default method was accepted and
    did nothing (the catalogue equalled one without it)."""
    with pytest.raises(ConfigError, match="lm: bound_margin bounds the labels with method = 'trf'"):
        registry.create("inferer", "lm", {"bound_margin": 0.1})
    assert registry.create("inferer", "lm", {"bound_margin": 0.1, "method": "trf"}).bound_margin == 0.1
