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
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..config import ExperimentConfig, config_to_dict, selected, validate_config
from ..errors import ConfigError
from ..reporting.compare_report import write_compare
from ..stats.crossval import cross_validate_flux
from ..stats.metrics import accuracy_by_snr, snr_bins
from .execution import executing
from .outdir import OutputDir, forced, forcing, plan_outputs
from .run import RunResult, run_experiment
from .train import prepare_training

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


def _config_for(cfg: ExperimentConfig, base: dict[str, Any], name: str, out: Path) -> ExperimentConfig:
    """The experiment with ``emulator.name = name`` (its table in the ``[emulator]`` section applies),
    writing into ``out/name``; relative paths stay relative to the original config file."""
    raw = copy.deepcopy(base)
    raw.setdefault("emulator", {})["name"] = name
    raw["output"]["dir"] = str(out / name)
    sub = validate_config(raw, cfg._base_dir, cfg._overridden)
    selected(sub, "emulator")  # validates the emulator's parameters: fail before any training
    return sub


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


def _check_cv_folds(folds: int, n_stars: int) -> None:
    """A ConfigError when ``compare.cv_folds`` leaves a fold without a star."""
    if folds > n_stars:
        raise ConfigError(f"compare.cv_folds = {folds} is more than the {n_stars} training stars: each fold needs "
                          f"at least one")


def _flux_cv(name: str, run: RunResult, cfg: ExperimentConfig) -> tuple[np.ndarray, np.ndarray, str]:
    """The emulator's per-pixel CV MSE and MD (P,) and how they were measured: its own, or
    refitted here on ``compare.cv_folds`` folds (no ``cv_mse_``, or named in ``compare.refit_cv``)."""
    emu = run.model.emulator
    cv_folds = cfg.compare.cv_folds if cfg.compare else 5
    refit = name in (cfg.compare.refit_cv if cfg.compare else [])
    if hasattr(emu, "cv_mse_") and hasattr(emu, "cv_md_") and not refit:
        return np.asarray(emu.cv_mse_, float), np.asarray(emu.cv_md_, float), str(getattr(emu, "cv_scheme_", "own"))
    log.info("compare: cross-validating %s by refitting (%d folds)", name, cv_folds)
    assert run.train is not None
    _check_cv_folds(cv_folds, run.train.n_stars)
    cv_mse, cv_md = cross_validate_flux(emu, run.train.labels, run.train.flux, run.train.ivar, cv_folds, cfg.seed)
    return cv_mse, cv_md, f"{cv_folds}-fold (refit by compare)"


def _summary(name: str, run: RunResult, cfg: ExperimentConfig) -> tuple[EmulatorSummary, list[str]]:
    cv_mse, cv_md, scheme = _flux_cv(name, run, cfg)
    stats, bins = _label_stats(run, list(run.model.label_names))
    return EmulatorSummary(
        name=name, output_dir=run.output_dir, cv_mse=cv_mse, cv_md=cv_md, cv_scheme=scheme,
        train_time_s=float(run.timing.get("train_time_s") or 0.0),
        infer_time_per_spectrum_s=run.timing.get("infer_time_per_spectrum_s"),
        model_bytes=run.model_path.stat().st_size if run.model_path else 0,
        train_hash=run.model.train_hash,
        n_test=run.test.n_stars if run.test is not None else 0,
        n_converged=int(run.result.converged.sum()) if run.result is not None else 0,
        label_stats=stats), bins


def _check_compare_config(cfg: ExperimentConfig, names: list[str]) -> None:
    unknown = sorted(set(cfg.compare.refit_cv) - set(names)) if cfg.compare else []
    if unknown:
        raise ConfigError(f"compare.refit_cv: {unknown} are not among the compared emulators {names}")
    if cfg.emulator is not None and cfg.emulator.model:
        raise ConfigError("emulator.model: compare trains every emulator on the same data; remove emulator.model")
    if cfg.data.train is None:
        raise ConfigError("data.train: compare needs training data")


def compare_emulators(cfg: ExperimentConfig, emulators: list[str] | None = None, force: bool | None = None
                      ) -> CompareResult:
    """Run the experiment once per emulator, then write ``compare.json``, ``compare.md`` and figures.

    ``emulators`` overrides ``cfg.compare.emulators``. Raises :class:`ConfigError` before any
    training if an emulator is unknown or its parameters are invalid, and
    :class:`~slamfw.errors.OutputError` if the folder (or an emulator's folder) is locked by
    another run or holds files slamfw did not write (unless ``force``; None: as the enclosing
    :func:`~slamfw.workflows.outdir.forcing` block says, else no). The top folder is held by a lock
    and marked complete last, like each emulator's run folder.
    """
    names = _emulator_names(cfg, emulators)
    _check_compare_config(cfg, names)
    out = Path(cfg.output.dir)
    base = config_to_dict(cfg)
    base.pop("compare", None)
    subs = {n: _config_for(cfg, base, n, out) for n in names}  # fail fast, before hours of training
    plan = plan_outputs(cfg, "compare", force)                 # the folder and its files,
    for name in names:                                         # and each emulator's folder
        plan_outputs(subs[name], "run", force)
    with forcing(forced(force)), OutputDir(plan):
        return _compare(cfg, names, subs, out)


def _compare(cfg: ExperimentConfig, names: list[str], subs: dict[str, ExperimentConfig], out: Path
             ) -> CompareResult:
    summaries: list[EmulatorSummary] = []
    first: RunResult | None = None
    bins: list[str] = []
    with executing(cfg):
        prepared = prepare_training(cfg)   # read and prepared once, for every emulator
        if cfg.compare and cfg.compare.refit_cv:   # before any training (sklearn's error came after all of it)
            _check_cv_folds(cfg.compare.cv_folds, prepared.train.n_stars)
        for i, name in enumerate(names):
            log.info("compare: emulator %d/%d: %s", i + 1, len(names), name)
            run = run_experiment(subs[name], prepared, first.test if first else None)
            first = first or run
            summary, bins = _summary(name, run, cfg)
            summaries.append(summary)
    assert first is not None and first.train is not None
    train = first.train
    flux = np.where(train.ivar > 0, train.flux, np.nan)
    result = CompareResult(
        output_dir=out, summaries=summaries, wave=np.asarray(train.wave, float),
        train_percentiles=np.nanpercentile(flux, [16, 50, 84], axis=0),
        label_names=list(first.model.label_names), label_units=list(first.model.label_units), snr_bins=bins)
    write_compare(result, cfg, n_train=train.n_stars)
    return result
