"""A whole experiment: read -> prepare -> train (or load) -> infer -> catalogue -> analyzers.

Results land in ``output.dir``: the model file, ``catalog.fits``/``catalog.ecsv``, ``report.md``
and the resolved config ``config.yaml``, which reproduces the run from any directory.
"""
from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ..components.analyzer import AnalysisContext, Report
from ..config import ExperimentConfig, resolve_config, selected, selected_all
from ..data.catalog import make_catalog, write_catalog
from ..data.results import LabelResult
from ..data.spectra import SpectralSet
from ..errors import ConfigError
from ..execution.store import atomic_path
from ..model import SlamfwModel
from .execution import executing
from .infer import fit_prior, infer_chunked, label_spectra, prepare_for_model
from .train import PreparedTraining, TrainResult, source_key, train

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    output_dir: Path
    model: SlamfwModel
    result: LabelResult | None
    test: SpectralSet | None
    reports: list[Report]
    catalog_paths: list[Path]
    model_path: Path | None
    #: ``train_time_s`` (None when the model was loaded) and ``infer_time_per_spectrum_s``.
    timing: dict[str, float | None] = field(default_factory=dict)
    #: The prepared training set (None when the model was loaded).
    train: SpectralSet | None = None


def write_resolved(cfg: ExperimentConfig, out: Path) -> dict[str, Any]:
    """Validate every section and write ``config.yaml`` (absolute paths, selected tables only)."""
    resolved = resolve_config(cfg)
    with atomic_path(out / "config.yaml") as tmp:
        tmp.write_text("# resolved slamfw config: `slamfw run config.yaml` reproduces this run\n"
                       + yaml.safe_dump(resolved, sort_keys=False))
    return resolved


def run_train(cfg: ExperimentConfig) -> tuple[TrainResult, Path]:
    """``slamfw train``: train and save the model into ``output.dir``."""
    out = Path(cfg.output.dir)
    write_resolved(cfg, out)
    with executing(cfg):
        tr = train(cfg)
    return tr, tr.model.save(out / cfg.output.model_file)


def _test_reads_training_source(cfg: ExperimentConfig) -> bool:
    test_sel, train_sel = selected(cfg, "data.test"), selected(cfg, "data.train")
    return test_sel is not None and train_sel is not None and source_key(train_sel) == source_key(test_sel)


def check_test_split(cfg: ExperimentConfig, model_loaded: bool) -> None:
    """Before any training: a test set read from the training data needs held-back stars."""
    if not _test_reads_training_source(cfg):
        return
    if model_loaded:
        raise ConfigError("data.test reads the training data, but the model is loaded from a file "
                          "(emulator.model): the held-back split is unknown. Point data.test at other data.")
    if not cfg.data.train.holdout:
        raise ConfigError("data.test reads the same data as data.train, and no star is held back: "
                          "set data.train.holdout > 0 or point data.test elsewhere")


def read_test(cfg: ExperimentConfig, held_ids: np.ndarray | None) -> SpectralSet | None:
    """The raw test set: ``data.test``, restricted to the held-back stars if it is the training source."""
    test_sel = selected(cfg, "data.test")
    if test_sel is None:
        return None
    raw = test_sel.build().read()
    if raw.labels is not None:
        present = [n for n in cfg.labels if n in raw.label_names]
        if present == list(cfg.labels):
            raw = raw.select_labels(cfg.labels)
        else:
            raw.labels, raw.label_names, raw.label_units = None, [], []
    if _test_reads_training_source(cfg):
        check_test_split(cfg, model_loaded=held_ids is None)
        keep = np.isin(raw.ids, held_ids)
        log.info("test set: %d stars of the training source that were held back (data.train.holdout)",
                 int(keep.sum()))
        if not keep.any():
            raise ConfigError("data.test reads the same data as data.train, and no star was held back: "
                              "set data.train.holdout > 0 or point data.test elsewhere")
        raw = raw.subset(keep)
    return raw


def _load_model(cfg: ExperimentConfig, path: str) -> SlamfwModel:
    model = SlamfwModel.load(path)
    log.info("loaded model %s (%s, %d labels, %d pixels)", path, model.emulator_name,
             len(model.label_names), model.wave.size)
    if list(model.label_names) != list(cfg.labels):
        raise ConfigError(f"labels: the config asks for {cfg.labels} but the model {path} has {model.label_names}")
    return model


