"""Honest uncertainties: the global optimum on the demo, flags, the error model and calibration."""
import json

import numpy as np
import pytest
from astropy.table import Table

from slamfw import chi2, likelihood_weights, registry
from slamfw.cli import main
from slamfw.config import load_config
from slamfw.model import SlamfwModel
from slamfw.stats.error_model import ErrorModel, fit_sigma_snr, sigma_snr
from slamfw.stats.quality import add_quality
from slamfw.workflows.infer import prepare_for_model
from slamfw.workflows.run import read_test

from .conftest import REPO, mock_set

DEMO = REPO / "examples" / "demo" / "experiment.toml"


def test_demo_no_converged_star_is_worse_than_its_true_labels(tmp_path):
    """The demo's 1500 test stars (500 per S/N) with the demo's emulator (SLAM) and inferer: no
    star is fitted at a chi^2 worse than the chi^2 at its true labels while flagged converged (LM
    from one start stopped in 4 of 300 such local minima; from the 3 best library matches, in 2 of
    1500, warm stars whose 3 best matches all lay on the hot side of the Balmer maximum)."""
    out = tmp_path / "demo"
    assert main(["run", str(DEMO), "--set", f"output.dir={out}", "--set", "calibration.enabled=false",
                 "--set", "analyzers=[]"]) == 0
    model = SlamfwModel.load(out / "model.npz")
    cfg = load_config(out / "config.yaml")
    test = prepare_for_model(read_test(cfg, None), model)
    cat = Table.read(out / "catalog.fits")
    assert len(cat) == test.n_stars == 1500 and list(cat["id"]) == list(test.ids)
    w = likelihood_weights(test.weight_ivar, model.emulator.model_error_)
    fitted = np.column_stack([cat[n] for n in model.label_names])
    at_fit = chi2(test.flux, w, model.emulator.predict(fitted))
    at_truth = chi2(test.flux, w, model.emulator.predict(test.labels))
    worse = (at_fit > at_truth * (1 + 1e-6)) & np.asarray(cat["converged"])
    assert not worse.any(), [(cat["id"][i], at_fit[i], at_truth[i]) for i in np.where(worse)[0]]
    assert np.mean(cat["converged"]) > 0.95


def test_sigma_snr_fit_recovers_its_parameters():
    snr = np.array([5.0, 10, 20, 40, 80, 150])
    a, b, c = fit_sigma_snr(snr, sigma_snr(snr, 800.0, 0.1, 60.0))
    np.testing.assert_allclose([a, b, c], [800.0, 0.1, 60.0], rtol=1e-3)


