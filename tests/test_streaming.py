"""``slamfw predict`` streamed on an executor: identical catalogues under every executor and number
of workers, a SIGKILLed run resumed under another executor, no orphan workers, flat memory."""
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table

from slamfw import DataError, FileReader, LabelResult, SpectralSet
from slamfw.cli import main
from slamfw.execution.store import ChunkStore

from .conftest import REPO

DEMO = REPO / "examples" / "demo" / "experiment.toml"
# the shipped demo, made fast: normalised mock spectra on 150 pixels, the quadratic Cannon
FAST = ["data.train.mock.n_stars=60", "data.train.mock.n_pixels=150", "data.train.mock.continuum=false",
        "normalizer.name=none", "emulator.name=cannon", "preprocess.wave_step=12"]


def _sets(items):
    return [a for item in items for a in ("--set", item)]


@pytest.fixture(scope="module")
def fast_model(tmp_path_factory):
    out = tmp_path_factory.mktemp("stream")
    assert main(["train", str(DEMO), *_sets(FAST), "--set", f"output.dir={out / 'm'}", "--executor", "serial"]) == 0
    return out / "m" / "model.npz"


def predict_args(model, out, n_stars, *extra):
    return ["predict", str(model), "--reader-param", f"n_stars={n_stars}", "--reader-param", "seed=3",
            "--chunk-size", "50", "-o", str(out), *extra]


def assert_identical(a: Table, b: Table) -> None:
    assert a.colnames == b.colnames and len(a) == len(b)
    for c in a.colnames:
        assert np.array_equal(np.asarray(a[c]), np.asarray(b[c])), c


@pytest.fixture(scope="module")
def reference(fast_model, tmp_path_factory):
    """The catalogue of 400 mock stars, run serially."""
    out = tmp_path_factory.mktemp("ref") / "serial.fits"
    assert main(predict_args(fast_model, out, 400, "--executor", "serial")) == 0
    return Table.read(out)


@pytest.mark.parametrize("executor,workers", [("local", 1), ("local", 2), ("dask", 1), ("dask", 2)])
def test_catalogue_is_identical_under_every_executor(fast_model, reference, tmp_path, executor, workers):
    out = tmp_path / f"{executor}-{workers}.fits"
    assert main(predict_args(fast_model, out, 400, "--executor", executor, "--workers", str(workers))) == 0
    assert_identical(Table.read(out), reference)
    assert not (tmp_path / ".checkpoints").exists()


