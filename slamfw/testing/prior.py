"""The prior conformance kit: ``check_prior``.

It fits the prior on made-up training labels (50 stars, the three labels ``Teff``, ``logg``,
``FeH`` of :data:`slamfw.testing.reference.LABEL_NAMES`, fixed seed; parameters that name labels
must use these names), evaluates it at 41 label vectors (the training median and 40 points
spread over the training range widened by 30% on each side, so that a box cuts some out), and
checks the contract of :class:`slamfw.Prior`:

- ``fit`` returns self, sets ``label_names_``/``n_labels_`` (``super().fit``), names its fitted
  attributes with a trailing ``_`` and leaves its inputs alone;
- ``log_prob`` is vectorised: (W, L) -> (W,) floats (no NaN, no +inf), equal to the values
  computed one row at a time, without modifying theta;
- it is finite at the training labels' median;
- ``least_squares_form``, when not None, has (L,) float arrays: sigma > 0 (``inf``: no Gaussian),
  a finite mean where sigma is finite, ``lo <= hi``;
- that form agrees with ``log_prob``: ``-inf`` outside its box, and inside it differences
  ``log_prob(a) - log_prob(b)`` equal those of the form's Gaussian terms;
- ``per_star`` is a bool; a prior that is not per-star ignores ``star``, and a per-star prior
  given an id it does not know answers (W,) values or raises a :class:`~slamfw.SlamfwError`
  naming the id;
- equal parameters and data give equal priors;
- parameters round-trip through ``get_params``/``set_params``/``sklearn.base.clone``.

Per-star priors (``per_star = True``) need star ids. The kit evaluates a prior that is not
per-star with ``star=None``; a per-star prior at three ids of its fitted attribute ``stars_``
(the stars it knows, e.g. the rows of a catalogue: the first three, of the first 100, for which
``log_prob`` raises no :class:`~slamfw.SlamfwError`) when it has one, else with ``star=None``
(the prior for a star it does not know), with a note saying so.

Usage: ``check_prior(MyPrior)`` or ``check_prior(MyPrior, {"path": "cat.ecsv", "columns": ...})``.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..components.prior import LeastSquaresForm, Prior
from ..errors import SlamfwError
from ._common import (
    Case,
    CheckResult,
    NotRun,
    checker,
    params_check,
    resolve,
    run_checks,
)
from .reference import LABEL_NAMES, reference_labels

__all__ = ["PRIOR_CHECKS", "PriorCase", "check_prior"]

#: An id that no prior knows (for the per-star check).
UNKNOWN_STAR = "slamfw-check-no-such-star"
#: How many of a per-star prior's ``stars_`` the kit tries, to find three it answers for.
STARS_SCANNED = 100
#: Tolerance of the agreement between log_prob and the least-squares form (relative and absolute).
FORM_TOL = 1e-8


def _answers(prior: Prior, star: str, median: np.ndarray) -> bool:
    """Whether ``log_prob`` at the (3,) median for ``star`` returns without a SlamfwError."""
    try:
        prior.log_prob(median[None].copy(), star)
    except SlamfwError:
        return False
    return True


class PriorCase(Case):
    """A prior class and parameters, the made-up training labels ``train`` (50, 3) with
    ``names``, the evaluation points ``points`` (41, 3) (row 0: the training median), and the
    prior fitted once."""

    base = Prior

    def __init__(self, cls: type[Prior], params: dict[str, Any]) -> None:
        super().__init__(cls, params)
        self.names = list(LABEL_NAMES)
        self.train = reference_labels(50, seed=21)
        self.median = np.median(self.train, axis=0)
        lo, hi = self.train.min(0), self.train.max(0)
        pad = 0.3 * (hi - lo)
        spread = np.random.default_rng(22).uniform(lo - pad, hi + pad, size=(40, len(self.names)))
        self.points = np.vstack([self.median, spread])
        self._fitted: Prior | None = None
        self._stars: list[str | None] | None = None

    def fit(self, prior: Prior | None = None) -> Prior:
        """``prior`` (or a fresh instance) fitted on copies of the training labels and names (the
        instance, whatever ``fit`` returns: the fit check reports that)."""
        prior = self.fresh() if prior is None else prior
        prior.fit(self.train.copy(), list(self.names))
        return prior

    def fitted(self) -> Prior:
        """The prior fitted once; :class:`NotRun` when ``fit`` fails."""
        if self._fitted is None:
            try:
                self._fitted = self.fit()
            except Exception as err:
                raise NotRun(f"fit failed: {type(err).__name__}: {err}") from err
        return self._fitted

    def stars(self) -> list[str | None]:
        """The star ids the checks evaluate the prior for (see the module docstring), found once."""
        if self._stars is None:
            prior = self.fitted()
            known = getattr(prior, "stars_", None) if type(prior).per_star else None
            known = [] if known is None else [str(s) for s in list(known)[:STARS_SCANNED]]
            answering = [s for s in known if _answers(prior, s, self.median)][:3]
            self._stars = answering or known[:3] or [None]
        return self._stars


def _values_problem(values: Any, n: int) -> str:
    """'' if ``values`` is a float (n,) array without NaN or +inf, else what is wrong."""
    if not isinstance(values, np.ndarray):
        return f"log_prob returned {type(values).__name__}, not a numpy array"
    if values.shape != (n,):
        return f"log_prob of {n} label vectors has shape {values.shape}, expected ({n},)"
    if values.dtype.kind != "f":
        return f"log_prob returned dtype {values.dtype}, expected floats"
    if np.any(np.isnan(values)) or np.any(values == np.inf):
        return "log_prob returned NaN or +inf (only -inf, outside the support, is allowed)"
    return ""


def _same_forms(a: LeastSquaresForm | None, b: LeastSquaresForm | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return all(np.array_equal(getattr(a, k), getattr(b, k), equal_nan=True) for k in ("mean", "sigma", "lo", "hi"))


def _star_name(star: str | None) -> str:
    return "" if star is None else f" (star {star!r})"


check = checker(PriorCase)
check_params = params_check(PriorCase)


@check("fit returns self and sets fitted attributes")
def check_fit(case: PriorCase) -> str:
    """``fit(train_labels (50, 3), label_names)`` returns self, sets ``label_names_`` and
    ``n_labels_`` (as ``Prior.fit`` does: call ``super().fit``), adds no attribute whose name does
    not end in ``_`` (parameters stay parameters), and modifies neither input."""
    prior = case.fresh()
    before = set(vars(prior))
    labels, names = case.train.copy(), list(case.names)
    if prior.fit(labels, names) is not prior:
        return "fit must return self"
    if not np.array_equal(labels, case.train) or names != case.names:
        return "fit modified train_labels or label_names"
    if list(getattr(prior, "label_names_", [])) != case.names or getattr(prior, "n_labels_", None) != len(case.names):
        return "fit did not set label_names_ and n_labels_: call super().fit(train_labels, label_names)"
    odd = sorted(k for k in set(vars(prior)) - before if not k.endswith("_") and not k.startswith("_"))
    return f"fit set attributes {odd}: fitted attributes end in _" if odd else ""


@check("log_prob is vectorised: (W, L) -> (W,), equal to one row at a time")
def check_vectorised(case: PriorCase) -> str:
    """``log_prob`` of the 41 points (41, 3) is a float (41,) array without NaN or +inf, equal
    (to 1e-10) to ``log_prob`` of each (1, 3) row, and the points are not modified."""
    prior, n = case.fitted(), case.points.shape[0]
    for star in case.stars():
        theta = case.points.copy()
        values = prior.log_prob(theta, star)
        problem = _values_problem(values, n) or ("" if np.array_equal(theta, case.points) else "log_prob modified theta")
        if problem:
            return problem + _star_name(star)
        rows = [np.asarray(prior.log_prob(case.points[i:i + 1].copy(), star), float).reshape(-1) for i in range(n)]
        if any(r.shape != (1,) for r in rows):
            return f"log_prob of one (1, L) row does not have shape (1,){_star_name(star)}"
        one = np.concatenate(rows)
        differ = np.flatnonzero(~np.isclose(values, one, rtol=1e-10, atol=1e-10))
        if differ.size:
            i = int(differ[0])
            return (f"point {i}: log_prob of all points gives {float(values[i])!r}, of that row alone {float(one[i])!r}"
                    f"{_star_name(star)}")
    return ""


@check("finite at the training labels' median")
def check_finite_at_median(case: PriorCase) -> str:
    """``log_prob`` of the (1, 3) median of the training labels is finite."""
    prior = case.fitted()
    for star in case.stars():
        value = np.asarray(prior.log_prob(case.median[None].copy(), star), float).reshape(-1)
        if value.shape != (1,) or not np.isfinite(value[0]):
            return f"log_prob at the training median {case.median.round(3).tolist()} is {value.tolist()}{_star_name(star)}"
    return ""


def _form_problem(form: Any, n_labels: int) -> str:
    """'' if ``form`` is a well-formed LeastSquaresForm of ``n_labels`` labels, else what is wrong."""
    if not isinstance(form, LeastSquaresForm):
        return f"least_squares_form returned {type(form).__name__}, not a LeastSquaresForm or None"
    arrays = {k: getattr(form, k) for k in ("mean", "sigma", "lo", "hi")}
    for key, value in arrays.items():
        if not isinstance(value, np.ndarray) or value.shape != (n_labels,) or value.dtype.kind != "f":
            return f"form.{key} must be a float array of shape ({n_labels},); got {value!r}"
    sigma, mean = arrays["sigma"], arrays["mean"]
    if np.any(np.isnan(sigma)) or np.any(sigma <= 0):
        return f"form.sigma must be > 0, inf where a label has no Gaussian; got {sigma.tolist()}"
    if not np.all(np.isfinite(mean[np.isfinite(sigma)])):
        return f"form.mean must be finite where sigma is finite; got {mean.tolist()}"
    if np.any(np.isnan(arrays["lo"]) | np.isnan(arrays["hi"])) or np.any(arrays["lo"] > arrays["hi"]):
        return f"the box must have lo <= hi and no NaN; got lo {arrays['lo'].tolist()}, hi {arrays['hi'].tolist()}"
    return ""


@check("least_squares_form is None or well formed")
def check_form_shapes(case: PriorCase) -> str:
    """``least_squares_form(star)`` is None (the prior serves sampling inferers only) or a
    :class:`~slamfw.LeastSquaresForm` of (L,) float arrays: sigma > 0 or inf, mean finite where
    sigma is finite, no NaN in the box and ``lo <= hi``."""
    prior = case.fitted()
    for star in case.stars():
        form = prior.least_squares_form(star)
        if form is None:
            return "note: least_squares_form is None: a prior for sampling inferers only (lm refuses it)"
        problem = _form_problem(form, len(case.names))
        if problem:
            return problem + _star_name(star)
    return ""


def _agreement_problem(prior: Prior, form: LeastSquaresForm, points: np.ndarray, star: str | None) -> str:
    """'' if ``log_prob`` of ``points`` (W, L) agrees with ``form``, else the first disagreement."""
    values = np.asarray(prior.log_prob(points.copy(), star), float)
    expected = form.log_prob(points)
    inside = np.all((points >= form.lo) & (points <= form.hi), axis=1)
    outside = np.flatnonzero(~inside & (values != -np.inf))
    if outside.size:
        i = int(outside[0])
        return f"point {i} {points[i].round(4).tolist()} is outside the form's box but log_prob is {float(values[i])!r}, not -inf"
    idx = np.flatnonzero(inside)
    if not idx.size:
        return "none of the 41 points is inside the form's box (not even the training median)"
    got, want = values[idx] - values[idx[0]], expected[idx] - expected[idx[0]]
    bad = np.flatnonzero(~np.isclose(got, want, rtol=FORM_TOL, atol=FORM_TOL))
    if bad.size:
        i, j = int(idx[bad[0]]), int(idx[0])
        return (f"log_prob(point {i}) - log_prob(point {j}) = {float(got[bad[0]])!r}, but the form's Gaussian "
                f"terms give {float(want[bad[0]])!r}")
    return ""


@check("least_squares_form agrees with log_prob")
def check_form_agrees(case: PriorCase) -> str:
    """Where the form is not None: ``log_prob`` is ``-inf`` at the points outside its box, and
    inside it ``log_prob(a) - log_prob(b)`` equals the same difference of
    ``LeastSquaresForm.log_prob`` (to 1e-8), for every pair of points (both are defined up to a
    constant)."""
    prior = case.fitted()
    for star in case.stars():
        form = prior.least_squares_form(star)
        if form is None:
            return "note: least_squares_form is None: nothing to compare"
        problem = _agreement_problem(prior, form, case.points, star)
        if problem:
            return problem + _star_name(star)
    return ""


def _unknown_star_problem(prior: Prior, points: np.ndarray) -> str:
    """'' if a per-star prior answers for an unknown id, or raises a SlamfwError naming it."""
    try:
        values = prior.log_prob(points.copy(), UNKNOWN_STAR)
    except SlamfwError as err:
        return "" if UNKNOWN_STAR in str(err) else f"the error for an unknown star does not name it: {err}"
    return _values_problem(values, points.shape[0])


@check("per_star is a bool, and star ids are honoured")
def check_per_star(case: PriorCase) -> str:
    """``per_star`` is a bool. Not per-star: ``log_prob`` and ``least_squares_form`` with a star
    id equal those with ``star=None``. Per-star: an id the prior does not know gives (W,) values
    or a :class:`~slamfw.SlamfwError` that names it; a note when the prior has no ``stars_``."""
    per_star = getattr(case.cls, "per_star", None)
    if not isinstance(per_star, bool):
        return f"per_star must be a bool class attribute; got {per_star!r}"
    prior = case.fitted()
    if not per_star:
        same = np.array_equal(prior.log_prob(case.points.copy()), prior.log_prob(case.points.copy(), UNKNOWN_STAR))
        if not same or not _same_forms(prior.least_squares_form(), prior.least_squares_form(UNKNOWN_STAR)):
            return "per_star is False, but log_prob or least_squares_form depends on the star id"
        return ""
    problem = _unknown_star_problem(prior, case.points)
    if problem:
        return f"star {UNKNOWN_STAR!r}, which the prior does not know: {problem}"
    if case.stars() == [None]:
        return "note: the prior has no stars_ attribute (the ids it knows): the other checks used star=None"
    return ""


@check("deterministic: equal parameters and data give equal priors")
def check_deterministic(case: PriorCase) -> str:
    """A second call on one instance, a fresh instance fitted on the same labels and the same
    instance fitted twice give equal ``log_prob`` values and least-squares forms."""
    prior = case.fitted()
    twice = case.fit(case.fit())
    for star in case.stars():
        first = prior.log_prob(case.points.copy(), star)
        for what, other in (("a second call", prior), ("a fresh instance", case.fit()), ("refitting", twice)):
            if not np.array_equal(first, other.log_prob(case.points.copy(), star)):
                return f"{what} gives other log_prob values{_star_name(star)}"
            if not _same_forms(prior.least_squares_form(star), other.least_squares_form(star)):
                return f"{what} gives another least-squares form{_star_name(star)}"
    return ""


#: The prior checks, in the order :func:`check_prior` runs them.
PRIOR_CHECKS = [check_params, check_fit, check_vectorised, check_finite_at_median, check_form_shapes,
                check_form_agrees, check_per_star, check_deterministic]


def check_prior(prior: type[Prior] | Prior, params: dict[str, Any] | None = None, *,
                raise_on_fail: bool = True) -> list[CheckResult]:
    """Run the prior contract checks (:data:`PRIOR_CHECKS`); one :class:`CheckResult` each.

    Parameters
    ----------
    prior : a :class:`~slamfw.Prior` subclass (built with ``params``) or an unfitted instance (its
        ``get_params()`` are used for every fresh copy the checks need). Labels are named
        ``Teff``, ``logg``, ``FeH``.
    raise_on_fail : raise :class:`~slamfw.testing.ComponentCheckError` naming the failed checks.
    """
    cls, params = resolve(prior, params, Prior)
    return run_checks(PRIOR_CHECKS, PriorCase(cls, params), raise_on_fail)

