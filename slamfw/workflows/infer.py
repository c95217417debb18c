"""Inference with a trained model: prepare spectra like its training set, infer chunk by chunk.

Chunks of spectra are the unit of work and of resumption. Each runs on the executor in use, and
each finished chunk is kept under ``<checkpoints>/<model key>/`` under a name made from the
chunk's star ids and data: a run that is killed and restarted, under any executor and any number
of workers, reuses every finished chunk. Neither key contains an execution setting.

``predict`` streams: the reader yields raw chunks, each chunk is prepared (shifted, normalised,
resampled) and inferred on a worker, and only its labels come back, so the memory of a run does
not grow with the number of spectra. The catalogue is assembled from the parts at the end. Where
the reader describes its chunks (:meth:`~slamfw.Reader.chunk_sources`) and the workers share
this machine, each worker reads its own chunk, names it and checks the checkpoints itself.

An inferer that drives one accelerator (:meth:`~slamfw.Inferer.stars_per_call`: ``lm`` on a GPU)
changes the split where the executor's workers share this machine: the workers prepare, the
prepared chunks come back, and this process infers them, consecutive chunks joined into calls of
up to that many stars; each chunk is saved as its call finishes (a killed run loses the chunks of
the call in progress), and only the rounding of the device's batched arithmetic depends on how
chunks were joined.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import logging
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Literal

import numpy as np

from .. import registry
from ..components.base import ParamRole, params_with_role
from ..components.executor import Executor, Progress, SerialExecutor, current_executor, using_executor
from ..components.inferer import Inferer, stars_per_call_problem
from ..components.normalizer import Normalizer
from ..components.prior import Prior
from ..components.reader import ChunkSource, Reader
from ..config import PreprocessConfig
from ..data.media import one_sided_medium
from ..data.results import LabelResult
from ..data.spectra import SpectralSet
from ..errors import ConfigError, DataError
from ..execution.chunks import chunks
from ..execution.store import ChunkStore, check_arrays
from ..model import SlamfwModel
from ..preprocess import prepare
from ..stats.quality import FLAGS, MIN_COVERAGE, add_quality

log = logging.getLogger(__name__)
#: The checkpoint store's logger: a damaged part found on a worker is reported through it here.
store_log = logging.getLogger(ChunkStore.__module__)


def model_component(model: SlamfwModel, role: str, override: str | None = None) -> tuple[str, dict[str, Any]] | None:
    """(name, params) of the component a model records for ``role`` (reader, normalizer, inferer)."""
    rec = model.components.get(role) or {}
    if override is not None and override != rec.get("name"):
        return override, {}
    if not rec.get("name"):
        return None
    return rec["name"], dict(rec.get("params", {}))


def model_normalizer(model: SlamfwModel) -> Normalizer | None:
    """The model's normaliser, built from its record (None when it has none)."""
    norm = model_component(model, "normalizer")
    return None if norm is None else registry.create("normalizer", norm[0], norm[1], "model normalizer")


def prepare_for_model(raw: SpectralSet, model: SlamfwModel, what: str = "test set",
                      allow_empty: bool = False, warn_medium: bool = True,
                      normalizer: Normalizer | None | Literal["model"] = "model") -> SpectralSet | None:
    """Prepare spectra exactly like the model's training set, on the model's grid (None when
    ``allow_empty`` and no star survives). ``warn_medium``: log a warning when only one of the
    spectra and the model declares its wavelength medium (off on worker processes, whose log the
    user does not see; :func:`predict_stream` warns for them). ``normalizer``: the model's, as
    :func:`model_normalizer` built it (``"model"``: built here; passing it spares worker processes
    the plugin registry, whose loading imports every installed plugin)."""
    if warn_medium and (msg := one_sided_medium(raw.medium, model.medium, what)):
        log.warning(msg)
    if isinstance(normalizer, str):
        if normalizer != "model":
            raise ValueError(f"prepare_for_model: normalizer must be a Normalizer, None or 'model', not {normalizer!r}")
        normalizer = model_normalizer(model)
    return prepare(raw, PreprocessConfig(**model.preprocess), normalizer, grid=model.wave, what=what,
                   allow_empty=allow_empty, medium=model.medium)


