"""The emcee inferer: posterior sampling of paper eq. 7-8 times a prior, seeded per star."""
from __future__ import annotations

import numpy as np
import pytest
from slamfw_plugins.inferers.emcee import EmceeInferer

from slamfw import (
    ConfigError,
    LabelResult,
    LeastSquaresForm,
    LocalExecutor,
    Prior,
    using_executor,
)
from slamfw.testing import check_inferer, make_reference_model, reference_labels
from slamfw.testing.reference import noisy_spectra

#: Small, fast settings for the reference emulator (3 labels, 40 pixels): about 0.2 s a star.
FAST = {"n_walkers": 12, "n_steps": 400, "burn": 100, "keep_samples": 50}


@pytest.fixture(scope="module")
def ref():
    return make_reference_model()


@pytest.fixture(scope="module")
def noisy(ref):
    truth = reference_labels(6, seed=7, margin=0.15)
    flux, ivar = noisy_spectra(ref.emulator, truth, 40.0, seed=8, bad_fraction=0.05)
    return truth, flux, ivar


class GaussianPrior(Prior):
    """Independent Gaussians (sigma inf: none) with a least-squares form."""

    def __init__(self, mean, sigma):
        self.mean, self.sigma = np.asarray(mean, float), np.asarray(sigma, float)

    def least_squares_form(self, star=None):
        n = self.mean.size
        return LeastSquaresForm(self.mean, self.sigma, np.full(n, -np.inf), np.full(n, np.inf))


class WindowPrior(Prior):
    """Flat on lo < Teff < hi, with no least-squares form (only emcee can use it)."""

    def __init__(self, lo, hi):
        self.lo, self.hi = lo, hi

    def log_prob(self, theta, star=None):
        t = np.atleast_2d(theta)[:, 0]
        return np.where((t > self.lo) & (t < self.hi), 0.0, -np.inf)


class PerStarPrior(GaussianPrior):
    per_star = True


def test_conformance_kit():
    check_inferer(EmceeInferer(n_walkers=8, n_steps=200, burn=50, keep_samples=20, min_tau_multiple=0))


def test_noiseless_spectra_give_back_their_labels(ref):
    truth = reference_labels(3, seed=3, margin=0.1)
    flux = ref.emulator.predict(truth)
    res = EmceeInferer(**FAST).infer(ref, flux, np.full_like(flux, 1e8))
    assert np.all(np.abs(res.labels - truth) < 1e-3 * ref.train_labels.std(0))
    assert np.all(res.rmse < 1e-4)


def test_noisy_labels_within_errors(ref, noisy):
    truth, flux, ivar = noisy
    res = EmceeInferer(**FAST).infer(ref, flux, ivar)
    z = (res.labels - truth) / res.errors
    assert np.all(np.abs(z) < 4), z
    assert np.all(np.isfinite(res.cov)) and res.samples.shape == (6, 50, 3)
    half = 0.5 * (res.extra["p84"] - res.extra["p16"])        # ~ 1 sigma for a near-Gaussian posterior
    assert np.all((half / res.errors > 0.7) & (half / res.errors < 1.4))
    assert np.all((res.extra["acceptance"] > 0.2) & (res.extra["acceptance"] < 0.9))
    assert np.all(res.extra["tau"] > 1) and res.extra["tau"].shape == (6, 3)
    assert np.all(np.abs(res.chi2 - 1) < 0.6)