def _infer_and_analyse(cfg: ExperimentConfig, model: SlamfwModel, test: SpectralSet, trainset: SpectralSet | None,
                       out: Path) -> tuple[LabelResult, list[Report], list[Path], float]:
    inf_sel = selected(cfg, "inferer")
    if inf_sel is None:
        raise ConfigError("inferer: data.test is set but no inferer is configured")
    t0 = time.perf_counter()
    em = model.error_model
    if em is not None and em.inferer and em.inferer != inf_sel.name:
        log.warning("the model's error model was fitted with the inferer %r; this run infers with %r: <label>_err "
                    "calibrates %r's errors with it", em.inferer, inf_sel.name, inf_sel.name)
    prior_sel = selected(cfg, "prior")
    prior = fit_prior(None if prior_sel is None else prior_sel.build(), model)
    inferer = inf_sel.build()
    result = infer_chunked(model, inferer, test, cfg.output.chunk_size, out / ".checkpoints", prior)
    dt = time.perf_counter() - t0
    log.info("inferred %d spectra in %.1f s (%.1f ms per spectrum)", test.n_stars, dt, 1e3 * dt / test.n_stars)
    table = make_catalog(test.ids, result, model.label_units, snr=test.meta_column("snr"), true_labels=test.labels,
                         ra=test.meta.get("ra"), dec=test.meta.get("dec"))
    paths = [write_catalog(table, out / f"catalog.{fmt}") for fmt in cfg.output.formats]
    ctx = AnalysisContext(label_names=list(model.label_names), label_units=list(model.label_units),
                          model=model, test=test, result=result, train=trainset, output_dir=out,
                          inferer=inferer, prior=prior, seed=cfg.seed,
                          label=functools.partial(label_spectra, model, inferer, prior))
    reports = [sel.build().analyze(ctx) for sel in selected_all(cfg, "analyzers")]
    return result, reports, paths, dt / max(test.n_stars, 1)


def run_experiment(cfg: ExperimentConfig, prepared: PreparedTraining | None = None,
                   test: SpectralSet | None = None) -> RunResult:
    """``slamfw run``: train (or load), infer the test set, write catalogue and report, on the
    config's executor. ``prepared`` and ``test`` (the prepared training and test sets) let
    ``compare`` read and prepare the data once for every emulator."""
    with executing(cfg):
        return _run_experiment(cfg, prepared, test)


def _run_experiment(cfg: ExperimentConfig, prepared: PreparedTraining | None, test: SpectralSet | None) -> RunResult:
    out = Path(cfg.output.dir)
    write_resolved(cfg, out)
    emu_sel = selected(cfg, "emulator")
    loading = emu_sel is not None and bool(emu_sel.core.get("model"))
    check_test_split(cfg, loading)
    held_ids = dropped = model_path = train_time = trainset = None
    if loading:
        model = _load_model(cfg, emu_sel.core["model"])
    else:
        tr = train(cfg, prepared)
        model, held_ids, train_time, trainset, dropped = tr.model, tr.held_ids, tr.train_time_s, tr.train, tr.dropped_ids
        model_path = model.save(out / cfg.output.model_file)
    if test is None:
        raw_test = read_test(cfg, held_ids)
        test = None if raw_test is None else prepare_for_model(raw_test, model)
    reports: list[Report] = []
    catalog_paths: list[Path] = []
    result = None
    timing: dict[str, float | None] = {"train_time_s": train_time}
    if test is not None:
        result, reports, catalog_paths, per_spectrum = _infer_and_analyse(cfg, model, test, trainset, out)
        timing["infer_time_per_spectrum_s"] = per_spectrum
    write_report(out / "report.md", cfg, model, test, result, reports, timing, dropped)
    return RunResult(out, model, result, test, reports, catalog_paths, model_path, timing, trainset)


def write_report(path: Path, cfg: ExperimentConfig, model: SlamfwModel, test: SpectralSet | None,
                 result: LabelResult | None, reports: list[Report], timing: dict[str, Any],
                 cleaned_out: np.ndarray | None = None) -> Path:
    lines = ["# slamfw run report", "",
             f"- emulator: `{model.emulator_name}` trained on {model.train_labels.shape[0]} stars, "
             f"{model.wave.size} pixels ({model.wave[0]:.1f}-{model.wave[-1]:.1f} A)",
             f"- labels: {', '.join(model.label_names)}",
             f"- training-set hash: `{model.train_hash[:16]}`, seed {cfg.seed}"]
    if timing.get("train_time_s") is not None:
        lines.append(f"- training time: {timing['train_time_s']:.1f} s")
    if cleaned_out is not None:
        lines.append(f"- training-set cleaning (paper §4.2) dropped {len(cleaned_out)} star(s)"
                     + (f": {', '.join(map(str, cleaned_out))}" if len(cleaned_out) else ""))
    if result is not None and test is not None:
        lines.append(f"- test set: {test.n_stars} stars, {int(result.converged.sum())} converged; "
                     f"{1e3 * timing['infer_time_per_spectrum_s']:.1f} ms per spectrum")
    lines.append("")
    for rep in reports:
        lines += [rep.to_markdown(), ""]
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines))
    return path
