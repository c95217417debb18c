"""The emulated library kept per process (slamfw.stats.library) and the batched solver's starts
looked up in it."""
import numpy as np
import pytest

from slamfw import registry
from slamfw.stats import library
from slamfw.stats.batched_lm import batched_lm
from slamfw.stats.likelihood import best_library_matches, likelihood_weights

from .conftest import mock_set


def test_library_flux_is_the_emulators_and_is_kept(small_model):
    emu, train = small_model.emulator, np.asarray(small_model.train_labels, float)
    library.clear_library_cache()
    first = library.library_flux(emu, train)
    np.testing.assert_allclose(first, emu.predict(train), rtol=1e-12)
    assert library.library_flux(emu, train) is first              # looked up, not computed again
    assert not first.flags.writeable
    jac = library.library_jacobian(emu, train)
    assert jac.shape == (len(train), train.shape[1], emu.n_pixels_)     # pixels last
    np.testing.assert_allclose(jac, emu.predict_and_jacobian(train)[1].transpose(0, 2, 1), rtol=1e-12, atol=1e-12)
    assert library.library_jacobian(emu, train) is jac
    # other labels: computed for them
    other = library.library_flux(emu, train[:10])
    assert other.shape == (10, emu.n_pixels_)
    np.testing.assert_allclose(other, emu.predict(train[:10]), rtol=1e-12)


def test_the_library_goes_with_its_emulator_and_an_unreferenceable_one_is_not_kept():
    import gc
    import weakref
    a = mock_set(30, seed=5)
    emu = registry.create("emulator", "cannon", {}).fit(a.labels, a.flux, a.ivar)
    library.library_flux(emu, a.labels)
    assert emu in library._CACHE
    gone = weakref.ref(emu)
    del emu
    gc.collect()
    assert gone() is None                                   # the cache did not keep it alive

    calls = []

    class Slotted:                           # no __weakref__: cannot be cached
        __slots__ = ("inner",)

        def __init__(self, inner):
            self.inner = inner

        @property
        def n_pixels_(self):
            return self.inner.n_pixels_

        def predict(self, labels):
            calls.append(len(labels))
            return self.inner.predict(labels)

        def predict_and_jacobian(self, labels):
            return self.inner.predict_and_jacobian(labels)
    slotted = Slotted(registry.create("emulator", "cannon", {}).fit(a.labels, a.flux, a.ivar))
    f1 = library.library_flux(slotted, a.labels)
    f2 = library.library_flux(slotted, a.labels)
    np.testing.assert_array_equal(f1, f2)
    assert sum(calls) == 2 * len(a.labels)          # computed at each call
    assert library.library_jacobian(slotted, a.labels) is None


def test_an_emulator_fitted_again_in_place_gets_its_new_library():
    a, b = mock_set(40, seed=3), mock_set(40, seed=4)
    emu = registry.create("emulator", "cannon", {})
    emu.fit(a.labels, a.flux, a.ivar)
    before = library.library_flux(emu, a.labels).copy()
    jac_before = library.library_jacobian(emu, a.labels).copy()
    emu.fit(a.labels, b.flux, b.ivar)                              # the same labels, other spectra
    after = library.library_flux(emu, a.labels)
    np.testing.assert_allclose(after, emu.predict(a.labels), rtol=1e-12)
    assert not np.allclose(after, before, rtol=1e-6)
    jac_after = library.library_jacobian(emu, a.labels)
    np.testing.assert_allclose(jac_after, emu.predict_and_jacobian(a.labels)[1].transpose(0, 2, 1), rtol=1e-12,
                               atol=1e-12)
    assert not np.allclose(jac_after, jac_before, rtol=1e-6)


def test_no_library_jacobian_beyond_its_byte_limit(small_model, monkeypatch):
    emu, train = small_model.emulator, np.asarray(small_model.train_labels, float)
    monkeypatch.setattr(library, "LIBRARY_JACOBIAN_BYTES", 8 * train.size * emu.n_pixels_ - 1)
    assert library.library_jacobian(emu, train) is None
    monkeypatch.setattr(library, "LIBRARY_JACOBIAN_BYTES", 8 * train.size * emu.n_pixels_)
    assert library.library_jacobian(emu, train) is not None


