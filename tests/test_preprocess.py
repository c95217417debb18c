import logging

import numpy as np
import pytest

from slamfw import DataError, SpectralSet, registry
from slamfw.config import PreprocessConfig
from slamfw.errors import ConfigError
from slamfw.preprocess import C_KMS, make_grid, prepare, resample, resample_rows

NONE = registry.create("normalizer", "none")


def test_resample_linear_and_variance_propagation():
    wave = np.array([1.0, 2.0, 3.0])
    flux = np.array([1.0, 3.0, 5.0])
    ivar = np.array([1.0, 4.0, 1.0])
    f, iv = resample(wave, flux, ivar, np.array([1.5, 2.0, 2.25]))
    np.testing.assert_allclose(f, [2.0, 3.0, 3.5])
    # var = (1-t)^2 var_a + t^2 var_b
    np.testing.assert_allclose(1 / iv, [0.25 * 1 + 0.25 * 0.25, 0.25, 0.75 ** 2 * 0.25 + 0.25 ** 2 * 1])


def test_resample_bad_neighbours_and_outside():
    wave = np.array([1.0, 2.0, 3.0])
    f, iv = resample(wave, np.ones(3), np.array([1.0, 0.0, 1.0]), np.array([0.5, 1.0, 1.5, 2.0, 3.0, 3.5]))
    assert iv[0] == 0 and iv[-1] == 0          # outside the data
    assert iv[1] > 0 and iv[4] > 0             # exactly on good pixels
    assert iv[2] == 0 and iv[3] == 0           # touches the bad pixel


def test_grid_from_config():
    g = make_grid(PreprocessConfig(wave_min=3900, wave_max=3910, wave_step=2.5), np.arange(3800, 4000.0))
    np.testing.assert_allclose(g, [3900, 3902.5, 3905, 3907.5, 3910])
    g = make_grid(PreprocessConfig(wave_min=3900.5, wave_max=3903), np.arange(3800, 4000.0))
    np.testing.assert_allclose(g, [3901, 3902, 3903])
    # a mistyped step (found by a bad-input hunt: 1e-3 A trained on 1.8 million pixels)
    assert make_grid(PreprocessConfig(wave_min=3900, wave_max=3990, wave_step=0.1), np.arange(3800, 4000.0)).size == 901
    for step, n in ((0.099, 910), (1e-3, 90001)):
        with pytest.raises(ConfigError, match=rf"preprocess.wave_step = {step:g} A gives a grid of {n} pixels .*1 A "
                                              "apart: at most 10 times finer"):
            make_grid(PreprocessConfig(wave_min=3900, wave_max=3990, wave_step=step), np.arange(3800, 4000.0))
    with pytest.raises(ConfigError, match="1000000 pixels"):
        make_grid(PreprocessConfig(wave_step=1e-3), np.linspace(3000.0, 9000.0, 2_000_000))


def test_spectra_without_pixels_are_a_data_error():
    """Found by a bad-input hunt: numpy's 'zero-size array to reduction operation minimum'."""
    from slamfw.errors import DataError
    from slamfw.preprocess import check_overlap
    with pytest.raises(DataError, match=r"test spectra: the spectra have no pixels \(wavelengths of shape \(5, 0\)\)"):
        check_overlap(np.ones((5, 0)), np.arange(3900.0, 3910.0), "test spectra")


def test_rv_shift_moves_line_to_rest_frame():
    wave = np.linspace(4800, 4900, 2001)
    rv = 150.0
    line = 4861.33 * (1 + rv / C_KMS)
    flux = 1 - 0.5 * np.exp(-0.5 * ((wave - line) / 0.8) ** 2)
    ss = SpectralSet(wave=wave, flux=flux[None], ivar=np.ones((1, wave.size)), ids=["a"], meta={"rv": np.array([rv])})
    grid = np.linspace(4840, 4880, 801)
    out = prepare(ss, PreprocessConfig(), NONE, grid=grid)
    assert abs(grid[np.argmin(out.flux[0])] - 4861.33) < 0.06
    raw = prepare(ss, PreprocessConfig(rv_correct=False), NONE, grid=grid)
    assert abs(grid[np.argmin(raw.flux[0])] - line) < 0.06


def test_bad_pixel_exclusion_logged(caplog):
    wave = np.linspace(4000, 4100, 101)
    ivar = np.ones((3, 101))
    ivar[1, :60] = 0
    mask = np.ones((3, 101), bool)
    mask[2, :10] = False
    ss = SpectralSet(wave=wave, flux=np.ones((3, 101)), ivar=ivar, ids=["a", "b", "c"], mask=mask)
    with caplog.at_level(logging.INFO):
        out = prepare(ss, PreprocessConfig(max_bad_pixels=50), NONE)
    assert out.ids.tolist() == ["a", "c"]
    assert "excluding 1 star" in caplog.text and "b (60)" in caplog.text
    assert (out.ivar[1, :10] == 0).all() and not out.mask[1, :10].any()


def test_no_overlap_is_a_clear_error():
    wave = np.linspace(6000, 7000, 50)
    ss = SpectralSet(wave=wave, flux=np.ones((1, 50)), ivar=np.ones((1, 50)), ids=["a"])
    with pytest.raises(DataError, match="do not overlap"):
        prepare(ss, PreprocessConfig(wave_min=3900, wave_max=5800, wave_step=1.0), NONE, what="test set")


