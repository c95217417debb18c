"""slamfw compare: same data for every emulator, compare.json/md, figures, CV for emulators without it."""
import json
import types

import numpy as np
import pytest
from astropy.table import Table

import slamfw
from slamfw import ConfigError, Emulator, Params, Standardizer, check_training_data, registry
from slamfw.cli import main
from slamfw.workflows.compare import compare_emulators
from slamfw.config import load_config
from slamfw.model import SlamfwModel
from slamfw.stats.crossval import cross_validate_flux
from slamfw_plugins.emulators.cannon import CannonEmulator

from . import test_cli

data = test_cli.data  # the CLI tests' mock survey (table files), reused

COMPARE = """
[compare]
emulators = ["slam", "cannon", "krr"]
[emulator.cannon]
order = 2
n_folds = 3
[emulator.krr]
gamma = [0.1, 0.3]
"""


@pytest.fixture(scope="module")
def compared(data):
    d, _ = data
    cfg = test_cli.write_config(d, name="compare.toml", out="cmp")
    cfg.write_text(cfg.read_text() + COMPARE)
    res = compare_emulators(load_config(cfg))
    return d, res


def test_every_emulator_ran_on_the_same_data(compared):
    d, res = compared
    out = d / "cmp"
    assert [s.name for s in res.summaries] == ["slam", "cannon", "krr"]
    doc = json.loads((out / "compare.json").read_text())
    assert doc["same_training_set"] is True and doc["labels"] == ["Teff", "logg", "FeH"]
    hashes = set()
    for name in ("slam", "cannon", "krr"):
        e = doc["emulators"][name]
        for key in ("median_cv_mse", "label_scatter", "label_bias", "train_time_s", "infer_time_per_spectrum_s",
                    "model_bytes"):
            assert key in e, (name, key)
        assert set(e["label_scatter"]) == {"Teff", "logg", "FeH"}
        assert e["n_test"] == 20 and e["model_bytes"] == (out / name / "model.npz").stat().st_size
        model = SlamfwModel.load(out / name / "model.npz")
        assert model.emulator_name == name
        hashes.add(model.train_hash)
        # the numbers are the emulator's own CV
        assert e["median_cv_mse"] == pytest.approx(float(np.median(model.emulator.cv_mse_)))
        cat = Table.read(out / name / "catalog.fits")
        diff = cat["Teff"] - cat["Teff_true"]
        ok = cat["converged"]
        assert e["label_scatter"]["Teff"] == pytest.approx(float(np.std(diff[ok])))
        assert e["label_bias"]["Teff"] == pytest.approx(float(np.mean(diff[ok])))
        assert set(e["label_scatter_by_snr"]) == {"50", "200"}
    assert len(hashes) == 1
    assert SlamfwModel.load(out / "cannon" / "model.npz").emulator.n_folds == 3   # [emulator.cannon] applied
    assert SlamfwModel.load(out / "slam" / "model.npz").emulator.C == [10.0]      # [emulator.slam] applied


def test_report_table_and_figures(compared):
    d, res = compared
    out = d / "cmp"
    md = (out / "compare.md").read_text()
    assert "| slam | 5-fold" not in md and "| slam | 3-fold |" in md and "| krr | leave-one-out |" in md
    assert "### S/N 50" in md and "compare_cv.png" in md
    for fig in ("compare_cv.png", "compare_labels.png", "compare_cost.png"):
        assert (out / fig).stat().st_size > 10_000
    cv = Table.read(out / "compare_cv.ecsv")
    assert len(cv) == res.wave.size and {"train_p50", "cv_mse_slam", "cv_md_krr"} <= set(cv.colnames)
    assert np.all(cv["train_p16"] <= cv["train_p84"])


def test_refit_cross_validation_equals_an_emulators_own(small_train):
    """The generic k-fold refit gives exactly the cannon's own CV (same folds, same standardisation)."""
    emu = CannonEmulator(n_folds=4, random_state=7).fit(small_train.labels, small_train.flux, small_train.ivar)
    mse, md = cross_validate_flux(CannonEmulator(n_folds=4), small_train.labels, small_train.flux,
                                  small_train.ivar, n_folds=4, seed=7)
    # equal up to the scatter search, whose bracket is set by each fit's own flux scale
    np.testing.assert_allclose(mse, emu.cv_mse_, rtol=1e-5)
    np.testing.assert_allclose(md, emu.cv_md_, rtol=1e-4, atol=1e-9)


class MeanSpectrum(Emulator):
    """A constant emulator with no cv_mse_: compare must cross-validate it itself."""

    class Params(Params):
        pass

    def fit(self, labels, flux, ivar):
        labels, flux, ivar = check_training_data(labels, flux, ivar)
        self.scaler_ = Standardizer().fit(flux, ivar > 0)
        self.n_labels_, self.n_pixels_ = labels.shape[1], flux.shape[1]
        self.model_error_ = self.scaler_.scale_
        return self

    def predict(self, labels):
        theta = self._check_labels(labels)
        return np.tile(self.scaler_.mean_, (theta.shape[0], 1))

    def to_state(self):
        return {**self.scaler_.to_state("f_")}, {}

    @classmethod
    def from_state(cls, arrays, metadata):
        obj = cls()
        obj.scaler_ = Standardizer.from_state(arrays, "f_")
        obj.n_pixels_, obj.model_error_ = obj.scaler_.mean_.size, obj.scaler_.scale_
        obj.n_labels_ = 3
        return obj


