"""Levenberg-Marquardt maximum likelihood labels (paper §2.3), from several starts.

Likelihood, eq. (8): pixel j of an observed spectrum has variance ``1/ivar_j + sigma_j^2`` where
``sigma_j`` is the emulator's ``model_error_``; maximising it is weighted least squares in
standardised label space (:func:`slamfw.maximum_likelihood`). By default (``batched = true``) all
the stars of a task, with all their starts, are iterated together by one Levenberg-Marquardt
whose every step is a few matrix products for the whole batch (:mod:`slamfw.stats.batched_lm`);
``batched = false`` solves them one by one with ``scipy.optimize.least_squares`` (``method``
"lm", MINPACK's ``lmder``, pinned to its scaling by J's columns, ``x_scale = "jac"``, scipy's
default since 1.16; or "trf" for bounds). Both solve the same problem, and by default
(``steps = "minpack"``, :mod:`slamfw.stats.minpack_steps`) the batched solver takes ``lmder``'s
steps, so that, without a box, each star follows the same path and ends at the same labels,
even where a spectrum has several minima: on case (a)'s 20,000 survey spectra within 0.0038 of
the formal error with one start, 0.0042 with three (measured; besides rounding, the departures
from ``lmder``'s path are that a last, confirming evaluation is skipped, ``last_step``,
``last_step = 0``: none, and that a singular J^T J gets the least-norm Gauss-Newton step).
``steps = "secant"`` (an extension) takes Gauss-Newton's steps with a secant term instead: a
sixth fewer evaluations with one start, a tenth with three (11 % less time for the whole
``slamfw predict`` with one start), but on spectra with several minima another path (10 of
those 20,000 stars more than 0.05 of the error from the one-by-one labels with one start, the
farthest, 13 errors, in another minimum; 1 with three starts). With a box the one-by-
one solver is ``trf``, another algorithm, and the batched one holds the labels the gradient
pushes out of the box and projects its steps into it.

Initial guesses: the paper starts from the training star of maximum likelihood; this inferer
starts from ``n_starts`` (default 3) of the best-matching training stars and keeps the solution of
highest likelihood, so a star that one start leaves in a local minimum is fitted from another
(``n_starts = 1`` is the paper's choice). The starts are spread over label space: after the best
match, each next one is the best match at least ``start_separation`` (default 1) standardised
units from those already chosen, so that a spectrum two regions fit about equally well (a warm
star on either side of the Balmer maximum) is started in both (``start_separation = 0``: simply
the k best). Covariance: ``(J^T J)^-1`` at the solution, in physical units (infinite variances
for a label the spectrum does not constrain, ``J^T J`` singular). ``converged``: the kept
solution met a tolerance within ``max_nfev`` evaluations, is finite, and constrains every label.

A prior (``[prior]``) with a Gaussian and box form becomes extra residuals and bounds (the batched
solver projects each trial point into the box; one by one, the bounded ``trf`` method is used); a prior without such a form is refused. ``method = "trf"`` with
``bound_margin`` (an extension, off by default) bounds the labels to the training range widened by
that fraction of its width on each side, as a ``uniform`` prior with ``margin`` does.

``jacobian_precision = "single"`` (an extension, off by default) lets the batched solver on the
CPU compute the jacobian's matrix products in float32, for emulators that offer it (``slam``):
on case (a)'s model the step terms took 1.45 times less time, the whole ``slamfw predict`` 8 %
less; on case (c)'s (5 labels, 7214 pixels) the fit 1.5 times less; the model and the cost, which
accept or reject each step, stay in double (see :mod:`slamfw.stats.batched_lm`).

``device = "cuda"`` runs the batched solver on an NVIDIA GPU through CuPy (an optional extra;
:mod:`slamfw.stats.device`): the same code on CuPy arrays, for emulators with ``on_device``
(``slam``, ``krr``, ``cannon``). Labels agreed with the CPU's to the matrix products' rounding
(measured with the secant steps; MINPACK's steps have not run on a GPU yet).
"""
from __future__ import annotations

import logging
from typing import Literal

import numpy as np
from pydantic import Field

from slamfw import (
    ConfigError,
    InferenceModel,
    Inferer,
    LabelResult,
    LeastSquaresForm,
    Params,
    Prior,
    Solver,
    check_device,
    hookimpl,
    maximum_likelihood,
    prior_forms,
)

SLAMFW_PLUGIN_API = (1, 5)

#: ``last_step``'s default (formal errors): slamfw.stats.minpack_steps.LAST_STEP's value.
LAST_STEP = 0.01

log = logging.getLogger(__name__)


class _TrainingBox(Prior):
    """The training range widened by ``margin`` of its width (``method = "trf"``), under any other prior."""

    def __init__(self, inner: Prior | None, lo: np.ndarray, hi: np.ndarray) -> None:
        self.inner, self.lo, self.hi = inner, lo, hi
        self.per_star = bool(inner is not None and inner.per_star)

    def least_squares_form(self, star=None) -> LeastSquaresForm | None:
        n = self.lo.size
        form = (LeastSquaresForm(np.full(n, np.nan), np.full(n, np.inf), np.full(n, -np.inf), np.full(n, np.inf))
                if self.inner is None else self.inner.least_squares_form(star))
        if form is None:
            return None
        return LeastSquaresForm(form.mean, form.sigma, np.maximum(form.lo, self.lo), np.minimum(form.hi, self.hi))


