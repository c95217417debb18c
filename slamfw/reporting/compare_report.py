"""Writing a comparison: ``compare.json``, ``compare_cv.ecsv``, the figures and ``compare.md``."""
from __future__ import annotations

import datetime as _dt
import json
from typing import TYPE_CHECKING

import numpy as np
from astropy.table import Table

from .._version import __version__
from ..execution.store import atomic_path
from .markdown import table_to_markdown

if TYPE_CHECKING:  # pragma: no cover
    from ..config import ExperimentConfig
    from ..workflows.compare import CompareResult


def write_compare(result: CompareResult, cfg: ExperimentConfig, n_train: int) -> None:
    """``compare.json``, ``compare_cv.ecsv``, the figures and ``compare.md`` into ``result.output_dir``."""
    out = result.output_dir
    sums = result.summaries
    same_training = len({s.train_hash for s in sums}) == 1
    doc = {
        "slamfw_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "seed": cfg.seed,
        "labels": result.label_names,
        "label_units": result.label_units,
        "n_train": n_train,
        "n_pixels": int(result.wave.size),
        "wave_range": [float(result.wave[0]), float(result.wave[-1])],
        "same_training_set": same_training,
        "normalizer": cfg.normalizer.name if cfg.normalizer else None,
        "inferer": cfg.inferer.name if cfg.inferer else None,
        "emulators": {s.name: s.to_json() for s in sums},
    }
    result.json_path = out / "compare.json"
    with atomic_path(result.json_path) as tmp:
        tmp.write_text(json.dumps(doc, indent=2))
    table = Table({"wave": result.wave, "train_p16": result.train_percentiles[0],
                   "train_p50": result.train_percentiles[1], "train_p84": result.train_percentiles[2]})
    table["wave"].unit = "Angstrom"
    for s in sums:
        table[f"cv_mse_{s.name}"] = s.cv_mse
        table[f"cv_md_{s.name}"] = s.cv_md
    with atomic_path(out / "compare_cv.ecsv") as tmp:
        table.write(tmp, format="ascii.ecsv", overwrite=True)
    if cfg.compare is None or cfg.compare.figures:
        from .compare_plots import plot_all
        result.figures = plot_all(result)
    result.md_path = out / "compare.md"
    with atomic_path(result.md_path) as tmp:
        tmp.write_text(compare_markdown(result, cfg, n_train, same_training))


def _fmt(v: float | None, digits: int = 4) -> str:
    return "-" if v is None or not np.isfinite(v) else f"{v:.{digits}g}"


def summary_table(result: CompareResult) -> str:
    """The headline table: CV quality and costs per emulator, as markdown."""
    rows = ["| emulator | CV | median CV MSE | median CV MD² | training (s) | inference (ms/spectrum) | model (MB) |",
            "|---|---|---|---|---|---|---|"]
    for s in result.summaries:
        d = s.to_json()
        infer = None if s.infer_time_per_spectrum_s is None else 1e3 * s.infer_time_per_spectrum_s
        rows.append(f"| {s.name} | {s.cv_scheme} | {_fmt(d['median_cv_mse'])} | {_fmt(d['median_cv_md2'], 3)} | "
                    f"{s.train_time_s:.1f} | {_fmt(infer, 3)} | {s.model_bytes / 1e6:.2f} |")
    return "\n".join(rows)


def label_table(result: CompareResult, snr_bin: str = "all") -> str:
    """Bias, scatter and robust scatter per label and emulator for one S/N bin, as markdown."""
    cols = ["emulator"]
    for lab in result.label_names:
        cols += [f"{lab} bias", f"{lab} scatter", f"{lab} robust"]
    rows = []
    for s in result.summaries:
        st = s.label_stats
        if snr_bin not in st.get("scatter", {}):
            continue
        row = [s.name]
        for lab in result.label_names:
            row += [_fmt(st[k][snr_bin][lab], 3) for k in ("bias", "scatter", "scatter_robust")]
        rows.append(row)
    if not rows:
        return ""
    return table_to_markdown(Table(rows=rows, names=cols, dtype=[str] * len(cols)))


def compare_markdown(result: CompareResult, cfg: ExperimentConfig, n_train: int, same_training: bool) -> str:
    sums = result.summaries
    first = sums[0]
    lines = [
        "# slamfw method comparison", "",
        f"Emulators: {', '.join(f'`{s.name}`' for s in sums)}. Every one was trained on the same "
        f"{n_train} stars x {result.wave.size} pixels ({result.wave[0]:.0f}-{result.wave[-1]:.0f} A), with "
        f"normaliser `{cfg.normalizer.name if cfg.normalizer else '-'}`, inferer `{cfg.inferer.name if cfg.inferer else '-'}`, seed "
        f"{cfg.seed}, and tested on the same {first.n_test} stars. Each emulator's own run (model, catalogue, "
        f"report) is in `<emulator>/`.", ""]
    if not same_training:
        lines += ["**The training sets differ between emulators** (training-set cleaning depends on the "
                  "emulator); the CV figures are not strictly like for like.", ""]
    lines += ["## Emulation quality and costs", "",
              "CV MSE and CV MD (paper eq. 5-6) are per pixel, in standardised flux units (a constant "
              "model has MSE 1); each emulator's CV scheme is named. Inference time is the inferer's wall "
              "time per test spectrum.", "", summary_table(result), ""]
    labels = label_table(result)
    if labels:
        lines += ["## Labels: inferred - true (converged stars)", "",
                  f"Scatter is the standard deviation (eq. 10), robust is 1.4826 x MAD. Units: "
                  f"{', '.join(f'{n} [{u}]' for n, u in zip(result.label_names, result.label_units))}.", "",
                  labels, ""]
        for b in result.snr_bins:
            t = label_table(result, b)
            if t:
                lines += [f"### S/N {b}", "", t, ""]
        conv = ", ".join(f"{s.name} {s.n_converged}/{s.n_test}" for s in sums)
        lines += [f"Converged: {conv}.", ""]
    else:
        lines += ["The test set has no true labels (or there is none): no label comparison.", ""]
    if result.figures:
        lines += ["## Figures", ""]
        lines += [f"![{p.stem}]({p.name})" for p in result.figures] + [""]
    lines += ["Per-pixel values: `compare_cv.ecsv`; every number above: `compare.json`.", ""]
    return "\n".join(lines)