def test_same_star_same_samples_whatever_the_chunk(ref, noisy):
    """Seeds come from (random_state, id): a star alone or in a batch gives identical samples."""
    _, flux, ivar = noisy
    ids = np.array([f"star-{i}" for i in range(6)])
    inf = EmceeInferer(**FAST)
    batch = inf.infer(ref, flux, ivar, ids=ids)
    alone = inf.infer(ref, flux[4:5], ivar[4:5], ids=ids[4:5])
    np.testing.assert_array_equal(alone.samples[0], batch.samples[4])
    np.testing.assert_array_equal(alone.labels[0], batch.labels[4])
    reordered = inf.infer(ref, flux[::-1], ivar[::-1], ids=ids[::-1])
    np.testing.assert_array_equal(reordered.samples[::-1], batch.samples)
    # without ids the spectrum itself seeds the star: still chunk invariant
    no_ids = inf.infer(ref, flux, ivar)
    np.testing.assert_array_equal(inf.infer(ref, flux[2:3], ivar[2:3]).samples[0], no_ids.samples[2])
    # another seed, or another id for the same spectrum, gives other samples
    other = EmceeInferer(**{**FAST, "random_state": 1}).infer(ref, flux[4:5], ivar[4:5], ids=ids[4:5])
    renamed = inf.infer(ref, flux[4:5], ivar[4:5], ids=np.array(["another"]))
    assert not np.array_equal(other.samples, alone.samples)
    assert not np.array_equal(renamed.samples, alone.samples)


def test_worker_processes_give_identical_results(ref, noisy):
    _, flux, ivar = noisy
    inf = EmceeInferer(**FAST)
    serial = inf.infer(ref, flux[:4], ivar[:4])
    with using_executor(LocalExecutor(workers=2)):
        parallel = inf.infer(ref, flux[:4], ivar[:4])
    np.testing.assert_array_equal(parallel.samples, serial.samples)
    np.testing.assert_array_equal(parallel.cov, serial.cov)


def test_narrow_gaussian_prior_pulls_the_posterior(ref):
    truth = np.array([[5600.0, 3.0, -0.8]])
    flux, ivar = noisy_spectra(ref.emulator, truth, 30.0, seed=4)
    inf = EmceeInferer(**FAST)
    free = inf.infer(ref, flux, ivar)
    sig_l = free.errors[0, 1]
    mean = truth[0, 1] + 3 * sig_l                                   # 3 likelihood sigmas away
    prior = GaussianPrior([np.nan, mean, np.nan], [np.inf, 0.3 * sig_l, np.inf])
    res = inf.infer(ref, flux, ivar, prior=prior)
    expect = (free.labels[0, 1] / sig_l ** 2 + mean / (0.3 * sig_l) ** 2) / (1 / sig_l ** 2 + 1 / (0.3 * sig_l) ** 2)
    assert abs(res.labels[0, 1] - expect) < 0.1 * sig_l + 2 * res.errors[0, 1] / np.sqrt(50)
    assert res.errors[0, 1] < 0.4 * sig_l
    assert abs(res.extra["mode"][0, 1] - expect) < 0.2 * sig_l           # the start saw the prior too


def test_prior_without_least_squares_form_is_sampled(ref):
    """The start ignores such a prior; the walkers are moved into its support."""
    truth = np.array([[5600.0, 3.0, -0.8]])
    flux, ivar = noisy_spectra(ref.emulator, truth, 50.0, seed=5)
    res = EmceeInferer(**FAST).infer(ref, flux, ivar, prior=WindowPrior(6000.0, 6100.0))
    assert np.all(np.isfinite(res.labels))
    assert np.all((res.samples[0, :, 0] > 6000.0) & (res.samples[0, :, 0] < 6100.0))


def test_default_prior_is_the_widened_training_box(ref):
    """Far outside the training range the flat box holds the walkers (margin 0: the range itself)."""
    flux = np.ones((1, ref.emulator.n_pixels_))                       # no lines at all: weak data
    res = EmceeInferer(**{**FAST, "box_margin": 0.0}).infer(ref, flux, np.full_like(flux, 1e2))
    lo, hi = ref.train_labels.min(0), ref.train_labels.max(0)
    assert np.all((res.samples >= lo) & (res.samples <= hi))


def test_coverage_on_an_exact_emulator(ref):
    """The 16-84% interval covers the truth for about 68% of (star, label) pairs."""
    truth = reference_labels(40, seed=21, margin=0.15)
    flux, ivar = noisy_spectra(ref.emulator, truth, 30.0, seed=22)
    res = EmceeInferer(**{**FAST, "keep_samples": 0}).infer(ref, flux, ivar)
    inside = (truth > res.extra["p16"]) & (truth < res.extra["p84"])
    assert 0.45 < inside.mean() < 0.90, inside.mean(0)
    assert res.samples is None