@pytest.mark.parametrize("box", [False, True])
def test_batched_lm_from_looked_up_starts_equals_evaluating_them(small_model, box):
    """The solver's first evaluation of each row looked up in the library gives the fit it gives
    when evaluated; a start that the prior's box moves is evaluated where it was moved to."""
    from slamfw.components.prior import LeastSquaresForm
    emu = small_model.emulator
    train = np.asarray(small_model.train_labels, float)
    mean, scale = train.mean(0), train.std(0, ddof=1)
    noisy = mock_set(30, seed=21, snr=[20, 100])
    w = likelihood_weights(noisy.ivar, emu.model_error_)
    z = (train - mean) / scale
    idx = best_library_matches(noisy.flux, w, library.library_flux(emu, train), 2, z, 1.0)
    starts = z[idx]
    forms = [None] * len(w)
    moved = 0
    if box:                                  # a box that leaves out the hottest training stars
        hot = np.quantile(train[:, 0], 0.7)
        lo, hi = train.min(0) - [0.0, 1.0, 1.0], np.array([hot, np.inf, np.inf])
        forms = [LeastSquaresForm(np.full(3, np.nan), np.full(3, np.inf), lo, hi)] * len(w)
        zlo, zhi = (lo - mean) / scale, (hi - mean) / scale     # as batched_lm clips the starts
        pad = 1e-6 * np.where(np.isfinite(zhi - zlo), zhi - zlo, 1.0)
        moved = int(np.any(np.clip(starts, zlo + pad, zhi - pad) != starts, axis=2).sum())
        assert moved > 0                                  # some starts are moved into the box
    start_model = (library.library_flux(emu, train)[idx], library.library_jacobian(emu, train)[idx])
    evaluated = batched_lm(emu, noisy.flux, w, starts, forms, mean, scale)
    looked_up = batched_lm(emu, noisy.flux, w, starts, forms, mean, scale, start_model=start_model)
    assert looked_up["n_evals"] == evaluated["n_evals"] - starts.shape[0] * starts.shape[1] + moved
    np.testing.assert_array_equal(looked_up["nfev"], evaluated["nfev"])
    np.testing.assert_array_equal(looked_up["converged"], evaluated["converged"])
    np.testing.assert_allclose(looked_up["z"], evaluated["z"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(looked_up["cost"], evaluated["cost"], rtol=1e-10)
    # the model kept at each row's solution: the emulator's flux there, whether the row's start
    # was looked up or evaluated (moved into the box)
    for out in (evaluated, looked_up):
        np.testing.assert_allclose(out["model"], emu.predict(mean + out["z"] * scale), rtol=1e-10, atol=1e-12)


def test_maximum_likelihood_hands_the_solver_the_library_at_its_starts(small_model, monkeypatch):
    import slamfw.stats.maxlike as ml
    emu = small_model.emulator
    train = np.asarray(small_model.train_labels, float)
    seen = []
    real = ml.batched_lm

    def spy(*args, **kwargs):
        seen.append((args[3], kwargs["start_model"]))
        return real(*args, **kwargs)
    monkeypatch.setattr(ml, "batched_lm", spy)
    n = int(np.ceil(ml.LIBRARY_MIN_FRACTION * len(train) / 2))      # stars x 2 starts: just enough rows
    noisy = mock_set(n, seed=22, snr=50.0)
    res = registry.create("inferer", "lm", {"batched": True, "n_starts": 2}).infer(small_model, noisy.flux, noisy.ivar)
    assert res.converged.all() and len(seen) == 1
    mean, scale = train.mean(0), train.std(0, ddof=1)
    starts, (flux0, jac0) = seen[0]
    at = np.array([[int(np.argmin(np.abs((train - mean) / scale - s).sum(1))) for s in row] for row in starts])
    np.testing.assert_array_equal(flux0, library.library_flux(emu, train)[at])
    np.testing.assert_array_equal(jac0, library.library_jacobian(emu, train)[at])
    # a block of fewer rows evaluates its starts (decided by the block alone, whatever the cache holds)
    seen.clear()
    registry.create("inferer", "lm", {"batched": True, "n_starts": 2}).infer(small_model, noisy.flux[:n - 1],
                                                                             noisy.ivar[:n - 1])
    assert len(seen) == 1 and seen[0][1] is None


def test_no_library_lookup_when_its_jacobian_is_too_big(small_model, monkeypatch):
    import slamfw.stats.maxlike as ml
    monkeypatch.setattr(library, "LIBRARY_JACOBIAN_BYTES", 1000)
    seen = []
    real = ml.batched_lm
    monkeypatch.setattr(ml, "batched_lm", lambda *a, **k: seen.append(k["start_model"]) or real(*a, **k))
    noisy = mock_set(40, seed=23, snr=50.0)
    res = registry.create("inferer", "lm", {"batched": True}).infer(small_model, noisy.flux, noisy.ivar)
    assert res.converged.all() and seen == [None]
