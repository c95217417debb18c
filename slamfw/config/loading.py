"""Reading configs: TOML or YAML files, ``${ENV}`` expansion, ``--set`` overrides, validation.

Strings may use ``${VAR}`` or ``${VAR:-default}`` to read environment variables (for example
the location of the shared data). Relative paths in a config file are resolved against the
file's folder; paths given with ``--set`` against the working directory (see
:mod:`slamfw.config.sections`).
"""
from __future__ import annotations

import json
import os
import re
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from ..components.base import format_validation_error
from ..errors import ConfigError
from .schema import ExperimentConfig

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover
    import tomli as tomllib  # type: ignore[no-redef]

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class DuplicateKeyError(yaml.YAMLError):
    """A YAML mapping gives the same key twice (YAML itself would keep the last one silently)."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping, at any level, as TOML does.
    Keys brought in by a merge (``<<: *base``) may be overridden: only the mapping's own keys count."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._checked: set[int] = set()

    def flatten_mapping(self, node: yaml.MappingNode) -> None:
        # Every mapping passes here before its merge keys are replaced by the merged pairs (in place,
        # once): check its own keys then.
        if id(node) not in self._checked:
            self._checked.add(id(node))
            self._check_unique(node)
        super().flatten_mapping(node)

    def _check_unique(self, node: yaml.MappingNode) -> None:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key, line = self.construct_object(key_node, deep=True), key_node.start_mark.line + 1
            try:
                first = seen.get(key)
            except TypeError:       # an unhashable key: the base class says so
                continue
            if first is not None:
                lines = f"line {line}" if first == line else f"lines {first} and {line}"
                raise DuplicateKeyError(f"key {key!r} is given twice in the same mapping ({lines}); YAML would "
                                        "silently keep only the last one: remove or merge one of them")
            seen[key] = line


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
    try:
        text = p.read_text()
    except UnicodeDecodeError:
        raise ConfigError(f"config file {str(p)!r} is not a text file") from None
    try:
        if p.suffix.lower() == ".toml":
            raw = tomllib.loads(text)
        elif p.suffix.lower() in (".yaml", ".yml"):
            raw = yaml.load(text, Loader=_UniqueKeyLoader) or {}
        else:
            raise ConfigError(f"config file {str(p)!r}: use a .toml, .yaml or .yml file")
    except DuplicateKeyError as err:
        raise ConfigError(f"config file {str(p)!r}: {err}") from None
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


def _list_item(node: list, index: str, key: str, where: str, new: Any) -> Any:
    """``node[index]``; the index one past the end appends ``new`` (``--set analyzers.1.name=x``)."""
    try:
        i = int(index)
        if i == len(node):
            node.append(new)
        return node[i]
    except (ValueError, IndexError):
        raise ConfigError(f"--set {key}: {where} is not an index of the list (it has {len(node)} items)") from None


def _named_sections() -> dict[str, str]:
    """{top-level section of one component: the key holding its name} (``executor: name``)."""
    from ..components.kinds import KINDS
    return {section: key for kind in KINDS.values() if not kind.many
            for section, key in kind.sections if "." not in section}


def _models(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation allows (``Optional[X]``, ``X | None``, ``list[X]``: X)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models(arg)]


def _wants_text(parts: list[str]) -> bool:
    """Whether the schema declares the dotted key ``parts`` a string (``output.dir``, ``emulator.model``),
    so that a ``--set`` value that reads as a number is meant as its text."""
    models: list[type[BaseModel]] = [ExperimentConfig]
    annotation: Any = None
    for part in parts:
        if part.isdigit() and typing.get_origin(annotation) is list:
            annotation = typing.get_args(annotation)[0]     # labels.0, analyzers.0: the list's item
            models = _models(annotation)
            continue
        fields = [m.model_fields[part] for m in models if part in m.model_fields]
        if not fields:
            return False
        annotation = fields[0].annotation
        models = _models(annotation)
    return annotation is str or set(typing.get_args(annotation)) == {str, type(None)}


def apply_override(raw: dict[str, Any], assignment: str) -> None:
    """Apply ``dotted.key=value`` to ``raw`` in place (lists indexed by number: analyzers.0.name;
    the index one past the end adds an item). A component section that this creates through
    a component's table (``--set executor.local.workers=2`` on a config without ``[executor]``)
    selects that component. A value that reads as a number or boolean, given to a key the schema
    declares a string (``output.dir=2024``), is kept as typed."""
    if "=" not in assignment:
        raise ConfigError(f"--set {assignment!r}: expected dotted.key=value")
    key, value = assignment.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise ConfigError(f"--set {assignment!r}: empty key")
    named = _named_sections()
    if len(parts) >= 3 and parts[0] in named and raw.get(parts[0]) is None and parts[1] != named[parts[0]]:
        raw[parts[0]] = {named[parts[0]]: parts[1]}
    node: Any = raw
    for i, part in enumerate(parts[:-1]):
        where, new = ".".join(parts[:i + 1]), [] if parts[i + 1].isdigit() else {}
        if isinstance(node, list):
            child = _list_item(node, part, key, where, new)
            if child is None:
                node[int(part)] = child = new
        else:
            child = node.get(part)
            if child is None:
                node[part] = child = new
        if not isinstance(child, (dict, list)):
            raise ConfigError(f"--set {key}: {where} is a value, not a section")
        node = child
    parsed = parse_value(value)
    if isinstance(parsed, (bool, int, float)) and _wants_text(parts):
        parsed = value.strip()      # output.dir=2024: the folder "2024", as typed
    last = parts[-1]
    if isinstance(node, list):
        _list_item(node, last, key, key, None)
        node[int(last)] = parsed
    else:
        node[last] = parsed


def validate_config(raw: dict[str, Any], base_dir: str | os.PathLike | None = None,
                    overridden: set[str] | None = None) -> ExperimentConfig:
    """An :class:`ExperimentConfig` from a raw dict.

    ``base_dir``: the folder the raw dict's relative paths are relative to (its file's folder;
    None: the working directory); ``overridden``: dotted keys whose values came from the command
    line, and so are relative to the working directory.
    """
    try:
        cfg = ExperimentConfig.model_validate(expand_env(raw))
    except ValidationError as err:
        raise ConfigError("invalid config: " + format_validation_error(err, "")) from None
    cfg._base_dir = Path(base_dir).resolve() if base_dir is not None else None
    cfg._overridden = set(overridden or ())
    return cfg


def override_key(assignment: str) -> str:
    """The dotted key of a ``--set`` assignment."""
    return assignment.split("=", 1)[0].strip()


def load_config(path: str | os.PathLike, overrides: list[str] | tuple[str, ...] = ()) -> ExperimentConfig:
    """Read, override (``dotted.key=value``) and validate an experiment config."""
    raw = read_config_file(path)
    for assignment in overrides:
        apply_override(raw, assignment)
    return validate_config(raw, Path(path).parent, {override_key(a) for a in overrides})


def config_to_dict(cfg: BaseModel) -> dict[str, Any]:
    """A plain, JSON-able dict of a config (extras included, None dropped)."""
    return json.loads(cfg.model_dump_json(exclude_none=True))
