"""Training: read, hold back, prepare, (clean), fit the emulator, build the model.

Every step goes through the registries; the core names no plugin.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import registry
from ..components.base import ParamRole, params_with_role
from ..components.emulator import Emulator
from ..components.normalizer import Normalizer
from ..config import ExperimentConfig, Selected, selected
from ..errors import ConfigError, DataError, name_some
from ..execution.store import ChunkStore
from ..model import SlamfwModel
from ..data.catalog import check_label_names
from ..data.files import REJECTED_FILE, write_rejected
from ..data.spectra import SpectralSet
from ..preprocess import prepare, rest_frame_rv
from ..stats.likelihood import likelihood_weights, reduced_chi2
from ..stats.standardize import Standardizer, label_namer, pixel_namer
from .calibrate import RawSource, fit_error_model
from .cleaning import clean_training_set
from .execution import executing
from .outdir import forced

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    model: SlamfwModel
    train: SpectralSet
    held_ids: np.ndarray
    dropped_ids: np.ndarray | None = None  # stars removed by training-set cleaning; None: it did not run
    train_time_s: float = 0.0


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


def check_pixels(train: SpectralSet) -> None:
    """Error naming the label, or the pixel (and wavelength), that is constant or unusable across
    the training set."""
    Standardizer(label_namer(train.label_names), remedy="Leave the label out of `labels`, or train on stars over "
                 "which it varies.").fit(train.labels)
    Standardizer(pixel_namer(train.wave), remedy="Mask it, or narrow the wavelength range.").fit(
        train.flux, train.ivar > 0)


def reading_params(sel: Selected) -> dict[str, Any]:
    """A reader's parameters that say how to read, not which data (no input paths, no selections)."""
    cls = sel.cls
    drop = set(params_with_role(cls, ParamRole.INPUT_PATH)) | set(params_with_role(cls, ParamRole.SELECTION))
    return {k: v for k, v in sel.params.items() if k not in drop}


def source_key(sel: Selected) -> str:
    """What identifies a reader's data: its name and input paths (or, reading no files, its parameters)."""
    cls = sel.cls
    paths = {k: sel.params[k] for k in params_with_role(cls, ParamRole.INPUT_PATH)}
    what = paths or {k: v for k, v in sel.params.items() if k not in params_with_role(cls, ParamRole.SELECTION)}
    return json.dumps([sel.name, what], sort_keys=True, default=str)


def make_normalizer(cfg: ExperimentConfig) -> Normalizer | None:
    sel = selected(cfg, "normalizer")
    return None if sel is None else sel.build()


def _component_record(sel: Selected | None, params: dict[str, Any] | None = None) -> dict[str, Any] | None:
    return None if sel is None else {"name": sel.name, "params": sel.params if params is None else params}


@dataclass
class PreparedTraining:
    """The training side of an experiment, read and prepared once (``compare`` fits every
    emulator on it): the prepared training set, and the ids of the stars held back."""

    train: SpectralSet
    held_ids: np.ndarray
    #: The raw training spectra (before preparation), which the calibration degrades; None: not kept.
    raw: SpectralSet | None = None


def labelled_training_set(raw: SpectralSet) -> SpectralSet:
    """``raw`` without the stars that miss a requested label (logged); an error naming how many
    stars miss each label when that leaves none."""
    if raw.labels is not None and raw.n_stars:
        missing = np.isnan(raw.labels)
        if missing.any(axis=1).all():
            counts = ", ".join(f"{name} on {int(n)}" for name, n in zip(raw.label_names, missing.sum(axis=0)))
            raise DataError(f"training set: every one of the {raw.n_stars} stars misses a requested label (missing: "
                            f"{counts}); check the config's labels and the reader's label columns")
    return raw.drop_unlabelled("training set")


