"""Component sections: which component is selected, and its parameters.

A component section names the selected component (``name``, or ``reader`` in ``data.train``) and
holds one parameter table per component name. Only the selected component's table is used and
validated, so one config carries the parameters of every emulator it may be run with, and
``--set emulator.name=cannon`` swaps the emulator. Rules:

- a key of the section whose value is a table and is not a parameter of the selected component
  is the table of another component (a warning if no installed component has that name);
- any other key (the old, flat style, ``[emulator] C = [...]``) is a parameter of the *selected*
  component, over its table, with a warning saying how to convert. When it is not one of the
  selected component's parameters, the error says so and how to convert;
- a component whose parameters include ``random_state`` gets the experiment's ``seed`` unless
  the config sets it;
- parameters annotated :data:`~slamfw.InputPath`, and the section's core path keys
  (``emulator.model``), are made absolute: a relative path written in the config file is relative
  to the file's folder, one given with ``--set`` to the working directory.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import registry
from ..components.base import Component, ParamRole, params_with_role
from ..components.kinds import KINDS, Kind
from ..errors import ConfigError
from .loading import config_to_dict
from .schema import ExperimentConfig

log = logging.getLogger(__name__)


@dataclass
class Selected:
    """The component a config section selects.

    kind, name : what is selected
    params : its parameters, validated, with defaults filled in and paths made absolute
    section : the dotted section (``emulator``, ``data.train``, ``analyzers.0``)
    name_key : the section's key holding the name (``name`` or ``reader``)
    core : the section's core keys that are set (``model``, ``holdout``, ``clean``)
    """

    kind: str
    name: str
    params: dict[str, Any]
    section: str
    name_key: str = "name"
    core: dict[str, Any] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"{self.section}.{self.name_key}"

    @property
    def cls(self) -> type[Component]:
        """The selected component's class."""
        return registry.get_component(self.kind, self.name, where=self.where)

    def build(self) -> Component:
        """A new instance of the selected component with these parameters."""
        return registry.create(self.kind, self.name, self.params, where=self.where)

    def as_config(self) -> dict[str, Any]:
        """The section as ``config.yaml`` shows it: core keys and the selected table only."""
        return {self.name_key: self.name, **self.core, self.name: dict(self.params)}


def _slots() -> dict[str, tuple[Kind, str]]:
    """Section path -> (kind, key holding the name), from the table of kinds."""
    return {section: (kind, key) for kind in KINDS.values() for section, key in kind.sections}


def _section_object(cfg: ExperimentConfig, section: str) -> Any:
    node: Any = cfg
    for part in section.split("."):
        node = getattr(node, part, None)
        if node is None:
            return None
    return node


def _is_overridden(cfg: ExperimentConfig, key: str) -> bool:
    return any(key == o or key.startswith(o + ".") for o in cfg._overridden)


def _absolute(cfg: ExperimentConfig, value: Any, key: str) -> Any:
    """``value`` as an absolute path: relative to the config file's folder, or to the working
    directory when it came from ``--set`` (or the config came from no file)."""
    if not isinstance(value, str) or not value:
        return value
    path = Path(value).expanduser()
    if path.is_absolute():
        return str(path)
    base = Path.cwd() if cfg._base_dir is None or _is_overridden(cfg, key) else cfg._base_dir
    return str((base / path).resolve())


def _conversion_hint(kind: Kind, section: str, name: str, flat: list[str]) -> str:
    return (f". Keys written directly in [{section}] ({', '.join(flat)}) are read as parameters of the "
            f"selected {kind.name}, here {name!r}: that is the old, flat style. Move each into the table of "
            f"the {kind.name} it belongs to, e.g. [{section}.<name>], so that switching {section}."
            f"{kind.sections[0][1]} leaves them behind.")


