"""Spectra on a grid per star, and air/vacuum wavelengths: SpectralSet.stack, prepare, the model."""
import numpy as np
import pytest

from slamfw import DataError, SpectralSet, registry
from slamfw.config import PreprocessConfig
from slamfw.data.media import air_to_vacuum, convert_medium, vacuum_to_air
from slamfw.preprocess import grid_coverage, prepare

NONE = registry.create("normalizer", "none")


def _line(wave, centre, depth=0.6, width=0.8):
    return 1.0 - depth * np.exp(-0.5 * ((wave - centre) / width) ** 2)


def _star(start, stop, n, centre, sid, medium="vacuum", **meta):
    wave = np.linspace(start, stop, n)
    return SpectralSet(wave=wave, flux=_line(wave, centre)[None], ivar=np.full((1, n), 1e4), ids=[sid],
                       meta={k: np.array([v]) for k, v in meta.items()}, medium=medium)


def test_stack_keeps_each_grid_and_pads():
    a = _star(5000, 5100, 201, 5050, "a", rv=10.0)
    b = _star(5002, 5098, 150, 5050, "b", name="x")
    s = SpectralSet.stack([a, b], source="two files")
    assert s.per_star_grid and s.wave.shape == (2, 201) and s.n_pixels == 201
    np.testing.assert_array_equal(s.star_wave(0), a.wave)
    np.testing.assert_array_equal(s.star_wave(1)[:150], b.wave)
    assert np.all(np.diff(s.star_wave(1)) > 0)                       # padding continues the grid
    assert not s.mask[1, 150:].any() and (s.ivar[1, 150:] == 0).all()
    # a set without rv is at rest: 0 there (NaN would be an unknown rv, flag_rv); other columns "" or NaN
    assert s.meta["rv"].tolist() == [10.0, 0.0] and s.meta["name"].tolist() == ["", "x"]
    assert s.medium == "vacuum"
    sub = s.subset([1])
    assert sub.wave.shape == (1, 201) and sub.ids.tolist() == ["b"]
    same = SpectralSet.stack([a, _star(5000, 5100, 201, 5040, "c")])
    assert not same.per_star_grid                                    # equal grids stay one grid


def test_stack_refuses_mixed_media_and_label_names():
    with pytest.raises(DataError, match="mix wavelength media"):
        SpectralSet.stack([_star(5000, 5100, 50, 5050, "a"), _star(5000, 5100, 50, 5050, "b", medium="air")])
    def lab(sid, name):
        return SpectralSet(wave=np.linspace(1, 2, 5), flux=np.ones((1, 5)), ivar=np.ones((1, 5)), ids=[sid],
                           labels=[[1.0]], label_names=[name], label_units=["K"], medium="vacuum")
    with pytest.raises(DataError, match="different labels"):
        SpectralSet.stack([lab("a", "Teff"), lab("b", "logg")])
    mixed = SpectralSet.stack([_star(5000, 5100, 5, 5050, "a"), lab("b", "Teff")])   # unlabelled: NaN
    assert mixed.label_names == ["Teff"] and np.isnan(mixed.labels[0, 0]) and mixed.labels[1, 0] == 1.0


def test_per_star_wavelengths_validated_by_star():
    wave = np.array([[1.0, 2.0, 3.0], [1.0, 3.0, 2.0]])
    with pytest.raises(DataError, match="star 'b'.*increase strictly"):
        SpectralSet(wave=wave, flux=np.ones((2, 3)), ivar=np.ones((2, 3)), ids=["a", "b"])
    with pytest.raises(DataError, match="3 wavelength rows"):
        SpectralSet(wave=np.tile([1.0, 2.0], (3, 1)), flux=np.ones((2, 2)), ivar=np.ones((2, 2)), ids=["a", "b"])
    with pytest.raises(DataError, match="medium"):
        SpectralSet(wave=[1.0, 2.0], flux=np.ones((1, 2)), ivar=np.ones((1, 2)), ids=["a"], medium="water")


