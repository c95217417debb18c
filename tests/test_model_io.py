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
