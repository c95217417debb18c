"""Pre-processing (paper §2.1 and §3.2): rest frame, pseudo-continuum, common grid, bad pixels.

Order, as in the paper: each spectrum is shifted to the rest frame with its RV, divided by its
pseudo-continuum on its own pixels, then resampled to the common wavelength grid (ivar
propagated). Masked pixels get zero weight; stars with more than ``max_bad_pixels`` bad pixels
on the grid are excluded with a log line.

Spectra may come on one grid or on a grid per star (:attr:`SpectralSet.per_star_grid`); either
way each star is normalised on its own pixels and only then resampled. Wavelengths are first
converted to the target medium (air or vacuum) when the spectra declare another one.
"""
from __future__ import annotations

import logging

import numpy as np

from .components.executor import current_executor
from .components.normalizer import Normalizer
from .config.schema import PreprocessConfig
from .data.media import convert_medium
from .data.spectra import SpectralSet
from .errors import ConfigError, DataError, name_some
from .execution.chunks import chunks

log = logging.getLogger(__name__)

#: The speed of light in km/s: exact (the SI defines the metre by it), astropy's ``c.to_value("km/s")``
#: to the bit (tested), written out so that a worker process that prepares spectra does not import
#: ``astropy.constants`` (0.16 s of its start-up).
C_KMS = 299792.458


#: The most pixels a common grid may have, and how much finer than the data's own pixels its
#: step may be: a grid beyond either is a mistyped ``wave_step`` (1e-3 A trained on 1.8 million
#: pixels from 1900-pixel spectra).
MAX_GRID_PIXELS = 1_000_000
MAX_OVERSAMPLING = 10


def make_grid(cfg: PreprocessConfig, wave: np.ndarray) -> np.ndarray:
    """The common grid (P,) from the config, or the data's own pixels within the range (the first
    star's, for spectra on a grid per star (N, P))."""
    wave = np.asarray(wave, float)
    if wave.ndim == 2:
        wave = wave[0]
    lo = cfg.wave_min if cfg.wave_min is not None else float(wave[0])
    hi = cfg.wave_max if cfg.wave_max is not None else float(wave[-1])
    inside = wave[(wave >= lo) & (wave <= hi)]
    if cfg.wave_step is None:
        grid = inside
    else:
        n = int(np.floor((hi - lo) / cfg.wave_step + 1e-9)) + 1
        native = float(np.median(np.diff(inside))) if inside.size > 1 else 0.0   # (0: no data there, said below)
        if n > MAX_GRID_PIXELS or cfg.wave_step * MAX_OVERSAMPLING < native:
            apart = f", where the data's pixels are {native:.3g} A apart" if native else ""
            raise ConfigError(f"preprocess.wave_step = {cfg.wave_step:g} A gives a grid of {n} pixels from {lo:g} to "
                              f"{hi:g} A{apart}: at most {MAX_OVERSAMPLING} times finer than the data, and "
                              f"{MAX_GRID_PIXELS} pixels, are allowed")
        grid = lo + cfg.wave_step * np.arange(n)
    if grid.size < 2:
        raise DataError(f"preprocess: the wavelength range {lo}-{hi} A leaves {grid.size} pixel(s)")
    return grid


def check_overlap(wave: np.ndarray, grid: np.ndarray, what: str) -> None:
    """Error if the data's wavelengths (P,) or (N, P) do not cover any of the grid."""
    if np.size(wave) == 0:
        raise DataError(f"{what}: the spectra have no pixels (wavelengths of shape {np.shape(wave)})")
    lo, hi = float(np.min(wave)), float(np.max(wave))
    if hi < grid[0] or lo > grid[-1]:
        raise DataError(
            f"{what}: the spectra cover {lo:.1f}-{hi:.1f} A but the wavelength grid is "
            f"{grid[0]:.1f}-{grid[-1]:.1f} A; they do not overlap. Check preprocess.wave_min/wave_max "
            f"or that the data are the survey the model was trained for.")


