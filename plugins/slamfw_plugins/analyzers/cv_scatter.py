"""Analyzer ``cv-scatter``: label bias and scatter against known labels (paper eq. 9-10).

For each label: bias = mean(theta_inferred - theta_true) (eq. 9) and scatter = the standard
deviation of those differences (eq. 10, whose printed 1/m outside the root is a typo), over the
converged stars, overall and per S/N bin. ``<label>_scatter_robust`` (1.4826 x the median absolute
deviation) is added because literature labels of real libraries carry a few gross errors that
dominate a standard deviation.
"""
from __future__ import annotations

import numpy as np
from astropy.table import Table
from pydantic import Field

from slamfw import AnalysisContext, Analyzer, Params, Report, hookimpl


def bias_scatter(pred: np.ndarray, true: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-label bias (eq. 9) and scatter (eq. 10 as a standard deviation) of (N, L) arrays."""
    diff = pred - true
    return diff.mean(axis=0), diff.std(axis=0)


def robust_scatter(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Per-label 1.4826 x median absolute deviation of the differences (N, L) -> (L,)."""
    diff = pred - true
    return 1.4826 * np.median(np.abs(diff - np.median(diff, axis=0)), axis=0)


def snr_bins(snr: np.ndarray, edges: list[float] | None, max_distinct: int = 8) -> list[tuple[str, np.ndarray]]:
    """(label, mask) per S/N bin: given edges, or each distinct value when there are few."""
    finite = np.isfinite(snr)
    if not finite.any():
        return []
    if edges is None:
        values = np.unique(snr[finite])
        if values.size <= max_distinct:
            return [(f"{v:g}", snr == v) for v in values] if values.size > 1 else []
        edges = list(np.quantile(snr[finite], np.linspace(0, 1, 6)))
    out = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        last = hi == edges[-1]
        sel = finite & (snr >= lo) & ((snr <= hi) if last else (snr < hi))
        out.append((f"{lo:.3g}-{hi:.3g}", sel))
    return out


class CVScatterAnalyzer(Analyzer):
    """CV bias and scatter of every label, overall and per S/N bin."""

    class Params(Params):
        snr_edges: list[float] | None = Field(None, description="S/N bin edges (default: distinct values or quintiles)")
        converged_only: bool = True

    def analyze(self, ctx: AnalysisContext) -> Report:
        report = Report(title="CV scatter and bias (paper eq. 9-10)")
        test, res = ctx.test, ctx.result
        if test is None or res is None or test.labels is None or np.all(np.isnan(test.labels)):
            report.notes.append("The test set has no true labels: nothing to compare.")
            return report
        use = np.all(np.isfinite(test.labels), axis=1) & np.all(np.isfinite(res.labels), axis=1)
        if self.converged_only:
            use &= res.converged
        snr = test.meta_column("snr")
        groups = [("all", np.ones(test.n_stars, bool))] + snr_bins(snr, self.snr_edges)
        rows = []
        for name, sel in groups:
            s = sel & use
            if s.sum() < 2:
                continue
            bias, scatter = bias_scatter(res.labels[s], test.labels[s])
            robust = robust_scatter(res.labels[s], test.labels[s])
            row = {"snr_bin": name, "n": int(s.sum())}
            for j, lab in enumerate(ctx.label_names):
                row[f"{lab}_bias"] = bias[j]
                row[f"{lab}_scatter"] = scatter[j]
                row[f"{lab}_scatter_robust"] = robust[j]
            rows.append(row)
        if rows:
            table = Table(rows=rows, names=list(rows[0]))
            report.tables["bias and scatter (inferred - true)"] = table
            for j, lab in enumerate(ctx.label_names):
                report.numbers[f"{lab}_scatter"] = float(rows[0][f"{lab}_scatter"])
                report.numbers[f"{lab}_bias"] = float(rows[0][f"{lab}_bias"])
                report.numbers[f"{lab}_scatter_robust"] = float(rows[0][f"{lab}_scatter_robust"])
        report.notes.append(f"{int(use.sum())} of {test.n_stars} stars used "
                            f"({int((~res.converged).sum())} not converged"
                            f"{', excluded' if self.converged_only else ''}).")
        return report


@hookimpl
def slamfw_register_analyzers(register):
    register("cv-scatter", CVScatterAnalyzer)