def model_key(model: SlamfwModel, inferer: Inferer, prior: Prior | None = None) -> str:
    """What the labels of a spectrum depend on: the model (training-set hash, medium, emulator,
    parameters, preparation, error model), the inferer and the prior with their parameters. No
    execution setting."""
    h = hashlib.sha256()
    h.update(model.train_hash.encode())
    h.update(f"medium={model.medium}".encode())      # the grid's medium: spectra are converted to it
    em = None if model.error_model is None else model.error_model.to_dict()
    h.update(json.dumps([model.emulator_name, model.emulator.get_params(), model.preprocess,
                         model.components.get("normalizer"), type(inferer).__name__, inferer.get_params(),
                         None if prior is None else [type(prior).__name__, prior.get_params()], em],
                        sort_keys=True, default=str).encode())
    if prior is not None:   # what the prior learned (a table prior's rows), not only its parameters
        for name in sorted(k for k in vars(prior) if k.endswith("_") and not k.startswith("_")):
            h.update(name.encode())
            h.update(np.asarray(getattr(prior, name)).astype(str).tobytes())
    return h.hexdigest()[:16]


def fit_prior(prior: Prior | None, model: SlamfwModel) -> Prior | None:
    """``prior`` fitted on the model's training labels (None stays None)."""
    return None if prior is None else prior.fit(np.asarray(model.train_labels, float), list(model.label_names))


def model_prior(model: SlamfwModel) -> Prior | None:
    """The prior a model records (``[prior]`` when it was trained), fitted; None: flat."""
    comp = model_component(model, "prior")
    return None if comp is None else fit_prior(registry.create("prior", comp[0], comp[1], "model prior"), model)


def call_infer(inferer: Inferer, model: SlamfwModel, flux: np.ndarray, ivar: np.ndarray, prior: Prior | None,
               ids: np.ndarray) -> LabelResult:
    """``inferer.infer`` with the prior and the ids; an inferer written for plugin API 1.0, whose
    ``infer`` takes no ``ids``, is called without them (and must then take no per-star prior)."""
    params = inspect.signature(inferer.infer).parameters
    if "ids" in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return inferer.infer(model, flux, ivar, prior=prior, ids=ids)
    if prior is not None and prior.per_star:
        raise ConfigError(f"the inferer {type(inferer).__name__} takes no star ids (plugin API 1.0), so it cannot "
                          f"use the per-star prior {type(prior).__name__}")
    return inferer.infer(model, flux, ivar, prior=prior) if prior is not None else inferer.infer(model, flux, ivar)


def label_spectra(model: SlamfwModel, inferer: Inferer, prior: Prior | None, flux: np.ndarray, ivar: np.ndarray,
                  ids: np.ndarray, coverage: np.ndarray | None = None,
                  rv_unknown: np.ndarray | None = None) -> LabelResult:
    """The inferer's labels for prepared spectra (N, P), with the S/N, quality flags and calibrated
    errors the pipeline adds (:func:`slamfw.stats.quality.add_quality`); ``coverage`` (N,) the
    fraction of the grid each spectrum covers (pre-processing's ``grid_coverage``; None: all),
    ``rv_unknown`` (N,) the stars without a known rv (pre-processing's ``rv_unknown``; None: none)."""
    result = call_infer(inferer, model, flux, ivar, prior, np.asarray(ids, dtype=str))
    min_cov = float(model.preprocess.get("min_coverage", MIN_COVERAGE))
    return add_quality(result, flux, ivar, np.asarray(model.train_labels, float), model.error_model, coverage,
                       (model.train_chi2 or {}).get("p99"), min_cov, rv_unknown)


def chunk_key(data: SpectralSet) -> str:
    """A chunk's name in the checkpoints: everything about its stars (ids, spectra, labels,
    per-star metadata such as S/N and radial velocity, and the wavelengths' medium), raw or prepared."""
    h = hashlib.sha256(data.fingerprint().encode())
    h.update(f"medium={data.medium}".encode())       # air spectra are shifted to a vacuum model's grid
    for key in sorted(data.meta):
        h.update(key.encode())
        h.update(np.ascontiguousarray(np.asarray(data.meta[key]).astype(str)).data)
    return h.hexdigest()[:24]


