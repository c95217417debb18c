"""Pydantic experiment configuration, read from TOML or YAML.

Layout (every component section is ``name = "..."`` plus that plugin's own parameters)::

    seed = 42
    labels = ["Teff", "logg", "FeH"]
    [data.train]   reader = "miles", path = "...", holdout = 0.2, clean = {...}, <reader params>
    [data.test]    reader = "miles", path = "...", <reader params>
    [preprocess]   wave_min, wave_max, wave_step, max_bad_pixels, rv_correct
    [normalizer]   name = "spline", <params>
    [emulator]     name = "slam", model = "optional/path/to/model.npz", <params>
    [inferer]      name = "lm", <params>
    [[analyzers]]  name = "cv-scatter", <params>
    [output]       dir = "runs/x", formats = ["fits", "ecsv"], chunk_size = 500

Strings may use ``${VAR}`` or ``${VAR:-default}`` to read environment variables (for example
the location of the shared data). Relative paths are relative to the working directory.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import ConfigError
from .interfaces import format_validation_error

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover
    import tomli as tomllib  # type: ignore[no-redef]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ComponentSpec(BaseModel):
    """``{name, ...params}``: the params are validated later by the plugin's own model."""

    model_config = ConfigDict(extra="allow")
    name: str

    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class EmulatorSpec(ComponentSpec):
    #: Load a trained model file instead of training.
    model: str | None = None


class CleaningConfig(_Strict):
    """Training-set cleaning of paper §4.2: leave-1/``folds``-out, drop > ``nsigma`` outliers."""

    enabled: bool = True
    folds: int = Field(10, ge=2)
    nsigma: float = Field(4.0, gt=0)


class DataSpec(BaseModel):
    """``reader`` plus that reader's params; ``holdout`` and ``clean`` apply to the training side."""

    model_config = ConfigDict(extra="allow")
    reader: str
    #: Fraction of the training stars held back (never trained on); a test set read from the
    #: same reader and path is restricted to them.
    holdout: float = Field(0.0, ge=0.0, lt=1.0)
    clean: CleaningConfig | None = None

    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class DataConfig(_Strict):
    train: DataSpec | None = None
    test: DataSpec | None = None

    @model_validator(mode="after")
    def _train_only_keys(self) -> "DataConfig":
        if self.test is not None:
            if self.test.holdout:
                raise ValueError("test.holdout: the hold-out split is defined on data.train (data.train.holdout)")
            if self.test.clean is not None:
                raise ValueError("test.clean: training-set cleaning belongs in data.train.clean")
        return self


class PreprocessConfig(_Strict):
    """Grid, RV and bad-pixel handling applied to every spectrum before normalisation/fitting."""

    wave_min: float | None = None
    wave_max: float | None = None
    #: Step of the common linear grid (A); None keeps the data's own pixels inside the range.
    wave_step: float | None = Field(None, gt=0)
    #: Stars with more bad pixels than this on the grid are excluded (paper: 50).
    max_bad_pixels: int = Field(50, ge=0)
    #: Shift to the rest frame with the per-star ``rv`` metadata (km/s) when present.
    rv_correct: bool = True

    @field_validator("wave_max")
    @classmethod
    def _range(cls, v: float | None, info: Any) -> float | None:
        lo = info.data.get("wave_min")
        if v is not None and lo is not None and v <= lo:
            raise ValueError(f"wave_max ({v}) must be larger than wave_min ({lo})")
        return v


class OutputConfig(_Strict):
    dir: str = "slamfw-output"
    formats: list[Literal["fits", "ecsv"]] = ["fits", "ecsv"]
    #: Spectra per inference chunk; finished chunks are kept if a run is killed, and reused.
    chunk_size: int = Field(500, ge=1)
    model_file: str = "model.npz"


class CompareConfig(_Strict):
    """``slamfw compare``: emulators trained and tested side by side on the same data and split."""

    emulators: list[str] = []
    #: Parameters per emulator, e.g. ``[compare.params.cannon] order = 3``. The ``[emulator]``
    #: section's parameters apply to the emulator it names (these are merged over them).
    params: dict[str, dict[str, Any]] = {}
    #: Folds of the refit cross-validation run for emulators that do not report ``cv_mse_``.
    cv_folds: int = Field(5, ge=2)
    #: Emulators to cross-validate here by refitting on the ``cv_folds`` folds even though they
    #: report their own CV (e.g. ``krr``'s leave-one-out), for a like-for-like CV MSE. The folds
    #: are those ``slam`` and ``cannon`` use for the same seed and number of folds.
    refit_cv: list[str] = []
    figures: bool = True