@pytest.mark.parametrize("normalizer", ["none", "spline"])
def test_prepare_per_star_grid_equals_each_star_alone(normalizer):
    """Each star is normalised on its own window of pixels: alone, or stacked with stars on other
    (longer, shorter: padded) grids, it comes out the same."""
    norm = registry.create("normalizer", normalizer, {} if normalizer == "none" else {"smoothing_length": 30.0})
    wide = _star(4700, 5400, 1401, 5050, "a", rv=30.0)
    wide.flux = wide.flux * (1.0 + 2e-4 * (wide.wave - 5000.0))          # a sloped continuum
    stars = [wide, _star(5001, 5097, 97, 5060, "b", rv=-20.0), _star(4995, 5105, 451, 5045, "c", rv=0.0)]
    cfg = PreprocessConfig(wave_min=5005, wave_max=5095, wave_step=0.5, max_bad_pixels=1000)
    grid = np.arange(5005, 5095.001, 0.5)
    together = prepare(SpectralSet.stack(stars), cfg, norm, grid=grid)
    for i, s in enumerate(stars):
        alone = prepare(s, cfg, norm, grid=grid)
        np.testing.assert_allclose(together.flux[i], alone.flux[0], rtol=0, atol=1e-12)
        np.testing.assert_allclose(together.ivar[i], alone.ivar[0], rtol=1e-12)
    # star b covers 5001-5097 A shifted by -20 km/s: the grid beyond ~5097.3 is outside it
    if normalizer == "spline":
        return
    cov = together.meta["grid_coverage"]
    assert cov[0] == 1.0 and cov[2] == 1.0 and 0.9 < cov[1] <= 1.0


def test_grid_coverage_counts_the_span_of_good_pixels():
    grid = np.linspace(4000, 5000, 101)
    wave = np.linspace(3900, 5100, 121)
    ivar = np.ones((2, 121))
    ivar[1, wave > 4500] = 0.0                     # star 2 has good pixels only below 4500 A
    cov = grid_coverage(wave, ivar, np.zeros(2), grid)
    assert cov[0] == 1.0 and cov[1] == pytest.approx(51 / 101)


def test_air_vacuum_conversion():
    # H-alpha: 6562.80 A in air is 6564.61 A in vacuum
    assert air_to_vacuum(6562.80) == pytest.approx(6564.61, abs=0.01)
    w = np.linspace(3500, 25000, 500)
    np.testing.assert_allclose(vacuum_to_air(air_to_vacuum(w)), w, atol=1e-6)
    assert convert_medium(w, "", "vacuum") is not None and np.array_equal(convert_medium(w, "", "vacuum"), w)
    assert np.array_equal(convert_medium(w, "air", "air"), w)
    with pytest.raises(DataError, match="medium"):
        convert_medium(w, "air", "glass")


def test_prepare_converts_a_vacuum_survey_to_an_air_grid():
    """A line at 5050 A in air appears at its vacuum wavelength in a vacuum survey; prepared for an
    air model, it lands back at 5050 A."""
    vac_centre = float(air_to_vacuum(5050.0))
    survey = _star(4990, 5110, 2401, vac_centre, "v", medium="vacuum")
    grid = np.arange(5040, 5060.001, 0.05)
    cfg = PreprocessConfig(max_bad_pixels=1000)
    to_air = prepare(survey, cfg, NONE, grid=grid, medium="air")
    assert to_air.medium == "air"
    assert grid[np.argmin(to_air.flux[0])] == pytest.approx(5050.0, abs=0.05)
    as_is = prepare(survey, cfg, NONE, grid=grid)                   # no medium asked: not converted
    assert grid[np.argmin(as_is.flux[0])] == pytest.approx(vac_centre, abs=0.05)
    assert abs(vac_centre - 5050.0) > 1.0


def test_model_records_the_training_medium(tmp_path, small_slam, small_train):
    from slamfw.model import SlamfwModel
    model = SlamfwModel(emulator=small_slam, emulator_name="slam", wave=small_train.wave,
                        label_names=list(small_train.label_names), label_units=list(small_train.label_units),
                        train_labels=small_train.labels, train_ids=small_train.ids, medium="air")
    assert SlamfwModel.load(model.save(tmp_path / "m.npz")).medium == "air"


def test_a_model_from_before_media_and_train_chi2_still_loads(tmp_path, small_slam, small_train):
    import json

    from slamfw.model import SlamfwModel
    model = SlamfwModel(emulator=small_slam, emulator_name="slam", wave=small_train.wave,
                        label_names=list(small_train.label_names), label_units=list(small_train.label_units),
                        train_labels=small_train.labels, train_ids=small_train.ids, medium="air",
                        train_chi2={"median": 1.0, "p99": 2.0})
    path = model.save(tmp_path / "m.npz")
    with np.load(path) as z:
        files = {k: z[k] for k in z.files}
    key = next(k for k in files if k.startswith("__"))
    meta = json.loads(str(files[key]))
    del meta["medium"], meta["train_chi2"]
    files[key] = np.array(json.dumps(meta))
    np.savez(tmp_path / "old.npz", **files)
    old = SlamfwModel.load(tmp_path / "old.npz")
    assert old.medium == "" and old.train_chi2 is None
    assert old.emulator.predict(small_train.labels[:2]).shape == (2, small_train.n_pixels)