def result_problem(arrays: dict[str, np.ndarray], n: int, n_labels: int) -> str | None:
    """What keeps ``arrays`` from being a :meth:`LabelResult.to_arrays` of ``n`` stars and
    ``n_labels`` labels (None when nothing does): the check of a checkpoint piece on loading. Every
    quality flag must be there: a piece written before a flag existed is redone, not given a
    column of False."""
    num = "biuf"
    return check_arrays(arrays, {
        "labels": (num, (n, n_labels)), "cov": (num, (n, n_labels, n_labels)), "converged": (num, (n,)),
        "rmse": (num, (n,)), "chi2": (num, (n,)), "init": (num, (n, n_labels)), "label_names": ("U", (n_labels,)),
        **{f"extra/{flag}": ("b", (n,)) for flag in FLAGS}},
        optional={"nfev": (num, (n,)), "samples": (num, (n, None, n_labels)),
                  "errors_calibrated": (num, (n, n_labels))})


def _infer_chunk(flux: np.ndarray, ivar: np.ndarray, ids: np.ndarray, coverage: np.ndarray, rv_unknown: np.ndarray,
                 model: SlamfwModel, inferer: Inferer, prior: Prior | None) -> dict[str, np.ndarray]:
    """One chunk (n, P) -> the LabelResult's arrays."""
    return label_spectra(model, inferer, prior, flux, ivar, ids, coverage, rv_unknown).to_arrays()


def check_chunk_size(chunk_size: Any) -> None:
    """A :class:`ConfigError` unless ``chunk_size`` is a whole number of spectra, at least 1."""
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise ConfigError(f"chunk_size (output.chunk_size, --chunk-size) must be a whole number of spectra, at "
                          f"least 1, got {chunk_size!r}")


def infer_chunked(model: SlamfwModel, inferer: Inferer, data: SpectralSet, chunk_size: int = 500,
                  checkpoint_dir: str | Path | None = None, prior: Prior | None = None) -> LabelResult:
    """Infer prepared ``data`` in chunks of ``chunk_size`` stars on the executor in use, under
    ``prior`` (fitted; None: flat); finished chunks are saved and reused."""
    check_chunk_size(chunk_size)
    store = (None if checkpoint_dir is None
             else ChunkStore(Path(checkpoint_dir) / model_key(model, inferer, prior), "chunk"))
    spans = chunks(data.n_stars, chunk_size)
    keys = [chunk_key(data.subset(np.arange(s, e))) for s, e in spans]
    parts: dict[int, dict[str, np.ndarray]] = {}
    if store is not None:
        n_labels = len(model.label_names)
        parts = {k: a for k, (key, (s, e)) in enumerate(zip(keys, spans))
                 if (a := store.load(key, lambda a, n=e - s: result_problem(a, n, n_labels))) is not None}
        if parts:
            log.info("inference: %d of %d chunks reused from %s", len(parts), len(spans), store.folder)
    todo = [k for k in range(len(spans)) if k not in parts]
    ivar = data.weight_ivar
    coverage = data.meta_column("grid_coverage", 1.0)
    rv_unknown = data.meta_column("rv_unknown", 0.0).astype(bool)
    tasks = [(data.flux[s:e], ivar[s:e], data.ids[s:e], coverage[s:e], rv_unknown[s:e])
             for s, e in (spans[k] for k in todo)]
    executor = current_executor()
    per_call = in_process_batch(model, inferer, executor)
    if per_call is None:
        done = executor.imap(_infer_chunk, tasks, shared={"model": model, "inferer": inferer, "prior": prior},
                             desc="inference", unit="spectra", total=sum(len(t[0]) for t in tasks),
                             weight=lambda t: len(t[0]))
    else:      # the chunks are prepared already: infer them here, several at a time
        prepared = ({"flux": f, "ivar": w, "ids": i, "coverage": c, "rv_unknown": r} for f, w, i, c, r in tasks)
        done = (r.to_arrays() for _, r in infer_in_process(prepared, model, inferer, prior, per_call))
    for k, arrays in zip(todo, done):
        if store is not None:
            store.save(keys[k], arrays)
        parts[k] = arrays
    result = LabelResult.concatenate([LabelResult.from_arrays(parts[k]) for k in range(len(spans))])
    if store is not None:
        store.discard(keys)
    return result


