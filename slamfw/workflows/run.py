"""A whole experiment: read -> prepare -> train (or load, or reuse) -> infer -> catalogue -> analyzers.

Results land in ``output.dir``: the model file, ``catalog.fits``/``catalog.ecsv``, ``report.md``
and the resolved config ``config.yaml``, which reproduces the run from any directory. Every output
path is checked before any work, one run at a time writes into the folder, and a completion marker
is written last (:mod:`slamfw.workflows.outdir`). A model file already in the folder that was
trained on the same prepared training set with the same settings is reused, not retrained
(:mod:`slamfw.workflows.reuse`).
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
from ..data.files import REJECTED_FILE, write_rejected
from ..data.results import LabelResult
from ..data.spectra import SpectralSet
from .. import registry
from ..errors import ConfigError
from ..execution.store import atomic_path
from ..model import SlamfwModel
from ..stats.quality import flagged_fraction, warn_if_unlike_training
from .execution import executing
from .infer import (
    fit_prior, infer_chunked, label_spectra, prepare_for_model, stars_without_prior, warn_stars_without_prior,
)
from .outdir import OutputDir, forced, forcing, plan_outputs
from .reuse import differences_text, ignored_for_a_loaded_model, reusable_model, training_record
from .train import (
    PreparedTraining, TrainResult, prepare_training, remove_training_checkpoints, source_key, train,
)

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
    #: True when the model file already in ``output.dir`` was reused instead of training.
    model_reused: bool = False


def write_resolved(cfg: ExperimentConfig, out: Path) -> dict[str, Any]:
    """Validate every section and write ``config.yaml`` (absolute paths, selected tables only)."""
    resolved = resolve_config(cfg)
    with atomic_path(out / "config.yaml") as tmp:
        tmp.write_text("# resolved slamfw config: `slamfw run config.yaml` reproduces this run\n"
                       + yaml.safe_dump(resolved, sort_keys=False))
    return resolved


def run_train(cfg: ExperimentConfig, force: bool | None = None) -> tuple[TrainResult, Path]:
    """``slamfw train``: train and save the model into ``output.dir`` (always trains).

    ``force``: overwrite existing output files that slamfw did not write (None: as the enclosing
    :func:`~slamfw.workflows.outdir.forcing` block says, else no)."""
    plan = plan_outputs(cfg, "train", force)
    resolve_config(cfg)   # every section valid before the folder is touched
    check_training_config(cfg)
    with forcing(forced(force)), OutputDir(plan) as rd:
        write_resolved(cfg, plan.dir)
        with executing(cfg):
            prepared = prepare_training(cfg)
            tr = train(cfg, prepared, keep_checkpoints=True)
        tr.model.components["training"] = training_record(cfg, prepared)
        assert plan.model_path is not None
        path = tr.model.save(plan.model_path)
        rd.add(path)
        remove_training_checkpoints(cfg)     # only now: a failed write (a full disk) keeps the training
    return tr, path


def check_training_config(cfg: ExperimentConfig) -> None:
    """What :func:`~slamfw.workflows.train.train` checks before any work, checked before reading."""
    if selected(cfg, "emulator") is None:
        raise ConfigError("emulator: no emulator section in the config")
    if cfg.calibration.enabled and cfg.calibration.inferer:
        registry.get_component("inferer", cfg.calibration.inferer, where="calibration.inferer")
    inf_sel = selected(cfg, "inferer")
    if inf_sel is not None:
        inf_sel.build()      # an inferer that cannot run here (lm's device) says so before the training


def _test_reads_training_source(cfg: ExperimentConfig) -> bool:
    test_sel, train_sel = selected(cfg, "data.test"), selected(cfg, "data.train")
    return test_sel is not None and train_sel is not None and source_key(train_sel) == source_key(test_sel)


def check_test_split(cfg: ExperimentConfig, model_loaded: bool) -> None:
    """Before any training: a test set needs an inferer, and one read from the training data needs
    held-back stars."""
    if selected(cfg, "data.test") is not None and selected(cfg, "inferer") is None:
        raise ConfigError("inferer: data.test is set but no inferer is configured (add an [inferer] section, e.g. "
                          "name = \"lm\")")
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
    reader = test_sel.build()
    raw = reader.read()
    write_rejected(reader, Path(cfg.output.dir) / REJECTED_FILE, "test", force=forced())
    if raw.labels is not None:
        present = [n for n in cfg.labels if n in raw.label_names]
        raw = raw.select_labels(cfg.labels) if present == list(cfg.labels) else raw.without_labels()
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
    ignored = ignored_for_a_loaded_model(cfg, model)
    if ignored:
        log.warning("emulator.model: the model's own emulator, pre-processing and normaliser are used, not the "
                    "config's, which differ: %s", differences_text(ignored))
    return model


def _infer_and_analyse(cfg: ExperimentConfig, model: SlamfwModel, test: SpectralSet, trainset: SpectralSet | None,
                       out: Path) -> tuple[LabelResult, list[Report], list[Path], float]:
    inf_sel = selected(cfg, "inferer")
    assert inf_sel is not None, "check_test_split refuses a test set without an inferer, before any work"
    t0 = time.perf_counter()
    em = model.error_model
    if em is not None and em.inferer and em.inferer != inf_sel.name:
        log.warning("the model's error model was fitted with the inferer %r; this run infers with %r: <label>_err "
                    "calibrates %r's errors with it", em.inferer, inf_sel.name, inf_sel.name)
    prior_sel = selected(cfg, "prior")
    prior = fit_prior(None if prior_sel is None else prior_sel.build(), model)
    inferer = inf_sel.build()
    warn_stars_without_prior(prior, stars_without_prior(prior, test.ids), test.n_stars, "the test set")
    result = infer_chunked(model, inferer, test, cfg.output.chunk_size, out / ".checkpoints", prior)
    dt = time.perf_counter() - t0
    log.info("inferred %d spectra in %.1f s (%.1f ms per spectrum)", test.n_stars, dt, 1e3 * dt / test.n_stars)
    warn_if_unlike_training(*flagged_fraction(result.extra), log, "the test set")
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
                   test: SpectralSet | None = None, force: bool | None = None) -> RunResult:
    """``slamfw run``: train (or load, or reuse the finished model in ``output.dir``), infer the
    test set, write catalogue and report, on the config's executor. ``prepared`` and ``test`` (the
    prepared training and test sets) let ``compare`` read and prepare the data once for every
    emulator. ``force``: overwrite existing output files that slamfw did not write (None: as the
    enclosing :func:`~slamfw.workflows.outdir.forcing` block says, else no)."""
    plan = plan_outputs(cfg, "run", force)   # before any work
    resolve_config(cfg)
    emu_sel = selected(cfg, "emulator")
    if emu_sel is None or not emu_sel.core.get("model"):
        check_training_config(cfg)
    with forcing(forced(force)), OutputDir(plan) as rd, executing(cfg):
        return _run_experiment(cfg, prepared, test, rd)


def _run_experiment(cfg: ExperimentConfig, prepared: PreparedTraining | None, test: SpectralSet | None,
                    rd: OutputDir) -> RunResult:
    out = Path(cfg.output.dir)
    write_resolved(cfg, out)
    emu_sel = selected(cfg, "emulator")
    loading = emu_sel is not None and bool(emu_sel.core.get("model"))
    check_test_split(cfg, loading)
    held_ids = dropped = model_path = train_time = trainset = None
    reused = False
    if loading:
        model = _load_model(cfg, emu_sel.core["model"])
    else:
        prepared = prepared or prepare_training(cfg)
        assert rd.plan.model_path is not None
        found = reusable_model(cfg, prepared, rd.plan.model_path)
        if found is not None:
            reused, model, held_ids = True, found, prepared.held_ids
            if cfg.data.train.clean is not None and cfg.data.train.clean.enabled:
                kept = np.isin(prepared.train.ids, model.train_ids)
                trainset, dropped = prepared.train.subset(kept), prepared.train.ids[~kept]
            else:
                trainset = prepared.train
            model_path = rd.plan.model_path
            rd.add(model_path)
        else:
            tr = train(cfg, prepared, keep_checkpoints=True)
            model, held_ids, train_time, trainset, dropped = (tr.model, tr.held_ids, tr.train_time_s, tr.train,
                                                              tr.dropped_ids)
            model.components["training"] = training_record(cfg, prepared)
            model_path = model.save(rd.plan.model_path)
            rd.add(model_path)
            remove_training_checkpoints(cfg)
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
    write_report(out / "report.md", cfg, model, test, result, reports, timing, dropped,
                 reused_from=model_path if reused else None)
    return RunResult(out, model, result, test, reports, catalog_paths, model_path, timing, trainset, reused)


def write_report(path: Path, cfg: ExperimentConfig, model: SlamfwModel, test: SpectralSet | None,
                 result: LabelResult | None, reports: list[Report], timing: dict[str, Any],
                 cleaned_out: np.ndarray | None = None, reused_from: Path | None = None) -> Path:
    lines = ["# slamfw run report", "",
             f"- emulator: `{model.emulator_name}` trained on {model.train_labels.shape[0]} stars, "
             f"{model.wave.size} pixels ({model.wave[0]:.1f}-{model.wave[-1]:.1f} A)",
             f"- labels: {', '.join(model.label_names)}",
             f"- training-set hash: `{model.train_hash[:16]}`, seed {cfg.seed}"]
    if timing.get("train_time_s") is not None:
        lines.append(f"- training time: {timing['train_time_s']:.1f} s")
    if reused_from is not None:
        lines.append(f"- model: reused from `{reused_from.name}` (trained {model.created or 'earlier'} on the same "
                     f"training set with the same settings), not retrained")
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
