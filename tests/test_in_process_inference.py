"""Inference in the pipeline's own process (``Inferer.stars_per_call``: ``lm`` on a GPU): the
executor's workers prepare the chunks, this process infers them, consecutive chunks joined into
calls of up to that many stars. The catalogue is the one the workers would have written.

The GPU is stood in for by numpy under another name (as in ``tests/test_device.py``): patched in
this process only, so a fit on a worker process would find no CuPy and fail."""
from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
from astropy.table import Table
from astropy.units import UnitsWarning

import slamfw.stats.device as device
from slamfw import (
    ConfigError, DataError, Executor, LabelResult, LocalExecutor, SerialExecutor, current_executor, registry,
    using_executor,
)
from slamfw.cli import main
from slamfw.model import SlamfwModel
from slamfw.stats import maxlike
from slamfw.workflows import infer

from .conftest import REPO, interrupted_at_call

DEMO = REPO / "examples" / "demo" / "experiment.toml"
FAST = ["data.train.mock.n_stars=60", "data.train.mock.n_pixels=150", "data.train.mock.continuum=false",
        "normalizer.name=none", "emulator.name=cannon", "preprocess.wave_step=12", "calibration.enabled=false"]


@pytest.fixture(scope="module")
def fast_model(tmp_path_factory):
    root = tmp_path_factory.mktemp("in-process")
    assert main(["train", str(DEMO), *[a for s in FAST for a in ("--set", s)], "--set", f"output.dir={root}",
                 "--executor", "serial"]) == 0
    return root / "model.npz"


def _stand_in_gpu(monkeypatch):
    """``device = "cuda"`` on the strict stand-in for CuPy (tests/cupy_standin.py), in this process."""
    from .cupy_standin import make_module
    xp = make_module()
    monkeypatch.setattr(device, "array_module", lambda dev: np if dev == "cpu" else xp)
    monkeypatch.setattr(maxlike, "array_module", lambda dev: np if dev == "cpu" else xp)
    monkeypatch.setattr(maxlike, "_DEVICE_MAX_STARS", {})


def _catalogue(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnitsWarning)
        return Table.read(path)


def test_predict_on_the_device_infers_in_its_own_process(fast_model, tmp_path, monkeypatch, capfd):
    """``slamfw predict --inferer-param device=cuda`` on two local workers: they prepare, this process
    fits (a worker, without the stand-in, could not), in calls of up to the solver's batch on the
    device; the catalogue is the CPU run's, labels within 1e-6 of their errors, the rest equal."""
    args = ["predict", str(fast_model), "--reader-param", "n_stars=150", "--reader-param", "seed=3",
            "--chunk-size", "30", "--executor", "local", "--workers", "2"]
    assert main([*args, "-o", str(tmp_path / "cpu.fits")]) == 0
    _stand_in_gpu(monkeypatch)
    monkeypatch.setattr(maxlike, "BATCH_STARS_DEVICE", 64)        # calls of 60 stars: 2, 2 and 1 chunks
    sizes = []
    real = maxlike.maximum_likelihood

    def record(model, flux, *a, **k):
        sizes.append((os.getpid(), len(flux)))
        return real(model, flux, *a, **k)
    monkeypatch.setattr(maxlike, "maximum_likelihood", record)
    import slamfw_plugins.inferers.lm as lm_mod
    monkeypatch.setattr(lm_mod, "maximum_likelihood", record)
    capfd.readouterr()
    assert main([*args, "--inferer-param", "device=cuda", "-o", str(tmp_path / "gpu.fits")]) == 0
    assert sizes == [(os.getpid(), 60), (os.getpid(), 60), (os.getpid(), 30)]
    assert "inference in this process, up to 64 stars per call" in capfd.readouterr().err
    _same_catalogue(_catalogue(tmp_path / "cpu.fits"), _catalogue(tmp_path / "gpu.fits"), 150)


def _same_catalogue(cpu, gpu, n):
    """Every column of ``gpu`` is ``cpu``'s, same name, order and dtype: the labels within 1e-6 of
    their errors, other floats (errors, chi^2, rmse, ...) to 1e-6 relative, the rest equal."""
    assert cpu.colnames == gpu.colnames and len(cpu) == len(gpu) == n
    names = [c[:-len("_err_formal")] for c in cpu.colnames if c.endswith("_err_formal")]
    assert len(names) == 3
    assert np.asarray(cpu["converged"]).mean() > 0.9
    for col in cpu.colnames:
        a, b = np.asarray(cpu[col]), np.asarray(gpu[col])
        assert a.dtype == b.dtype, col
        if col in names:
            assert np.all(np.abs(b - a) <= 1e-6 * np.asarray(cpu[f"{col}_err_formal"])), col
        elif a.dtype.kind == "f":
            np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-12, equal_nan=True, err_msg=col)
        else:
            np.testing.assert_array_equal(b, a, err_msg=col)


