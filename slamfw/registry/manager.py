"""The one plugin manager of slamfw, and the registries of components it fills.

Plugins come from the ``slamfw`` entry-point group: the ones shipped with slamfw (under
namespaced entry-point names ``slamfw.<kind>s.<module>``) exactly like third-party ones, plus any
registered in-process with :func:`register_plugin`. Nothing fails silently:

- a plugin that fails to import, whose hook raises (then nothing it registers is used, not even
  what its other hooks registered), that implements an unknown hook (a misspelt
  ``slamfw_...`` name, found by pluggy's ``check_pending``), that defines a hook without
  ``@hookimpl``, or that declares another major plugin API version (``SLAMFW_PLUGIN_API``) is
  *broken*: it is not used, and :func:`broken_plugins` (and ``slamfw plugins``) name it and say why;
- an entry-point name that another distribution already uses is loaded as ``<distribution>:<name>``
  and reported;
- a component name registered twice is a *collision*. The rule: **the first registration keeps
  the name**, in this order: built-in plugins, then installed plugins by distribution name and
  entry-point name, then in-process plugins in the order they were registered. Every registration
  stays reachable by its qualified name ``<plugin>:<name>``;
- ``SLAMFW_DISABLE_PLUGINS=a,b`` keeps plugins from loading: entry-point names, distribution
  names, or ``<distribution>:<entry point>`` for one entry point of one distribution; they are
  listed as disabled.
"""
from __future__ import annotations

import difflib
import inspect
import logging
import os
import threading
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Iterable

import pluggy

from ..components.base import Component
from ..components.kinds import KINDS
from ..errors import ConfigError, PluginError
from . import hookspecs

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "slamfw"
DISABLE_ENV = "SLAMFW_DISABLE_PLUGINS"
API_ATTRIBUTE = "SLAMFW_PLUGIN_API"
BUILTIN_DISTRIBUTION = "slamfw"
IN_PROCESS = "in-process"


@dataclass(frozen=True)
class PluginInfo:
    """One loaded plugin: its name, where it came from, and the hooks it implements."""

    name: str
    distribution: str
    version: str
    module: str
    hooks: tuple[str, ...] = ()

    @property
    def builtin(self) -> bool:
        return self.distribution == BUILTIN_DISTRIBUTION


@dataclass(frozen=True)
class Registered:
    """One registered component: its kind, name, class, and the plugin it came from."""

    kind: str
    name: str
    cls: type
    plugin: str
    distribution: str
    version: str = ""

    @property
    def qualified_name(self) -> str:
        return f"{self.plugin}:{self.name}"


@dataclass(frozen=True)
class BrokenPlugin:
    """A plugin that is not used, and why."""

    name: str
    distribution: str
    error: str


@dataclass(frozen=True)
class Collision:
    """A component name registered by more than one plugin: ``kept`` has it, ``shadowed`` does not."""

    kind: str
    name: str
    kept: Registered
    shadowed: Registered

    def message(self) -> str:
        return (f"{self.kind} {self.name!r} from plugin {self.shadowed.plugin!r} ({self.shadowed.distribution}) "
                f"is shadowed by the one from {self.kept.plugin!r} ({self.kept.distribution}), which keeps "
                f"the name; use {self.shadowed.qualified_name!r} to select it")


@dataclass
class _State:
    pm: pluggy.PluginManager | None = None
    plugins: dict[str, PluginInfo] = field(default_factory=dict)   # in load order
    broken: list[BrokenPlugin] = field(default_factory=list)
    disabled: list[tuple[str, str]] = field(default_factory=list)  # (entry-point name, distribution)
    notes: list[str] = field(default_factory=list)                 # renamed entry points, newer minor APIs
    registry: dict[str, dict[str, Registered]] | None = None
    qualified: dict[str, dict[str, Registered]] = field(default_factory=dict)
    collisions: list[Collision] = field(default_factory=list)
    lock: threading.RLock = field(default_factory=threading.RLock)


_state = _State()


def _entry_points() -> Iterable[metadata.EntryPoint]:
    return metadata.entry_points(group=ENTRY_POINT_GROUP)


def _disabled() -> set[str]:
    return {s.strip() for s in os.environ.get(DISABLE_ENV, "").split(",") if s.strip()}


