"""Damaged checkpoints (training blocks, predict parts, inference chunks) are detected when they are
loaded, named in a WARNING, removed and redone: a rerun succeeds and gives the clean run's result."""
from __future__ import annotations

import logging
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from slamfw import SerialExecutor, registry
from slamfw.cli import main
from slamfw.execution.store import DIGEST_KEY, ChunkStore, check_arrays

from .conftest import REPO, interrupted_at_call
from .test_unlike_training import CONFIG as UNLIKE_CONFIG

DEMO = REPO / "examples" / "demo" / "experiment.toml"


# ------------------------------------------------------------------ ways to damage a piece
def _split(path: Path) -> tuple[ChunkStore, str]:
    prefix, key = path.stem.split("_", 1)
    return ChunkStore(path.parent, prefix), key


def _read(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def truncated(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def zero_bytes(path: Path) -> None:
    path.write_bytes(b"")


def garbage(path: Path) -> None:
    path.write_bytes(np.random.default_rng(0).bytes(2000))


def zip_header_only(path: Path) -> None:
    path.write_bytes(b"PK\x03\x04 damaged")


def bad_crc(path: Path) -> None:
    """Flip the last byte of the first array's data: the zip is intact, its CRC no longer matches."""
    with zipfile.ZipFile(path) as z:
        info = max(z.infolist(), key=lambda i: i.file_size)
    data = bytearray(path.read_bytes())
    off = info.header_offset
    start = off + 30 + int.from_bytes(data[off + 26:off + 28], "little") + int.from_bytes(data[off + 28:off + 30], "little")
    data[start + info.file_size - 1] ^= 0xFF
    path.write_bytes(bytes(data))


def foreign_npz(path: Path) -> None:
    """A valid .npz, with other arrays and no digest (another program, or an older slamfw)."""
    with open(path, "wb") as fh:
        np.savez(fh, foo=np.arange(3.0))


def stale_digest(path: Path) -> None:
    """The piece's own arrays, one of them changed, under the digest of the originals."""
    arrays = _read(path)
    name = next(k for k in sorted(arrays) if k != DIGEST_KEY and arrays[k].dtype.kind == "f" and arrays[k].size)
    arrays[name] = arrays[name] + 1.0
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


DAMAGE = [truncated, zero_bytes, garbage, zip_header_only, bad_crc, foreign_npz, stale_digest]


def _warned_about(caplog, path: Path) -> bool:
    return any(r.levelno == logging.WARNING and str(path) in r.getMessage() for r in caplog.records)


def _warned_in(stderr: str, path: Path) -> bool:
    """The CLI's log (``slamfw`` configures logging itself, so it is read from stderr)."""
    return any(" WARNING " in line and str(path) in line for line in stderr.splitlines())


# ------------------------------------------------------------------ the store itself
@pytest.mark.parametrize("damage", DAMAGE, ids=lambda f: f.__name__)
def test_a_damaged_piece_is_logged_removed_and_missing(tmp_path, caplog, damage):
    store = ChunkStore(tmp_path / "s", "piece")
    arrays = {"a": np.arange(12.0).reshape(3, 4), "ids": np.array(["x", "y", "z"]), "ok": np.array([True, False, True])}
    store.save(3, arrays)
    loaded = store.load(3)
    assert loaded.keys() == arrays.keys() and all(np.array_equal(loaded[k], arrays[k]) for k in arrays)
    damage(store.path(3))
    with caplog.at_level(logging.WARNING):
        assert store.load(3) is None
    assert _warned_about(caplog, store.path(3))
    assert not store.path(3).exists()          # removed: the next save starts afresh
    store.save(3, arrays)
    assert store.load(3) is not None


def test_the_callers_check_rejects_a_piece(tmp_path, caplog):
    store = ChunkStore(tmp_path, "piece")
    store.save("k", {"a": np.zeros((2, 3))})
    assert store.load("k", lambda a: check_arrays(a, {"a": ("f", (2, None))})) is not None
    with caplog.at_level(logging.WARNING):
        assert store.load("k", lambda a: check_arrays(a, {"a": ("f", (5, 3))})) is None
    assert _warned_about(caplog, store.path("k")) and "shape (2, 3)" in caplog.text
    for verdict in (False, "wrong", KeyError("b")):
        store.save("k", {"a": np.zeros((2, 3))})

        def check(arrays, verdict=verdict):
            if isinstance(verdict, Exception):
                raise verdict
            return verdict
        assert store.load("k", check) is None and not store.path("k").exists()


def test_pieces_in_use_by_another_process_are_left_to_it(tmp_path, caplog):
    """Found by a bad-input hunt: two ``predict`` runs of the same model into one folder share
    their parts, and the first to finish deleted them, so the other failed and kept none of its
    work. While another live process marks the folder in use, discard leaves the pieces and notes
    them; the last user deletes its own and the noted ones. A marker of this machine whose process
    is gone is removed; one of another machine is named in a warning, and counts as in use."""
    import json
    import os
    import socket
    import subprocess
    import sys

    from slamfw.execution.liveness import process_start
    from slamfw.execution.store import _marker_name
    store = ChunkStore(tmp_path / "parts", "part")
    for key in ("a", "b", "c"):
        store.save(key, {"x": np.arange(3)})
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    marker = store.folder / _marker_name(other.pid)
    try:
        marker.write_text(json.dumps({"host": socket.gethostname(), "pid": other.pid,
                                      "proc_start": process_start(other.pid)}))
        with store.in_use():
            store.discard(["a"])
        assert store.path("a").is_file()                      # left to the other run, and noted
        assert not (store.folder / _marker_name(os.getpid())).exists()
    finally:
        other.kill()
        other.wait()
    with store.in_use():                                      # the other run is gone, without removing its marker
        store.discard(["b"])
    assert not marker.exists() and not store.path("a").exists() and not store.path("b").exists()
    assert store.path("c").is_file()                          # another job's piece: kept
    far = store.folder / ".in-use-elsewhere-12"
    far.write_text(json.dumps({"host": "elsewhere", "pid": 12, "proc_start": None}))
    with caplog.at_level("WARNING"):
        store.discard(["c"])
    assert store.path("c").is_file() and "marked in use by process 12 of elsewhere" in caplog.text
    far.unlink()
    store.discard([])                                         # the noted piece goes with the next discard
    assert not store.folder.exists()


def test_predict_marks_its_parts_in_use(tmp_path, monkeypatch):
    """predict holds its parts' folder in use from the first part to their removal."""
    from contextlib import contextmanager

    from slamfw import api
    used = []
    original = ChunkStore.in_use

    @contextmanager
    def recorded(self):
        with original(self):
            used.append(self.folder)
            yield
    monkeypatch.setattr(ChunkStore, "in_use", recorded)
    (tmp_path / "exp.toml").write_text(UNLIKE_CONFIG.format(out=tmp_path / "out"))
    model = api.train_to_folder(tmp_path / "exp.toml")
    api.predict_catalog(model, tmp_path / "cat.ecsv", reader="mock", reader_params={"n_stars": 4},
                        executor=SerialExecutor())
    assert len(used) == 1 and used[0].parent == tmp_path / ".checkpoints" and not used[0].exists()


def test_a_parts_name_says_the_medium_of_the_spectra_and_of_the_model():
    """Found by a bad-input hunt: a predict resumed with the other medium reused parts computed with
    the first (Teff off by up to 1021 K on 400 of 3000 stars, silently)."""
    from slamfw import SpectralSet
    from slamfw.workflows.infer import chunk_key
    spectra = [SpectralSet(wave=np.linspace(5000.0, 5010.0, 4), flux=np.ones((2, 4)), ivar=np.ones((2, 4)),
                           ids=["a", "b"], medium=medium) for medium in ("air", "vacuum", "")]
    assert len({chunk_key(ss) for ss in spectra}) == 3
    from types import SimpleNamespace

    from slamfw.workflows.infer import model_key
    lm = registry.create("inferer", "lm", {})
    emulator = registry.create("emulator", "cannon", {})
    models = [SimpleNamespace(train_hash="h", medium=medium, error_model=None, emulator_name="cannon",
                              emulator=emulator, preprocess={}, components={}) for medium in ("air", "vacuum", "")]
    assert len({model_key(m, lm) for m in models}) == 3


def test_check_arrays():
    arrays = {"x": np.zeros((4, 2)), "n": np.arange(4), "s": np.array(["a"])}
    assert check_arrays(arrays, {"x": ("f", (4, 2)), "n": ("iu", (None,)), "s": ("U", None)}) is None
    assert "no array 'y'" in check_arrays(arrays, {"y": ("", None)})
    assert "dtype" in check_arrays(arrays, {"n": ("f", (4,))})
    assert "shape" in check_arrays(arrays, {"x": ("f", (4,))})
    assert check_arrays(arrays, {}, optional={"y": ("f", (1,))}) is None
    assert "shape" in check_arrays(arrays, {}, optional={"x": ("f", (3, 2))})


def test_saving_a_reserved_name_is_refused(tmp_path):
    with pytest.raises(ValueError, match="reserved"):
        ChunkStore(tmp_path).save(0, {DIGEST_KEY: np.zeros(1)})


# ------------------------------------------------------------------ training blocks (slam)
SLAM_KW = dict(C=[1.0], gamma=[0.3], n_folds=3, pixels_per_task=20)


@pytest.fixture(scope="module")
def clean_blocks(small_train, tmp_path_factory):
    """A clean slam fit that keeps its pixel blocks: (the emulator, the folder of its blocks)."""
    work = tmp_path_factory.mktemp("blocks")
    emu = registry.create("emulator", "slam", SLAM_KW)
    emu.workdir = work
    emu.fit(small_train.labels, small_train.flux, small_train.ivar)
    assert len(list(work.rglob("block_*.npz"))) == -(-small_train.n_pixels // 20)
    return emu, work


SLAM_ARRAYS = ("X_train_", "dual_coef_", "intercept_", "gamma_", "C_", "cv_mse_grid_", "cv_md_grid_", "mse_", "md_",
               "n_support_", "model_error_")


@pytest.mark.parametrize("damage", DAMAGE, ids=lambda f: f.__name__)
def test_a_damaged_training_block_is_redone(small_train, clean_blocks, tmp_path, monkeypatch, caplog, damage):
    import slamfw_plugins.emulators.slam as slam_mod
    reference, blocks = clean_blocks
    work = tmp_path / "work"
    shutil.copytree(blocks, work)
    target = sorted(work.rglob("block_*.npz"))[1]
    damage(target)
    real, calls = slam_mod._fit_pixel_block, []
    monkeypatch.setattr(slam_mod, "_fit_pixel_block", lambda *a, **k: (calls.append(1), real(*a, **k))[1])
    emu = registry.create("emulator", "slam", SLAM_KW)
    emu.workdir = work
    with caplog.at_level(logging.WARNING):
        emu.fit(small_train.labels, small_train.flux, small_train.ivar)
    assert _warned_about(caplog, target)
    assert len(calls) == 1                       # only the damaged block is refitted
    for name in SLAM_ARRAYS:
        np.testing.assert_array_equal(getattr(emu, name), getattr(reference, name), err_msg=name)
    assert ChunkStore(target.parent, "block").load(1) is not None   # saved again, whole


SLAM_TRAIN = ["data.train.mock.n_stars=40", "data.train.mock.n_pixels=150", "data.train.mock.continuum=false",
              "normalizer.name=none", "preprocess.wave_step=12", "calibration.enabled=false",
              "emulator.slam.C=[1.0]", "emulator.slam.gamma=[0.3]", "emulator.slam.n_folds=3",
              "emulator.slam.pixels_per_task=40"]


def _train_args(out: Path) -> list[str]:
    return ["train", str(DEMO), *[a for s in SLAM_TRAIN for a in ("--set", s)], "--set", f"output.dir={out}",
            "--executor", "serial"]


def test_slamfw_train_redoes_a_damaged_block(tmp_path, monkeypatch, capfd):
    """Through ``slamfw train``: a block under ``.checkpoints/train`` damaged after a killed run."""
    from slamfw.model import SlamfwModel
    assert main(_train_args(tmp_path / "clean")) == 0
    assert not (tmp_path / "clean" / ".checkpoints").exists()
    clean = SlamfwModel.load(tmp_path / "clean" / "model.npz").emulator

    import slamfw_plugins.emulators.slam as slam_mod
    real = slam_mod._fit_pixel_block
    monkeypatch.setattr(slam_mod, "_fit_pixel_block", interrupted_at_call(real, 3))
    assert main(_train_args(tmp_path / "r")) == 130
    blocks = sorted((tmp_path / "r" / ".checkpoints" / "train").rglob("block_*.npz"))
    assert len(blocks) == 2
    for path, damage in zip(blocks, (truncated, foreign_npz)):
        damage(path)
    monkeypatch.setattr(slam_mod, "_fit_pixel_block", real)
    capfd.readouterr()
    assert main(_train_args(tmp_path / "r")) == 0
    err = capfd.readouterr().err
    assert all(_warned_in(err, p) for p in blocks), err
    assert not (tmp_path / "r" / ".checkpoints").exists()
    again = SlamfwModel.load(tmp_path / "r" / "model.npz").emulator
    for name in SLAM_ARRAYS:
        np.testing.assert_array_equal(getattr(again, name), getattr(clean, name), err_msg=name)


def test_slamfw_train_killed_in_the_calibration_keeps_the_finished_training(tmp_path, monkeypatch):
    """A run stopped in the calibration (the error model's folds) keeps the main training's blocks
    and the folds' finished blocks: the rerun fits only the rest, and gives the clean run's model,
    error model included."""
    from slamfw.model import SlamfwModel
    import slamfw_plugins.emulators.slam as slam_mod
    calib = ["--set", "calibration.enabled=true", "--set", "calibration.folds=2", "--set", "calibration.snr=[20.0, 60.0]"]
    real, calls = slam_mod._fit_pixel_block, []
    monkeypatch.setattr(slam_mod, "_fit_pixel_block", lambda *a, **k: (calls.append(1), real(*a, **k))[1])
    assert main([*_train_args(tmp_path / "clean"), *calib]) == 0
    per_fit = len(calls) // 3                        # the main training and two folds, the same blocks each
    assert per_fit >= 2 and len(calls) == 3 * per_fit
    clean = SlamfwModel.load(tmp_path / "clean" / "model.npz")

    stop_at = 2 * per_fit + 1                        # the second fold's second block
    monkeypatch.setattr(slam_mod, "_fit_pixel_block", interrupted_at_call(real, stop_at + 1))
    assert main([*_train_args(tmp_path / "r"), *calib]) == 130
    calls.clear()
    monkeypatch.setattr(slam_mod, "_fit_pixel_block", lambda *a, **k: (calls.append(1), real(*a, **k))[1])
    assert main([*_train_args(tmp_path / "r"), *calib]) == 0
    assert len(calls) == 3 * per_fit - stop_at       # only the blocks not finished before
    assert not (tmp_path / "r" / ".checkpoints").exists()
    again = SlamfwModel.load(tmp_path / "r" / "model.npz")
    for name in SLAM_ARRAYS:
        np.testing.assert_array_equal(getattr(again.emulator, name), getattr(clean.emulator, name), err_msg=name)
    assert again.error_model.to_dict() == clean.error_model.to_dict()


def test_slamfw_train_failing_to_write_its_model_keeps_the_finished_training(tmp_path, monkeypatch, capsys):
    """Found by a review: the training's blocks were removed before the model file was written, so a
    full disk at that write (the largest file) lost the whole training, while the message said the
    finished pieces were kept. They now go once the model file is written."""
    import errno

    import slamfw_plugins.emulators.slam as slam_mod
    from slamfw.model import SlamfwModel
    real_save = SlamfwModel.save

    def full(self, path):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(SlamfwModel, "save", full)
    assert main(_train_args(tmp_path / "r")) == 2
    assert "finished pieces are kept" in capsys.readouterr().err
    assert list((tmp_path / "r" / ".checkpoints" / "train").rglob("block_*.npz"))
    monkeypatch.setattr(SlamfwModel, "save", real_save)
    real, calls = slam_mod._fit_pixel_block, []
    monkeypatch.setattr(slam_mod, "_fit_pixel_block", lambda *a, **k: (calls.append(1), real(*a, **k))[1])
    assert main(_train_args(tmp_path / "r")) == 0
    assert calls == []                                   # every block reused
    assert (tmp_path / "r" / "model.npz").exists() and not (tmp_path / "r" / ".checkpoints").exists()


# ------------------------------------------------------------------ predict parts
FAST = ["data.train.mock.n_stars=60", "data.train.mock.n_pixels=150", "data.train.mock.continuum=false",
        "normalizer.name=none", "emulator.name=cannon", "preprocess.wave_step=12", "calibration.enabled=false"]


def _predict_args(model: Path, out: Path) -> list[str]:
    return ["predict", str(model), "--reader-param", "n_stars=120", "--reader-param", "seed=3",
            "--chunk-size", "30", "-o", str(out), "--executor", "serial"]


@pytest.fixture(scope="module")
def clean_predict(tmp_path_factory):
    """A fast model, the catalogue of a clean run, and that run's catalogue parts (kept)."""
    root = tmp_path_factory.mktemp("predict")
    assert main(["train", str(DEMO), *[a for s in FAST for a in ("--set", s)], "--set", f"output.dir={root / 'm'}",
                 "--executor", "serial"]) == 0
    model = root / "m" / "model.npz"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ChunkStore, "discard", lambda self, keys: None)    # keep the parts
        assert main(_predict_args(model, root / "c" / "cat.fits")) == 0
    parts = root / "c" / ".checkpoints"
    assert len(list(parts.rglob("part_*.npz"))) == 4
    return model, (root / "c" / "cat.fits").read_bytes(), parts


def wrong_rows(path: Path) -> None:
    """A part whose arrays are whole and carry a valid digest, but one star short in its labels."""
    arrays = _read(path)
    arrays.pop(DIGEST_KEY)
    arrays["labels"] = arrays["labels"][:-1]
    store, key = _split(path)
    store.save(key, arrays)


def other_chunks_ids(path: Path) -> None:
    """A well-formed part of other stars (a valid digest): not this chunk's."""
    arrays = _read(path)
    arrays.pop(DIGEST_KEY)
    arrays["ids"] = np.char.add("other-", arrays["ids"])
    store, key = _split(path)
    store.save(key, arrays)


def no_labels(path: Path) -> None:
    arrays = _read(path)
    arrays.pop(DIGEST_KEY)
    arrays.pop("labels")
    store, key = _split(path)
    store.save(key, arrays)


@pytest.mark.parametrize("damage", DAMAGE + [wrong_rows, other_chunks_ids, no_labels], ids=lambda f: f.__name__)
def test_a_damaged_predict_part_is_redone(clean_predict, tmp_path, capfd, damage):
    model, reference, parts = clean_predict
    shutil.copytree(parts, tmp_path / ".checkpoints")
    target = sorted((tmp_path / ".checkpoints").rglob("part_*.npz"))[2]
    damage(target)
    capfd.readouterr()
    assert main(_predict_args(model, tmp_path / "cat.fits")) == 0
    err = capfd.readouterr().err
    assert _warned_in(err, target), err
    assert "4 chunks (3 reused from an earlier run)" in err
    assert (tmp_path / "cat.fits").read_bytes() == reference         # bit-identical catalogue
    assert not (tmp_path / ".checkpoints").exists()


def test_a_damaged_inference_chunk_is_redone(clean_predict, tmp_path, monkeypatch, caplog):
    """``infer_chunked`` (``slamfw run``, ``api.predict``): the chunks kept under its checkpoint folder."""
    from slamfw.model import SlamfwModel
    from slamfw.workflows.infer import predict
    model = SlamfwModel.load(clean_predict[0])
    kw = dict(reader_overrides={"n_stars": 40, "seed": 5}, chunk_size=10, checkpoint_dir=tmp_path)
    monkeypatch.setattr(ChunkStore, "discard", lambda self, keys: None)
    _, clean = predict(model, None, **kw)
    chunks = sorted(tmp_path.rglob("chunk_*.npz"))
    assert len(chunks) == 4
    for path, damage in zip(chunks, (zero_bytes, bad_crc, wrong_rows, stale_digest)):
        damage(path)
    with caplog.at_level(logging.WARNING):
        _, again = predict(model, None, **kw)
    assert all(_warned_about(caplog, p) for p in chunks)
    a, b = clean.to_arrays(), again.to_arrays()
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k], equal_nan=a[k].dtype.kind == "f") for k in a)


