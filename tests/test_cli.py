"""The command line end to end, and its error paths (exit 2 with a one-paragraph message)."""
import subprocess
import sys

import numpy as np
import pytest
from astropy.table import Table

from slamfw.cli import main

from .conftest import REPO, mock_set

CONFIG = """
seed = 4
labels = ["Teff", "logg", "FeH"]

[data.train]
reader = "table"
holdout = 0.25

[data.train.table]
path = "{train}"

[data.test]
reader = "table"

[data.test.table]
path = "{train}"

[preprocess]
max_bad_pixels = 5

[normalizer]
name = "none"

[emulator]
name = "slam"

[emulator.slam]
C = [10.0]
gamma = [0.3]
n_folds = 3

[inferer]
name = "lm"

[inferer.lm]

[[analyzers]]
name = "cv-scatter"

[calibration]
enabled = false

[output]
dir = "{out}"
chunk_size = 15
"""


def save_npz(path, ss, **changes):
    arrays = dict(wave=ss.wave, flux=ss.flux, ivar=ss.ivar, id=ss.ids, snr=ss.meta["snr"],
                  Teff=ss.labels[:, 0], logg=ss.labels[:, 1], FeH=ss.labels[:, 2])
    arrays.update(changes)
    np.savez(path, **arrays)
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    ss = mock_set(80, seed=21, snr=[50, 200], n_pixels=100)
    save_npz(d / "train.npz", ss)
    other = mock_set(20, seed=22, snr=80, n_pixels=100)
    save_npz(d / "other.npz", other)
    return d, ss


def write_config(d, name="exp.toml", out="out", **subs):
    text = CONFIG.format(train=d / "train.npz", out=d / out)
    for old, new in subs.items():
        text = text.replace(old, new)
    p = d / name
    p.write_text(text)
    return p


@pytest.fixture(scope="module")
def finished_run(data):
    d, _ = data
    cfg = write_config(d)
    assert main(["run", str(cfg)]) == 0
    return d, d / "out"


def test_run_writes_everything(finished_run, capsys):
    d, out = finished_run
    for name in ("model.npz", "catalog.fits", "catalog.ecsv", "report.md", "config.yaml"):
        assert (out / name).is_file(), name
    cat = Table.read(out / "catalog.ecsv")
    assert len(cat) == 20  # the 25% held back of 80 stars
    for col in ("id", "Teff", "Teff_err", "logg_err", "FeH", "converged", "rmse", "chi2", "snr", "Teff_init"):
        assert col in cat.colnames
    assert cat["converged"].mean() > 0.8
    # 60 training stars, 100 pixels around H-beta: far better than the prior spread (~1300 K)
    assert np.std(cat["Teff"] - cat["Teff_true"]) < 600
    report = (out / "report.md").read_text()
    assert "CV scatter" in report and "| all |" in report
    assert not (out / ".checkpoints").exists()      # removed once the run succeeded


def test_resolved_config_reproduces_the_run(finished_run, tmp_path):
    d, out = finished_run
    again = tmp_path / "again"
    assert main(["run", str(out / "config.yaml"), "--set", f"output.dir={again}"]) == 0
    a = Table.read(out / "catalog.ecsv")
    b = Table.read(again / "catalog.ecsv")
    np.testing.assert_allclose(a["Teff"], b["Teff"], rtol=1e-10)


def test_load_model_instead_of_training(finished_run, tmp_path):
    d, out = finished_run
    code = main(["run", str(d / "exp.toml"), "--set", f"emulator.model={out / 'model.npz'}",
                 "--set", f"data.test.table.path={d / 'other.npz'}", "--set", f"output.dir={tmp_path / 'o'}"])
    assert code == 0
    assert len(Table.read(tmp_path / "o" / "catalog.fits")) == 20  # the whole other file


def test_predict_and_train_commands(finished_run, tmp_path, capsys):
    d, out = finished_run
    assert main(["predict", str(out / "model.npz"), "--data", str(d / "other.npz"), "-o", str(tmp_path / "c.fits")]) == 0
    cat = Table.read(tmp_path / "c.fits")
    assert len(cat) == 20 and "Teff_true" in cat.colnames
    assert main(["predict", str(out / "model.npz"), "--data", str(d / "other.npz"), "--reader-param",
                 'labels=["Teff"]', "-o", str(tmp_path / "c2.ecsv")]) == 0
    assert "Teff_true" not in Table.read(tmp_path / "c2.ecsv").colnames  # the model's 3 labels are not all there
    assert main(["predict", str(out / "model.npz"), "--data", str(d / "other.npz"), "--reader-param", "bogus=1",
                 "-o", str(tmp_path / "c3.fits")]) == 2
    assert main(["train", str(d / "exp.toml"), "--set", f"output.dir={tmp_path / 't'}"]) == 0
    assert (tmp_path / "t" / "model.npz").is_file()