def unknown_rv_training_stars(raw: SpectralSet, cfg: ExperimentConfig) -> np.ndarray:
    """(N,) bool: the training stars whose radial velocity is unknown
    (:func:`slamfw.preprocess.rest_frame_rv`), which training leaves out with a warning naming
    them: unshifted, their spectra would teach the emulator lines in the wrong place. An error,
    naming ``preprocess.rv_correct``, when that is every star."""
    _, unknown = rest_frame_rv(raw, cfg.preprocess)
    if unknown.any():
        n = int(unknown.sum())
        if n == raw.n_stars:
            raise DataError(f"training set: none of the {n} stars has a finite rv, so none can be shifted to the "
                            f"rest frame; set preprocess.rv_correct = false if the spectra are at rest already")
        log.warning("training set: leaving out %d star(s) whose rv is not finite (%s): they cannot be shifted to "
                    "the rest frame", n, name_some(raw.ids[unknown]))
    return unknown


def prepare_training(cfg: ExperimentConfig) -> PreparedTraining:
    """Read the training data, hold back ``data.train.holdout`` of it, prepare the rest."""
    data_sel = selected(cfg, "data.train")
    if data_sel is None:
        raise ConfigError("data.train: no training data configured (or set emulator.model to load one)")
    with executing(cfg):
        reader = data_sel.build()
        raw = labelled_training_set(reader.read().select_labels(cfg.labels))
        check_label_names(raw.label_names, "training set")
        if (prior_sel := selected(cfg, "prior")) is not None:     # its labels and files, before the training
            prior_sel.build().fit(raw.labels, raw.label_names)
        write_rejected(reader, Path(cfg.output.dir) / REJECTED_FILE, "train", force=forced())
        held = holdout_mask(raw.ids, cfg.data.train.holdout, cfg.seed)
        if held.any():
            log.info("training set: holding back %d of %d stars for testing (holdout=%g, seed=%d)",
                     int(held.sum()), raw.n_stars, cfg.data.train.holdout, cfg.seed)
        if held.all():
            raise ConfigError(f"data.train.holdout = {cfg.data.train.holdout:g} holds back all {raw.n_stars} stars of "
                              f"the training set, leaving none to train on: lower it")
        raw_train = raw.subset(~held)
        raw_train = raw_train.subset(~unknown_rv_training_stars(raw_train, cfg))
        trainset = prepare(raw_train, cfg.preprocess, make_normalizer(cfg), what="training set")
    check_pixels(trainset)
    return PreparedTraining(trainset, raw.ids[held], raw_train)


def _clean(cfg: ExperimentConfig, emulator: Emulator, trainset: SpectralSet) -> tuple[SpectralSet, np.ndarray | None]:
    """Training-set cleaning (paper §4.2) when ``data.train.clean`` asks for it."""
    spec = cfg.data.train.clean
    if spec is None or not spec.enabled:
        return trainset, None
    inf_sel = selected(cfg, "inferer")
    if inf_sel is None:
        raise ConfigError("data.train.clean needs an inferer section to predict the held-out labels")
    keep, _ = clean_training_set(emulator, inf_sel.build(), trainset, spec.folds, spec.nsigma, cfg.seed)
    return trainset.subset(keep), trainset.ids[~keep]


def train(cfg: ExperimentConfig, prepared: PreparedTraining | None = None, *,
          keep_checkpoints: bool = False) -> TrainResult:
    """Read, prepare and (optionally) clean the training set, fit the emulator, build the model.

    ``prepared`` reuses a training set read and prepared before. The emulator may keep finished
    pieces of its training under ``output.dir/.checkpoints/train`` (``Emulator.workdir``), so a
    killed training resumes; they are removed once it succeeds, or with ``keep_checkpoints`` left
    for the caller to remove (:func:`remove_training_checkpoints`) once the model file is written.
    """
    emu_sel = selected(cfg, "emulator")
    if emu_sel is None:
        raise ConfigError("emulator: no emulator section in the config")
    if cfg.calibration.enabled and cfg.calibration.inferer:   # before any work
        registry.get_component("inferer", cfg.calibration.inferer, where="calibration.inferer")
    with executing(cfg):   # one executor for reading, preparing, cleaning and fitting
        result = _train(cfg, emu_sel, prepared or prepare_training(cfg))
    if not keep_checkpoints:
        remove_training_checkpoints(cfg)
    return result


