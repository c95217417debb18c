"""The one plugin manager of slamfw, and the registries of components it fills.

Built-in plugins (the ``slamfw_plugins`` package shipped in ``plugins/``) are found through the
``slamfw`` entry-point group exactly like third-party ones. A plugin that fails to import, or
whose hook raises, is recorded in :func:`broken_plugins` and logged by name; the others load.
"""
from __future__ import annotations

import difflib
import logging
import threading
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Iterable

import pluggy

from . import hookspecs
from .errors import ConfigError, PluginError
from .interfaces import KINDS, Component

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "slamfw"
HOOKS = {
    "reader": "slamfw_register_readers",
    "normalizer": "slamfw_register_normalizers",
    "emulator": "slamfw_register_emulators",
    "inferer": "slamfw_register_inferers",
    "analyzer": "slamfw_register_analyzers",
}


@dataclass(frozen=True)
class Registered:
    """One registered component: its kind, name, class, and where it came from."""

    kind: str
    name: str
    cls: type
    plugin: str
    distribution: str


@dataclass(frozen=True)
class BrokenPlugin:
    name: str
    distribution: str
    error: str


class _State:
    def __init__(self) -> None:
        self.pm: pluggy.PluginManager | None = None
        self.dists: dict[str, str] = {}
        self.broken: list[BrokenPlugin] = []
        self.registry: dict[str, dict[str, Registered]] | None = None
        self.lock = threading.RLock()


_state = _State()


def _entry_points() -> Iterable[metadata.EntryPoint]:
    return metadata.entry_points(group=ENTRY_POINT_GROUP)


def get_plugin_manager() -> pluggy.PluginManager:
    """The plugin manager, with every entry-point plugin that imports loaded."""
    with _state.lock:
        if _state.pm is None:
            pm = pluggy.PluginManager("slamfw")
            pm.add_hookspecs(hookspecs)
            for ep in _entry_points():
                dist = ep.dist.name if ep.dist is not None else "?"
                if pm.get_plugin(ep.name) is not None or ep.name in _state.dists:
                    continue
                try:
                    plugin = ep.load()
                    pm.register(plugin, name=ep.name)
                except Exception as exc:  # a broken plugin must not take the others down
                    msg = f"{type(exc).__name__}: {exc}"
                    log.error("slamfw plugin %r (from %s) failed to load: %s", ep.name, dist, msg)
                    _state.broken.append(BrokenPlugin(ep.name, dist, msg))
                    continue
                _state.dists[ep.name] = dist
            _state.pm = pm
        return _state.pm


def register_plugin(plugin: Any, name: str | None = None, distribution: str = "(in-process)") -> None:
    """Register a plugin object or module in-process (notebooks, tests, scripts)."""
    pm = get_plugin_manager()
    with _state.lock:
        pname = pm.register(plugin, name=name)
        _state.dists[pname] = distribution
        _state.registry = None


def unregister_plugin(name: str) -> None:
    pm = get_plugin_manager()
    with _state.lock:
        pm.unregister(name=name)
        _state.dists.pop(name, None)
        _state.registry = None


def reset() -> None:
    """Forget everything loaded (the next call re-reads the entry points)."""
    with _state.lock:
        _state.pm = None
        _state.dists = {}
        _state.broken = []
        _state.registry = None


def broken_plugins() -> list[BrokenPlugin]:
    get_plugin_manager()
    _registries()
    return list(_state.broken)


def _registries() -> dict[str, dict[str, Registered]]:
    pm = get_plugin_manager()
    with _state.lock:
        if _state.registry is not None:
            return _state.registry
        reg: dict[str, dict[str, Registered]] = {k: {} for k in HOOKS}
        for kind, hook_name in HOOKS.items():
            hook = getattr(pm.hook, hook_name)
            for impl in reversed(hook.get_hookimpls()):
                pname = impl.plugin_name
                dist = _state.dists.get(pname, "?")

                def register(name: str, cls: type, _kind=kind, _p=pname, _d=dist) -> None:
                    base = KINDS[_kind]
                    if not (isinstance(cls, type) and issubclass(cls, base)):
                        raise PluginError(f"plugin {_p!r} registered {name!r} as a {_kind}, "
                                          f"but {cls!r} is not a subclass of slamfw.{base.__name__}")
                    if name in reg[_kind] and reg[_kind][name].cls is not cls:
                        log.warning("%s %r from plugin %r replaces the one from %r",
                                    _kind, name, _p, reg[_kind][name].plugin)
                    cls.registered_name = name
                    reg[_kind][name] = Registered(_kind, name, cls, _p, _d)

                try:
                    impl.function(register=register)
                except Exception as exc:
                    msg = f"{type(exc).__name__}: {exc}"
                    log.error("slamfw plugin %r failed in %s: %s", pname, hook_name, msg)
                    if not any(b.name == pname and b.error == msg for b in _state.broken):
                        _state.broken.append(BrokenPlugin(pname, dist, msg))
        _state.registry = reg
        return reg


def available(kind: str) -> dict[str, Registered]:
    """Registered components of one kind (``reader``, ``normalizer``, ``emulator``, ...)."""
    if kind not in HOOKS:
        raise ValueError(f"unknown component kind {kind!r}; kinds are {sorted(HOOKS)}")
    return dict(_registries()[kind])


def all_components() -> dict[str, dict[str, Registered]]:
    return {k: dict(v) for k, v in _registries().items()}


def get_component(kind: str, name: str, where: str | None = None) -> type[Component]:
    """The class registered as ``name`` for ``kind``; a clear error (with suggestions) if none."""
    reg = available(kind)
    if name in reg:
        return reg[name].cls
    where = where or f"{kind}.name"
    close = difflib.get_close_matches(name, list(reg), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    broken = [b for b in _state.broken if b.name == name]
    if broken:
        hint += f" A plugin named {name!r} exists but failed to load: {broken[0].error}"
    raise ConfigError(f"{where}: no {kind} named {name!r} is registered.{hint} "
                      f"Available {kind}s: {', '.join(sorted(reg)) or 'none'} (see `slamfw plugins`).")


def create(kind: str, name: str, params: dict[str, Any] | None = None, where: str | None = None) -> Component:
    """Instantiate component ``name`` of ``kind`` with ``params`` validated by its Params model."""
    cls = get_component(kind, name, where)
    prefix = where.rsplit(".", 1)[0] if where and "." in where else kind
    return cls(**cls.validate_params(params or {}, prefix).model_dump())
