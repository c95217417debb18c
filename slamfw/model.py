"""A trained model: emulator + how its training data were read and prepared, saved safely.

File format (``FORMAT_VERSION`` 1): one ``.npz`` archive, loaded with ``allow_pickle=False``.
Arrays: ``wave`` (P,), ``train_labels`` (M, L), ``train_ids`` (M,), and the emulator's arrays
under ``emulator/<name>``. Metadata: the JSON text in ``__metadata__`` (format version, slamfw
version, label names and units, reader/preprocess/normaliser/emulator/inferer names and
parameters, training-set hash, creation time, and the error model fitted on the training set).
No Python objects are ever unpickled.
"""
from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from ._version import __version__
from .components.base import format_validation_error
from .components.emulator import Emulator
from .errors import ConfigError, DataError, ModelFileError, SlamfwError, name_some, repeated
from .execution.store import atomic_path
from .stats.error_model import ErrorModel

log = logging.getLogger(__name__)

#: Parameters that earlier slamfw versions stored with a model's components and that are now the
#: executor's business; such models still load, without them.
RETIRED_PARAMS = ("n_jobs", "progress", "stars_per_task")

FORMAT_NAME = "slamfw-model"
FORMAT_VERSION = 1
_META_KEY = "__metadata__"
_EMU_PREFIX = "emulator/"


