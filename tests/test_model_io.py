import json
import zipfile

import numpy as np
import pytest

from slamfw import ModelFileError, SlamfwError
from slamfw.model import FORMAT_VERSION, SlamfwModel


@pytest.fixture()
def model(small_slam, small_train):
    return SlamfwModel(emulator=small_slam, emulator_name="slam", wave=small_train.wave,
                       label_names=["Teff", "logg", "FeH"], label_units=["K", "dex", "dex"],
                       train_labels=small_train.labels, train_ids=small_train.ids,
                       components={"reader": {"name": "mock", "params": {"n_stars": 120}},
                                   "normalizer": {"name": "none", "params": {}},
                                   "inferer": {"name": "lm", "params": {}}},
                       preprocess={"max_bad_pixels": 50}, train_hash=small_train.fingerprint())


def test_round_trip_identical_predictions(model, tmp_path):
    path = model.save(tmp_path / "m.npz")
    back = SlamfwModel.load(path)
    theta = model.train_labels[:5]
    np.testing.assert_array_equal(back.emulator.predict(theta), model.emulator.predict(theta))
    np.testing.assert_array_equal(back.emulator.jacobian(theta), model.emulator.jacobian(theta))
    np.testing.assert_array_equal(back.wave, model.wave)
    assert back.label_names == model.label_names and back.train_hash == model.train_hash
    assert back.components["reader"]["name"] == "mock"
    assert back.emulator.get_params() == model.emulator.get_params()


def test_file_is_plain_arrays_and_json(model, tmp_path):
    path = model.save(tmp_path / "m.npz")
    with np.load(path, allow_pickle=False) as npz:  # would raise if anything needed unpickling
        meta = json.loads(str(npz["__metadata__"]))
        assert all(npz[k].dtype != object for k in npz.files)
    assert meta["format_version"] == FORMAT_VERSION and meta["format"] == "slamfw-model"
    for key in ("slamfw_version", "label_names", "wave_range", "train_hash", "emulator", "components", "preprocess"):
        assert key in meta
    assert meta["emulator"]["name"] == "slam" and meta["emulator"]["params"]["epsilon"] == 0.05


def _rewrite(path, out, mutate):
    with np.load(path, allow_pickle=False) as npz:
        files = {k: npz[k] for k in npz.files}
    mutate(files)
    np.savez(out, **files)
    return out


def test_other_format_version_is_a_clear_error(model, tmp_path):
    path = model.save(tmp_path / "m.npz")

    def bump(files):
        meta = json.loads(str(files["__metadata__"]))
        meta["format_version"] = 99
        files["__metadata__"] = np.array(json.dumps(meta))
    bad = _rewrite(path, tmp_path / "v99.npz", bump)
    with pytest.raises(ModelFileError, match="format version 99"):
        SlamfwModel.load(bad)


