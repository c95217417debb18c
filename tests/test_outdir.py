"""Output directories: a finished model is reused, one run at a time (lock), a completion marker
written last, no mix of runs left behind, and every output path checked before any work."""
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import yaml
from astropy.table import Table

import slamfw.workflows.reuse as reuse_mod
import slamfw.workflows.run as run_mod
from slamfw import api
from slamfw.cli import commands, main
from slamfw.errors import ConfigError, DataError, ModelFileError
from slamfw.model import SlamfwModel
from slamfw.workflows.outdir import (
    LOCK_FILE, MARKER_FILE, OutputDir, OutputError, forcing, is_slamfw_catalog, is_slamfw_model, is_slamfw_output, plan_outputs,
)

from . import test_cli
from .test_cli import run_error, save_npz

data = test_cli.data  # the CLI tests' mock survey (table files), reused

SERIAL = ["--executor", "serial"]


def config(d, tmp_path, name="exp.toml", out="out"):
    """The CLI tests' small experiment (slam, 60 training stars x 100 pixels, no calibration) into tmp_path/out."""
    return test_cli.write_config(d, name=name, out=str(tmp_path / out))


def no_training(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("the run trained although a finished model was there")
    monkeypatch.setattr(run_mod, "train", refuse)


def identity(path):
    st = path.stat()
    return st.st_ino, st.st_mtime_ns, st.st_size


def marker(out):
    return json.loads((out / MARKER_FILE).read_text())


def stale_dirs(out):
    return sorted(p for p in out.iterdir() if p.name.startswith(".stale-"))


# ---------------------------------------------------------------- 1. reusing a finished model

def test_second_run_reuses_the_model_and_a_changed_parameter_retrains(data, tmp_path, monkeypatch, capsys):
    d, _ = data
    cfg = config(d, tmp_path)
    out = tmp_path / "out"
    assert main(["run", str(cfg), *SERIAL]) == 0
    model = out / "model.npz"
    before = identity(model)
    first = Table.read(out / "catalog.ecsv")
    rec = SlamfwModel.load(model).components["training"]
    assert rec["seed"] == 4 and rec["clean"] is None and rec["calibration"] is None and len(rec["prepared_hash"]) == 64

    capsys.readouterr()
    with monkeypatch.context() as m:
        no_training(m)
        assert main(["run", str(cfg), *SERIAL]) == 0
    assert identity(model) == before                          # not rewritten
    log = capsys.readouterr().err                             # the log (main logs to stderr)
    assert "reusing the model" in log and "not training" in log
    assert "model: reused from `model.npz`" in (out / "report.md").read_text()
    np.testing.assert_allclose(Table.read(out / "catalog.ecsv")["Teff"], first["Teff"], rtol=1e-10)
    assert "model.npz" in marker(out)["outputs"]                # the reused model belongs to this run

    with monkeypatch.context() as m:                             # the Python API reuses it too
        no_training(m)
        res = api.run(cfg, ["executor.name=serial"])
    assert res.model_reused and res.timing["train_time_s"] is None and res.train is not None

    assert main(["run", str(cfg), *SERIAL, "--set", "emulator.slam.C=[100.0]"]) == 0
    log = capsys.readouterr().err
    assert "training a new model" in log and "emulator.slam.C: the model has [10.0], the config asks for [100.0]" in log
    assert identity(model) != before and SlamfwModel.load(model).emulator.C == [100.0]


def test_a_model_written_by_train_is_reused_by_run(data, tmp_path, monkeypatch):
    d, _ = data
    cfg = config(d, tmp_path)
    assert main(["train", str(cfg), *SERIAL]) == 0
    before = identity(tmp_path / "out" / "model.npz")
    no_training(monkeypatch)
    assert main(["run", str(cfg), *SERIAL]) == 0
    assert identity(tmp_path / "out" / "model.npz") == before
    assert len(Table.read(tmp_path / "out" / "catalog.fits")) == 20


def interrupt_second_inference(m) -> None:
    """Within the monkeypatch context ``m``: ``lm``'s second call raises KeyboardInterrupt (Ctrl-C
    during inference, after the model was saved)."""
    from slamfw_plugins.inferers.lm import LMInferer
    real, calls = LMInferer.infer, []

    def interrupted(self, *a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, *a, **k)
    m.setattr(LMInferer, "infer", interrupted)


def test_a_run_killed_during_inference_reuses_its_model(data, tmp_path, monkeypatch):
    d, _ = data
    cfg = config(d, tmp_path)
    out = tmp_path / "out"
    with monkeypatch.context() as m:
        interrupt_second_inference(m)
        assert main(["run", str(cfg), *SERIAL]) == 130
    assert (out / "model.npz").is_file() and not (out / MARKER_FILE).exists() and not (out / LOCK_FILE).exists()
    no_training(monkeypatch)
    assert main(["run", str(cfg), *SERIAL]) == 0
    assert len(Table.read(out / "catalog.ecsv")) == 20 and (out / MARKER_FILE).is_file()


KILLED_IN_INFERENCE = """
import os, signal, sys
from slamfw_plugins.inferers.lm import LMInferer
from slamfw.cli import main
orig, calls = LMInferer.infer, []
def infer(self, *a, **k):
    calls.append(1)
    if len(calls) == 2:
        os.kill(os.getpid(), signal.SIGKILL)     # kill -9 in the middle of inference
    return orig(self, *a, **k)
LMInferer.infer = infer
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_a_run_killed_hard_during_inference_reuses_its_model_and_takes_over_its_lock(data, tmp_path, monkeypatch,
                                                                                      capsys):
    d, _ = data
    cfg = config(d, tmp_path)
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-c", KILLED_IN_INFERENCE, "run", str(cfg), *SERIAL], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == -9, r.stderr
    assert (out / "model.npz").is_file() and (out / LOCK_FILE).is_file() and not (out / MARKER_FILE).exists()
    before = identity(out / "model.npz")
    no_training(monkeypatch)
    assert main(["run", str(cfg), *SERIAL]) == 0
    log = capsys.readouterr().err
    assert "taking over the stale lock" in log and "reusing the model" in log
    assert identity(out / "model.npz") == before and (out / MARKER_FILE).is_file() and not (out / LOCK_FILE).exists()


def test_what_makes_a_model_differ(data, tmp_path):
    """Every setting the model records is compared; the reasons name the keys."""
    d, ss = data
    cfg = config(d, tmp_path)
    assert main(["train", str(cfg), *SERIAL]) == 0
    model = SlamfwModel.load(tmp_path / "out" / "model.npz")

    def why(*sets):
        c = api.config(cfg, list(sets))
        return "; ".join(reuse_mod._reuse_differences(c, model, run_mod.prepare_training(c)))

    assert why() == ""
    assert "calibration: the model has None" in why("calibration.enabled=true")
    assert "inferer.lm.max_nfev: the model has 200, the config asks for 7" in why("inferer.lm.max_nfev=7")
    assert "seed: the model has 4, the config asks for 5" in why("seed=5")
    assert "preprocess.max_bad_pixels" in why("preprocess.max_bad_pixels=6")
    assert "data.train.clean: the model has None" in why("data.train.clean.folds=4")
    assert "prior: the model has nothing, the config asks for 'uniform'" in why("prior.name=uniform")
    labels = ss.labels.copy()
    labels[0, 0] += 1.0
    save_npz(d / "changed.npz", ss, Teff=labels[:, 0])
    assert "the training data differ" in why(f"data.train.table.path={d / 'changed.npz'}")


def test_a_model_saved_from_the_python_api_is_reused_on_what_it_records(data, tmp_path, monkeypatch):
    """No ``components["training"]`` record (an earlier slamfw, or ``api.train(...).model.save``):
    compared on the training-set hash and the components it records."""
    d, _ = data
    cfg = config(d, tmp_path)
    tr = api.train(cfg, ["executor.name=serial"])
    assert "training" not in tr.model.components
    tr.model.save(tmp_path / "out" / "model.npz")
    with monkeypatch.context() as m:
        no_training(m)
        assert main(["run", str(cfg), *SERIAL]) == 0
    c = api.config(cfg, ["data.train.clean.folds=4"])
    assert reuse_mod._reuse_differences(c, tr.model, run_mod.prepare_training(c)) == [
        "data.train.clean: the model does not record its training-set cleaning"]


# ---------------------------------------------------------------- 2. one run at a time

def write_lock(out, **holder):
    out.mkdir(parents=True, exist_ok=True)
    info = {"host": socket.gethostname(), "pid": 1, "command": "run", "argv": ["slamfw", "run", "other.toml"],
            "started": "2024-01-01T00:00:00+00:00", **holder}
    (out / LOCK_FILE).write_text(json.dumps(info))


def test_a_locked_folder_is_refused_naming_the_holder(data, tmp_path, capsys):
    d, _ = data
    cfg = config(d, tmp_path)
    out = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        write_lock(out, pid=holder.pid)
        err = run_error(["run", str(cfg), *SERIAL], capsys)
        assert "is in use by another run" in err and f"pid {holder.pid}" in err and "slamfw run other.toml" in err
        assert LOCK_FILE in err and not (out / "config.yaml").exists()     # refused before any work
        assert (out / LOCK_FILE).is_file()                                   # the holder's lock is left alone
    finally:
        holder.kill()
        holder.wait()
    write_lock(out, host="elsewhere.example", pid=os.getpid())               # another machine: not checkable
    err = run_error(["train", str(cfg), *SERIAL], capsys)
    assert "host elsewhere.example" in err and "delete" in err


def test_a_stale_lock_is_taken_over_with_a_warning(data, tmp_path, capsys):
    d, _ = data
    cfg = config(d, tmp_path)
    out = tmp_path / "out"
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    write_lock(out, pid=gone.pid)
    assert main(["run", str(cfg), *SERIAL]) == 0
    log = capsys.readouterr().err
    assert "WARNING" in log and "taking over the stale lock" in log and f"pid {gone.pid}" in log
    assert not (out / LOCK_FILE).exists() and (out / MARKER_FILE).is_file()


def test_the_lock_is_held_during_the_run_and_released_on_errors(data, tmp_path, monkeypatch, capsys):
    d, ss = data
    cfg = config(d, tmp_path)
    out = tmp_path / "out"
    seen = []
    real = run_mod.write_report

    def spy(path, *a, **k):
        seen.append((json.loads((out / LOCK_FILE).read_text()), (out / MARKER_FILE).exists()))
        return real(path, *a, **k)

    with monkeypatch.context() as m:
        m.setattr(run_mod, "write_report", spy)
        assert main(["run", str(cfg), *SERIAL]) == 0
    (lock, marker_seen), = seen
    assert lock["pid"] == os.getpid() and lock["host"] == socket.gethostname() and lock["command"] == "run"
    assert not marker_seen                                     # a folder being written never looks complete
    assert not (out / LOCK_FILE).exists()
    # the same process cannot write into a folder it is writing into
    with OutputDir(plan_outputs(api.config(cfg), "run")):
        with pytest.raises(OutputError, match="in use by this process"):
            api.run(cfg)
    assert not (out / LOCK_FILE).exists()
    # released on a user error too
    flux = ss.flux.copy()
    flux[3, 3] = np.nan
    save_npz(d / "nan-lock.npz", ss, flux=flux)
    run_error(["run", str(cfg), *SERIAL, "--set", f"data.train.table.path={d / 'nan-lock.npz'}"], capsys)
    assert not (out / LOCK_FILE).exists()


# ---------------------------------------------------------------- 3. complete, or visibly not

def test_a_run_failing_after_training_leaves_no_mix_of_runs(data, tmp_path, monkeypatch, capsys):
    """A good run, then one with another parameter that fails at inference (the test spectra do
    not overlap the model): no marker; config.yaml and model.npz are the new run's; the old
    catalogue and report (and the old config.yaml) are moved aside, not mixed with them."""
    d, ss = data
    cfg = config(d, tmp_path)
    out = tmp_path / "out"
    assert main(["run", str(cfg), *SERIAL]) == 0
    old_config = (out / "config.yaml").read_text()
    old_cat = Table.read(out / "catalog.ecsv")
    save_npz(d / "red-test.npz", ss, wave=ss.wave + 3000.0)
    err = run_error(["run", str(cfg), *SERIAL, "--set", "emulator.slam.C=[100.0]",
                     "--set", f"data.test.table.path={d / 'red-test.npz'}"], capsys)
    assert "do not overlap" in err
    assert not (out / MARKER_FILE).exists() and not (out / LOCK_FILE).exists()
    new_config = yaml.safe_load((out / "config.yaml").read_text().split("\n", 1)[1])
    assert new_config["emulator"]["slam"]["C"] == [100.0]
    assert SlamfwModel.load(out / "model.npz").emulator.C == [100.0]         # the new run's model, consistent
    for name in ("catalog.fits", "catalog.ecsv", "report.md"):
        assert not (out / name).exists(), name
    stale, = stale_dirs(out)
    assert {p.name for p in stale.iterdir()} == {"catalog.fits", "catalog.ecsv", "report.md", "config.yaml",
                                                 "stale.json"}
    assert (stale / "config.yaml").read_text() == old_config
    np.testing.assert_allclose(Table.read(stale / "catalog.ecsv")["Teff"], old_cat["Teff"])
    why = json.loads((stale / "stale.json").read_text())
    assert "failed" in why["reason"] and why["earlier_marker"]["outputs"]
    # fixed and rerun: the finished model of the failed run is reused, and the folder is complete again
    no_training(monkeypatch)
    assert main(["run", str(cfg), *SERIAL, "--set", "emulator.slam.C=[100.0]"]) == 0
    assert set(marker(out)["outputs"]) == {"catalog.ecsv", "catalog.fits", "config.yaml", "model.npz", "report.md"}


def test_a_run_failing_before_writing_results_leaves_the_folder_as_it_was(data, tmp_path, capsys):
    d, ss = data
    cfg = config(d, tmp_path)
    out = tmp_path / "out"
    assert main(["run", str(cfg), *SERIAL]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    flux = ss.flux.copy()
    flux[5, 20] = np.nan
    save_npz(d / "nan-rollback.npz", ss, flux=flux)
    err = run_error(["run", str(cfg), *SERIAL, "--set", f"data.train.table.path={d / 'nan-rollback.npz'}"], capsys)
    assert "NaN" in err
    after = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert after == before and MARKER_FILE in after                 # config.yaml and the marker put back
    assert not stale_dirs(out)


def test_outputs_a_run_no_longer_writes_are_moved_aside(data, tmp_path):
    d, _ = data
    cfg = config(d, tmp_path)
    out = tmp_path / "out"
    assert main(["run", str(cfg), *SERIAL]) == 0
    assert main(["run", str(cfg), *SERIAL, "--set", 'output.formats=["fits"]']) == 0
    assert not (out / "catalog.ecsv").exists() and "catalog.ecsv" not in marker(out)["outputs"]
    stale, = stale_dirs(out)
    assert (stale / "catalog.ecsv").is_file()
    # train writes config.yaml and the model only: the catalogue and report of the run go aside
    assert main(["train", str(cfg), *SERIAL]) == 0
    assert set(marker(out)["outputs"]) == {"config.yaml", "model.npz"}
    assert not (out / "catalog.fits").exists() and not (out / "report.md").exists()
    assert len(stale_dirs(out)) == 2


def test_compare_reuses_each_emulators_model_and_marks_its_folder(data, tmp_path, monkeypatch):
    d, _ = data
    cfg = config(d, tmp_path, out="cmp")
    args = ["compare", str(cfg), "--emulators", "cannon", "--set", "compare.figures=false", *SERIAL]
    assert main(args) == 0
    out = tmp_path / "cmp"
    assert {"compare.json", "compare.md", "compare_cv.ecsv", "cannon/"} <= set(marker(out)["outputs"])
    assert (out / "cannon" / MARKER_FILE).is_file() and not (out / LOCK_FILE).exists()
    before = identity(out / "cannon" / "model.npz")
    no_training(monkeypatch)
    assert main(args) == 0
    assert identity(out / "cannon" / "model.npz") == before
    assert "cannon/" in marker(out)["outputs"]


# ---------------------------------------------------------------- 4. output paths, before any work

@pytest.fixture
def no_reading(monkeypatch):
    from slamfw_plugins.readers.table import TableReader

    def refuse(self):
        raise AssertionError("data were read before the output paths were checked")
    monkeypatch.setattr(TableReader, "read", refuse)


def test_output_dir_must_be_a_usable_folder(data, tmp_path, capsys, no_reading):
    d, _ = data
    cfg = config(d, tmp_path)
    (tmp_path / "afile").write_text("x")
    err = run_error(["run", str(cfg), "--set", f"output.dir={tmp_path / 'afile'}"], capsys)
    assert "output.dir" in err and "afile" in err and "is a file" in err
    err = run_error(["train", str(cfg), "--set", f"output.dir={tmp_path / 'afile' / 'sub'}"], capsys)
    assert "output.dir" in err and "is below the file" in err and "afile" in err


def test_model_file_stays_inside_output_dir(data, tmp_path, capsys, no_reading):
    d, _ = data
    cfg = config(d, tmp_path)
    err = run_error(["run", str(cfg), "--set", "output.model_file=../x.npz"], capsys)
    assert "output.model_file '../x.npz' leads outside output.dir" in err
    assert not (tmp_path / "out").exists()


def test_files_slamfw_did_not_write_are_not_overwritten_without_force(data, tmp_path, capsys, monkeypatch):
    d, _ = data
    cfg = config(d, tmp_path)
    mine = tmp_path / "precious.npz"
    np.savez(mine, a=np.arange(3))
    with monkeypatch.context() as m:
        from slamfw_plugins.readers.table import TableReader
        m.setattr(TableReader, "read", lambda self: (_ for _ in ()).throw(AssertionError("read")))
        err = run_error(["train", str(cfg), "--set", f"output.model_file={mine}"], capsys)
        assert "precious.npz" in err and "not written by slamfw" in err and "--force" in err
        out = tmp_path / "out"
        out.mkdir()
        Table({"a": [1, 2]}).write(out / "catalog.fits")             # a FITS table of someone else's
        err = run_error(["run", str(cfg)], capsys)
        assert "catalog.fits" in err and "not written by slamfw" in err
    assert np.load(mine)["a"].tolist() == [0, 1, 2]
    assert main(["run", str(cfg), *SERIAL, "--force", "--set", f"output.model_file={mine}"]) == 0
    assert is_slamfw_model(mine) and is_slamfw_catalog(out / "catalog.fits")
    assert str(mine) in marker(out)["outputs"]                           # outside the folder: by its absolute path


def test_predict_checks_its_catalogue_before_any_work(finished_model, data, tmp_path, capsys):
    d, _ = data
    # the suffix is checked before the model is even read
    err = run_error(["predict", str(tmp_path / "no-model.npz"), "--data", str(d / "other.npz"), "-o",
                     str(tmp_path / "labels.csv")], capsys)
    assert "labels.csv" in err and "use a .fits or .ecsv file name" in err
    (tmp_path / "afile").write_text("x")
    err = run_error(["predict", str(finished_model), "--data", str(d / "other.npz"), "-o",
                     str(tmp_path / "afile" / "c.fits")], capsys)
    assert "c.fits" in err and "its folder" in err and "afile' is a file" in err
    theirs = tmp_path / "theirs.ecsv"
    Table({"a": [1]}).write(theirs)
    err = run_error(["predict", str(finished_model), "--data", str(d / "other.npz"), "-o", str(theirs)], capsys)
    assert "theirs.ecsv" in err and "not written by slamfw" in err
    assert main(["predict", str(finished_model), "--data", str(d / "other.npz"), "-o", str(theirs), "--force"]) == 0
    assert len(Table.read(theirs)) == 20
    # a catalogue slamfw wrote is overwritten without --force
    assert main(["predict", str(finished_model), "--data", str(d / "other.npz"), "-o", str(theirs)]) == 0
    notes = tmp_path / "notes.ecsv"
    notes.write_text("# not a catalogue\n")
    with pytest.raises(OutputError, match="not written by slamfw"):      # the Python API checks too
        api.predict_catalog(finished_model, notes, data=d / "other.npz")
    with forcing():                                                        # ... and --force there
        assert api.predict_catalog(finished_model, notes, data=d / "other.npz").n_spectra == 20


@pytest.fixture
def finished_model(data, tmp_path):
    d, _ = data
    cfg = config(d, tmp_path, name="fm.toml", out="fm")
    assert main(["train", str(cfg), *SERIAL]) == 0
    return tmp_path / "fm" / "model.npz"


def test_recognising_slamfw_outputs(finished_model, tmp_path):
    out = finished_model.parent
    assert is_slamfw_model(finished_model) and is_slamfw_output(out / "config.yaml")
    np.savez(tmp_path / "other.npz", __metadata__=np.array(json.dumps({"format": "else"})))
    assert not is_slamfw_model(tmp_path / "other.npz")
    (tmp_path / "config.yaml").write_text("seed: 1\n")
    (tmp_path / "report.md").write_text("# my notes\n")
    assert not is_slamfw_output(tmp_path / "config.yaml") and not is_slamfw_output(tmp_path / "report.md")


# ---------------------------------------------------------------- 5. exit status 2 for user errors

@pytest.mark.parametrize("error", [ConfigError, DataError, ModelFileError, OutputError])
def test_user_errors_exit_2(monkeypatch, capsys, error):
    def fail(args):
        raise error("output.dir '/x/y': something the user can fix")
    monkeypatch.setattr(commands, "cmd_run", fail)
    assert main(["run", "any.toml"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("slamfw: error: output.dir '/x/y'") and "Traceback" not in err


# ---------------------------------------------------------------- 6. found by a review

def test_a_foreign_rejected_list_is_refused_before_any_work(data, tmp_path, capsys, no_reading):
    d, _ = data
    cfg = config(d, tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "rejected.csv").write_text("my own notes\n")
    err = run_error(["train", str(cfg)], capsys)                       # no_reading: before the data are read
    assert "rejected.csv" in err and "not written by slamfw" in err
    (tmp_path / "cat-rejected.csv").write_text("mine\n")
    err = run_error(["predict", str(tmp_path / "no-model.npz"), "-o", str(tmp_path / "cat.fits")], capsys)
    assert "cat-rejected.csv" in err and "not written by slamfw" in err
    err = run_error(["convert", "--reader", "table", "--data", str(d / "other.npz"), "-o", str(tmp_path / "cat.fits")],
                    capsys)
    assert "cat-rejected.csv" in err


def test_force_lifts_the_rejected_list_refusal(data, tmp_path):
    d, _ = data
    cfg = config(d, tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "rejected.csv").write_text("my own notes\n")
    assert main(["train", str(cfg), *SERIAL, "--force"]) == 0
    assert (out / "model.npz").is_file()


def test_convert_checks_its_output_path(data, tmp_path, capsys):
    d, _ = data
    (tmp_path / "afile").write_text("x")
    (tmp_path / "d.fits").mkdir()
    base = ["convert", "--reader", "table", "--data", str(d / "other.npz")]
    err = run_error([*base, "-o", str(tmp_path / "afile" / "x.fits")], capsys)
    assert "afile" in err and "is a file" in err
    err = run_error([*base, "-o", str(tmp_path / "d.fits"), "--force"], capsys)
    assert "d.fits" in err and "is a folder" in err


def test_predict_does_not_break_a_finished_runs_folder(data, tmp_path, capsys):
    d, _ = data
    cfg = config(d, tmp_path)
    out = tmp_path / "out"
    assert main(["run", str(cfg), *SERIAL]) == 0
    before = identity(out / "catalog.fits")
    err = run_error(["predict", str(out / "model.npz"), "--data", str(d / "other.npz"), "-o",
                     str(out / "catalog.fits")], capsys)
    assert "output of the finished run" in err and MARKER_FILE in err
    assert identity(out / "catalog.fits") == before
    assert main(["predict", str(out / "model.npz"), "--data", str(d / "other.npz"), "-o", str(out / "catalog.fits"),
                 "--force"]) == 0
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        write_lock(out, pid=holder.pid)
        err = run_error(["predict", str(out / "model.npz"), "--data", str(d / "other.npz"), "-o",
                         str(out / "new.fits"), "--force"], capsys)
        assert "in use by another run" in err and f"pid {holder.pid}" in err and not (out / "new.fits").exists()
    finally:
        holder.kill()
        holder.wait()


def test_a_model_file_under_home_is_written_where_it_was_checked(data, tmp_path, monkeypatch):
    d, _ = data
    cfg = config(d, tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    assert main(["train", str(cfg), *SERIAL, "--set", "output.model_file=~/m.npz"]) == 0
    assert (home / "m.npz").is_file() and not (tmp_path / "out" / "~").exists()
    no_training(monkeypatch)                                            # and run finds it there
    assert main(["run", str(cfg), *SERIAL, "--set", "output.model_file=~/m.npz"]) == 0


def test_compare_refuses_a_locked_emulator_folder_before_training(data, tmp_path, capsys, monkeypatch):
    d, _ = data
    cfg = config(d, tmp_path, out="cmp")
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        write_lock(tmp_path / "cmp" / "krr", pid=holder.pid)
        no_training(monkeypatch)
        err = run_error(["compare", str(cfg), "--emulators", "cannon,krr", *SERIAL], capsys)
        assert "krr" in err and "in use by another run" in err
        assert not (tmp_path / "cmp" / "cannon").exists()
    finally:
        holder.kill()
        holder.wait()
