"""Analyzer ``cod``: coefficients of dependence, COD (paper §6, eq. 12-13, Fig. 10).

Per pixel j, with MSE the cross-validated mean squared error in standardised flux (eq. 5; a
constant model has MSE = 1):

- eq. 12: ``COD_full = 1 - MSE_full``, the fraction of the pixel's variation that the labels
  explain. It is clipped to [0, 1], the range the paper gives it (a CV MSE above 1, a model worse
  than a constant, explains nothing);
- eq. 13, leave-one-label-out: the emulator is refitted without label l (a ``sklearn.base.clone``
  of the run's emulator, fitted on the training set with that label column removed), whose CV MSE
  is ``MSE_l``; then ``COD(l) = COD_full (MSE_l - MSE_full) / sum_l' (MSE_l' - MSE_full)``, so
  that ``sum_l COD(l) = COD_full``. ``MSE_l - MSE_full`` is >= 0 in principle; the CV noise of a
  label the pixel does not depend on can make it slightly negative, and it is clipped at 0.

MSE comes from the emulator's own ``cv_mse_`` (SLAM, The Cannon, KRR measure it while training);
for an emulator without it, ``slamfw.cross_validate_flux`` refits clones on ``folds`` folds
(the same split, from the experiment's seed, for the full and every reduced label set). The
refits run one after the other: an emulator that parallelises its own training (SLAM) spreads
each one over the executor's workers already. The sum in eq. 13 runs over the labels left out:
all of them by default; with ``labels`` a subset, the CODs are shares of COD_full among those.

Writes ``cod.ecsv`` (``wave`` in Angstrom, ``cod_full``, ``cod_<label>``) and ``cod.png``/``.pdf``
(the training spectra's 16/50/84 percentiles over the stacked COD spectra, as Fig. 10). The report
lists, for each label, the wavelength regions (runs of adjacent pixels) where that label has the
highest COD, the strongest first.
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
    ConfigError,
    Emulator,
    Params,
    Report,
    SlamfwError,
    SpectralSet,
    atomic_path,
    cross_validate_flux,
    flux_percentiles,
    hookimpl,
    new_figure,
    plot_flux_percentiles,
    save_figure,
)

SLAMFW_PLUGIN_API = (1, 1)


def cod_from_mse(mse_full: np.ndarray, mse_without: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """COD_full (P,) (eq. 12) and COD per label (L, P) (eq. 13) from the CV MSE of the full model
    (P,) and of the models without each label (L, P), all in standardised flux units."""
    cod_full = np.clip(1.0 - mse_full, 0.0, 1.0)
    loss = np.clip(mse_without - mse_full[None, :], 0.0, None)            # (L, P)
    total = loss.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(total > 0, loss / np.where(total > 0, total, 1.0), 0.0)
    cod = cod_full[None, :] * share
    cod[:, ~np.isfinite(mse_full)] = np.nan
    return cod_full, np.where(np.isfinite(mse_without), cod, np.nan)


def dominant_regions(wave: np.ndarray, cod: np.ndarray, names: list[str], min_cod: float, top: int) -> Table:
    """Runs of adjacent pixels where a label has the highest COD (>= ``min_cod``), per label the
    ``top`` runs of highest peak COD. wave (P,), cod (L, P)."""
    filled = np.nan_to_num(cod, nan=-1.0)
    lead = np.argmax(filled, axis=0)                                        # (P,)
    ok = filled.max(axis=0) >= min_cod
    rows = []
    for k, name in enumerate(names):
        runs = _runs(ok & (lead == k))
        found = []
        for a, b in runs:
            j = a + int(np.argmax(cod[k, a:b]))
            found.append((name, float(wave[a]), float(wave[b - 1]), float(wave[j]), float(cod[k, j]),
                          float(np.mean(cod[k, a:b])), b - a))
        found.sort(key=lambda r: -r[4])
        rows += [(*r[:1], rank + 1, *r[1:]) for rank, r in enumerate(found[:top])]
    table = Table(rows=rows or None, names=["label", "rank", "wave_start", "wave_end", "wave_peak", "cod_peak",
                                            "cod_mean", "n_pixels"],
                  dtype=[str, int, float, float, float, float, float, int])
    for col in ("wave_start", "wave_end", "wave_peak"):
        table[col].unit = u.AA
    return table


def _runs(sel: np.ndarray) -> list[tuple[int, int]]:
    """[(start, stop)) of the runs of True in sel (P,)."""
    edges = np.diff(np.concatenate([[0], sel.astype(int), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


class CODAnalyzer(Analyzer):
    """Coefficients of dependence of every pixel on every label (paper eq. 12-13, Fig. 10)."""

    class Params(Params):
        labels: list[str] | None = Field(None, description="labels to leave out one at a time (default: all)")
        folds: int = Field(5, ge=2, description="k of the k-fold CV for emulators without cv_mse_")
        top_regions: int = Field(3, ge=1, description="wavelength regions listed per label")
        min_cod: float = Field(0.05, ge=0, le=1, description="a region's pixels have their label's COD at least this")

    def analyze(self, ctx: AnalysisContext) -> Report:
        report = Report(title="Coefficients of dependence (paper §6, eq. 12-13)")
        emu = None if ctx.model is None else ctx.model.emulator
        if emu is None:
            report.notes.append("No model: nothing to assess.")
            return report
        names = self._labels(ctx)
        train = _training_set(ctx)
        mse_full = _cv_mse(emu, train, None, self.folds, ctx.seed)
        if mse_full is None:
            report.notes.append("The emulator has no cv_mse_ and there is no training set (the model was loaded "
                                "from a file): no COD.")
            return report
        if getattr(emu, "cv_mse_", None) is not None:
            report.notes.append(f"CV MSE: the emulator's own ({getattr(emu, 'cv_scheme_', 'CV')}).")
        else:
            report.notes.append(f"CV MSE: {self.folds}-fold refits here (seed {ctx.seed}).")
        cod_full, cod = np.clip(1.0 - mse_full, 0.0, 1.0), None
        if train is None:
            report.notes.append("No training set (the model was loaded from a file): COD_full only; the COD of "
                                "each label needs the emulator refitted without it.")
        elif len(ctx.label_names) < 2:
            report.notes.append("One label only: COD(label) = COD_full.")
            cod = cod_full[None, :].copy()
        else:
            cod = self._leave_one_out(emu, train, names, mse_full, ctx, report)
        self._summarise(report, ctx, names, cod_full, cod)
        self._write(report, ctx, names, cod_full, cod, train)
        return report

    def _labels(self, ctx: AnalysisContext) -> list[str]:
        names = list(self.labels or ctx.label_names)
        missing = [n for n in names if n not in ctx.label_names]
        if missing:
            raise ConfigError(f"cod: labels {missing} are not the model's labels {ctx.label_names}")
        return names

    def _leave_one_out(self, emu: Emulator, train: SpectralSet, names: list[str], mse_full: np.ndarray,
                       ctx: AnalysisContext, report: Report) -> np.ndarray | None:
        """(L', P) COD of the labels ``names``, or None (with a note) if a refit fails."""
        mse_without = []
        for name in names:
            try:
                mse_without.append(_cv_mse(emu, train, ctx.label_names.index(name), self.folds, ctx.seed))
            except SlamfwError as err:
                report.notes.append(f"The emulator cannot be refitted without {name} ({err}): COD_full only.")
                return None
        if len(names) < len(ctx.label_names):
            report.notes.append(f"Eq. 13 is normalised over the labels left out ({', '.join(names)}), not all.")
        return cod_from_mse(mse_full, np.asarray(mse_without))[1]

    def _summarise(self, report: Report, ctx: AnalysisContext, names: list[str], cod_full: np.ndarray,
                   cod: np.ndarray | None) -> None:
        report.numbers["cod_full_median"] = float(np.nanmedian(cod_full))
        if cod is None:
            return
        wave = np.asarray(ctx.model.wave, float)
        filled = np.nan_to_num(cod, nan=-1.0)                                  # (L', P)
        leading = (filled.max(axis=0) >= self.min_cod)[None, :] & (np.argmax(filled, axis=0)[None, :] ==
                                                                    np.arange(len(names))[:, None])
        rows = []
        for k, name in enumerate(names):
            j = int(np.argmax(filled[k]))
            rows.append((name, float(np.nanmedian(cod[k])), float(cod[k, j]), float(wave[j]),
                         float(np.mean(leading[k]))))
            report.numbers[f"cod_{name}_median"] = rows[-1][1]
            report.numbers[f"cod_{name}_max"] = rows[-1][2]
        summary = Table(rows=rows, names=["label", "cod_median", "cod_max", "wave_at_max", "fraction_leading"],
                        dtype=[str, float, float, float, float])
        summary["wave_at_max"].unit = u.AA
        report.tables["COD per label"] = summary
        report.tables["wavelength regions where each label has the highest COD"] = dominant_regions(
            wave, cod, names, self.min_cod, self.top_regions)
        report.notes.append(f"fraction_leading: the share of pixels where the label has the highest COD "
                            f"(at least {self.min_cod:g}).")

    def _write(self, report: Report, ctx: AnalysisContext, names: list[str], cod_full: np.ndarray,
               cod: np.ndarray | None, train: SpectralSet | None) -> None:
        if ctx.output_dir is None:
            return
        out = Path(ctx.output_dir)
        wave = np.asarray(ctx.model.wave, float)
        table = Table({"wave": wave * u.AA, "cod_full": cod_full})
        for k, name in enumerate(names if cod is not None else []):
            table[f"cod_{name}"] = cod[k]
        with atomic_path(out / "cod.ecsv") as tmp:
            table.write(tmp, format="ascii.ecsv", overwrite=True)
        report.notes.append("Per-pixel CODs: cod.ecsv.")
        report.figures.append(plot_cod(out, wave, names, cod_full, cod, train))


def _training_set(ctx: AnalysisContext) -> SpectralSet | None:
    """The training set with its labels in the model's order (None if absent or unlabelled)."""
    train = ctx.train
    if train is None or train.labels is None:
        return None
    return train if list(train.label_names) == list(ctx.label_names) else train.select_labels(ctx.label_names)


def _cv_mse(emu: Emulator, train: SpectralSet | None, drop: int | None, folds: int, seed: int) -> np.ndarray | None:
    """(P,) CV MSE of the emulator (``drop`` None) or of a clone fitted without label ``drop``;
    None when neither the emulator's ``cv_mse_`` nor a training set is at hand."""
    own = getattr(emu, "cv_mse_", None)
    if drop is None and own is not None:
        return np.asarray(own, float)
    if train is None:
        return None
    labels = train.labels if drop is None else np.delete(train.labels, drop, axis=1)
    ivar = train.weight_ivar
    if own is not None:
        from sklearn.base import clone             # imported here: predict never needs scikit-learn
        refit = clone(emu).fit(labels, train.flux, ivar)
        mse = getattr(refit, "cv_mse_", None)
        if mse is not None:
            return np.asarray(mse, float)
    return cross_validate_flux(emu, labels, train.flux, ivar, n_folds=folds, seed=seed)[0]


def plot_cod(out: Path, wave: np.ndarray, names: list[str], cod_full: np.ndarray, cod: np.ndarray | None,
             train: SpectralSet | None) -> str:
    """Fig. 10: the training spectra's percentiles (top, if known) over the stacked COD of each
    label (L, P) with COD_full (P,); returns the PNG's relative path."""
    rows = 2 if train is not None else 1
    fig, axes = new_figure(rows, 1, figsize=(12, 2.6 + 2.4 * rows), sharex=True,
                           gridspec_kw={"height_ratios": [1, 1.4][-rows:]})
    if train is not None:
        plot_flux_percentiles(axes[0, 0], wave, flux_percentiles(train.flux, train.weight_ivar > 0), color="C6")
        axes[0, 0].legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
        axes[0, 0].set_title("training spectra and coefficients of dependence (cf. Zhang, Liu & Deng 2020, Fig. 10)")
    ax = axes[-1, 0]
    if cod is not None:
        ax.stackplot(wave, np.nan_to_num(cod), labels=[f"COD({n})" for n in names], alpha=0.75)
    ax.plot(wave, cod_full, color="k", lw=0.7, label="COD$_{full}$")
    ax.set_ylim(0, 1.05)
    ax.set_xlim(wave[0], wave[-1])
    ax.set_ylabel("COD (eq. 12-13)")
    ax.set_xlabel(WAVE_LABEL)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return save_figure(fig, out, "cod")


@hookimpl
def slamfw_register_analyzers(register):
    register("cod", CODAnalyzer)