def _api_problem(plugin: Any, name: str, dist: str) -> str:
    """Why plugin ``name``'s declared plugin API cannot be served ('' if it can)."""
    declared = getattr(plugin, API_ATTRIBUTE, None)
    if declared is None:
        return ""
    try:
        parts = tuple(int(p) for p in (declared.split(".") if isinstance(declared, str) else declared))
        major, minor = parts[0], (parts[1] if len(parts) > 1 else 0)
    except (TypeError, ValueError, IndexError):
        return f"{API_ATTRIBUTE} = {declared!r} is not a version such as (1, 0)"
    ours = hookspecs.PLUGIN_API
    if major > ours[0]:
        return (f"it declares slamfw plugin API {major}.{minor}, newer than this slamfw's "
                f"{ours[0]}.{ours[1]}: upgrade slamfw, or use a release of the plugin written for API {ours[0]}")
    if major < ours[0]:
        return (f"it declares slamfw plugin API {major}.{minor}, but this slamfw provides {ours[0]}.{ours[1]}: "
                f"use a release of the plugin written for API {ours[0]}")
    if minor > ours[1]:
        note = (f"plugin {name!r} ({dist}) declares plugin API {major}.{minor}, newer than this slamfw's "
                f"{ours[0]}.{ours[1]}: features it needs may be missing")
        log.warning("slamfw: %s", note)
        _state.notes.append(note)
    return ""


def _undecorated_hooks(plugin: Any) -> list[str]:
    """Functions named like a hook (``slamfw_...``) that lack ``@hookimpl``: pluggy would ignore them."""
    marker = f"{hookspecs.PROJECT}_impl"
    out = []
    for attr in dir(plugin):
        if attr.startswith(f"{hookspecs.PROJECT}_"):
            obj = getattr(plugin, attr, None)
            if inspect.isroutine(obj) and not hasattr(obj, marker):
                out.append(attr)
    return out


def _add(pm: pluggy.PluginManager, plugin: Any, name: str, dist: str, version: str) -> str:
    """Register one plugin object, checked; '' on success, else why it is broken."""
    problem = _api_problem(plugin, name, dist)
    if problem:
        return problem
    undecorated = _undecorated_hooks(plugin)
    if undecorated:
        return (f"{', '.join(undecorated)} {'is' if len(undecorated) == 1 else 'are'} not decorated with "
                f"@slamfw.hookimpl, so pluggy would ignore {'it' if len(undecorated) == 1 else 'them'}")
    try:
        pm.register(plugin, name=name)
    except Exception as exc:  # pluggy validates the hookimpls' signatures here
        return f"{type(exc).__name__}: {exc}"
    try:
        pm.check_pending()   # hookimpls whose name is no hook (a misspelt hook)
    except pluggy.PluginValidationError as exc:
        pm.unregister(name=name)
        known = ", ".join(hookspecs.HOOKS.values())
        return f"{exc} (the hooks are: {known})"
    hooks = tuple(sorted(c.name for c in pm.get_hookcallers(plugin) or []))
    _state.plugins[name] = PluginInfo(name, dist, version, getattr(plugin, "__name__", type(plugin).__name__), hooks)
    return ""


def _entry_point_order(ep: metadata.EntryPoint) -> tuple[int, str, str]:
    dist = ep.dist.name if ep.dist is not None else "?"
    return (0 if dist == BUILTIN_DISTRIBUTION else 1, dist, ep.name)


def _load_entry_points(pm: pluggy.PluginManager) -> None:
    disabled = _disabled()
    seen: dict[str, tuple[str, str]] = {}
    for ep in sorted(_entry_points(), key=_entry_point_order):
        dist = ep.dist.name if ep.dist is not None else "?"
        version = ep.dist.version if ep.dist is not None else "?"
        if ep.name in disabled or dist in disabled or f"{dist}:{ep.name}" in disabled:
            _state.disabled.append((ep.name, dist))
            continue
        name = ep.name
        if name in seen:
            if seen[name] == (dist, ep.value):
                continue  # the same distribution found twice on sys.path
            name = f"{dist}:{ep.name}"
            note = (f"entry point {ep.name!r} of {dist} has the name of one from {seen[ep.name][0]}; "
                    f"loaded as plugin {name!r}")
            log.warning("slamfw: %s", note)
            _state.notes.append(note)
        seen[ep.name] = (dist, ep.value)
        try:
            plugin = ep.load()
        except Exception as exc:  # a broken plugin must not take the others down
            problem = f"{type(exc).__name__}: {exc}"
        else:
            problem = _add(pm, plugin, name, dist, version)
        if problem:
            log.error("slamfw plugin %r (from %s) is not loaded: %s", name, dist, problem)
            _state.broken.append(BrokenPlugin(name, dist, problem))


