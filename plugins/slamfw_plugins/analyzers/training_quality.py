"""Analyzer ``training-quality``: per-pixel CV MSE and CV MD^2 of one run's emulator (paper Fig. 2).

Per pixel j, in standardised flux (eq. 2-4; a constant model has MSE 1), over k-fold
cross-validated predictions f_j of the M training spectra f_ij:

    CV MSE_j = 1/M sum_i (f_j(theta_i) - f_ij)^2        (eq. 5)
    CV MD_j  = 1/M sum_i (f_j(theta_i) - f_ij)          (eq. 6)

taken from the emulator (``cv_mse_``, ``cv_md_``, ``cv_scheme_``) when it measured them while
training, else computed here by ``slamfw.cross_validate_flux`` with ``folds`` folds (which needs the
training set). With them, the 16/50/84 percentile spectra of the training set (good pixels only),
the black lines of Fig. 2. Writes ``training_quality.ecsv`` (``wave`` in Angstrom, ``flux_p16``,
``flux_p50``, ``flux_p84``, ``cv_mse``, ``cv_md``, ``cv_md2``) and the figure; reports the median
and mean CV MSE and CV MD^2 and the pixels of largest CV MSE.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.table import Table
from pydantic import Field

from slamfw import (
    WAVE_LABEL,
    AnalysisContext,
    Analyzer,
    Params,
    Report,
    atomic_path,
    cross_validate_flux,
    flux_percentiles,
    hookimpl,
    new_figure,
    plot_flux_percentiles,
    save_figure,
)

SLAMFW_PLUGIN_API = (1, 1)


def cv_residuals(ctx: AnalysisContext, folds: int) -> tuple[np.ndarray, np.ndarray, str] | None:
    """CV MSE and CV MD (P,) and how they were measured: the emulator's own, or a k-fold CV on
    the training set; None when neither is available."""
    emu = ctx.model.emulator
    mse, md = getattr(emu, "cv_mse_", None), getattr(emu, "cv_md_", None)
    if mse is not None and md is not None:
        return np.asarray(mse, float), np.asarray(md, float), f"{getattr(emu, 'cv_scheme_', 'CV')} (emulator's own)"
    train = ctx.train
    if train is None or train.labels is None:
        return None
    labels = train.labels if list(train.label_names) == list(ctx.label_names) else \
        train.select_labels(ctx.label_names).labels
    mse, md = cross_validate_flux(emu, labels, train.flux, train.weight_ivar, n_folds=folds, seed=ctx.seed)
    return mse, md, f"{folds}-fold (refitted here)"


class TrainingQualityAnalyzer(Analyzer):
    """Per-pixel CV MSE and CV MD^2 with the training set's percentile spectra (paper Fig. 2)."""

    class Params(Params):
        folds: int = Field(5, ge=2, description="k of the k-fold CV for emulators without cv_mse_/cv_md_")
        worst_pixels: int = Field(5, ge=0, description="pixels of largest CV MSE listed in the report")

    def analyze(self, ctx: AnalysisContext) -> Report:
        report = Report(title="Training quality: per-pixel CV MSE and CV MD² (paper eq. 5-6, Fig. 2)")
        if ctx.model is None:
            report.notes.append("No model: nothing to assess.")
            return report
        cv = cv_residuals(ctx, self.folds)
        if cv is None:
            report.notes.append("The emulator has no cv_mse_/cv_md_ and there is no training set (the model was "
                                "loaded from a file): no CV residuals.")
            return report
        mse, md, scheme = cv
        wave = np.asarray(ctx.model.wave, float)
        pct = (flux_percentiles(ctx.train.flux, ctx.train.weight_ivar > 0) if ctx.train is not None
               else np.full((3, wave.size), np.nan))
        self._numbers(report, wave, mse, md)
        report.notes.append(f"CV scheme: {scheme}; standardised flux units (a constant model has MSE 1).")
        if ctx.output_dir is not None:
            out = Path(ctx.output_dir)
            table = Table({"wave": wave * u.AA, "flux_p16": pct[0], "flux_p50": pct[1], "flux_p84": pct[2],
                           "cv_mse": mse, "cv_md": md, "cv_md2": md ** 2})
            with atomic_path(out / "training_quality.ecsv") as tmp:
                table.write(tmp, format="ascii.ecsv", overwrite=True)
            report.notes.append("Per-pixel values: training_quality.ecsv.")
            report.figures.append(plot_training_quality(out, wave, pct, mse, md, scheme))
        return report

    def _numbers(self, report: Report, wave: np.ndarray, mse: np.ndarray, md: np.ndarray) -> None:
        for key, vals in (("cv_mse", mse), ("cv_md2", md ** 2)):
            report.numbers[f"{key}_median"] = float(np.nanmedian(vals)) if np.isfinite(vals).any() else float("nan")
            report.numbers[f"{key}_mean"] = float(np.nanmean(vals)) if np.isfinite(vals).any() else float("nan")
        if self.worst_pixels:
            order = np.argsort(np.nan_to_num(-mse, nan=np.inf), kind="stable")[:self.worst_pixels]
            worst = Table({"wave": wave[order] * u.AA, "cv_mse": mse[order], "cv_md": md[order]})
            report.tables["pixels of largest CV MSE"] = worst


def plot_training_quality(out: Path, wave: np.ndarray, pct: np.ndarray, mse: np.ndarray, md: np.ndarray,
                          scheme: str) -> str:
    """Fig. 2 for one emulator: training percentile spectra (3, P), CV MSE and CV MD^2 (P,) on log
    scales with their medians dashed; returns the PNG's relative path."""
    fig, axes = new_figure(3, 1, figsize=(12, 8), sharex=True, gridspec_kw={"height_ratios": [1, 1.2, 1.2]})
    if np.isfinite(pct).any():
        plot_flux_percentiles(axes[0, 0], wave, pct)
        axes[0, 0].legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    else:
        axes[0, 0].text(0.5, 0.5, "no training set", ha="center", va="center", transform=axes[0, 0].transAxes)
        axes[0, 0].set_ylabel("normalised flux")
    for ax, vals, what in ((axes[1, 0], mse, "CV MSE"), (axes[2, 0], md ** 2, "CV MD$^2$")):
        ax.plot(wave, np.where(vals > 0, vals, np.nan), color="C3", lw=0.7, label=what)
        if np.isfinite(vals).any():
            ax.axhline(np.nanmedian(vals), color="k", ls="--", lw=1.0, label=f"median {np.nanmedian(vals):.3g}")
        ax.set_yscale("log")
        ax.set_ylabel(f"{what}\n(standardised flux)")
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    axes[0, 0].set_xlim(wave[0], wave[-1])
    axes[2, 0].set_xlabel(WAVE_LABEL)
    axes[0, 0].set_title(f"Per-pixel emulation quality, {scheme} (cf. Zhang, Liu & Deng 2020, Fig. 2)")
    return save_figure(fig, out, "training_quality")


@hookimpl
def slamfw_register_analyzers(register):
    register("training-quality", TrainingQualityAnalyzer)