# ------------------------------------------------------------------ streaming predict
def _prepare_chunk(raw: SpectralSet | None, model: SlamfwModel,
                   normalizer: Normalizer | None) -> dict[str, np.ndarray] | None:
    """Prepare one raw chunk (with the model's ``normalizer``) for inference: ``flux``, ``ivar``
    (n, P), ``coverage`` and ``rv_unknown`` (n,) of the stars that preparation kept, and the catalogue's other
    columns: ``ids``, ``snr``, ``ra``/``dec`` and ``true_labels`` where known, and ``excluded`` (the
    ids that preparation dropped); only ``ids`` and ``excluded`` when it kept none. None for a chunk
    already done (``raw`` None)."""
    if raw is None:
        return None
    data = prepare_for_model(raw, model, what=raw.source or "the data", allow_empty=True, warn_medium=False,
                             normalizer=normalizer)
    kept = set() if data is None else set(data.ids.tolist())
    excluded = np.array([i for i in raw.ids.tolist() if i not in kept], dtype=str)
    if data is None:
        return {"ids": np.zeros(0, dtype=str), "excluded": excluded}
    prep = {"flux": data.flux, "ivar": data.weight_ivar, "coverage": data.meta_column("grid_coverage", 1.0),
            "rv_unknown": data.meta_column("rv_unknown", 0.0).astype(bool),
            "ids": np.asarray(data.ids, dtype=str), "snr": data.meta_column("snr")}
    prep.update({k: np.asarray(data.meta[k], float) for k in ("ra", "dec") if k in data.meta})
    if data.labels is not None:
        prep["true_labels"] = data.labels
    prep["excluded"] = excluded
    return prep


#: What :func:`_prepare_chunk` gives for inference only (the rest goes into the catalogue part).
_INFER_INPUTS = ("flux", "ivar", "coverage", "rv_unknown")


def _n_prepared(prep: dict[str, np.ndarray] | None) -> int:
    """The stars of a prepared chunk to infer (0 for None, or for a chunk whose stars were all dropped)."""
    return 0 if prep is None else len(prep.get("flux", ()))


def _catalogue_part(prep: dict[str, np.ndarray], result: LabelResult | None) -> dict[str, np.ndarray]:
    """The catalogue part of a prepared chunk (:func:`_prepare_chunk`) and its stars' labels:
    the LabelResult's arrays, then the prepared chunk's catalogue columns."""
    part = {} if result is None else result.to_arrays()
    part.update({k: v for k, v in prep.items() if k not in _INFER_INPUTS})
    return part


def _predict_chunk(raw: SpectralSet | None, model: SlamfwModel, inferer: Inferer,
                   prior: Prior | None, normalizer: Normalizer | None) -> dict[str, np.ndarray] | None:
    """Prepare (with the model's ``normalizer``) and infer one raw chunk: the catalogue part (ids,
    S/N, true labels, LabelResult arrays, and ``excluded``: the ids that preparation dropped); None
    for a chunk already done (``raw`` None)."""
    prep = _prepare_chunk(raw, model, normalizer)
    if prep is None or "flux" not in prep:
        return prep
    return _catalogue_part(prep, label_spectra(model, inferer, prior, prep["flux"], prep["ivar"], prep["ids"],
                                               prep["coverage"], prep["rv_unknown"]))


def in_process_batch(model: SlamfwModel, inferer: Inferer, executor: Executor) -> int | None:
    """Stars per ``infer`` call when ``inferer`` infers in this process while ``executor``'s
    workers prepare (:meth:`~slamfw.Inferer.stars_per_call`; only where the workers share this
    machine), else None."""
    per_call = inferer.stars_per_call(model) if executor.workers_on_this_machine else None
    if per_call is None:
        return None
    if (problem := stars_per_call_problem(per_call)) is not None:
        raise ConfigError(f"the inferer {type(inferer).__name__}: {problem}")
    log.info("inference in this process, up to %d stars per call (%s)", int(per_call), type(inferer).__name__)
    return int(per_call)


