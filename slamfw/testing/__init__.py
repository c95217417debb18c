"""Conformance kits for plugin authors (part of the plugin API)."""
from .emulator import CheckResult, EmulatorCheckError, check_emulator, make_check_data

__all__ = ["CheckResult", "EmulatorCheckError", "check_emulator", "make_check_data"]


def check_component(component, params=None, *, raise_on_fail=True):
    """Run the conformance kit of ``component``'s kind (a class with ``params``, or an instance)."""
    from ..components.kinds import kind_of
    kind = kind_of(component).name
    if kind == "emulator":
        return check_emulator(component, params, raise_on_fail=raise_on_fail)
    raise NotImplementedError(f"no conformance kit for {kind}s yet")
