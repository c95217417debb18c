"""Figures for analyzers (part of the plugin API): matplotlib without pyplot or a display.

Figures are :class:`matplotlib.figure.Figure` objects made directly (no pyplot state, so analyzers
may draw from several threads), laid out by matplotlib's constrained layout so that labels do not
overlap, and written by :func:`save_figure` as PNG (for ``report.md``) and PDF (for papers) beside
each other, atomically. The style follows ``slamfw compare``'s figures (:mod:`.compare_plots`).

- :func:`new_figure`, :func:`panel_grid`: a figure with a grid of panels;
- :func:`axis_label`: ``"Teff [K]"`` from a name and a unit; :data:`WAVE_LABEL`;
- :func:`log_axis`: a log axis with plain tick labels;
- :func:`flux_percentiles`, :func:`plot_flux_percentiles`: the 16/50/84 percentile spectra of a
  set of spectra (the black lines of the paper's Fig. 2 and the pink ones of Fig. 10);
- :func:`precision_figure`: scatter, errors and bias against S/N per label (Fig. 4, 7);
- :func:`corner_figure`: a small corner plot of posterior samples (no ``corner`` package);
- :func:`save_figure`: PNG and PDF into an output folder, returning the PNG's relative path.
"""
from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..execution.store import atomic_path

if TYPE_CHECKING:  # pragma: no cover - matplotlib is imported when a figure is made, not with slamfw
    from matplotlib.figure import Figure

__all__ = ["PRECISION_CURVES", "WAVE_LABEL", "axis_label", "corner_figure", "flux_percentiles", "log_axis",
           "new_figure", "panel_grid", "plot_flux_percentiles", "precision_figure", "save_figure"]

#: The wavelength axis label of every spectrum figure.
WAVE_LABEL = "wavelength [Å]"