def test_predict_starts_its_workers_before_it_loads_the_model(finished_run, tmp_path, monkeypatch):
    """``slamfw predict`` starts its executor's workers first (without ``--executor``, the
    default one, built without loading the plugins), then gives them the modules of the model's
    components to import while it loads the model itself, and runs on that same executor."""
    from slamfw.components import executor as executor_module
    from slamfw.execution import local
    from slamfw.execution.local import LocalExecutor
    from slamfw.model import SlamfwModel
    from slamfw.registry import manager
    events, used, pools = [], [], []
    real_prestart, real_load = LocalExecutor.prestart, SlamfwModel.load.__func__
    real_using, real_pm = executor_module.using_executor, manager.get_plugin_manager

    def prestart(self, prepare=None):
        events.append(("prestart", id(self), None if prepare is None else list(prepare.args[0])))
        real_prestart(self, prepare)
        pools.append(local._POOLS[0])

    def load(cls, path):
        events.append(("load",))
        return real_load(cls, path)

    def using(ex):
        used.append(id(ex))
        return real_using(ex)

    def plugins(*args, **kwargs):
        events.append(("plugins",))
        return real_pm(*args, **kwargs)
    monkeypatch.setattr(LocalExecutor, "prestart", prestart)
    monkeypatch.setattr(SlamfwModel, "load", classmethod(load))
    monkeypatch.setattr("slamfw.workflows.predict.using_executor", using)
    monkeypatch.setattr(manager, "get_plugin_manager", plugins)
    d, out = finished_run
    assert main(["predict", str(out / "model.npz"), "--data", str(d / "other.npz"), "-o", str(tmp_path / "c.fits"),
                 "--workers", "2"]) == 0
    assert len(Table.read(tmp_path / "c.fits")) == 20
    first = events[0]
    assert first[0] == "prestart" and first[2] is None              # before the plugins are even loaded
    prepare = next(e for e in events if e[0] == "prestart" and e[2] is not None)
    assert events.index(prepare) < events.index(("load",)) and prepare[1] == first[1] == used[0]
    assert len(pools) == 2 and pools[0] is pools[1] is local._POOLS[0]           # the run's tasks ran on that pool
    model = real_load(SlamfwModel, out / "model.npz")
    assert prepare[2][0] == "slamfw.workflows.infer"
    assert {type(model.emulator).__module__, "slamfw_plugins.normalizers.identity", "slamfw_plugins.inferers.lm"
            } <= set(prepare[2])


def test_predict_changes_the_inferer_with_inferer_param(finished_run, tmp_path, capsys):
    """--inferer-param changes the model's inferer for one run (here lm's n_starts: the kept start
    is always the first then), and a device the machine lacks is refused before any work."""
    from slamfw import gpu_available
    d, out = finished_run
    args = ["predict", str(out / "model.npz"), "--data", str(d / "other.npz")]
    assert main([*args, "-o", str(tmp_path / "c3.fits")]) == 0
    assert main([*args, "--inferer-param", "n_starts=1", "-o", str(tmp_path / "c1.fits")]) == 0
    three, one = Table.read(tmp_path / "c3.fits"), Table.read(tmp_path / "c1.fits")
    assert set(one["start"]) == {0} and len(one) == len(three) == 20
    assert main([*args, "--inferer-param", "n_starts=0", "-o", str(tmp_path / "x.fits")]) == 2
    assert "n_starts" in capsys.readouterr().err
    if not gpu_available():
        err = run_error([*args, "--inferer-param", "device=cuda", "-o", str(tmp_path / "g.fits")], capsys)
        assert "device 'cuda'" in err and not (tmp_path / "g.fits").exists()
        err = run_error(["run", str(d / "exp.toml"), "--set", "inferer.lm.device=cuda", "--set",
                         f"output.dir={tmp_path / 'gpu'}"], capsys)
        assert "device 'cuda'" in err and not (tmp_path / "gpu" / "model.npz").exists()