def infer_in_process(prepared: Iterable[dict[str, np.ndarray] | None], model: SlamfwModel, inferer: Inferer,
                     prior: Prior | None, per_call: int
                     ) -> Iterator[tuple[dict[str, np.ndarray] | None, LabelResult | None]]:
    """(prepared chunk, its labels) for each prepared chunk (``flux``, ``ivar`` (n, P), ``ids``,
    ``coverage``, ``rv_unknown`` (n,); or None), in order: the labels are None for a None chunk or one without
    stars. Inferred in this process, serially (one process drives the inferer's device), with
    consecutive chunks joined into calls of at most ``per_call`` stars (a larger chunk alone); a
    call's chunks are yielded as soon as it is done, so that they can be saved."""
    pending: list[dict[str, np.ndarray] | None] = []

    def flush() -> Iterator[tuple[dict[str, np.ndarray] | None, LabelResult | None]]:
        with_stars = [p for p in pending if _n_prepared(p)]
        if with_stars:
            joined = {k: np.concatenate([p[k] for p in with_stars])
                      for k in ("flux", "ivar", "coverage", "rv_unknown", "ids")}
            try:
                with using_executor(SerialExecutor()):
                    result = label_spectra(model, inferer, prior, joined["flux"], joined["ivar"], joined["ids"],
                                           joined["coverage"], joined["rv_unknown"])
            except DataError as exc:   # "star i" counts from the call's first star, not the chunk's
                raise DataError(f"{exc} (in one call of {len(joined['ids'])} stars joining {len(with_stars)} "
                                f"chunk(s), whose star 0 is {joined['ids'][0]!r})") from exc
            del joined
        start = 0
        for p in pending:
            n = _n_prepared(p)
            yield p, (result.rows(start, start + n) if n else None)
            start += n
        pending.clear()

    items = iter(prepared)
    while True:
        try:
            prep = next(items)
        except StopIteration:
            break
        except Exception:      # a later chunk failed to read or prepare: those prepared are fitted and saved first
            yield from flush()
            raise
        n, n_pending = _n_prepared(prep), sum(map(_n_prepared, pending))
        if n and n_pending and n_pending + n > per_call:
            yield from flush()
        pending.append(prep)
    yield from flush()