def test_a_killed_device_predict_keeps_the_calls_it_finished(fast_model, tmp_path, monkeypatch, capfd):
    """Killed in its second call, ``slamfw predict --inferer-param device=cuda`` has saved the two
    chunks of its first; run again, it reuses them and writes the clean run's catalogue."""
    args = ["predict", str(fast_model), "--reader-param", "n_stars=150", "--reader-param", "seed=3",
            "--chunk-size", "30", "--executor", "local", "--workers", "2", "-o", str(tmp_path / "cat.fits")]
    assert main(args[:-2] + ["-o", str(tmp_path / "cpu.fits")]) == 0
    _stand_in_gpu(monkeypatch)
    monkeypatch.setattr(maxlike, "BATCH_STARS_DEVICE", 64)
    import slamfw_plugins.inferers.lm as lm_mod
    real = lm_mod.maximum_likelihood
    monkeypatch.setattr(lm_mod, "maximum_likelihood", interrupted_at_call(real, 2))
    cuda = ["--inferer-param", "device=cuda"]
    assert main([*args, *cuda]) == 130
    assert len(list((tmp_path / ".checkpoints").rglob("part_*.npz"))) == 2
    monkeypatch.setattr(lm_mod, "maximum_likelihood", real)
    capfd.readouterr()
    assert main([*args, *cuda]) == 0
    assert "5 chunks (2 reused from an earlier run)" in capfd.readouterr().err
    assert not (tmp_path / ".checkpoints").exists()
    _same_catalogue(_catalogue(tmp_path / "cpu.fits"), _catalogue(tmp_path / "cat.fits"), 150)


def test_device_predict_reads_two_chunks_per_worker_ahead_at_most(fast_model, tmp_path, monkeypatch):
    """The calling process infers slower than the workers prepare: the survey is read and prepared
    at most two chunks per worker ahead of the chunks handed to the calling process, so that
    prepared spectra do not pile up in memory (joblib's workers took every chunk of the stream
    while the first call ran)."""
    import time

    import slamfw_plugins.inferers.lm as lm_mod
    _stand_in_gpu(monkeypatch)
    monkeypatch.setattr(maxlike, "BATCH_STARS_DEVICE", 64)          # calls of 2 chunks
    read, seen = [], []
    real_key, real = infer.chunk_key, lm_mod.maximum_likelihood
    monkeypatch.setattr(infer, "chunk_key", lambda raw: read.append(raw.n_stars) or real_key(raw))

    def slow(model, flux, *a, **k):
        seen.append((len(read), len(flux)))
        time.sleep(0.3)
        return real(model, flux, *a, **k)
    monkeypatch.setattr(lm_mod, "maximum_likelihood", slow)
    assert main(["predict", str(fast_model), "--reader-param", "n_stars=300", "--reader-param", "seed=3",
                 "--chunk-size", "30", "--executor", "local", "--workers", "2", "--inferer-param", "device=cuda",
                 "-o", str(tmp_path / "cat.fits")]) == 0
    assert [n for _, n in seen] == [60] * 5 and len(read) == 10
    done = 0
    for n_read, n in seen:              # chunks read when a call starts: its own and those before, 2 x 2 more
        done += n // 30
        assert n_read <= done + 4, seen


class _Recording:
    """An lm inferer that infers in the pipeline's process, up to ``per_call`` stars, and records
    the size of each call."""

    def __new__(cls, per_call: int):
        base = registry.get_component("inferer", "lm")

        class Recording(base):
            calls: list[int] = []
            ids: list[np.ndarray] = []
            executors: list[type] = []

            def infer(self, model, flux, ivar, prior=None, ids=None):
                type(self).calls.append(len(flux))
                type(self).ids.append(ids)
                type(self).executors.append(type(current_executor()))
                return super().infer(model, flux, ivar, prior=prior, ids=ids)

            def stars_per_call(self, model):
                return per_call
        return Recording()