def test_a_damaged_predict_part_is_redone_through_the_api(clean_predict, tmp_path, caplog):
    """``api.predict_catalog`` (what ``slamfw predict`` runs), with a truncated part left by a killed run."""
    from slamfw import api
    from slamfw.components.executor import SerialExecutor
    model, reference, parts = clean_predict
    shutil.copytree(parts, tmp_path / ".checkpoints")
    target = sorted((tmp_path / ".checkpoints").rglob("part_*.npz"))[1]
    truncated(target)
    with caplog.at_level(logging.WARNING):
        res = api.predict_catalog(model, tmp_path / "cat.fits", reader_params={"n_stars": 120, "seed": 3},
                                  chunk_size=30, executor=SerialExecutor())
    assert _warned_about(caplog, target) and res.n_spectra == 120
    assert (tmp_path / "cat.fits").read_bytes() == reference
    assert not (tmp_path / ".checkpoints").exists()


def test_predict_builds_the_models_normaliser_once_for_its_workers(clean_predict, tmp_path, monkeypatch):
    """The model's normaliser is built once, in the parent, and sent to the chunks' tasks with the
    model: a worker process then never loads the plugin registry (which imports every installed
    plugin). The catalogue is the same bits."""
    from slamfw.workflows import infer
    model, reference, _ = clean_predict
    built = []
    real = infer.model_normalizer
    monkeypatch.setattr(infer, "model_normalizer", lambda m: built.append(1) or real(m))
    monkeypatch.setattr(infer.registry, "create", _fail_in_a_task(infer.registry.create))
    from slamfw.registry import manager
    monkeypatch.setattr(manager, "get_plugin_manager", _fail_in_a_task(manager.get_plugin_manager))
    assert main(_predict_args(model, tmp_path / "cat.fits")) == 0
    assert len(built) == 1                                   # 4 chunks, one normaliser
    assert (tmp_path / "cat.fits").read_bytes() == reference


def _fail_in_a_task(create):
    """``create`` (a registry function), failing when called from inside a predict task."""
    import inspect

    def checked(*args, **kwargs):
        if any(f.function == "_predict_chunk" for f in inspect.stack()):
            raise AssertionError("a predict task built a component through the registry")
        return create(*args, **kwargs)
    return checked
