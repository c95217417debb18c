"""The inferer conformance kit: ``check_inferer``.

It runs the inferer on spectra of the analytic :class:`~slamfw.testing.reference.ReferenceEmulator`
(3 labels, 40 pixels), wrapped in a :class:`~slamfw.TrainedEmulator` with a library of 200
training labels, and checks the contract of :class:`slamfw.Inferer`:

- noiseless spectra (ivar 1e8) of 10 label vectors inside the training range come back within
  1e-3 of each label's training standard deviation, converged;
- the :class:`~slamfw.LabelResult` is well formed (shapes (N, L), (N, L, L), (N,); label names;
  finite, symmetric covariances and finite labels where converged);
- chunk invariance: ``infer(a ∪ b) = infer(a) ∪ infer(b)``;
- flux at ivar-0 pixels does not matter (garbage or NaN there changes nothing);
- NaN flux at a pixel with ivar > 0 and wrong shapes raise a :class:`~slamfw.SlamfwError`;
- equal parameters give equal results, and the inputs are not modified;
- it takes the stars' ids, and a prior changes its labels (or it refuses the prior with a
  :class:`~slamfw.ConfigError`);
- ``stars_per_call(model)`` is None or a positive integer.

Usage, like :func:`~slamfw.testing.check_emulator`::

    check_inferer(MyInferer, {"n_walkers": 16})      # raises ComponentCheckError listing failures
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..components.inferer import Inferer, TrainedEmulator, stars_per_call_problem
from ..components.prior import LeastSquaresForm, Prior
from ..data.results import LabelResult
from ..errors import ConfigError, SlamfwError
from ._common import Case, CheckResult, checker, params_check, raises, resolve, run_checks
from .reference import make_reference_model, noisy_spectra, reference_labels

__all__ = ["check_inferer", "INFERER_CHECKS", "InfererCase"]

#: Tolerances, in units of each label's training standard deviation.
RECOVERY_TOL = 1e-3
SAME_TOL = 1e-6


class InfererCase(Case):
    """An inferer class and parameters, the reference model, and the generated spectra:
    ``truth`` (10, 3) with noiseless ``clean_flux``/``clean_ivar`` (10, P), and ``flux``/``ivar``
    (12, P) at S/N 50 with 5% of the pixels at ivar 0; the result on the latter is made once."""

    base = Inferer

    def __init__(self, cls: type[Inferer], params: dict[str, Any]) -> None:
        super().__init__(cls, params)
        self.model: TrainedEmulator = make_reference_model()
        self.scale = self.model.train_labels.std(0)
        emu = self.model.emulator
        self.truth = reference_labels(10, seed=1, margin=0.1)
        self.clean_flux = emu.predict(self.truth)
        self.clean_ivar = np.full_like(self.clean_flux, 1e8)
        self.noisy_labels = reference_labels(12, seed=2, margin=0.05)
        self.flux, self.ivar = noisy_spectra(emu, self.noisy_labels, 50.0, seed=3, bad_fraction=0.05)
        self._result: LabelResult | None = None

    def infer(self, flux: np.ndarray, ivar: np.ndarray, inferer: Inferer | None = None) -> LabelResult:
        """``infer`` on copies of flux, ivar (N, P) with a fresh instance (or ``inferer``)."""
        return (inferer or self.fresh()).infer(self.model, flux.copy(), ivar.copy())

    def result(self) -> LabelResult:
        """The result on the noisy spectra, made once."""
        if self._result is None:
            self._result = self.infer(self.flux, self.ivar)
        return self._result


def _differences(a: LabelResult, b: LabelResult, scale: np.ndarray) -> str:
    """'' when two results agree (labels within SAME_TOL of ``scale`` (L,), same converged flags,
    covariances, rmse and chi2 close), else the first difference."""
    la, lb = np.asarray(a.labels, float), np.asarray(b.labels, float)
    if la.shape != lb.shape:
        return f"label arrays of shapes {la.shape} and {lb.shape}"
    if not np.array_equal(np.asarray(a.converged, bool), np.asarray(b.converged, bool)):
        return "the converged flags differ"
    fa, fb = np.isfinite(la), np.isfinite(lb)
    if np.any(fa != fb) or not np.array_equal(la[~fa], lb[~fb], equal_nan=True):
        return "labels are non-finite for different stars or labels"
    worst = float(np.max(np.abs(np.where(fa, la - lb, 0.0)) / scale, initial=0.0))
    if worst > SAME_TOL:
        return f"labels differ by up to {worst:.3g} label standard deviations (tolerance {SAME_TOL:g})"
    cov_scale = np.outer(scale, scale)
    for what, x, y, atol in (("cov", a.cov, b.cov, 1e-6 * cov_scale), ("rmse", a.rmse, b.rmse, 1e-12),
                             ("chi2", a.chi2, b.chi2, 1e-12)):
        x, y = np.asarray(x, float), np.asarray(y, float)
        if x.shape != y.shape or not np.allclose(x, y, rtol=1e-4, atol=atol, equal_nan=True):
            return f"{what} differs"
    return ""


check = checker(InfererCase)
check_params = params_check(InfererCase)


@check("noiseless emulator spectra give back their labels")
def check_recovers_labels(case: InfererCase) -> str:
    """Noiseless spectra (ivar 1e8) of 10 label vectors inside the training range: every star
    converged and within 1e-3 of each label's training standard deviation."""
    res = case.infer(case.clean_flux, case.clean_ivar)
    labels = np.asarray(res.labels, float)
    if labels.shape != case.truth.shape:
        return f"labels have shape {labels.shape}, expected {case.truth.shape}"
    err = np.abs(labels - case.truth) / case.scale
    worst = float(np.max(np.where(np.isnan(err), np.inf, err)))
    if not worst < RECOVERY_TOL:
        star = int(np.argmax(np.where(np.isnan(err), np.inf, err).max(1)))
        return (f"star {star}: true {case.truth[star].round(4).tolist()}, got {labels[star].tolist()} "
                f"(off by {worst:.3g} label standard deviations; tolerance {RECOVERY_TOL:g})")
    if not np.all(np.asarray(res.converged, bool)):
        return f"{int((~np.asarray(res.converged, bool)).sum())} noiseless spectra flagged not converged"
    return f"note: largest error {worst:.1e} label standard deviations"


