"""The paper's analyzers: cod (eq. 12-13), snr-degrade (Fig. 4/7), label-distance (eq. 11),
training-quality (Fig. 2) and figures (Fig. 3/4/5/7/8), on small mock spectra with a Cannon model."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from astropy import units as u
from astropy.table import Table
from slamfw_plugins.analyzers.snr_degrade import degrade
from slamfw_plugins.emulators.cannon import CannonEmulator

from slamfw import (
    AnalysisContext,
    ConfigError,
    SpectralSet,
    bias_scatter,
    cross_validate_flux,
    registry,
    robust_scatter,
)
from slamfw.model import SlamfwModel
from slamfw.testing import check_analyzer

NAMES, UNITS = ["Teff", "logg", "FeH"], ["K", "dex", "dex"]
CENTER, SCALE = np.array([5500.0, 3.0, -0.75, 0.0]), np.array([900.0, 1.2, 0.7, 1.0])
FAST = {"n_folds": 3, "golden_steps": 10, "scatter_grid": 8}     # a quicker scatter search, same fit here
WAVE = np.linspace(4000.0, 5000.0, 300)
# (centre in A, label index) of each absorption line; label 3 ("junk") moves no line
LINES = [(4102.0, 0), (4340.0, 0), (4861.0, 0), (4500.0, 1), (4550.0, 1), (4703.0, 2), (4750.0, 2), (4920.0, 2),
         (4400.0, 0), (4400.0, 2)]


def synth(labels: np.ndarray) -> np.ndarray:
    """(N, P) spectra: lines whose depths are quadratic in one label each (exact for The Cannon)."""
    z = (labels - CENTER[:labels.shape[1]]) / SCALE[:labels.shape[1]]
    flux = np.ones((labels.shape[0], WAVE.size))
    for centre, k in LINES:
        depth = 0.25 + 0.08 * z[:, k] + 0.015 * z[:, k] ** 2
        flux -= depth[:, None] * np.exp(-0.5 * ((WAVE - centre) / 5.0) ** 2)[None]
    return flux


def draw_labels(n: int, seed: int, n_labels: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    lo, hi = np.array([4200.0, 1.0, -2.0, -1.0]), np.array([6800.0, 5.0, 0.5, 1.0])
    return rng.uniform(lo, hi, size=(n, 4))[:, :n_labels]


def spectra(labels: np.ndarray, snr: np.ndarray, seed: int, prefix: str, names: list[str], units: list[str]
            ) -> SpectralSet:
    rng = np.random.default_rng(seed)
    clean = synth(labels)
    sigma = np.broadcast_to(1.0 / np.asarray(snr, float)[:, None], clean.shape)
    return SpectralSet(wave=WAVE, flux=clean + rng.normal(size=clean.shape) * sigma, ivar=1.0 / sigma ** 2,
                       ids=[f"{prefix}{i:03d}" for i in range(len(labels))], labels=labels, label_names=names,
                       label_units=units, meta={"snr": np.asarray(snr, float)})


def build(emulator, n_labels: int = 3, n_train: int = 120, n_test: int = 45, test_snr=(20.0, 50.0, 100.0)):
    names = (NAMES + ["junk"])[:n_labels]
    units = (UNITS + [""])[:n_labels]
    train = spectra(draw_labels(n_train, 1, n_labels), np.full(n_train, 400.0), 2, "train", names, units)
    emulator.fit(train.labels, train.flux, train.ivar)
    model = SlamfwModel(emulator=emulator, emulator_name="cannon", wave=WAVE, label_names=names, label_units=units,
                        train_labels=train.labels, train_ids=train.ids)
    test = spectra(draw_labels(n_test, 3, n_labels), np.resize(test_snr, n_test), 4, "test", names, units)
    return model, train, test


@pytest.fixture(scope="module")
def run():
    """A Cannon model, its training set, a test set at S/N 20/50/100, the lm inferer and its result."""
    model, train, test = build(CannonEmulator(**FAST))
    inferer = registry.create("inferer", "lm", {"n_starts": 2})
    result = inferer.infer(model, test.flux, test.weight_ivar, ids=test.ids)
    return model, train, test, inferer, result


@pytest.fixture(scope="module")
def nocv():
    """A model whose emulator has no cv_mse_/cv_md_, and its training set."""
    return build(NoCVCannon(**FAST), n_train=80, n_test=3)[:2]


def context(run, out: Path | None, **changes) -> AnalysisContext:
    model, train, test, inferer, result = run
    ctx = AnalysisContext(label_names=list(NAMES), label_units=list(UNITS), model=model, test=test, result=result,
                          train=train, output_dir=out, inferer=inferer, prior=None, seed=5)
    return dataclasses.replace(ctx, **changes)


def figure_files(out: Path, report) -> None:
    assert report.figures
    for fig in report.figures:
        assert fig.endswith(".png") and not Path(fig).is_absolute()
        assert (out / fig).stat().st_size > 5000 and (out / fig).with_suffix(".pdf").stat().st_size > 1000


class NoCVCannon(CannonEmulator):
    """The Cannon without its own cv_mse_/cv_md_: analyzers must cross-validate it themselves."""

    def fit(self, labels, flux, ivar):
        super().fit(labels, flux, ivar)
        del self.cv_mse_, self.cv_md_
        return self


@pytest.mark.parametrize("name", ["cod", "snr-degrade", "label-distance", "training-quality", "figures"])
def test_conformance(name):
    check_analyzer(registry.create("analyzer", name))


# ---------------------------------------------------------------------------------------------- cod
def test_cod_eq_12_13(tmp_path):
    model, train, _ = build(CannonEmulator(**FAST), n_labels=4, n_test=3)
    ctx = AnalysisContext(model.label_names, model.label_units, model=model, train=train, output_dir=tmp_path, seed=5)
    report = registry.create("analyzer", "cod").analyze(ctx)
    table = Table.read(tmp_path / "cod.ecsv")
    assert table.colnames == ["wave", "cod_full", "cod_Teff", "cod_logg", "cod_FeH", "cod_junk"]
    assert table["wave"].unit == u.AA
    # independent: eq. 12 from the emulator's CV MSE, eq. 13 from clones fitted without each label
    mse = model.emulator.cv_mse_
    np.testing.assert_allclose(table["cod_full"], np.clip(1 - mse, 0, 1))
    loss = np.array([np.maximum(CannonEmulator(**FAST).fit(np.delete(train.labels, k, 1), train.flux,
                                                              train.ivar).cv_mse_ - mse, 0) for k in range(4)])
    expected = np.clip(1 - mse, 0, 1) * loss / np.where(loss.sum(0) > 0, loss.sum(0), 1)
    for k, name in enumerate(model.label_names):
        np.testing.assert_allclose(table[f"cod_{name}"], expected[k], atol=1e-12)
    total = sum(np.asarray(table[f"cod_{n}"]) for n in model.label_names)
    lines = np.asarray(table["cod_full"]) > 0.5
    np.testing.assert_allclose(total[lines], table["cod_full"][lines], rtol=1e-12)
    # the flux does not depend on "junk": its COD is ~0; Balmer-like pixels depend on Teff alone
    assert np.max(table["cod_junk"]) < 0.05 and np.median(table["cod_junk"]) < 0.01
    hbeta = np.abs(WAVE - 4861.0) < 8
    assert np.all(table["cod_Teff"][hbeta] > 0.9 * table["cod_full"][hbeta])
    regions = report.tables["wavelength regions where each label has the highest COD"]
    teff = regions[regions["label"] == "Teff"]
    assert len(teff) == 3 and any(lo <= 4861 <= hi for lo, hi in zip(teff["wave_start"], teff["wave_end"]))
    assert "junk" not in regions["label"]
    assert report.numbers["cod_junk_median"] < 0.01 < report.numbers["cod_Teff_max"]
    figure_files(tmp_path, report)


def test_cod_without_training_set_or_own_cv(tmp_path, run, nocv):
    report = registry.create("analyzer", "cod").analyze(context(run, tmp_path, train=None))
    assert "COD_full only" in " ".join(report.notes)
    assert Table.read(tmp_path / "cod.ecsv").colnames == ["wave", "cod_full"]
    # an emulator without cv_mse_: k-fold CV by refitting, the same folds for every label set
    model, train = nocv
    ctx = AnalysisContext(NAMES, UNITS, model=model, train=train, output_dir=tmp_path, seed=5)
    registry.create("analyzer", "cod", {"folds": 3, "labels": ["Teff", "FeH"]}).analyze(ctx)
    table = Table.read(tmp_path / "cod.ecsv")
    mse = cross_validate_flux(NoCVCannon(**FAST), train.labels, train.flux, train.ivar, n_folds=3, seed=5)[0]
    np.testing.assert_allclose(table["cod_full"], np.clip(1 - mse, 0, 1))
    assert table.colnames == ["wave", "cod_full", "cod_Teff", "cod_FeH"]
    none = AnalysisContext(NAMES, UNITS, model=model, train=None, output_dir=tmp_path)
    assert "no COD" in registry.create("analyzer", "cod").analyze(none).notes[0]


# -------------------------------------------------------------------------------------- snr-degrade
def test_degrade_noise():
    rng = np.random.default_rng(0)
    flux, ivar = np.full((400, 50), 2.0), np.full((400, 50), 1e6)
    ivar[:, 0] = 0.0
    ivar[:, 1] = 1.0                                         # already noisier than S/N 10: left alone
    f, iv = degrade(flux, ivar, 10.0, rng)
    np.testing.assert_allclose(iv[:, 2:], 1 / 0.2 ** 2)
    assert abs(np.std(f[:, 2:] - 2.0) / np.sqrt(0.2 ** 2 - 1e-6) - 1) < 0.02
    assert np.all(iv[:, 0] == 0) and np.all(f[:, :2] == 2.0) and np.all(iv[:, 1] == 1.0)


def test_snr_degrade(tmp_path, run):
    model, _, _, inferer, _ = run
    test = spectra(draw_labels(30, 7), np.full(30, 500.0), 8, "hi", NAMES, UNITS)
    ctx = context(run, tmp_path, test=test, result=None)
    report = registry.create("analyzer", "snr-degrade", {"snr": [10.0, 40.0, 160.0]}).analyze(ctx)
    table = next(iter(report.tables.values()))
    assert table["snr"].tolist() == [10.0, 40.0, 160.0] and table["n"].min() >= 25
    np.testing.assert_allclose(table["snr_measured"], table["snr"], rtol=0.05)
    for lab in NAMES:                                        # scatter and errors grow as S/N falls (x4 here)
        s, err = np.asarray(table[f"{lab}_scatter_robust"]), np.asarray(table[f"{lab}_err"])
        assert s[0] > 1.5 * s[1] > 1.5 * 1.5 * s[2] and err[0] > 2 * err[1] > 4 * err[2], (lab, s, err)
    # independent: the S/N 40 spectra again (the analyzer's second noise stream), inferred and compared
    stream = np.random.SeedSequence(5).spawn(3)[1]
    f, iv = degrade(test.flux, test.weight_ivar, 40.0, np.random.default_rng(stream))
    res = inferer.infer(model, f, iv, ids=test.ids)
    use = res.converged & np.all(np.isfinite(res.labels), axis=1)
    bias, scatter = bias_scatter(res.labels[use], test.labels[use])
    np.testing.assert_allclose([table[f"{n}_bias"][1] for n in NAMES], bias)
    np.testing.assert_allclose([table[f"{n}_scatter"][1] for n in NAMES], scatter)
    np.testing.assert_allclose([table[f"{n}_scatter_robust"][1] for n in NAMES],
                               robust_scatter(res.labels[use], test.labels[use]))
    np.testing.assert_allclose([table[f"{n}_err_formal"][1] for n in NAMES], res.errors[use].mean(0))
    assert report.numbers["Teff_scatter_snr40"] == table["Teff_scatter"][1]
    figure_files(tmp_path, report)
    assert "No inferer" in registry.create("analyzer", "snr-degrade").analyze(context(run, None, inferer=None)).notes[0]
    few = registry.create("analyzer", "snr-degrade", {"snr": [20.0], "max_stars": 10}).analyze(context(run, None))
    assert next(iter(few.tables.values()))["n"][0] <= 10 and "10 test stars" in " ".join(few.notes)
    # stars without a known rv (fitted unshifted, flag_rv) are left out of the statistics, said in a note
    unknown = test.subset(np.arange(30))
    unknown.meta["rv_unknown"] = np.arange(30) < 12
    part = registry.create("analyzer", "snr-degrade", {"snr": [40.0]}).analyze(context(run, None, test=unknown))
    assert next(iter(part.tables.values()))["n"][0] <= 18
    assert "12 test star(s) without a known rv" in " ".join(part.notes) and "18 test stars" in " ".join(part.notes)
    unknown.meta["rv_unknown"] = np.ones(30, bool)
    none = registry.create("analyzer", "snr-degrade", {"snr": [40.0]}).analyze(context(run, None, test=unknown))
    assert not none.tables and "No test star has true labels and a known rv" in none.notes[-1]
    with pytest.raises(ConfigError):
        registry.create("analyzer", "snr-degrade", {"snr": [0.0, 10.0]})


# ----------------------------------------------------------------------------------- label-distance
def test_label_distance(tmp_path, run):
    _, _, test, _, result = run
    perfect = dataclasses.replace(result, labels=test.labels.copy(), converged=np.ones(test.n_stars, bool))
    analyzer = registry.create("analyzer", "label-distance")
    report = analyzer.analyze(context(run, tmp_path, result=perfect))
    assert report.numbers["D_median"] == report.numbers["D_p84"] == 0.0
    assert report.numbers["frac_below_threshold"] == 1.0
    # eq. 11: (100 K / 100 K)^2 + (0.4 dex / 0.2 dex)^2 + 0 = 5 for every star
    shifted = dataclasses.replace(perfect, labels=test.labels + [100.0, 0.4, 0.0])
    report = analyzer.analyze(context(run, tmp_path, result=shifted))
    table = Table.read(tmp_path / "label_distance.ecsv")
    assert table.colnames[:2] == ["id", "D"] and table["id"].tolist() == test.ids.tolist()
    np.testing.assert_allclose(table["D"], 5.0)
    assert report.numbers["D_median"] == pytest.approx(5.0) and report.numbers["frac_below_threshold"] == 0.0
    by_snr = report.tables["label distance D by S/N"]
    assert by_snr["snr_bin"].tolist() == ["all", "20", "50", "100"] and by_snr["n"].tolist() == [45, 15, 15, 15]
    # the run's labels: D from the same formula, median and percentiles over the converged stars
    report = analyzer.analyze(context(run, None))
    d = (((result.labels - test.labels) / [100.0, 0.2, 0.1]) ** 2).sum(1)[result.converged]
    assert report.numbers["D_median"] == pytest.approx(np.median(d))
    assert report.numbers["D_p16"] == pytest.approx(np.percentile(d, 16))
    # reference labels from metadata columns, and labels without a scale are left out
    meta = dict(test.meta, teff_other=test.labels[:, 0] + 200.0)
    other = dataclasses.replace(test, meta=meta)
    report = registry.create("analyzer", "label-distance", {"reference": {"Teff": "teff_other"},
                                                           "scales": {"T eff": 100.0, "logg": 0.2}}
                             ).analyze(context(run, None, test=other, result=perfect))
    assert report.numbers["D_median"] == pytest.approx(4.0)
    assert "left out of D: FeH" in " ".join(report.notes)


# --------------------------------------------------------------------------------- training-quality
def test_training_quality(tmp_path, run, nocv):
    model, train, *_ = run
    report = registry.create("analyzer", "training-quality").analyze(context(run, tmp_path))
    table = Table.read(tmp_path / "training_quality.ecsv")
    assert table.colnames == ["wave", "flux_p16", "flux_p50", "flux_p84", "cv_mse", "cv_md", "cv_md2"]
    assert table["wave"].unit == u.AA
    np.testing.assert_allclose(table["cv_mse"], model.emulator.cv_mse_)
    np.testing.assert_allclose(table["cv_md2"], model.emulator.cv_md_ ** 2)
    np.testing.assert_allclose(np.vstack([table["flux_p16"], table["flux_p50"], table["flux_p84"]]),
                               np.percentile(train.flux, [16, 50, 84], axis=0))
    assert report.numbers["cv_mse_median"] == pytest.approx(np.median(model.emulator.cv_mse_))
    assert "3-fold (emulator's own)" in report.notes[0]
    figure_files(tmp_path, report)
    # an emulator without its own CV: k-fold CV here, with the experiment's seed
    model2, train2 = nocv
    ctx = AnalysisContext(NAMES, UNITS, model=model2, train=train2, output_dir=None, seed=5)
    report = registry.create("analyzer", "training-quality", {"folds": 4}).analyze(ctx)
    mse, md = cross_validate_flux(NoCVCannon(**FAST), train2.labels, train2.flux, train2.ivar, n_folds=4, seed=5)
    assert report.numbers["cv_mse_median"] == pytest.approx(np.median(mse))
    assert report.numbers["cv_md2_mean"] == pytest.approx(np.mean(md ** 2))


# ------------------------------------------------------------------------------------------ figures
def test_figures(tmp_path, run):
    _, _, test, _, result = run
    report = registry.create("analyzer", "figures").analyze(context(run, tmp_path))
    assert report.figures == ["one_to_one.png", "scatter_snr.png", "teff_logg.png"]
    figure_files(tmp_path, report)
    use = result.converged
    bias, scatter = bias_scatter(result.labels[use], test.labels[use])
    for j, lab in enumerate(NAMES):
        assert report.numbers[f"{lab}_bias"] == pytest.approx(bias[j])
        assert report.numbers[f"{lab}_scatter"] == pytest.approx(scatter[j])
    # posterior samples: corner plots of the first corner_stars stars
    rng = np.random.default_rng(0)
    samples = result.labels[:, None, :] + rng.normal(size=(result.n, 400, 3)) * result.errors[:, None, :]
    ctx = context(run, tmp_path, result=dataclasses.replace(result, samples=samples))
    report = registry.create("analyzer", "figures", {"corner_stars": 2}).analyze(ctx)
    assert report.figures[-2:] == ["corner_0.png", "corner_1.png"]
    figure_files(tmp_path, report)
    # no Teff-log g diagram without labels called Teff and log g; no figures without an output folder
    renamed = context(run, tmp_path / "x", label_names=["a", "b", "FeH"])
    assert "teff_logg.png" not in registry.create("analyzer", "figures").analyze(renamed).figures
    assert not registry.create("analyzer", "figures").analyze(context(run, None)).figures


def test_the_precision_figure_of_no_converged_star_is_drawn(tmp_path):
    """Found by a bad-input hunt: snr-degrade with no converged degraded star failed inside
    matplotlib ("Data cannot be log-scaled"), after the whole training and inference."""
    from slamfw.reporting.figures import precision_figure, save_figure
    nan = np.full((2, 2), np.nan)
    fig = precision_figure(np.array([10.0, 40.0]), {"scatter": nan, "err_formal": nan, "bias": nan},
                           ["Teff", "logg"], ["K", "dex"])
    assert (tmp_path / save_figure(fig, tmp_path, "empty")).is_file()
