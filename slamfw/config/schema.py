"""The pydantic experiment configuration.

Every component section holds the core's keys (``name``, and for some kinds ``model``, ``reader``,
``holdout``, ``clean``) and one parameter table per component name; only the table of the selected
component is used and validated (by the ``Params`` model the plugin declares)::

    seed = 42
    labels = ["Teff", "logg", "FeH"]
    [data.train]          reader = "miles", holdout = 0.2, clean = {...}
    [data.train.miles]    path = "...", where = {...}          # the miles reader's parameters
    [data.test]           reader = "miles"
    [data.test.miles]     path = "..."
    [preprocess]          wave_min, wave_max, wave_step, max_bad_pixels, rv_correct, min_coverage
    [normalizer]          name = "spline"
    [normalizer.spline]   smoothing_length = 150.0
    [emulator]            name = "slam", model = "optional/path/to/model.npz"
    [emulator.slam]       C = [10.0, 100.0]
    [emulator.cannon]     order = 2
    [inferer]             name = "lm"
    [[analyzers]]         name = "cv-scatter"
    [output]              dir = "runs/x", formats = ["fits", "ecsv"], chunk_size = 500

``--set emulator.name=cannon`` then swaps the emulator, with its own table. The component
sections are made from the table of kinds (:data:`slamfw.components.kinds.KINDS`). How sections
are read (tables, old flat parameters, paths): :mod:`slamfw.config.sections`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import (BaseModel, ConfigDict, Field, FiniteFloat, PrivateAttr, create_model, field_validator,
                      model_validator)

from ..components.base import NumbersNotBooleans
from ..components.kinds import KINDS


class _Strict(NumbersNotBooleans):
    model_config = ConfigDict(extra="forbid")


class ComponentSection(BaseModel):
    """``name`` (the selected component), core keys, and parameter tables per component name.

    Parameters written directly in the section (the old, flat style) are read as parameters of
    the selected component; see :mod:`slamfw.config.sections`.
    """

    model_config = ConfigDict(extra="allow")
    name: str

    def extras(self) -> dict[str, Any]:
        """Everything in the section that is not a core key: tables, and any flat parameters."""
        return dict(self.model_extra or {})


class CleaningConfig(_Strict):
    """Training-set cleaning of paper §4.2: leave-1/``folds``-out, drop > ``nsigma`` outliers."""

    enabled: bool = True
    folds: int = Field(10, ge=2)
    nsigma: float = Field(4.0, gt=0)


class CalibrationConfig(_Strict):
    """The error model (paper §4.3, ``sigma(SNR) = a exp(-b SNR) + c`` per label), learned at
    training time by ``folds``-fold cross-validation on the training stars alone: each fold's
    emulator infers its held-out stars degraded to every S/N of ``snr``. It calibrates the
    catalogue's ``<label>_err`` (see :mod:`slamfw.stats.error_model`) and is stored in the model."""

    enabled: bool = True
    #: 5 (was 3): each fold's emulator trains on 80 % of the stars, close to the full set; with 3
    #: (67 %) the folds' emulators were worse than the final one, and the demo's SLAM Teff errors
    #: came out up to 27 % too large at S/N 50-100 (robust pull widths 0.73-0.85).
    folds: int = Field(5, ge=2)
    snr: list[float] = Field(default=[5.0, 10.0, 20.0, 40.0, 80.0, 150.0], min_length=2)
    #: ``raw``: add the noise to the raw spectra and prepare them again (the continuum fitted to a
    #: noisy spectrum is part of the error; costs a normalisation per star and S/N);
    #: ``prepared``: add it to the prepared spectra (fast).
    degrade: Literal["raw", "prepared"] = "raw"
    #: N > 0 (default 30): each star's excess is measured on the N cross-validation results
    #: nearest to it in inferred labels and S/N (emulators err more in some parts of label space);
    #: the results are stored in the model. 0: the paper's per-S/N error model alone.
    neighbours: int = Field(30, ge=0)
    #: At most this many held-out stars (over all folds, chosen by the seed) are degraded and
    #: inferred at each S/N; every star still trains the folds' emulators. Bounds the cost for
    #: large training sets (each costs a normalisation and an inference per S/N).
    max_stars: int = Field(1000, ge=10)
    #: The inferer the cross-validation labels with (its parameters: its table in ``[inferer]``);
    #: None: the experiment's. A sampling inferer (``emcee``) over every held-out star and S/N
    #: takes long: calibrate with a least-squares one, whose formal errors approximate the
    #: posterior widths.
    inferer: Optional[str] = None

    @field_validator("snr")
    @classmethod
    def _positive(cls, v: list[float]) -> list[float]:
        for i, x in enumerate(v):
            if not x > 0:
                raise ValueError(f"snr[{i}] = {x}: every S/N must be > 0")
        twice = sorted({x for x in v if v.count(x) > 1})
        if twice:       # the error model interpolates between its bins: [20, 20] made no grid
            raise ValueError(f"S/N {', '.join(f'{x:g}' for x in twice)} given more than once: each S/N is one bin "
                             f"of the error model")
        return sorted(v)


