"""Bad inputs through the command line and the Python API: every user or data problem is a
clear error (exit 2) naming the file, star or key, or a rejected file with the run going on;
never an internal error, never silently wrong labels."""
import json
import logging
import re
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table

import slamfw.workflows.compare as compare_mod
from slamfw import DataError, ModelFileError, SerialExecutor, api, registry
from slamfw.cli import main
from slamfw.errors import ConfigError
from slamfw.model import SlamfwModel
from slamfw.workflows import outdir as outdir_mod
from slamfw.workflows.outdir import LOCK_FILE, MARKER_FILE, OutputError

from . import test_cli, test_outdir
from .test_unlike_training import CONFIG as UNLIKE_CONFIG


def _error(capsys, args):
    capsys.readouterr()
    rc = main(args)
    err = capsys.readouterr().err
    return rc, err


# ------------------------------------------------------------------ config files
def test_binary_config_file(tmp_path, capsys):
    path = tmp_path / "exp.toml"
    path.write_bytes(bytes(range(256)) * 3)
    rc, err = _error(capsys, ["run", str(path)])
    assert rc == 2 and "exp.toml" in err and "not a text file" in err and "internal error" not in err


# ------------------------------------------------------------------ MILES: a bad file among good ones
@pytest.fixture()
def miles_with_bad_files(miles_dir, tmp_path):
    d = tmp_path / "miles"
    d.mkdir()
    shutil.copy(miles_dir / "MILES_params.db", d)
    good = sorted(miles_dir.glob("MILES_res2.50_star_m00*V.fits"))[:12]
    for f in good:
        (d / f.name).symlink_to(f)
    data = good[0].read_bytes()
    (d / "MILES_res2.50_star_m0990V.fits").write_bytes(data[: len(data) // 2])   # truncated
    (d / "MILES_res2.50_star_m0991V.fits").write_bytes(b"")                      # empty
    (d / "MILES_res2.50_star_m0992V.fits").write_text("SIMPLE = not really a FITS file\n")
    with open(d / "MILES_params.db", "a") as fh:          # the bad files have parameters, so they are read
        for sid in ("0990", "0991", "0992"):
            fh.write(f"{sid} 5000 4.0 0.0\n")
    return d, len(good)


def test_a_bad_miles_file_is_rejected_and_the_rest_read(miles_with_bad_files):
    d, n_good = miles_with_bad_files
    reader = registry.create("reader", "miles", {"path": str(d)})
    ss = reader.read()
    assert ss.n_stars == n_good and ss.medium == "air"
    rejected = {p.split("/")[-1]: why for p, why in reader.rejected_}
    assert set(rejected) == {f"MILES_res2.50_star_m099{k}V.fits" for k in (0, 1, 2)}


def test_a_bad_miles_file_is_listed_by_the_command_line(miles_with_bad_files, tmp_path, capsys):
    d, n_good = miles_with_bad_files
    out = tmp_path / "miles.ecsv"
    capsys.readouterr()
    assert main(["convert", "--reader", "miles", "--data", str(d), "-o", str(out)]) == 0
    assert f"{n_good} spectra" in capsys.readouterr().out
    rejected = Table.read(tmp_path / "miles-rejected.csv", format="ascii.csv")
    assert set(rejected["set"]) == {"convert"}
    assert sorted(Path(str(p)).name for p in rejected["file"]) == [
        f"MILES_res2.50_star_m099{k}V.fits" for k in (0, 1, 2)]


def test_every_miles_file_bad_is_an_error(miles_with_bad_files):
    d, _ = miles_with_bad_files
    for f in d.glob("MILES_res2.50_star_m00*V.fits"):
        f.unlink()
    with pytest.raises(DataError, match="none of the 3 MILES files"):
        registry.create("reader", "miles", {"path": str(d)}).read()


# ------------------------------------------------------------------ damaged model files
@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    d = tmp_path_factory.mktemp("badmodel")
    (d / "exp.toml").write_text(UNLIKE_CONFIG.format(out=d / "out"))
    assert main(["train", str(d / "exp.toml")]) == 0
    return d / "out" / "model.npz"


def _damaged(model_file, tmp_path, change):
    with np.load(model_file) as z:
        files = {k: z[k] for k in z.files}
    change(files)
    out = tmp_path / "damaged.npz"
    np.savez(out, **files)
    return out


def _emu_key(files):
    return next(k for k in files if k.startswith("emulator/") and files[k].ndim == 2)


def _meta(files, edit):
    key = next(k for k in files if k.startswith("__") and files[k].dtype.kind == "U")
    meta = json.loads(str(files[key]))
    edit(meta)
    files[key] = np.array(json.dumps(meta))


DAMAGE = {
    "wrong type": (lambda f: f.__setitem__(_emu_key(f), np.full(f[_emu_key(f)].shape, "x")),
                   "emulator state is damaged"),
    "wrong shape": (lambda f: f.__setitem__(_emu_key(f), f[_emu_key(f)][:, :-2]), "coefficients per pixel"),
    "short train_labels": (lambda f: f.__setitem__("train_labels", f["train_labels"][:-5]),
                           "rows of 'train_labels' for"),
    "unknown preprocess key": (lambda f: _meta(f, lambda m: m["preprocess"].update(wave_stepp=1.0)),
                               "preprocess.wave_stepp: unknown key"),
    "string wave": (lambda f: f.__setitem__("wave", f["wave"].astype(str)), "'wave' must be"),
    # found by a bad-input hunt: "label vector 5 is not finite", at inference, naming no file
    "NaN train_labels row": (lambda f: f["train_labels"].__setitem__(5, np.nan), "'train_labels' row 5"),
}


@pytest.fixture(scope="module")
def slam_model_file(tmp_path_factory):
    from .test_uncertainties import CAL_CONFIG
    tmp = tmp_path_factory.mktemp("slam-model")
    (tmp / "exp.toml").write_text(CAL_CONFIG.format(out=tmp / "out"))
    return api.train_to_folder(tmp / "exp.toml", ["calibration.enabled=false", "executor.name=serial",
                                                  "emulator.name=slam", "emulator.slam.C=[10.0]",
                                                  "emulator.slam.gamma=[0.1]"])


def _set_at(name, index, value):
    """A change of the emulator array ``name`` (its key ends so) at ``index`` to ``value``."""
    def change(f):
        key = next(k for k in f if k.endswith(name))
        arr = f[key].astype(float)
        arr[index] = value
        f[key] = arr
    return change


SLAM_DAMAGE = {
    # found by a review: dual_coef one training star short loaded and predicted silently
    "a coefficient column missing": (lambda f: f.__setitem__(*next((k, f[k][:, :-1]) for k in f
                                                                   if k.endswith("dual_coef"))),
                                     "one column per training star"),
    # found by a bad-input hunt: each loaded, and the stars' labels moved (gamma) or none converged
    "a NaN gamma": (_set_at("emulator/gamma", 5, np.nan), "gamma is not finite and positive at pixel 5"),
    "a negative gamma": (_set_at("emulator/gamma", 2, -0.1), "gamma is not finite and positive at pixel 2"),
    "a zero flux scale": (_set_at("flux_scale", 3, 0.0), "'flux_scale' is 0.0 at index 3"),
    "a NaN noise variance": (_set_at("noise_var", slice(None), np.nan), "'noise_var' is nan at pixel 0"),
    "an infinite coefficient": (_set_at("dual_coef", (4, 0), np.inf), "dual_coef is not finite at pixel 4"),
}


@pytest.mark.parametrize("kind", sorted(SLAM_DAMAGE))
def test_a_damaged_slam_model_is_refused_naming_the_array(slam_model_file, tmp_path, kind):
    change, words = SLAM_DAMAGE[kind]
    damaged = _damaged(slam_model_file, tmp_path, change)
    with pytest.raises(ModelFileError, match=words):
        SlamfwModel.load(damaged)


def test_a_model_file_of_another_kind_is_refused(model_file, tmp_path):
    """Found by a bad-input hunt: both were internal errors (TypeError, AttributeError)."""
    np.save(tmp_path / "x.npy", np.ones(3))
    with pytest.raises(ModelFileError, match="single numpy array"):
        SlamfwModel.load(tmp_path / "x.npy")
    listed = _damaged(model_file, tmp_path, lambda f: f.__setitem__(next(k for k in f if k.startswith("__")),
                                                                     np.array("[1, 2]")))
    with pytest.raises(ModelFileError, match="not an object .a list."):
        SlamfwModel.load(listed)


def test_a_chunk_size_below_one_and_a_mock_range_not_finite_are_refused(model_file, tmp_path, capsys):
    """Found by a bad-input hunt: --chunk-size 0 was accepted silently, and a mock reader's range
    [nan, 5000] failed with an OverflowError."""
    out = str(tmp_path / "cat.fits")
    with pytest.raises(SystemExit) as stop:                 # argparse's usage error
        main(["predict", str(model_file), "--reader", "mock", "--reader-param", "n_stars=5", "-o", out,
              "--chunk-size", "0"])
    assert stop.value.code == 2
    assert "--chunk-size: expected a whole number of at least 1, got '0'" in capsys.readouterr().err
    model = SlamfwModel.load(model_file)
    for size in (0, -5, 2.5):
        with pytest.raises(ConfigError, match=r"chunk_size \(output.chunk_size, --chunk-size\) must be a whole"):
            api.predict(model, reader="mock", reader_params={"n_stars": 5}, chunk_size=size)
    for key, value in (("teff", "[nan, 5000]"), ("logg", "[1, inf]"), ("snr", "nan")):
        assert main(["predict", str(model_file), "--reader", "mock", "--reader-param", f"{key}={value}",
                     "-o", out, "--force"]) == 2
        err = capsys.readouterr().err
        assert key in err and "finite" in err, err


def test_placeholder_training_labels_are_warned_about(tmp_path, capsys):
    """Found by a bad-input hunt: Teff = -9999 on 5 of 80 training stars trained silently, and a
    test star then got Teff = -9432 K, converged and unflagged. ``slamfw train`` now warns, naming
    the label and the stars; an ordinary training set (the demo's ranges) gives no warning."""
    from slamfw.data.spectra_io import write_spectra_table
    from slamfw.workflows.train import warn_outlying_labels
    ss = registry.create("reader", "mock", {"n_stars": 80, "n_pixels": 300, "wave_range": [4800.0, 5000.0],
                                            "continuum": False, "snr": 150, "seed": 1}).read()
    assert warn_outlying_labels(ss) == []
    ss.labels[[3, 7, 11, 20, 41], 0] = -9999.0
    write_spectra_table(ss, tmp_path / "train.npz")
    (tmp_path / "exp.toml").write_text(UNLIKE_CONFIG.format(out=tmp_path / "out"))
    capsys.readouterr()
    assert main(["train", str(tmp_path / "exp.toml"), "--set", "data.train.reader=table", "--set",
                 f"data.train.table.path={tmp_path / 'train.npz'}"]) == 0
    said = [line for line in capsys.readouterr().err.splitlines() if "training label 'Teff'" in line]
    assert len(said) == 1 and "5 star(s) lie outside" in said[0], said
    assert f"{ss.ids[3]} = -9999" in said[0] and "where.Teff" in said[0]


def test_a_survey_no_star_of_which_can_be_prepared_says_why(model_file, tmp_path, capsys):
    """Found by a bad-input hunt: spectra all of whose pixels are bad (ivar 0 here) ended in 'no
    star of the data could be prepared and inferred', without the reason (an INFO line) and without
    the list of rejected stars."""
    from slamfw.data.spectra_io import write_spectra_table
    ss = registry.create("reader", "mock", {"n_stars": 4, "n_pixels": 300, "wave_range": [4800.0, 5000.0],
                                            "continuum": False, "snr": 150, "seed": 2}).read()
    ss.ivar[:] = 0.0
    write_spectra_table(ss, tmp_path / "dark.npz")
    out = tmp_path / "cat.ecsv"
    rc, err = _error(capsys, ["predict", str(model_file), "--reader", "table", "--data", str(tmp_path / "dark.npz"),
                              "-o", str(out)])
    assert rc == 2 and "internal error" not in err
    assert ("no star of the data could be prepared: all 4 have more than preprocess.max_bad_pixels=50 bad pixels "
            "on the model's grid (a bad pixel: ivar 0 or mask False in the data") in " ".join(err.split())
    rejected = Table.read(tmp_path / "cat-rejected.csv", format="ascii.csv")
    assert sorted(rejected["file"]) == sorted(f"star {i}" for i in ss.ids) and not out.exists()


@pytest.mark.parametrize("name, clash", [("chi2", "chi2"), ("Teff_err", "<label>_err"), ("logg_true", "<label>_true")])
def test_a_label_named_as_a_catalogue_column_is_refused_before_training(tmp_path, capsys, name, clash):
    """Found by a bad-input hunt: labels named Teff_err and chi2 trained, and the catalogue's
    Teff_err and chi2 columns then held the labels' values, silently."""
    from slamfw.data.spectra_io import write_spectra_table
    ss = registry.create("reader", "mock", {"n_stars": 80, "n_pixels": 300, "wave_range": [4800.0, 5000.0],
                                            "continuum": False, "snr": 150, "seed": 1}).read()
    ss.label_names = ["Teff", "logg", name]
    write_spectra_table(ss, tmp_path / "train.npz")
    (tmp_path / "exp.toml").write_text(UNLIKE_CONFIG.format(out=tmp_path / "out").replace(
        'labels = ["Teff", "logg", "FeH"]', f'labels = ["Teff", "logg", "{name}"]'))
    rc, err = _error(capsys, ["train", str(tmp_path / "exp.toml"), "--set", "data.train.reader=table", "--set",
                              f"data.train.table.path={tmp_path / 'train.npz'}"])
    assert rc == 2 and f"the label '{name}' has the name of a catalogue column ({clash})" in " ".join(err.split())
    assert not (tmp_path / "out" / "model.npz").exists()


@pytest.mark.parametrize("sets, words", [
    (["prior.name=uniform", 'prior.uniform.bounds={"Tef": [5000, 6000]}'], "uniform prior: bounds.Tef: no such label"),
    (["prior.name=table", "prior.table.path=/nonexistent/prior.csv"], "prior.csv' does not exist"),
    (["data.test.reader=mock", "data.test.mock.n_stars=5", "inferer=null"],
     "data.test is set but no inferer is configured"),
    (["data.train.holdout=0.999"], "data.train.holdout = 0.999 holds back all 80 stars of the training set")])
def test_config_mistakes_are_found_before_the_training(tmp_path, capsys, monkeypatch, sets, words):
    """Found by a bad-input hunt: a prior naming no label, a table prior without its file, and a test
    set without an inferer were found after the training (``slamfw train`` with calibration off
    never checked the prior: every later predict failed), and the corrected run trained again; a
    holdout that holds back every star said only "training set: no spectra to prepare"."""
    from slamfw.workflows import train as train_mod
    (tmp_path / "exp.toml").write_text(UNLIKE_CONFIG.format(out=tmp_path / "out"))
    fitted = []
    monkeypatch.setattr(train_mod, "_train", lambda *a, **k: fitted.append(1) or pytest.fail("trained"))
    args = [x for s in sets for x in ("--set", s)]
    for command in (["run"], ["train"]) if "data.test" not in sets[0] else (["run"],):
        rc, err = _error(capsys, [*command, str(tmp_path / "exp.toml"), *args])
        assert rc == 2 and words in " ".join(err.split()), err
    assert not fitted


def test_settings_a_loaded_model_does_not_use_are_named(model_file, tmp_path):
    """Found by a bad-input hunt: with emulator.model set, a config's other emulator, grid and
    normaliser were ignored without a word (the model's own are used). ``slamfw run`` now warns,
    naming each setting that differs; none when the config is the one the model was trained with."""
    from slamfw.config import load_config
    from slamfw.workflows.reuse import ignored_for_a_loaded_model
    (tmp_path / "exp.toml").write_text(UNLIKE_CONFIG.format(out=tmp_path / "out"))
    model = SlamfwModel.load(model_file)
    assert ignored_for_a_loaded_model(load_config(tmp_path / "exp.toml"), model) == []
    cfg = load_config(tmp_path / "exp.toml", ["emulator.name=krr", "preprocess.wave_step=2.0",
                                              "normalizer.name=spline"])
    assert ignored_for_a_loaded_model(cfg, model) == [
        "emulator.name: the model has 'cannon', the config asks for 'krr'",
        "preprocess.wave_step: the model has 1.0, the config asks for 2.0",
        "normalizer: the model has 'none', the config asks for 'spline'"]


def test_the_api_names_arguments_of_the_wrong_kind(model_file, tmp_path):
    """Found by a bad-input hunt: each was a raw TypeError or NotADirectoryError from deep inside."""
    with pytest.raises(ModelFileError, match="a model file is given by its path, not NoneType None"):
        api.load_model(None)
    with pytest.raises(ConfigError, match="a config is a file's path, a dict or an ExperimentConfig, not int 3"):
        api.config(3)
    with pytest.raises(DataError, match="data is a SpectralSet, a path or None, not int 42"):
        api.predict(model_file, 42)
    (tmp_path / "afile").write_text("")
    with pytest.raises(ConfigError, match="checkpoint_dir .* is a file, not a folder"):
        api.predict(model_file, reader="mock", reader_params={"n_stars": 5}, checkpoint_dir=tmp_path / "afile")
    with pytest.raises(DataError, match="is a folder; the table reader reads one file"):
        api.predict(model_file, tmp_path, reader="table")
    # a second hunt: TypeErrors from pathlib, difflib or a context manager, or a string read letter by letter
    model = SlamfwModel.load(model_file)
    for call, error, words in (
            (lambda: api.predict(model, reader=3), ConfigError, "reader (a reader's name): expected str, got int 3"),
            (lambda: api.predict(model, reader="mock", reader_params="n_stars=3"), ConfigError,
             "reader_params (parameter -> value, as --reader-param): expected dict, got str"),
            (lambda: api.predict(model, reader="mock", inferer="lm"), ConfigError, "inferer (an inferer"),
            (lambda: api.predict(model, reader="mock", executor="serial"), ConfigError, "executor (an executor"),
            (lambda: api.predict_catalog(model, 5), ConfigError, "output (the catalogue's path): expected str"),
            (lambda: api.predict_catalog(model, tmp_path / "c.ecsv", inferer_params=["n_starts=1"]), ConfigError,
             "inferer_params (parameter -> value, as --inferer-param): expected dict, got list"),
            (lambda: api.config(tmp_path / "x.toml", [3]), ConfigError, "overrides (\"key=value\", as --set takes): "
             "expected a list of strings, got list [3]"),
            (lambda: api.catalog(None, None, model), DataError, "catalog(data, result, model): data: expected "
             "SpectralSet, got NoneType None")):
        with pytest.raises(error, match=re.escape(words)):
            call()
    with pytest.raises(DataError, match="predict_catalog streams a survey read from files"):
        api.predict_catalog(model, tmp_path / "c.ecsv", registry.create("reader", "mock", {"n_stars": 3}).read())
    data, result = api.predict(model, reader="mock", reader_params={"n_stars": 3}, executor=SerialExecutor())
    with pytest.raises(DataError, match="catalog: result holds 3 stars, data 2"):
        api.catalog(data.subset(np.arange(2)), result, model)
    assert len(api.catalog(data, result, model)) == 3


def test_a_full_disk_is_an_error_not_a_bug(model_file, tmp_path, monkeypatch, capsys):
    """Found by a bad-input hunt: writing into a full file system ended in 'internal error ... this
    is a bug'. A full disk (or quota) is now an error with exit status 2; other OS errors stay bugs.
    A worker killed from outside (loky's TerminatedWorkerError) is said to be so, not called a bug."""
    import errno

    import slamfw.workflows.predict as predict_mod

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(predict_mod, "write_catalog_parts", full)
    args = ["predict", str(model_file), "--reader", "mock", "--reader-param", "n_stars=5", "-o",
            str(tmp_path / "cat.fits"), "--executor", "serial"]
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "slamfw: error: No space left on device (ENOSPC): free some space" in err and "internal" not in err

    def broken(*a, **k):
        raise OSError(errno.EIO, "Input/output error")
    monkeypatch.setattr(predict_mod, "write_catalog_parts", broken)
    assert main([*args, "--force"]) == 1
    assert "internal error: OSError" in capsys.readouterr().err

    from joblib.externals.loky.process_executor import TerminatedWorkerError

    from types import SimpleNamespace

    from distributed.scheduler import KilledWorker
    # what loky raises when the out-of-memory killer takes a worker, and dask when it gives a task up (a hunt)
    for lost in (TerminatedWorkerError("A worker process managed by the executor was unexpectedly terminated."),
                 KilledWorker("run_pickled-1", SimpleNamespace(address="tcp://127.0.0.1:4000"), 3)):
        def killed(*a, **k):
            raise lost
        monkeypatch.setattr(predict_mod, "write_catalog_parts", killed)
        assert main([*args, "--force"]) == 1
        err = " ".join(capsys.readouterr().err.split())
        assert f"slamfw: error: a worker process stopped or was lost ({type(lost).__name__}" in err
        assert "out-of-memory killer" in err and "internal error" not in err


def test_an_output_where_no_folder_can_be_made_is_an_error_not_a_bug(model_file, tmp_path, capsys):
    """Found by a bad-input hunt: ``-o /proc/x.ecsv`` (a folder that refuses new folders, even to
    root) ended in 'internal error: FileNotFoundError ... this is a bug' when the checkpoint folder
    was made. Now an error naming the folder, exit status 2; likewise any place a job keeps pieces."""
    from slamfw.errors import OutputError
    from slamfw.execution.store import ChunkStore
    (tmp_path / "a-file").write_text("")
    with pytest.raises(OutputError, match="cannot create the folder .*a-file/sub.* for the finished pieces"):
        ChunkStore(tmp_path / "a-file" / "sub")
    if not Path("/proc/self").is_dir():
        return          # no /proc on this system: the store's own check above stands for it
    capsys.readouterr()
    assert main(["predict", str(model_file), "--reader", "mock", "--reader-param", "n_stars=5", "-o",
                 "/proc/slamfw-test.ecsv", "--executor", "serial"]) == 2
    err = capsys.readouterr().err
    assert "slamfw: error:" in err and "/proc" in err and "internal" not in err


def test_a_training_label_missing_on_every_star_is_named(tmp_path, capsys):
    """Found by a bad-input hunt: Teff NaN on every training star gave "training set: no spectra to
    prepare", the reason only in an INFO line."""
    from slamfw.data.spectra_io import write_spectra_table
    ss = registry.create("reader", "mock", {"n_stars": 30, "n_pixels": 300, "wave_range": [4800.0, 5000.0],
                                            "continuum": False, "seed": 1}).read()
    ss.labels[:, 0] = np.nan
    ss.labels[:4, 1] = np.nan
    write_spectra_table(ss, tmp_path / "train.npz")
    (tmp_path / "exp.toml").write_text(UNLIKE_CONFIG.format(out=tmp_path / "out"))
    capsys.readouterr()
    assert main(["train", str(tmp_path / "exp.toml"), "--set", "data.train.reader=table", "--set",
                 f"data.train.table.path={tmp_path / 'train.npz'}"]) == 2
    assert ("training set: every one of the 30 stars misses a requested label (missing: Teff on 30, logg on 4, "
            "FeH on 0)") in capsys.readouterr().err


@pytest.mark.parametrize("kind", sorted(DAMAGE))
def test_damaged_model_is_refused_on_loading(model_file, tmp_path, capsys, kind):
    change, words = DAMAGE[kind]
    path = _damaged(model_file, tmp_path, change)
    with pytest.raises((ModelFileError, DataError), match=words):
        SlamfwModel.load(path)
    rc, err = _error(capsys, ["predict", str(path), "--reader", "mock", "--reader-param", "n_stars=3",
                              "-o", str(tmp_path / "c.ecsv")])
    assert rc == 2 and "internal error" not in err and words in err
    assert not (tmp_path / "c.ecsv").exists()


# ================================================================== the same classes through the Python API
# Each class above and in test_outdir / test_checkpoints / test_unlike_training is tried on the
# command line there; here through ``slamfw.api``: the same errors (exceptions, which the command
# line turns into exit 2), the same flags, the same guarded folders. docs/failure-cases.md lists
# every case of the probe and the tests that try it.
data = test_cli.data
no_reading = test_outdir.no_reading
API_SERIAL = ["executor.name=serial"]


def _cfg(data, tmp_path, out="out"):
    return test_outdir.config(data[0], tmp_path, out=out)


def test_binary_config_file_api(tmp_path):
    path = tmp_path / "exp.toml"
    path.write_bytes(bytes(range(256)) * 3)
    for call in (api.run, api.train, api.train_to_folder, lambda c: api.compare(c, ["cannon"]), api.config):
        with pytest.raises(ConfigError, match=r"exp\.toml' is not a text file"):
            call(path)


@pytest.mark.parametrize("where", ["a file", "below a file", "not writable"])
def test_unusable_output_dir_cli_and_api(data, tmp_path, capsys, monkeypatch, no_reading, where):
    cfg = _cfg(data, tmp_path)
    (tmp_path / "afile").write_text("x")
    (tmp_path / "ro").mkdir()
    target = {"a file": tmp_path / "afile", "below a file": tmp_path / "afile" / "sub",
              "not writable": tmp_path / "ro" / "out"}[where]
    words = {"a file": "is a file", "below a file": "is below the file", "not writable": "permission denied"}[where]
    real = os.access      # as root every folder is writable: the check itself is what is tried here
    monkeypatch.setattr(outdir_mod.os, "access",
                        lambda p, m, *a, **k: Path(p) != tmp_path / "ro" and real(p, m, *a, **k))
    over = f"output.dir={target}"
    for cmd in (["run"], ["train"], ["compare", "--emulators", "cannon"]):
        rc, err = _error(capsys, [*cmd, str(cfg), "--set", over])
        assert rc == 2 and "output.dir" in err and words in err and "internal error" not in err, (cmd, err)
    for call in (api.run, api.train_to_folder, lambda c, o: api.compare(c, ["cannon"], o)):
        with pytest.raises(OutputError, match=words):
            call(cfg, [over])
    assert (tmp_path / "afile").read_text() == "x" and not any((tmp_path / "ro").iterdir())


def test_catalogue_paths_are_checked_before_the_model_is_read_api(tmp_path):
    missing = tmp_path / "no-model.npz"       # never read: the output is refused first
    with pytest.raises(ConfigError, match=r"labels\.csv.*\.fits or \.ecsv"):
        api.predict_catalog(missing, tmp_path / "labels.csv")
    theirs = tmp_path / "theirs.ecsv"
    Table({"a": [1]}).write(theirs)
    with pytest.raises(OutputError, match="not written by slamfw"):
        api.predict_catalog(missing, theirs)
    with pytest.raises(ModelFileError):       # with force, the model is the next thing checked
        api.predict_catalog(missing, theirs, force=True)


def test_model_file_outside_and_foreign_files_api(data, tmp_path, no_reading):
    cfg = _cfg(data, tmp_path)
    with pytest.raises(OutputError, match="leads outside output.dir"):
        api.run(cfg, ["output.model_file=../x.npz"])
    mine = tmp_path / "precious.npz"
    np.savez(mine, a=np.arange(3))
    with pytest.raises(OutputError, match="precious.npz.*not written by slamfw"):
        api.train_to_folder(cfg, [f"output.model_file={mine}"])
    assert np.load(mine)["a"].tolist() == [0, 1, 2] and not (tmp_path / "out").exists()


def test_force_through_the_api(data, tmp_path):
    cfg = _cfg(data, tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    Table({"a": [1, 2]}).write(out / "catalog.fits")                   # someone else's FITS table
    with pytest.raises(OutputError, match="catalog.fits.*not written by slamfw"):
        api.run(cfg, API_SERIAL)
    res = api.run(cfg, API_SERIAL, force=True)
    assert len(Table.read(out / "catalog.fits")) == res.test.n_stars and (out / MARKER_FILE).is_file()


def test_a_locked_folder_is_refused_by_every_api_function(data, tmp_path):
    cfg = _cfg(data, tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        test_outdir.write_lock(tmp_path / "out", pid=holder.pid)
        for call in (api.run, api.train_to_folder, lambda c, o: api.compare(c, ["cannon"], o)):
            with pytest.raises(OutputError, match=f"in use by another run.*pid {holder.pid}"):
                call(cfg, API_SERIAL)
        (tmp_path / "cmp" / "cannon").mkdir(parents=True)                 # compare: an emulator's folder too
        test_outdir.write_lock(tmp_path / "cmp" / "cannon", pid=holder.pid)
        with pytest.raises(OutputError, match="cannon.*in use by another run"):
            api.compare(cfg, ["cannon"], ["output.dir=" + str(tmp_path / "cmp"), *API_SERIAL])
        assert not (tmp_path / "cmp" / LOCK_FILE).exists()
    finally:
        holder.kill()
        holder.wait()


def test_api_compare_locks_and_marks_its_top_folder(data, tmp_path, monkeypatch):
    cfg = _cfg(data, tmp_path, out="cmp")
    out = tmp_path / "cmp"
    seen = []
    real = compare_mod.run_experiment

    def watch(*a, **k):
        seen.append((out / LOCK_FILE).is_file())
        return real(*a, **k)
    monkeypatch.setattr(compare_mod, "run_experiment", watch)
    res = api.compare(cfg, ["cannon"], ["compare.figures=false", *API_SERIAL])
    assert seen == [True]                                                # held while the emulators run
    assert res.output_dir == out and not (out / LOCK_FILE).exists()
    doc = json.loads((out / MARKER_FILE).read_text())
    assert {"compare.json", "compare.md", "compare_cv.ecsv", "cannon/"} <= set(doc["outputs"])


def test_spectra_unlike_the_training_set_are_flagged_through_the_api(tmp_path, caplog):
    """The silent cases of the probe, through ``api.predict``: labels far outside the training
    set, raw flux for a normalised model, spectra covering part of the grid."""
    (tmp_path / "exp.toml").write_text(UNLIKE_CONFIG.format(out=tmp_path / "out"))
    model = api.load_model(api.train_to_folder(tmp_path / "exp.toml"))
    base = dict(n_stars=30, snr=100, n_pixels=300, wave_range=[4800.0, 5000.0], continuum=False,
                teff=[5000.0, 7000.0], seed=9)
    _, same = api.predict(model, reader="mock", reader_params=base)
    assert not same.extra["flag_chi2_train"].any() and not same.extra["flag_coverage"].any()
    with caplog.at_level(logging.WARNING):
        _, hot = api.predict(model, reader="mock", reader_params={**base, "teff": [8500.0, 9500.0]})
    assert hot.extra["flag_extrapolated"].mean() > 0.5
    assert sum("do not look like the training set" in r.getMessage() for r in caplog.records) == 1, [
        (r.name, r.getMessage()[:80]) for r in caplog.records]
    caplog.clear()
    _, part = api.predict(model, reader="mock", reader_params={**base, "wave_range": [4800.0, 4965.0],
                                                                "n_pixels": 248})
    assert part.extra["flag_coverage"].all()
    raw = registry.create("reader", "mock", base).read()
    cont = 2000.0 * (1.0 + (raw.wave - 4800.0) / 400.0)
    raw.flux, raw.ivar = raw.flux * cont, raw.ivar / cont ** 2
    _, counts = api.predict(model, raw)
    assert counts.extra["flag_chi2_train"].all() and counts.extra["flag_chi2"].all()
    caplog.clear()
    with caplog.at_level(logging.WARNING):                               # predict_catalog warns once, in words
        api.predict_catalog(model, tmp_path / "hot.ecsv", reader="mock",
                            reader_params={**base, "teff": [8500.0, 9500.0]})
    assert sum("do not look like the training set" in r.getMessage() for r in caplog.records) == 1


def test_a_medium_declared_on_one_side_only_is_warned_once(tmp_path, caplog):
    (tmp_path / "exp.toml").write_text(UNLIKE_CONFIG.format(out=tmp_path / "out"))
    model = api.load_model(api.train_to_folder(tmp_path / "exp.toml"))
    model.medium = "air"                           # as if trained on MILES (air); the mock declares none
    params = dict(n_stars=12, snr=100, n_pixels=300, wave_range=[4800.0, 5000.0], continuum=False,
                  teff=[5000.0, 7000.0], seed=9)
    ss = registry.create("reader", "mock", params).read()
    assert ss.medium == ""

    def warned(call):
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            call()
        return [r.getMessage() for r in caplog.records if "no wavelength medium" in r.getMessage()]
    msgs = warned(lambda: api.predict(model, ss))
    assert len(msgs) == 1 and "training set was in air" in msgs[0] and "the spectra declare(s) no" in msgs[0]
    path = model.save(tmp_path / "air.npz")      # streamed on worker processes: still one warning
    msgs = warned(lambda: api.predict_catalog(path, tmp_path / "c.ecsv", reader="mock",
                                              reader_params={**params, "n_stars": 40}, chunk_size=10))
    assert len(msgs) == 1
    ss.medium = "air"
    assert warned(lambda: api.predict(model, ss)) == []
    model.medium, ss.medium = "", "vacuum"
    msgs = warned(lambda: api.predict(model, ss))
    assert len(msgs) == 1 and "the spectra are in vacuum" in msgs[0]


def test_a_run_interrupted_in_inference_reuses_its_model_through_the_api(data, tmp_path, monkeypatch):
    cfg = _cfg(data, tmp_path)
    out = tmp_path / "out"
    with monkeypatch.context() as m:
        test_outdir.interrupt_second_inference(m)
        with pytest.raises(KeyboardInterrupt):
            api.run(cfg, API_SERIAL)
    assert (out / "model.npz").is_file() and not (out / MARKER_FILE).exists() and not (out / LOCK_FILE).exists()
    test_outdir.no_training(monkeypatch)
    res = api.run(cfg, API_SERIAL)
    assert res.model_path == out / "model.npz" and (out / MARKER_FILE).is_file()


def test_the_failure_cases_page_names_tests_that_exist():
    """docs/failure-cases.md names the tests that try each case: each named test exists."""
    from .conftest import REPO
    text = (REPO / "docs" / "failure-cases.md").read_text()
    named = re.findall(r"`(test_\w+)::(test_\w+)", text)
    assert len(named) >= 20
    for module, name in named:
        source = (REPO / "tests" / f"{module}.py").read_text()
        assert re.search(rf"^def {name}\(", source, re.M), f"{module}::{name} named in docs/failure-cases.md"
