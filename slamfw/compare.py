"""``slamfw compare``: several emulators under one data set, split, normaliser and inferer.

Each emulator goes through exactly what ``slamfw run`` does, in ``<output.dir>/<emulator>/``
(model, catalogue, report, resolved config): the same reader, hold-out split (seed), pre-processing,
normaliser, inferer and analyzers; only the ``[emulator]`` section differs. Then one report side
by side in ``<output.dir>``:

- ``compare.json``: per emulator ``median_cv_mse``, ``label_scatter`` and ``label_bias`` (per
  label, when the test set has labels), ``train_time_s``, ``infer_time_per_spectrum_s``,
  ``model_bytes``, and more (CV scheme, robust scatter, per-S/N-bin figures);
- ``compare.md``: the same as tables, with the figures;
- ``compare_cv.ecsv``: the per-pixel CV MSE and CV MD of each emulator and the 16/50/84
  percentile training spectra;
- figures (``compare_plots``): the paper's Fig. 2 for every emulator, label scatter and bias per
  S/N bin, and the costs.

CV MSE and CV MD (eq. 5-6, standardised flux) are the emulator's own (``cv_mse_``, ``cv_md_``,
measured as its ``cv_scheme_`` says); emulators without them are cross-validated here by refitting
on ``compare.cv_folds`` folds.
"""
from __future__ import annotations

import copy
import datetime as _dt
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from astropy.table import Table

from . import __version__, plugins
from .config import ExperimentConfig, config_to_dict, validate_config
from .errors import ConfigError
from .interfaces import table_to_markdown
from .metrics import accuracy_by_snr, snr_bins
from .pipeline import RunResult, emulator_params, run_experiment
from .validation import cross_validate_flux

log = logging.getLogger(__name__)


@dataclass
class EmulatorSummary:
    """One emulator's numbers in a comparison. Per-pixel arrays are (P,)."""

    name: str
    output_dir: Path
    cv_mse: np.ndarray
    cv_md: np.ndarray
    cv_scheme: str
    train_time_s: float
    infer_time_per_spectrum_s: float | None
    model_bytes: int
    train_hash: str
    n_test: int = 0
    n_converged: int = 0
    #: statistic -> bin -> label -> value; statistics "bias", "scatter", "scatter_robust"; bin "all"
    #: and the S/N bins
    label_stats: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        stats = self.label_stats
        return {
            "median_cv_mse": float(np.nanmedian(self.cv_mse)),
            "median_cv_md2": float(np.nanmedian(self.cv_md ** 2)),
            "cv_scheme": self.cv_scheme,
            "label_scatter": stats.get("scatter", {}).get("all", {}),
            "label_bias": stats.get("bias", {}).get("all", {}),
            "label_scatter_robust": stats.get("scatter_robust", {}).get("all", {}),
            "label_scatter_by_snr": {b: v for b, v in stats.get("scatter", {}).items() if b != "all"},
            "label_bias_by_snr": {b: v for b, v in stats.get("bias", {}).items() if b != "all"},
            "label_scatter_robust_by_snr": {b: v for b, v in stats.get("scatter_robust", {}).items() if b != "all"},
            "n_test": self.n_test,
            "n_converged": self.n_converged,
            "train_time_s": self.train_time_s,
            "infer_time_per_spectrum_s": self.infer_time_per_spectrum_s,
            "model_bytes": self.model_bytes,
            "train_hash": self.train_hash,
            "output_dir": str(self.output_dir),
        }


@dataclass
class CompareResult:
    output_dir: Path
    summaries: list[EmulatorSummary]
    wave: np.ndarray                  # (P,)
    train_percentiles: np.ndarray     # (3, P): 16, 50, 84 percentile training spectra
    label_names: list[str]
    label_units: list[str]
    snr_bins: list[str]
    json_path: Path | None = None
    md_path: Path | None = None
    figures: list[Path] = field(default_factory=list)


def _emulator_names(cfg: ExperimentConfig, emulators: list[str] | None) -> list[str]:
    names = list(emulators) if emulators else (list(cfg.compare.emulators) if cfg.compare else [])
    names = [n.strip() for n in names if n.strip()]
    if not names:
        raise ConfigError("compare: name the emulators, with --emulators slam,cannon,krr or "
                          "compare.emulators = [...] in the config")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"compare.emulators: {dupes} listed more than once")
    return names


def _params_for(cfg: ExperimentConfig, name: str) -> dict[str, Any]:
    """The ``[emulator]`` section's params when it names this emulator, then ``compare.params.<name>``."""
    params = cfg.emulator.params() if cfg.emulator is not None and cfg.emulator.name == name else {}
    if cfg.compare is not None:
        params.update(cfg.compare.params.get(name, {}))
    return params


def _label_stats(run: RunResult, label_names: list[str]) -> tuple[dict[str, dict[str, dict[str, float]]], list[str]]:
    test, res = run.test, run.result
    if test is None or res is None or test.labels is None:
        return {}, []
    use = res.converged & np.all(np.isfinite(test.labels), axis=1) & np.all(np.isfinite(res.labels), axis=1)
    snr = test.meta_column("snr")
    stats: dict[str, dict[str, dict[str, float]]] = {"bias": {}, "scatter": {}, "scatter_robust": {}}
    for acc in accuracy_by_snr(res.labels, test.labels, use, snr):
        for key, values in (("bias", acc.bias), ("scatter", acc.scatter), ("scatter_robust", acc.robust)):
            stats[key][acc.name] = {lab: float(v) for lab, v in zip(label_names, values)}
    return stats, [name for name, _ in snr_bins(snr, None)]