def test_resume_reuses_finished_chunks(data, tmp_path, monkeypatch):
    """A run killed after some chunks restarts from them (at most one chunk is lost)."""
    d, _ = data
    cfg_path = write_config(d, "resume.toml", out=str(tmp_path / "r"))
    calls = []
    from slamfw_plugins.inferers.lm import LMInferer
    orig = LMInferer.infer

    def flaky(self, model, flux, ivar, prior=None, ids=None):
        calls.append(flux.shape[0])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return orig(self, model, flux, ivar, prior, ids)

    monkeypatch.setattr(LMInferer, "infer", flaky)   # in this process: the serial executor
    assert main(["run", str(cfg_path), "--executor", "serial"]) == 130
    ckpts = list((tmp_path / "r" / ".checkpoints").rglob("chunk_*.npz"))
    assert len(ckpts) == 1
    calls.clear()
    monkeypatch.setattr(LMInferer, "infer", lambda self, *a, **k: (calls.append(1), orig(self, *a, **k))[1])
    assert main(["run", str(cfg_path), "--executor", "serial"]) == 0
    assert len(calls) == 1  # 20 test stars in chunks of 15: only the second chunk is recomputed
    assert len(Table.read(tmp_path / "r" / "catalog.ecsv")) == 20


def run_error(args, capsys):
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    return err


def test_error_unknown_plugin(data, capsys):
    d, _ = data
    err = run_error(["run", str(write_config(d, "e1.toml")), "--set", "emulator.name=slm"], capsys)
    assert "emulator.name: no emulator named 'slm'" in err and "Did you mean 'slam'" in err


def test_error_config_typo(data, capsys):
    d, _ = data
    err = run_error(["run", str(write_config(d, "e2.toml", **{"n_folds = 3": "n_fols = 3"}))], capsys)
    assert "emulator.slam.n_fols: unknown key" in err


def test_error_missing_data_path(data, capsys, tmp_path):
    d, _ = data
    err = run_error(["run", str(write_config(d, "e3.toml")), "--set", f"data.train.table.path={tmp_path / 'nope.npz'}"], capsys)
    assert "nope.npz" in err and "does not exist" in err
    err = run_error(["run", str(tmp_path / "missing.toml")], capsys)
    assert "does not exist" in err


def test_error_nan_flux(data, capsys):
    d, ss = data
    flux = ss.flux.copy()
    flux[7, 30] = np.nan
    save_npz(d / "nan.npz", ss, flux=flux)
    err = run_error(["run", str(write_config(d, "e4.toml")), "--set", f"data.train.table.path={d / 'nan.npz'}"], capsys)
    assert f"star '{ss.ids[7]}'" in err and "NaN" in err


def test_error_negative_ivar(data, capsys):
    d, ss = data
    ivar = ss.ivar.copy()
    ivar[3, 10] = -5.0
    save_npz(d / "neg.npz", ss, ivar=ivar)
    err = run_error(["run", str(write_config(d, "e5.toml")), "--set", f"data.train.table.path={d / 'neg.npz'}"], capsys)
    assert f"star '{ss.ids[3]}'" in err and "ivar" in err


def test_error_wavelengths_do_not_overlap(finished_run, data, capsys, tmp_path):
    d, ss = data
    _, out = finished_run
    save_npz(d / "red.npz", ss, wave=ss.wave + 3000.0)
    err = run_error(["predict", str(out / "model.npz"), "--data", str(d / "red.npz"), "-o", str(tmp_path / "x.fits")],
                    capsys)
    assert "do not overlap" in err


def test_error_constant_pixel(data, capsys):
    d, ss = data
    flux = ss.flux.copy()
    flux[:, 42] = 1.0
    save_npz(d / "const.npz", ss, flux=flux)
    err = run_error(["run", str(write_config(d, "e6.toml")), "--set", f"data.train.table.path={d / 'const.npz'}"], capsys)
    assert "pixel 42" in err and f"{ss.wave[42]:.2f} A" in err and "constant across the training set" in err
    assert "Mask it, or narrow the wavelength range." in " ".join(err.split())


def test_error_constant_label_names_it(data, capsys):
    """Found by a bad-input hunt: a constant label was 'label 2 is constant ... narrow the
    wavelength range' (its index, and advice about pixels)."""
    d, ss = data
    save_npz(d / "const_feh.npz", ss, FeH=np.full(ss.n_stars, -0.5))
    err = run_error(["run", str(write_config(d, "e6b.toml")), "--set",
                     f"data.train.table.path={d / 'const_feh.npz'}"], capsys)
    assert ("label 'FeH' is constant across the training set (value -0.5); it carries no information and cannot be "
            "standardised. 1 such column(s). Leave the label out of `labels`, or train on stars over which it "
            "varies.") in " ".join(err.split()), err


