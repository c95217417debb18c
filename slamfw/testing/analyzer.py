"""The analyzer conformance kit: ``check_analyzer``.

It builds :class:`~slamfw.AnalysisContext` objects around the analytic
:class:`~slamfw.testing.reference.ReferenceEmulator` (a :class:`slamfw.model.SlamfwModel` made in
memory, 60 training stars, a test set of 30 stars at S/N 20, 50 and 100 with a made-up
:class:`~slamfw.LabelResult` close to the truth, two stars not converged) and checks the contract
of :class:`slamfw.Analyzer`: ``analyze`` returns a :class:`~slamfw.Report` with true labels and
results for 30 stars, with a test set without labels (``test.labels is None``), with a model
loaded from a file (``train is None``) and with one star; ``to_markdown()`` works, tables are
astropy Tables, numbers are real numbers, finite or NaN; the same context gives the same
markdown; the context's arrays are not modified.

Usage: ``check_analyzer(MyAnalyzer)`` or ``check_analyzer(MyAnalyzer, {"bins": 5})``.
"""
from __future__ import annotations

import numbers
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ..components.analyzer import AnalysisContext, Analyzer, Report
from ..data.results import LabelResult
from ..data.spectra import SpectralSet
from ._common import Case, CheckResult, checker, params_check, resolve, run_checks
from .reference import LABEL_NAMES, LABEL_UNITS, make_reference_model, noisy_spectra, reference_labels

__all__ = ["check_analyzer", "ANALYZER_CHECKS", "AnalyzerCase", "make_context"]


def _spectral_set(emu: Any, labels: np.ndarray, snr: np.ndarray, prefix: str, seed: int,
                  with_labels: bool = True) -> SpectralSet:
    flux, ivar = noisy_spectra(emu, labels, snr, seed=seed, bad_fraction=0.02)
    return SpectralSet(wave=emu.wave(), flux=flux, ivar=ivar, ids=[f"{prefix}{i:03d}" for i in range(len(labels))],
                       labels=labels if with_labels else None, label_names=list(LABEL_NAMES) if with_labels else [],
                       label_units=list(LABEL_UNITS) if with_labels else [], meta={"snr": np.asarray(snr, float)},
                       source=f"slamfw.testing ({prefix})")


def _made_up_result(truth: np.ndarray, snr: np.ndarray, seed: int) -> LabelResult:
    """A LabelResult near ``truth`` (N, 3): errors of 20/S/N percent of the label scale; stars 4
    and 17 (when present) not converged and far off."""
    rng = np.random.default_rng(seed)
    n = truth.shape[0]
    scale = np.array([1000.0, 1.3, 0.8])
    err = scale[None, :] * (0.2 / snr)[:, None]
    labels = truth + rng.normal(size=truth.shape) * err
    converged = np.ones(n, bool)
    off = [i for i in (4, 17) if i < n]
    converged[off] = False
    labels[off] += 3 * scale
    return LabelResult(labels=labels, cov=np.einsum("nl,lm->nlm", err ** 2, np.eye(3)), converged=converged,
                       rmse=1.0 / snr, chi2=rng.uniform(0.8, 1.2, n), init=truth + 0.2 * scale * rng.normal(size=truth.shape),
                       label_names=list(LABEL_NAMES), nfev=rng.integers(5, 30, n))


def make_context(which: str = "full", output_dir: str | Path | None = None) -> AnalysisContext:
    """An :class:`~slamfw.AnalysisContext` made from the reference emulator.

    which : ``"full"`` (model, 60-star training set, 30-star test set with true labels and a
        result), ``"no-truth"`` (test set without labels), ``"loaded-model"`` (``train`` None, as
        when the model was loaded from a file) or ``"one-star"`` (the first test star only).
    """
    from ..model import SlamfwModel
    trained = make_reference_model(n_train=60, seed=11)
    emu = trained.emulator
    train = _spectral_set(emu, trained.train_labels, np.full(60, 100.0), "train", seed=12)
    model = SlamfwModel(emulator=emu, emulator_name="slamfw-testing-reference", wave=emu.wave(),
                        label_names=list(LABEL_NAMES), label_units=list(LABEL_UNITS), train_labels=train.labels,
                        train_ids=train.ids, train_hash=train.fingerprint())
    truth = reference_labels(30, seed=13, margin=0.05)
    snr = np.resize([20.0, 50.0, 100.0], 30)
    test = _spectral_set(emu, truth, snr, "test", seed=14, with_labels=which != "no-truth")
    result = _made_up_result(truth, snr, seed=15)
    if which == "one-star":
        test = test.subset([0])
        result = LabelResult(label_names=result.label_names, **{k: getattr(result, k)[:1] for k in LabelResult.ARRAYS
                                                                 if getattr(result, k) is not None})
    elif which not in ("full", "no-truth", "loaded-model"):
        raise ValueError(f"make_context: unknown context {which!r}")
    return AnalysisContext(label_names=list(LABEL_NAMES), label_units=list(LABEL_UNITS), model=model, test=test,
                           result=result, train=None if which == "loaded-model" else train, output_dir=output_dir)


def _table_problem(name: str, table: Any) -> str:
    from astropy.table import Table
    if not isinstance(table, Table):
        return f"table {name!r} is a {type(table).__name__}, not an astropy Table"
    for col in table.colnames:
        values = np.asarray(table[col])
        if values.dtype.kind in "fc" and np.isinf(values).any():
            return f"table {name!r}, column {col!r} has inf values"
    return ""


