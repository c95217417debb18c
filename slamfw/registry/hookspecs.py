"""Every hook a slamfw plugin can implement, made from the table of kinds.

A plugin is a module (or object) registered in the ``slamfw`` entry-point group. It implements
one or more of the hooks below with :data:`slamfw.hookimpl`; each hook receives a ``register``
callable and calls ``register(name, cls)`` once per component it provides. Configs then name
components by that ``name`` (``[emulator] name = "slam"``).

There is one hook per kind in :data:`slamfw.components.kinds.KINDS`,
``slamfw_register_<kinds>(register)``: ``slamfw_register_readers``,
``slamfw_register_normalizers``, ``slamfw_register_emulators``, ``slamfw_register_inferers``,
``slamfw_register_analyzers``. ``docs/hooks.md`` is the reference (made by :func:`hook_reference`).

Example::

    from slamfw import Emulator, hookimpl

    SLAMFW_PLUGIN_API = (1, 11)       # the plugin API this plugin was written for

    class MyEmulator(Emulator):
        ...

    @hookimpl
    def slamfw_register_emulators(register):
        register("my-emulator", MyEmulator)
"""
from __future__ import annotations

from typing import Any, Callable

import pluggy

from ..components.kinds import KINDS, Kind

PROJECT = "slamfw"
#: The version of the plugin API (what :mod:`slamfw.sdk` exports and the hooks). A plugin may
#: declare the version it was written for as a module attribute ``SLAMFW_PLUGIN_API = (1, 11)``:
#: a different major version is refused, with a message naming the plugin.
PLUGIN_API = (1, 11)

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


def hook_doc(kind: Kind) -> str:
    """The docstring of the hook that registers components of ``kind``."""
    base = kind.base.__name__
    where = ", ".join(f"``{s}.{key}``" for s, key in kind.sections) or "the Python API"
    return (f"Register {kind.plural}: call ``register(name, cls)`` once per component, with ``cls`` a "
            f"subclass of :class:`slamfw.{base}`.\n\n"
            f"A {kind.name} {kind.does}. Configs select it by ``name`` in {where}; the name must not "
            f"contain ``:`` (``plugin:name`` is how a name that another plugin already took is reached).")


def _make_spec(kind: Kind) -> Callable[..., Any]:
    def spec(register):  # noqa: ANN001 - the hook's one argument
        """(replaced below)"""
    spec.__name__ = spec.__qualname__ = kind.hook
    spec.__doc__ = hook_doc(kind)
    return hookspec(spec)


for _kind in KINDS.values():
    globals()[_kind.hook] = _make_spec(_kind)

HOOKS: dict[str, str] = {k.name: k.hook for k in KINDS.values()}


def hook_reference() -> str:
    """The hook reference page (``docs/hooks.md``), from the table of kinds."""
    lines = ["# Hook reference", "",
             "Generated from `slamfw/components/kinds.py` by `slamfw.registry.hookspecs.hook_reference()`; "
             "a test keeps this page in step with the code.", "",
             f"Plugin API version: {PLUGIN_API[0]}.{PLUGIN_API[1]} (`slamfw.PLUGIN_API`). A plugin may declare "
             "the version it was written for as a module attribute, `SLAMFW_PLUGIN_API = (1, 11)`; one that "
             "declares another major version is refused and reported by `slamfw plugins`.", "",
             "Every hook takes one argument, `register`, and is implemented with `@slamfw.hookimpl`. A function "
             "named `slamfw_...` that is not one of these hooks, or one of these hooks without `@hookimpl`, "
             "makes the plugin broken: it is not loaded, and `slamfw plugins` says why.", ""]
    for kind in KINDS.values():
        lines += [f"## `{kind.hook}(register)`", "", hook_doc(kind).replace("``", "`")
                  .replace(":class:", ""), "",
                  f"Contract: `slamfw.{kind.base.__name__}`; conformance kit: "
                  f"`slamfw.testing.check_{kind.name}` (`slamfw check-plugin {kind.name} NAME`).", ""]
    return "\n".join(lines)