def test_damaged_files(model, tmp_path):
    path = model.save(tmp_path / "m.npz")
    data = path.read_bytes()
    (tmp_path / "trunc.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="not a readable slamfw model"):
        SlamfwModel.load(tmp_path / "trunc.npz")
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(ModelFileError):
        SlamfwModel.load(tmp_path / "text.npz")
    with pytest.raises(ModelFileError, match="does not exist"):
        SlamfwModel.load(tmp_path / "nope.npz")
    np.savez(tmp_path / "other.npz", a=np.ones(3))
    with pytest.raises(ModelFileError, match="not a slamfw model"):
        SlamfwModel.load(tmp_path / "other.npz")
    missing = _rewrite(path, tmp_path / "missing.npz", lambda f: f.pop("emulator/dual_coef"))
    with pytest.raises(ModelFileError, match="damaged or incomplete"):
        SlamfwModel.load(missing)


def test_object_arrays_are_refused(tmp_path):
    np.savez(tmp_path / "pickled.npz", __metadata__=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ModelFileError):
        SlamfwModel.load(tmp_path / "pickled.npz")
    assert zipfile.is_zipfile(tmp_path / "pickled.npz")


def _rewrite_metadata(path, change):
    with np.load(path, allow_pickle=False) as npz:
        files = {k: npz[k] for k in npz.files}
    meta = json.loads(str(files["__metadata__"]))
    change(meta)
    files["__metadata__"] = np.array(json.dumps(meta))
    np.savez(path, **files)


def test_models_with_retired_execution_settings_still_load(model, tmp_path):
    """Earlier versions stored execution settings with the components (n_jobs, progress,
    stars_per_task): they are dropped on loading, for every version."""
    path = model.save(tmp_path / "old.npz")

    def with_settings(meta):
        meta["emulator"]["params"].update(n_jobs=-1, progress=True)
        meta["components"]["inferer"]["params"].update(n_jobs=-1, stars_per_task=50, progress=True)
        meta["components"]["reader"]["params"].update(n_jobs=4)

    for version in ("0.1.0", "0.2.0"):
        _rewrite_metadata(path, lambda meta: meta.update(slamfw_version=version))
        _rewrite_metadata(path, with_settings)
        back = SlamfwModel.load(path)
        assert "n_jobs" not in back.emulator.get_params()
        assert back.components["inferer"]["params"] == {} and "n_jobs" not in back.components["reader"]["params"]
        theta = model.train_labels[:3]
        np.testing.assert_array_equal(back.emulator.predict(theta), model.emulator.predict(theta))
    # any other unknown parameter is still an error, not silently dropped
    _rewrite_metadata(path, lambda meta: meta["emulator"]["params"].update(bogus=2))
    with pytest.raises(SlamfwError, match="bogus: unknown key"):
        SlamfwModel.load(path)


def test_component_names_come_from_the_metadata_alone(model, tmp_path):
    """What a command needs before it loads a model (the modules its workers import): the
    components' kinds and names, from the metadata, without reading the arrays or looking up a
    plugin; nothing from a file that is not a model (its load then says why)."""
    from slamfw.model import component_names
    path = model.save(tmp_path / "m.npz")
    assert component_names(path) == [("emulator", "slam"), ("reader", "mock"), ("normalizer", "none"),
                                      ("inferer", "lm")]
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    for other in ("bad.npz", "other.npz", "missing.npz"):
        assert component_names(tmp_path / other) == []


def test_predict_modules_are_the_plugin_modules_of_the_models_components(model, tmp_path):
    from slamfw import registry
    from slamfw.model import component_names
    from slamfw.workflows.infer import predict_modules
    path = model.save(tmp_path / "m.npz")

    def module(kind, name):
        return registry.get_component(kind, name).__module__
    want = ["slamfw.workflows.infer", module("emulator", "slam"), module("reader", "mock"),
            module("normalizer", "none"), module("inferer", "lm")]
    assert predict_modules(component_names(path)) == list(dict.fromkeys(want))
    with_table = predict_modules(component_names(path), reader="table")
    assert module("reader", "table") in with_table and module("reader", "mock") not in with_table
    model.components["inferer"] = {"name": "not-installed", "params": {}}
    assert predict_modules(component_names(model.save(tmp_path / "n.npz"))) == list(dict.fromkeys(want[:4]))


# ---------------------------------------------------------------- damaged files found by a bad-input hunt
# Each loaded, and then gave wrong labels or errors silently, or an internal error at inference.

@pytest.fixture(scope="module")
def emulator_files(small_slam, small_train, tmp_path_factory):
    """A slam model with a local error model, and a cannon and a krr model, saved: {name: path}."""
    from slamfw import registry
    from slamfw.stats.error_model import ErrorModel
    tmp = tmp_path_factory.mktemp("emulators")
    names, k = ["Teff", "logg", "FeH"], 40
    rng = np.random.default_rng(3)
    error_model = ErrorModel(names, np.array([10.0, 50.0]), np.ones((2, 3)), np.zeros((2, 3)), np.ones((2, 3)),
                             np.ones((2, 3)), np.ones((3, 3)), np.array([k // 2, k // 2]), folds=2, neighbours=5,
                             cv_labels=small_train.labels[:k], cv_snr=rng.uniform(10, 50, k),
                             cv_delta=rng.normal(size=(k, 3)), cv_formal=np.ones((k, 3)), inferer="lm")
    emulators = {"slam": small_slam,
                 "cannon": registry.create("emulator", "cannon", {"n_folds": 3}),
                 "krr": registry.create("emulator", "krr", {"gamma": [0.1, 1.0], "alpha": [1e-3, 1e-1]})}
    out = {}
    for name, emu in emulators.items():
        if name != "slam":
            emu.fit(small_train.labels, small_train.flux, small_train.ivar)
        model = SlamfwModel(emulator=emu, emulator_name=name, wave=small_train.wave, label_names=names,
                            label_units=["K", "dex", "dex"], train_labels=small_train.labels,
                            train_ids=small_train.ids,
                            components={"reader": {"name": "mock", "params": {"n_stars": 120}},
                                        "inferer": {"name": "lm", "params": {}}, "prior": None},
                            error_model=error_model if name == "slam" else None)
        out[name] = model.save(tmp / f"{name}.npz")
        assert SlamfwModel.load(out[name]).emulator_name == name       # undamaged, each loads
    return out


def _set(key, index, value):
    """A change of the array ``key`` at ``index`` to ``value``."""
    def change(files):
        files[key] = files[key].astype(float)
        files[key][index] = value
    return change


def _meta_change(edit):
    def change(files):
        meta = json.loads(str(files["__metadata__"]))
        edit(meta)
        files["__metadata__"] = np.array(json.dumps(meta))
    return change


def _krr_as_slam(files):
    _meta_change(lambda meta: meta["emulator"].update(name="slam"))(files)


HUNT_DAMAGE = {
    # 1. the catalogue's Teff column held log g values; "abc" was read as the labels a, b, c
    "duplicate label names": ("cannon", _meta_change(lambda m: m.update(label_names=["Teff", "Teff", "FeH"])),
                              "'label_names' in its metadata names Teff more than once"),
    "label names a string": ("cannon", _meta_change(lambda m: m.update(label_names="abc")),
                             "'label_names' in its metadata must be a list"),
    # 2. the model error (CV MSE, scatter, gamma) was not checked
    "cannon cv_mse NaN": ("cannon", _set("emulator/cv_mse", 5, np.nan),
                          "cannon: cv_mse is not finite and not negative at pixel 5"),
    "cannon cv_mse negative": ("cannon", _set("emulator/cv_mse", 7, -0.5),
                               "cannon: cv_mse is not finite and not negative at pixel 7"),
    "cannon scatter NaN": ("cannon", _set("emulator/scatter", 3, np.nan),
                           "cannon: scatter is not finite and not negative at pixel 3"),
    "krr cv_mse NaN": ("krr", _set("emulator/cv_mse", 5, np.nan),
                       "krr: cv_mse is not finite and not negative at pixel 5"),
    "krr cv_mse negative": ("krr", _set("emulator/cv_mse", 6, -1.0),
                            "krr: cv_mse is not finite and not negative at pixel 6"),
    "krr gamma NaN": ("krr", _set("emulator/gamma", 4, np.nan), "krr: gamma is not finite and positive at pixel 4"),
    "krr gamma negative": ("krr", _set("emulator/gamma", 2, -0.1), "krr: gamma is not finite and positive at pixel 2"),
    "slam cv_mse_grid NaN": ("slam", _set("emulator/cv_mse_grid", 5, np.nan),
                             "slam: cv_mse_grid is not finite and not negative at the chosen (gamma, C) at pixel 5"),
    "slam cv_mse_grid negative": ("slam", _set("emulator/cv_mse_grid", 8, -1.0),
                                  "slam: cv_mse_grid is not finite and not negative at the chosen (gamma, C) at "
                                  "pixel 8"),
    # its CV MSE was read at the grid's first point, silently (a fresh-eyes review)
    "slam gamma off the grid": ("slam", _set("emulator/gamma", 3, 0.123),
                                "slam: gamma at pixel 3 (0.123) is not a point of the grid"),
    # flag_chi2_train compares with p99: NaN never flagged a star, a negative one flagged every star
    "train_chi2 NaN": ("cannon", _meta_change(lambda m: m.update(train_chi2={"p99": float("nan"), "median": 1.0})),
                       "train_chi2 (the training stars' reduced chi^2, whose p99"),
    "train_chi2 negative": ("cannon", _meta_change(lambda m: m.update(train_chi2={"p99": -1.0, "median": 1.0})),
                            "must be finite and not negative, p99 positive; got {'p99': -1.0}"),
    # a format version 1.0 or true passed for 1
    "format version true": ("cannon", _meta_change(lambda m: m.update(format_version=True)),
                            "has model format version True"),
    # 3. the error model: an internal broadcast error at predict, or silently changed errors
    "error model cv.delta truncated": ("slam", _meta_change(lambda m: m["error_model"]["cv"].update(
        delta=m["error_model"]["cv"]["delta"][:3])),
        "'error_model.cv.delta' is of shape (3, 3), expected shape (40, 3)"),
    "error model factor negative": ("slam", _meta_change(lambda m: m["error_model"]["factor"][1].__setitem__(2, -1.0)),
                                    "'error_model.factor' is -1.0 at S/N bin 1, label 'FeH'"),
    "error model neighbours negative": ("slam", _meta_change(lambda m: m["error_model"].update(neighbours=-4)),
                                        "'error_model.neighbours' must be a whole number of at least 0, got -4"),
    # 4. components of the wrong JSON type: AttributeError, outside the loader's try block
    "components a list": ("cannon", _meta_change(lambda m: m.update(components=[1])),
                          "'components' in its metadata must be an object"),
    "inferer a string": ("cannon", _meta_change(lambda m: m["components"].update(inferer="lm")),
                         "'components.inferer' in its metadata must be an object"),
    "reader a number": ("cannon", _meta_change(lambda m: m["components"].update(reader=5)),
                        "'components.reader' in its metadata must be an object"),
    # 6. then the survey was blamed
    "infinite wavelength": ("cannon", _set("wave", -1, np.inf), "'wave' (the model's wavelength grid) is inf at pixel"),
    # 7. "SlamEmulator.alpha: unknown key", naming no file
    "krr parameters in a slam model": ("krr", _krr_as_slam, "parameters it records for its 'slam' emulator are "
                                                            "refused"),
}


@pytest.mark.parametrize("kind", sorted(HUNT_DAMAGE))
def test_damaged_model_files_found_by_a_hunt_are_refused_naming_file_and_key(emulator_files, tmp_path, kind):
    emulator, change, words = HUNT_DAMAGE[kind]
    damaged = _rewrite(emulator_files[emulator], tmp_path / "damaged.npz", change)
    with pytest.raises(ModelFileError) as err:
        SlamfwModel.load(damaged)
    assert words in str(err.value) and "damaged.npz" in str(err.value), str(err.value)


def test_a_train_chi2_of_nan_as_training_writes_it_is_no_reference(emulator_files, tmp_path):
    """Training writes median and p99 NaN when no training star has a finite chi^2; such a model
    loads, with no reference for flag_chi2_train (a fresh-eyes review: the check refused it)."""
    nan = _meta_change(lambda m: m.update(train_chi2={"median": float("nan"), "p99": float("nan")}))
    assert SlamfwModel.load(_rewrite(emulator_files["cannon"], tmp_path / "nan.npz", nan)).train_chi2 is None


def test_a_file_that_is_not_an_npz_archive_is_named_so_not_a_pickle(tmp_path):
    """Found by a bad-input hunt: a text file given as a model got numpy's "This file contains
    pickled (object) data ... allow_pickle=", the wrong diagnosis, inviting pickle."""
    (tmp_path / "notmodel.npz").write_text("hello\n")
    (tmp_path / "empty.npz").write_bytes(b"")
    for name, words in (("notmodel.npz", "is not a slamfw model file (not an npz archive)"),
                        ("empty.npz", "is empty, not a slamfw model file")):
        with pytest.raises(ModelFileError) as err:
            SlamfwModel.load(tmp_path / name)
        assert words in str(err.value) and name in str(err.value) and "pickle" not in str(err.value), str(err.value)
    np.savez(tmp_path / "objects.npz", __metadata__=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ModelFileError, match="its array '__metadata__' holds pickled Python objects") as err:
        SlamfwModel.load(tmp_path / "objects.npz")
    assert "allow_pickle" not in str(err.value)
