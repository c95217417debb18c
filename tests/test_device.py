"""``lm``'s ``device``: the batched solver on an array module (numpy; CuPy for a GPU).

The least-squares code is the same on both devices, so the CPU runs of the device path (the
emulators' ``on_device(numpy)`` evaluators through ``batched_lm``) test its logic everywhere; the
GPU test runs only where CuPy sees a CUDA GPU, and is skipped cleanly elsewhere."""
import numpy as np
import pytest

import slamfw.stats.device as device
from slamfw import (ConfigError, Emulator, LeastSquaresForm, TrainedEmulator, gpu_available, likelihood_weights,
                    registry)
from slamfw.stats.batched_lm import batched_lm
from slamfw.stats.likelihood import best_library_matches

from .cupy_standin import DeviceArray, make_module

GPU = gpu_available()


@pytest.fixture(scope="module")
def models(small_train):
    t = small_train
    out = {"slam": TrainedEmulator(registry.create("emulator", "slam", dict(C=[10.0], gamma=[0.1, 1.0], n_folds=3))
                                   .fit(t.labels, t.flux, t.ivar), t.labels, t.label_names)}
    for name in ("krr", "cannon"):
        out[name] = TrainedEmulator(registry.create("emulator", name, {}).fit(t.labels, t.flux, t.ivar), t.labels,
                                    t.label_names)
    return out