def _shape_problem(res: LabelResult, n: int, n_lab: int) -> str:
    want = {"labels": (n, n_lab), "cov": (n, n_lab, n_lab), "converged": (n,), "rmse": (n,),
            "chi2": (n,), "init": (n, n_lab)}
    for key, shape in want.items():
        if np.shape(getattr(res, key)) != shape:
            return f"{key} has shape {np.shape(getattr(res, key))}, expected {shape}"
    if res.nfev is not None and np.shape(res.nfev) != (n,):
        return f"nfev has shape {np.shape(res.nfev)}, expected ({n},)"
    if res.samples is not None and (np.ndim(res.samples) != 3 or np.shape(res.samples)[::2] != (n, n_lab)):
        return f"samples have shape {np.shape(res.samples)}, expected ({n}, S, {n_lab})"
    bad = [k for k, v in res.extra.items() if np.shape(v)[:1] != (n,)]
    return f"extra arrays {bad} do not have {n} rows" if bad else ""


@check("the LabelResult is well formed")
def check_result_format(case: InfererCase) -> str:
    """A :class:`~slamfw.LabelResult` with (N, L) labels and init, (N, L, L) cov, (N,) bool
    converged, rmse and chi2, the model's label names; where converged, finite labels and
    finite, symmetric covariances with a diagonal >= 0."""
    res = case.result()
    if not isinstance(res, LabelResult):
        return f"infer returned {type(res).__name__}, not a LabelResult"
    n, n_lab = case.flux.shape[0], len(case.model.label_names)
    problem = _shape_problem(res, n, n_lab)
    if problem:
        return problem
    if list(res.label_names) != list(case.model.label_names):
        return f"label_names {res.label_names} are not the model's {case.model.label_names}"
    if np.asarray(res.converged).dtype != bool:
        return f"converged has dtype {np.asarray(res.converged).dtype}, expected bool"
    ok = np.asarray(res.converged)
    if not ok.any():
        return "note: no star converged on S/N 50 spectra, so covariances were not checked"
    labels, cov = np.asarray(res.labels, float)[ok], np.asarray(res.cov, float)[ok]
    if not np.all(np.isfinite(labels)):
        return "converged stars have non-finite labels"
    if not np.all(np.isfinite(cov)):
        return "converged stars have non-finite covariances"
    if not np.allclose(cov, np.swapaxes(cov, 1, 2), rtol=1e-6, atol=1e-12 * np.outer(case.scale, case.scale)):
        return "the covariances are not symmetric"
    if np.any(np.diagonal(cov, axis1=1, axis2=2) < 0):
        return "a covariance has a negative variance"
    return ""


