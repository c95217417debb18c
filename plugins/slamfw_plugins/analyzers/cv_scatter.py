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
from pydantic import Field, field_validator

from slamfw import AnalysisContext, Analyzer, Params, Report, accuracy_by_snr, hookimpl

SLAMFW_PLUGIN_API = (1, 0)


class CVScatterAnalyzer(Analyzer):
    """CV bias and scatter of every label, overall and per S/N bin."""

    class Params(Params):
        snr_edges: list[float] | None = Field(None, description="S/N bin edges, increasing; the last may be inf "
                                                                "(default: distinct values or quintiles)")
        converged_only: bool = True

        infinite_ok = ("snr_edges",)            # an open top bin: [0, 20, 50, inf]

        @field_validator("snr_edges")
        @classmethod
        def _increasing(cls, v: list[float] | None) -> list[float] | None:
            if v is None:
                return v
            if len(v) < 2:
                raise ValueError(f"give at least two edges (one bin), got {v}")
            for i in range(1, len(v)):
                if not v[i] > v[i - 1]:
                    raise ValueError(f"the edges must be strictly increasing: edge {i} ({v[i]:g}) is not above "
                                     f"edge {i - 1} ({v[i - 1]:g})")
            return v

    def analyze(self, ctx: AnalysisContext) -> Report:
        report = Report(title="CV scatter and bias (paper eq. 9-10)")
        test, res = ctx.test, ctx.result
        if test is None or res is None or test.labels is None or np.all(np.isnan(test.labels)):
            report.notes.append("The test set has no true labels: nothing to compare.")
            return report
        use = np.all(np.isfinite(test.labels), axis=1) & np.all(np.isfinite(res.labels), axis=1)
        if self.converged_only:
            use &= res.converged
        rows = []
        for acc in accuracy_by_snr(res.labels, test.labels, use, test.meta_column("snr"), self.snr_edges):
            row = {"snr_bin": acc.name, "n": acc.n}
            for j, lab in enumerate(ctx.label_names):
                row[f"{lab}_bias"] = acc.bias[j]
                row[f"{lab}_scatter"] = acc.scatter[j]
                row[f"{lab}_scatter_robust"] = acc.robust[j]
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
