"""Analyzer ``label-distance``: the label distance D of Ho et al. (2017a) (paper eq. 11).

For each star, against reference labels (by default the test set's true labels; or columns of the
test set's metadata, param ``reference``, such as another pipeline's labels)::

    D = sum_l (theta_l - theta_ref,l)^2 / s_l^2                                   (eq. 11)

a sum of squares, not its root, with the paper's scales s = 100 K for Teff, 0.2 dex for log g and
0.1 dex for [Fe/H] or [M/H] (param ``scales``, matched by name without case or punctuation:
``Teff``, ``log g``, ``[Fe/H]``). Labels without a scale are left out, with a note. The paper
(after Ho et al.) calls stars with D < 2.5 consistent (param ``threshold``). The report gives the
median and the 16th and 84th percentiles of D and the fraction below the threshold, overall and
per S/N bin (converged stars with all reference labels known), and the median contribution of
each label; ``label_distance.ecsv`` has D for every star (``id``, ``D``, ``converged``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.table import Table
from pydantic import Field

from slamfw import (
    LABEL_DISTANCE_SCALES,
    AnalysisContext,
    Analyzer,
    ConfigError,
    Params,
    Report,
    atomic_path,
    hookimpl,
    label_key,
    snr_bins,
)

SLAMFW_PLUGIN_API = (1, 1)

def label_distance(pred: np.ndarray, ref: np.ndarray, scales: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """D (N,) of eq. 11 and each label's term (N, L) for labels pred, ref (N, L) and scales (L,)."""
    terms = ((pred - ref) / scales[None, :]) ** 2
    return terms.sum(axis=1), terms


def _summary(d: np.ndarray, threshold: float) -> tuple[float, float, float, float]:
    """Median, 16th, 84th percentile of D (finite values) and the fraction below ``threshold``."""
    d = d[np.isfinite(d)]
    if not d.size:
        return (float("nan"),) * 4
    p16, p50, p84 = np.percentile(d, [16, 50, 84])
    return float(p50), float(p16), float(p84), float(np.mean(d < threshold))


class LabelDistanceAnalyzer(Analyzer):
    """Label distance D (eq. 11) of the inferred labels from reference labels."""

    class Params(Params):
        scales: dict[str, float] = Field(dict(LABEL_DISTANCE_SCALES), description="scale of each label in eq. 11, by "
                                         "name (case and punctuation ignored)")
        reference: dict[str, str] | None = Field(None, description="label -> test-set metadata column with its "
                                                 "reference value (default: the true labels)")
        threshold: float = Field(2.5, gt=0, description="D below this counts as consistent (paper: 2.5)")
        snr_edges: list[float] | None = Field(None, description="S/N bin edges (default: distinct values or quintiles)")
        infinite_ok = ("snr_edges",)            # an open top bin: [0, 20, 50, inf]
        converged_only: bool = True

    def analyze(self, ctx: AnalysisContext) -> Report:
        report = Report(title="Label distance D (paper eq. 11, Ho et al. 2017a)")
        res, test = ctx.result, ctx.test
        if res is None or test is None or res.n == 0:
            report.notes.append("No inferred labels: nothing to assess.")
            return report
        cols, scales = self._scaled_labels(ctx, report)
        ref = self._reference(ctx, cols)
        if not cols or ref is None or not np.isfinite(ref).all(axis=1).any():
            report.notes.append("No reference labels with a scale: no label distance.")
            return report
        d, terms = label_distance(res.labels[:, cols], ref, scales)
        use = np.isfinite(d) & (np.asarray(res.converged, bool) if self.converged_only else True)
        self._tables(report, ctx, d, terms, use, cols)
        terms_text = " + ".join(f"(Δ{ctx.label_names[c]} / {s:g}{' ' + ctx.label_units[c] if ctx.label_units[c] else ''})²"
                                for c, s in zip(cols, scales))
        report.notes.append(f"D = {terms_text}; {int(use.sum())} of {res.n} stars used.")
        if ctx.output_dir is not None:
            self._write(ctx, d)
            report.notes.append("D of every star: label_distance.ecsv.")
        return report

    def _scaled_labels(self, ctx: AnalysisContext, report: Report) -> tuple[list[int], np.ndarray]:
        """Indices of the labels with a scale, and their scales (L',)."""
        scales = {label_key(k): float(v) for k, v in self.scales.items()}
        if any(v <= 0 for v in scales.values()):
            raise ConfigError(f"label-distance: scales must be > 0, got {self.scales}")
        cols = [j for j, n in enumerate(ctx.label_names) if label_key(n) in scales]
        left = [n for j, n in enumerate(ctx.label_names) if j not in cols]
        if left:
            report.notes.append(f"Labels without a scale, left out of D: {', '.join(left)}.")
        return cols, np.array([scales[label_key(ctx.label_names[j])] for j in cols])

    def _reference(self, ctx: AnalysisContext, cols: list[int]) -> np.ndarray | None:
        """(N, L') reference labels: metadata columns (param ``reference``) or the true labels."""
        test = ctx.test
        if self.reference is None:
            return None if test.labels is None else test.labels[:, cols]
        out = np.full((test.n_stars, len(cols)), np.nan)
        for k, j in enumerate(cols):
            name = ctx.label_names[j]
            if name in self.reference:
                if self.reference[name] not in test.meta:
                    raise ConfigError(f"label-distance: the test set has no metadata column {self.reference[name]!r} "
                                      f"(reference of {name}); it has {sorted(test.meta)}")
                out[:, k] = test.meta_column(self.reference[name])
            elif test.labels is not None:
                out[:, k] = test.labels[:, j]
        return out

    def _tables(self, report: Report, ctx: AnalysisContext, d: np.ndarray, terms: np.ndarray, use: np.ndarray,
                cols: list[int]) -> None:
        groups = [("all", np.ones(d.size, bool))] + snr_bins(ctx.test.meta_column("snr"), self.snr_edges)
        rows = []
        for name, sel in groups:
            med, p16, p84, frac = _summary(d[sel & use], self.threshold)
            rows.append((name, int((sel & use).sum()), med, p16, p84, frac))
        table = Table(rows=rows, names=["snr_bin", "n", "D_median", "D_p16", "D_p84", f"frac_D_below_{self.threshold:g}"],
                      dtype=[str, int, float, float, float, float])
        report.tables["label distance D by S/N"] = table
        for key, value in zip(("D_median", "D_p16", "D_p84", "frac_below_threshold"), rows[0][2:]):
            report.numbers[key] = value
        contrib = Table({"label": [ctx.label_names[c] for c in cols],
                         "median_term": [_summary(terms[use, k], np.inf)[0] for k in range(len(cols))]})
        report.tables["median term of each label in D"] = contrib

    def _write(self, ctx: AnalysisContext, d: np.ndarray) -> None:
        table = Table({"id": ctx.test.ids, "D": d, "converged": np.asarray(ctx.result.converged, bool)})
        table["D"].description = "label distance, paper eq. 11 (dimensionless)"
        with atomic_path(Path(ctx.output_dir) / "label_distance.ecsv") as tmp:
            table.write(tmp, format="ascii.ecsv", overwrite=True)


@hookimpl
def slamfw_register_analyzers(register):
    register("label-distance", LabelDistanceAnalyzer)
