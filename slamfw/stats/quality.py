"""What the pipeline adds to every inferer's result: S/N, quality flags and calibrated errors.

Flags (each an (N,) bool column of the catalogue):

- ``flag_extrapolated``: a label lies outside the training set's range of that label;
- ``flag_bound``: the solution lies on a side of the prior's box (the inferer reports it in
  ``extra["at_bound"]``);
- ``flag_chi2``: the reduced chi^2 is far from 1: above ``chi2_high`` or below ``chi2_low``.

``converged`` stays the inferer's: the kept solution met its tolerance (for ``lm``, the best of
its starts).

Calibrated errors (with the model's error model): ``errors_calibrated``. When the inferer gives a
posterior interval (``extra["p16"]``, ``extra["p84"]``, (N, L), the convention of sampling
inferers), it is widened about the labels by the same factor, ``errors_calibrated / errors``,
into ``extra["p16_cal"]`` and ``extra["p84_cal"]``: the interval to use.
"""
from __future__ import annotations

import numpy as np

from ..data.results import LabelResult
from .error_model import ErrorModel
from .likelihood import spectrum_snr

#: Reduced chi^2 outside [CHI2_LOW, CHI2_HIGH] is flagged.
CHI2_HIGH = 3.0
CHI2_LOW = 1.0 / 3.0
FLAGS = ("flag_extrapolated", "flag_bound", "flag_chi2")


def add_quality(result: LabelResult, flux: np.ndarray, ivar: np.ndarray, train_labels: np.ndarray,
                error_model: ErrorModel | None) -> LabelResult:
    """Add ``snr_spec`` (the spectrum's S/N, :func:`spectrum_snr`), the flags and, with an error
    model, ``errors_calibrated`` to ``result`` (of N stars with flux, ivar (N, P)); returns it."""
    lo, hi = train_labels.min(axis=0), train_labels.max(axis=0)
    labels = result.labels
    finite = np.all(np.isfinite(labels), axis=1)
    snr = spectrum_snr(flux, ivar)
    result.extra["snr_spec"] = snr
    result.extra["flag_extrapolated"] = finite & np.any((labels < lo) | (labels > hi), axis=1)
    result.extra["flag_bound"] = np.asarray(result.extra.get("at_bound", np.zeros(result.n, bool)), bool)
    chi2 = np.asarray(result.chi2, float)
    result.extra["flag_chi2"] = ~np.isfinite(chi2) | (chi2 > CHI2_HIGH) | (chi2 < CHI2_LOW)
    if error_model is not None:
        result.errors_calibrated = error_model.calibrate(result.errors, snr, labels)
        if "p16" in result.extra and "p84" in result.extra:
            with np.errstate(divide="ignore", invalid="ignore"):
                f = np.where(result.errors > 0, result.errors_calibrated / result.errors, 1.0)
            result.extra["p16_cal"] = labels - f * (labels - np.asarray(result.extra["p16"], float))
            result.extra["p84_cal"] = labels + f * (np.asarray(result.extra["p84"], float) - labels)
            result.extra_units.update(p16_cal="label", p84_cal="label")
    return result