def _prepared(model, sizes, seed=4):
    """Prepared chunks of ``sizes`` stars (None: a chunk already done; "none kept": one whose stars
    preparation all dropped, as :func:`slamfw.workflows.infer._prepare_chunk` gives it); every
    seventh star's rv unknown."""
    raw = registry.create("reader", "mock", {"n_stars": sum(s for s in sizes if isinstance(s, int)), "seed": seed,
                                             "n_pixels": 150, "continuum": False}).read()
    data = infer.prepare_for_model(infer.model_labels_only(raw, model), model)
    out, start = [], 0
    for n in sizes:
        if n is None:
            out.append(None)
            continue
        if n == "none kept":
            out.append({"ids": np.zeros(0, dtype=str), "excluded": np.array(["dropped-1"])})
            continue
        rows = slice(start, start + n)
        out.append({"flux": data.flux[rows], "ivar": data.weight_ivar[rows], "ids": np.asarray(data.ids[rows], str),
                    "coverage": data.meta_column("grid_coverage", 1.0)[rows],
                    "rv_unknown": np.arange(rows.start, rows.stop) % 7 == 3})
        start += n
    return out


def test_chunks_are_joined_into_calls_of_at_most_stars_per_call(fast_model):
    """Consecutive chunks up to ``per_call`` stars per call (a larger chunk alone); a chunk already
    done (None) or without stars passes through in its place; each chunk gets its own stars'
    labels, those of a call on that chunk alone."""
    model = SlamfwModel.load(fast_model)
    inferer = _Recording(64)
    preps = _prepared(model, [30, 30, 30, 0, None, "none kept", 70, 10])
    with using_executor(LocalExecutor(workers=2)):       # the calls run in this process, serially
        out = list(infer.infer_in_process(iter(preps), model, inferer, None, 64))
    assert type(inferer).calls == [60, 30, 70, 10]
    assert type(inferer).executors == [SerialExecutor] * 4
    joined = [np.concatenate([preps[0]["ids"], preps[1]["ids"]]), preps[2]["ids"], preps[6]["ids"], preps[7]["ids"]]
    assert all(np.array_equal(a, b) for a, b in zip(type(inferer).ids, joined))      # each star's id goes with it
    assert [p is q for (p, _), q in zip(out, preps)] == [True] * len(preps)
    assert [None if r is None else r.n for _, r in out] == [30, 30, 30, None, None, None, 70, 10]
    type(inferer).calls.clear()
    for prep, res in out:
        if res is None:
            continue
        alone = infer.label_spectra(model, inferer, None, prep["flux"], prep["ivar"], prep["ids"], prep["coverage"],
                                    prep["rv_unknown"])
        assert np.all(np.abs(res.labels - alone.labels) <= 1e-9 * alone.errors)
        np.testing.assert_array_equal(res.extra["flag_rv"], prep["rv_unknown"])      # each star's flag goes with it
        np.testing.assert_array_equal(res.converged, alone.converged)
        np.testing.assert_allclose(res.chi2, alone.chi2, rtol=1e-9)


def test_infer_chunked_infers_in_process_too(fast_model, tmp_path, monkeypatch):
    """``slamfw run``'s inference (``infer_chunked``): the same in-process calls, and the chunks kept
    under the checkpoint folder are each chunk's own rows of the result."""
    from slamfw.execution.store import ChunkStore
    model = SlamfwModel.load(fast_model)
    raw = registry.create("reader", "mock", {"n_stars": 45, "seed": 6, "n_pixels": 150, "continuum": False}).read()
    data = infer.prepare_for_model(infer.model_labels_only(raw, model), model)
    inferer = _Recording(25)
    monkeypatch.setattr(ChunkStore, "discard", lambda self, keys: None)     # keep the chunks
    with using_executor(SerialExecutor()):
        got = infer.infer_chunked(model, inferer, data, chunk_size=10, checkpoint_dir=tmp_path)
        assert type(inferer).calls == [20, 25]
        ref = infer.infer_chunked(model, infer.model_inferer(model), data, chunk_size=10)
    assert isinstance(got, LabelResult) and got.n == 45
    assert np.all(np.abs(got.labels - ref.labels) <= 1e-9 * ref.errors)
    store = ChunkStore(tmp_path / infer.model_key(model, inferer), "chunk")
    for start in range(0, 45, 10):
        key = infer.chunk_key(data.subset(np.arange(start, min(start + 10, 45))))
        kept = store.load(key)
        assert kept is not None, start
        mine = got.rows(start, start + 10).to_arrays()
        assert kept.keys() >= mine.keys()
        for name, value in mine.items():
            np.testing.assert_array_equal(kept[name], value, err_msg=name)


