"""The Python API: what the ``slamfw`` commands do, as functions (see ``docs/python-api.md``).

    from slamfw import api
    res = api.run("examples/demo/experiment.toml", ["emulator.name=cannon", "output.dir=runs/c"])
    model = api.load_model("runs/c/model.npz")
    data, labels = api.predict(model, spectra)           # a SpectralSet, or a path for the model's reader
    table = api.catalog(data, labels, model)             # an astropy Table, as `slamfw predict` writes
    api.predict_catalog(model, "cat.fits", reader="mock", reader_params={"n_stars": 10**6})   # streamed

Work runs on the config's executor (``[executor]``), or, for ``predict``, on ``executor`` or the
one in use (``with slamfw.using_executor(...)``); by default on local worker processes.

Configs may be given as a path (TOML/YAML), a dict (relative paths are the working directory's),
or an :class:`~slamfw.config.ExperimentConfig`; ``overrides`` are ``--set`` assignments.
"""
from __future__ import annotations

import copy
import logging
import os
from pathlib import Path
from typing import Any, Sequence

from astropy.table import Table

from .components.executor import Executor
from .components.inferer import Inferer
from .config import ExperimentConfig, apply_override, load_config, validate_config
from .config.loading import override_key
from .data.catalog import make_catalog
from .data.results import LabelResult
from .data.spectra import SpectralSet
from .errors import ConfigError, DataError, ModelFileError
from .model import SlamfwModel
from .stats.quality import flagged_fraction, warn_if_unlike_training
from .workflows.compare import CompareResult, compare_emulators
from .workflows.execution import executing
from .workflows.predict import PredictResult, predict_catalog as _predict_catalog
from .workflows.infer import (
    infer_chunked, model_inferer, model_labels_only, model_prior, predict as _predict, prepare_for_model,
)
from .workflows.outdir import check_catalog_output
from .workflows.reuse import short_repr
from .workflows.run import RunResult, run_experiment, run_train
from .workflows.train import TrainResult, train as _train

__all__ = ["config", "run", "train", "train_to_folder", "compare", "load_model", "predict", "predict_catalog",
           "catalog"]

ConfigLike = str | os.PathLike | dict | ExperimentConfig


def _strings(value: Any, what: str) -> list[str]:
    """``value`` as a list of strings (one string: a list of it), or a ConfigError naming ``what``
    (a string was iterated character by character: "['n'] listed more than once")."""
    if isinstance(value, str):
        return [value]
    try:
        items = list(value)
    except TypeError:
        items = None
    if items is None or not all(isinstance(v, str) for v in items):
        raise ConfigError(f"{what}: expected a list of strings, got {_kind(value)}")
    return items


def _expect(value: Any, kinds: tuple[type, ...], what: str, error: type[Exception] = ConfigError) -> None:
    """An ``error`` naming ``what`` when ``value`` (not None) is none of ``kinds``."""
    if value is not None and not isinstance(value, kinds):
        names = " or ".join(k.__name__ for k in kinds)
        raise error(f"{what}: expected {names}, got {_kind(value)}")


def config(source: ConfigLike, overrides: Sequence[str] = ()) -> ExperimentConfig:
    """An experiment config from a file, a dict or a config, with ``--set``-style ``overrides``."""
    overrides = _strings(overrides, "overrides (\"key=value\", as --set takes)")
    if isinstance(source, ExperimentConfig):
        if not overrides:
            return source
        raw, base, overridden = source.model_dump(exclude_none=True), source._base_dir, set(source._overridden)
    elif isinstance(source, dict):
        raw, base, overridden = copy.deepcopy(source), None, set()
    elif isinstance(source, (str, os.PathLike)):
        return load_config(source, list(overrides))
    else:
        raise ConfigError(f"a config is a file's path, a dict or an ExperimentConfig, not {_kind(source)}")
    for item in overrides:
        apply_override(raw, item)
    return validate_config(raw, base, overridden | {override_key(o) for o in overrides})


def run(source: ConfigLike, overrides: Sequence[str] = (), *, force: bool | None = None) -> RunResult:
    """``slamfw run``: train (or load) the model, infer the test set, write catalogue and report
    into ``output.dir`` (locked while it runs, marked complete last). ``force``: overwrite existing
    files there that slamfw did not write (``--force``), else they raise ``OutputError``; None: as
    an enclosing ``with slamfw.workflows.outdir.forcing():`` block says, else no."""
    return run_experiment(config(source, overrides), force=force)


def train(source: ConfigLike, overrides: Sequence[str] = ()) -> TrainResult:
    """Train the config's emulator on its training set, in memory (nothing is written); ``.model``
    is the :class:`SlamfwModel` (``.model.save(path)`` writes it), ``.train`` the prepared
    training set. ``slamfw train``, which also writes the model file, is :func:`train_to_folder`."""
    return _train(config(source, overrides))


def train_to_folder(source: ConfigLike, overrides: Sequence[str] = (), *, force: bool | None = None) -> Path:
    """``slamfw train``: train and write the model file into ``output.dir`` (it always trains; the
    folder is locked and marked complete as for :func:`run`); returns the model file's path.
    ``force`` as for :func:`run`."""
    return run_train(config(source, overrides), force=force)[1]


def compare(source: ConfigLike, emulators: Sequence[str] | None = None, overrides: Sequence[str] = (), *,
            force: bool | None = None) -> CompareResult:
    """``slamfw compare``: every emulator on the same data; writes compare.json/md and figures into
    ``output.dir`` and each emulator's run into ``output.dir/<emulator>``. ``force`` as for :func:`run`."""
    names = _strings(emulators, "emulators (names, such as \"slam\")") if emulators else None
    return compare_emulators(config(source, overrides), names, force=force)