class LMInferer(Inferer):
    """Maximum likelihood labels by Levenberg-Marquardt from several starts; on the CPU the stars of
    one call are spread over the executor's workers, on a GPU they are fitted in the calling
    process."""

    class Params(Params):
        n_starts: int = Field(3, ge=1, description="fit from k of the best-matching training stars, keep the best")
        start_separation: float = Field(1.0, ge=0, description="each start at least this far (standardised labels) "
                                                               "from the others; 0: the k best matches")
        batched: bool = Field(True, description="iterate the stars of a task together (matrix products for the "
                                                "whole batch); false: one by one with scipy's least_squares")
        device: Literal["cpu", "cuda"] = Field("cpu", description="where the batched solver computes: cpu (numpy) "
                                               "or cuda (an NVIDIA GPU, through CuPy: pip install 'slamfw[cuda13]')")
        jacobian_precision: Literal["double", "single"] = Field(
            "double", description="batched, on the CPU: the jacobian's matrix products in double or single "
                                  "precision (float32, for slam: its step terms about 1.4x faster; the cost, "
                                  "which accepts each step, stays in double)")
        steps: Literal["minpack", "secant"] = Field(
            "minpack", description="batched: each row's steps: minpack (MINPACK lmder's trust region, the path "
                                   "of batched = false: the same labels) or secant (Gauss-Newton's model with a "
                                   "secant term: fewer evaluations, another path on spectra with several minima)")
        last_step: float = Field(LAST_STEP, ge=0, description="minpack steps: a row stops before evaluating a last "
                                                        "step this short (formal errors) that predicts a gain "
                                                        "below ftol, where its last step gained as predicted; "
                                                        "0: every evaluation lmder makes")
        max_nfev: int = Field(200, ge=1, description="cap on function evaluations per star and start")
        xtol: float = Field(1e-8, gt=0, description="lmder (batched = false, steps = minpack): its relative "
                                                    "trust-region size; secant: the relative step size")
        ftol: float = Field(1e-8, gt=0, description="the relative reduction of the cost (actual and predicted, "
                                                    "for lmder)")
        gtol: float = Field(1e-8, gt=0, description="lmder: the largest cosine between the residuals and a "
                                                    "column of J; secant: the largest gradient component")
        use_model_error: bool = Field(True, description="add the emulator's model error to the variance (eq 8)")
        method: Literal["lm", "trf"] = Field("lm", description="lm (paper, unbounded) or trf (bounded)")
        bound_margin: float = Field(0.0, ge=0, description="trf: bounds = training range +- this fraction of it")

    def __init__(self, **params) -> None:
        super().__init__(**params)
        if self.jacobian_precision != "double" and (not self.batched or self.device != "cpu"):
            raise ConfigError(f"lm: jacobian_precision {self.jacobian_precision!r} is for the batched solver on the "
                              f"CPU (batched = true, device = 'cpu'); here batched = {self.batched} and device = "
                              f"{self.device!r}")
        if self.last_step != LAST_STEP and (self.steps != "minpack" or not self.batched):
            raise ConfigError(f"lm: last_step is the batched minpack steps' rule (batched = true, steps = "
                              f"'minpack'); here batched = {self.batched} and steps = {self.steps!r}")
        if self.bound_margin and self.method != "trf":     # was ignored: the catalogue was the same without it
            raise ConfigError(f"lm: bound_margin bounds the labels with method = 'trf' (bounded least squares); "
                              f"here method = {self.method!r}: set method = 'trf', or use a uniform prior with margin")
        if self.steps != "minpack" and not self.batched:
            raise ConfigError(f"lm: steps {self.steps!r} is the batched solver's (batched = true); with batched = "
                              f"false each star takes scipy's lmder steps, which steps = 'minpack' follows")
        if self.device != "cpu":        # refused when the inferer is built (before training, in slamfw run)
            if not self.batched:
                raise ConfigError(f"lm: device {self.device!r} needs batched = true (the one-by-one solver runs on "
                                  f"the CPU)")
            check_device(self.device)

    def infer(self, model: InferenceModel, flux: np.ndarray, ivar: np.ndarray,
              prior: Prior | None = None, ids: np.ndarray | None = None) -> LabelResult:
        """Labels for flux, ivar (N, P) on the model grid; see the module docstring."""
        if self.method == "trf":
            prior_forms("lm", prior, ids, np.atleast_2d(flux).shape[0])   # refuses, by its name, a prior lm cannot use
            train = np.asarray(model.train_labels, float)
            lo, hi = train.min(0), train.max(0)
            pad = self.bound_margin * (hi - lo)
            prior = _TrainingBox(prior, lo - pad, hi + pad)
        if self.device != "cpu":
            check_device(self.device, model.emulator)
        solver = Solver(max_nfev=self.max_nfev, xtol=self.xtol, ftol=self.ftol, gtol=self.gtol, method=self.method,
                        device=self.device, jacobian_precision=self.jacobian_precision, steps=self.steps,
                        last_step=self.last_step)
        result = maximum_likelihood(model, flux, ivar, prior=prior, ids=ids, n_starts=self.n_starts,
                                    use_model_error=self.use_model_error, solver=solver, name="lm",
                                    start_separation=self.start_separation, batched=self.batched)
        n_bad = int((~result.converged).sum())
        if n_bad:
            log.info("lm: %d of %d spectra did not converge (flagged converged=False)", n_bad, result.n)
        return result

    def stars_per_call(self, model: InferenceModel) -> int | None:
        """On a GPU, the solver's batch size there: ``slamfw predict`` then prepares the chunks on
        its workers and fits them in its own process, one large batch at a time (see
        :meth:`slamfw.Inferer.stars_per_call`); on the CPU, None (each worker fits its chunks)."""
        if self.device == "cpu":
            return None
        train = np.asarray(model.train_labels)
        return Solver(device=self.device).batch_stars(self.n_starts, model.emulator.n_pixels_, train.shape[1],
                                                      len(train))


@hookimpl
def slamfw_register_inferers(register):
    register("lm", LMInferer)