def test_label_result_rows_undo_concatenate(fast_model):
    model = SlamfwModel.load(fast_model)
    (prep,) = _prepared(model, [12])
    res = infer.label_spectra(model, infer.model_inferer(model), None, prep["flux"], prep["ivar"], prep["ids"],
                              prep["coverage"])
    again = LabelResult.concatenate([res.rows(0, 5), res.rows(5, 12)])
    a, b = res.to_arrays(), again.to_arrays()
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k], equal_nan=a[k].dtype.kind == "f") for k in a)
    assert res.rows(3, 7).n == 4 and res.rows(3, 7).extra.keys() == res.extra.keys()


def test_remote_workers_infer_their_own_chunks(fast_model):
    """Where the workers are not on this machine (a remote Dask scheduler), each infers its chunks,
    as on the CPU; a stars_per_call that is not a positive number is refused by name."""
    model = SlamfwModel.load(fast_model)

    class Remote(SerialExecutor):
        workers_on_this_machine = False
    assert infer.in_process_batch(model, _Recording(25), Remote()) is None
    assert infer.in_process_batch(model, _Recording(25), SerialExecutor()) == 25
    assert infer.in_process_batch(model, infer.model_inferer(model), SerialExecutor()) is None
    with pytest.raises(ConfigError, match="stars_per_call gave 0"):
        infer.in_process_batch(model, _Recording(0), SerialExecutor())
    dask = registry.get_component("executor", "dask")
    assert dask(address="tcp://127.0.0.1:8786").workers_on_this_machine is False
    assert dask().workers_on_this_machine is True
    assert registry.get_component("executor", "local")().workers_on_this_machine is True

    class WrittenFor12(Executor):        # an executor from before plugin API 1.3: the earlier behaviour
        pass
    assert WrittenFor12().workers_on_this_machine is False
    # and its workers infer their own chunks: the in-process calls are not made
    raw = registry.create("reader", "mock", {"n_stars": 20, "seed": 6, "n_pixels": 150, "continuum": False}).read()
    data = infer.prepare_for_model(infer.model_labels_only(raw, model), model)
    inferer = _Recording(25)
    with using_executor(Remote()):
        infer.infer_chunked(model, inferer, data, chunk_size=10)
    assert type(inferer).calls == [10, 10]


def test_a_chunk_that_fails_to_prepare_leaves_the_prepared_ones_fitted(fast_model):
    """A failure in a later chunk's reading or preparation: the chunks prepared before it are
    fitted and handed on (to be saved) before the error goes up; a bad star is named within its
    call."""
    model = SlamfwModel.load(fast_model)
    preps = _prepared(model, [10, 10])

    def stream():
        yield from preps
        raise OSError("the survey file is cut short")
    inferer = _Recording(64)
    got = []
    with using_executor(SerialExecutor()), pytest.raises(OSError, match="cut short"):
        for prep, res in infer.infer_in_process(stream(), model, inferer, None, 64):
            got.append(res.n)
    assert got == [10, 10] and type(inferer).calls == [20]
    bad = dict(preps[1], flux=preps[1]["flux"].copy())
    bad["flux"][3, 5] = np.nan
    with using_executor(SerialExecutor()), pytest.raises(DataError, match=r"star 13 .* joining 2 chunk\(s\)"):
        list(infer.infer_in_process([preps[0], bad], model, inferer, None, 64))


def test_lm_asks_for_in_process_calls_on_the_device_only(fast_model, monkeypatch):
    model = SlamfwModel.load(fast_model)
    assert registry.create("inferer", "lm", {}).stars_per_call(model) is None
    _stand_in_gpu(monkeypatch)
    lm = registry.create("inferer", "lm", {"device": "cuda", "n_starts": 2})
    train = np.asarray(model.train_labels)
    assert lm.stars_per_call(model) == maxlike._batch_stars(2, model.emulator.n_pixels_, train.shape[1], "cuda",
                                                            len(train))


def test_lm_on_the_device_fits_in_the_calling_process_under_any_executor(fast_model, monkeypatch):
    """A direct ``infer`` call (training's calibration makes them) with ``device = "cuda"`` under
    the local executor: its batches run in this process, one after another (a worker, without the
    stand-in, could not fit them); the labels are the CPU's."""
    model = SlamfwModel.load(fast_model)
    (prep,) = _prepared(model, [20])
    cpu = registry.create("inferer", "lm", {}).infer(model, prep["flux"], prep["ivar"])
    _stand_in_gpu(monkeypatch)
    monkeypatch.setattr(maxlike, "BATCH_STARS_DEVICE", 8)            # 3 batches
    with using_executor(LocalExecutor(workers=2)):
        gpu = registry.create("inferer", "lm", {"device": "cuda"}).infer(model, prep["flux"], prep["ivar"])
    assert np.all(np.abs(gpu.labels - cpu.labels) <= 1e-6 * cpu.errors)