@check("a star's result does not depend on the others in the call (chunks)")
def check_chunk_invariance(case: InfererCase) -> str:
    """``infer`` of 12 stars equals ``LabelResult.concatenate`` of ``infer`` of the first 5 and
    of the other 7."""
    whole = case.result()
    parts = [case.infer(case.flux[s], case.ivar[s]) for s in (slice(0, 5), slice(5, None))]
    joined = LabelResult.concatenate(parts)
    diff = _differences(whole, joined, case.scale)
    return f"infer(all) and infer(first 5) + infer(other 7): {diff}" if diff else ""


@check("flux at ivar-0 pixels is ignored")
def check_zero_ivar_ignored(case: InfererCase) -> str:
    """Replacing the flux of the ivar-0 pixels by +-50, or by NaN, changes nothing."""
    bad = case.ivar == 0
    for what, values in (("+-50", [50.0, -50.0]), ("NaN", [np.nan])):
        flux = case.flux.copy()
        flux[bad] = np.resize(np.array(values), int(bad.sum()))
        try:
            diff = _differences(case.result(), case.infer(flux, case.ivar), case.scale)
        except Exception as err:  # noqa: BLE001 - reported
            diff = f"infer raised {type(err).__name__}: {err}"
        if diff:
            return f"flux {what} at the ivar-0 pixels: {diff}"
    return ""


@check("NaN flux at a good pixel raises a SlamfwError")
def check_nan_flux(case: InfererCase) -> str:
    """NaN (or inf) flux at a pixel with ivar > 0 raises a :class:`~slamfw.SlamfwError` with a message."""
    for value in (np.nan, np.inf):
        flux = case.flux.copy()
        j = int(np.flatnonzero(case.ivar[3] > 0)[7])
        flux[3, j] = value
        msg = raises(lambda f=flux: case.infer(f, case.ivar), SlamfwError)
        if msg:
            return f"flux {value} at star 3, pixel {j} (ivar > 0): {msg}"
    return ""


@check("wrong shapes raise a SlamfwError")
def check_bad_shapes(case: InfererCase) -> str:
    """Flux and ivar of P+1 pixels, ivar of P-1 pixels or of N-1 stars raise a
    :class:`~slamfw.SlamfwError` (not a raw numpy error)."""
    f, i = case.flux, case.ivar
    wider = (np.hstack([f, f[:, :1]]), np.hstack([i, i[:, :1]]))
    for what, (flux, ivar) in (("flux and ivar with P+1 pixels", wider),
                               ("ivar with P-1 pixels", (f, i[:, :-1])),
                               ("ivar with N-1 stars", (f, i[:-1]))):
        msg = raises(lambda f=flux, i=ivar: case.infer(f, i), SlamfwError)
        if msg:
            return f"{what}: {msg}"
    return ""


@check("deterministic given its parameters (seed)")
def check_deterministic(case: InfererCase) -> str:
    """Two calls on one instance, and a call on a fresh instance, give equal results."""
    inferer = case.fresh()
    first = case.infer(case.flux, case.ivar, inferer)
    for what, other in (("a second call", case.infer(case.flux, case.ivar, inferer)),
                        ("a fresh instance", case.result())):
        diff = _differences(first, other, case.scale)
        if diff:
            return f"{what} gives another result: {diff}"
    return ""


@check("inputs are not modified")
def check_inputs_unchanged(case: InfererCase) -> str:
    """``infer`` leaves flux, ivar and the model's training labels as they were."""
    flux, ivar = case.flux.copy(), case.ivar.copy()
    train = case.model.train_labels.copy()
    case.fresh().infer(case.model, flux, ivar)
    for what, a, b in (("flux", flux, case.flux), ("ivar", ivar, case.ivar),
                       ("model.train_labels", case.model.train_labels, train)):
        if not np.array_equal(a, b, equal_nan=True):
            case.model.train_labels[...] = train
            return f"infer modified {what}"
    return ""


