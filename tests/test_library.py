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
    np.testing.assert_array_equal(first, emu.predict(train))
    assert library.library_flux(emu, train) is first              # looked up, not computed again
    assert not first.flags.writeable
    jac = library.library_jacobian(emu, train)
    np.testing.assert_array_equal(jac, emu.predict_and_jacobian(train)[1])
    assert library.library_jacobian(emu, train) is jac
    # other labels: computed for them
    other = library.library_flux(emu, train[:10])
    assert other.shape == (10, emu.n_pixels_)
    np.testing.assert_array_equal(other, emu.predict(train[:10]))


def test_an_emulator_fitted_again_in_place_gets_its_new_library():
    a, b = mock_set(40, seed=3), mock_set(40, seed=4)
    emu = registry.create("emulator", "cannon", {})
    emu.fit(a.labels, a.flux, a.ivar)
    before = library.library_flux(emu, a.labels).copy()
    jac_before = library.library_jacobian(emu, a.labels).copy()
    emu.fit(a.labels, b.flux, b.ivar)                              # the same labels, other spectra
    after = library.library_flux(emu, a.labels)
    np.testing.assert_array_equal(after, emu.predict(a.labels))
    assert not np.array_equal(after, before)
    np.testing.assert_array_equal(library.library_jacobian(emu, a.labels), emu.predict_and_jacobian(a.labels)[1])
    assert not np.array_equal(library.library_jacobian(emu, a.labels), jac_before)


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
    if box:                                  # a box that leaves out the hottest training stars
        hot = np.quantile(train[:, 0], 0.7)
        form = LeastSquaresForm(np.full(3, np.nan), np.full(3, np.inf), train.min(0) - [0.0, 1.0, 1.0],
                                np.array([hot, np.inf, np.inf]))
        forms = [form] * len(w)
        assert np.any(train[idx][..., 0] > hot)          # some starts are moved into the box
    start_model = (library.library_flux(emu, train)[idx], library.library_jacobian(emu, train)[idx])
    evaluated = batched_lm(emu, noisy.flux, w, starts, forms, mean, scale)
    looked_up = batched_lm(emu, noisy.flux, w, starts, forms, mean, scale, start_model=start_model)
    moved = int(np.sum(train[idx][..., 0] > hot)) if box else 0
    assert looked_up["n_evals"] == evaluated["n_evals"] - starts.shape[0] * starts.shape[1] + moved
    np.testing.assert_array_equal(looked_up["nfev"], evaluated["nfev"])
    np.testing.assert_array_equal(looked_up["converged"], evaluated["converged"])
    np.testing.assert_allclose(looked_up["z"], evaluated["z"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(looked_up["cost"], evaluated["cost"], rtol=1e-10)


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
    noisy = mock_set(12, seed=22, snr=50.0)
    res = registry.create("inferer", "lm", {"batched": True, "n_starts": 2}).infer(small_model, noisy.flux, noisy.ivar)
    assert res.converged.all() and seen
    mean, scale = train.mean(0), train.std(0, ddof=1)
    for starts, (flux0, jac0) in seen:
        at = np.array([[int(np.argmin(np.abs((train - mean) / scale - s).sum(1))) for s in row] for row in starts])
        np.testing.assert_array_equal(flux0, library.library_flux(emu, train)[at])
        np.testing.assert_array_equal(jac0, library.library_jacobian(emu, train)[at])
