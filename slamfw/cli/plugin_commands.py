"""The commands about plugins: ``plugins [NAME]``, ``check-plugin KIND NAME``, ``check-emulator NAME``."""
from __future__ import annotations

import argparse
import re
from typing import Any

from .. import registry
from ..components.base import Component, ParamRole
from ..components.kinds import KINDS
from ..errors import ConfigError
from ..registry.manager import DISABLE_ENV
from .commands import key_values


def _first_line(doc: str | None) -> str:
    return (doc or "").strip().splitlines()[0] if (doc or "").strip() else ""


def _source(r: registry.Registered) -> str:
    return f"{r.distribution} {r.version}".strip()


def _list_components() -> list[str]:
    lines = []
    for kind, reg in registry.all_components().items():
        lines.append(f"{kind}s:")
        for name, r in sorted(reg.items()):
            lines.append(f"  {name:<14} {_source(r):<30} {r.cls.__module__}.{r.cls.__name__}  {_first_line(r.cls.__doc__)}")
    return lines


def _list_problems() -> list[str]:
    lines = []
    cols = registry.collisions()
    if cols:
        lines += ["name collisions (the first registration keeps the name: built-in plugins, then installed "
                  "ones by distribution name, then in-process ones):"]
        lines += [f"  warning: {c.message()}" for c in cols]
    broken = registry.broken_plugins()
    if broken:
        lines += ["plugins not loaded (broken or refused):"]
        lines += [f"  {b.name} ({b.distribution}): {b.error}" for b in broken]
    disabled = registry.disabled_plugins()
    if disabled:
        lines += [f"disabled by {DISABLE_ENV}:"] + [f"  {n} ({d})" for n, d in disabled]
    notes = registry.notes()
    if notes:
        lines += ["notes:"] + [f"  {n}" for n in notes]
    return lines


def _type_name(annotation: Any) -> str:
    text = getattr(annotation, "__name__", None) if isinstance(annotation, type) else None
    text = re.sub(r"\b(typing|pydantic\.types|pathlib)\.", "", text or str(annotation)).replace("NoneType", "None")
    return re.sub(r"Annotated\[(\w+), (G|L)(t|e)\((?:g|l)[te]=([^)]*)\)\]",
                  lambda m: f"{m[1]} {'>' if m[2] == 'G' else '<'}{'=' if m[3] == 'e' else ''} {m[4]}", text)


def describe_params(cls: type[Component]) -> list[str]:
    """One line per parameter of ``cls``: name, type, default, role and description."""
    from pydantic_core import PydanticUndefined
    rows = []
    for name, f in cls.Params.model_fields.items():
        if f.is_required():
            default = "(required)"
        elif f.default_factory is not None:
            default = f"= {f.default_factory()!r}"
        else:
            default = f"= {f.default!r}" if f.default is not PydanticUndefined else ""
        roles = [m.value for m in f.metadata if isinstance(m, ParamRole)]
        role = f" [{', '.join(roles)}]" if roles else ""
        rows.append(f"  {name:<18} {_type_name(f.annotation):<28} {default:<22}{role} {f.description or ''}".rstrip())
    return rows or ["  (no parameters)"]


def _show_component(name: str, kind: str | None) -> list[str]:
    kinds = [kind] if kind else list(registry.all_components())
    found = [(k, registry.lookup(k, name)) for k in kinds]
    found = [(k, r) for k, r in found if r is not None]
    if not found:
        raise ConfigError(f"no component named {name!r}" + (f" of kind {kind}" if kind else "") +
                          " is registered (see `slamfw plugins`)")
    lines = []
    for k, r in found:
        lines += [f"{k} {r.name!r} from plugin {r.plugin!r} ({_source(r)}): {r.cls.__module__}.{r.cls.__name__}",
                  f"  {_first_line(r.cls.__doc__)}",
                  f"parameters (config table [{KINDS[k].sections[0][0]}.{r.name}]):"]
        lines += describe_params(r.cls)
        lines.append("")
    return lines


def cmd_plugins(args: argparse.Namespace) -> int:
    if args.name:
        print("\n".join(_show_component(args.name, args.kind)).rstrip())
        return 0
    print("\n".join(_list_components()))
    print("plugins:")
    for info in registry.plugins():
        print(f"  {info.name:<34} {info.distribution} {info.version}".rstrip() + f"  ({', '.join(info.hooks) or 'no hooks'})")
    problems = _list_problems()
    if problems:
        print("\n".join(problems))
    return 0


def _run_kit(kind: str, name: str, params: dict[str, Any]) -> int:
    from ..testing import check_component
    cls = registry.get_component(kind, name, where=f"check-plugin {kind} NAME")
    missing = [k for k, f in cls.Params.model_fields.items() if f.is_required() and k not in params]
    if missing:
        raise ConfigError(f"{kind} {name!r} needs {', '.join(missing)} to run its kit: pass "
                          + " ".join(f"--param {k}=VALUE" for k in missing))
    params = cls.validate_params(params, prefix=name)
    print(f"conformance checks for {kind} {name!r} ({cls.__module__}.{cls.__name__}):")
    results = check_component(cls, params, raise_on_fail=False)
    for r in results:
        print(f"  {'PASS' if r.passed else 'FAIL'}  {r.name}" + (f"  ({r.message})" if r.message else ""))
    failed = sum(not r.passed for r in results)
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


def cmd_check_plugin(args: argparse.Namespace) -> int:
    return _run_kit(args.kind, args.name, key_values(args.param, "--param"))


def cmd_check_emulator(args: argparse.Namespace) -> int:
    return _run_kit("emulator", args.name, key_values(args.param, "--param"))