def _run_until_parts(args, parts_dir, n_parts, timeout=60):
    """Start ``slamfw`` in a subprocess; return it once ``n_parts`` catalogue parts are on disk."""
    proc = subprocess.Popen([sys.executable, "-m", "slamfw.cli", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    t0 = time.time()
    while time.time() - t0 < timeout:
        if len(list(parts_dir.rglob("part_*.npz"))) >= n_parts:
            return proc
        if proc.poll() is not None:
            raise AssertionError(f"finished before being killed: {proc.stderr.read().decode()[-2000:]}")
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("no catalogue parts appeared")


def test_killed_run_resumes_under_another_executor(fast_model, reference, tmp_path, capfd):
    out = tmp_path / "cat.fits"
    proc = _run_until_parts(predict_args(fast_model, out, 400, "--executor", "serial"), tmp_path / ".checkpoints", 3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    parts = sorted((tmp_path / ".checkpoints").rglob("part_*.npz"))
    done = len(parts)
    assert done >= 3 and not out.exists()
    parts[0].write_bytes(b"PK\x03\x04 damaged")                 # one part damaged: it is redone
    capfd.readouterr()
    assert main(predict_args(fast_model, out, 400, "--executor", "dask", "--workers", "2")) == 0
    log = capfd.readouterr().err
    # every other finished chunk is reused, under another executor
    assert f"8 chunks ({done - 1} reused from an earlier run)" in log
    assert_identical(Table.read(out), reference)


@pytest.fixture(scope="module")
def survey_table(fast_model, tmp_path_factory):
    """The fast model's mock survey, 1000 stars, as an npz table stored uncompressed (flux and ivar
    over 1 MB each: the table reader describes its chunks, and the workers read them)."""
    from slamfw import registry
    from slamfw.api import load_model
    rec = load_model(fast_model).components["reader"]
    ss = registry.create("reader", rec["name"], {**rec["params"], "n_stars": 1000, "seed": 3}).read()
    path = tmp_path_factory.mktemp("table") / "survey.npz"
    np.savez(path, wave=ss.wave, flux=ss.flux, ivar=ss.ivar, id=ss.ids, snr=ss.meta["snr"], rv=ss.meta["rv"],
             label_names=np.array(ss.label_names), **{n: ss.labels[:, i] for i, n in enumerate(ss.label_names)})
    return path


def test_workers_read_their_own_chunks(fast_model, survey_table, tmp_path, capfd, monkeypatch):
    """Where the reader describes its chunks (the table reader, ``chunk_sources``), each worker
    reads its own: the catalogue is the same file as when this process reads them and sends them."""
    from slamfw_plugins.readers.table import TableReader

    def run(out, executor="local"):
        capfd.readouterr()
        assert main(["predict", str(fast_model), "--reader", "table", "--reader-param", f"path={survey_table}",
                     "--chunk-size", "150", "-o", str(out), "--executor", executor, "--workers", "2"]) == 0
        return capfd.readouterr().err
    assert "workers read their own chunks (TableReader)" in run(tmp_path / "workers.fits")
    assert "workers read their own chunks (TableReader)" in run(tmp_path / "dask.fits", "dask")   # a LocalCluster
    with monkeypatch.context() as m:
        m.setattr(TableReader, "chunk_sources", lambda self, chunk_size: None)
        assert "workers read their own chunks" not in run(tmp_path / "here.fits")
    here = (tmp_path / "here.fits").read_bytes()
    assert (tmp_path / "workers.fits").read_bytes() == here and (tmp_path / "dask.fits").read_bytes() == here
    assert len(Table.read(tmp_path / "workers.fits")) == 1000


def test_workers_read_their_own_chunks_of_a_fits_table(fast_model, tmp_path, capfd, monkeypatch):
    """A FITS table as ``slamfw convert`` writes it (a wavelength row per star, a logical mask):
    each worker reads its own rows; the catalogue is the same file as when this process reads."""
    from slamfw import registry
    from slamfw.api import load_model
    from slamfw.data.spectra_io import write_spectra_table
    from slamfw_plugins.readers.table import TableReader
    rec = load_model(fast_model).components["reader"]
    ss = registry.create("reader", rec["name"], {**rec["params"], "n_stars": 600, "seed": 4}).read()
    ss.mask[::5, 10:14] = False
    write_spectra_table(ss, tmp_path / "survey.fits")

    def run(out):
        capfd.readouterr()
        assert main(["predict", str(fast_model), "--reader", "table", "--reader-param", f"path={tmp_path / 'survey.fits'}",
                     "--chunk-size", "150", "-o", str(out), "--executor", "local", "--workers", "2"]) == 0
        return capfd.readouterr().err
    assert "workers read their own chunks (TableReader)" in run(tmp_path / "workers.fits")
    with monkeypatch.context() as m:
        m.setattr(TableReader, "chunk_sources", lambda self, chunk_size: None)
        assert "workers read their own chunks" not in run(tmp_path / "here.fits")
    assert (tmp_path / "workers.fits").read_bytes() == (tmp_path / "here.fits").read_bytes()
    assert len(Table.read(tmp_path / "workers.fits")) == 600


def test_chunks_saved_either_way_are_reused_either_way(fast_model, survey_table, tmp_path, monkeypatch, caplog):
    """A chunk's part has the same name whether a worker or this process read the chunk: a run
    resumes the other way's parts; a worker finds a damaged part, removes it and redoes it."""
    import logging

    from slamfw import LocalExecutor, registry, using_executor
    from slamfw.api import load_model
    from slamfw.workflows.infer import model_inferer, predict_stream
    from slamfw_plugins.readers.table import TableReader
    model = load_model(fast_model)
    inferer = model_inferer(model)
    reader = registry.create("reader", "table", {"path": str(survey_table)})
    ck = tmp_path / "ck"

    def stream():
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="slamfw"), using_executor(LocalExecutor(workers=2)):
            keys = predict_stream(model, reader, inferer, ck, 150)
        done = [r.getMessage() for r in caplog.records if r.getMessage().startswith("predict: ")]
        return keys, done[-1], "workers read their own chunks" in caplog.text
    keys, done, workers = stream()
    assert workers and done == "predict: 7 chunks (0 reused from an earlier run), 1000 spectra inferred in this run"
    with monkeypatch.context() as m:                    # this process reads: every part reused
        m.setattr(TableReader, "chunk_sources", lambda self, chunk_size: None)
        again, done, workers = stream()
    assert not workers and again == keys
    assert done == "predict: 7 chunks (7 reused from an earlier run), 0 spectra inferred in this run"
    parts = sorted(ck.rglob("part_*.npz"))
    assert len(parts) == 7
    with np.load(parts[3]) as part:                    # 150 stars, or the last chunk's 100 (names are hashes)
        n_damaged = part["ids"].size
    parts[3].write_bytes(b"PK\x03\x04 damaged")
    again, done, workers = stream()                     # the workers read: one part redone
    assert workers and again == keys
    assert done == f"predict: 7 chunks (6 reused from an earlier run), {n_damaged} spectra inferred in this run"
    assert ChunkStore(parts[3].parent, "part").load(parts[3].stem.removeprefix("part_")) is not None
    damaged = [r for r in caplog.records if "is damaged or unusable" in r.getMessage()]
    assert len(damaged) == 1 and damaged[0].name == "slamfw.execution.store"      # logged here, not on the worker
    assert damaged[0].levelname == "WARNING" and str(parts[3]) in damaged[0].getMessage()
    again, done, workers = stream()                     # all reused: no spectra counted as done in this run
    assert workers and again == keys and not re.search(r"predict: \d+ spectra in", caplog.text)
    assert done == "predict: 7 chunks (7 reused from an earlier run), 0 spectra inferred in this run"


def _two_folders(survey_table, tmp_path, rows_a: slice, rows_b: slice) -> None:
    """Folders a and b of ``tmp_path``, each with a survey.npz: the rows ``rows_a`` and ``rows_b``
    of the survey table."""
    for name, rows in (("a", rows_a), ("b", rows_b)):
        (tmp_path / name).mkdir()
        with np.load(survey_table) as z:
            np.savez(tmp_path / name / "survey.npz", **{k: (z[k][rows] if z[k].ndim and len(z[k]) == 1000 else z[k])
                                                        for k in z.files})


def _fresh_pool() -> None:
    """Stop loky's reusable pool of workers: the next run starts them, in its working folder."""
    from joblib.externals.loky import get_reusable_executor
    get_reusable_executor().shutdown(wait=True)


def test_workers_read_a_relative_path_from_the_calling_process(fast_model, survey_table, tmp_path, monkeypatch,
                                                               caplog):
    """A relative survey path means the calling process's file, whatever folder the workers
    started in: two runs in one process (its workers started in the first folder, then reused),
    from folders holding different files of the same name, each read their own folder's file."""
    import logging

    from slamfw import LocalExecutor, api
    _two_folders(survey_table, tmp_path, slice(0, 900), slice(100, 1000))     # over 1 MiB each: described
    _fresh_pool()
    got = {}
    for name in ("a", "b"):                    # b's stars 100-899 are a's, each with its own spectrum
        monkeypatch.chdir(tmp_path / name)
        with caplog.at_level(logging.INFO, logger="slamfw"):
            api.predict_catalog(fast_model, "cat.fits", "survey.npz", reader="table", chunk_size=150,
                                executor=LocalExecutor(workers=2))
        got[name] = Table.read(tmp_path / name / "cat.fits")
    assert caplog.text.count("workers read their own chunks") == 2
    a, b = got["a"][100:900], got["b"][:800]
    assert list(a["id"]) == list(b["id"]) and len(got["b"]) == 900
    for label in ("Teff", "logg", "FeH"):        # to the rounding of another chunk's batch: the same spectra
        np.testing.assert_allclose(b[label], a[label], rtol=1e-7, err_msg=label)


def test_workers_use_a_relative_checkpoint_folder_of_the_calling_process(fast_model, survey_table, tmp_path,
                                                                       monkeypatch):
    """A relative checkpoint folder means the calling process's: the same survey run from two
    folders (the workers started in the first) finds no parts of the first in the second, and
    keeps each folder's parts there."""
    from slamfw import LocalExecutor, api, registry, using_executor
    from slamfw.workflows.infer import model_inferer, predict_stream
    _two_folders(survey_table, tmp_path, slice(0, 1000), slice(0, 1000))
    _fresh_pool()
    model = api.load_model(fast_model)
    for name in ("a", "b"):
        monkeypatch.chdir(tmp_path / name)
        with using_executor(LocalExecutor(workers=2)):
            keys = predict_stream(model, registry.create("reader", "table", {"path": "survey.npz"}),
                                  model_inferer(model), "ck", 150)
        assert len(keys) == 7 and len(list((tmp_path / name / "ck").rglob("part_*.npz"))) == 7, name


def test_a_bad_star_read_on_a_worker_is_named_and_the_chunks_before_it_are_kept(fast_model, survey_table, tmp_path,
                                                                               capfd):
    """A star with a negative ivar, read by a worker: the run stops with the table reader's
    message naming the star; the chunks finished before it are kept for the rerun."""
    with np.load(survey_table) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["ivar"] = arrays["ivar"].copy()
    bad = str(arrays["id"][700])
    arrays["ivar"][700, 5] = -1.0
    np.savez(tmp_path / "bad.npz", **arrays)
    capfd.readouterr()
    assert main(["predict", str(fast_model), "--reader", "table", "--reader-param", f"path={tmp_path / 'bad.npz'}",
                 "--chunk-size", "150", "-o", str(tmp_path / "cat.fits"), "--executor", "local", "--workers", "2"]) != 0
    err = capfd.readouterr().err
    assert "workers read their own chunks" in err and f"star {bad!r}" in err and "ivar -1.0" in err
    assert len(list((tmp_path / ".checkpoints").rglob("part_*.npz"))) >= 4        # chunks 0-3 (stars 0-599)


def test_the_medium_warning_and_the_device_path_with_described_chunks(fast_model, survey_table, tmp_path,
                                                                      monkeypatch, capfd):
    """With the workers reading their chunks: a medium that only the survey declares is warned about
    once, in the calling process; on a device (``lm``'s in-process calls: the workers prepare)
    the catalogue is the CPU run's."""
    from .test_in_process_inference import _same_catalogue, _stand_in_gpu
    with np.load(survey_table) as z:
        np.savez(tmp_path / "vac.npz", medium=np.array("vacuum"), **{k: z[k] for k in z.files})
    args = ["predict", str(fast_model), "--reader", "table", "--reader-param", f"path={tmp_path / 'vac.npz'}",
            "--chunk-size", "150", "--executor", "local", "--workers", "2"]
    capfd.readouterr()
    assert main([*args, "-o", str(tmp_path / "cpu.fits")]) == 0
    err = capfd.readouterr().err
    assert "workers read their own chunks" in err and err.count("the spectra are in vacuum") == 1
    _stand_in_gpu(monkeypatch)
    assert main([*args, "--inferer-param", "device=cuda", "-o", str(tmp_path / "gpu.fits")]) == 0
    err = capfd.readouterr().err
    assert "workers read their own chunks" in err and "inference in this process" in err
    _same_catalogue(Table.read(tmp_path / "cpu.fits"), Table.read(tmp_path / "gpu.fits"), 1000)


def test_workers_elsewhere_get_the_chunks_from_the_calling_process(fast_model, survey_table, tmp_path, caplog):
    """An executor whose workers are not on this machine gets the chunks read here, not their
    descriptions."""
    import logging

    from slamfw import SerialExecutor, registry, using_executor
    from slamfw.api import load_model
    from slamfw.workflows.infer import model_inferer, predict_stream

    class Remote(SerialExecutor):
        workers_on_this_machine = False
    model = load_model(fast_model)
    with caplog.at_level(logging.INFO, logger="slamfw"), using_executor(Remote()):
        keys = predict_stream(model, registry.create("reader", "table", {"path": str(survey_table)}),
                              model_inferer(model), tmp_path / "ck", 300)
    assert len(keys) == 4 and "workers read their own chunks" not in caplog.text


def _alive(pids):
    import psutil
    return [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]


@pytest.mark.parametrize("executor", ["local", "dask"])
def test_a_killed_run_leaves_no_orphans(fast_model, tmp_path, executor):
    import psutil
    args = predict_args(fast_model, tmp_path / "cat.fits", 20000, "--executor", executor, "--workers", "2")
    proc = _run_until_parts(args, tmp_path / ".checkpoints", 1, timeout=120)
    workers = [p.pid for p in psutil.Process(proc.pid).children(recursive=True)]
    assert len(workers) >= 2
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    t0 = time.time()
    while _alive(workers) and time.time() - t0 < 15:
        time.sleep(0.2)
    assert not _alive(workers), f"orphans {_alive(workers)} {time.time() - t0:.1f} s after kill -9"


PEAK = "import resource, sys; from slamfw.cli import main; rc = main(sys.argv[1:]); " \
       "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(rc)"


def _peak_kb(args) -> int:
    r = subprocess.run([sys.executable, "-c", PEAK, *args], capture_output=True, text=True, check=True)
    return int(r.stdout.strip().splitlines()[-1])


def test_peak_memory_does_not_grow_with_the_number_of_spectra(fast_model, tmp_path):
    small = _peak_kb(predict_args(fast_model, tmp_path / "a.fits", 2000, "--executor", "serial"))
    large = _peak_kb(predict_args(fast_model, tmp_path / "b.fits", 20000, "--executor", "serial"))
    assert len(Table.read(tmp_path / "b.fits")) == 20000
    assert large <= 1.3 * small, f"peak RSS {large} kB for 20,000 spectra vs {small} kB for 2,000"


def test_label_results_round_trip_every_field(tmp_path):
    rng = np.random.default_rng(0)

    def result(n):
        return LabelResult(labels=rng.normal(size=(n, 2)), cov=rng.normal(size=(n, 2, 2)), converged=rng.random(n) > 0.5,
                           rmse=rng.random(n), chi2=rng.random(n), init=rng.normal(size=(n, 2)), label_names=["a", "b"],
                           nfev=rng.integers(1, 9, n), samples=rng.normal(size=(n, 5, 2)),
                           extra={"flag": rng.integers(0, 4, n), "lnprob": rng.normal(size=n)})

    parts = [result(3), result(4)]
    store = ChunkStore(tmp_path, "chunk")
    back = []
    for i, part in enumerate(parts):
        store.save(i, part.to_arrays())
        back.append(LabelResult.from_arrays(store.load(i)))
    whole, again = LabelResult.concatenate(parts), LabelResult.concatenate(back)
    for name in LabelResult.ARRAYS:
        assert np.array_equal(getattr(whole, name), getattr(again, name)), name
    assert whole.samples.shape == (7, 5, 2) and set(again.extra) == {"flag", "lnprob"}
    for key in whole.extra:
        assert np.array_equal(whole.extra[key], again.extra[key])
    assert again.label_names == ["a", "b"]


def test_execution_settings_are_not_in_model_files(fast_model):
    from slamfw.model import SlamfwModel
    meta = json.dumps(SlamfwModel.load(fast_model).metadata())
    for setting in ("n_jobs", "workers", "progress", "stars_per_task", "executor"):
        assert setting not in meta, setting
    assert os.path.getsize(fast_model) > 0


def test_a_run_outlives_the_shell_that_started_it(fast_model, tmp_path):
    """`slamfw predict ... &` in a shell that exits at once: the run (its Dask cluster included)
    goes on and finishes; only the death of the slamfw process itself stops its workers."""
    out = tmp_path / "cat.fits"
    cmd = " ".join([sys.executable, "-m", "slamfw.cli", *predict_args(fast_model, out, 2000, "--executor", "dask",
                                                                       "--workers", "2")])
    subprocess.run(["bash", "-c", f"{cmd} > {tmp_path / 'log'} 2>&1 &"], check=True)   # the shell exits here
    t0 = time.time()
    while not out.exists() and time.time() - t0 < 120:
        time.sleep(0.5)
    assert out.exists(), (tmp_path / "log").read_text()[-2000:]
    assert len(Table.read(out)) == 2000


SPLINE = ["data.train.mock.n_stars=60", "data.train.mock.n_pixels=400", "emulator.slam.C=[10.0]",
          "emulator.slam.gamma=[0.1]", "emulator.slam.n_folds=3", "preprocess.wave_step=8"]


def test_real_preparation_gives_the_same_file_under_every_executor(tmp_path):
    """The demo's own model (spline normaliser, SLAM, lm) on spectra with radial velocities and
    mixed S/N: the catalogue files are equal byte for byte under serial, local and dask."""
    assert main(["train", str(DEMO), *_sets(SPLINE), "--set", f"output.dir={tmp_path / 'm'}"]) == 0
    files = []
    for extra in (["--executor", "serial"], ["--executor", "local", "--workers", "2"],
                  ["--executor", "dask", "--workers", "2"]):
        out = tmp_path / f"{extra[1]}.fits"
        assert main(["predict", str(tmp_path / "m" / "model.npz"), "--reader-param", "n_stars=120",
                     "--reader-param", "rv_sigma=30.0", "--reader-param", "snr=[20, 60, 150]",
                     "--chunk-size", "40", "-o", str(out), *extra]) == 0
        files.append(out.read_bytes())
    assert files[0] == files[1] == files[2]


class StarFiles(FileReader):
    """Test reader: .npz files of one or more stars each (``wave`` (P,), ``flux``, ``ivar`` (n, P),
    ``ids`` (n,), ``labels`` (n, L), ``snr`` (n,)); a file without ``flux`` cannot be read."""

    patterns = ("*.npz",)

    def read_file(self, path):
        with np.load(path) as z:
            if "flux" not in z.files:
                raise DataError(f"{path.name}: no flux")
            return SpectralSet(wave=z["wave"], flux=z["flux"], ivar=z["ivar"], ids=z["ids"], labels=z["labels"],
                               label_names=list(z["names"]), label_units=list(z["units"]),
                               meta={"snr": z["snr"]}, source=path.name, medium=str(z["medium"]))


@pytest.fixture(scope="module")
def star_files(fast_model, tmp_path_factory):
    """83 mock stars in 84 files of the fast model's survey: one star per file, three in ``f035m``,
    a file that cannot be read (``f020b``), and two that repeat a star: ``f005d`` that of ``f002``,
    in the same group of 10 files, and ``f050d`` that of ``f003``, in an earlier group."""
    from slamfw import registry
    from slamfw.api import load_model
    rec = load_model(fast_model).components["reader"]
    ss = registry.create("reader", rec["name"], {**rec["params"], "n_stars": 83, "seed": 5}).read()
    folder = tmp_path_factory.mktemp("starfiles") / "survey"
    folder.mkdir()

    def write(name, rows):
        np.savez(folder / f"{name}.npz", wave=ss.wave, flux=ss.flux[rows], ivar=ss.ivar[rows], ids=ss.ids[rows],
                 labels=ss.labels[rows], names=np.array(ss.label_names), units=np.array(ss.label_units),
                 snr=ss.meta["snr"][rows], medium=np.array(ss.medium))
    for i in range(80):
        write(f"f{i:03d}", [i])
    write("f035m", [80, 81, 82])
    write("f005d", [2])
    write("f050d", [3])
    np.savez(folder / "f020b.npz", wave=ss.wave)
    return folder


def _stream_files(fast_model, star_files, executor, ck, caplog):
    """predict_stream over ``star_files`` (a folder or a listing) on ``executor``, in chunks of
    10: the keys, the parts' ids, labels, covariances and true labels, the rejected files, and
    the log."""
    import logging

    from slamfw import using_executor
    from slamfw.api import load_model
    from slamfw.workflows.infer import iter_parts, model_inferer, predict_stream
    model = load_model(fast_model)
    inferer = model_inferer(model)
    reader = StarFiles(path=str(star_files))
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="slamfw"), using_executor(executor):
        keys = predict_stream(model, reader, inferer, ck, 10)
    parts = list(iter_parts(model, inferer, ck, keys))
    return (keys, {k: np.concatenate([p[k] for p in parts]) for k in ("ids", "labels", "cov", "true_labels")},
            reader.rejected_, caplog.text)


def test_workers_read_their_own_files(fast_model, star_files, tmp_path, caplog, monkeypatch):
    """A reader of many files (``FileReader``) describes groups of files: each worker reads its
    own, and the stars, labels and rejected files are those of this process reading them, a file
    that repeats a star of an earlier group left out; a second run reuses every part but the one
    without that star."""
    from slamfw import LocalExecutor, SerialExecutor

    def stream(executor, ck):
        return _stream_files(fast_model, star_files, executor, tmp_path / ck, caplog)
    with monkeypatch.context() as m:
        m.setattr(StarFiles, "chunk_sources", lambda self, chunk_size: None)
        keys, here, rejected, text = stream(SerialExecutor(), "here")
    assert "read their own chunks" not in text
    keys_w, workers, rejected_w, text = stream(LocalExecutor(workers=2), "workers")
    assert "workers read their own chunks (StarFiles)" in text
    assert len(set(here["ids"].tolist())) == len(here["ids"]) == 83
    for k in here:
        assert np.array_equal(workers[k], here[k]), k
    assert rejected_w == rejected and [(Path(p).name, r.split(":")[0].split(" was")[0]) for p, r in rejected] == [
        ("f005d.npz", "star 'mock02'"), ("f020b.npz", "f020b.npz"), ("f050d.npz", "star 'mock03'")]
    assert "rejected" in text and "3 of 84 file(s) rejected" in text
    # the part without f050d's star has a name of its own; the others are named as this process names them
    assert len(keys_w) == len(keys) and sum(a != b for a, b in zip(keys, keys_w)) == 1
    keys_again, again, rejected_again, text = stream(LocalExecutor(workers=2), "workers")
    assert keys_again == keys_w and rejected_again == rejected
    # f035m's group: 2 chunks; f050d's group is inferred again (its part without f050d's star has a name of its
    # own, and the whole chunk's part was not saved)
    assert "10 chunks (9 reused from an earlier run), 9 spectra inferred in this run" in text
    for k in here:
        assert np.array_equal(again[k], here[k]), k


def test_a_remote_dask_cluster_reads_the_files_where_it_shares_them(fast_model, star_files, tmp_path, caplog):
    """``dask`` connected to a scheduler by its address: its workers get the chunks read here,
    unless ``shared_files`` says they see this machine's files; the same stars and labels."""
    import distributed

    from slamfw import registry
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0")
    try:
        runs = {}
        for shared in (False, True):
            ex = registry.create("executor", "dask", {"address": cluster.scheduler_address, "shared_files": shared})
            assert ex.workers_on_this_machine is False and ex.workers_share_files is shared
            with ex:
                runs[shared] = _stream_files(fast_model, star_files, ex, tmp_path / str(shared), caplog)
            assert ("workers read their own chunks (StarFiles)" in runs[shared][3]) is shared
    finally:
        cluster.close()
    for k in runs[False][1]:
        assert np.array_equal(runs[True][1][k], runs[False][1][k]), k
    assert runs[True][2] == runs[False][2] and len(runs[True][2]) == 3


def test_parts_hold_what_their_names_say_when_stars_are_left_out(fast_model, star_files, tmp_path, caplog,
                                                                monkeypatch):
    """A part whose stars the reader leaves out is saved under its own name, never under the
    whole chunk's: a listing whose second group of files repeats the first, and runs on changed
    inputs that share one checkpoint folder, give the stars (each once) and the rejected files of
    this process reading every file."""
    from slamfw import LocalExecutor, SerialExecutor

    def both(names, ck):
        listing = tmp_path / f"{len(list(tmp_path.glob('*.lst')))}.lst"
        listing.write_text("".join(f"{star_files / n}.npz\n" for n in names))
        with monkeypatch.context() as m:
            m.setattr(StarFiles, "chunk_sources", lambda self, chunk_size: None)
            _, here, rejected, _ = _stream_files(fast_model, listing, SerialExecutor(), tmp_path / f"{listing.stem}-here",
                                                 caplog)
        _, there, rejected_w, text = _stream_files(fast_model, listing, LocalExecutor(workers=2), ck, caplog)
        assert "workers read their own chunks" in text
        assert there["ids"].tolist() == here["ids"].tolist() and len(set(here["ids"].tolist())) == len(here["ids"])
        assert np.array_equal(there["labels"], here["labels"]) and rejected_w == rejected
        return here["ids"].tolist(), [Path(p).name for p, _ in rejected]
    group = [f"f{i:03d}" for i in range(10)]
    assert both(group + group, tmp_path / "ck-repeat") == ([f"mock{i:02d}" for i in range(10)],
                                                           [f"{n}.npz" for n in group])
    ck = tmp_path / "ck-shared"            # f050d holds f003's star
    small = ["f050d", *(f"f{i:03d}" for i in range(10, 19))]
    assert both(small, ck)[1] == []
    assert both(group + small, ck)[1] == ["f050d.npz"]
    assert both(small, ck)[1] == []


def test_workers_reading_files_none_readable(fast_model, tmp_path):
    """Every file rejected, read on the workers: the error names the files, as when read here."""
    from slamfw import LocalExecutor, using_executor
    from slamfw.api import load_model
    from slamfw.workflows.infer import model_inferer, predict_stream
    model = load_model(fast_model)
    for i in range(3):
        np.savez(tmp_path / f"bad{i}.npz", wave=np.arange(3.0))
    with using_executor(LocalExecutor(workers=2)), pytest.raises(DataError, match=r"none of the 3 file\(s\).*bad0"):
        predict_stream(model, StarFiles(path=str(tmp_path)), model_inferer(model), tmp_path / "ck", 2)


def test_a_part_without_some_stars():
    """The stars that a reader leaves out leave every per-star array of a catalogue part (and its
    list of stars that preparation dropped); the other arrays stay whole."""
    from slamfw.workflows.infer import _without
    n = 3
    res = LabelResult(labels=np.arange(6.0).reshape(n, 2), cov=np.arange(12.0).reshape(n, 2, 2),
                      converged=np.array([True, False, True]), rmse=np.arange(3.0), chi2=np.arange(3.0) + 1,
                      init=np.ones((n, 2)), label_names=["a", "b"], nfev=np.arange(3), extra={"q": np.arange(3.0) * 2},
                      extra_units={"q": "K"})
    part = {**res.to_arrays(), "ids": np.array(["x", "y", "z"]), "snr": np.array([5.0, 6.0, 7.0]),
            "true_labels": np.arange(6.0).reshape(n, 2) + 10, "excluded": np.array(["w", "v"])}
    out = _without(part, {"y", "v"})
    assert sorted(out) == sorted(part)
    for key, value in part.items():
        if key in ("label_names", "extra_unit/q"):
            assert np.array_equal(out[key], value), key
        elif key == "excluded":
            assert out[key].tolist() == ["w"]
        else:
            assert np.array_equal(out[key], value[[0, 2]]), key
    assert _without(part, {"nobody"}) is part
    only_excluded = {"ids": np.zeros(0, dtype=str), "excluded": np.array(["w", "v"])}
    assert _without(only_excluded, {"w"})["excluded"].tolist() == ["v"]