@check("stars_per_call is None or a positive integer")
def check_stars_per_call(case: InfererCase) -> str:
    """``stars_per_call(model)`` (plugin API 1.3) is None, or the positive number of stars one
    ``infer`` call in the pipeline's own process should get."""
    return stars_per_call_problem(case.fresh().stars_per_call(case.model)) or ""


class _NarrowPrior(Prior):
    """A Gaussian on label 0 only, at ``mean`` with width ``sigma``."""

    def __init__(self, mean: float, sigma: float, n_labels: int) -> None:
        self.mean, self.sigma, self.n = mean, sigma, n_labels

    def least_squares_form(self, star: str | None = None) -> LeastSquaresForm:
        mean, sigma = np.full(self.n, np.nan), np.full(self.n, np.inf)
        mean[0], sigma[0] = self.mean, self.sigma
        return LeastSquaresForm(mean, sigma, np.full(self.n, -np.inf), np.full(self.n, np.inf))


@check("takes the stars' ids and a prior (or refuses the prior with a ConfigError)")
def check_prior_and_ids(case: InfererCase) -> str:
    """``infer(..., ids=ids)`` with N string ids gives N stars; ``infer(..., prior=p, ids=ids)``
    with a narrow Gaussian prior on label 0 (a twentieth of its training scatter, half a scatter
    above the truth) either raises :class:`~slamfw.ConfigError` (an inferer that takes no prior)
    or moves label 0 of every star closer to the prior's mean than without it."""
    ids = np.array([f"star{i}" for i in range(case.clean_flux.shape[0])])
    try:
        free = case.fresh().infer(case.model, case.clean_flux.copy(), case.clean_ivar.copy(), prior=None, ids=ids)
    except TypeError as err:
        return f"infer does not take ids= (plugin API 1.1): {err}"
    if free.labels.shape != case.truth.shape:
        return f"with ids, labels of shape {free.labels.shape}, expected {case.truth.shape}"
    target = case.truth[:, 0] + 0.5 * case.scale[0]
    prior = _NarrowPrior(float(np.mean(target)), 0.05 * case.scale[0], case.truth.shape[1])
    flux = np.repeat(case.clean_flux[:1], 3, axis=0)
    ivar = np.full_like(flux, 1e4)
    try:
        with_prior = case.fresh().infer(case.model, flux, ivar, prior=prior, ids=ids[:3])
    except ConfigError:
        return ""
    without = case.fresh().infer(case.model, flux, ivar, prior=None, ids=ids[:3])
    if not np.all(np.abs(with_prior.labels[:, 0] - prior.mean) < np.abs(without.labels[:, 0] - prior.mean)):
        return (f"a narrow prior on label 0 at {prior.mean:.4g} left it at {with_prior.labels[:, 0].tolist()} "
                f"(without the prior: {without.labels[:, 0].tolist()}): the prior is ignored")
    return ""


#: The inferer checks, in the order :func:`check_inferer` runs them.
INFERER_CHECKS = [check_params, check_recovers_labels, check_result_format, check_chunk_invariance,
                  check_zero_ivar_ignored, check_nan_flux, check_bad_shapes, check_deterministic,
                  check_inputs_unchanged, check_prior_and_ids, check_stars_per_call]


def check_inferer(inferer: type[Inferer] | Inferer, params: dict[str, Any] | None = None, *,
                  raise_on_fail: bool = True) -> list[CheckResult]:
    """Run the inferer contract checks (:data:`INFERER_CHECKS`); one :class:`CheckResult` each.

    Parameters
    ----------
    inferer : an :class:`~slamfw.Inferer` subclass (built with ``params``) or an unfitted
        instance (its ``get_params()`` are used for every fresh copy the checks need).
    raise_on_fail : raise :class:`~slamfw.testing.ComponentCheckError` naming the failed checks.
    """
    cls, params = resolve(inferer, params, Inferer)
    return run_checks(INFERER_CHECKS, InfererCase(cls, params), raise_on_fail)
