"""Bad inputs through the command line and the Python API: every user or data problem is a
clear error (exit 2) naming the file, star or key, or a rejected file with the run going on;
never an internal error, never silently wrong labels."""
import json
import shutil

import numpy as np
import pytest

from slamfw import DataError, ModelFileError, registry
from slamfw.cli import main
from slamfw.model import SlamfwModel


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


def test_every_miles_file_bad_is_an_error(miles_with_bad_files):
    d, _ = miles_with_bad_files
    for f in d.glob("MILES_res2.50_star_m00*V.fits"):
        f.unlink()
    with pytest.raises(DataError, match="none of the 3 MILES files"):
        registry.create("reader", "miles", {"path": str(d)}).read()


# ------------------------------------------------------------------ damaged model files
@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    from .test_unlike_training import CONFIG
    d = tmp_path_factory.mktemp("badmodel")
    (d / "exp.toml").write_text(CONFIG.format(out=d / "out"))
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
}


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