@pytest.mark.parametrize("normalizer", ["none", "spline"])
def test_a_star_of_its_own_grid_wholly_off_the_model_grid_is_left_out(normalizer, caplog):
    """Found by a bad-input hunt: one spectrum (of a set with a grid per star) whose wavelengths lie
    wholly outside the grid stopped train, run and predict with numpy's broadcast error. It now
    has only bad pixels on the grid, and is left out as such."""
    wave = np.tile(np.linspace(4000.0, 4100.0, 101), (3, 1))
    wave[1] += 2500.0
    flux = 1.0 - 0.2 * np.exp(-0.5 * ((wave - 4050.0) / 2.0) ** 2)
    ss = SpectralSet(wave=wave, flux=flux, ivar=np.full((3, 101), 1e4), ids=["a", "far", "c"])
    cfg = PreprocessConfig(wave_min=4010.0, wave_max=4090.0, wave_step=1.0, max_bad_pixels=10)
    with caplog.at_level(logging.INFO):
        out = prepare(ss, cfg, registry.create("normalizer", normalizer, {}))
    assert out.ids.tolist() == ["a", "c"] and "far (81)" in caplog.text


def test_all_stars_bad_is_an_error():
    wave = np.linspace(4000, 4100, 101)
    ss = SpectralSet(wave=wave, flux=np.ones((2, 101)), ivar=np.zeros((2, 101)), ids=["a", "b"])
    with pytest.raises(DataError, match="every star has more than"):
        prepare(ss, PreprocessConfig(), NONE)


def test_shifted_stars_on_one_grid_go_to_normalize_rest_frame():
    """prepare() hands a normaliser the observed grid and 1 + rv / c when the stars share a grid
    and are shifted (one basis for a spline), the same as normalising the rest-frame wavelengths."""
    spline = registry.create("normalizer", "spline")
    calls = []

    class Recording(type(spline)):
        def normalize_rest_frame(self, wave, doppler, flux, ivar):
            calls.append((np.shape(wave), np.array(doppler)))
            return super().normalize_rest_frame(wave, doppler, flux, ivar)

    ss = registry.create("reader", "mock", {"n_stars": 6, "seed": 2, "rv_sigma": 50.0}).read()
    rv = ss.meta_column("rv", 0.0)
    grid = np.linspace(ss.wave[20], ss.wave[-20], 400)
    out = prepare(ss, PreprocessConfig(), Recording(), grid=grid)
    assert len(calls) == 1 and calls[0][0] == (ss.wave.size,)
    np.testing.assert_array_equal(calls[0][1], 1 + rv / C_KMS)
    rest = ss.wave[None, :] / (1 + rv[:, None] / C_KMS)
    nf, ni, _ = spline.normalize(rest, ss.flux, ss.weight_ivar)
    for i in range(ss.n_stars):
        f, v = resample(rest[i], nf[i], ni[i], grid)
        np.testing.assert_allclose(out.flux[i], f, rtol=1e-7, atol=1e-12)
        np.testing.assert_allclose(out.ivar[i], v, rtol=1e-6)
    calls.clear()
    prepare(ss, PreprocessConfig(rv_correct=False), Recording(), grid=grid)
    assert calls == []                         # unshifted: normalize() on the grid itself


def test_resample_rows_is_resample_row_by_row():
    """The block version gives each row exactly what resample gives it alone (shifted grids,
    bad pixels, a grid reaching beyond the spectra)."""
    rng = np.random.default_rng(4)
    wave = np.linspace(4000.0, 4100.0, 300)
    waves = wave[None, :] / (1 + rng.normal(0, 100.0, 7)[:, None] / C_KMS)
    flux = 1 + 0.1 * rng.normal(size=waves.shape)
    ivar = rng.uniform(50, 200, waves.shape)
    ivar[rng.uniform(size=waves.shape) < 0.05] = 0
    grid = np.linspace(3990.0, 4110.0, 450)
    f, v = resample_rows(waves, flux, ivar, grid)
    for i in range(7):
        fi, vi = resample(waves[i], flux[i], ivar[i], grid)
        np.testing.assert_array_equal(f[i], fi)
        np.testing.assert_array_equal(v[i], vi)
    assert np.any(v == 0) and np.all(f[:, 0] == 0)


def test_the_speed_of_light_is_astropys_to_the_bit():
    from astropy.constants import c
    assert C_KMS == c.to_value("km/s")


def test_resample_rows_is_row_by_row_even_for_one_pixel_rows():
    """Each row's result is its own, also when the rows have one pixel (the flat-index takes of
    ``resample_rows`` must not reach into the previous row), and equals the row resampled alone."""
    from slamfw.preprocess import resample_rows
    rng = np.random.default_rng(4)
    for p in (1, 2, 5):
        grid = np.array([0.5, 1.0, 2.0, 2.5, 3.0, 4.0, 7.0]) if p == 1 else np.linspace(0.5, 10.5, 23)
        waves = np.sort(rng.uniform(0, 11, (4, p)), axis=1)
        waves[:, 0] = [1.0, 2.0, 3.0, 4.0] if p == 1 else waves[:, 0]
        flux, ivar = rng.normal(1, 0.2, (4, p)), rng.uniform(0.5, 2, (4, p))
        with np.errstate(divide="ignore", invalid="ignore"):
            f, iv = resample_rows(waves, flux, ivar, grid)
            for i in range(4):
                fi, ivi = resample_rows(waves[i:i + 1], flux[i:i + 1], ivar[i:i + 1], grid)
                np.testing.assert_array_equal(f[i], fi[0])
                np.testing.assert_array_equal(iv[i], ivi[0])
