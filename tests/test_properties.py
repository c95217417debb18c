"""Property-based tests (hypothesis): :class:`SpectralSet` validation and round trips, and the
resampler :func:`slamfw.preprocess.resample` (linear interpolation, variance propagated)."""
from __future__ import annotations

import string
from bisect import bisect_left

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from slamfw import DataError
from slamfw.data.spectra import MEDIA, SpectralSet
from slamfw.preprocess import resample

SETS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
RESAMPLE = settings(max_examples=150, deadline=None)
trapezoid = getattr(np, "trapezoid", None) or np.trapz   # numpy < 2 has only trapz

#: Star ids from a plain alphabet, so that ``repr(id)`` is the id in quotes.
ID_CHARS = string.ascii_letters + string.digits + "-_.:+"
FINITE = dict(allow_nan=False, allow_infinity=False)


# ------------------------------------------------------------------ strategies
@st.composite
def increasing_rows(draw, rows: int, p: int) -> np.ndarray:
    """(rows, p) strictly increasing wavelengths (Angstrom)."""
    start = draw(arrays(float, (rows, 1), elements=st.floats(1000.0, 20000.0)))
    steps = draw(arrays(float, (rows, max(p - 1, 0)), elements=st.floats(0.01, 50.0)))
    return start + np.concatenate([np.zeros((rows, 1)), np.cumsum(steps, axis=1)], axis=1)


@st.composite
def set_kwargs(draw, min_stars: int = 1, min_pixels: int = 1, min_labels: int = 0, per_star: bool | None = None,
               id_prefix: str = "", label_names: list[str] | None = None, medium: str | None = None) -> dict:
    """The arguments of a valid :class:`SpectralSet`: one grid or a grid per star, labels with NaN
    (unknown) or none, metadata columns of numbers and text, any medium. ``label_names`` fixes the
    labels ([]: none; None: drawn)."""
    n = draw(st.integers(min_stars, 5))
    p = draw(st.integers(min_pixels, 12))
    per_star = draw(st.booleans()) if per_star is None else per_star
    wave = draw(increasing_rows(n if per_star else 1, p))
    kw = dict(wave=wave if per_star else wave[0],
              flux=draw(arrays(float, (n, p), elements=st.floats(-1e6, 1e6, **FINITE))),
              ivar=draw(arrays(float, (n, p), elements=st.one_of(st.just(0.0), st.floats(0.0, 1e6, **FINITE)))),
              mask=draw(arrays(bool, (n, p))),
              ids=[id_prefix + i for i in draw(st.lists(st.text(ID_CHARS, min_size=1, max_size=6), min_size=n,
                                                         max_size=n, unique=True))],
              medium=draw(st.sampled_from(MEDIA)) if medium is None else medium)
    if label_names is None:
        n_lab = draw(st.integers(min_labels, 3))
        label_names = [f"L{k}" for k in range(n_lab)]
    if label_names:
        kw["labels"] = draw(arrays(float, (n, len(label_names)), elements=st.floats(-1e4, 1e4, **FINITE) | st.just(np.nan)))
        kw["label_names"] = list(label_names)
    meta = {}
    if draw(st.booleans()):
        meta["snr"] = draw(arrays(float, (n,), elements=st.floats(0, 1000, **FINITE)))
    if draw(st.booleans()):
        meta["field"] = np.array(draw(st.lists(st.text(ID_CHARS, max_size=4), min_size=n, max_size=n)), dtype=str)
    kw["meta"] = meta
    return kw