def read_with_model_reader(model: SlamfwModel, data_path: str | None, reader_name: str | None = None,
                           reader_overrides: dict[str, Any] | None = None) -> Reader:
    """The reader that reads a survey the way the model's training set was read (or ``reader_name``).

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
    return registry.create("reader", name, params, where="--reader")


def model_labels_only(raw: SpectralSet, model: SlamfwModel) -> SpectralSet:
    """``raw`` with exactly the model's labels, in its order, as true labels (or no labels, if it
    lacks any of them)."""
    if raw.labels is not None and all(n in raw.label_names for n in model.label_names):
        return raw.select_labels(model.label_names)
    return raw.without_labels()


def predict_modules(components: list[tuple[str, str]], reader: str | None = None) -> list[str]:
    """The modules a worker of :func:`predict_stream` imports for its tasks, for
    :meth:`~slamfw.Executor.prestart` before the model is loaded: this one, and the plugin modules
    of the model's ``components`` ((kind, name) pairs, from the model file's metadata:
    :func:`slamfw.model.component_names`; ``reader`` in place of the model's reader when given).
    Components not installed are left out (loading the model says so)."""
    from ..components.kinds import KINDS
    found = dict(components)
    if reader:
        found["reader"] = reader
    modules = [__name__]
    for kind, name in found.items():
        reg = registry.lookup(kind, name) if kind in KINDS else None
        if reg is not None and reg.cls.__module__ not in modules:
            modules.append(reg.cls.__module__)
    return modules


def model_inferer(model: SlamfwModel, overrides: dict[str, Any] | None = None) -> Inferer:
    """The inferer a model records, with its parameters ``overrides`` changed (``slamfw predict
    --inferer-param``: lm's ``device`` or ``n_starts``, say)."""
    comp = model_component(model, "inferer")
    if comp is None:
        raise ConfigError("the model does not record an inferer")
    return registry.create("inferer", comp[0], {**comp[1], **(overrides or {})},
                           "model inferer" if not overrides else f"model inferer {comp[0]!r} with --inferer-param")


def part_problem(arrays: dict[str, np.ndarray], model: SlamfwModel, ids: np.ndarray | None = None) -> str | None:
    """What keeps ``arrays`` from being a catalogue part of :func:`_predict_chunk` for ``model``
    (of a chunk of the stars ``ids``, when given); None when nothing does."""
    problem = check_arrays(arrays, {"ids": ("U", (None,))})
    if problem is not None:
        return problem
    part_ids = arrays["ids"]
    if ids is not None and not set(part_ids.tolist()) <= set(np.asarray(ids, dtype=str).tolist()):
        return "its star ids are not those of the chunk"
    n, n_labels = part_ids.size, len(model.label_names)
    if n == 0:
        return None
    return result_problem(arrays, n, n_labels) or check_arrays(
        arrays, {"snr": ("biuf", (n,))},
        optional={"ra": ("biuf", (n,)), "dec": ("biuf", (n,)), "true_labels": ("biuf", (n, n_labels))})


def _keyed(raw: SpectralSet, model: SlamfwModel, store: ChunkStore, report: Callable[[str], None] | None = None
           ) -> tuple[SpectralSet, str, bool, str | None]:
    """A raw chunk with the model's labels only, its key, whether its part is in ``store`` already
    (a damaged part is removed, to be redone; ``report`` gets the message, else it is logged), and
    the warning when only one of the chunk and the model declares its wavelength medium (None)."""
    raw = model_labels_only(raw, model)
    key = chunk_key(raw)
    done = store.load(key, lambda a: part_problem(a, model, raw.ids), report) is not None
    return raw, key, done, one_sided_medium(raw.medium, model.medium, raw.source or "the survey")


def _stream_tasks(reader: Reader, model: SlamfwModel, chunk_size: int, store: ChunkStore,
                  keys: list[str], reused: list[str]) -> Iterator[tuple[SpectralSet | None]]:
    """One task per raw chunk, read here: the chunk, or None when its part is already in
    ``store`` (its key then goes to ``reused``; a damaged part is redone)."""
    for i, raw in enumerate(reader.iter_chunks(chunk_size)):
        raw, key, done, medium = _keyed(raw, model, store)
        if i == 0 and medium:
            log.warning(medium)
        keys.append(key)
        if done:
            reused.append(key)
        yield (None if done else raw,)


def _source_task(source: ChunkSource, model: SlamfwModel, normalizer: Normalizer | None, store: ChunkStore,
                 chunk_size: int, inferer: Inferer | None = None, prior: Prior | None = None) -> dict[str, Any]:
    """A described chunk read on a worker and cut into pieces of ``chunk_size`` stars (as
    ``iter_chunks`` cuts them), each keyed and checked against ``store``, then prepared and, with an
    ``inferer``, inferred: ``keys`` and ``outs``, a piece each (the catalogue part,
    :func:`_predict_chunk`, or without an inferer the prepared chunk, :func:`_prepare_chunk`; None
    when its part was in ``store`` already), ``medium`` (the first piece's warning, or None),
    ``damaged`` (the messages about damaged parts, for the calling process's log) and ``source``
    (as ``read()`` left it, for :meth:`~slamfw.Reader.chunk_read`)."""
    damaged: list[str] = []
    keys, outs, medium = [], [], None
    raw = source.read()
    for s, e in chunks(raw.n_stars, chunk_size):
        piece, key, done, warning = _keyed(raw if e - s == raw.n_stars else raw.subset(np.arange(s, e)), model,
                                           store, damaged.append)
        piece = None if done else piece
        medium = medium if keys else warning
        keys.append(key)
        outs.append(_prepare_chunk(piece, model, normalizer) if inferer is None
                    else _predict_chunk(piece, model, inferer, prior, normalizer))
    return {"keys": keys, "outs": outs, "medium": medium, "damaged": damaged, "source": source}


def _described(results: Iterable[dict[str, Any]], reader: Reader, keys: list[str], reused: list[str],
               left_out: dict[int, set[str]]) -> Iterator[dict[str, np.ndarray] | None]:
    """The outputs of :func:`_source_task`s, piece by piece, in order, their keys recorded in
    ``keys`` (and in ``reused`` for parts found done); the first piece's medium warning and every
    damaged part's message logged here; each description given back to ``reader.chunk_read``,
    whose ids to leave out go to ``left_out`` (by the index of each of its pieces in ``keys``)."""
    for res in results:
        if not keys and res["medium"]:
            log.warning(res["medium"])
        for msg in res["damaged"]:
            store_log.warning(msg)
        drop = set(reader.chunk_read(res["source"]))
        for key, out in zip(res["keys"], res["outs"]):
            if drop:
                left_out[len(keys)] = drop
            keys.append(key)
            if out is None:
                reused.append(key)
            yield out
    reader.chunks_read()


def _without(part: dict[str, np.ndarray], ids: set[str]) -> dict[str, np.ndarray]:
    """A catalogue part without the stars ``ids``, inferred or excluded: the LabelResult's arrays
    taken by :meth:`LabelResult.take`, :func:`_prepare_chunk`'s other columns (a row per star
    inferred) by the same rows, and ``excluded`` (the ids that preparation dropped) without them."""
    keep = ~np.isin(part["ids"], list(ids))
    if keep.all() and not np.isin(part["excluded"], list(ids)).any():
        return part
    out = LabelResult.from_arrays(part).take(np.flatnonzero(keep)).to_arrays() if "labels" in part else {}
    out.update({k: v[keep] for k, v in part.items() if k not in out and k != "excluded"})
    out["excluded"] = part["excluded"][~np.isin(part["excluded"], list(ids))]
    return out


def _left_out_key(key: str, ids: set[str]) -> str:
    """The name of a part of the chunk ``key`` without the stars ``ids``: another name than the
    whole chunk's, so that a part always holds what its name says (another chunk, or a later run,
    may need the whole)."""
    return hashlib.sha256("\n".join([key, *sorted(ids)]).encode()).hexdigest()[:24]


def _saved_without(store: ChunkStore, key: str, part: dict[str, np.ndarray] | None, ids: set[str],
                   model: SlamfwModel) -> tuple[str, dict[str, np.ndarray] | None]:
    """(name, part to save) for the chunk ``key`` whose reader leaves out the stars ``ids``: the
    chunk's part (``part``, or the one in ``store`` when None) without them, under
    :func:`_left_out_key`, or the chunk's own name and ``part`` when it holds none of them."""
    whole = part if part is not None else store.load(key, lambda a: part_problem(a, model))
    if whole is None:
        raise ConfigError(f"the catalogue part {store.path(key)} went missing during the run: run the same command "
                          f"again")
    if not (set(whole["ids"].tolist()) | set(whole["excluded"].tolist())) & ids:
        return key, part
    return _left_out_key(key, ids), _without(whole, ids)


def predict_stream(model: SlamfwModel, reader: Reader, inferer: Inferer, checkpoint_dir: str | Path,
                   chunk_size: int = 500, prior: Prior | None = None) -> list[str]:
    """Read, prepare and infer ``reader``'s spectra chunk by chunk on the executor in use. Every
    chunk's catalogue part is saved in ``checkpoint_dir``; returns their keys, in order
    (:func:`iter_parts` reads them back; :func:`remove_parts` removes them).

    Where the reader describes its chunks (:meth:`~slamfw.Reader.chunk_sources`) and the
    executor's workers see this machine's files and the checkpoints
    (:attr:`~slamfw.Executor.workers_share_files`), each worker reads its own chunks and checks
    whether they are done; otherwise this process reads each chunk, checks it, and sends it to a
    worker. The names of the parts are the same either way, except for a chunk in which the
    reader leaves out stars another chunk gave (:meth:`~slamfw.Reader.chunk_read`)."""
    store = parts_store(model, inferer, Path(checkpoint_dir).absolute(), prior)
    keys: list[str] = []
    reused: list[str] = []
    left_out: dict[int, set[str]] = {}     # stars of a part that the reader leaves out (read twice, say)
    executor = current_executor()
    normalizer = model_normalizer(model)
    per_call = in_process_batch(model, inferer, executor)
    sources = reader.chunk_sources(chunk_size) if executor.workers_share_files else None
    shared: dict[str, Any] = {"model": model, "normalizer": normalizer}
    infer_here = {"inferer": inferer, "prior": prior} if per_call is None else {}
    # progress in spectra: the executor's, where it knows each task's stars (none for a chunk done
    # already) before it runs; else here, as the parts come
    progress = Progress(None, "predict", "spectra", enabled=per_call is not None or sources is not None)
    if sources is None:       # read here: _stream_tasks records the keys
        tasks = _stream_tasks(reader, model, chunk_size, store, keys, reused)
        done = executor.imap(_predict_chunk if per_call is None else _prepare_chunk, tasks,
                             shared={**shared, **infer_here}, desc="predict", unit="spectra",
                             weight=lambda t: 0 if t[0] is None else t[0].n_stars, progress=per_call is None)
    else:                     # read on the workers, which return each chunk's key
        log.info("the executor's workers read their own chunks (%s)", type(reader).__name__)
        done = _described(executor.imap(_source_task, ((src,) for src in sources),
                                        shared={**shared, "store": store, "chunk_size": chunk_size, **infer_here},
                                        progress=False),
                          reader, keys, reused, left_out)
    if per_call is None:      # each worker prepared and inferred its chunks
        results = done
    else:                     # the workers prepare, this process infers (the inferer's device)
        log.info("the chunks are prepared on the executor (%d worker(s)) while this process infers",
                 executor.n_workers)
        results = (None if prep is None else _catalogue_part(prep, res)
                   for prep, res in infer_in_process(done, model, inferer, prior, per_call))
    n_spectra = 0
    try:
        for i, part in enumerate(results):
            inferred = part is not None
            if i in left_out:         # stars the reader leaves out (read before, from another file)
                keys[i], part = _saved_without(store, keys[i], part, left_out[i], model)
            if part is not None:
                store.save(keys[i], part)
            if inferred:
                n_spectra += part["ids"].size
                progress.update(part["ids"].size + part["excluded"].size)
    finally:
        progress.close()
    log.info("predict: %d chunks (%d reused from an earlier run), %d spectra inferred in this run", len(keys),
             len(reused), n_spectra)
    return keys


def iter_parts(model: SlamfwModel, inferer: Inferer, checkpoint_dir: str | Path, keys: list[str],
               prior: Prior | None = None) -> Iterator[dict[str, np.ndarray]]:
    """The catalogue parts that :func:`predict_stream` saved, one at a time, in order."""
    store = parts_store(model, inferer, checkpoint_dir, prior)
    for key in keys:
        part = store.load(key, lambda a: part_problem(a, model))
        if part is None:
            raise ConfigError(f"the catalogue part {store.path(key)} is missing or damaged: run the same "
                              f"command again to redo it")
        yield part


def stars_without_prior(prior: Prior | None, ids: np.ndarray) -> int:
    """How many of the stars ``ids`` a per-star prior gives no prior of their own (its form for
    them has no Gaussian and an open box: a ``table`` prior whose table lacks them); 0 for a prior
    that is not per star."""
    if prior is None or not prior.per_star:
        return 0
    flat = 0
    for star in ids:
        form = prior.least_squares_form(str(star))
        flat += form is not None and not np.isfinite(form.sigma).any() and not np.isfinite(form.lo).any() \
            and not np.isfinite(form.hi).any()
    return int(flat)


def warn_stars_without_prior(prior: Prior | None, n_flat: int, n: int, what: str) -> None:
    """Warn when a per-star prior gives ``n_flat`` of the ``n`` stars of ``what`` no prior."""
    if n_flat:
        log.warning("%s: %d of the %d stars have no prior of their own in the per-star prior (%s: their ids are not "
                    "in it, or without usable values; check its id column), and were fitted without one", what,
                    n_flat, n, type(prior).__name__)


def parts_store(model: SlamfwModel, inferer: Inferer, checkpoint_dir: str | Path,
                prior: Prior | None = None) -> ChunkStore:
    """The folder of the catalogue parts of ``model`` with ``inferer`` and ``prior``."""
    return ChunkStore(Path(checkpoint_dir) / model_key(model, inferer, prior), "part")


def remove_parts(model: SlamfwModel, inferer: Inferer, checkpoint_dir: str | Path, keys: list[str],
                 prior: Prior | None = None) -> None:
    """Delete this run's catalogue parts (another run's, in the same folder, stay; these too while
    another process uses them: :meth:`ChunkStore.in_use`)."""
    parts_store(model, inferer, checkpoint_dir, prior).discard(keys)


def predict(model: SlamfwModel, data_path: str | None, reader_name: str | None = None,
            reader_overrides: dict[str, Any] | None = None, inferer: Inferer | None = None,
            chunk_size: int = 500, checkpoint_dir: str | Path | None = None) -> tuple[SpectralSet, LabelResult]:
    """Read ``data_path`` like the model's training set (or with ``reader_name``), prepare, infer;
    all in memory (``api.predict``). The command ``slamfw predict`` streams instead."""
    raw = model_labels_only(read_with_model_reader(model, data_path, reader_name, reader_overrides).read(), model)
    data = prepare_for_model(raw, model, what=data_path or "the data")
    return data, infer_chunked(model, inferer or model_inferer(model), data, chunk_size, checkpoint_dir,
                               model_prior(model))