class ExperimentConfig(_Strict):
    seed: int = 0
    labels: list[str] = Field(..., min_length=1)
    data: DataConfig = DataConfig()
    preprocess: PreprocessConfig = PreprocessConfig()
    normalizer: ComponentSpec = ComponentSpec(name="none")
    emulator: EmulatorSpec | None = None
    inferer: ComponentSpec | None = None
    analyzers: list[ComponentSpec] = []
    output: OutputConfig = OutputConfig()
    compare: CompareConfig | None = None

    @field_validator("labels")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError(f"label names must be unique: {v}")
        return v


# ------------------------------------------------------------------ reading and overrides
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_env(value: Any) -> Any:
    """Replace ``${VAR}`` / ``${VAR:-default}`` in every string of a nested structure."""
    if isinstance(value, str):
        def sub(m: re.Match) -> str:
            var, default = m.group(1), m.group(2)
            if var in os.environ:
                return os.environ[var]
            if default is not None:
                return default
            raise ConfigError(f"environment variable {var} is not set (used in {value!r})")
        return _ENV.sub(sub, value)
    if isinstance(value, dict):
        return {k: expand_env(v) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v) for v in value]
    return value


def read_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """The raw dict of a TOML (``.toml``) or YAML (``.yaml``/``.yml``) config file."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {str(p)!r} does not exist")
    text = p.read_text()
    try:
        if p.suffix.lower() == ".toml":
            raw = tomllib.loads(text)
        elif p.suffix.lower() in (".yaml", ".yml"):
            raw = yaml.safe_load(text) or {}
        else:
            raise ConfigError(f"config file {str(p)!r}: use a .toml, .yaml or .yml file")
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as err:
        raise ConfigError(f"config file {str(p)!r} is not valid {p.suffix[1:].upper()}: {err}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {str(p)!r} must hold a table/mapping at top level")
    return raw


def parse_value(text: str) -> Any:
    """A ``--set`` value: JSON/TOML-like literals (numbers, booleans, lists) or a plain string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_override(raw: dict[str, Any], assignment: str) -> None:
    """Apply ``dotted.key=value`` to ``raw`` in place (lists indexed by number: analyzers.0.name)."""
    if "=" not in assignment:
        raise ConfigError(f"--set {assignment!r}: expected dotted.key=value")
    key, value = assignment.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise ConfigError(f"--set {assignment!r}: empty key")
    node: Any = raw
    for i, part in enumerate(parts[:-1]):
        nxt = parts[i + 1]
        if isinstance(node, list):
            try:
                node = node[int(part)]
            except (ValueError, IndexError):
                raise ConfigError(f"--set {key}: {'.'.join(parts[:i + 1])} is not an index of the list") from None
            continue
        if part not in node or node[part] is None:
            node[part] = [] if nxt.isdigit() else {}
        node = node[part]
        if not isinstance(node, (dict, list)):
            raise ConfigError(f"--set {key}: {'.'.join(parts[:i + 1])} is a value, not a section")
    last = parts[-1]
    if isinstance(node, list):
        try:
            node[int(last)] = parse_value(value)
        except (ValueError, IndexError):
            raise ConfigError(f"--set {key}: {last} is not an index of the list") from None
    else:
        node[last] = parse_value(value)


def validate_config(raw: dict[str, Any]) -> ExperimentConfig:
    try:
        return ExperimentConfig.model_validate(expand_env(raw))
    except ValidationError as err:
        raise ConfigError("invalid config: " + format_validation_error(err, "")) from None


def load_config(path: str | os.PathLike, overrides: list[str] | tuple[str, ...] = ()) -> ExperimentConfig:
    """Read, override (``dotted.key=value``) and validate an experiment config."""
    raw = read_config_file(path)
    for assignment in overrides:
        apply_override(raw, assignment)
    return validate_config(raw)


def config_to_dict(cfg: BaseModel) -> dict[str, Any]:
    """A plain, JSON-able dict of a config (extras included, None dropped)."""
    return json.loads(cfg.model_dump_json(exclude_none=True))