def compare_emulators(cfg: ExperimentConfig, emulators: list[str] | None = None) -> CompareResult:
    """Run the experiment once per emulator, then write ``compare.json``, ``compare.md`` and figures.

    ``emulators`` overrides ``cfg.compare.emulators``. Raises :class:`ConfigError` before any
    training if an emulator is unknown or its parameters are invalid.
    """
    names = _emulator_names(cfg, emulators)
    unknown = sorted(set(cfg.compare.refit_cv) - set(names)) if cfg.compare else []
    if unknown:
        raise ConfigError(f"compare.refit_cv: {unknown} are not among the compared emulators {names}")
    unused = sorted(set(cfg.compare.params) - set(names)) if cfg.compare else []
    if unused:
        log.warning("compare.params: %s not compared in this run; their parameters are unused", unused)
    if cfg.emulator is not None and cfg.emulator.model:
        raise ConfigError("emulator.model: compare trains every emulator on the same data; remove emulator.model")
    if cfg.data.train is None:
        raise ConfigError("data.train: compare needs training data")
    params = {n: _params_for(cfg, n) for n in names}
    for n in names:  # fail fast, before hours of training
        plugins.create("emulator", n, params[n], where=f"compare.params.{n}.name")
    out = Path(cfg.output.dir)
    out.mkdir(parents=True, exist_ok=True)
    base = config_to_dict(cfg)
    base.pop("compare", None)
    cv_folds = cfg.compare.cv_folds if cfg.compare else 5
    summaries: list[EmulatorSummary] = []
    first: RunResult | None = None
    bins: list[str] = []
    for i, name in enumerate(names):
        raw = copy.deepcopy(base)
        raw["emulator"] = {"name": name, **params[name]}
        raw["output"]["dir"] = str(out / name)
        sub = validate_config(raw)
        log.info("compare: emulator %d/%d: %s", i + 1, len(names), name)
        run = run_experiment(sub)
        first = first or run
        emu = run.model.emulator
        refit = name in (cfg.compare.refit_cv if cfg.compare else [])
        if hasattr(emu, "cv_mse_") and hasattr(emu, "cv_md_") and not refit:
            cv_mse, cv_md = np.asarray(emu.cv_mse_, float), np.asarray(emu.cv_md_, float)
            scheme = str(getattr(emu, "cv_scheme_", "own"))
        else:
            log.info("compare: cross-validating %s by refitting (%d folds)", name, cv_folds)
            emu_params = emulator_params(sub)
            assert run.train is not None
            cv_mse, cv_md = cross_validate_flux(
                lambda: plugins.create("emulator", name, emu_params), run.train.labels, run.train.flux,
                run.train.ivar, cv_folds, cfg.seed)
            scheme = f"{cv_folds}-fold (refit by compare)"
        stats, bins = _label_stats(run, list(run.model.label_names))
        summaries.append(EmulatorSummary(
            name=name, output_dir=run.output_dir, cv_mse=cv_mse, cv_md=cv_md, cv_scheme=scheme,
            train_time_s=float(run.timing.get("train_time_s") or 0.0),
            infer_time_per_spectrum_s=run.timing.get("infer_time_per_spectrum_s"),
            model_bytes=run.model_path.stat().st_size if run.model_path else 0,
            train_hash=run.model.train_hash,
            n_test=run.test.n_stars if run.test is not None else 0,
            n_converged=int(run.result.converged.sum()) if run.result is not None else 0,
            label_stats=stats))
    assert first is not None and first.train is not None
    train = first.train
    flux = np.where(train.ivar > 0, train.flux, np.nan)
    result = CompareResult(
        output_dir=out, summaries=summaries, wave=np.asarray(train.wave, float),
        train_percentiles=np.nanpercentile(flux, [16, 50, 84], axis=0),
        label_names=list(first.model.label_names), label_units=list(first.model.label_units), snr_bins=bins)
    write_compare(result, cfg, n_train=train.n_stars)
    return result


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
        "normalizer": cfg.normalizer.name,
        "inferer": cfg.inferer.name if cfg.inferer else None,
        "emulators": {s.name: s.to_json() for s in sums},
    }
    result.json_path = out / "compare.json"
    result.json_path.write_text(json.dumps(doc, indent=2))
    table = Table({"wave": result.wave, "train_p16": result.train_percentiles[0],
                   "train_p50": result.train_percentiles[1], "train_p84": result.train_percentiles[2]})
    table["wave"].unit = "Angstrom"
    for s in sums:
        table[f"cv_mse_{s.name}"] = s.cv_mse
        table[f"cv_md_{s.name}"] = s.cv_md
    table.write(out / "compare_cv.ecsv", overwrite=True)
    if cfg.compare is None or cfg.compare.figures:
        from .compare_plots import plot_all
        result.figures = plot_all(result)
    result.md_path = out / "compare.md"
    result.md_path.write_text(compare_markdown(result, cfg, n_train, same_training))


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
        f"normaliser `{cfg.normalizer.name}`, inferer `{cfg.inferer.name if cfg.inferer else '-'}`, seed "
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