def get_plugin_manager() -> pluggy.PluginManager:
    """The plugin manager, with every entry-point plugin that loads cleanly registered."""
    with _state.lock:
        if _state.pm is None:
            pm = pluggy.PluginManager(hookspecs.PROJECT)
            pm.add_hookspecs(hookspecs)
            _state.pm = pm
            _load_entry_points(pm)
        return _state.pm


def register_plugin(plugin: Any, name: str | None = None, distribution: str = IN_PROCESS) -> str:
    """Register a plugin object or module in-process (notebooks, tests, scripts); returns its name.

    Raises :class:`PluginError` if it cannot be used (misspelt hook, another plugin API, a name
    already taken by another plugin).
    """
    pm = get_plugin_manager()
    with _state.lock:
        pname = name or getattr(plugin, "__name__", None) or f"plugin-{id(plugin)}"
        if pm.get_plugin(pname) is not None or pname in _state.plugins:
            raise PluginError(f"a plugin named {pname!r} is already registered")
        problem = _add(pm, plugin, pname, distribution, "")
        if problem:
            raise PluginError(f"plugin {pname!r} cannot be registered: {problem}")
        _state.registry = None
        return pname


def unregister_plugin(name: str) -> None:
    pm = get_plugin_manager()
    with _state.lock:
        pm.unregister(name=name)
        _state.plugins.pop(name, None)
        _state.registry = None


def reset() -> None:
    """Forget everything loaded (the next call re-reads the entry points)."""
    global _state
    with _state.lock:
        _state = _State()


def plugins() -> list[PluginInfo]:
    """The loaded plugins, in load order (which decides name collisions)."""
    get_plugin_manager()
    return list(_state.plugins.values())


def broken_plugins() -> list[BrokenPlugin]:
    """Plugins that are not used, and why."""
    _registries()
    return list(_state.broken)


def disabled_plugins() -> list[tuple[str, str]]:
    """(entry-point name, distribution) of the plugins ``SLAMFW_DISABLE_PLUGINS`` kept out."""
    get_plugin_manager()
    return list(_state.disabled)


def collisions() -> list[Collision]:
    """Component names registered by more than one plugin (see the rule in the module docstring)."""
    _registries()
    return list(_state.collisions)


def notes() -> list[str]:
    """Other things worth a user's attention (renamed entry points)."""
    get_plugin_manager()
    return list(_state.notes)


def _reserved_names(kind: str) -> set[str]:
    """Names a component of ``kind`` cannot have: the keys its config sections give the core."""
    k = KINDS[kind]
    return {key for _, key in k.sections} | set(k.core_keys) | {"name"}


def _register_function(kind: str, info: PluginInfo, buffer: list[Registered]) -> Any:
    """The ``register(name, cls)`` a hook receives: it checks and collects, nothing more."""
    base = KINDS[kind].base

    def register(name: str, cls: type) -> None:
        if not isinstance(name, str) or not name or ":" in name:
            raise PluginError(f"plugin {info.name!r} registered a {kind} under the name {name!r}: use a "
                              f"non-empty string without ':'")
        if name in _reserved_names(kind):
            raise PluginError(f"plugin {info.name!r} registered a {kind} under the name {name!r}, a key the "
                              f"core uses in {kind} config sections ({', '.join(sorted(_reserved_names(kind)))})")
        if not (isinstance(cls, type) and issubclass(cls, base)):
            raise PluginError(f"plugin {info.name!r} registered {name!r} as a {kind}, "
                              f"but {cls!r} is not a subclass of slamfw.{base.__name__}")
        buffer.append(Registered(kind, name, cls, info.name, info.distribution, info.version))
    return register


