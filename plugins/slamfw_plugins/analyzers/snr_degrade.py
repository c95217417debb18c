"""Analyzer ``snr-degrade``: label precision against S/N from high-S/N test spectra (paper Fig. 4, 7).

For data sets whose test spectra all have a high S/N (a stellar library such as MILES), the
experiment of the paper's Fig. 4 and 7 is made by degrading them. For each target S/N ``s`` (param
``snr``), pixel j of star i gets Gaussian noise so that its variance becomes

    var_ij = max((f_ij / s)^2, 1 / ivar_ij)        (added noise: N(0, var_ij - 1/ivar_ij))

so a spectrum noisier than the target is left as it is; bad pixels (ivar 0) stay bad. The noise is
drawn from the experiment's seed, one independent stream per S/N. The degraded spectra are
labelled the way the run labelled its test set (``ctx.label``: the inferer and prior, then the
pipeline's flags and calibrated errors; without it, ``ctx.inferer`` with ``ctx.prior``), and
compared with the true labels, per S/N and label: the number of stars ``n`` (converged, with
finite labels), ``bias`` (eq. 9), ``scatter`` (eq. 10 as a standard deviation),
``scatter_robust`` (1.4826 MAD), ``err`` the mean reported uncertainty (the calibrated one,
``result.errors_calibrated``, when there is one, else the formal one), ``err_formal`` the mean
formal (covariance) error, and ``pull_rstd`` / ``pull_formal_rstd`` the robust width (1.4826 MAD)
of the pulls (inferred - true) / err and / err_formal (1 for honest errors). ``snr_measured`` is
the median S/N per pixel of the degraded spectra. Only stars with all true labels are degraded, at
most ``max_stars`` of them (each S/N costs one inference of them all). The figure shows the
scatters with the mean errors against S/N, one panel per label.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
from astropy.table import Table
from pydantic import AfterValidator, Field

from slamfw import (
    AnalysisContext,
    Analyzer,
    LabelResult,
    Params,
    Report,
    SpectralSet,
    bias_scatter,
    hookimpl,
    precision_figure,
    robust_scatter,
    save_figure,
    spectrum_snr,
)

SLAMFW_PLUGIN_API = (1, 1)


def _finite_positive(value: float) -> float:
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"every S/N must be finite and > 0 (got {value})")
    return value


#: A target S/N: finite and > 0 (an infinite one would add no noise, and break the figure's log axis).
SNR = Annotated[float, AfterValidator(_finite_positive)]


def degrade(flux: np.ndarray, ivar: np.ndarray, snr: float, rng: np.random.Generator
            ) -> tuple[np.ndarray, np.ndarray]:
    """flux, ivar (N, P) degraded to S/N ``snr`` per pixel: variance max((flux/snr)^2, 1/ivar)."""
    good = ivar > 0
    old = np.where(good, 1.0 / np.where(good, ivar, 1.0), 0.0)
    new = np.where(good, np.maximum((flux / snr) ** 2, old), 0.0)
    noisy = flux + rng.standard_normal(flux.shape) * np.sqrt(new - old)
    with np.errstate(divide="ignore"):
        return np.where(good, noisy, flux), np.where(good & (new > 0), 1.0 / np.where(new > 0, new, 1.0), 0.0)


def bin_row(snr: float, res: LabelResult, truth: np.ndarray, use: np.ndarray, measured: float,
            names: list[str]) -> dict[str, float]:
    """One table row: n and, per label, bias, scatter, robust scatter, mean errors, for the
    ``use`` (N,) stars of a result against truth (N, L)."""
    err = res.errors_calibrated if res.errors_calibrated is not None else res.errors
    row: dict[str, float] = {"snr": snr, "snr_measured": measured, "n": int(use.sum())}
    bias = scatter = robust = np.full(len(names), np.nan)
    if use.sum() >= 2:
        bias, scatter = bias_scatter(res.labels[use], truth[use])
        robust = robust_scatter(res.labels[use], truth[use])
    for j, lab in enumerate(names):
        row[f"{lab}_bias"], row[f"{lab}_scatter"], row[f"{lab}_scatter_robust"] = bias[j], scatter[j], robust[j]
        row[f"{lab}_err"] = _mean(err[use, j])
        row[f"{lab}_err_formal"] = _mean(res.errors[use, j])
        delta = res.labels[use, j] - truth[use, j]
        row[f"{lab}_pull_rstd"] = _robust_width(delta / err[use, j])
        row[f"{lab}_pull_formal_rstd"] = _robust_width(delta / res.errors[use, j])
    return row


def _robust_width(pulls: np.ndarray) -> float:
    """1.4826 x the median absolute deviation of the finite pulls (NaN with fewer than 2)."""
    p = pulls[np.isfinite(pulls)]
    return float(robust_scatter(p[:, None], np.zeros((p.size, 1)))[0]) if p.size >= 2 else float("nan")


def _mean(x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.size else float("nan")


class SNRDegradeAnalyzer(Analyzer):
    """Label scatter, bias and errors of the test spectra degraded to lower S/N (Fig. 4, 7)."""

    class Params(Params):
        snr: list[SNR] = Field([5.0, 10.0, 20.0, 40.0, 80.0, 120.0], min_length=1,
                               description="target S/N per pixel of the degraded spectra (finite, > 0)")
        converged_only: bool = Field(True, description="statistics over converged stars only")
        max_stars: int | None = Field(None, ge=1, description="degrade at most this many test stars (a random "
                                      "subset drawn from the seed; default: all with true labels)")

    def analyze(self, ctx: AnalysisContext) -> Report:
        report = Report(title="Precision against S/N, from degraded test spectra (paper Fig. 4, 7)")
        test = ctx.test
        if test is None or test.labels is None or not np.all(np.isfinite(test.labels), axis=1).any():
            report.notes.append("The test set has no true labels: nothing to compare.")
            return report
        if ctx.inferer is None or ctx.model is None:
            report.notes.append("No inferer or model in the context: the degraded spectra cannot be inferred.")
            return report
        test = self._stars(ctx)
        n_rv = int(ctx.test.meta_column("rv_unknown", 0.0).astype(bool).sum())
        if n_rv:
            report.notes.append(f"{n_rv} test star(s) without a known rv (flag_rv: fitted unshifted) are left out.")
        if test.n_stars == 0:
            report.notes.append("No test star has true labels and a known rv: nothing to compare.")
            return report
        rows, calibrated = self._rows(ctx, test)
        table = Table(rows=rows, names=list(rows[0]))
        report.tables["bias, scatter and mean errors by S/N (degraded, inferred - true)"] = table
        short = [f"{r['snr']:g}" for r in rows if r["snr_measured"] < 0.9 * r["snr"]]
        if short:
            report.notes.append(f"At S/N {', '.join(short)} the median spectrum was already noisier than the target "
                                "(see snr_measured): its noise was kept.")
        for row in rows:
            for lab in ctx.label_names:
                report.numbers[f"{lab}_scatter_snr{row['snr']:g}"] = float(row[f"{lab}_scatter"])
        report.notes.append(f"{test.n_stars} test stars degraded to S/N {', '.join(f'{s:g}' for s in self.snr)} "
                            f"(variance max((flux/S/N)^2, 1/ivar), seed {ctx.seed}); err: "
                            f"{'calibrated' if calibrated else 'formal'} uncertainties.")
        if ctx.output_dir is not None:
            report.figures.append(plot_snr_degrade(ctx.output_dir, table, ctx.label_names, calibrated, ctx.label_units))
        return report

    def _stars(self, ctx: AnalysisContext) -> SpectralSet:
        """The test stars with all true labels and a known rv (one fitted unshifted, ``flag_rv``,
        measures the missing shift, not the S/N), at most ``max_stars`` of them (chosen by the seed)."""
        rv_known = ~ctx.test.meta_column("rv_unknown", 0.0).astype(bool)
        keep = np.flatnonzero(np.all(np.isfinite(ctx.test.labels), axis=1) & rv_known)
        if self.max_stars is not None and keep.size > self.max_stars:
            keep = np.sort(np.random.default_rng(ctx.seed).choice(keep, self.max_stars, replace=False))
        return ctx.test.subset(keep)

    def _rows(self, ctx: AnalysisContext, test: SpectralSet) -> tuple[list[dict[str, float]], bool]:
        """One row per target S/N for the stars ``test``, and whether the errors were calibrated."""
        truth = test.labels
        flux, ivar = test.flux, test.weight_ivar
        streams = np.random.SeedSequence(ctx.seed).spawn(len(self.snr))
        rows, calibrated = [], False
        for s, stream in zip(self.snr, streams):
            f, iv = degrade(flux, ivar, float(s), np.random.default_rng(stream))
            res = (ctx.label(f, iv, test.ids) if ctx.label is not None
                   else ctx.inferer.infer(ctx.model, f, iv, prior=ctx.prior, ids=test.ids))
            calibrated = res.errors_calibrated is not None
            use = np.all(np.isfinite(truth), axis=1) & np.all(np.isfinite(res.labels), axis=1)
            if self.converged_only:
                use &= np.asarray(res.converged, bool)
            rows.append(bin_row(float(s), res, truth, use, float(np.nanmedian(spectrum_snr(f, iv))),
                                ctx.label_names))
        return rows, calibrated


def plot_snr_degrade(out: str | Path, table: Table, names: list[str], calibrated: bool, units: list[str]) -> str:
    """Scatter, robust scatter, mean errors (top) and bias (bottom) against the target S/N, one
    column per label; returns the PNG's relative path."""
    keys = {"scatter": "scatter", "scatter_robust": "scatter_robust", "err_formal": "err_formal", "bias": "bias"}
    if calibrated:
        keys["err_calibrated"] = "err"
    stats = {k: np.column_stack([np.asarray(table[f"{lab}_{col}"], float) for lab in names]) for k, col in keys.items()}
    fig = precision_figure(np.asarray(table["snr"], float), stats, names, units, xlabel="target S/N per pixel",
                           title="Inferred - true labels of the degraded test spectra (cf. Zhang, Liu & Deng 2020, "
                                 "Fig. 4, 7)")
    return save_figure(fig, out, "snr_degrade")


@hookimpl
def slamfw_register_analyzers(register):
    register("snr-degrade", SNRDegradeAnalyzer)
