"""Flags, not silence: spectra unlike the training set are flagged, and a predict of mostly such
spectra warns once, in words."""
import numpy as np
import pytest
from astropy.table import Table

from slamfw import registry
from slamfw.cli import main
from slamfw.data.spectra_io import write_spectra_table
from slamfw.model import SlamfwModel

CONFIG = """
seed = 3
labels = ["Teff", "logg", "FeH"]

[data.train]
reader = "mock"

[data.train.mock]
n_stars = 80
snr = 150
n_pixels = 300
wave_range = [4800.0, 5000.0]
continuum = false
teff = [5000.0, 7000.0]
seed = 1

[preprocess]
wave_min = 4810.0
wave_max = 4990.0
wave_step = 1.0

[normalizer]
name = "none"

[emulator]
name = "cannon"

[inferer]
name = "lm"

[calibration]
enabled = false

[output]
dir = "{out}"
"""


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    d = tmp_path_factory.mktemp("unlike")
    cfg = d / "exp.toml"
    cfg.write_text(CONFIG.format(out=d / "out"))
    assert main(["train", str(cfg)]) == 0
    return d / "out" / "model.npz"


def _predict(model_path, tmp_path, capsys, name, **params):
    base = dict(n_stars=30, snr=100, n_pixels=300, wave_range="[4800.0,5000.0]", continuum="false",
                teff="[5000.0,7000.0]", seed=9)
    base.update(params)
    args = ["predict", str(model_path), "--reader", "mock", "-o", str(tmp_path / f"{name}.ecsv")]
    for k, v in base.items():
        args += ["--reader-param", f"{k}={v}"]
    capsys.readouterr()
    assert main(args) == 0
    err = capsys.readouterr().err            # the CLI logs to stderr
    warned = [line for line in err.splitlines() if "do not look like the training set" in line]
    return Table.read(tmp_path / f"{name}.ecsv"), warned


def test_model_knows_its_training_chi2(model_path):
    ref = SlamfwModel.load(model_path).train_chi2
    assert 0 < ref["median"] <= ref["p99"] < 10


def test_like_the_training_set_is_not_flagged(model_path, tmp_path, capsys):
    t, warned = _predict(model_path, tmp_path, capsys, "same")
    assert not warned
    assert t["flag_chi2_train"].sum() == 0 and t["flag_coverage"].sum() == 0
    assert np.all(t["grid_coverage"] == 1.0)


def test_raw_flux_for_a_normalised_model_is_flagged_and_warned(model_path, tmp_path, capsys):
    """Un-normalised spectra (counts: a sloped continuum thousands of times the normalised level)
    given to a model trained on normalised ones."""
    ss = registry.create("reader", "mock", dict(n_stars=30, snr=100, n_pixels=300, wave_range=[4800.0, 5000.0],
                                                continuum=False, teff=[5000.0, 7000.0], seed=9)).read()
    cont = 2000.0 * (1.0 + (ss.wave - 4800.0) / 400.0)
    ss.flux, ss.ivar = ss.flux * cont, ss.ivar / cont ** 2
    write_spectra_table(ss, tmp_path / "raw.fits")
    capsys.readouterr()
    assert main(["predict", str(model_path), "--reader", "table", "--data", str(tmp_path / "raw.fits"),
                 "-o", str(tmp_path / "raw.ecsv")]) == 0
    warned = [line for line in capsys.readouterr().err.splitlines() if "do not look like the training set" in line]
    t = Table.read(tmp_path / "raw.ecsv")
    assert len(warned) == 1                                 # once, in words
    assert t["flag_chi2_train"].all() and t["flag_chi2"].all()


def test_partial_coverage_is_flagged(model_path, tmp_path, capsys):
    # 4800-4965 A of the model's 4810-4990 A: 25 of 181 pixels missing, fewer than max_bad_pixels
    t, warned = _predict(model_path, tmp_path, capsys, "part", wave_range="[4800.0,4965.0]", n_pixels=248)
    np.testing.assert_allclose(t["grid_coverage"], 156 / 181)
    assert t["flag_coverage"].all()
    assert len(warned) == 1


def test_labels_outside_the_training_range_are_flagged(model_path, tmp_path, capsys):
    t, warned = _predict(model_path, tmp_path, capsys, "hot", teff="[8500.0,9500.0]")
    assert t["flag_extrapolated"].mean() > 0.5
    assert len(warned) == 1


RV_CONFIG = """
seed = 3
labels = ["Teff", "logg", "FeH"]

[data.train]
reader = "table"

[data.train.table]
path = "{train}"

[data.test]
reader = "table"

[data.test.table]
path = "{test}"

""" + CONFIG[CONFIG.index("[preprocess]"):]      # the model of CONFIG, from table files


def _shifted_mock(path, n, seed, unknown):
    """A table of ``n`` mock spectra Doppler-shifted by rv ~ N(0, 150 km/s), whose stars ``unknown``
    have a NaN rv."""
    ss = registry.create("reader", "mock", dict(n_stars=n, snr=150, n_pixels=400, wave_range=[4800.0, 5000.0],
                                                continuum=False, teff=[5000.0, 7000.0], seed=seed,
                                                rv_sigma=150.0)).read()
    ss.meta["rv"] = np.where(np.isin(np.arange(n), unknown), np.nan, ss.meta["rv"])
    write_spectra_table(ss, path)
    return ss