def new_figure(nrows: int = 1, ncols: int = 1, *, panel_size: tuple[float, float] = (4.2, 3.4),
               figsize: tuple[float, float] | None = None, **subplot_kw: Any) -> tuple[Figure, np.ndarray]:
    """A figure with a (nrows, ncols) array of axes (never squeezed), constrained layout.

    ``subplot_kw`` goes to :meth:`Figure.subplots` (``sharex``, ``gridspec_kw``, ...).
    """
    from matplotlib.figure import Figure
    fig = Figure(figsize=figsize or (panel_size[0] * ncols, panel_size[1] * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **subplot_kw)
    return fig, axes


def panel_grid(n_panels: int, max_cols: int = 3, *, panel_size: tuple[float, float] = (4.2, 3.6)
               ) -> tuple[Figure, list[Any]]:
    """A figure with ``n_panels`` axes on rows of at most ``max_cols``; unused cells are hidden."""
    ncols = max(1, min(n_panels, max_cols))
    nrows = max(1, -(-n_panels // ncols))
    fig, axes = new_figure(nrows, ncols, panel_size=panel_size)
    flat = list(axes.flat)
    for ax in flat[n_panels:]:
        ax.set_visible(False)
    return fig, flat[:n_panels]


def axis_label(name: str, unit: str | None = None, what: str = "") -> str:
    """``"Teff scatter [K]"`` from name ``Teff``, unit ``K`` and what ``scatter`` (no brackets without a unit)."""
    text = f"{name} {what}".strip()
    return f"{text} [{unit}]" if unit else text


def log_axis(ax: Any, which: str = "y", ticks: Sequence[float] | None = None) -> None:
    """Put a log scale on ``ax``'s ``which`` ("x" or "y") axis with plain tick labels (``20``, not
    ``2x10^1``): at ``ticks`` when given, else at the 1-2-5 values of each decade."""
    from matplotlib import ticker
    axis = ax.xaxis if which == "x" else ax.yaxis
    (ax.set_xscale if which == "x" else ax.set_yscale)("log")
    if ticks is not None:
        axis.set_major_locator(ticker.FixedLocator(list(ticks)))
        axis.set_minor_locator(ticker.NullLocator())
        axis.set_major_formatter(ticker.FuncFormatter(lambda v, _: _plain(v)))
        axis.set_minor_formatter(ticker.NullFormatter())
        return
    axis.set_major_formatter(ticker.FuncFormatter(_label_125))
    axis.set_minor_formatter(ticker.FuncFormatter(_label_125))


def _label_125(value: float, _pos: Any = None) -> str:
    """``f"{value:g}"`` for values 1, 2 or 5 times a power of ten, else ``""``."""
    if not np.isfinite(value) or value <= 0:
        return ""
    mantissa = value / 10 ** np.floor(np.log10(value) + 1e-9)
    return _plain(value) if any(abs(mantissa - m) < 1e-6 for m in (1.0, 2.0, 5.0)) else ""


def _plain(value: float, digits: int = 3) -> str:
    """``digits`` significant digits without an exponent: ``1000``, ``23.5``, ``0.0005``."""
    return np.format_float_positional(value, precision=digits, unique=True, fractional=False, trim="-")


#: How :func:`precision_figure` draws each statistic: (line style, colour, legend text).
PRECISION_CURVES = {
    "scatter": ("o-", "C0", "scatter"),
    "scatter_robust": ("s--", "C0", "robust scatter (1.4826 MAD)"),
    "err_formal": ("v-.", "C2", "mean formal error"),
    "err_calibrated": ("^:", "C3", "mean calibrated error"),
}


def precision_figure(snr: np.ndarray, stats: dict[str, np.ndarray], names: Sequence[str], units: Sequence[str], *,
                     xlabel: str = "S/N per pixel", title: str = "", trend: bool = True) -> Figure:
    """Label precision against S/N (the paper's Fig. 4 and 7), one column per label.

    snr (B,) the S/N of B bins; ``stats`` maps ``scatter``, ``scatter_robust``, ``err_formal``,
    ``err_calibrated`` (any of them, drawn on log scales in the top row) and ``bias`` (the bottom
    row, linear) to (B, L) arrays. ``trend`` adds a 1/(S/N) line through the highest-S/N scatter.
    """
    snr = np.asarray(snr, float)
    fig, axes = new_figure(2, len(names), panel_size=(4.2, 2.6), sharex="col", gridspec_kw={"height_ratios": [1.6, 1]})
    for j, (name, unit) in enumerate(zip(names, units)):
        top, bottom = axes[0, j], axes[1, j]
        shown = False
        for key, (style, color, text) in PRECISION_CURVES.items():
            if key in stats:
                y = np.asarray(stats[key], float)[:, j]
                shown |= bool(np.any(np.isfinite(y) & (y > 0)))
                top.plot(snr, np.where(y > 0, y, np.nan), style, color=color, label=text,
                         mfc=None if key == "scatter" else "none")
        if trend and "scatter" in stats and np.isfinite(stats["scatter"][-1, j]):
            top.plot(snr, stats["scatter"][-1, j] * snr[-1] / snr, color="k", ls=(0, (4, 3)), lw=0.8,
                     label="∝ 1/(S/N)")
        if "bias" in stats:
            bottom.plot(snr, stats["bias"][:, j], "d-", color="C1", label="bias")
        bottom.axhline(0.0, color="0.5", lw=0.6)
        if shown:
            log_axis(top, "y")
        else:       # no star at any S/N (none converged): matplotlib cannot log-scale an empty panel
            top.text(0.5, 0.5, "no value to show", transform=top.transAxes, ha="center", va="center")
        log_axis(bottom, "x", ticks=snr)
        top.set_title(name)
        top.set_ylabel(axis_label(name, unit, "scatter, error"))
        bottom.set_ylabel(axis_label(name, unit, "bias"))
        bottom.set_xlabel(xlabel)
    handles = [h for ax in axes[:, 0] for h in ax.get_legend_handles_labels()[0]]
    fig.legend(handles, [h.get_label() for h in handles], loc="outside lower center", ncol=min(len(handles), 6))
    if title:
        fig.suptitle(title)
    return fig


def flux_percentiles(flux: np.ndarray, good: np.ndarray | None = None,
                     q: Sequence[float] = (16.0, 50.0, 84.0)) -> np.ndarray:
    """(len(q), P) percentiles over the stars of flux (M, P), using only ``good`` (M, P) entries
    (NaN for a pixel without any)."""
    flux = np.atleast_2d(np.asarray(flux, float))
    good = np.ones(flux.shape, bool) if good is None else np.asarray(good, bool)
    masked = np.where(good, flux, np.nan)
    out = np.full((len(q), flux.shape[1]), np.nan)
    has = good.any(axis=0)
    if has.any():
        out[:, has] = np.nanpercentile(masked[:, has], q, axis=0)
    return out


def plot_flux_percentiles(ax: Any, wave: np.ndarray, percentiles: np.ndarray, color: str = "k",
                          ylabel: str = "normalised flux") -> None:
    """Draw (3, P) percentile spectra (16/50/84) on ``ax``: the median solid, the others dotted."""
    for p, style, lab in zip(percentiles, (":", "-", ":"), ("16 / 84 %", "median", None)):
        ax.plot(wave, p, color=color, ls=style, lw=0.8, label=lab)
    ax.set_ylabel(ylabel)
    ax.set_xlim(wave[0], wave[-1])


def corner_figure(samples: np.ndarray, names: Sequence[str], units: Sequence[str], *,
                  truth: np.ndarray | None = None, best: np.ndarray | None = None, title: str = "",
                  bins: int = 30) -> Figure:
    """A corner plot of posterior samples (S, L): histograms on the diagonal (their 16th and 84th
    percentiles dotted, the median and its distances to them above), 2-D histograms below it, the
    true (L,) labels as blue lines and the ``best`` (L,) estimate as red ones."""
    samples = np.asarray(samples, float)
    samples = samples[np.all(np.isfinite(samples), axis=1)]
    n = samples.shape[1]
    fig, axes = new_figure(n, n, panel_size=(2.3, 2.3))
    lims = [_limits(samples[:, j], None if truth is None else truth[j]) for j in range(n)]
    for i in range(n):
        for j in range(n):
            ax = axes[i, j]
            if j > i:
                ax.set_visible(False)
                continue
            _corner_panel(ax, samples, i, j, lims, bins)
            for vals, color in ((truth, "C0"), (best, "C3")):
                if vals is not None and np.isfinite(vals[j]):
                    ax.axvline(vals[j], color=color, lw=0.9)
                    if i != j and np.isfinite(vals[i]):
                        ax.axhline(vals[i], color=color, lw=0.9)
            _corner_ticks(ax, i, j, n, names, units)
    if title:
        fig.suptitle(title)
    return fig


def _limits(x: np.ndarray, extra: float | None) -> tuple[float, float]:
    """Axis range of samples x (S,): their 0.5-99.5 percentiles, widened to include ``extra``."""
    lo, hi = (np.percentile(x, [0.5, 99.5]) if x.size else (0.0, 1.0))
    if extra is not None and np.isfinite(extra):
        lo, hi = min(lo, extra), max(hi, extra)
    pad = 0.05 * (hi - lo) if hi > lo else max(abs(lo) * 1e-3, 1e-6)
    return float(lo - pad), float(hi + pad)


def _corner_panel(ax: Any, samples: np.ndarray, i: int, j: int, lims: list[tuple[float, float]], bins: int) -> None:
    if i == j:
        ax.hist(samples[:, j], bins=bins, range=lims[j], histtype="step", color="k")
        ax.set_yticks([])
        if samples.shape[0]:
            p16, p50, p84 = np.percentile(samples[:, j], [16, 50, 84])
            for v in (p16, p84):
                ax.axvline(v, color="k", ls=":", lw=0.8)
            ax.set_title(f"{_plain(p50)} +{_plain(p84 - p50, 2)} / -{_plain(p50 - p16, 2)}", fontsize=8)
    else:
        ax.hist2d(samples[:, j], samples[:, i], bins=bins, range=[lims[j], lims[i]], cmap="Greys")
        ax.set_ylim(lims[i])
    ax.set_xlim(lims[j])


def _corner_ticks(ax: Any, i: int, j: int, n: int, names: Sequence[str], units: Sequence[str]) -> None:
    ax.tick_params(labelsize=7)
    ax.xaxis.set_major_locator(_locator())
    if i < n - 1:
        ax.set_xticklabels([])
    else:
        ax.set_xlabel(axis_label(names[j], units[j]))
        for t in ax.get_xticklabels():
            t.set_rotation(45)
    if i != j:
        ax.yaxis.set_major_locator(_locator())
    if j > 0 or i == 0:
        if i != j:
            ax.set_yticklabels([])
    else:
        ax.set_ylabel(axis_label(names[i], units[i]))


def _locator() -> Any:
    from matplotlib.ticker import MaxNLocator
    return MaxNLocator(3, prune="both")


def save_figure(fig: Figure, output_dir: str | os.PathLike, stem: str, dpi: int = 120) -> str:
    """Write ``<stem>.png`` and ``<stem>.pdf`` into ``output_dir`` (atomically) and return the PNG's
    path relative to ``output_dir`` (what :attr:`slamfw.Report.figures` lists)."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", stem).strip("._") or "figure"
    out = Path(output_dir)
    with atomic_path(out / f"{stem}.png") as tmp:
        fig.savefig(tmp, dpi=dpi, metadata={"Software": None})
    fig.set_layout_engine("none")          # keep the layout just computed: the PDF is laid out alike, faster
    with atomic_path(out / f"{stem}.pdf") as tmp:
        fig.savefig(tmp, metadata={"Creator": None, "Producer": None, "CreationDate": None})
    return f"{stem}.png"