def load_model(path: str | os.PathLike) -> SlamfwModel:
    """A model file written by ``slamfw run``/``train`` (safe: no pickle)."""
    if not isinstance(path, (str, os.PathLike)):
        raise ModelFileError(f"a model file is given by its path, not {_kind(path)}")
    return SlamfwModel.load(path)


def _kind(value: Any) -> str:
    """``value``'s type and a short repr, for an error message."""
    return f"{type(value).__name__} {short_repr(value, 60)}"


def predict(model: SlamfwModel | str | os.PathLike, data: SpectralSet | str | os.PathLike | None = None, *,
            reader: str | None = None, reader_params: dict[str, Any] | None = None, inferer: Inferer | None = None,
            chunk_size: int = 500, checkpoint_dir: str | os.PathLike | None = None,
            executor: Executor | None = None) -> tuple[SpectralSet, LabelResult]:
    """Labels for a survey, prepared exactly like the model's training set.

    ``data`` is a :class:`SpectralSet` (raw spectra: they are shifted, normalised and resampled
    here), or a path read by the model's reader (or ``reader``), or None for a reader that reads
    no files. Returns the prepared spectra (N stars) and their :class:`LabelResult` (N, L); all in
    memory (for a survey of any size, :func:`predict_catalog` streams instead).
    """
    if not isinstance(model, SlamfwModel):
        model = load_model(model)
    if not (data is None or isinstance(data, (SpectralSet, str, os.PathLike))):
        raise DataError(f"data is a SpectralSet, a path or None, not {_kind(data)}")
    _check_predict_args(reader, reader_params, executor)
    _expect(inferer, (Inferer,), "inferer (an inferer, e.g. slamfw.registry.create(\"inferer\", \"lm\", {...}))")
    if checkpoint_dir is not None and Path(checkpoint_dir).exists() and not Path(checkpoint_dir).is_dir():
        raise ConfigError(f"checkpoint_dir {str(checkpoint_dir)!r} is a file, not a folder")
    with _executor(executor):
        if isinstance(data, SpectralSet):
            prepared = prepare_for_model(model_labels_only(data, model), model, what="the spectra")
            out = prepared, infer_chunked(model, inferer or model_inferer(model), prepared, chunk_size, checkpoint_dir,
                                          model_prior(model))
        else:
            path = None if data is None else str(Path(data))
            out = _predict(model, path, reader, reader_params, inferer, chunk_size, checkpoint_dir)
    warn_if_unlike_training(*flagged_fraction(out[1].extra), logging.getLogger("slamfw.api"),
                            "the spectra" if isinstance(data, SpectralSet) or data is None else str(data))
    return out


def predict_catalog(model: SlamfwModel | str | os.PathLike, output: str | os.PathLike,
                    data: str | os.PathLike | None = None, *, reader: str | None = None,
                    reader_params: dict[str, Any] | None = None, chunk_size: int = 500,
                    executor: Executor | None = None, force: bool | None = None,
                    inferer_params: dict[str, Any] | None = None) -> PredictResult:
    """``slamfw predict``: stream a survey through the model into the catalogue ``output`` (.fits or
    .ecsv), chunk by chunk, resumable; memory does not grow with the number of spectra. The
    output path is checked before the model is loaded; ``force`` as for :func:`run`;
    ``inferer_params`` change the model's inferer's parameters (``--inferer-param``)."""
    _expect(output, (str, os.PathLike), "output (the catalogue's path)")
    if isinstance(data, SpectralSet):
        raise DataError("predict_catalog streams a survey read from files (data: a path, or None); for spectra in "
                        "memory, use slamfw.api.predict and slamfw.api.catalog")
    _expect(data, (str, os.PathLike), "data (the survey's path)", DataError)
    _check_predict_args(reader, reader_params, executor)
    _expect(inferer_params, (dict,), "inferer_params (parameter -> value, as --inferer-param)")
    check_catalog_output(output, force)
    if not isinstance(model, SlamfwModel):
        model = load_model(model)
    return _predict_catalog(model, output, None if data is None else str(Path(data)), reader, reader_params,
                            chunk_size, executor, force=force, inferer_params=inferer_params)


def _check_predict_args(reader: Any, reader_params: Any, executor: Any) -> None:
    _expect(reader, (str,), "reader (a reader's name)")
    _expect(reader_params, (dict,), "reader_params (parameter -> value, as --reader-param)")
    _expect(executor, (Executor,), "executor (an executor, e.g. slamfw.LocalExecutor(workers=2))")


def _executor(executor: Executor | None):
    from .components.executor import using_executor
    return executing(None) if executor is None else using_executor(executor)


def catalog(data: SpectralSet, result: LabelResult, model: SlamfwModel) -> Table:
    """The label catalogue (astropy Table) of ``data`` with the inferred ``result``."""
    for value, kind, what in ((data, SpectralSet, "data"), (result, LabelResult, "result"),
                              (model, SlamfwModel, "model")):
        if not isinstance(value, kind):
            raise DataError(f"catalog(data, result, model): {what}: expected {kind.__name__}, got {_kind(value)}")
    if result.n != data.n_stars:
        raise DataError(f"catalog: result holds {result.n} stars, data {data.n_stars}: give the spectra that "
                        f"api.predict returned with it")
    return make_catalog(data.ids, result, model.label_units, snr=data.meta_column("snr"), true_labels=data.labels,
                        ra=data.meta.get("ra"), dec=data.meta.get("dec"))
