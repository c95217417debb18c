"""What the pipeline adds to every inferer's result: S/N, quality flags and calibrated errors.

Flags (each an (N,) bool column of the catalogue):

- ``flag_extrapolated``: a label lies outside the training set's range of that label;
- ``flag_bound``: the solution lies on a side of the prior's box (the inferer reports it in
  ``extra["at_bound"]``);
- ``flag_chi2``: the reduced chi^2 is far from 1: above ``CHI2_HIGH`` or below ``CHI2_LOW``;
- ``flag_chi2_train``: the reduced chi^2 is above ``CHI2_TRAIN_FACTOR`` times the 99th percentile
  that the model's own training stars reach at their labels (``SlamfwModel.train_chi2``): the
  spectrum is not like the training set (not normalised like it, another instrument, a
  peculiar star);
- ``flag_coverage``: the star's good pixels span less than ``min_coverage`` of the model's grid
  (``grid_coverage``, from pre-processing; ``preprocess.min_coverage``);
- ``flag_rv``: the star's radial velocity is unknown (the reader's ``rv`` is not finite, e.g. a
  failed LAMOST redshift) while ``preprocess.rv_correct`` is on: the spectrum was fitted in its
  observed frame, unshifted, and its labels are only as good as that
  (:func:`slamfw.preprocess.rest_frame_rv`).

``flagged_fraction`` counts the stars that carry any of the signs of a survey unlike the
training set (``UNLIKE_TRAINING``: every flag but ``flag_bound`` and ``flag_rv``);
:func:`warn_if_unlike_training` warns once when they are most of the stars.

``converged`` stays the inferer's: the kept solution met its tolerance (for ``lm``, the best of
its starts).

Calibrated errors (with the model's error model): ``errors_calibrated``; a label outside the
training range also carries its distance from the range's edge, in quadrature (the emulator is
extrapolated there, and cross-validation measured nothing there). When the inferer gives a
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
#: Reduced chi^2 above this many times the training stars' 99th percentile is flagged.
CHI2_TRAIN_FACTOR = 3.0
#: Stars with less of the grid covered than this are flagged (``preprocess.min_coverage`` overrides).
MIN_COVERAGE = 0.9
FLAGS = ("flag_extrapolated", "flag_bound", "flag_chi2", "flag_chi2_train", "flag_coverage", "flag_rv")
#: The flags that say a spectrum is unlike the training set.
UNLIKE_TRAINING = ("flag_extrapolated", "flag_chi2", "flag_chi2_train", "flag_coverage")


def add_quality(result: LabelResult, flux: np.ndarray, ivar: np.ndarray, train_labels: np.ndarray,
                error_model: ErrorModel | None, coverage: np.ndarray | None = None,
                train_chi2_p99: float | None = None, min_coverage: float = MIN_COVERAGE,
                rv_unknown: np.ndarray | None = None) -> LabelResult:
    """Add ``snr_spec`` (the spectrum's S/N, :func:`spectrum_snr`), ``grid_coverage``, the flags
    and, with an error model, ``errors_calibrated`` to ``result`` (of N stars with flux, ivar
    (N, P); ``coverage`` (N,) the fraction of the grid each covers, None: all of it;
    ``rv_unknown`` (N,) bool, the stars fitted unshifted for want of an rv, None: none); returns it."""
    lo, hi = train_labels.min(axis=0), train_labels.max(axis=0)
    labels = result.labels
    finite = np.all(np.isfinite(labels), axis=1)
    snr = spectrum_snr(flux, ivar)
    result.extra["snr_spec"] = snr
    result.extra["flag_extrapolated"] = finite & np.any((labels < lo) | (labels > hi), axis=1)
    result.extra["flag_bound"] = np.asarray(result.extra.get("at_bound", np.zeros(result.n, bool)), bool)
    chi2 = np.asarray(result.chi2, float)
    result.extra["flag_chi2"] = ~np.isfinite(chi2) | (chi2 > CHI2_HIGH) | (chi2 < CHI2_LOW)
    limit = np.inf if not train_chi2_p99 or not np.isfinite(train_chi2_p99) else CHI2_TRAIN_FACTOR * train_chi2_p99
    result.extra["flag_chi2_train"] = ~np.isfinite(chi2) | (chi2 > limit)
    cov = np.ones(result.n) if coverage is None else np.asarray(coverage, float)
    result.extra["grid_coverage"] = cov
    result.extra["flag_coverage"] = ~(cov >= min_coverage)
    result.extra["flag_rv"] = np.zeros(result.n, bool) if rv_unknown is None else np.asarray(rv_unknown, bool)
    if error_model is not None:
        # beyond the training range the emulator is extrapolated, where cross-validation measured
        # nothing: the label is uncertain by at least its distance from the range's edge
        beyond = np.where(finite[:, None], np.maximum(np.maximum(lo - labels, labels - hi), 0.0), 0.0)
        result.errors_calibrated = np.sqrt(error_model.calibrate(result.errors, snr, labels) ** 2 + beyond ** 2)
        if "p16" in result.extra and "p84" in result.extra:
            with np.errstate(divide="ignore", invalid="ignore"):
                f = np.where(result.errors > 0, result.errors_calibrated / result.errors, 1.0)
            result.extra["p16_cal"] = labels - f * (labels - np.asarray(result.extra["p16"], float))
            result.extra["p84_cal"] = labels + f * (np.asarray(result.extra["p84"], float) - labels)
            result.extra_units.update(p16_cal="label", p84_cal="label")
    return result


def flagged_fraction(extra: dict[str, np.ndarray]) -> tuple[int, int]:
    """(stars carrying any flag of :data:`UNLIKE_TRAINING`, stars) in a result's ``extra``."""
    flags = [np.asarray(extra[f], bool) for f in UNLIKE_TRAINING if f in extra]
    if not flags:
        return 0, 0
    return int(np.any(flags, axis=0).sum()), int(flags[0].size)


def warn_if_unlike_training(n_flagged: int, n: int, log, what: str = "the spectra") -> bool:
    """Warn once, in words, when most of ``n`` stars carry a flag of :data:`UNLIKE_TRAINING`."""
    if n and n_flagged > n / 2:
        log.warning("%d of %d stars (%.0f %%) of %s are flagged as unlike the training set (labels outside its "
                    "range, a reduced chi^2 far from 1 or far above its stars', or too little of the wavelength "
                    "grid covered): these "
                    "spectra do not look like the training set. Are they normalised the same way, from the same "
                    "instrument, and on the model's wavelength range?", n_flagged, n, 100 * n_flagged / n, what)
        return True
    return False