def test_error_damaged_model(tmp_path, capsys, data):
    d, _ = data
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04garbage")
    err = run_error(["predict", str(tmp_path / "bad.npz"), "--data", str(d / "other.npz"), "-o", str(tmp_path / "c.fits")],
                    capsys)
    assert "not a readable slamfw model" in err


def test_console_script_and_verbose(tmp_path):
    exe = [sys.executable, "-m", "slamfw.cli"]
    r = subprocess.run(exe + ["run", str(tmp_path / "none.toml")], capture_output=True, text=True)
    assert r.returncode == 2 and "does not exist" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run(exe + ["--verbose", "run", str(tmp_path / "none.toml")], capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" in r.stderr
    r = subprocess.run(exe + ["run", str(tmp_path / "none.toml"), "--verbose"], capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" in r.stderr       # after the command too
    r = subprocess.run(exe + ["plugins"], capture_output=True, text=True)
    assert r.returncode == 0 and "slam" in r.stdout


def test_demo_config_file_is_the_packaged_demo():
    from slamfw.cli.commands import demo_config_text
    assert (REPO / "examples" / "demo" / "experiment.toml").read_text() == demo_config_text()


def test_training_set_cleaning_from_config(data, tmp_path):
    d, ss = data
    labels = ss.labels.copy()
    labels[9, 0] += 5000.0  # a mislabelled training star
    save_npz(d / "dirty.npz", ss, Teff=labels[:, 0])
    cfg = write_config(d, "clean.toml", out=str(tmp_path / "c"))
    assert main(["run", str(cfg), "--set", f"data.train.table.path={d / 'dirty.npz'}", "--set", "data.test.table.path=" + str(d / "other.npz"),
                 "--set", "data.train.holdout=0.0", "--set", "data.train.clean.folds=4"]) == 0
    from slamfw.model import SlamfwModel
    kept = SlamfwModel.load(tmp_path / "c" / "model.npz").train_ids.tolist()
    assert ss.ids[9] not in kept and len(kept) >= 70
    report = (tmp_path / "c" / "report.md").read_text()
    assert "training-set cleaning (paper §4.2) dropped" in report and ss.ids[9] in report


def test_predict_without_data_for_a_reader_that_reads_no_files(tmp_path, capsys):
    """A model trained on the mock reader labels a new mock survey: no --data, reader params only."""
    demo = REPO / "examples" / "demo" / "experiment.toml"
    sets = ["data.train.mock.n_stars=40", "data.train.mock.n_pixels=400", "emulator.name=cannon",
            "emulator.cannon.order=1", f"output.dir={tmp_path / 'm'}"]
    assert main(["train", str(demo), *[a for s in sets for a in ("--set", s)]]) == 0
    model = tmp_path / "m" / "model.npz"
    assert main(["predict", str(model), "--reader-param", "n_stars=7", "--reader-param", "seed=5",
                 "--reader-param", "n_pixels=400", "-o", str(tmp_path / "new.ecsv")]) == 0
    cat = Table.read(tmp_path / "new.ecsv")
    assert len(cat) == 7 and "Teff_true" in cat.colnames
    err = run_error(["predict", str(model), "--data", str(tmp_path), "-o", str(tmp_path / "x.fits")], capsys)
    assert "reads no files" in err


def test_predict_needs_data_for_a_reader_that_reads_files(finished_run, tmp_path, capsys):
    d, out = finished_run
    err = run_error(["predict", str(out / "model.npz"), "-o", str(tmp_path / "x.fits")], capsys)
    assert "--data" in err and "'table'" in err


def test_config_paths_relative_to_the_file_and_config_yaml_runs_from_anywhere(data, tmp_path, monkeypatch):
    d, _ = data
    project = tmp_path / "project"
    (project / "spectra").mkdir(parents=True)
    (project / "spectra" / "train.npz").write_bytes((d / "train.npz").read_bytes())
    cfg = project / "exp.toml"
    cfg.write_text(CONFIG.format(train="spectra/train.npz", out="out"))   # relative to exp.toml
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["run", str(cfg)]) == 0          # output.dir "out" is the working directory's
    first = Table.read(elsewhere / "out" / "catalog.ecsv")
    resolved = (elsewhere / "out" / "config.yaml").read_text()
    assert str(project / "spectra" / "train.npz") in resolved
    monkeypatch.chdir(tmp_path)                  # and the saved config runs from another directory
    assert main(["run", str(elsewhere / "out" / "config.yaml"), "--set", "output.dir=again"]) == 0
    np.testing.assert_allclose(Table.read(tmp_path / "again" / "catalog.ecsv")["Teff"], first["Teff"], rtol=1e-10)


def test_test_split_is_checked_before_training(data, tmp_path, capsys):
    d, _ = data
    cfg = write_config(d, "split.toml", out=str(tmp_path / "s"))
    err = run_error(["run", str(cfg), "--set", "data.train.holdout=0"], capsys)
    assert "no star is held back" in err
    assert not (tmp_path / "s" / "model.npz").exists()   # refused before any training


def test_check_plugin_says_which_parameters_a_kit_needs(capsys):
    err = run_error(["check-plugin", "reader", "table"], capsys)
    assert "needs path" in err and "--param path=VALUE" in err


def test_executor_options_become_config_overrides(data, tmp_path):
    """--executor/--workers/--executor-param on a config command set the [executor] section, and
    config.yaml records it; the model does not."""
    import yaml
    d, _ = data
    cfg = write_config(d, "exec.toml", out=str(tmp_path / "e"))
    assert main(["train", str(cfg), "--workers", "2"]) == 0           # no [executor]: the default, local
    resolved = yaml.safe_load((tmp_path / "e" / "config.yaml").read_text().split("\n", 1)[1])
    assert resolved["executor"]["name"] == "local" and resolved["executor"]["local"]["workers"] == 2
    assert main(["train", str(cfg), "--executor", "dask", "--workers", "2", "--executor-param", "memory_limit=2GB",
                 "--set", f"output.dir={tmp_path / 'f'}"]) == 0
    resolved = yaml.safe_load((tmp_path / "f" / "config.yaml").read_text().split("\n", 1)[1])
    assert resolved["executor"] == {"name": "dask", "dask": {"address": None, "workers": 2, "threads_per_worker": None,
                                                             "memory_limit": "2GB", "shared_files": False}}
    import json
    from slamfw.model import SlamfwModel
    meta = json.dumps(SlamfwModel.load(tmp_path / "f" / "model.npz").metadata())
    assert "executor" not in meta and "workers" not in meta and "dask" not in meta


def test_executor_option_errors(finished_run, tmp_path, capsys):
    d, out = finished_run
    err = run_error(["predict", str(out / "model.npz"), "--data", str(d / "other.npz"), "-o", str(tmp_path / "x.fits"),
                     "--executor", "serial", "--workers", "2"], capsys)
    assert "--workers: the executor 'serial' has no workers" in err
    err = run_error(["predict", str(out / "model.npz"), "--data", str(d / "other.npz"), "-o", str(tmp_path / "x.fits"),
                     "--executor", "nonesuch"], capsys)
    assert "--executor: no executor named 'nonesuch'" in err
    err = run_error(["predict", str(out / "model.npz"), "--data", str(d / "other.npz"), "-o", str(tmp_path / "x.csv")],
                    capsys)
    assert "use a .fits or .ecsv file name" in err


def test_predicting_imports_neither_scikit_learn_nor_scipy_stats_or_optimize():
    """The CLI and the plugins ``slamfw predict`` loads with a `slam` model (spline normaliser,
    batched `lm`, `table` reader), and the plugin registry with every plugin that ships, import
    neither scikit-learn nor scipy.stats nor scipy.optimize nor emcee (training, calibration, the
    per-star solver, the error-model analyzer and the emcee inferer import them when used): every
    process pays for its imports (``import slamfw.cli`` took 1.0 s with them, 0.23 s without;
    loading the registry 1.3 s with scipy.stats and emcee, 0.7 s without; 0.38 s with scipy.linalg
    and scipy.special, which the spline's fallback, krr's fitting and the mock spectra import where
    they use them, 0.16 s without)."""
    code = ("import sys, slamfw.cli, slamfw.workflows.predict\n"
            "import slamfw_plugins.emulators.slam, slamfw_plugins.normalizers.spline, slamfw_plugins.inferers.lm\n"
            "import slamfw_plugins.readers.table\n"
            "from slamfw.registry.manager import get_plugin_manager\n"
            "get_plugin_manager()\n"
            "print(sorted(m for m in ('sklearn', 'scipy.stats', 'scipy.optimize', 'scipy.linalg', 'scipy.special', "
            "'emcee') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