def _merge(entry: Registered, reg: dict[str, dict[str, Registered]],
           qualified: dict[str, dict[str, Registered]]) -> None:
    """Add one registration; the name stays with the first registration (the collision rule)."""
    qualified[entry.kind][entry.qualified_name] = entry
    kept = reg[entry.kind].get(entry.name)
    if kept is None:
        reg[entry.kind][entry.name] = entry
    elif kept.cls is not entry.cls:
        col = Collision(entry.kind, entry.name, kept, entry)
        log.warning("slamfw: %s", col.message())
        _state.collisions.append(col)


def _plugin_registrations(pm: pluggy.PluginManager, info: PluginInfo) -> list[Registered]:
    """Everything one plugin registers, through all its hooks; raises if any hook fails."""
    buffer: list[Registered] = []
    for kind, hook_name in hookspecs.HOOKS.items():
        for impl in getattr(pm.hook, hook_name).get_hookimpls():
            if impl.plugin_name == info.name:
                impl.function(register=_register_function(kind, info, buffer))
    return buffer


def _registries() -> dict[str, dict[str, Registered]]:
    """Call every plugin's hooks, in load order. A plugin whose hook fails contributes nothing."""
    pm = get_plugin_manager()
    with _state.lock:
        if _state.registry is not None:
            return _state.registry
        reg: dict[str, dict[str, Registered]] = {k: {} for k in KINDS}
        qualified: dict[str, dict[str, Registered]] = {k: {} for k in KINDS}
        _state.collisions = []
        for info in _state.plugins.values():
            try:
                entries = _plugin_registrations(pm, info)
            except Exception as exc:
                msg = f"{type(exc).__name__}: {exc}"
                log.error("slamfw plugin %r (from %s) is not used: a hook failed: %s", info.name, info.distribution, msg)
                if not any(b.name == info.name and b.error == msg for b in _state.broken):
                    _state.broken.append(BrokenPlugin(info.name, info.distribution, msg))
                continue
            for entry in entries:
                _merge(entry, reg, qualified)
        _state.registry, _state.qualified = reg, qualified
        return reg


def available(kind: str) -> dict[str, Registered]:
    """Registered components of one kind (``reader``, ``normalizer``, ``emulator``, ...)."""
    if kind not in KINDS:
        raise ValueError(f"unknown component kind {kind!r}; kinds are {sorted(KINDS)}")
    return dict(_registries()[kind])


def all_components() -> dict[str, dict[str, Registered]]:
    return {k: dict(v) for k, v in _registries().items()}


def lookup(kind: str, name: str) -> Registered | None:
    """The registration of ``name`` (or of a qualified ``plugin:name``) for ``kind``, or None."""
    reg = available(kind)
    return reg.get(name) or _state.qualified.get(kind, {}).get(name)


def get_component(kind: str, name: str, where: str | None = None) -> type[Component]:
    """The class registered as ``name`` for ``kind``; a clear error (with suggestions) if none."""
    found = lookup(kind, name)
    if found is not None:
        return found.cls
    reg = available(kind)
    where = where or f"{kind}.name"
    close = difflib.get_close_matches(name, list(reg), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    if _state.broken:   # a broken plugin's components are unknown: name them all
        hint += (" Plugins that are not loaded (one may provide it): "
                 + "; ".join(f"{b.name} ({b.distribution}): {b.error}" for b in _state.broken) + ".")
    raise ConfigError(f"{where}: no {kind} named {name!r} is registered.{hint} "
                      f"Available {kind}s: {', '.join(sorted(reg)) or '(none)'} (see `slamfw plugins`).")


def registered_name(component: Component | type[Component], kind: str) -> str | None:
    """The name under which ``component``'s class is registered for ``kind`` (None if it is not)."""
    cls = component if isinstance(component, type) else type(component)
    for entry in available(kind).values():
        if entry.cls is cls:
            return entry.name
    return None


def create(kind: str, name: str, params: dict[str, Any] | None = None, where: str | None = None) -> Component:
    """Instantiate component ``name`` of ``kind`` with ``params`` validated by its Params model.

    ``where`` is the config key that named it (``emulator.name``); errors in ``params`` are reported
    under its section (``emulator.<key>``).
    """
    cls = get_component(kind, name, where)
    prefix = where.rsplit(".", 1)[0] if where and "." in where else kind
    return cls(**cls.validate_params(params or {}, prefix))
