"""The normaliser conformance kit: ``check_normalizer``.

It normalises generated raw spectra (:func:`make_raw_spectra`: 6 stars, 400 pixels over
4000-5000 A, a smooth positive continuum of a different level and slope for each star times
absorption lines, S/N 100) and checks the contract of :class:`slamfw.Normalizer`:

- (P,) wavelengths with (N, P) flux give three (N, P) arrays, flux and ivar finite, ivar >= 0;
- (N, P) wavelengths with identical rows give the same as (P,); per-star shifted (N, P)
  wavelengths give each star what it gets alone with its own (P,) grid;
- ``normalize_rest_frame(wave, doppler, ...)`` gives what ``normalize(wave / doppler, ...)`` gives
  (to 1e-6 relative), each star's result what it gets alone;
- ``norm_ivar == ivar * continuum**2`` and ``norm_flux * continuum == flux`` where the continuum
  is finite and > 0, ``norm_ivar == 0`` where it is not;
- stars that cannot be normalised (every ivar 0; only 3 good pixels; negative flux) come back with finite flux
  and ivar 0 wherever they were not normalised, and no NaN or inf anywhere in flux or ivar;
- spectra whose continuum is exactly 1 get a continuum whose median is within 2% of 1;
- vectorised over stars equals one star at a time; inputs unchanged; deterministic.

Usage: ``check_normalizer(MyNormalizer, {"degree": 3})`` or ``check_normalizer(MyNormalizer(degree=3))``.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..components.normalizer import Normalizer
from ..preprocess import C_KMS
from ._common import Case, CheckResult, checker, params_check, resolve, run_checks

__all__ = ["check_normalizer", "NORMALIZER_CHECKS", "NormalizerCase", "make_raw_spectra"]



def make_raw_spectra(n_stars: int = 6, n_pixels: int = 400, snr: float = 100.0, seed: int = 0,
                     flat: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """wave (P,) over 4000-5000 A; flux, ivar and the true continuum (N, P).

    The continuum is ``level * (1 + a u + b u^2)`` with ``u = (wave - 4500) / 500`` and a level
    between 50 and 2000 (exactly 1 when ``flat``); 30 Gaussian absorption lines (sigma 1.5 A,
    depths up to 0.6) and Gaussian noise of continuum / ``snr``.
    """
    rng = np.random.default_rng(seed)
    wave = np.linspace(4000.0, 5000.0, n_pixels)
    u = (wave - 4500.0) / 500.0
    if flat:
        cont = np.ones((n_stars, n_pixels))
    else:
        level = np.exp(rng.uniform(np.log(50.0), np.log(2000.0), n_stars))[:, None]
        cont = level * (1 + rng.uniform(-0.3, 0.3, (n_stars, 1)) * u + rng.uniform(-0.2, 0.2, (n_stars, 1)) * u ** 2)
    centers, depths = rng.uniform(4020, 4980, 30), rng.uniform(0.05, 0.6, 30)
    strength = rng.uniform(0.5, 1.5, (n_stars, 1))
    profile = np.exp(-0.5 * ((wave[None, :] - centers[:, None]) / 1.5) ** 2)               # (30, P)
    lines = np.prod(1.0 - np.clip(strength[:, :, None] * (depths[:, None] * profile)[None], 0, 0.95), axis=1)
    sigma = cont / snr
    flux = cont * lines + rng.normal(size=cont.shape) * sigma
    return wave, flux, 1.0 / sigma ** 2, cont


class NormalizerCase(Case):
    """A normaliser class and parameters with generated raw spectra: ``wave`` (P,), ``flux``,
    ``ivar`` (N, P); the result on them is made once."""

    base = Normalizer

    def __init__(self, cls: type[Normalizer], params: dict[str, Any]) -> None:
        super().__init__(cls, params)
        self.wave, self.flux, self.ivar, _ = make_raw_spectra()
        self._result: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def normalize(self, wave: np.ndarray, flux: np.ndarray, ivar: np.ndarray,
                  normalizer: Normalizer | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``normalize`` on copies with a fresh instance (or ``normalizer``); the output is
        checked to be three (N, P) arrays (an AssertionError says what is wrong otherwise)."""
        out = (normalizer or self.fresh()).normalize(wave.copy(), flux.copy(), ivar.copy())
        problem = _output_problem(out, np.shape(flux))
        if problem:
            raise AssertionError(problem)
        return tuple(np.asarray(a, float) for a in out)

    def result(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """norm_flux, norm_ivar, continuum (N, P) of the raw spectra with (P,) wavelengths."""
        if self._result is None:
            self._result = self.normalize(self.wave, self.flux, self.ivar)
        return self._result


def _output_problem(out: Any, shape: tuple[int, ...]) -> str:
    if not isinstance(out, (tuple, list)) or len(out) != 3:
        return f"normalize returned {type(out).__name__}, not (norm_flux, norm_ivar, continuum)"
    shapes = [np.shape(a) for a in out]
    if any(s != tuple(shape) for s in shapes):
        return f"normalize returned arrays of shapes {shapes}, expected three {tuple(shape)}"
    return ""


def _same(a: tuple[np.ndarray, ...], b: tuple[np.ndarray, ...], what: str, rtol: float = 1e-10) -> str:
    for name, x, y in zip(("norm_flux", "norm_ivar", "continuum"), a, b):
        if not np.allclose(x, y, rtol=rtol, atol=0, equal_nan=True):
            with np.errstate(invalid="ignore"):
                worst = np.nanmax(np.abs(x - y) / np.maximum(np.abs(y), 1e-300)) if np.isfinite(x - y).any() else np.nan
            return f"{what}: {name} differs (largest relative difference {worst:.3g})"
    return ""


check = checker(NormalizerCase)
check_params = params_check(NormalizerCase)


@check("(P,) wavelengths with (N, P) flux give three finite (N, P) arrays")
def check_output_shapes(case: NormalizerCase) -> str:
    """``normalize(wave (P,), flux (N, P), ivar (N, P))`` returns three (N, P) arrays; the
    normalised flux and ivar are finite and ivar >= 0."""
    nf, ni, _ = case.result()
    if not (np.all(np.isfinite(nf)) and np.all(np.isfinite(ni))):
        return "the normalised flux or ivar has NaN or inf"
    if np.any(ni < 0):
        return "the normalised ivar is negative somewhere"
    return ""


@check("(N, P) wavelengths with identical rows give the same as (P,)")
def check_wave_2d(case: NormalizerCase) -> str:
    """A per-star (N, P) wavelength array whose rows are all the (P,) grid gives the same result."""
    tiled = np.tile(case.wave, (case.flux.shape[0], 1))
    return _same(case.normalize(tiled, case.flux, case.ivar), case.result(), "(N, P) wave vs (P,) wave")


@check("per-star shifted (N, P) wavelengths are used star by star")
def check_shifted_waves(case: NormalizerCase) -> str:
    """With (N, P) wavelengths shifted by -150..150 km/s, star i gets what it gets alone with its
    own (P,) row."""
    n = case.flux.shape[0]
    waves = case.wave[None, :] * (1 + np.linspace(-150.0, 150.0, n)[:, None] / C_KMS)
    got = case.normalize(waves, case.flux, case.ivar)
    for i in range(n):
        alone = case.normalize(waves[i], case.flux[i:i + 1], case.ivar[i:i + 1])
        diff = _same(tuple(a[i:i + 1] for a in got), alone, f"star {i}")
        if diff:
            return f"(N, P) shifted wavelengths: {diff} from normalising it alone on its own grid"
    return ""


@check("normalize_rest_frame equals normalize on the rest-frame wavelengths")
def check_rest_frame(case: NormalizerCase) -> str:
    """``normalize_rest_frame(wave, doppler, flux, ivar)`` with doppler factors of -150..150 km/s
    gives what ``normalize(wave / doppler, ...)`` gives, to 1e-6 relative (an override that
    builds the grid's work once may round otherwise); and each star's result there is what it
    gets alone."""
    n = case.flux.shape[0]
    doppler = 1 + np.linspace(-150.0, 150.0, n) / C_KMS
    norm = case.fresh()
    try:
        got = norm.normalize_rest_frame(case.wave.copy(), doppler.copy(), case.flux.copy(), case.ivar.copy())
    except Exception as err:  # noqa: BLE001 - reported as the check's failure
        return f"normalize_rest_frame raised {type(err).__name__}: {err}"
    problem = _output_problem(got, case.flux.shape)
    if problem:
        return f"normalize_rest_frame: {problem}"
    got = tuple(np.asarray(a, float) for a in got)
    want = case.normalize(case.wave[None, :] / doppler[:, None], case.flux, case.ivar)
    diff = _same(got, want, "normalize_rest_frame vs normalize(wave / doppler)", rtol=1e-6)
    if diff:
        return diff
    for i in range(n):
        alone = case.fresh().normalize_rest_frame(case.wave.copy(), doppler[i:i + 1].copy(),
                                                  case.flux[i:i + 1].copy(), case.ivar[i:i + 1].copy())
        diff = _same(tuple(g[i:i + 1] for g in got), tuple(np.asarray(a, float) for a in alone),
                     f"normalize_rest_frame, star {i}")
        if diff:
            return f"{diff} from normalising it alone"
    return ""


@check("norm_ivar = ivar * continuum**2 and norm_flux * continuum = flux")
def check_ivar_scaling(case: NormalizerCase) -> str:
    """Where the continuum is finite and > 0, ``norm_ivar == ivar * continuum**2`` and
    ``norm_flux * continuum == flux`` (relative 1e-9); elsewhere ``norm_ivar == 0``."""
    nf, ni, cont = case.result()
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(cont) & (cont > 0)
    if not ok.any():
        return "the continuum is nowhere finite and > 0 on ordinary spectra"
    if not np.allclose(ni[ok], (case.ivar * np.where(ok, cont, 0.0) ** 2)[ok], rtol=1e-9, atol=0):
        return "norm_ivar != ivar * continuum**2 (propagate the ivar through the division)"
    if not np.allclose((nf * np.where(ok, cont, 0.0))[ok], case.flux[ok], rtol=1e-9, atol=1e-12 * np.abs(case.flux).max()):
        return "norm_flux * continuum != flux"
    if np.any(ni[~ok] != 0):
        return "norm_ivar > 0 where the continuum is not finite and > 0"
    return ""


@check("stars that cannot be normalised get ivar 0 and no NaN")
def check_unnormalisable(case: NormalizerCase) -> str:
    """Appending a star with every ivar 0, one with 3 good pixels and one of negative flux: flux
    and ivar finite everywhere, and ivar 0 wherever the input ivar is 0 or the continuum is not
    finite and > 0."""
    n, p = case.flux.shape
    flux = np.vstack([case.flux, case.flux[:2], -case.flux[2:3]])
    ivar = np.vstack([case.ivar, np.zeros((2, p)), case.ivar[2:3]])
    good3 = [p // 4, p // 2, 3 * p // 4]
    ivar[n + 1, good3] = case.ivar[1, good3]
    nf, ni, cont = case.normalize(case.wave, flux, ivar)
    bad = [i for i in range(n + 3) if not (np.all(np.isfinite(nf[i])) and np.all(np.isfinite(ni[i])))]
    if bad:
        return (f"NaN or inf in the normalised flux or ivar of star(s) {bad} (stars {n}, {n + 1}, {n + 2}: "
                f"all ivar 0, 3 good pixels, negative flux)")
    with np.errstate(invalid="ignore"):
        not_normalised = (ivar == 0) | ~(np.isfinite(cont) & (cont > 0))
    wrong = sorted(set(np.argwhere(not_normalised & (ni != 0))[:, 0].tolist()))
    if wrong:
        return f"star(s) {wrong}: ivar > 0 where the input ivar is 0 or the continuum is not finite and > 0"
    return ""


@check("spectra whose continuum is 1 stay at 1")
def check_flat_continuum(case: NormalizerCase) -> str:
    """On spectra of continuum exactly 1 (with lines and noise), each star's continuum has a
    median within 2% of 1 over its pixels."""
    wave, flux, ivar, _ = make_raw_spectra(seed=5, flat=True)
    _, _, cont = case.normalize(wave, flux, ivar)
    med = np.array([np.median(c[np.isfinite(c)]) if np.isfinite(c).any() else np.nan for c in cont])
    off = np.flatnonzero(~(np.abs(med - 1.0) <= 0.02))
    if off.size:
        return f"continuum medians {med[off].round(4).tolist()} of star(s) {off.tolist()} are not within 2% of 1"
    return f"note: continuum medians within {np.max(np.abs(med - 1.0)):.2%} of 1"


@check("vectorised over stars equals one star at a time")
def check_chunk_invariance(case: NormalizerCase) -> str:
    """Each star's result is what it gets normalised alone, as (1, P) with the (P,) grid."""
    alone = [case.normalize(case.wave, case.flux[i:i + 1], case.ivar[i:i + 1]) for i in range(case.flux.shape[0])]
    stacked = tuple(np.vstack([a[k] for a in alone]) for k in range(3))
    return _same(case.result(), stacked, "all stars at once vs one at a time")


@check("inputs are not modified")
def check_inputs_unchanged(case: NormalizerCase) -> str:
    """``normalize`` leaves wave ((P,) and, when it takes them, (N, P)), flux and ivar as they were."""
    for wave in (case.wave.copy(), np.tile(case.wave, (case.flux.shape[0], 1))):
        args = (wave, case.flux.copy(), case.ivar.copy())
        before = [a.copy() for a in args]
        try:
            case.fresh().normalize(*args)
        except Exception:  # noqa: BLE001 - (N, P) waves are check_wave_2d's business
            if wave.ndim == 2:
                continue
            raise
        for name, a, b in zip(("wave", "flux", "ivar"), args, before):
            if not np.array_equal(a, b):
                return f"normalize modified {name} (given a {wave.ndim}-D wave)"
    return ""


@check("deterministic given its parameters")
def check_deterministic(case: NormalizerCase) -> str:
    """Two calls on one instance, and a call on a fresh instance, give equal results."""
    norm = case.fresh()
    first = case.normalize(case.wave, case.flux, case.ivar, norm)
    return (_same(first, case.normalize(case.wave, case.flux, case.ivar, norm), "a second call")
            or _same(first, case.result(), "a fresh instance"))


#: The normaliser checks, in the order :func:`check_normalizer` runs them.
NORMALIZER_CHECKS = [check_params, check_output_shapes, check_wave_2d, check_shifted_waves, check_rest_frame,
                     check_ivar_scaling,
                     check_unnormalisable, check_flat_continuum, check_chunk_invariance, check_inputs_unchanged,
                     check_deterministic]


def check_normalizer(normalizer: type[Normalizer] | Normalizer, params: dict[str, Any] | None = None, *,
                     raise_on_fail: bool = True) -> list[CheckResult]:
    """Run the normaliser contract checks (:data:`NORMALIZER_CHECKS`); one :class:`CheckResult` each.

    Parameters
    ----------
    normalizer : a :class:`~slamfw.Normalizer` subclass (built with ``params``) or an instance
        (its ``get_params()`` are used for every fresh copy the checks need).
    raise_on_fail : raise :class:`~slamfw.testing.ComponentCheckError` naming the failed checks.
    """
    cls, params = resolve(normalizer, params, Normalizer)
    return run_checks(NORMALIZER_CHECKS, NormalizerCase(cls, params), raise_on_fail)
