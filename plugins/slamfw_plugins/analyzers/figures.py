"""Analyzer ``figures``: the paper's figures of inferred labels (Fig. 3, 4, 5, 7, 8).

- ``one_to_one``: inferred against true labels, one panel per label, coloured by the test set's
  S/N (``snr`` metadata) when known, with the bias (eq. 9), scatter (eq. 10 as a standard
  deviation) and robust scatter (1.4826 MAD) of the converged stars written in each panel
  (Fig. 3, 8); stars that did not converge are grey crosses, left out of the numbers;
- ``scatter_snr``: scatter, robust scatter and bias per S/N bin of the test set
  (``slamfw.accuracy_by_snr``: distinct S/N values or quintiles, or ``snr_edges``) with the mean
  formal error (and the calibrated one when the inferer gives it) and a 1/(S/N) trend through the
  highest-S/N bin (Fig. 4, 7);
- ``teff_logg``: the Teff-log g diagram of the inferred labels (beside that of the true ones
  when known), both axes inverted, coloured by [Fe/H] (or [M/H]) when it is a label, else by S/N
  (Fig. 3, 5); only when labels named Teff and log g exist (case and punctuation ignored);
- ``corner_<k>``: when the inferer gives posterior samples (``result.samples``, the emcee
  inferer), a corner plot of the first ``corner_stars`` stars, with their true labels in blue and
  the inferred ones in red.

Each is written as PNG and PDF into the output folder (none without one); the report embeds the
PNGs and gives the numbers written in the one-to-one panels.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from pydantic import Field

from slamfw import (
    AnalysisContext,
    Analyzer,
    Params,
    Report,
    accuracy_by_snr,
    axis_label,
    bias_scatter,
    corner_figure,
    hookimpl,
    new_figure,
    panel_grid,
    precision_figure,
    robust_scatter,
    save_figure,
    snr_bins,
)

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.collections import PathCollection
    from matplotlib.colors import Normalize

SLAMFW_PLUGIN_API = (1, 1)


def find_label(names: list[str], *keys: str) -> int | None:
    """Index of the first label whose name, lower case without punctuation, is one of ``keys``."""
    norm = [re.sub(r"[^a-z0-9]", "", n.lower()) for n in names]
    for key in keys:
        if key in norm:
            return norm.index(key)
    return None


def _fmt(value: float, unit: str) -> str:
    return f"{value:.3g}" + (f" {unit}" if unit else "")


def _usable(ctx: AnalysisContext) -> np.ndarray:
    """(N,) converged stars with finite inferred labels."""
    res = ctx.result
    return np.asarray(res.converged, bool) & np.all(np.isfinite(res.labels), axis=1)


def _has_truth(ctx: AnalysisContext) -> bool:
    return ctx.test is not None and ctx.test.labels is not None and bool(np.isfinite(ctx.test.labels).any())


def _snr(ctx: AnalysisContext, n: int) -> np.ndarray:
    return ctx.test.meta_column("snr") if ctx.test is not None else np.full(n, np.nan)


class FiguresAnalyzer(Analyzer):
    """The paper's label figures: one-to-one, scatter against S/N, Teff-log g, corner plots."""

    class Params(Params):
        corner_stars: int = Field(3, ge=0, description="stars with a corner plot (when the result has samples)")
        snr_edges: list[float] | None = Field(None, description="S/N bin edges (default: distinct values or quintiles)")
        infinite_ok = ("snr_edges",)            # an open top bin: [0, 20, 50, inf]

    def analyze(self, ctx: AnalysisContext) -> Report:
        report = Report(title="Figures of the inferred labels (paper Fig. 3, 4, 5, 7, 8)")
        res = ctx.result
        if res is None or res.n == 0:
            report.notes.append("No inferred labels: no figures.")
            return report
        if ctx.output_dir is None:
            report.notes.append("No output folder: no figures.")
            return report
        out = Path(ctx.output_dir)
        for make in (self._one_to_one, self._scatter_snr, self._teff_logg, self._corners):
            make(ctx, out, report)
        return report

    # ---------------------------------------------------------------- Fig. 3, 8
    def _one_to_one(self, ctx: AnalysisContext, out: Path, report: Report) -> None:
        if not _has_truth(ctx):
            report.notes.append("No true labels: no one-to-one or scatter-against-S/N figure.")
            return
        res, truth = ctx.result, ctx.test.labels
        use = _usable(ctx) & np.all(np.isfinite(truth), axis=1)
        snr = _snr(ctx, res.n)
        fig, axes = panel_grid(len(ctx.label_names), panel_size=(4.0, 3.8))
        sc = None
        for j, (ax, lab, unit) in enumerate(zip(axes, ctx.label_names, ctx.label_units)):
            sc = _one_to_one_panel(ax, truth[:, j], res.labels[:, j], use, snr, lab, unit) or sc
            ax.set_aspect("equal", adjustable="box")
            if use.sum() >= 2:
                _annotate(ax, report, res.labels[use, j], truth[use, j], lab, unit)
        if sc is not None:
            fig.colorbar(sc, ax=axes, label="S/N", shrink=0.9)
        fig.suptitle("Inferred against true labels (converged stars; grey x: not converged)")
        report.figures.append(save_figure(fig, out, "one_to_one"))

    # ---------------------------------------------------------------- Fig. 4, 7
    def _scatter_snr(self, ctx: AnalysisContext, out: Path, report: Report) -> None:
        if not _has_truth(ctx):
            return
        res, truth = ctx.result, ctx.test.labels
        use = _usable(ctx) & np.all(np.isfinite(truth), axis=1)
        snr = _snr(ctx, res.n)
        accs = [a for a in accuracy_by_snr(res.labels, truth, use, snr, self.snr_edges) if a.name != "all"]
        if not accs:
            report.notes.append("The test set has no S/N bins: no scatter-against-S/N figure.")
            return
        groups = dict(snr_bins(snr, self.snr_edges))
        x = np.array([np.median(snr[groups[a.name] & use]) for a in accs])
        stats = {"scatter": np.array([a.scatter for a in accs]), "scatter_robust": np.array([a.robust for a in accs]),
                 "bias": np.array([a.bias for a in accs]),
                 "err_formal": np.array([np.nanmean(res.errors[groups[a.name] & use], axis=0) for a in accs])}
        if res.errors_calibrated is not None:
            stats["err_calibrated"] = np.array([np.nanmean(res.errors_calibrated[groups[a.name] & use], axis=0)
                                                for a in accs])
        fig = precision_figure(x, stats, ctx.label_names, ctx.label_units, xlabel="S/N (test set, median of the bin)",
                               title="Inferred - true labels per S/N bin (converged stars; cf. Zhang, Liu & Deng "
                                     "2020, Fig. 4, 7)")
        report.figures.append(save_figure(fig, out, "scatter_snr"))

    # ---------------------------------------------------------------- Fig. 3, 5
    def _teff_logg(self, ctx: AnalysisContext, out: Path, report: Report) -> None:
        it, ig = find_label(ctx.label_names, "teff"), find_label(ctx.label_names, "logg")
        if it is None or ig is None:
            return
        ic = find_label(ctx.label_names, "feh", "mh")
        res = ctx.result
        panels = [("inferred", res.labels, _usable(ctx))]
        if _has_truth(ctx):
            panels.insert(0, ("true", ctx.test.labels, np.all(np.isfinite(ctx.test.labels[:, [it, ig]]), axis=1)))
        cname = "S/N" if ic is None else axis_label(ctx.label_names[ic], ctx.label_units[ic])
        colours = [_snr(ctx, res.n) if ic is None else labels[:, ic] for _, labels, _ in panels]
        norm = _colour_norm(np.concatenate([c[sel] for c, (_, _, sel) in zip(colours, panels)]), log=ic is None)
        fig, axes = new_figure(1, len(panels), panel_size=(5.0, 4.2), sharex=True, sharey=True)
        sc = None
        for ax, (what, labels, sel), colour in zip(axes[0], panels, colours):
            sc = _hr_panel(ax, labels[sel, it], labels[sel, ig], colour[sel], norm) or sc
            ax.set_title(f"{what} labels ({int(sel.sum())} stars)")
            ax.set_xlabel(axis_label(ctx.label_names[it], ctx.label_units[it]))
        axes[0, 0].set_ylabel(axis_label(ctx.label_names[ig], ctx.label_units[ig]))
        axes[0, 0].invert_xaxis()
        axes[0, 0].invert_yaxis()
        if sc is not None:
            fig.colorbar(sc, ax=axes, label=cname, shrink=0.9)
        fig.suptitle(f"{ctx.label_names[it]}-{ctx.label_names[ig]} diagram")
        report.figures.append(save_figure(fig, out, "teff_logg"))

    # ---------------------------------------------------------------- posteriors
    def _corners(self, ctx: AnalysisContext, out: Path, report: Report) -> None:
        res = ctx.result
        if res.samples is None or self.corner_stars == 0:
            return
        truth = ctx.test.labels if _has_truth(ctx) else None
        ids = ctx.test.ids if ctx.test is not None else np.arange(res.n).astype(str)
        for k in range(min(self.corner_stars, res.n)):
            fig = corner_figure(res.samples[k], ctx.label_names, ctx.label_units,
                                truth=None if truth is None else truth[k], best=res.labels[k],
                                title=f"posterior of star {ids[k]} (blue: true, red: inferred)")
            report.figures.append(save_figure(fig, out, f"corner_{k}"))


