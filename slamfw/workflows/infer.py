"""Inference with a trained model: prepare spectra like its training set, infer in resumable chunks.

Inference runs in chunks saved under ``<output>/.checkpoints/<key>/``: a run that is killed and
restarted reuses the finished chunks.
"""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from .. import registry
from ..components.base import ParamRole, params_with_role
from ..components.inferer import Inferer
from ..config import PreprocessConfig
from ..data.results import LabelResult
from ..data.spectra import SpectralSet
from ..errors import ConfigError
from ..execution.executor import chunks
from ..execution.store import ChunkStore
from ..model import SlamfwModel
from ..preprocess import prepare

log = logging.getLogger(__name__)


def model_component(model: SlamfwModel, role: str, override: str | None = None) -> tuple[str, dict[str, Any]] | None:
    """(name, params) of the component a model records for ``role`` (reader, normalizer, inferer)."""
    rec = model.components.get(role) or {}
    if override is not None and override != rec.get("name"):
        return override, {}
    if not rec.get("name"):
        return None
    return rec["name"], dict(rec.get("params", {}))


def prepare_for_model(raw: SpectralSet, model: SlamfwModel, what: str = "test set") -> SpectralSet:
    """Prepare spectra exactly like the model's training set, on the model's grid."""
    norm = model_component(model, "normalizer")
    normalizer = None if norm is None else registry.create("normalizer", norm[0], norm[1], "model normalizer")
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
    store = None if checkpoint_dir is None else ChunkStore(Path(checkpoint_dir) / _checkpoint_key(model, inferer, data))
    spans = chunks(data.n_stars, chunk_size)
    for k, (s, e) in enumerate(spans):
        saved = store.load(k) if store is not None else None
        if saved is not None:
            parts.append(LabelResult.from_arrays(saved))
            log.info("inference: chunk %d/%d reused from %s", k + 1, len(spans), store.path(k))
            continue
        log.info("inference: chunk %d/%d (stars %d-%d)", k + 1, len(spans), s, e - 1)
        res = inferer.infer(model, data.flux[s:e], data.weight_ivar[s:e])
        if store is not None:
            store.save(k, res.to_arrays())
        parts.append(res)
    result = LabelResult.concatenate(parts)
    if store is not None:
        store.remove()
    return result


def read_with_model_reader(model: SlamfwModel, data_path: str | None, reader_name: str | None = None,
                           reader_overrides: dict[str, Any] | None = None) -> SpectralSet:
    """Read a survey the way the model's training set was read (or with ``reader_name``).

    ``data_path`` goes to the reader's input-path parameter; readers that read no files take None.
    """
    comp = model_component(model, "reader", reader_name)
    if comp is None:
        raise ConfigError("the model does not record its reader: pass --reader NAME")
    name, params = comp
    params.update(reader_overrides or {})
    cls = registry.get_component("reader", name, where="--reader")
    paths = params_with_role(cls, ParamRole.INPUT_PATH)
    if data_path is not None:
        if not paths:
            raise ConfigError(f"--data: the reader {name!r} reads no files (it has no input-path parameter)")
        params[paths[0]] = data_path
    elif paths and paths[0] not in params:
        raise ConfigError(f"--data: the reader {name!r} reads files; say which with --data PATH")
    return model_labels_only(registry.create("reader", name, params, where="--reader").read(), model)


def model_labels_only(raw: SpectralSet, model: SlamfwModel) -> SpectralSet:
    """``raw`` with exactly the model's labels, in its order, as true labels (or no labels, if it
    lacks any of them)."""
    if raw.labels is not None and all(n in raw.label_names for n in model.label_names):
        return raw.select_labels(model.label_names)
    out = raw.subset(range(raw.n_stars))
    out.labels, out.label_names, out.label_units = None, [], []
    return out


def model_inferer(model: SlamfwModel) -> Inferer:
    """The inferer a model records."""
    comp = model_component(model, "inferer")
    if comp is None:
        raise ConfigError("the model does not record an inferer")
    return registry.create("inferer", comp[0], comp[1], "model inferer")


def predict(model: SlamfwModel, data_path: str | None, reader_name: str | None = None,
            reader_overrides: dict[str, Any] | None = None, inferer: Inferer | None = None,
            chunk_size: int = 500, checkpoint_dir: str | Path | None = None) -> tuple[SpectralSet, LabelResult]:
    """Read ``data_path`` like the model's training set (or with ``reader_name``), prepare, infer."""
    raw = read_with_model_reader(model, data_path, reader_name, reader_overrides)
    data = prepare_for_model(raw, model, what=data_path or "the data")
    return data, infer_chunked(model, inferer or model_inferer(model), data, chunk_size, checkpoint_dir)