def _split(extras: dict[str, Any], name: str, cls: type[Component]) -> tuple[dict, dict, list[str]]:
    """(the selected table, flat parameters, names of other tables) of a section's extras."""
    fields = cls.Params.model_fields
    table = extras.get(name) if isinstance(extras.get(name), dict) else {}
    flat, others = {}, []
    for key, value in extras.items():
        if key == name and isinstance(value, dict):
            continue
        if isinstance(value, dict) and key not in fields:
            others.append(key)
        else:
            flat[key] = value
    return dict(table), flat, others


def _warn_once(cfg: ExperimentConfig, message: str) -> None:
    if message not in cfg._warned:
        cfg._warned.add(message)
        log.warning("config: %s", message)


def _select(cfg: ExperimentConfig, kind: Kind, section: str, name_key: str, obj: Any) -> Selected:
    name = getattr(obj, name_key)
    cls = registry.get_component(kind.name, name, where=f"{section}.{name_key}")
    table, flat, others = _split(obj.extras(), name, cls)
    for other in others:
        if registry.lookup(kind.name, other) is None:
            _warn_once(cfg, f"[{section}.{other}] is the table of no installed {kind.name}; it is not used")
    if flat:
        _warn_once(cfg, f"{', '.join(sorted(flat))} written directly in [{section}] (old style): read as "
                        f"parameters of {name!r}; write them in [{section}.{name}]")
    params = {**table, **flat}
    if "random_state" in cls.Params.model_fields and "random_state" not in params:
        params["random_state"] = cfg.seed

    def where(key: str) -> str:
        return f"{section}.{key}" if key in flat else f"{section}.{name}.{key}"

    try:
        params = cls.validate_params(params, where)
    except ConfigError as err:
        hint = _conversion_hint(kind, section, name, sorted(flat)) if flat else ""
        raise ConfigError(f"{err}{hint}") from None
    for key in params_with_role(cls, ParamRole.INPUT_PATH):
        params[key] = _absolute(cfg, params[key], where(key))
    core = {k: v for k, v in obj.model_dump(exclude_none=True).items()
            if k in kind.core_keys and k != name_key}
    for key in kind.path_keys:
        if key in core:
            core[key] = _absolute(cfg, core[key], f"{section}.{key}")
    return Selected(kind.name, name, params, section, name_key, core)


def selected(cfg: ExperimentConfig, section: str) -> Selected | None:
    """The component selected by ``section`` (``emulator``, ``data.train``, ...), None if absent."""
    slots = _slots()
    if section not in slots:
        raise KeyError(f"{section!r} is not a component section; they are {sorted(slots)}")
    kind, name_key = slots[section]
    if kind.many:
        raise KeyError(f"{section!r} holds a list: use selected_all")
    obj = _section_object(cfg, section)
    return None if obj is None else _select(cfg, kind, section, name_key, obj)


def selected_all(cfg: ExperimentConfig, section: str) -> list[Selected]:
    """The components of a list section (``analyzers``), in order."""
    kind, name_key = _slots()[section]
    items = _section_object(cfg, section) or []
    return [_select(cfg, kind, f"{section}.{i}", name_key, obj) for i, obj in enumerate(items)]


def _set_in(tree: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    for part in parts[:-1]:
        tree = tree.setdefault(part, {})
    tree[parts[-1]] = value


def resolve_config(cfg: ExperimentConfig) -> dict[str, Any]:
    """The config as ``config.yaml`` records it: every component section reduced to its selected
    component's table, validated, defaults filled in, paths absolute (so it runs from anywhere).

    Raises :class:`ConfigError` naming the dotted key of any unknown plugin or bad parameter.
    """
    out = config_to_dict(cfg)
    for section, (kind, _) in _slots().items():
        if kind.many:
            out[section] = [s.as_config() for s in selected_all(cfg, section)]
            continue
        sel = selected(cfg, section)
        if sel is not None:
            _set_in(out, section, sel.as_config())
    out["output"]["dir"] = str(Path(cfg.output.dir).expanduser().resolve())
    return out
