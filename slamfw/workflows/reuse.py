"""Reusing a finished model: is the model file in ``output.dir`` the one this config would train?

``slamfw run`` trains only when it is not: the model's training-set hash, labels, emulator and
parameters, pre-processing, reader, normaliser, inferer, prior, and the seed, hold-out, cleaning
and calibration settings (``components["training"]``, :func:`training_record`) must all match.
:func:`reusable_model` logs, key by key, why a model is not reused.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from ..config import ExperimentConfig, selected
from ..errors import SlamfwError
from ..model import SlamfwModel
from .train import PreparedTraining, _component_record, reading_params

log = logging.getLogger(__name__)


def _calibration_record(cfg: ExperimentConfig) -> dict[str, Any] | None:
    """The calibration settings a model is trained with (None: no error model is fitted)."""
    inf_sel = selected(cfg, "inferer")
    if not cfg.calibration.enabled or inf_sel is None:
        return None
    rec = cfg.calibration.model_dump()
    rec["inferer"] = cfg.calibration.inferer or inf_sel.name
    if cfg.calibration.inferer and cfg.calibration.inferer != inf_sel.name:
        table = cfg.inferer.extras().get(cfg.calibration.inferer)
        rec["inferer_params"] = table if isinstance(table, dict) else {}
    return rec


def training_record(cfg: ExperimentConfig, prepared: PreparedTraining) -> dict[str, Any]:
    """What a run records in the model (``components["training"]``) beside the emulator, reader,
    normaliser, inferer, prior and pre-processing, so a later run can tell whether it would train
    the same model: the seed, hold-out, cleaning and calibration settings, and the hash of the
    prepared training set before cleaning."""
    clean = cfg.data.train.clean if cfg.data.train is not None else None
    return {"seed": cfg.seed, "holdout": cfg.data.train.holdout if cfg.data.train is not None else 0.0,
            "clean": clean.model_dump() if clean is not None and clean.enabled else None,
            "calibration": _calibration_record(cfg), "prepared_hash": prepared.train.fingerprint()}


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def _differences(key: str, have: Any, want: Any, out: list[str]) -> None:
    """Append ``key.sub: the model has X, the config asks for Y`` for every leaf that differs."""
    have, want = _plain(have), _plain(want)
    if have == want:
        return
    if isinstance(have, dict) and isinstance(want, dict):
        for k in sorted(set(have) | set(want), key=str):
            if k not in have or k not in want:
                side = "the model has no" if k not in have else "the config has no"
                out.append(f"{key}.{k}: {side} {k!r}")
            else:
                _differences(f"{key}.{k}", have[k], want[k], out)
        return
    out.append(f"{key}: the model has {short_repr(have)}, the config asks for {short_repr(want)}")


def short_repr(value: Any, n: int = 120) -> str:
    """``repr(value)``, cut to ``n`` characters (ending in "...") for an error message."""
    text = repr(value)
    return text if len(text) <= n else text[:n - 3] + "..."


def _name_or_nothing(name: str | None) -> str:
    return repr(name) if name else "nothing"


def _component_differences(key: str, have: dict[str, Any] | None, want: dict[str, Any] | None,
                           out: list[str]) -> None:
    have_name, want_name = (have or {}).get("name"), (want or {}).get("name")
    if have_name != want_name:
        out.append(f"{key}: the model has {_name_or_nothing(have_name)}, the config asks for "
                   f"{_name_or_nothing(want_name)}")
    elif want is not None:
        _differences(f"{key}.{want_name}", (have or {}).get("params", {}), want.get("params", {}), out)


def _reuse_differences(cfg: ExperimentConfig, model: SlamfwModel, prepared: PreparedTraining) -> list[str]:
    """Why ``model`` is not the model this config would train on ``prepared`` (empty: it is)."""
    out: list[str] = []
    emu_sel = selected(cfg, "emulator")
    if list(model.label_names) != list(cfg.labels):
        out.append(f"labels: the model has {list(model.label_names)}, the config asks for {list(cfg.labels)}")
    if model.emulator_name != emu_sel.name:
        out.append(f"emulator.name: the model has {model.emulator_name!r}, the config asks for {emu_sel.name!r}")
    else:
        _differences(f"emulator.{emu_sel.name}", model.emulator.get_params(), emu_sel.build().get_params(), out)
    _differences("preprocess", model.preprocess, cfg.preprocess.model_dump(), out)
    data_sel = selected(cfg, "data.train")
    comps = model.components or {}
    _component_differences("data.train", comps.get("reader"), _component_record(data_sel, reading_params(data_sel)),
                           out)
    for section in ("normalizer", "inferer", "prior"):
        _component_differences(section, comps.get(section), _component_record(selected(cfg, section)), out)
    want = training_record(cfg, prepared)
    rec = comps.get("training")
    if isinstance(rec, dict):
        for k, key in (("seed", "seed"), ("holdout", "data.train.holdout"), ("clean", "data.train.clean"),
                       ("calibration", "calibration")):
            _differences(key, rec.get(k), want[k], out)
    else:   # a model written by an earlier slamfw, or saved from the Python API: what its metadata says
        if want["clean"] is not None:
            out.append("data.train.clean: the model does not record its training-set cleaning")
        em = model.error_model
        cal = want["calibration"]
        if (em is None) != (cal is None):
            out.append(f"calibration: the model has {'no' if em is None else 'an'} error model, the config "
                       f"{'asks for one' if cal is not None else 'fits none'}")
        elif em is not None and cal is not None:
            for k, have_v in (("folds", em.folds), ("neighbours", em.neighbours), ("inferer", em.inferer)):
                _differences(f"calibration.{k}", have_v, cal[k], out)
    if out:
        return out
    if want["clean"] is None:
        same = model.train_hash == want["prepared_hash"]
    else:
        same = rec.get("prepared_hash") == want["prepared_hash"] and model.train_hash == \
            prepared.train.subset(np.isin(prepared.train.ids, model.train_ids)).fingerprint()
    if not same:
        out.append(f"the training data differ (the prepared training set's hash is {want['prepared_hash'][:16]}, "
                   f"the model was trained on {model.train_hash[:16]})")
    return out


def differences_text(differences: list[str], k: int = 6) -> str:
    """The first ``k`` of ``differences`` (``key: the model has X, the config asks for Y``) for a
    log line, joined by "; ", then "; and N more"."""
    return "; ".join(differences[:k]) + (f"; and {len(differences) - k} more" if len(differences) > k else "")


def ignored_for_a_loaded_model(cfg: ExperimentConfig, model: SlamfwModel) -> list[str]:
    """The settings of ``cfg`` that a run loading ``model`` (``emulator.model``) does not use,
    because the model's own are used: its emulator, pre-processing and normaliser (each as
    ``key: the model has X, the config asks for Y``; empty when they agree)."""
    out: list[str] = []
    emu_sel = selected(cfg, "emulator")
    if emu_sel is not None and emu_sel.name and emu_sel.name != model.emulator_name:
        out.append(f"emulator.name: the model has {model.emulator_name!r}, the config asks for {emu_sel.name!r}")
    _differences("preprocess", model.preprocess, cfg.preprocess.model_dump(), out)
    _component_differences("normalizer", (model.components or {}).get("normalizer"),
                           _component_record(selected(cfg, "normalizer")), out)
    return out


def reusable_model(cfg: ExperimentConfig, prepared: PreparedTraining, path: Path) -> SlamfwModel | None:
    """The model at ``path`` if it is the one this config would train on ``prepared``: the same
    training-set hash, labels, emulator and parameters, pre-processing, reader, normaliser,
    inferer, prior, seed, hold-out, cleaning and calibration settings. Else None, and the log says
    why (when there is a model file)."""
    if not path.is_file():
        return None
    try:
        model = SlamfwModel.load(path)
    except SlamfwError as err:
        log.info("training: the model file %s cannot be reused (%s)", path, err)
        return None
    why = _reuse_differences(cfg, model, prepared)
    if why:
        log.info("training a new model: the model file %s differs from what this config trains: %s", path,
                 differences_text(why))
        return None
    log.info("reusing the model %s (trained %s): the same prepared training set (hash %s), emulator %s with the "
             "same parameters, pre-processing, normaliser, inferer, prior and calibration settings; not training "
             "(delete the file to retrain)", path, model.created or "earlier", model.train_hash[:16],
             model.emulator_name)
    return model