class DataSection(NumbersNotBooleans):
    """``reader`` (the selected reader), core keys, and reader parameter tables per name."""

    model_config = ConfigDict(extra="allow")
    reader: str
    #: Fraction of the training stars held back (never trained on); a test set read from the
    #: same reader and input is restricted to them.
    holdout: float = Field(0.0, ge=0.0, lt=1.0)
    clean: CleaningConfig | None = None

    def extras(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class TestDataSection(DataSection):
    """The test side: ``holdout`` and ``clean`` belong to the training side."""

    @field_validator("holdout")
    @classmethod
    def _no_holdout(cls, v: float) -> float:
        if v:
            raise ValueError("the hold-out split is defined on the training side: data.train.holdout")
        return v

    @field_validator("clean")
    @classmethod
    def _no_clean(cls, v: CleaningConfig | None) -> CleaningConfig | None:
        if v is not None:
            raise ValueError("training-set cleaning belongs on the training side: data.train.clean")
        return v


class DataConfig(_Strict):
    train: DataSection | None = None
    test: TestDataSection | None = None


class PreprocessConfig(_Strict):
    """Grid, RV and bad-pixel handling applied to every spectrum before normalisation/fitting."""

    wave_min: FiniteFloat | None = None
    wave_max: FiniteFloat | None = None
    #: Step of the common linear grid (A); None keeps the data's own pixels inside the range.
    wave_step: FiniteFloat | None = Field(None, gt=0)
    #: Stars with more bad pixels than this on the grid are excluded (paper: 50).
    max_bad_pixels: int = Field(50, ge=0)
    #: Shift to the rest frame with the per-star ``rv`` metadata (km/s) when present.
    rv_correct: bool = True
    #: Stars whose good pixels span less than this fraction of the grid get ``flag_coverage``.
    min_coverage: float = Field(0.9, ge=0, le=1)

    @field_validator("wave_max")
    @classmethod
    def _range(cls, v: float | None, info: Any) -> float | None:
        lo = info.data.get("wave_min")
        if v is not None and lo is not None and v <= lo:
            raise ValueError(f"wave_max ({v}) must be larger than wave_min ({lo})")
        return v


class OutputConfig(_Strict):
    #: Relative to the working directory (where results go is where you run).
    dir: str = "slamfw-output"
    formats: list[Literal["fits", "ecsv"]] = ["fits", "ecsv"]
    #: Spectra per inference chunk; finished chunks are kept if a run is killed, and reused.
    chunk_size: int = Field(500, ge=1)
    model_file: str = "model.npz"

    @field_validator("dir", "model_file", mode="before")
    @classmethod
    def _number_as_text(cls, v: Any) -> Any:
        """``dir = 2024`` names the folder "2024"; a float would lose its text (2024.10 is 2024.1)."""
        if isinstance(v, int) and not isinstance(v, bool):
            return str(v)
        if isinstance(v, float):
            raise ValueError(f"expected a path, got the number {v!r}: write it in quotes")
        return v

    @field_validator("dir", "model_file")
    @classmethod
    def _some_path(cls, v: str) -> str:
        if not v.strip():       # "" wrote into the working directory
            raise ValueError("expected a path, got an empty one (for the working directory, write \".\")")
        return v

    @field_validator("formats")
    @classmethod
    def _some_format(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("give at least one catalogue format (fits, ecsv): an empty list would write no "
                             "catalogue")
        return v


class CompareConfig(_Strict):
    """``slamfw compare``: emulators trained and tested side by side on the same data and split.

    Each emulator's parameters are its table in the ``[emulator]`` section (``[emulator.cannon]``).
    """

    emulators: list[str] = []
    #: Folds of the refit cross-validation run for emulators that do not report ``cv_mse_``.
    cv_folds: int = Field(5, ge=2)
    #: Emulators to cross-validate here by refitting on the ``cv_folds`` folds even though they
    #: report their own CV (e.g. ``krr``'s leave-one-out), for a like-for-like CV MSE. The folds
    #: are those ``slam`` and ``cannon`` use for the same seed and number of folds.
    refit_cv: list[str] = []
    figures: bool = True

    @model_validator(mode="before")
    @classmethod
    def _old_params(cls, data: Any) -> Any:
        if isinstance(data, dict) and "params" in data:
            names = ", ".join(sorted(data["params"])) if isinstance(data["params"], dict) else "..."
            raise ValueError(f"params: compare.params is gone; each emulator's parameters live in its table of "
                             f"the [emulator] section. Move [compare.params.<name>] to [emulator.<name>] "
                             f"(here: {names}).")
        return data


def _section_model(kind_name: str, core_keys: tuple[str, ...]) -> type[ComponentSection]:
    if not core_keys:
        return ComponentSection
    fields: dict[str, Any] = {key: (Optional[str], None) for key in core_keys}
    return create_model(f"{kind_name.title()}Section", __base__=ComponentSection, **fields)


def _component_fields() -> dict[str, Any]:
    """One config field per top-level component section of the table of kinds."""
    fields: dict[str, Any] = {}
    for kind in KINDS.values():
        for section, _ in kind.sections:
            if "." in section:
                continue  # nested sections (data.train's reader) are declared by their parents
            model = _section_model(kind.name, kind.core_keys)
            fields[section] = (list[model], []) if kind.many else (Optional[model], None)
    return fields


class _ExperimentBase(_Strict):
    seed: int = Field(0, ge=0, le=2 ** 32 - 1)       # numpy's and scikit-learn's seeds
    labels: list[str] = Field(..., min_length=1)
    data: DataConfig = DataConfig()
    preprocess: PreprocessConfig = PreprocessConfig()
    output: OutputConfig = OutputConfig()
    calibration: CalibrationConfig = CalibrationConfig()
    compare: CompareConfig | None = None

    #: The folder relative paths of the config file are resolved against (None: working directory).
    _base_dir: Path | None = PrivateAttr(default=None)
    #: Dotted keys set on the command line (``--set``): their relative paths are the working directory's.
    _overridden: set[str] = PrivateAttr(default_factory=set)
    #: Warnings already given about this config (each is logged once).
    _warned: set[str] = PrivateAttr(default_factory=set)

    @field_validator("labels")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError(f"label names must be unique: {v}")
        return v


ExperimentConfig = create_model("ExperimentConfig", __base__=_ExperimentBase, **_component_fields())
ExperimentConfig.__doc__ = """An experiment: data, pre-processing, one section per component kind, output.

Component sections (``normalizer``, ``emulator``, ``inferer``, ``analyzers``) come from the
table of kinds. A missing ``normalizer`` uses the spectra as they are read (already normalised)."""
