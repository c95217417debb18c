"""Analyzer ``error-model``: the model's label error against S/N (paper §4.3, Table 1, Fig. 4/7).

It reports the error model the model file holds (fitted at training time by cross-validation on
the training stars, ``[calibration]``): ``sigma(SNR) = a exp(-b SNR) + c`` per label, written to
``error_model.json`` with the cross-validation scatter per S/N bin, and a figure of that scatter
against S/N with the fits. When the test set has true labels it also checks the catalogue's
uncertainties: the pulls ``(label - true) / err`` per S/N bin, with the formal errors and with the
calibrated ones (robust width 1.4826 MAD, standard deviation, the fraction beyond 5).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from astropy.table import Table
from pydantic import Field

from slamfw import AnalysisContext, Analyzer, Params, Report, hookimpl, snr_bins

SLAMFW_PLUGIN_API = (1, 1)


def pull_stats(delta: np.ndarray, err: np.ndarray) -> tuple[float, float, float]:
    """(robust width, standard deviation, fraction with |pull| > 5) of the pulls delta / err (K,)."""
    from scipy.stats import median_abs_deviation   # here: scipy.stats takes 0.6 s to import, which every
    #                                                  process that loads the plugins would pay
    p = delta / err
    p = p[np.isfinite(p)]
    if p.size == 0:
        return np.nan, np.nan, np.nan
    return float(median_abs_deviation(p, scale="normal")), float(p.std()), float(np.mean(np.abs(p) > 5))


def pulls_table(ctx: AnalysisContext, edges: list[float] | None) -> Table | None:
    """Rows per S/N bin (and all): the pulls' robust width, std and fraction > 5 per label, with
    the formal and with the calibrated errors."""
    test, res = ctx.test, ctx.result
    if test is None or res is None or test.labels is None:
        return None
    delta = res.labels - test.labels
    formal = res.errors
    cal = res.errors_calibrated
    rows = []
    bins = [("all", np.ones(res.n, bool))] + snr_bins(test.meta_column("snr"), edges)
    for name, mask in bins:
        row = {"snr_bin": name, "n": int(mask.sum())}
        for j, lab in enumerate(ctx.label_names):
            for tag, err in (("formal", formal), ("err", cal)):
                if err is None:
                    continue
                rw, sd, out = pull_stats(delta[mask, j], err[mask, j])
                row.update({f"{lab}_{tag}_rstd": rw, f"{lab}_{tag}_std": sd, f"{lab}_{tag}_gt5": out})
        rows.append(row)
    return Table(rows=rows, names=list(rows[0]))


def _plot(em, path: Path, units: list[str]) -> list[str]:
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    n = len(em.label_names)
    fig = Figure(figsize=(4.2 * n, 3.6), constrained_layout=True)
    axes = fig.subplots(1, n, squeeze=False)[0]
    grid = np.geomspace(max(em.snr.min() * 0.8, 1.0), em.snr.max() * 1.2, 200)
    for j, (ax, name) in enumerate(zip(axes, em.label_names)):
        unit = f" [{units[j]}]" if j < len(units) and units[j] else ""
        a, b, c = em.abc[j]
        ax.plot(em.snr, em.scatter[:, j], "o", label="CV scatter (robust)")
        ax.plot(em.snr, np.sqrt(em.formal2[:, j]), "s", mfc="none", label="median formal error")
        ax.plot(grid, a * np.exp(-b * grid) + c, "-", label="a exp(-b SNR) + c")
        ax.set_xscale("log")
        ax.set_xlabel("S/N per pixel (measured)")
        ax.set_ylabel(f"{name} error{unit}")
        ax.set_title(f"{name}: a={a:.3g}, b={b:.3g}, c={c:.3g}", fontsize=9)
    axes[0].legend(fontsize=8)
    out = []
    for ext in ("png", "pdf"):
        fig.savefig(path.with_suffix(f".{ext}"), dpi=110)
        out.append(path.with_suffix(f".{ext}").name)
    return out


class ErrorModelAnalyzer(Analyzer):
    """The model's error model (sigma(SNR) fits per label) and the pulls of the catalogue's errors."""

    class Params(Params):
        snr_edges: list[float] | None = Field(None, description="S/N bin edges of the pulls table "
                                                                "(default: distinct values or quintiles)")
        infinite_ok = ("snr_edges",)            # an open top bin: [0, 20, 50, inf]
        figure: bool = True

    def analyze(self, ctx: AnalysisContext) -> Report:
        report = Report(title="Error model: label uncertainty against S/N (paper §4.3)")
        em = getattr(ctx.model, "error_model", None)
        if em is None:
            report.notes.append("The model has no error model (calibration disabled, or no inferer at training): "
                                "<label>_err is the formal error.")
        else:
            self._describe(em, ctx, report)
        pulls = pulls_table(ctx, self.snr_edges)
        if pulls is not None:
            report.tables["pulls (label - true) / error per S/N bin: formal and calibrated"] = pulls
            report.notes.append("rstd: 1.4826 MAD of the pulls; std: their standard deviation; gt5: the fraction "
                                "with |pull| > 5. Calibrated errors (`_err_*`) should give rstd near 1.")
        return report

    def _describe(self, em, ctx: AnalysisContext, report: Report) -> None:
        report.tables["sigma(SNR) = a exp(-b SNR) + c"] = Table(
            rows=[(name, *em.abc[j]) for j, name in enumerate(em.label_names)], names=["label", "a", "b", "c"])
        rows = [{"snr": float(em.snr[i]), "n": int(em.n[i]),
                 **{f"{name}_scatter": float(em.scatter[i, j]) for j, name in enumerate(em.label_names)},
                 **{f"{name}_formal": float(np.sqrt(em.formal2[i, j])) for j, name in enumerate(em.label_names)},
                 **{f"{name}_k": float(em.factor[i, j]) for j, name in enumerate(em.label_names)}}
                for i in range(em.snr.size)]
        report.tables["cross-validation on the training set, per S/N"] = Table(rows=rows, names=list(rows[0]))
        how = (f"each star's excess from its {em.neighbours} nearest cross-validation results in labels and S/N"
               if em.neighbours else "the excess per S/N")
        report.notes.append(f"Fitted by {em.folds}-fold cross-validation on the training stars (noise added to "
                            f"held-out stars), inferred with {em.inferer or 'the run'}'s inferer; {how}; k is the "
                            "pull-width factor of the calibration.")
        if ctx.output_dir is not None:
            out = Path(ctx.output_dir)
            summary = {k: v for k, v in em.to_dict().items() if k != "cv"}   # the CV results stay in the model
            (out / "error_model.json").write_text(json.dumps(summary, indent=1))
            if self.figure:
                report.figures += _plot(em, out / "error_model", list(ctx.label_units))


@hookimpl
def slamfw_register_analyzers(register):
    register("error-model", ErrorModelAnalyzer)