def _annotate(ax: Axes, report: Report, pred: np.ndarray, true: np.ndarray, lab: str, unit: str) -> None:
    """Write n, bias, scatter and robust scatter of pred - true (n,) in the panel and the report."""
    bias, scatter = (float(v[0]) for v in bias_scatter(pred[:, None], true[:, None]))
    robust = float(robust_scatter(pred[:, None], true[:, None])[0])
    report.numbers.update({f"{lab}_bias": bias, f"{lab}_scatter": scatter, f"{lab}_scatter_robust": robust})
    text = (f"n = {pred.size}\nbias = {_fmt(bias, unit)}\nscatter = {_fmt(scatter, unit)}\n"
            f"robust = {_fmt(robust, unit)}")
    ax.text(0.04, 0.96, text, transform=ax.transAxes, va="top", ha="left", fontsize=8,
            bbox={"boxstyle": "round", "fc": "white", "ec": "0.7", "alpha": 0.85})


def _one_to_one_panel(ax: Axes, true: np.ndarray, pred: np.ndarray, use: np.ndarray, snr: np.ndarray, lab: str,
                      unit: str) -> PathCollection | None:
    """Inferred (N,) against true (N,): converged ``use`` stars coloured by S/N, others grey x;
    returns the coloured collection (None without S/N)."""
    finite = np.isfinite(true) & np.isfinite(pred)
    size = 14 if true.size <= 500 else 4
    bad = finite & ~use
    if bad.any():
        ax.scatter(true[bad], pred[bad], marker="x", s=size, color="0.6", lw=0.8)
    norm = _colour_norm(snr[use])
    sc = (ax.scatter(true[use], pred[use], s=size, c=snr[use], cmap="viridis", norm=norm, lw=0) if norm is not None
          else ax.scatter(true[use], pred[use], s=size, color="C0", lw=0))
    vals = np.concatenate([true[finite], pred[use]])
    if vals.size:
        lo, hi = float(vals.min()), float(vals.max())
        pad = 0.05 * (hi - lo) if hi > lo else 1.0
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], "k--", lw=0.8)
        ax.set_xlim(lo - pad, hi + pad)
        ax.set_ylim(lo - pad, hi + pad)
    from matplotlib.ticker import MaxNLocator
    ax.xaxis.set_major_locator(MaxNLocator(5))
    ax.yaxis.set_major_locator(MaxNLocator(5))
    ax.set_xlabel(axis_label(lab, unit, "true"))
    ax.set_ylabel(axis_label(lab, unit, "inferred"))
    return sc if norm is not None else None


def _colour_norm(values: np.ndarray, log: bool = True) -> Normalize | None:
    """A colour scale for values (N,): logarithmic when ``log`` and they are > 0 and span more
    than a factor 5 (S/N), else linear; None without finite values."""
    from matplotlib.colors import LogNorm, Normalize
    v = values[np.isfinite(values)]
    if not v.size:
        return None
    if log and v.min() > 0 and v.max() > 5 * v.min():
        return LogNorm(v.min(), v.max())
    return Normalize(v.min(), v.max() if v.max() > v.min() else v.min() + 1.0)


def _hr_panel(ax: Axes, teff: np.ndarray, logg: np.ndarray, colour: np.ndarray, norm: Normalize | None
              ) -> PathCollection | None:
    """Teff-log g points (N,) coloured by ``colour`` (N,) on ``norm`` (None: one colour);
    returns the coloured collection or None."""
    size = 14 if teff.size <= 500 else 4
    if norm is None:
        ax.scatter(teff, logg, s=size, color="C0", lw=0)
        return None
    return ax.scatter(teff, logg, s=size, c=colour, cmap="viridis", norm=norm, lw=0)


@hookimpl
def slamfw_register_analyzers(register):
    register("figures", FiguresAnalyzer)
