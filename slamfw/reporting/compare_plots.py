"""Figures of ``slamfw compare`` (matplotlib, written as PNG without a display).

- ``compare_cv.png``: the paper's Fig. 2 for every emulator: the 16/50/84 percentile training
  spectra, then per-pixel CV MSE and CV MD^2 (log scale) with each emulator's median dashed;
- ``compare_labels.png``: label scatter (standard deviation, and 1.4826 MAD dashed) and bias per
  label, overall and per S/N bin;
- ``compare_cost.png``: training time, inference time per spectrum, model size.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..execution.store import atomic_path

if TYPE_CHECKING:  # pragma: no cover
    from ..workflows.compare import CompareResult


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(plt, fig, path: Path) -> Path:
    """Lay out, write atomically as PNG, close."""
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    return path


def plot_cv(result: "CompareResult", path: Path) -> Path:
    plt = _pyplot()
    fig, axes = plt.subplots(3, 1, figsize=(13, 9), sharex=True, gridspec_kw={"height_ratios": [1, 1.3, 1.3]})
    w = result.wave
    for p, style in zip(result.train_percentiles, (":", "-", ":")):
        axes[0].plot(w, p, "k", ls=style, lw=0.8)
    axes[0].set_ylabel("training flux\n16/50/84 %")
    for s in result.summaries:
        for ax, values, what in ((axes[1], s.cv_mse, "CV MSE"), (axes[2], s.cv_md ** 2, "CV MD$^2$")):
            line, = ax.plot(w, values, lw=0.7, label=f"{s.name} ({s.cv_scheme})")
            ax.axhline(np.nanmedian(values), color=line.get_color(), ls="--", lw=1.0)
            ax.set_ylabel(f"{what}\n(standardised)")
    for ax in axes[1:]:
        ax.set_yscale("log")
    axes[1].legend(loc="upper right", fontsize=8, ncol=len(result.summaries))
    axes[2].set_xlabel("wavelength (A)")
    axes[0].set_title("Per-pixel emulation quality (dashed: medians), cf. Zhang, Liu & Deng 2020, Fig. 2")
    return _save(plt, fig, path)


def plot_labels(result: "CompareResult", path: Path) -> Path | None:
    sums = [s for s in result.summaries if s.label_stats.get("scatter")]
    if not sums:
        return None
    plt = _pyplot()
    bins = ["all"] + list(result.snr_bins)
    n_lab = len(result.label_names)
    fig, axes = plt.subplots(2, n_lab, figsize=(4.2 * n_lab, 6.5), squeeze=False)
    x = np.arange(len(bins))
    for j, (lab, unit) in enumerate(zip(result.label_names, result.label_units)):
        for i, s in enumerate(sums):
            for row, key, style, name in ((0, "scatter", "o-", s.name), (0, "scatter_robust", "s--", None),
                                          (1, "bias", "o-", None)):
                vals = [s.label_stats[key].get(b, {}).get(lab, np.nan) for b in bins]
                axes[row, j].plot(x, vals, style, color=f"C{i}", mfc="none" if key == "scatter_robust" else None,
                                  label=name)
        for row, key in ((0, "scatter"), (1, "bias")):
            ax = axes[row, j]
            ax.set_xticks(x, bins, rotation=30 if len(bins) > 4 else 0)
            what = "scatter (solid), robust (dashed)" if key == "scatter" else key
            ax.set_ylabel(f"{lab} {what}" + (f" [{unit}]" if unit else ""), fontsize=9)
            if key == "bias":
                ax.axhline(0.0, color="k", lw=0.6)
        axes[1, j].set_xlabel("S/N bin")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle("Inferred - true labels (converged stars)")
    return _save(plt, fig, path)


def plot_cost(result: "CompareResult", path: Path) -> Path:
    plt = _pyplot()
    names = [s.name for s in result.summaries]
    infer = [1e3 * (s.infer_time_per_spectrum_s or np.nan) for s in result.summaries]
    panels = (("training time (s)", [s.train_time_s for s in result.summaries]),
              ("inference (ms / spectrum)", infer),
              ("model file (MB)", [s.model_bytes / 1e6 for s in result.summaries]))
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    for ax, (title, vals) in zip(axes, panels):
        bars = ax.bar(names, vals, color=[f"C{i}" for i in range(len(names))])
        ax.bar_label(bars, fmt="%.3g", fontsize=8)
        ax.set_title(title)
        ax.set_yscale("log")
    return _save(plt, fig, path)


def plot_all(result: "CompareResult") -> list[Path]:
    out = result.output_dir
    paths = [plot_cv(result, out / "compare_cv.png"), plot_labels(result, out / "compare_labels.png"),
             plot_cost(result, out / "compare_cost.png")]
    return [p for p in paths if p is not None]