def report_problem(report: Any) -> str:
    """'' if ``report`` is a well-formed :class:`~slamfw.Report`, else what is wrong with it."""
    if not isinstance(report, Report):
        return f"analyze returned {type(report).__name__}, not a Report"
    text = report.to_markdown()
    if not isinstance(text, str) or not text.strip():
        return "to_markdown() returned no text"
    for name, table in report.tables.items():
        problem = _table_problem(name, table)
        if problem:
            return problem
    for key, value in report.numbers.items():
        if not isinstance(key, str) or not isinstance(value, numbers.Real) or isinstance(value, bool):
            return f"numbers[{key!r}] = {value!r}: numbers are str -> float"
        if np.isinf(float(value)):
            return f"numbers[{key!r}] is infinite (use NaN for undefined)"
    if not all(isinstance(n, str) for n in report.notes):
        return "notes must be strings"
    if not all(isinstance(f, (str, Path)) for f in report.figures):
        return "figures must be paths (str)"
    return ""


class AnalyzerCase(Case):
    """An analyzer class and parameters; contexts come from :func:`make_context`."""

    base = Analyzer

    def analyze(self, which: str, analyzer: Analyzer | None = None, output_dir: str | None = None) -> str:
        """Markdown of ``analyze`` on a new context ``which``; AssertionError if the report is bad."""
        with tempfile.TemporaryDirectory() as tmp:
            ctx = make_context(which, Path(output_dir or tmp))
            report = (analyzer or self.fresh()).analyze(ctx)
            problem = report_problem(report)
            if problem:
                raise AssertionError(problem)
            return report.to_markdown()


check = checker(AnalyzerCase)
check_params = params_check(AnalyzerCase)


@check("works with true labels and results for 30 stars")
def check_with_truth(case: AnalyzerCase) -> str:
    """A full context (model, training set, 30 test stars with true labels, a result) gives a
    well-formed Report."""
    case.analyze("full")
    return ""


@check("works on a test set without true labels")
def check_no_truth(case: AnalyzerCase) -> str:
    """``test.labels is None`` (a survey without reference labels) gives a well-formed Report."""
    case.analyze("no-truth")
    return ""


@check("works with a loaded model (no training set)")
def check_loaded_model(case: AnalyzerCase) -> str:
    """``train is None`` (the model was loaded from a file) gives a well-formed Report."""
    case.analyze("loaded-model")
    return ""


@check("works with one star")
def check_one_star(case: AnalyzerCase) -> str:
    """A test set and result of a single star give a well-formed Report."""
    case.analyze("one-star")
    return ""


@check("deterministic: the same context gives the same markdown")
def check_deterministic(case: AnalyzerCase) -> str:
    """Two calls on one instance and a call on a fresh instance, with equal contexts and the same
    output directory, give identical markdown."""
    analyzer = case.fresh()
    with tempfile.TemporaryDirectory() as tmp:
        first = case.analyze("full", analyzer, tmp)
        for what, other in (("a second call", case.analyze("full", analyzer, tmp)),
                            ("a fresh instance", case.analyze("full", None, tmp))):
            if other != first:
                return f"{what} gives other markdown"
    return ""


@check("the context is not modified")
def check_inputs_unchanged(case: AnalyzerCase) -> str:
    """``analyze`` leaves the test and training sets, the result and the model's training
    labels as they were."""
    with tempfile.TemporaryDirectory() as tmp:
        ctx = make_context("full", Path(tmp))
        before = (ctx.test.fingerprint(), ctx.train.fingerprint(), ctx.model.train_labels.copy(),
                  {k: v.copy() for k, v in ctx.result.to_arrays().items()})
        case.fresh().analyze(ctx)
        if ctx.test.fingerprint() != before[0] or ctx.train.fingerprint() != before[1]:
            return "analyze modified the test or training spectra"
        if not np.array_equal(ctx.model.train_labels, before[2]):
            return "analyze modified model.train_labels"
        after = ctx.result.to_arrays()
        if after.keys() != before[3].keys() or not all(np.array_equal(after[k], v) for k, v in before[3].items()):
            return "analyze modified the LabelResult"
    return ""


#: The analyzer checks, in the order :func:`check_analyzer` runs them.
ANALYZER_CHECKS = [check_params, check_with_truth, check_no_truth, check_loaded_model, check_one_star,
                   check_deterministic, check_inputs_unchanged]


def check_analyzer(analyzer: type[Analyzer] | Analyzer, params: dict[str, Any] | None = None, *,
                   raise_on_fail: bool = True) -> list[CheckResult]:
    """Run the analyzer contract checks (:data:`ANALYZER_CHECKS`); one :class:`CheckResult` each.

    Parameters
    ----------
    analyzer : an :class:`~slamfw.Analyzer` subclass (built with ``params``) or an instance (its
        ``get_params()`` are used for every fresh copy the checks need).
    raise_on_fail : raise :class:`~slamfw.testing.ComponentCheckError` naming the failed checks.
    """
    cls, params = resolve(analyzer, params, Analyzer)
    return run_checks(ANALYZER_CHECKS, AnalyzerCase(cls, params), raise_on_fail)