def _same(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype.kind == "f" or b.dtype.kind == "f":
        return a.shape == b.shape and np.array_equal(a, b, equal_nan=True)
    return a.shape == b.shape and np.array_equal(a, b)


def assert_same_set(a: SpectralSet, b: SpectralSet) -> None:
    for name in ("flux", "ivar", "mask", "ids"):
        assert _same(getattr(a, name), getattr(b, name)), name
    assert _same(np.broadcast_to(a.wave, a.flux.shape), np.broadcast_to(b.wave, b.flux.shape))
    assert (a.labels is None) == (b.labels is None)
    if a.labels is not None:
        assert _same(a.labels, b.labels) and a.label_names == b.label_names
    assert a.meta.keys() == b.meta.keys()
    assert all(_same(a.meta[k], b.meta[k]) for k in a.meta)
    assert a.medium == b.medium


# ------------------------------------------------------------------ SpectralSet: valid sets
@SETS
@given(set_kwargs())
def test_a_valid_set_constructs_and_round_trips(kw):
    ss = SpectralSet(**kw)
    n = ss.n_stars
    assert ss.flux.shape == ss.ivar.shape == ss.mask.shape == (n, ss.n_pixels)
    assert_same_set(ss.subset(np.arange(n)), ss)                 # every row, by index
    assert_same_set(ss.subset(np.ones(n, bool)), ss)             # and by mask
    singles = [ss.subset([i]) for i in range(n)]
    stacked = SpectralSet.stack(singles)
    assert stacked.per_star_grid == ss.per_star_grid             # one grid stays one grid
    assert_same_set(stacked, ss)


@settings(SETS, max_examples=50)
@given(st.data())
def test_stacking_pads_shorter_stars_without_touching_their_pixels(data):
    medium = data.draw(st.sampled_from(MEDIA))
    names = data.draw(st.sampled_from([[], ["teff"], ["teff", "logg"]]))
    sets = [SpectralSet(**data.draw(set_kwargs(id_prefix=f"s{k}-", label_names=names, medium=medium)))
            for k in range(data.draw(st.integers(1, 3)))]
    out = SpectralSet.stack(sets)
    assert out.ids.tolist() == [i for s in sets for i in s.ids.tolist()]
    p = max(s.n_pixels for s in sets)
    assert out.n_pixels == p
    row = 0
    for s in sets:
        k = s.n_pixels
        rows = slice(row, row + s.n_stars)
        for name in ("flux", "ivar", "mask"):
            assert _same(getattr(out, name)[rows, :k], getattr(s, name)), name
        assert _same(np.broadcast_to(out.wave, out.flux.shape)[rows, :k], np.broadcast_to(s.wave, s.flux.shape))
        assert not out.mask[rows, k:].any() and not out.ivar[rows, k:].any()     # padding carries no weight
        row += s.n_stars


# ------------------------------------------------------------------ SpectralSet: one corruption
def _cell(data, kw) -> tuple[int, int]:
    n, p = np.shape(kw["flux"])
    return data.draw(st.integers(0, n - 1), label="star"), data.draw(st.integers(0, p - 1), label="pixel")


def _bad_flux(data, kw):
    i, j = _cell(data, kw)
    kw["flux"][i, j] = data.draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    return i


def _bad_ivar(data, kw):
    i, j = _cell(data, kw)
    kw["ivar"][i, j] = data.draw(st.sampled_from([np.nan, np.inf, -np.inf]) | st.floats(-1e6, -1e-300))
    return i


def _non_increasing_wave(data, kw):
    wave = kw["wave"]
    p = wave.shape[-1]
    assume(p >= 2)
    j = data.draw(st.integers(0, p - 2), label="pixel")
    back = data.draw(st.floats(0.0, 100.0), label="step back")
    if wave.ndim == 2:
        r = data.draw(st.integers(0, wave.shape[0] - 1), label="row")
        wave[r, j + 1] = wave[r, j] - back
        return r
    wave[j + 1] = wave[j] - back
    return None


def _duplicate_ids(data, kw):
    n = len(kw["ids"])
    assume(n >= 2)
    a, b = data.draw(st.lists(st.integers(0, n - 1), min_size=2, max_size=2, unique=True), label="pair")
    kw["ids"][b] = kw["ids"][a]
    return a


def _inf_label(data, kw):
    assume(kw.get("labels") is not None and kw["labels"].shape[1] > 0)
    i = data.draw(st.integers(0, kw["labels"].shape[0] - 1), label="star")
    j = data.draw(st.integers(0, kw["labels"].shape[1] - 1), label="label")
    kw["labels"][i, j] = data.draw(st.sampled_from([np.inf, -np.inf]))
    return i


def _grow(a: np.ndarray, axis: int) -> np.ndarray:
    return np.concatenate([a, np.take(a, [-1], axis=axis)], axis=axis)


def _shrink_or_grow(a: np.ndarray, axis: int, data) -> np.ndarray:
    if a.shape[axis] > 1 and data.draw(st.booleans(), label="shrink"):
        return np.delete(a, -1, axis=axis)
    return _grow(a, axis)


def _mismatched_shape(data, kw):
    what = data.draw(st.sampled_from(["ivar_rows", "ivar_pixels", "mask", "wave_pixels", "wave_rows", "ids", "meta",
                                      "label_names"]), label="what")
    if what == "ivar_rows":
        kw["ivar"] = _shrink_or_grow(kw["ivar"], 0, data)
    elif what == "ivar_pixels":
        kw["ivar"] = _shrink_or_grow(kw["ivar"], 1, data)
    elif what == "mask":
        kw["mask"] = _shrink_or_grow(kw["mask"], data.draw(st.integers(0, 1), label="axis"), data)
    elif what == "wave_pixels":
        w = kw["wave"]
        extra = w[..., -1:] + 1.0   # still increasing, one pixel too many
        kw["wave"] = np.concatenate([w, extra], axis=-1)
    elif what == "wave_rows":
        w = np.atleast_2d(kw["wave"])
        kw["wave"] = np.vstack([w, w[-1:] + 1.0]) if kw["wave"].ndim == 2 else np.vstack([w, w])
        assume(kw["wave"].shape[0] != len(kw["ids"]))
    elif what == "ids":
        kw["ids"] = kw["ids"] + ["extra-id"] if data.draw(st.booleans()) or len(kw["ids"]) < 2 else kw["ids"][:-1]
    elif what == "meta":
        kw["meta"] = dict(kw["meta"], bad=np.zeros(len(kw["ids"]) + data.draw(st.sampled_from([-1, 1]))))
    else:
        assume(kw.get("labels") is not None)
        kw["label_names"] = kw["label_names"] + ["extra"]
    return None


def _label_rows(data, kw):
    assume(kw.get("labels") is not None)
    kw["labels"] = _shrink_or_grow(kw["labels"], 0, data)
    return None


def _bad_medium(data, kw):
    kw["medium"] = data.draw(st.text(max_size=8).filter(lambda m: m not in MEDIA), label="medium")
    return None


CORRUPTIONS = [_bad_flux, _bad_ivar, _non_increasing_wave, _duplicate_ids, _inf_label, _mismatched_shape,
               _label_rows, _bad_medium]


@pytest.mark.parametrize("corrupt", CORRUPTIONS, ids=lambda f: f.__name__.strip("_"))
@settings(SETS, max_examples=60)
@given(data=st.data())
def test_one_corruption_raises_a_data_error_naming_the_star(corrupt, data):
    kw = data.draw(set_kwargs(min_labels=1 if corrupt in (_inf_label, _label_rows) else 0))
    ids = list(kw["ids"])
    star = corrupt(data, kw)
    with pytest.raises(DataError) as err:     # never another exception type
        SpectralSet(**kw)
    msg = str(err.value)
    if star is not None:                      # a star is at fault: the message names it, and only it
        assert repr(ids[star]) in msg, msg
        others = [i for k, i in enumerate(ids) if i != ids[star]]
        assert not any(repr(o) in msg for o in others), msg


# ------------------------------------------------------------------ resample
@st.composite
def spectrum(draw, min_pixels: int = 2, bad: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Wavelengths (P,) strictly increasing, and ivar (P,) (some 0 when ``bad``)."""
    p = draw(st.integers(min_pixels, 30))
    wave = draw(increasing_rows(1, p))[0]
    good = st.floats(1e-6, 1e6)
    ivar = draw(arrays(float, (p,), elements=st.just(0.0) | good if bad else good))
    return wave, ivar


@st.composite
def grid_for(draw, wave: np.ndarray) -> np.ndarray:
    """A strictly increasing grid over and around ``wave``, some points on data pixels."""
    lo, hi = wave[0], wave[-1]
    span = hi - lo
    pts = draw(st.lists(st.floats(lo - 0.3 * span - 1.0, hi + 0.3 * span + 1.0), min_size=1, max_size=40))
    on = draw(st.lists(st.sampled_from(list(wave)), max_size=10))
    return np.unique(np.asarray(pts + on, float))


def _neighbours(wave: np.ndarray, g: float) -> tuple[int, float] | None:
    """(k, t) with wave[k] < g < wave[k+1], t its fraction of the step; None off the interior."""
    k = bisect_left(wave.tolist(), g) - 1
    if k < 0 or k + 1 >= wave.size or not wave[k] < g < wave[k + 1]:
        return None
    return k, (g - wave[k]) / (wave[k + 1] - wave[k])


@RESAMPLE
@given(st.data(), st.floats(-1e3, 1e3), st.floats(-1.0, 1.0))
def test_resampling_reproduces_a_linear_spectrum(data, a, b):
    wave, ivar = data.draw(spectrum())
    grid = data.draw(grid_for(wave))
    flux, out_ivar = resample(wave, a + b * wave, ivar, grid)
    inside = (grid >= wave[0]) & (grid <= wave[-1])
    use = inside & (out_ivar > 0)
    scale = abs(a) + abs(b) * np.abs(wave).max()
    np.testing.assert_allclose(flux[use], a + b * grid[use], rtol=0, atol=1e-12 * scale + 1e-12)
    const, _ = resample(wave, np.full(wave.size, a), ivar, grid)
    np.testing.assert_allclose(const[inside], a, rtol=1e-13, atol=0)


def _resampled(data, **kw):
    wave, ivar = data.draw(spectrum(**kw))
    grid = data.draw(grid_for(wave))
    flux = data.draw(arrays(float, wave.shape, elements=st.floats(-1e6, 1e6)))
    return wave, flux, ivar, grid, resample(wave, flux, ivar, grid)


def _weights(wave: np.ndarray, g: float) -> tuple[int, float, float]:
    """(k, weight of pixel k, weight of pixel k+1) of the interior point ``g`` (on no pixel)."""
    k, t = _neighbours(wave, g)
    return k, (1 - t) ** 2, t ** 2


@RESAMPLE
@given(st.data())
def test_resampling_propagates_the_variance(data):
    """var = (1-t)^2 var_a + t^2 var_b between good pixels; a pixel's own ivar on a pixel."""
    wave, _, ivar, grid, (_, out) = _resampled(data)
    for g, got in zip(grid, out):
        if g < wave[0] or g > wave[-1]:
            continue
        hit = np.flatnonzero(wave == g)
        if hit.size:                                            # on a pixel: that pixel's ivar
            assert got == pytest.approx(ivar[hit[0]], rel=1e-12, abs=0)
            continue
        k, wa, wb = _weights(wave, g)
        if (wa > 0 and ivar[k] == 0) or (wb > 0 and ivar[k + 1] == 0):
            continue                                            # see the next test
        var = (wa / ivar[k] if wa > 0 else 0.0) + (wb / ivar[k + 1] if wb > 0 else 0.0)
        assert got > 0 and 1.0 / got == pytest.approx(var, rel=1e-10)
        lo, hi = sorted((1 / ivar[k], 1 / ivar[k + 1]))
        assert lo * (wa + wb) * (1 - 1e-10) <= 1.0 / got <= hi * (wa + wb) * (1 + 1e-10)


@RESAMPLE
@given(st.data())
def test_points_off_the_data_or_on_a_bad_pixel_get_no_weight(data):
    """ivar 0 off the data, and wherever the interpolation gives a bad (ivar 0) pixel weight."""
    wave, _, ivar, grid, (_, out) = _resampled(data)
    for g, got in zip(grid, out):
        if g < wave[0] or g > wave[-1]:
            assert got == 0.0
            continue
        hit = np.flatnonzero(wave == g)
        if hit.size:
            assert (got == 0.0) == (ivar[hit[0]] == 0.0)        # only the pixel itself has weight
            continue
        k, wa, wb = _weights(wave, g)
        touches_bad = (wa > 0 and ivar[k] == 0) or (wb > 0 and ivar[k + 1] == 0)
        assert (got == 0.0) == touches_bad


@RESAMPLE
@given(st.data())
def test_resampled_output_is_finite_everywhere(data):
    _, _, _, grid, (out_flux, out_ivar) = _resampled(data)
    assert out_flux.shape == out_ivar.shape == grid.shape
    assert np.isfinite(out_flux).all() and np.isfinite(out_ivar).all() and (out_ivar >= 0).all()


@RESAMPLE
@given(lo=st.floats(3000.0, 9000.0), width=st.floats(50.0, 3000.0), n_fine=st.integers(200, 1500),
       n_coarse=st.integers(20, 50), waves=st.lists(st.tuples(st.floats(0.0, 0.3), st.integers(1, 3),
                                                              st.floats(0.0, 2 * np.pi)), max_size=3))
def test_resampling_onto_a_coarser_grid_keeps_the_mean_flux(lo, width, n_fine, n_coarse, waves):
    """A smooth spectrum (1 + a few sines of at most 3 cycles over the range) on a fine regular grid,
    resampled onto a coarser regular grid over the same range: the mean flux (trapezoid rule) is
    kept within the bound of the two grids' discretisation error."""
    fine = np.linspace(lo, lo + width, n_fine)
    coarse = np.linspace(lo, lo + width, n_coarse)

    def f(w):
        return np.ones_like(w) + sum(amp * np.sin(2 * np.pi * m * (w - lo) / width + ph) for amp, m, ph in waves)
    out, out_ivar = resample(fine, f(fine), np.ones(n_fine), coarse)
    assert (out_ivar > 0).all()
    mean_fine = trapezoid(f(fine), fine) / width
    mean_coarse = trapezoid(out, coarse) / width
    curvature = sum(amp * (2 * np.pi * m / width) ** 2 for amp, m, _ in waves)
    h_f, h_c = width / (n_fine - 1), width / (n_coarse - 1)
    bound = curvature * (h_c ** 2 / 12 + h_f ** 2 / 8 + h_f ** 2 / 12)
    assert abs(mean_coarse - mean_fine) <= 1.01 * bound + 1e-12