@dataclass
class SlamfwModel:
    """A fitted emulator together with everything needed to prepare new spectra like its training set.

    Attributes
    ----------
    emulator : fitted :class:`Emulator`
    emulator_name : registry name of the emulator
    wave : (P,) model wavelength grid (A)
    label_names, label_units : the L labels
    train_labels : (M, L) training labels (physical units), also the initial-guess library
    train_ids : (M,) training star ids
    components : ``{"reader": {name, params}, "normalizer": {...}, "inferer": {...}}``
    preprocess : the ``preprocess`` config section as a dict
    train_hash : SHA-256 of the prepared training set
    error_model : the label uncertainty against S/N, learned by cross-validation on the training
        set (None: not fitted; the catalogue's errors are then the formal ones)
    medium : "air" or "vacuum", the medium of ``wave`` ("" unknown): a survey in the other medium
        is converted before it is resampled
    train_chi2 : ``{"median": ..., "p99": ...}`` of the training stars' reduced chi^2 at their own
        labels (the reference of ``flag_chi2_train``); None when unknown
    """

    emulator: Emulator
    emulator_name: str
    wave: np.ndarray
    label_names: list[str]
    label_units: list[str]
    train_labels: np.ndarray
    train_ids: np.ndarray
    components: dict[str, dict[str, Any]] = field(default_factory=dict)
    preprocess: dict[str, Any] = field(default_factory=dict)
    train_hash: str = ""
    error_model: ErrorModel | None = None
    medium: str = ""
    train_chi2: dict[str, float] | None = None
    slamfw_version: str = __version__
    created: str = ""

    def metadata(self) -> dict[str, Any]:
        return {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "slamfw_version": self.slamfw_version,
            "created": self.created or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "label_names": list(self.label_names),
            "label_units": list(self.label_units),
            "n_pixels": int(self.wave.size),
            "wave_range": [float(self.wave[0]), float(self.wave[-1])],
            "medium": self.medium,
            "train_chi2": self.train_chi2,
            "n_train": int(self.train_labels.shape[0]),
            "train_hash": self.train_hash,
            "emulator": {"name": self.emulator_name, "params": self.emulator.get_params()},
            "components": self.components,
            "preprocess": self.preprocess,
            "error_model": None if self.error_model is None else self.error_model.to_dict(),
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write the model to ``path`` (an ``.npz`` file), atomically."""
        arrays, emu_meta = self.emulator.to_state()
        meta = self.metadata()
        meta["emulator"]["state"] = emu_meta
        payload: dict[str, np.ndarray] = {
            "wave": np.asarray(self.wave, float),
            "train_labels": np.asarray(self.train_labels, float),
            "train_ids": np.asarray(self.train_ids, dtype=str),
            _META_KEY: np.array(json.dumps(meta)),
        }
        for key, arr in arrays.items():
            arr = np.asarray(arr)
            if arr.dtype == object:
                raise SlamfwError(f"emulator state array {key!r} has dtype object; use numeric or str arrays")
            payload[_EMU_PREFIX + key] = arr
        path = Path(path)
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez_compressed(fh, **payload)
        log.info("model saved to %s (%.1f MB)", path, path.stat().st_size / 1e6)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "SlamfwModel":
        """Read a model file; a clear :class:`ModelFileError` if it is damaged or of another version."""
        from .registry import get_component

        path = Path(path)
        if not path.is_file():
            raise ModelFileError(f"model file {str(path)!r} does not exist")
        _check_archive(path)
        key = None
        try:
            loaded = np.load(path, allow_pickle=False)
            if not isinstance(loaded, np.lib.npyio.NpzFile):       # a .npy file: one array
                raise ModelFileError(f"{str(path)!r} is a single numpy array, not a slamfw model file (an npz "
                                     "archive)")
            with loaded as npz:
                files = {}
                for key in npz.files:
                    files[key] = npz[key]
        except ValueError as err:
            if key is not None and "pickle" in str(err):   # numpy's advice (allow_pickle=) is not for model files
                raise ModelFileError(f"{str(path)!r} is not a slamfw model file: its array {key!r} holds pickled "
                                     "Python objects, which a slamfw model never contains (and slamfw never "
                                     "unpickles)") from None
            raise ModelFileError(f"{str(path)!r} is not a readable slamfw model file (damaged or "
                                 f"another format): {type(err).__name__}: {err}") from None
        except (zipfile.BadZipFile, OSError, EOFError, KeyError) as err:
            raise ModelFileError(f"{str(path)!r} is not a readable slamfw model file (damaged or "
                                 f"another format): {type(err).__name__}: {err}") from None
        if _META_KEY not in files:
            raise ModelFileError(f"{str(path)!r} is an npz archive but not a slamfw model (no metadata)")
        try:
            meta = json.loads(str(files.pop(_META_KEY)))
        except json.JSONDecodeError as err:
            raise ModelFileError(f"{str(path)!r}: metadata is not valid JSON ({err})") from None
        if not isinstance(meta, dict):
            raise ModelFileError(f"{str(path)!r}: metadata is JSON but not an object (a {type(meta).__name__})")
        if meta.get("format") != FORMAT_NAME:
            raise ModelFileError(f"{str(path)!r} is not a slamfw model (format {meta.get('format')!r})")
        version = meta.get("format_version")
        if isinstance(version, bool) or not isinstance(version, int) or version != FORMAT_VERSION:
            raise ModelFileError(
                f"{str(path)!r} has model format version {meta.get('format_version')!r}, written by slamfw "
                f"{meta.get('slamfw_version')}; this slamfw ({__version__}) reads version {FORMAT_VERSION}. "
                f"Retrain the model, or use the slamfw version that wrote it.")
        _check_metadata(meta, str(path))
        _drop_retired_params(meta)
        try:
            emu_info = meta["emulator"]
            emu_cls = get_component("emulator", emu_info["name"], where=f"{path}: emulator")
            emu_arrays = {k[len(_EMU_PREFIX):]: v for k, v in files.items() if k.startswith(_EMU_PREFIX)}
            try:
                emulator = emu_cls.from_state(emu_arrays, {"params": emu_info["params"],
                                                           **emu_info.get("state", {})})
            except ConfigError as err:       # parameters of another emulator (krr's in a slam model), or damaged
                raise ModelFileError(f"{str(path)!r}: the parameters it records for its {emu_info['name']!r} "
                                     f"emulator are refused (a damaged file, or another emulator's "
                                     f"parameters): {err}") from None
            label_names = list(meta["label_names"])
            model = cls(
                emulator=emulator, emulator_name=emu_info["name"], wave=files["wave"],
                label_names=label_names, label_units=list(meta["label_units"]) or [""] * len(label_names),
                train_labels=files["train_labels"], train_ids=files["train_ids"],
                components=meta.get("components", {}), preprocess=meta.get("preprocess", {}),
                train_hash=meta.get("train_hash", ""), slamfw_version=meta.get("slamfw_version", "?"),
                created=meta.get("created", ""), medium=str(meta.get("medium", "")),
                train_chi2=_chi2_reference(meta.get("train_chi2")),
                error_model=None if meta.get("error_model") is None else _error_model(meta["error_model"],
                                                                                        label_names, str(path)))
        except DataError as err:             # the emulator's state refused by its own checks
            raise ModelFileError(f"{str(path)!r} is damaged: {err}") from None
        except SlamfwError:
            raise
        except (KeyError, ValueError, TypeError, IndexError, AttributeError) as err:
            raise ModelFileError(f"{str(path)!r} is damaged or incomplete: {type(err).__name__}: {err}") from None
        _check_loaded(model, str(path))
        return model


def _check_loaded(model: SlamfwModel, path: str) -> None:
    """A :class:`ModelFileError` naming what is wrong with a model just read from ``path``: the
    arrays' shapes and types, the preprocess metadata, and the emulator's state (it must predict
    a finite spectrum of the grid's size at a training star's labels), so that a damaged file is
    refused on loading, not at inference."""
    from .config.schema import PreprocessConfig

    emulator = model.emulator
    wave, labels, ids = np.asarray(model.wave), np.asarray(model.train_labels), np.asarray(model.train_ids)
    if wave.ndim != 1 or wave.dtype.kind not in "fi" or wave.size < 2:
        raise ModelFileError(f"{path!r} is damaged: 'wave' must be an increasing 1-D float array, "
                             f"got {wave.dtype} of shape {wave.shape}")
    if not np.all(np.isfinite(wave)):
        j = int(np.flatnonzero(~np.isfinite(wave))[0])
        raise ModelFileError(f"{path!r} is damaged: 'wave' (the model's wavelength grid) is {float(wave[j])!r} at "
                             f"pixel {j} ({int(np.sum(~np.isfinite(wave)))} such); it must be finite")
    if not np.all(np.diff(wave) > 0):
        j = int(np.flatnonzero(~(np.diff(wave) > 0))[0])
        raise ModelFileError(f"{path!r} is damaged: 'wave' must be an increasing 1-D float array, but pixel "
                             f"{j + 1} ({float(wave[j + 1])!r}) does not follow pixel {j} ({float(wave[j])!r})")
    if labels.ndim != 2 or labels.dtype.kind not in "fi":
        raise ModelFileError(f"{path!r} is damaged: 'train_labels' must be a 2-D float array, "
                             f"got {labels.dtype} of shape {labels.shape}")
    if ids.shape != (labels.shape[0],):
        raise ModelFileError(f"{path!r} is damaged: {labels.shape[0]} rows of 'train_labels' for "
                             f"{ids.size} 'train_ids'")
    if not np.all(np.isfinite(labels)):
        row = int(np.flatnonzero(~np.all(np.isfinite(labels), axis=1))[0])
        raise ModelFileError(f"{path!r} is damaged: 'train_labels' row {row} ({ids[row] if row < ids.size else '?'}) "
                             f"is not finite: {labels[row].tolist()}")
    if labels.shape[1] != len(model.label_names):
        raise ModelFileError(f"{path!r} is damaged: {labels.shape[1]} label columns for the label names "
                             f"{model.label_names}")
    if model.wave.size != emulator.n_pixels_ or labels.shape[1] != emulator.n_labels_:
        raise ModelFileError(f"{path!r} is inconsistent: grid of {model.wave.size} pixels and "
                             f"{labels.shape[1]} labels, emulator has "
                             f"{emulator.n_pixels_} pixels and {emulator.n_labels_} labels")
    try:
        PreprocessConfig(**model.preprocess)
    except ValidationError as err:
        raise ModelFileError(f"{path!r}: its preprocess metadata is invalid: "
                             f"{format_validation_error(err, 'preprocess')}") from None
    except TypeError as err:
        raise ModelFileError(f"{path!r}: its preprocess metadata is not a mapping ({err})") from None
    if model.medium not in ("", "air", "vacuum"):
        raise ModelFileError(f"{path!r}: unknown wavelength medium {model.medium!r}")
    start = labels[np.all(np.isfinite(labels), axis=1)][:1]
    if start.size:
        try:
            flux = np.asarray(emulator.predict(start), dtype=float)
        except Exception as err:  # the state is data from a file: any failure means a damaged file
            raise ModelFileError(f"{path!r}: the {model.emulator_name!r} emulator state is damaged (predicting a "
                                 f"training star fails: {type(err).__name__}: {err})") from None
        if flux.shape != (1, wave.size) or not np.all(np.isfinite(flux)):
            raise ModelFileError(f"{path!r}: the {model.emulator_name!r} emulator state is damaged (it predicts "
                                 f"{'non-finite flux' if flux.shape == (1, wave.size) else f'shape {flux.shape}'} "
                                 f"for a training star, expected {wave.size} finite pixels)")


#: How an npz archive (a zip file, possibly empty) and a single ``.npy`` array begin.
_ARCHIVE_MAGIC = (b"PK\x03\x04", b"PK\x05\x06", b"\x93NUMPY")


def _check_archive(path: Path) -> None:
    """A :class:`ModelFileError` if the file at ``path`` is not an npz archive at all (numpy would
    take it for a pickle, and its error would suggest ``allow_pickle``)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(6)
    except OSError as err:
        raise ModelFileError(f"{str(path)!r} cannot be read: {err.strerror or err}") from None
    if not head:
        raise ModelFileError(f"{str(path)!r} is empty, not a slamfw model file (an npz archive)")
    if not head.startswith(_ARCHIVE_MAGIC):
        raise ModelFileError(f"{str(path)!r} is not a slamfw model file (not an npz archive)")


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _check_metadata(meta: dict[str, Any], path: str) -> None:
    """A :class:`ModelFileError` naming the key of the metadata that has the wrong JSON type: the
    label names (a list of distinct strings) and units, the emulator record and the components."""
    names = meta.get("label_names")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
        raise ModelFileError(f"{path!r} is damaged: 'label_names' in its metadata must be a list of label names "
                             f"(non-empty strings), got {names!r}")
    if (twice := repeated(names)).size:
        raise ModelFileError(f"{path!r} is damaged: 'label_names' in its metadata names {name_some(twice)} more "
                             f"than once ({names}); each label column must have its own name")
    units = meta.get("label_units")
    if not isinstance(units, list) or not all(isinstance(u, str) for u in units) or len(units) not in (0, len(names)):
        raise ModelFileError(f"{path!r} is damaged: 'label_units' in its metadata must be a list of "
                             f"{len(names)} strings (one per label, {names}), got {units!r}")
    emu = meta.get("emulator")
    if not isinstance(emu, dict) or not isinstance(emu.get("name"), str) or not isinstance(emu.get("params"), dict):
        raise ModelFileError(f"{path!r} is damaged: 'emulator' in its metadata must be an object with a 'name' "
                             f"(a string) and 'params' (an object), got {_type_name(emu)} {str(emu)[:200]}")
    if not isinstance(emu.get("state", {}), dict):
        raise ModelFileError(f"{path!r} is damaged: 'emulator.state' in its metadata must be an object, got "
                             f"{_type_name(emu['state'])}")
    comps = meta.get("components")
    if comps is None:
        return
    if not isinstance(comps, dict):
        raise ModelFileError(f"{path!r} is damaged: 'components' in its metadata must be an object (role -> "
                             f"record), got {_type_name(comps)} {str(comps)[:200]}")
    for role, rec in comps.items():
        if rec is None:
            continue
        if not isinstance(rec, dict):
            raise ModelFileError(f"{path!r} is damaged: 'components.{role}' in its metadata must be an object "
                                 f"(with 'name' and 'params') or null, got {_type_name(rec)} {str(rec)[:200]}")
        if "name" in rec and not isinstance(rec["name"], str):
            raise ModelFileError(f"{path!r} is damaged: 'components.{role}.name' in its metadata must be a string, "
                                 f"got {_type_name(rec['name'])} {rec['name']!r}")
        if "params" in rec and not isinstance(rec["params"], dict):
            raise ModelFileError(f"{path!r} is damaged: 'components.{role}.params' in its metadata must be an "
                                 f"object, got {_type_name(rec['params'])} {str(rec['params'])[:200]}")


def _error_model(d: Any, label_names: list[str], path: str) -> ErrorModel:
    """The error model of the metadata ``d``, its arrays' shapes and values checked: a
    :class:`ModelFileError` naming the key, and the S/N bin (or cross-validation result) and label,
    of the first bad value."""
    bad = f"{path!r}: its error model"
    if not isinstance(d, dict):
        raise ModelFileError(f"{bad} ('error_model' in its metadata) must be an object, got {_type_name(d)}")
    if d.get("label_names") != label_names:
        raise ModelFileError(f"{bad} is for the labels {d.get('label_names')!r} ('error_model.label_names'), the "
                             f"model's are {label_names}")
    n_lab = len(label_names)

    def array(key: str, value: Any, shape: tuple[int, ...], what: str) -> np.ndarray:
        try:
            arr = np.asarray(value, dtype=float)
        except (TypeError, ValueError):
            arr = None
        if arr is None or arr.shape != shape:
            got = "not an array of numbers" if arr is None else f"of shape {arr.shape}"
            raise ModelFileError(f"{bad} is incomplete: 'error_model.{key}' is {got}, expected shape {shape} "
                                 f"({what})")
        return arr

    def require(key: str, arr: np.ndarray, ok: np.ndarray, rule: str, row: str) -> None:
        ok = np.isfinite(arr) & ok
        if np.all(ok):
            return
        where = np.argwhere(~ok)[0]
        at = f"{row} {where[0]}" + (f", label {label_names[where[1]]!r}" if arr.ndim == 2 else "")
        raise ModelFileError(f"{bad} is damaged: 'error_model.{key}' is {float(arr[tuple(where)])!r} at {at} "
                             f"({int(np.sum(~ok))} such); it must be {rule}")

    snr_value = d.get("snr")
    n_bins = len(snr_value) if isinstance(snr_value, list) else -1
    if n_bins < 1:
        raise ModelFileError(f"{bad} is incomplete: 'error_model.snr' must be a non-empty list of S/N values, "
                             f"got {_type_name(snr_value)}")
    snr = array("snr", snr_value, (n_bins,), "the S/N bins")
    require("snr", snr, snr > 0, "finite and positive", "S/N bin")
    if np.any(np.diff(snr) < 0):
        j = int(np.flatnonzero(np.diff(snr) < 0)[0])
        raise ModelFileError(f"{bad} is damaged: 'error_model.snr' must increase, but bin {j + 1} "
                             f"({float(snr[j + 1])!r}) is below bin {j} ({float(snr[j])!r})")
    grid = (n_bins, n_lab)
    for key, rule in (("scatter", "finite and not negative"), ("bias", "finite"),
                      ("formal2", "finite and not negative"), ("factor", "finite and not negative")):
        arr = array(key, d.get(key), grid, "S/N bins x labels")
        require(key, arr, (arr >= 0) if "negative" in rule else np.ones(grid, bool), rule, "S/N bin")
    if "n" in d:
        n = array("n", d["n"], (n_bins,), "stars per S/N bin")
        require("n", n, n >= 0, "a count", "S/N bin")
    abc = d.get("abc")
    if not isinstance(abc, dict) or not all(isinstance(abc.get(name), dict) for name in label_names):
        raise ModelFileError(f"{bad} is incomplete: 'error_model.abc' must hold a, b, c for each label "
                             f"{label_names}, got {str(abc)[:200]}")
    for name in label_names:
        coef = array(f"abc.{name}", [abc[name].get(k) for k in "abc"], (3,), "a, b, c")
        if not np.all(np.isfinite(coef) & (coef >= 0)):
            raise ModelFileError(f"{bad} is damaged: 'error_model.abc.{name}' is {abc[name]}; a, b and c of "
                                 f"sigma(SNR) = a exp(-b SNR) + c must be finite and not negative")
    for key in ("folds", "neighbours"):
        value = d.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ModelFileError(f"{bad} is damaged: 'error_model.{key}' must be a whole number of at least 0, "
                                 f"got {value!r}")
    if not isinstance(d.get("inferer", ""), str):
        raise ModelFileError(f"{bad} is damaged: 'error_model.inferer' must be a string, got {d['inferer']!r}")
    if d.get("neighbours"):
        cv = d.get("cv")
        rows = len(cv["snr"]) if isinstance(cv, dict) and isinstance(cv.get("snr"), list) else -1
        if rows < 2:
            raise ModelFileError(f"{bad} is incomplete: with 'error_model.neighbours' = {d['neighbours']} it needs "
                                 f"'error_model.cv' with the cross-validation results (at least 2), got "
                                 f"{_type_name(cv) if rows < 0 else f'{rows} result(s)'}")
        for key, shape, rule in (("snr", (rows,), "finite and positive"), ("labels", (rows, n_lab), "finite"),
                                 ("delta", (rows, n_lab), "finite"),
                                 ("formal", (rows, n_lab), "finite and not negative")):
            arr = array(f"cv.{key}", cv.get(key), shape, f"{rows} cross-validation results"
                        + (" x labels" if len(shape) == 2 else ""))
            ok = arr > 0 if "positive" in rule else arr >= 0 if "negative" in rule else np.ones(shape, bool)
            require(f"cv.{key}", arr, ok, rule, "cross-validation result")
    return ErrorModel.from_dict(d)


def _chi2_reference(value: Any) -> dict[str, float] | None:
    """The ``train_chi2`` metadata as floats, or None (absent: a model from before it existed)."""
    if value is None:
        return None
    if not isinstance(value, dict) or "p99" not in value:
        raise ValueError(f"train_chi2 must be a mapping with 'p99', got {value!r}")
    out = {str(k): float(v) for k, v in value.items()}
    if all(np.isnan(v) for v in out.values()):   # no training star had a finite chi^2: no reference (as written)
        return None
    bad = {k: v for k, v in out.items() if not (np.isfinite(v) and (v > 0 if k == "p99" else v >= 0))}
    if bad:     # flag_chi2_train compares with p99: a NaN p99 never flagged a star, a negative one flagged all
        raise ValueError(f"train_chi2 (the training stars' reduced chi^2, whose p99 flag_chi2_train compares with) "
                         f"must be finite and not negative, p99 positive; got {bad}")
    return out


def component_names(path: str | os.PathLike) -> list[tuple[str, str]]:
    """(kind, name) of the components the model file at ``path`` records: its emulator, then its
    reader, normalizer, inferer and prior where set, read from its metadata alone (its arrays
    are not read, no plugin is looked up). Empty if the file cannot be read as a model (then
    :meth:`SlamfwModel.load` says why)."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            meta = json.loads(str(npz[_META_KEY]))
        records = [("emulator", meta["emulator"]), *dict(meta.get("components") or {}).items()]
    except Exception:      # anything at all: the model's own load reports it
        return []
    return [(str(kind), rec["name"]) for kind, rec in records
            if isinstance(rec, dict) and isinstance(rec.get("name"), str)]


def _drop_retired_params(meta: dict[str, Any]) -> None:
    """Remove the execution settings earlier versions stored with the components (in place), from
    every component whose class (if installed) does not declare them as parameters."""
    from .registry import lookup
    records = [("emulator", meta.get("emulator", {})),
               *((role, rec) for role, rec in (meta.get("components") or {}).items())]
    for kind, rec in records:
        params = rec.get("params") if isinstance(rec, dict) else None
        if not isinstance(params, dict):
            continue
        found = lookup(kind, rec.get("name", "")) if rec.get("name") else None
        declared = set(found.cls.Params.model_fields) if found is not None else set()
        for key in RETIRED_PARAMS:
            if key not in declared:
                params.pop(key, None)
