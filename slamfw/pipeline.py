"""The experiment flow: read -> prepare -> train (or load) -> infer -> catalogue -> analyzers.

Every step goes through the registries; the core names no plugin. Results land in
``output.dir``: the model file, ``catalog.fits``/``catalog.ecsv``, ``report.md`` and the resolved
config ``config.yaml``. Inference runs in chunks saved under ``output.dir/.checkpoints``: a run
that is killed and restarted reuses the finished chunks.
"""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from . import plugins
from .catalog import make_catalog, write_catalog
from .cleaning import clean_training_set
from .config import DataSpec, ExperimentConfig, PreprocessConfig, config_to_dict
from .errors import ConfigError
from .interfaces import AnalysisContext, Inferer, LabelResult, Report
from .model import SlamfwModel
from .parallel import chunks
from .preprocess import prepare
from .spectra import SpectralSet
from .standardize import Standardizer, pixel_namer

log = logging.getLogger(__name__)


# ------------------------------------------------------------------ components from config
def component_params(kind: str, name: str, params: dict[str, Any], where: str) -> dict[str, Any]:
    """The plugin's validated parameters (defaults filled in) for a config section."""
    return plugins.create(kind, name, params, where=where).get_params()


def resolve_config(cfg: ExperimentConfig) -> dict[str, Any]:
    """The config as a dict with every component's parameters validated and defaults filled in.

    Raises :class:`ConfigError` naming the dotted key of any unknown plugin or bad parameter.
    """
    out = config_to_dict(cfg)
    for role in ("train", "test"):
        spec: DataSpec | None = getattr(cfg.data, role)
        if spec is not None:
            params = component_params("reader", spec.reader, spec.params(), f"data.{role}.reader")
            out["data"][role] = {"reader": spec.reader, **{k: v for k, v in out["data"][role].items()
                                                          if k in ("holdout", "clean")}, **params}
    for section in ("normalizer", "emulator", "inferer"):
        spec = getattr(cfg, section)
        if spec is not None:
            raw = emulator_params(cfg) if section == "emulator" else spec.params()
            params = component_params(section, spec.name, raw, f"{section}.name")
            extra = {"model": spec.model} if section == "emulator" and spec.model else {}
            out[section] = {"name": spec.name, **extra, **params}
    out["analyzers"] = [{"name": a.name, **component_params("analyzer", a.name, a.params(), f"analyzers.{i}.name")}
                        for i, a in enumerate(cfg.analyzers)]
    return out


def emulator_params(cfg: ExperimentConfig) -> dict[str, Any]:
    """The emulator section's params, with ``random_state`` taken from ``seed`` unless set."""
    assert cfg.emulator is not None
    params = cfg.emulator.params()
    cls = plugins.get_component("emulator", cfg.emulator.name, "emulator.name")
    if "random_state" in cls.Params.model_fields and "random_state" not in params:
        params["random_state"] = cfg.seed
    return params


def _reader(spec: DataSpec, role: str):
    return plugins.create("reader", spec.reader, spec.params(), where=f"data.{role}.reader")