def _cv_like(rng, n=4000, excess=0.3):
    """Cross-validation-like results: formal errors that miss an excess scatter."""
    snr = np.repeat([5.0, 20.0, 80.0], n // 3 + 1)[:n]
    formal = np.column_stack([2.0 / snr, 1.0 / snr])
    true_sd = np.sqrt(formal ** 2 + [excess, 0.0])
    delta = rng.normal(size=formal.shape) * true_sd
    bins = np.searchsorted([5.0, 20.0, 80.0], snr)
    return snr, delta, formal, bins


def test_error_model_calibrates_pulls_and_round_trips():
    rng = np.random.default_rng(3)
    snr, delta, formal, bins = _cv_like(rng)
    em = ErrorModel.fit(["a", "b"], snr, delta, formal, bins, folds=3)
    raw = delta / formal
    assert np.std(raw[snr == 80, 0]) > 5                  # formal errors far too small at high S/N
    # fresh stars drawn alike: calibrated pulls have unit width in every bin
    snr2, delta2, formal2, _ = _cv_like(np.random.default_rng(4))
    cal = em.calibrate(formal2, snr2)
    for s in (5.0, 20.0, 80.0):
        width = np.std(delta2[snr2 == s] / cal[snr2 == s], axis=0)
        assert np.all(np.abs(width - 1) < 0.12), (s, width)
    back = ErrorModel.from_dict(json.loads(json.dumps(em.to_dict())))
    np.testing.assert_array_equal(back.calibrate(formal2, snr2), cal)


def test_flags_extrapolation_and_chi2(small_model):
    lm = registry.create("inferer", "lm", {})
    train = small_model.train_labels
    hot = np.array([[train[:, 0].max() + 300.0, 3.0, -0.5], [6000.0, 3.5, -0.5]])
    flux = small_model.emulator.predict(hot)
    ivar = np.full_like(flux, 1e5)
    res = add_quality(lm.infer(small_model, flux, ivar), flux, ivar, train, None)
    assert res.extra["flag_extrapolated"].tolist() == [True, False]
    assert res.errors_calibrated is None
    # with an error model, an extrapolated label's error includes its distance beyond the range
    snr = np.array([20.0, 50.0, 100.0])
    em = ErrorModel.fit(small_model.label_names, np.repeat(snr, 40),
                        np.random.default_rng(5).normal(0, [300.0, 0.3, 0.1], (120, 3)), np.ones((120, 3)),
                        np.repeat([0, 1, 2], 40))
    cal = add_quality(lm.infer(small_model, flux, ivar), flux, ivar, train, em)
    inside = em.calibrate(cal.errors, cal.extra["snr_spec"], cal.labels)
    beyond = cal.labels[0, 0] - train[:, 0].max()
    assert beyond > 100 and np.all(inside > 0) and inside[0, 0] > 100      # both terms matter: in quadrature
    np.testing.assert_allclose(cal.errors_calibrated[0], [np.hypot(inside[0, 0], beyond), *inside[0, 1:]])
    np.testing.assert_allclose(cal.errors_calibrated[1], inside[1])
    noisy = flux + np.random.default_rng(0).normal(0, 0.05, flux.shape)   # noise 16x what ivar says
    res = add_quality(lm.infer(small_model, noisy, ivar), noisy, ivar, train, None)
    assert res.extra["flag_chi2"].all()
    np.testing.assert_allclose(res.extra["snr_spec"], np.median(np.abs(noisy) * np.sqrt(1e5), axis=1))


CAL_CONFIG = """
seed = 4
labels = ["Teff", "logg", "FeH"]
[data.train]
reader = "mock"
[data.train.mock]
n_stars = 90
n_pixels = 300
continuum = false
teff = [4800.0, 6800.0]
snr = 300
seed = 1
[data.test]
reader = "mock"
[data.test.mock]
n_stars = 60
n_pixels = 300
continuum = false
teff = [4800.0, 6800.0]
snr = [30, 100]
seed = 2
[emulator]
name = "cannon"
[inferer]
name = "lm"
[calibration]
folds = 3
snr = [10.0, 30.0, 100.0]
[[analyzers]]
name = "error-model"
[output]
dir = "{out}"
"""


def test_calibration_is_stored_used_and_reported(tmp_path):
    cfg = tmp_path / "cal.toml"
    cfg.write_text(CAL_CONFIG.format(out=tmp_path / "out"))
    assert main(["run", str(cfg), "--executor", "serial"]) == 0
    out = tmp_path / "out"
    model = SlamfwModel.load(out / "model.npz")
    em = model.error_model
    assert em is not None and em.label_names == ["Teff", "logg", "FeH"] and em.snr.size == 3 and em.folds == 3
    assert np.all(np.diff(em.snr) > 0) and np.all(em.abc >= 0)
    cat = Table.read(out / "catalog.ecsv")
    assert em.neighbours == 30 and em.cv_labels.shape == (90 * 3, 3)   # the local calibration, by default
    cols = lambda suffix: np.column_stack([cat[f"{n}{suffix}"] for n in em.label_names])  # noqa: E731
    lo, hi = model.train_labels.min(0), model.train_labels.max(0)
    beyond = np.maximum(np.maximum(lo - cols(""), cols("") - hi), 0.0)     # extrapolated labels: + distance
    assert beyond.any() and not beyond.all()
    np.testing.assert_allclose(cols("_err"), np.hypot(em.calibrate(cols("_err_formal"), np.asarray(cat["snr_spec"]),
                                                                   cols("")), beyond))
    assert np.all(cat["Teff_err"] >= cat["Teff_err_formal"] * 0.5)
    saved = json.loads((out / "error_model.json").read_text())
    assert set(saved["abc"]) == {"Teff", "logg", "FeH"}
    assert (out / "error_model.png").is_file() and (out / "error_model.pdf").is_file()
    report = (out / "report.md").read_text()
    assert "sigma(SNR) = a exp(-b SNR) + c" in report and "pulls" in report
    # at most max_stars held-out stars per S/N, chosen by the seed
    small = tmp_path / "small.toml"
    small.write_text(CAL_CONFIG.format(out=tmp_path / "small") + "")
    assert main(["run", str(small), "--executor", "serial", "--set", "calibration.max_stars=30",
                 "--set", "analyzers=[]"]) == 0
    assert SlamfwModel.load(tmp_path / "small" / "model.npz").error_model.n.tolist() == [30, 30, 30]
    # the same run again gives the same error model (deterministic given the seed)
    cfg.write_text(CAL_CONFIG.format(out=tmp_path / "again"))
    assert main(["run", str(cfg), "--executor", "serial"]) == 0
    assert SlamfwModel.load(tmp_path / "again" / "model.npz").error_model.to_dict() == em.to_dict()


def test_model_error_excludes_training_noise():
    """An emulator that is exact, trained on noisy spectra: its model error is well below the
    CV residual (which is mostly the training noise), so the noise is not counted twice."""
    train = mock_set(150, seed=8, snr=50, n_pixels=80)
    emu = registry.create("emulator", "cannon", {"model_error": "cv"}).fit(train.labels, train.flux, train.ivar)
    cv_rms = np.sqrt(emu.cv_mse_) * emu.flux_scaler_.scale_
    noise = np.sqrt(emu.noise_var_)
    assert np.median(cv_rms) > 0.9 * np.median(noise)        # the CV residual holds the training noise
    assert np.median(emu.model_error_) < 0.7 * np.median(cv_rms)


def test_error_model_with_an_empty_snr_bin_stays_finite():
    """An S/N at which no inference succeeded leaves no NaN in the calibration."""
    rng = np.random.default_rng(5)
    snr, delta, formal, bins = _cv_like(rng)
    keep = bins != 1
    em = ErrorModel.fit(["a", "b"], snr[keep], delta[keep], formal[keep], bins[keep] * 2, folds=3)
    assert em.snr.size == 2 and np.all(np.isfinite(em.calibrate(formal[:5], np.full(5, 100.0))))


def test_label_distance_finds_scales_by_normalised_name():
    from slamfw import label_distance
    d = label_distance(np.array([[5100.0, 2.2, -0.4]]), np.array([[5000.0, 2.0, -0.5]]), ["T_eff", "log g", "[Fe/H]"])
    np.testing.assert_allclose(d, [3.0])


def test_an_inferer_of_plugin_api_1_0_is_called_without_ids(small_model):
    from slamfw.workflows.infer import call_infer
    lm = registry.create("inferer", "lm", {})

    class OldInferer(type(lm)):
        def infer(self, model, flux, ivar, prior=None):     # written for plugin API 1.0: no ids
            return super().infer(model, flux, ivar, prior)

    flux = small_model.emulator.predict(np.array([[6000.0, 3.5, -0.5]]))
    res = call_infer(OldInferer(), small_model, flux, np.full_like(flux, 1e4), None, np.array(["a"]))
    assert res.converged.all()


def _regional(rng, n=3000):
    """CV-like results whose excess scatter lives in one half of label space (label a > 0)."""
    snr = np.repeat([10.0, 50.0], n // 2)
    labels = rng.uniform(-1, 1, (n, 2))
    formal = np.column_stack([1.0 / snr, 1.0 / snr])
    excess = np.where(labels[:, :1] > 0, 0.2, 0.0)
    delta = rng.normal(size=(n, 2)) * np.sqrt(formal ** 2 + excess ** 2)
    return snr, labels, delta, formal, (snr > 20).astype(int)


def test_local_calibration_follows_the_excess_through_label_space():
    snr, labels, delta, formal, bins = _regional(np.random.default_rng(1))
    local = ErrorModel.fit(["a", "b"], snr, delta, formal, bins, 3, labels, neighbours=60)
    flat = ErrorModel.fit(["a", "b"], snr, delta, formal, bins, 3, labels, neighbours=0)
    snr2, labels2, delta2, formal2, _ = _regional(np.random.default_rng(2))
    hot = labels2[:, 0] > 0.1
    for em, ok in ((local, True), (flat, False)):
        pulls = delta2 / em.calibrate(formal2, snr2, labels2)
        widths = [np.std(pulls[hot & (snr2 == s), 0]) for s in (10.0, 50.0)]
        if ok:   # the local model is right on both sides of the label space
            assert all(abs(w - 1) < 0.2 for w in widths), widths
            assert abs(np.std(pulls[~hot & (labels2[:, 0] < -0.1), 0]) - 1) < 0.2
        else:    # one excess for all under-covers the region where it lives
            assert max(widths) > 1.5, widths
    back = ErrorModel.from_dict(json.loads(json.dumps(local.to_dict())))
    np.testing.assert_array_equal(back.calibrate(formal2, snr2, labels2), local.calibrate(formal2, snr2, labels2))


def test_posterior_intervals_are_widened_by_the_calibration(small_model):
    """A sampling inferer's 16-84 % interval is widened about the labels by err / err_formal."""
    from slamfw import LabelResult
    n = 4
    labels = np.tile([6000.0, 3.5, -0.5], (n, 1))
    cov = np.tile(np.diag([100.0 ** 2, 0.1 ** 2, 0.05 ** 2]), (n, 1, 1))
    res = LabelResult(labels=labels, cov=cov, converged=np.ones(n, bool), rmse=np.zeros(n), chi2=np.ones(n),
                      init=labels, label_names=["Teff", "logg", "FeH"],
                      extra={"p16": labels - [90.0, 0.1, 0.05], "p84": labels + [110.0, 0.1, 0.05]})
    flux = small_model.emulator.predict(labels)
    ivar = np.full_like(flux, 1e4)
    em = ErrorModel(["Teff", "logg", "FeH"], np.array([10.0, 100.0]), np.ones((2, 3)), np.zeros((2, 3)),
                    np.zeros((2, 3)), np.full((2, 3), 2.0), np.zeros((3, 3)), np.array([1, 1]))
    add_quality(res, flux, ivar, small_model.train_labels, em)       # factor k = 2, no excess
    np.testing.assert_allclose(res.errors_calibrated, 2 * res.errors)
    np.testing.assert_allclose(res.extra["p16_cal"], labels - 2 * np.array([90.0, 0.1, 0.05]))
    np.testing.assert_allclose(res.extra["p84_cal"], labels + 2 * np.array([110.0, 0.1, 0.05]))
    assert res.extra_units["p16_cal"] == "label"


def test_pull_factor_keeps_core_and_tails_in_bounds():
    from scipy.stats import median_abs_deviation

    from slamfw.stats.error_model import PULL_ROBUST_MIN, PULL_STD_MAX, pull_factor
    rng = np.random.default_rng(8)
    gauss = rng.normal(0, 1.3, (4000, 1))
    assert pull_factor(gauss)[0] == pytest.approx(median_abs_deviation(gauss[:, 0], scale="normal"))
    # a core of width 0.7 and 4 % of stars far off: the robust width alone leaves std(pulls / k) > 1.45
    tails = np.concatenate([rng.normal(0, 0.7, (3840, 1)), rng.normal(0, 4.5, (160, 1))])
    robust = median_abs_deviation(tails[:, 0], scale="normal")
    assert np.std(tails / robust) > 1.45
    k = pull_factor(tails)[0]
    assert k > robust
    cal = tails[:, 0] / k
    assert np.std(cal) == pytest.approx(PULL_STD_MAX)             # raised just enough
    assert median_abs_deviation(cal, scale="normal") >= PULL_ROBUST_MIN
    # a bin whose pulls are mostly equal has no core width: k comes from the spread, never 0
    flat = np.concatenate([np.zeros((30, 1)), rng.normal(0, 5.0, (20, 1))])
    assert pull_factor(flat)[0] == pytest.approx(np.std(flat))                # unit standard deviation
    # where both cannot hold, the core wins: the robust width stays at 0.8
    wild = np.concatenate([rng.normal(0, 0.7, (3600, 1)), rng.normal(0, 30.0, (400, 1))])
    cal = wild[:, 0] / pull_factor(wild)[0]
    assert median_abs_deviation(cal, scale="normal") == pytest.approx(PULL_ROBUST_MIN) and np.std(cal) > PULL_STD_MAX