def remove_training_checkpoints(cfg: ExperimentConfig) -> None:
    """Remove ``output.dir/.checkpoints/train``: the finished pieces of a training (and its
    calibration) that a rerun would reuse."""
    ChunkStore(_checkpoints(cfg)).remove()


def _checkpoints(cfg: ExperimentConfig) -> Path:
    return Path(cfg.output.dir) / ".checkpoints" / "train"


def training_chi2(emulator: Emulator, trainset: SpectralSet) -> dict[str, float]:
    """The median and 99th percentile of the training stars' reduced chi^2 at their own labels,
    with the model error in the likelihood as the inferers use it: what a spectrum like the
    training set reaches (the reference of ``flag_chi2_train``)."""
    model_flux = emulator.predict(trainset.labels)
    w = likelihood_weights(trainset.weight_ivar, getattr(emulator, "model_error_", None))
    red = reduced_chi2(trainset.flux, w, model_flux, trainset.labels.shape[1])
    red = red[np.isfinite(red)]
    if red.size == 0:
        return {"median": float("nan"), "p99": float("nan")}
    return {"median": float(np.median(red)), "p99": float(np.percentile(red, 99))}


#: Training labels further than this many times their label's 10-90 % range beyond that range
#: are warned about (placeholders for missing values, like -9999).
OUTLYING_LABEL_RANGES = 2.0


def warn_outlying_labels(trainset: SpectralSet) -> list[str]:
    """Warn, per label, about training stars whose value lies further than
    :data:`OUTLYING_LABEL_RANGES` times the label's 10-90 % range below its 10th or above its
    90th percentile: a placeholder for a missing value (-9999), which the emulator would learn as
    a star (a test star then got Teff = -9432 K, converged and unflagged), or real stars far from
    the rest, which it learns from few neighbours (the whole MILES library: 13 O and B stars of
    17,760-36,000 K). Returns the warnings."""
    said = []
    for j, name in enumerate(trainset.label_names):
        col = np.asarray(trainset.labels[:, j], float)
        finite = np.isfinite(col)
        if finite.sum() < 10:
            continue
        lo, hi = np.percentile(col[finite], [10, 90])
        width = OUTLYING_LABEL_RANGES * (hi - lo)
        if not width > 0:
            continue
        far = finite & ((col < lo - width) | (col > hi + width))
        if far.any():
            first = np.flatnonzero(far)[:3]
            said.append(f"training label {name!r}: {int(far.sum())} star(s) lie outside {lo - width:.6g} to "
                        f"{hi + width:.6g} ({OUTLYING_LABEL_RANGES:g} times the 10-90 % range beyond it): "
                        + ", ".join(f"{trainset.ids[i]} = {col[i]:.6g}" for i in first)
                        + ("" if far.sum() <= 3 else f" and {int(far.sum()) - 3} more")
                        + ". The emulator learns each as a star: a value that stands for a missing one (like "
                          "-9999) must be left out (the reader's `where`, e.g. "
                          f"--set data.train.<reader>.where.{name}=[low,high]); real stars there have few "
                          "neighbours to learn from")
    for text in said:
        log.warning(text)
    return said