def holdout_mask(ids: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """(N,) bool, True for the ``round(fraction * N)`` stars held back; fixed by ids and seed."""
    n = ids.size
    n_hold = int(round(fraction * n))
    held = np.zeros(n, bool)
    if n_hold:
        order = np.argsort(ids, kind="stable")
        pick = np.random.default_rng(seed).permutation(n)[:n_hold]
        held[order[pick]] = True
    return held


def _source_key(spec: DataSpec) -> tuple[str, str]:
    path = spec.params().get("path")
    return spec.reader, str(Path(path).resolve()) if isinstance(path, str) else json.dumps(spec.params(), sort_keys=True)


def check_pixels(train: SpectralSet) -> None:
    """Error naming the pixel (and wavelength) that is constant or unusable across the training set."""
    Standardizer(pixel_namer(train.wave)).fit(train.flux, train.ivar > 0)


# ------------------------------------------------------------------ training
@dataclass
class TrainResult:
    model: SlamfwModel
    train: SpectralSet
    held_ids: np.ndarray
    dropped_ids: np.ndarray | None = None  # stars removed by training-set cleaning; None: it did not run
    train_time_s: float = 0.0


def train(cfg: ExperimentConfig) -> TrainResult:
    """Read, prepare and (optionally) clean the training set, fit the emulator, build the model.

    The emulator may keep finished pieces of its training under ``output.dir/.checkpoints``
    (``Emulator.workdir``), so a killed training resumes; they are removed once it succeeds.
    """
    if cfg.data.train is None:
        raise ConfigError("data.train: no training data configured (or set emulator.model to load one)")
    if cfg.emulator is None:
        raise ConfigError("emulator: no emulator section in the config")
    spec = cfg.data.train
    raw = _reader(spec, "train").read().select_labels(cfg.labels).drop_unlabelled("training set")
    held = holdout_mask(raw.ids, spec.holdout, cfg.seed)
    if held.any():
        log.info("training set: holding back %d of %d stars for testing (holdout=%g, seed=%d)",
                 int(held.sum()), raw.n_stars, spec.holdout, cfg.seed)
    normalizer = plugins.create("normalizer", cfg.normalizer.name, cfg.normalizer.params(), "normalizer.name")
    trainset = prepare(raw.subset(~held), cfg.preprocess, normalizer, what="training set")
    check_pixels(trainset)
    emulator = plugins.create("emulator", cfg.emulator.name, emulator_params(cfg), "emulator.name")
    inferer = make_inferer(cfg)
    dropped = None
    t0 = time.perf_counter()
    if spec.clean is not None and spec.clean.enabled:
        if inferer is None:
            raise ConfigError("data.train.clean needs an inferer section to predict the held-out labels")
        keep, _ = clean_training_set(emulator, inferer, trainset, spec.clean.folds, spec.clean.nsigma, cfg.seed)
        dropped = trainset.ids[~keep]
        trainset = trainset.subset(keep)
    log.info("training %s on %d stars x %d pixels", cfg.emulator.name, trainset.n_stars, trainset.n_pixels)
    workdir = Path(cfg.output.dir) / ".checkpoints" / "train"
    emulator.workdir = workdir
    emulator.fit(trainset.labels, trainset.flux, trainset.ivar)
    emulator.workdir = None
    shutil.rmtree(workdir, ignore_errors=True)
    elapsed = time.perf_counter() - t0
    log.info("training took %.1f s", elapsed)
    reader_params = {k: v for k, v in component_params("reader", spec.reader, spec.params(), "data.train.reader").items()
                     if k not in ("path", "where")}  # how to read, not which stars
    model = SlamfwModel(
        emulator=emulator, emulator_name=cfg.emulator.name, wave=trainset.wave,
        label_names=list(trainset.label_names), label_units=list(trainset.label_units),
        train_labels=trainset.labels, train_ids=trainset.ids,
        components={
            "reader": {"name": spec.reader, "params": reader_params},
            "normalizer": {"name": cfg.normalizer.name, "params": normalizer.get_params()},
            "inferer": {"name": cfg.inferer.name if cfg.inferer else "", "params": inferer.get_params() if inferer else {}},
        },
        preprocess=cfg.preprocess.model_dump(), train_hash=trainset.fingerprint())
    return TrainResult(model, trainset, raw.ids[held], dropped, elapsed)


def make_inferer(cfg: ExperimentConfig) -> Inferer | None:
    if cfg.inferer is None:
        return None
    return plugins.create("inferer", cfg.inferer.name, cfg.inferer.params(), "inferer.name")


# ------------------------------------------------------------------ inference
def prepare_for_model(raw: SpectralSet, model: SlamfwModel, what: str = "test set") -> SpectralSet:
    """Prepare spectra exactly like the model's training set, on the model's grid."""
    norm = model.components.get("normalizer", {"name": "none", "params": {}})
    normalizer = plugins.create("normalizer", norm["name"], norm["params"], "model normalizer")
    return prepare(raw, PreprocessConfig(**model.preprocess), normalizer, grid=model.wave, what=what)


def _checkpoint_key(model: SlamfwModel, inferer: Inferer, data: SpectralSet) -> str:
    h = hashlib.sha256()
    h.update(model.train_hash.encode())
    h.update(json.dumps(model.emulator.get_params(), sort_keys=True, default=str).encode())
    h.update(json.dumps([type(inferer).__name__, inferer.get_params()], sort_keys=True, default=str).encode())
    h.update(data.fingerprint().encode())
    return h.hexdigest()[:16]


def infer_chunked(model: SlamfwModel, inferer: Inferer, data: SpectralSet, chunk_size: int = 500,
                  checkpoint_dir: str | Path | None = None) -> LabelResult:
    """Infer ``data`` in chunks of ``chunk_size`` stars; finished chunks are saved and reused."""
    parts: list[LabelResult] = []
    ckpt = None
    if checkpoint_dir is not None:
        ckpt = Path(checkpoint_dir) / _checkpoint_key(model, inferer, data)
        ckpt.mkdir(parents=True, exist_ok=True)
    spans = chunks(data.n_stars, chunk_size)
    for k, (s, e) in enumerate(spans):
        path = ckpt / f"chunk_{k:05d}.npz" if ckpt else None
        if path is not None and path.is_file():
            with np.load(path, allow_pickle=False) as z:
                parts.append(LabelResult(label_names=list(model.label_names),
                                         **{a: z[a] for a in LabelResult.ARRAYS if a in z.files}))
            log.info("inference: chunk %d/%d reused from %s", k + 1, len(spans), path)
            continue
        log.info("inference: chunk %d/%d (stars %d-%d)", k + 1, len(spans), s, e - 1)
        res = inferer.infer(model, data.flux[s:e], data.weight_ivar[s:e])
        if path is not None:
            tmp = path.with_name("tmp-" + path.name)
            np.savez(tmp, **{a: getattr(res, a) for a in LabelResult.ARRAYS if getattr(res, a) is not None})
            tmp.replace(path)
        parts.append(res)
    result = LabelResult.concatenate(parts)
    if ckpt is not None:
        shutil.rmtree(ckpt, ignore_errors=True)
    return result


# ------------------------------------------------------------------ a whole run
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


def _write_resolved(cfg: ExperimentConfig, out: Path) -> dict[str, Any]:
    resolved = resolve_config(cfg)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(
        "# resolved slamfw config: `slamfw run config.yaml` reproduces this run\n"
        + yaml.safe_dump(resolved, sort_keys=False))
    return resolved


def run_train(cfg: ExperimentConfig) -> tuple[TrainResult, Path]:
    """``slamfw train``: train and save the model into ``output.dir``."""
    out = Path(cfg.output.dir)
    _write_resolved(cfg, out)
    tr = train(cfg)
    return tr, tr.model.save(out / cfg.output.model_file)


def read_test(cfg: ExperimentConfig, held_ids: np.ndarray | None) -> SpectralSet | None:
    """The raw test set: ``data.test``, restricted to the held-back stars if it is the training source."""
    spec = cfg.data.test
    if spec is None:
        return None
    raw = _reader(spec, "test").read()
    if raw.labels is not None:
        present = [n for n in cfg.labels if n in raw.label_names]
        if present == list(cfg.labels):
            raw = raw.select_labels(cfg.labels)
        else:
            raw.labels, raw.label_names, raw.label_units = None, [], []
    train = cfg.data.train
    if train is not None and _source_key(train) == _source_key(spec):
        if held_ids is None:
            raise ConfigError("data.test reads the training data, but the model was loaded from a file: "
                              "the held-back split is unknown. Point data.test at other data.")
        keep = np.isin(raw.ids, held_ids)
        log.info("test set: %d stars of the training source that were held back (data.train.holdout)",
                 int(keep.sum()))
        if not keep.any():
            raise ConfigError("data.test reads the same data as data.train, and no star was held back: "
                              "set data.train.holdout > 0 or point data.test elsewhere")
        raw = raw.subset(keep)
    return raw


def run_experiment(cfg: ExperimentConfig) -> RunResult:
    """``slamfw run``: train (or load), infer the test set, write catalogue and report."""
    out = Path(cfg.output.dir)
    _write_resolved(cfg, out)
    held_ids = None
    dropped = None
    model_path = None
    train_time = None
    trainset = None
    if cfg.emulator is not None and cfg.emulator.model:
        model = SlamfwModel.load(cfg.emulator.model)
        log.info("loaded model %s (%s, %d labels, %d pixels)", cfg.emulator.model, model.emulator_name,
                 len(model.label_names), model.wave.size)
        if list(model.label_names) != list(cfg.labels):
            raise ConfigError(f"labels: the config asks for {cfg.labels} but the model {cfg.emulator.model} "
                              f"has {model.label_names}")
    else:
        tr = train(cfg)
        model, held_ids, train_time, trainset = tr.model, tr.held_ids, tr.train_time_s, tr.train
        dropped = tr.dropped_ids
        model_path = model.save(out / cfg.output.model_file)
    raw_test = read_test(cfg, held_ids)
    reports: list[Report] = []
    catalog_paths: list[Path] = []
    result = test = None
    if raw_test is not None:
        inferer = make_inferer(cfg)
        if inferer is None:
            raise ConfigError("inferer: data.test is set but no inferer is configured")
        test = prepare_for_model(raw_test, model)
        t0 = time.perf_counter()
        result = infer_chunked(model, inferer, test, cfg.output.chunk_size, out / ".checkpoints")
        dt = time.perf_counter() - t0
        log.info("inferred %d spectra in %.1f s (%.1f ms per spectrum)", test.n_stars, dt, 1e3 * dt / test.n_stars)
        table = make_catalog(test.ids, result, model.label_units, snr=test.meta_column("snr"),
                             true_labels=test.labels)
        for fmt in cfg.output.formats:
            catalog_paths.append(write_catalog(table, out / f"catalog.{fmt}"))
        ctx = AnalysisContext(label_names=list(model.label_names), label_units=list(model.label_units),
                              model=model, test=test, result=result, train=trainset, output_dir=out)
        for i, spec in enumerate(cfg.analyzers):
            analyzer = plugins.create("analyzer", spec.name, spec.params(), f"analyzers.{i}.name")
            reports.append(analyzer.analyze(ctx))
        timing = {"train_time_s": train_time, "infer_time_per_spectrum_s": dt / max(test.n_stars, 1)}
    else:
        timing = {"train_time_s": train_time}
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
    path.write_text("\n".join(lines))
    return path


def predict(model: SlamfwModel, data_path: str, reader_name: str | None = None,
            reader_overrides: dict[str, Any] | None = None, inferer: Inferer | None = None,
            chunk_size: int = 500, checkpoint_dir: str | Path | None = None) -> tuple[SpectralSet, LabelResult]:
    """Read ``data_path`` like the model's training set (or with ``reader_name``), prepare, infer."""
    comp = model.components.get("reader", {})
    if reader_name is None or reader_name == comp.get("name"):
        name, params = comp.get("name"), dict(comp.get("params", {}))
    else:
        name, params = reader_name, {}
    if not name:
        raise ConfigError("the model does not record its reader: pass --reader NAME")
    params.update(reader_overrides or {})
    params["path"] = data_path
    raw = plugins.create("reader", name, params, where="--reader").read()
    if raw.labels is not None and all(n in raw.label_names for n in model.label_names):
        raw = raw.select_labels(model.label_names)
    else:
        raw.labels, raw.label_names, raw.label_units = None, [], []
    data = prepare_for_model(raw, model, what=data_path)
    if inferer is None:
        inf = model.components.get("inferer", {})
        if not inf.get("name"):
            raise ConfigError("the model does not record an inferer")
        inferer = plugins.create("inferer", inf["name"], inf.get("params", {}), "model inferer")
    return data, infer_chunked(model, inferer, data, chunk_size, checkpoint_dir)