def test_label_result_round_trip_keeps_extras(ref, noisy, tmp_path):
    _, flux, ivar = noisy
    res = EmceeInferer(**FAST).infer(ref, flux[:2], ivar[:2])
    np.savez(tmp_path / "r.npz", **res.to_arrays())
    with np.load(tmp_path / "r.npz", allow_pickle=False) as z:
        back = LabelResult.from_arrays({k: z[k] for k in z.files})
    assert set(back.extra) == {"p16", "p84", "mode", "acceptance", "tau", "chain_short", "n_starts_agree", "at_bound"}
    for key, value in res.extra.items():
        np.testing.assert_array_equal(back.extra[key], value)
    assert back.extra_units == {"p16": "label", "p84": "label", "mode": "label"}
    np.testing.assert_array_equal(back.samples, res.samples)


@pytest.mark.parametrize("fmt", ["npz", "hdf5"])
def test_chains_are_saved_one_file_per_star(ref, noisy, tmp_path, fmt):
    if fmt == "hdf5":
        import h5py   # in the [test] extra: the test fails, not skips, without it
    _, flux, ivar = noisy
    ids = np.array(["a/1", "b 2"])
    short = {**FAST, "n_steps": 150, "burn": 50}             # emcee's HDF backend writes every step: slow
    plain = EmceeInferer(**short).infer(ref, flux[:2], ivar[:2], ids=ids)
    res = EmceeInferer(**short, save_chains=fmt, chains_dir=str(tmp_path)).infer(ref, flux[:2], ivar[:2], ids=ids)
    np.testing.assert_array_equal(res.samples, plain.samples)            # saving changes nothing
    suffix = ".npz" if fmt == "npz" else ".h5"
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"a_1{suffix}", f"b_2{suffix}"]
    if fmt == "npz":
        with np.load(tmp_path / "a_1.npz") as z:
            assert z["chain"].shape == (150, 12, 3) and int(z["burn"]) == 50
            assert list(z["label_names"]) == ref.label_names
    else:
        with h5py.File(tmp_path / "a_1.h5", "r") as f:
            assert f["mcmc"]["chain"].shape == (150, 12, 3)


def test_bad_settings_are_config_errors(ref, noisy):
    _, flux, ivar = noisy
    with pytest.raises(ConfigError, match="n_steps"):
        EmceeInferer(n_steps=100, burn=100)
    with pytest.raises(ConfigError, match="chains_dir"):
        EmceeInferer(save_chains="npz")
    with pytest.raises(ConfigError, match="n_walkers"):
        EmceeInferer(n_walkers=4).infer(ref, flux, ivar)
    with pytest.raises(ConfigError, match="ids"):
        EmceeInferer(**FAST).infer(ref, flux, ivar, prior=PerStarPrior([5000.0, 3.0, 0.0], [np.inf] * 3))


def test_a_chain_whose_tau_is_not_finite_is_short_and_the_mode_on_a_box_side_flags_the_star(ref, noisy):
    """Found by a bad-input hunt: a 2-step chain (tau NaN) was reported converged, with the errors
    of the starting ball; and flag_bound never fired with emcee, though the mode lay on the box."""
    truth, flux, ivar = noisy
    res = EmceeInferer(n_walkers=8, n_steps=2, burn=0, keep_samples=0).infer(ref, flux[:2], ivar[:2])
    assert not np.isfinite(res.extra["tau"]).all() and res.extra["chain_short"].all() and not res.converged.any()
    lo = truth[0, 0] + 300.0                                          # a box whose low side cuts star 0 off
    box = LeastSquaresForm(np.full(3, np.nan), np.full(3, np.inf), np.array([lo, -np.inf, -np.inf]),
                           np.full(3, np.inf))
    boxed = type("Box", (Prior,), {"least_squares_form": lambda self, star=None: box})()
    res = EmceeInferer(**FAST).infer(ref, flux[:1], ivar[:1], prior=boxed)
    assert res.extra["mode"][0, 0] == pytest.approx(lo, rel=1e-6) and res.extra["at_bound"][0]   # flag_bound's