def _train(cfg: ExperimentConfig, emu_sel: Selected, prepared: PreparedTraining) -> TrainResult:
    emulator = emu_sel.build()
    t0 = time.perf_counter()
    trainset, dropped = _clean(cfg, emulator, prepared.train)
    warn_outlying_labels(trainset)
    log.info("training %s on %d stars x %d pixels", emu_sel.name, trainset.n_stars, trainset.n_pixels)
    workdir = ChunkStore(_checkpoints(cfg))
    emulator.workdir = workdir.folder
    emulator.fit(trainset.labels, trainset.flux, trainset.ivar)
    emulator.workdir = None
    elapsed = time.perf_counter() - t0
    log.info("training took %.1f s", elapsed)
    warn_if_flat(emulator, emu_sel.name)
    data_sel = selected(cfg, "data.train")
    model = SlamfwModel(
        emulator=emulator, emulator_name=emu_sel.name, wave=trainset.wave,
        label_names=list(trainset.label_names), label_units=list(trainset.label_units),
        train_labels=trainset.labels, train_ids=trainset.ids,
        components={"reader": _component_record(data_sel, reading_params(data_sel)),
                    "normalizer": _component_record(selected(cfg, "normalizer")),
                    "inferer": _component_record(selected(cfg, "inferer")),
                    "prior": _component_record(selected(cfg, "prior"))},
        preprocess=cfg.preprocess.model_dump(), train_hash=trainset.fingerprint(), medium=trainset.medium)
    model.train_chi2 = training_chi2(emulator, trainset)
    model.error_model = _error_model(cfg, emu_sel, trainset, prepared.raw, workdir.folder)
    return TrainResult(model, trainset, prepared.held_ids, dropped, elapsed)


def warn_if_flat(emulator: Emulator, name: str) -> bool:
    """Warn (and return True) when the emulator's cross-validated MSE (``cv_mse_``, (P,), in
    standardised flux: 1 is the training set's own scatter) is at least 0.9 at every pixel: it
    predicts no pixel much better than the mean spectrum, so labels inferred with it are barely
    constrained by the spectra (large errors; infinite, and not converged, where the emulator does
    not depend on them at all), as with too strong a regularisation."""
    cv_mse = getattr(emulator, "cv_mse_", None)
    cv_mse = np.asarray(cv_mse if cv_mse is not None else np.nan, float)
    if not cv_mse.ndim or not np.isfinite(cv_mse).any() or np.nanmin(cv_mse) < 0.9:
        return False
    log.warning("%s: the cross-validated MSE is at least %.2f at every pixel (1 is the scatter of the training "
                "spectra about their mean): the emulator predicts no pixel better than the mean spectrum, and "
                "the spectra barely constrain labels inferred with it; check its parameters (a regularisation "
                "too strong, an epsilon wider than the flux's scatter)", name, float(np.nanmin(cv_mse)))
    return True


def _error_model(cfg: ExperimentConfig, emu_sel: Selected, trainset: SpectralSet, raw: SpectralSet | None,
                 workdir: Path | None = None):
    """The error model (``[calibration]``), fitted on the training set; None when it is disabled
    or no inferer is configured. ``workdir``: where the folds' emulators keep finished pieces of
    their training (``Emulator.workdir``)."""
    inf_sel = selected(cfg, "inferer")
    if not cfg.calibration.enabled or inf_sel is None:
        return None
    prior_sel = selected(cfg, "prior")
    t0 = time.perf_counter()
    use_raw = raw is not None and cfg.calibration.degrade == "raw"
    source = RawSource(raw, cfg.preprocess, make_normalizer(cfg)) if use_raw else None
    inferer = inf_sel.build()
    if cfg.calibration.inferer and cfg.calibration.inferer != inf_sel.name:
        table = cfg.inferer.extras().get(cfg.calibration.inferer)
        inferer = registry.create("inferer", cfg.calibration.inferer, table if isinstance(table, dict) else {},
                                  where="calibration.inferer")
    prior = None if prior_sel is None else prior_sel.build()
    if prior is not None and prior.per_star:
        log.info("calibration: the prior %r differs from star to star and does not cover the training stars: "
                 "the cross-validation runs without it", prior_sel.name)
        prior = None
    em = fit_error_model(emu_sel.build(), inferer, prior,
                         trainset, cfg.calibration.folds, cfg.calibration.snr, cfg.seed, source,
                         cfg.calibration.neighbours, cfg.calibration.max_stars, workdir)
    em.inferer = cfg.calibration.inferer or inf_sel.name
    log.info("calibration (error model, %d folds x %d S/N) took %.1f s", cfg.calibration.folds,
             len(cfg.calibration.snr), time.perf_counter() - t0)
    return em