def test_unknown_rv_is_flagged_and_left_out_of_training(tmp_path, capsys):
    """A star whose ``rv`` is NaN (a failed LAMOST redshift) is fitted unshifted: it gets ``flag_rv``
    in the catalogue of ``run`` and of ``predict``, and no other star does; training leaves such
    stars out, naming them; when no training star has an rv, an error names
    ``preprocess.rv_correct``, and with that off every star trains (none flagged)."""
    train = _shifted_mock(tmp_path / "train.fits", 80, 1, [4, 11])
    test = _shifted_mock(tmp_path / "test.fits", 30, 9, [7, 9, 25])     # rv 283-356 km/s
    cfg = tmp_path / "rv.toml"
    cfg.write_text(RV_CONFIG.format(train=tmp_path / "train.fits", test=tmp_path / "test.fits", out=tmp_path / "out"))
    capsys.readouterr()
    assert main(["run", str(cfg), "--executor", "serial"]) == 0
    err = capsys.readouterr().err
    assert "training set: leaving out 2 star(s) whose rv is not finite (mock04, mock11)" in err
    model = SlamfwModel.load(tmp_path / "out" / "model.npz")
    assert len(model.train_ids) == 78 and not {"mock04", "mock11"} & set(model.train_ids.tolist())
    flagged = [7, 9, 25]
    run_cat = Table.read(tmp_path / "out" / "catalog.ecsv")
    assert run_cat.colnames.index("flag_rv") == run_cat.colnames.index("flag_coverage") + 1
    np.testing.assert_array_equal(run_cat["flag_rv"], np.isin(np.arange(30), flagged))
    # the flag is earned: unshifted, the flagged stars' spectra are fitted far worse than the others
    teff_off = np.abs(run_cat["Teff"] - test.labels[:, 0])
    assert np.median(teff_off[flagged]) > 5 * np.median(np.delete(teff_off, flagged))
    # predict (streamed in chunks, on workers) flags the same stars
    assert main(["predict", str(tmp_path / "out" / "model.npz"), "--reader", "table", "--data",
                 str(tmp_path / "test.fits"), "--chunk-size", "7", "--workers", "2",
                 "-o", str(tmp_path / "pred.ecsv")]) == 0
    np.testing.assert_array_equal(Table.read(tmp_path / "pred.ecsv")["flag_rv"], run_cat["flag_rv"])
    # no training star with an rv: an error naming the key; with rv_correct off, all 80 train
    train.meta["rv"] = np.full(80, np.nan)
    write_spectra_table(train, tmp_path / "train.fits")
    capsys.readouterr()
    assert main(["train", str(cfg), "--set", f"output.dir={tmp_path / 'none'}"]) == 2
    assert "none of the 80 stars has a finite rv" in capsys.readouterr().err
    off = ["--set", "preprocess.rv_correct=false"]
    assert main(["run", str(cfg), *off, "--set", f"output.dir={tmp_path / 'off'}", "--executor", "serial"]) == 0
    assert len(SlamfwModel.load(tmp_path / "off" / "model.npz").train_ids) == 80
    assert not Table.read(tmp_path / "off" / "catalog.ecsv")["flag_rv"].any()


def test_unknown_rv_training_stars_are_counted_after_the_holdout(tmp_path, capsys):
    """The warning names only the stars training leaves out (not the held-out ones, which go to the
    test set); when every star left for training lacks an rv, the error names
    ``preprocess.rv_correct`` even though held-out stars have one."""
    from slamfw.workflows.train import holdout_mask
    train = _shifted_mock(tmp_path / "train.fits", 80, 1, list(range(10)))
    held = holdout_mask(train.ids, 0.5, 3)
    assert 0 < held[:10].sum() < 10
    cfg = tmp_path / "rv.toml"
    cfg.write_text(RV_CONFIG.format(train=tmp_path / "train.fits", test=tmp_path / "train.fits", out=tmp_path / "a"))
    capsys.readouterr()
    assert main(["train", str(cfg), "--set", "data.train.holdout=0.5"]) == 0
    left_out = train.ids[:10][~held[:10]]
    assert (f"leaving out {left_out.size} star(s) whose rv is not finite ({', '.join(left_out)}):"
            in capsys.readouterr().err)
    train.meta["rv"] = np.where(held, train.meta["rv"], np.nan)
    write_spectra_table(train, tmp_path / "train.fits")
    assert main(["train", str(cfg), "--set", "data.train.holdout=0.5", "--set", f"output.dir={tmp_path / 'b'}"]) == 2
    assert f"none of the {(~held).sum()} stars has a finite rv" in capsys.readouterr().err


def test_a_catalogue_part_without_a_flag_is_redone():
    """A part (or chunk) saved before ``flag_rv`` existed is not reused with a column of False: the
    check on loading asks for every flag."""
    from slamfw.data.results import LabelResult
    from slamfw.stats.quality import FLAGS
    from slamfw.workflows.infer import result_problem
    n = 4
    res = LabelResult(labels=np.ones((n, 2)), cov=np.ones((n, 2, 2)), converged=np.ones(n, bool), rmse=np.ones(n),
                      chi2=np.ones(n), init=np.ones((n, 2)), label_names=["a", "b"],
                      extra={flag: np.zeros(n, bool) for flag in FLAGS})
    arrays = res.to_arrays()
    assert result_problem(arrays, n, 2) is None
    del arrays["extra/flag_rv"]
    assert result_problem(arrays, n, 2) == "no array 'extra/flag_rv'"