@pytest.mark.parametrize("module", ["numpy", "cupy stand-in"])
@pytest.mark.parametrize("name", ["slam", "krr", "cannon"])
def test_on_device_is_predict_and_jacobian(models, name, module):
    """Each emulator's device evaluator, on numpy and on the strict stand-in for CuPy
    (tests/cupy_standin.py: no implicit copy to the host, no host array in device arithmetic,
    the results device arrays), equals its ``predict_and_jacobian``."""
    xp = np if module == "numpy" else make_module()
    emu = models[name].emulator
    theta = models[name].train_labels[:7] * (1 + 0.01 * np.arange(7))[:, None]
    flux, jac = emu.predict_and_jacobian(theta)
    f2, j2 = emu.on_device(xp)(xp.asarray(theta))
    if xp is not np:
        assert isinstance(f2, DeviceArray) and isinstance(j2, DeviceArray)
        f2, j2 = f2.get(), j2.get()
    assert f2.shape == flux.shape and j2.shape == jac.shape
    np.testing.assert_allclose(f2, flux, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(j2, jac, rtol=1e-10, atol=1e-12 * np.abs(jac).max())


def _problem(model, rng, n=12):
    emu = model.emulator
    truth = model.train_labels[rng.choice(len(model.train_labels), n, replace=False)]
    flux = emu.predict(truth) + rng.normal(0, 0.01, (n, emu.n_pixels_))
    ivar = np.full_like(flux, 1e4)
    train = np.asarray(model.train_labels, float)
    mean, scale = train.mean(0), train.std(0, ddof=1)
    w = likelihood_weights(ivar, emu.model_error_)
    z = (train - mean) / scale
    starts = z[best_library_matches(flux, w, emu.predict(train), 2, z, 1.0)]
    return flux, w, starts, mean, scale


@pytest.mark.parametrize("name", ["slam", "cannon"])
def test_batched_lm_on_the_device_path_equals_the_default(models, name, rng):
    """numpy through the device path (xp, on_device) gives the default path's fit."""
    model = models[name]
    flux, w, starts, mean, scale = _problem(model, rng)
    ref = batched_lm(model.emulator, flux, w, starts, [None] * len(flux), mean, scale)
    dev = batched_lm(model.emulator, flux, w, starts, [None] * len(flux), mean, scale, xp=np,
                     evaluate=model.emulator.on_device(np))
    assert ref["converged"].all()
    for key in ("z", "cost", "converged", "nfev"):
        np.testing.assert_allclose(dev[key], ref[key], rtol=1e-9, atol=1e-12)


def test_unknown_and_unusable_devices_are_refused(models, monkeypatch):
    with pytest.raises(ConfigError, match="use one of cpu, cuda"):
        device.array_module("tpu")
    with pytest.raises(ConfigError, match="batched = true"):
        registry.create("inferer", "lm", {"device": "cuda", "batched": False}).infer(
            models["slam"], np.ones((1, models["slam"].emulator.n_pixels_)), np.ones((1, models["slam"].emulator.n_pixels_)))

    class NoDevice(Emulator):
        pass

    # a GPU that can be used, but an emulator without on_device
    monkeypatch.setattr(device, "array_module", lambda name: object())
    with pytest.raises(ConfigError, match="emulator NoDevice cannot run there"):
        device.check_device("cuda", NoDevice())
    device.check_device("cuda", models["krr"].emulator)           # krr can


@pytest.mark.skipif(GPU, reason="a GPU is present: the refusal is not reached")
def test_cuda_without_a_gpu_says_what_is_missing(models):
    with pytest.raises(ConfigError, match="device 'cuda'"):
        registry.create("inferer", "lm", {"device": "cuda"}).infer(
            models["slam"], np.ones((1, models["slam"].emulator.n_pixels_)), np.ones((1, models["slam"].emulator.n_pixels_)))


@pytest.mark.skipif(not GPU, reason="no CUDA GPU (CuPy) on this machine")
@pytest.mark.parametrize("name", ["slam", "krr", "cannon"])
def test_gpu_labels_equal_the_cpu_labels(models, name, rng):
    model = models[name]
    flux, w, starts, mean, scale = _problem(model, rng, n=40)
    ivar = np.full_like(flux, 1e4)
    cpu = registry.create("inferer", "lm", {"device": "cpu"}).infer(model, flux, ivar)
    gpu = registry.create("inferer", "lm", {"device": "cuda"}).infer(model, flux, ivar)
    np.testing.assert_array_equal(gpu.converged, cpu.converged)
    both = cpu.converged & gpu.converged
    assert both.mean() > 0.9
    # 1e-2 of the error: on an H200, 3 of 20,000 krr fits differed by more than 1e-3 (at most 1.6e-3;
    # the median 1.5e-11), rounding taking them along another path to their minimum; a GPU bug moves
    # labels by far more (the batched solver's own target against the per-star one is 0.05)
    assert np.all(np.abs(gpu.labels[both] - cpu.labels[both]) <= 1e-2 * cpu.errors[both])
    np.testing.assert_allclose(gpu.errors[both], cpu.errors[both], rtol=1e-6)


@pytest.mark.parametrize("n_train", [120, 1000])
def test_gpu_batch_peak_memory_stays_within_twice_its_budget(n_train, monkeypatch):
    """The GPU's batch (maxlike.BATCH_BYTES_DEVICE) is sized so that the solver's arrays fit: the
    peak memory of a whole batch through the device code on numpy arrays (tracemalloc sees numpy's
    allocations), with few pixels and many training stars (the (rows, M) kernel matrices then
    dominate) as with fewer stars. Without the kernel matrices in the budget it was 5.8 times it
    at 1500 stars."""
    import tracemalloc

    from slamfw.stats import maxlike
    from .conftest import mock_set
    from slamfw.config import PreprocessConfig
    from slamfw.preprocess import prepare
    t = prepare(mock_set(n_train, seed=11), PreprocessConfig(), registry.create("normalizer", "none"))
    emu = registry.create("emulator", "krr", {}).fit(t.labels, t.flux, t.ivar)
    n_pix, n_lab, k = emu.n_pixels_, t.labels.shape[1], 3
    monkeypatch.setattr(maxlike, "BATCH_BYTES_DEVICE", 8 * 2 ** 20)
    n = maxlike._batch_stars(k, n_pix, n_lab, "cuda", n_train)
    assert n >= 50 and n > maxlike._batch_stars(k, n_pix, n_lab, "cpu") // 10
    rng = np.random.default_rng(0)
    train = np.asarray(t.labels, float)
    mean, scale = train.mean(0), train.std(0, ddof=1)
    flux = emu.predict(train[rng.integers(0, n_train, n)]) + rng.normal(0, 0.01, (n, n_pix))
    starts = (train[rng.integers(0, n_train, (n, k))] - mean) / scale
    tracemalloc.start()
    try:
        res = batched_lm(emu, flux, np.full((n, n_pix), 100.0), starts, [None] * n, mean, scale, xp=np,
                         evaluate=emu.on_device(np))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert res["converged"].mean() > 0.9
    assert peak <= 2 * maxlike.BATCH_BYTES_DEVICE


def test_a_batch_the_gpu_cannot_hold_is_fitted_in_pieces(models, rng, monkeypatch, caplog):
    """Out of GPU memory (CuPy's OutOfMemoryError is a MemoryError), the batch is fitted in halves
    and the process's later batches in pieces no larger: the same fits, in the same row order."""
    import logging

    from slamfw.stats import maxlike
    model = models["krr"]
    flux, w, starts, mean, scale = _problem(model, rng, n=20)
    ref = batched_lm(model.emulator, flux, w, starts, [None] * 20, mean, scale)
    sizes = []

    def small_gpu(emulator, flux, *args, **kwargs):
        sizes.append(len(flux))
        if len(flux) > 6:
            raise MemoryError("Out of memory allocating 1,234 bytes (fake)")
        return batched_lm(emulator, flux, *args, **kwargs)
    monkeypatch.setattr(maxlike, "batched_lm", small_gpu)
    monkeypatch.setattr(maxlike, "_DEVICE_MAX_STARS", {})
    with caplog.at_level(logging.WARNING, logger="slamfw.stats.maxlike"):
        got = maxlike._device_lm("cuda", model.emulator, flux, w, starts, [None] * 20, mean, scale, xp=np)
    assert sizes == [20, 10, 5, 5, 5, 5]              # 20 and 10 fail; the halves of 10 fit
    assert maxlike._DEVICE_MAX_STARS == {"cuda": 5}
    assert [r.message.count("out of memory") for r in caplog.records] == [1, 1]
    # the records hold the error's text, not the error: a kept record (caplog here) would keep its
    # traceback and the failed batch's device arrays alive (on an H200 under a 1 GiB pool limit,
    # the halving then went down to one star and still ran out)
    assert not [a for r in caplog.records for a in r.args if isinstance(a, BaseException)]
    assert got["n_evals"] == ref["n_evals"]
    for key in ("z", "cost", "jtj", "converged", "nfev"):
        np.testing.assert_allclose(got[key], ref[key], rtol=1e-9, atol=1e-12)
    sizes.clear()                                      # a later batch: pieces of 5 at once, no failure
    maxlike._device_lm("cuda", model.emulator, flux[:12], w[:12], starts[:12], [None] * 12, mean, scale, xp=np)
    assert sizes == [5, 5, 2]
    with pytest.raises(MemoryError):                   # one star that does not fit: the error itself
        monkeypatch.setattr(maxlike, "_DEVICE_MAX_STARS", {})
        monkeypatch.setattr(maxlike, "batched_lm", lambda *a, **k: (_ for _ in ()).throw(MemoryError("none")))
        maxlike._device_lm("cuda", model.emulator, flux[:1], w[:1], starts[:1], [None], mean, scale, xp=np)


@pytest.mark.parametrize("name", ["slam", "cannon"])
def test_lm_cuda_path_runs_on_a_stand_in_for_cupy(models, name, rng, monkeypatch):
    """The inferer's whole device = "cuda" path (check, batch sizes, the device evaluator, the
    out-of-memory halving) on the strict stand-in for CuPy: the labels of the CPU path."""
    from slamfw.stats import maxlike
    xp = make_module()
    monkeypatch.setattr(device, "array_module", lambda dev: np if dev == "cpu" else xp)
    monkeypatch.setattr(maxlike, "array_module", lambda dev: np if dev == "cpu" else xp)
    monkeypatch.setattr(maxlike, "_DEVICE_MAX_STARS", {})
    seen = []

    def small_gpu(*args, **kwargs):
        if kwargs["xp"] is xp:                         # the device path's calls
            seen.append(len(args[1]))
            if len(args[1]) > 16:
                raise MemoryError("fake")
        return batched_lm(*args, **kwargs)
    monkeypatch.setattr(maxlike, "batched_lm", small_gpu)
    model = models[name]
    flux, w, starts, mean, scale = _problem(model, rng, n=40)
    ivar = np.full_like(flux, 1e4)
    cpu = registry.create("inferer", "lm", {"device": "cpu"}).infer(model, flux, ivar)
    gpu = registry.create("inferer", "lm", {"device": "cuda"}).infer(model, flux, ivar)
    assert seen == [40, 20, 10, 10, 10, 10]             # one batch of all 40 stars, then halves that fit
    np.testing.assert_array_equal(gpu.converged, cpu.converged)
    both = cpu.converged & gpu.converged
    assert both.mean() > 0.9
    assert np.all(np.abs(gpu.labels[both] - cpu.labels[both]) <= 1e-6 * cpu.errors[both])


# ------------------------------------------------------------------ CuPy's rules, on the CPU
@pytest.mark.parametrize("box", [False, True])
@pytest.mark.parametrize("steps", ["minpack", "secant"])
@pytest.mark.parametrize("name", ["slam", "krr", "cannon"])
def test_batched_lm_keeps_cupys_rules(models, name, steps, box, rng):
    """The batched solver, both kinds of steps, on the strict stand-in: what it returns is on the
    host, and equals the CPU path's fit. With ``box``, each star's prior box ends a third of its
    first label's spread below that label's fit, so that most rows end held on the box's edge (the
    projected steps' device path)."""
    xp = make_module()
    model = models[name]
    flux, w, starts, mean, scale = _problem(model, rng)
    forms = [None] * len(flux)
    if box:
        free = batched_lm(model.emulator, flux, w, starts, forms, mean, scale, steps=steps)
        top = free["z"].reshape(len(flux), -1, free["z"].shape[1])[:, 0, 0] * scale[0] + mean[0] - 0.3 * scale[0]
        forms = [LeastSquaresForm(np.full(3, np.nan), np.full(3, np.inf), np.full(3, -np.inf),
                                  np.array([t, np.inf, np.inf])) for t in top]
    ref = batched_lm(model.emulator, flux, w, starts, forms, mean, scale, steps=steps)
    dev = batched_lm(model.emulator, flux, w, starts, forms, mean, scale, steps=steps, xp=xp,
                     evaluate=model.emulator.on_device(xp))
    if box:
        edge = np.repeat(top, starts.shape[1])
        held = np.isclose(ref["z"][:, 0] * scale[0] + mean[0], edge, rtol=0, atol=1e-3 * scale[0])
        assert held.mean() > 0.5
    assert ref["converged"].all()
    for key in ("z", "cost", "converged", "nfev", "jtj"):
        assert isinstance(dev[key], np.ndarray), key
    # the device evaluators round otherwise than the CPU's compiled terms: the same fit to
    # far below its formal errors (the covariance is (J^T J)^-1 in standardised labels)
    dz = dev["z"] - ref["z"]
    assert np.sqrt(np.einsum("rl,rlm,rm->r", dz, ref["jtj"], dz)).max() < 1e-6
    np.testing.assert_allclose(dev["cost"], ref["cost"], rtol=1e-9)
    np.testing.assert_array_equal(dev["converged"], ref["converged"])


def test_the_strict_stand_in_refuses_what_cupy_refuses():
    """The rules the tests above rely on (tests/cupy_standin.py), each one CuPy's."""
    xp = make_module()
    d, host = xp.asarray([[1.0, 2.0], [3.0, 4.0]]), np.ones(2)
    for leak in (lambda: np.asarray(d), lambda: np.array([d[0], d[1]]), lambda: host.__setitem__(slice(None), d[0]),
                 lambda: np.ones(2) + d[0], lambda: d[0] * host, lambda: d * np.asarray(2.0), lambda: d[0] + [1.0, 2.0],
                 lambda: np.where(d > 1, d, host), lambda: xp.minimum(d, np.asarray(0.1)),
                 lambda: np.concatenate([d, host[None]]), lambda: range(d[0, 0].astype(int))):
        with pytest.raises(TypeError):
            leak()
    for view in ("data", "ctypes", "flat", "base"):
        with pytest.raises(AttributeError):
            getattr(d, view)
    total = d.sum()
    assert isinstance(total, DeviceArray) and total.ndim == 0 and float(total) == 10.0 and f"{total:.1f}" == "10.0"
    assert isinstance(np.exp(d), DeviceArray) and isinstance(d * 2.0 + np.float64(1.0), DeviceArray)
    assert isinstance(xp.where(d > 1, d, 0.0), DeviceArray) and d[xp.asarray([1])].shape == (1, 2)
    assert xp.array([d[0], d[1]]).shape == (2, 2) and isinstance(xp.stack([d, d]), DeviceArray)
    singular = xp.asarray(np.stack([np.eye(2), np.zeros((2, 2))]))
    x = xp.linalg.solve(singular, xp.asarray(np.ones((2, 2, 1)))).get()
    assert np.all(x[0] == 1.0) and np.all(np.isnan(x[1]))
    with pytest.raises(AttributeError):
        xp.errstate
    assert xp.asnumpy(d).tolist() == d.tolist() == [[1.0, 2.0], [3.0, 4.0]]


def test_the_strict_stand_in_is_stricter_than_cupy_where_it_says():
    """Refused here, though CuPy takes them (or fails otherwise): code that passes here relies on none."""
    xp = make_module()
    d, host = xp.asarray([[1.0, 2.0], [3.0, 4.0]]), np.ones(2)
    for stricter in (lambda: d[np.array([0, 1])], lambda: d.__setitem__(0, host), lambda: xp.sum(host)):
        with pytest.raises(TypeError):
            stricter()