def resample(wave: np.ndarray, flux: np.ndarray, ivar: np.ndarray, grid: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray]:
    """Linear interpolation of one spectrum onto ``grid`` with variance propagated.

    ``f = (1-t) f_a + t f_b`` and ``var = (1-t)^2 var_a + t^2 var_b``; a neighbour with ivar 0
    that carries weight makes the new pixel bad (ivar 0), as do pixels outside ``wave``.

    Returns flux (G,), ivar (G,).
    """
    f, v = resample_rows(np.asarray(wave)[None], np.asarray(flux)[None], np.asarray(ivar)[None], grid)
    return f[0], v[0]


def resample_rows(waves: np.ndarray, flux: np.ndarray, ivar: np.ndarray, grid: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`resample` for n spectra at once, each on its own increasing wavelengths: waves,
    flux, ivar (n, P) -> flux, ivar (n, G); the same arithmetic, row by row."""
    n, p = flux.shape
    j = np.empty((n, grid.size), dtype=np.intp)
    for i in range(n):
        j[i] = np.searchsorted(waves[i], grid, side="right")
    j -= 1
    inside = (grid[None, :] >= waves[:, :1]) & (grid[None, :] <= waves[:, -1:])
    np.clip(j, 0, max(p - 2, 0), out=j)
    j += (np.arange(n) * p)[:, None]            # the left neighbours' flat indices (take: no index tuples)
    j1 = j + 1 if p > 1 else j                  # one pixel: both neighbours are it (as row indices -1 and 0 were)
    waves, flux, ivar = (np.ascontiguousarray(a) for a in (waves, flux, ivar))
    w0, w1 = waves.take(j), waves.take(j1)
    t = np.clip((grid[None, :] - w0) / (w1 - w0), 0.0, 1.0)
    f = (1 - t) * flux.take(j) + t * flux.take(j1)
    iv_a, iv_b = ivar.take(j), ivar.take(j1)
    with np.errstate(divide="ignore"):
        var_a = np.where(iv_a > 0, 1.0 / np.where(iv_a > 0, iv_a, 1.0), np.inf)
        var_b = np.where(iv_b > 0, 1.0 / np.where(iv_b > 0, iv_b, 1.0), np.inf)
    wa, wb = (1 - t) ** 2, t ** 2
    with np.errstate(invalid="ignore"):  # 0 * inf where a bad neighbour carries no weight
        var = np.where(wa > 0, wa * var_a, 0.0) + np.where(wb > 0, wb * var_b, 0.0)
    good = inside & np.isfinite(var) & (var > 0)
    new_ivar = np.where(good, 1.0 / np.where(good, var, 1.0), 0.0)
    return np.where(inside & np.isfinite(f), f, 0.0), new_ivar


#: Stars per task when a set is prepared on the executor (the results do not depend on it).
STARS_PER_TASK = 64


def normalise_and_resample(flux: np.ndarray, ivar: np.ndarray, rv: np.ndarray, wave: np.ndarray, keep: np.ndarray,
                           grid: np.ndarray, normalizer: Normalizer | None, shifted: bool
                           ) -> tuple[np.ndarray, np.ndarray]:
    """One block of stars: flux, ivar (n, P) on ``wave`` (P,) or (n, P) with radial velocities
    ``rv`` (n,) -> normalised flux and ivar (n, G) on ``grid``. ``keep`` (P,) marks the pixels
    near the grid, or (n, P) each star's (a grid per star: each star is then normalised alone, on
    its own window, so that its result does not depend on the other stars of the block, and
    always gets its observed grid and ``1 + rv / c``); on a common grid, ``shifted``: the
    normaliser gets the observed grid and ``1 + rv / c``
    (:meth:`~slamfw.Normalizer.normalize_rest_frame`), else the observed grid alone."""
    doppler = 1.0 + rv / C_KMS
    waves = np.broadcast_to(wave, flux.shape) / doppler[:, None]
    if keep.ndim == 2:     # a grid per star: each star normalised on its own window of pixels, as alone
        none = (np.zeros((1, grid.size)), np.zeros((1, grid.size)))
        # a star with (almost) no pixel near the grid has only bad pixels there: left out as such
        out = [_normalise_and_resample(waves[i:i + 1, keep[i]], flux[i:i + 1, keep[i]], ivar[i:i + 1, keep[i]],
                                       grid, normalizer, wave[i, keep[i]], doppler[i:i + 1])
               if np.count_nonzero(keep[i]) >= 2 else none for i in range(flux.shape[0])]
        return np.vstack([o[0] for o in out]), np.vstack([o[1] for o in out])
    cols = np.flatnonzero(keep)
    if cols.size and cols[-1] - cols[0] + 1 == cols.size:    # one run of pixels (wave increases): views, no copies
        cols = slice(int(cols[0]), int(cols[-1]) + 1)
    return _normalise_and_resample(waves[:, cols], flux[:, cols], ivar[:, cols], grid, normalizer, wave[cols],
                                   doppler if shifted else None)


def _normalise_and_resample(waves: np.ndarray, flux: np.ndarray, ivar: np.ndarray, grid: np.ndarray,
                            normalizer: Normalizer | None, common: np.ndarray, doppler: np.ndarray | None
                            ) -> tuple[np.ndarray, np.ndarray]:
    """Stars (n, P) at rest-frame wavelengths ``waves`` (n, P) -> normalised and resampled (n, G);
    ``common`` (P,): the one observed grid of every star, which the normaliser gets with
    ``doppler`` (n,) (``waves = common / doppler``, :meth:`~slamfw.Normalizer.normalize_rest_frame`),
    or alone when no star is shifted (doppler None)."""
    if normalizer is None:
        nflux, nivar = flux, ivar
    elif doppler is None:
        nflux, nivar, _ = normalizer.normalize(common, flux, ivar)
    else:
        nflux, nivar, _ = normalizer.normalize_rest_frame(common, doppler, flux, ivar)
    bad_norm = ~(np.isfinite(nflux) & np.isfinite(nivar))
    if bad_norm.any():
        nflux = np.where(bad_norm, 0.0, nflux)
        nivar = np.where(bad_norm, 0.0, nivar)
    return resample_rows(waves, nflux, nivar, grid)


def grid_coverage(wave: np.ndarray, ivar: np.ndarray, rv: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """(N,) the fraction of ``grid`` (G,) that each star's good pixels span, in its rest frame:
    wave (P,) or (N, P), ivar (N, P) (0 = bad), rv (N,) km/s."""
    waves = np.broadcast_to(wave, ivar.shape) / (1.0 + rv[:, None] / C_KMS)
    good = ivar > 0
    lo = np.where(good, waves, np.inf).min(axis=1)
    hi = np.where(good, waves, -np.inf).max(axis=1)
    inside = (grid[None, :] >= lo[:, None]) & (grid[None, :] <= hi[:, None])
    return inside.mean(axis=1)


def prepare(ss: SpectralSet, cfg: PreprocessConfig, normalizer: Normalizer | None,
            grid: np.ndarray | None = None, what: str = "data", allow_empty: bool = False,
            medium: str = "") -> SpectralSet | None:
    """Rest frame, normalise, resample to ``grid`` (or the config's grid), drop bad stars.

    ``normalizer`` None uses the spectra as they are (already normalised). ``medium`` ("air" or
    "vacuum"; "" keeps the spectra's) is the medium of ``grid``: spectra that declare the other
    one are converted first. Blocks of stars run on the executor in use. Returns a new
    :class:`SpectralSet` on the grid with normalised flux and ivar, the mask folded into ivar
    (bad pixels: ivar 0, mask False), ``meta['n_bad_pixels']``, ``meta['grid_coverage']``
    (:func:`grid_coverage`) and ``meta['rv_unknown']`` (:func:`rest_frame_rv`); when no star is
    usable, an error, or None with ``allow_empty``.
    """
    if ss.n_stars == 0:
        if allow_empty:
            return None
        raise DataError(f"{what}: no spectra to prepare")
    wave = convert_medium(ss.wave, ss.medium, medium)
    if medium and ss.medium and medium != ss.medium:
        log.info("%s: wavelengths converted from %s to %s", what, ss.medium, medium)
    grid = make_grid(cfg, wave) if grid is None else np.asarray(grid, float)
    check_overlap(wave, grid, what)
    ivar = ss.weight_ivar
    rv, rv_unknown = rest_frame_rv(ss, cfg)
    per_star = wave.ndim == 2
    # normalise on each star's own pixels, restricted to a margin around the grid (observed
    # frame): the same window whether a star comes alone or with others on other grids
    margin = 0.05 * (grid[-1] - grid[0]) + 50.0
    keep = (wave >= grid[0] - margin) & (wave <= grid[-1] + margin)
    spans = chunks(ss.n_stars, STARS_PER_TASK)
    if per_star:
        tasks = [(ss.flux[s:e], ivar[s:e], rv[s:e], wave[s:e], keep[s:e]) for s, e in spans]
        shared = dict(grid=grid, normalizer=normalizer, shifted=True)
    else:
        tasks = [(ss.flux[s:e], ivar[s:e], rv[s:e]) for s, e in spans]
        shared = dict(wave=wave, grid=grid, normalizer=normalizer, keep=keep, shifted=bool(rv.any()))
    blocks = current_executor().map(normalise_and_resample, tasks, progress=False, shared=shared)
    out_flux = np.concatenate([b[0] for b in blocks])
    out_ivar = np.concatenate([b[1] for b in blocks])
    coverage = grid_coverage(wave, ivar, rv, grid)
    return _drop_bad_stars(ss, grid, out_flux, out_ivar, cfg, what, allow_empty, medium or ss.medium,
                           {"grid_coverage": coverage, "rv_unknown": rv_unknown})


def rest_frame_rv(ss: SpectralSet, cfg: PreprocessConfig) -> tuple[np.ndarray, np.ndarray]:
    """(rv, unknown), both (N,): the shift (km/s) that pre-processing removes from each star of
    ``ss``, and whether the star's rv is unknown: ``preprocess.rv_correct`` is on and the star's
    ``rv`` is not finite (e.g. a LAMOST spectrum whose redshift failed; a set stacked from readers
    with and without rv has 0 where none was given, :meth:`SpectralSet.stack`). An unknown rv is
    taken as 0 (the spectrum stays in its observed frame); such a star gets ``flag_rv`` in the
    catalogue, and is left out of a training set (:func:`slamfw.workflows.train.prepare_training`).
    Without rv_correct, or without an ``rv`` column, every shift is 0 and none is unknown."""
    if not cfg.rv_correct:
        return np.zeros(ss.n_stars), np.zeros(ss.n_stars, bool)
    rv = ss.meta_column("rv", 0.0)
    unknown = ~np.isfinite(rv)
    return np.where(unknown, 0.0, rv), unknown


def _drop_bad_stars(ss: SpectralSet, grid: np.ndarray, flux: np.ndarray, ivar: np.ndarray, cfg: PreprocessConfig,
                    what: str, allow_empty: bool, medium: str, per_star: dict[str, np.ndarray]) -> SpectralSet | None:
    """The prepared set, with ``per_star`` (N,) arrays and ``n_bad_pixels`` added to its metadata,
    less the stars with more than ``max_bad_pixels`` bad pixels."""
    n_bad = (ivar <= 0).sum(axis=1)
    meta = dict(ss.meta)
    meta["n_bad_pixels"] = n_bad
    meta.update(per_star)
    prepared = SpectralSet(wave=grid, flux=flux, ivar=ivar, ids=ss.ids, mask=ivar > 0,
                           labels=ss.labels, label_names=ss.label_names, label_units=ss.label_units,
                           meta=meta, source=ss.source, medium=medium)
    too_bad = n_bad > cfg.max_bad_pixels
    if too_bad.any():
        ids = name_some([f"{i} ({n})" for i, n in zip(ss.ids[too_bad], n_bad[too_bad])])
        log.info("%s: excluding %d star(s) with more than %d bad pixels on the grid: %s", what,
                 int(too_bad.sum()), cfg.max_bad_pixels, ids)
        prepared = prepared.subset(~too_bad)
    if prepared.n_stars == 0:
        if allow_empty:
            return None
        raise DataError(f"{what}: every star has more than preprocess.max_bad_pixels="
                        f"{cfg.max_bad_pixels} bad pixels on the grid {grid[0]:.1f}-{grid[-1]:.1f} A")
    return prepared
