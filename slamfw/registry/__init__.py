"""Plugins and the registries of components they fill (see :mod:`.manager` for the rules)."""
from .hookspecs import PLUGIN_API, hook_reference, hookimpl
from .manager import (
    BrokenPlugin, Collision, PluginInfo, Registered, all_components, available, broken_plugins, collisions,
    create, disabled_plugins, get_component, get_plugin_manager, lookup, notes, plugins, register_plugin,
    registered_name, reset, unregister_plugin,
)

__all__ = ["PLUGIN_API", "hook_reference", "hookimpl", "BrokenPlugin", "Collision", "PluginInfo", "Registered",
           "all_components", "available", "broken_plugins", "collisions", "create", "disabled_plugins",
           "get_component", "get_plugin_manager", "lookup", "notes", "plugins", "register_plugin",
           "registered_name", "reset", "unregister_plugin"]