def test_emulator_without_cv_is_cross_validated_by_compare(data, capsys):
    d, _ = data
    plugin = types.SimpleNamespace(slamfw_register_emulators=slamfw.hookimpl(
        lambda register: register("mean", MeanSpectrum)))
    registry.register_plugin(plugin, name="mean-plugin")
    try:
        cfg = test_cli.write_config(d, name="cmp-mean.toml", out="cmp-mean")
        assert main(["compare", str(cfg), "--emulators", "mean,cannon,krr", "--set", "compare.cv_folds=4",
                     "--set", "compare.figures=false", "--set", "compare.refit_cv=[\"krr\"]"]) == 0
    finally:
        registry.unregister_plugin("mean-plugin")
    printed = capsys.readouterr().out
    assert "| mean | 4-fold (refit by compare) |" in printed and "| cannon | 5-fold |" in printed
    assert "| krr | 4-fold (refit by compare) |" in printed     # asked for by compare.refit_cv
    doc = json.loads((d / "cmp-mean" / "compare.json").read_text())
    # a constant model's CV MSE is about 1 in standardised units (paper §2.2.1), the cannon's far below
    assert 0.95 < doc["emulators"]["mean"]["median_cv_mse"] < 1.2
    assert doc["emulators"]["cannon"]["median_cv_mse"] < 0.9 * doc["emulators"]["mean"]["median_cv_mse"]
    assert not list((d / "cmp-mean").glob("*.png"))


def test_compare_errors(data, capsys):
    d, _ = data
    cfg = test_cli.write_config(d, name="cmp-err.toml", out="cmp-err")
    with pytest.raises(ConfigError, match="name the emulators"):
        compare_emulators(load_config(cfg))
    with pytest.raises(ConfigError, match="refit_cv: \\['slam'\\] are not among"):
        compare_emulators(load_config(cfg, ['compare.refit_cv=["slam"]']), ["krr"])
    with pytest.raises(ConfigError, match="listed more than once"):
        compare_emulators(load_config(cfg), ["krr", "krr"])
    with pytest.raises(ConfigError, match="no emulator named 'kr'.*Did you mean 'krr'"):
        compare_emulators(load_config(cfg), ["slam", "kr"])
    with pytest.raises(ConfigError, match="emulator.cannon.order: Input should be less than or equal to 3"):
        compare_emulators(load_config(cfg, ["emulator.cannon.order=7"]), ["slam", "cannon"])
    # found by a bad-input hunt: sklearn's error about n_splits, after every emulator was trained
    with pytest.raises(ConfigError, match=r"compare.cv_folds = 1000 is more than the \d+ training stars"):
        compare_emulators(load_config(cfg, ["compare.cv_folds=1000", 'compare.refit_cv=["cannon"]']),
                          ["slam", "cannon"])
    assert not (d / "cmp-err" / "slam").exists()   # nothing trained before every emulator's table was checked
    assert main(["compare", str(cfg), "--emulators", "cannon", "--set", "emulator.model=x.npz"]) == 2
    assert "emulator.model" in capsys.readouterr().err
    # the old mechanism is refused with a message that says how to convert
    assert main(["compare", str(cfg), "--emulators", "cannon", "--set", "compare.params.cannon.order=3"]) == 2
    err = capsys.readouterr().err
    assert "compare.params is gone" in err and "Move [compare.params.<name>] to [emulator.<name>]" in err


def test_compare_reads_and_prepares_the_data_once(data, monkeypatch):
    """Every emulator is fitted on one training set, read and prepared once, and tested on one
    prepared test set."""
    import slamfw.workflows.run as run_mod
    import slamfw.workflows.train as train_mod
    from slamfw_plugins.readers.table import TableReader
    d, _ = data
    reads, prepares = [], []
    real_read, real_prepare = TableReader.read, train_mod.prepare
    monkeypatch.setattr(TableReader, "read", lambda self: (reads.append(self.path), real_read(self))[1])
    monkeypatch.setattr(train_mod, "prepare", lambda *a, **k: (prepares.append(1), real_prepare(*a, **k))[1])
    tests_prepared = []
    real_for_model = run_mod.prepare_for_model
    monkeypatch.setattr(run_mod, "prepare_for_model",
                        lambda *a, **k: (tests_prepared.append(1), real_for_model(*a, **k))[1])
    cfg = test_cli.write_config(d, name="cmp-once.toml", out="cmp-once")
    res = compare_emulators(load_config(cfg, ["executor.name=serial", "compare.figures=false"]), ["cannon", "krr"])
    assert [s.name for s in res.summaries] == ["cannon", "krr"]
    assert len(prepares) == 1 and len(tests_prepared) == 1
    assert len(reads) == 2          # the training side once, the test side once (the held-back stars)
