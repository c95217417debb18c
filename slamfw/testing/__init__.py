"""Conformance kits for plugin authors (part of the plugin API), one per kind of component.

Each kit checks the contract of its kind on data it generates itself and returns one
:class:`CheckResult` per check, raising :class:`ComponentCheckError` (listing the failures) by
default::

    from slamfw.testing import check_inferer, check_prior, check_reader
    check_inferer(MyInferer)                             # a class with its default parameters
    check_prior(MyPrior)                                 # fitted on made-up labels Teff, logg, FeH
    check_reader(MyReader, {"path": "tests/data/x.fits"})   # readers of files need their path
    results = check_inferer(MyInferer(n_walkers=16), raise_on_fail=False)   # an instance

:func:`check_component` picks the kit by the component's kind (``slamfw check-plugin KIND NAME``
runs it). Every check is also a module-level function with a stable short name, e.g.
``slamfw.testing.inferer.check_chunk_invariance(MyInferer())``, listed per kind in
:data:`CHECKS`. :func:`parametrize_with_checks` makes one pytest test per (component, check),
where an expected failure can be marked with a reason::

    from slamfw.testing import parametrize_with_checks

    def known_failures(component):
        return {"check_chunk_invariance": "the sampler's seed is per call (issue 42)"}

    @parametrize_with_checks([MyInferer(), MyInferer(n_walkers=8)], expected_failed_checks=known_failures)
    def test_conformance(component, check):
        check(component)
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

from ..components.base import Component
from ..components.kinds import kind_of
from ._common import Check, CheckResult, ComponentCheckError, EmulatorCheckError
from .analyzer import ANALYZER_CHECKS, check_analyzer
from .emulator import EMULATOR_CHECKS, check_emulator
from .executor import EXECUTOR_CHECKS, check_executor
from .inferer import INFERER_CHECKS, check_inferer
from .normalizer import NORMALIZER_CHECKS, check_normalizer
from .prior import PRIOR_CHECKS, check_prior
from .reader import READER_CHECKS, check_reader
from .reference import ReferenceEmulator, make_check_data, make_reference_model, reference_labels

__all__ = ["check_emulator", "check_inferer", "check_normalizer", "check_reader", "check_analyzer", "check_executor",
           "check_prior", "check_component", "parametrize_with_checks", "CheckResult", "ComponentCheckError",
           "EmulatorCheckError", "make_check_data", "ReferenceEmulator", "make_reference_model",
           "reference_labels", "CHECKS", "KITS", "EMULATOR_CHECKS", "INFERER_CHECKS",
           "NORMALIZER_CHECKS", "READER_CHECKS", "ANALYZER_CHECKS", "EXECUTOR_CHECKS", "PRIOR_CHECKS"]

#: The checks of each kind, in the order its kit runs them.
CHECKS: dict[str, list[Check]] = {"reader": READER_CHECKS, "normalizer": NORMALIZER_CHECKS,
                                  "emulator": EMULATOR_CHECKS, "inferer": INFERER_CHECKS,
                                  "analyzer": ANALYZER_CHECKS, "executor": EXECUTOR_CHECKS, "prior": PRIOR_CHECKS}

#: The kit of each kind: ``kit(component, params=None, *, raise_on_fail=True)``.
KITS: dict[str, Callable[..., list[CheckResult]]] = {
    "reader": check_reader, "normalizer": check_normalizer, "emulator": check_emulator,
    "inferer": check_inferer, "analyzer": check_analyzer, "executor": check_executor, "prior": check_prior}


def check_component(component: type[Component] | Component, params: dict[str, Any] | None = None, *,
                    raise_on_fail: bool = True) -> list[CheckResult]:
    """Run the kit of ``component``'s kind (a class with ``params``, or an instance).

    Returns one :class:`CheckResult` per check; raises :class:`ComponentCheckError` listing the
    failed checks when ``raise_on_fail``.
    """
    return KITS[kind_of(component).name](component, params, raise_on_fail=raise_on_fail)


def _component_id(component: type[Component] | Component) -> str:
    """``Class(param=value, ...)`` with the parameters that differ from their defaults."""
    if isinstance(component, type):
        return component.__name__
    shown = []
    params = component.get_params()
    for name, field in type(component).Params.model_fields.items():
        if not field.is_required() and params.get(name) == field.get_default(call_default_factory=True):
            continue
        shown.append(f"{name}={params.get(name)!r}")
    return f"{type(component).__name__}({', '.join(shown)})"


def parametrize_with_checks(components: Iterable[type[Component] | Component], *,
                            expected_failed_checks: Callable[[Any], dict[str, str]] | None = None) -> Any:
    """A ``pytest.mark.parametrize("component, check", ...)`` decorator: one test per
    (component, check of its kind), with ids like ``SlamEmulator(C=[3.0])-check_jacobian``.

    Parameters
    ----------
    components : component instances (checked with their ``get_params()``) or classes (their
        default parameters), of any kinds.
    expected_failed_checks : ``component -> {check name: reason}``; those cases are marked
        ``pytest.mark.xfail(reason=..., strict=True)``, so they fail the run when they pass.

    The test calls ``check(component)``, which raises :class:`ComponentCheckError` when the check
    fails. What the checks of one component share (a fitted emulator, a first read) is made once
    per process for each (class, parameters).
    """
    import pytest

    cases = []
    for component in components:
        kind = kind_of(component).name
        expected = dict(expected_failed_checks(component) or {}) if expected_failed_checks else {}
        unknown = set(expected) - {c.name for c in CHECKS[kind]}
        if unknown:
            raise ValueError(f"expected_failed_checks for {_component_id(component)}: no {kind} checks named "
                             f"{sorted(unknown)}")
        for check in CHECKS[kind]:
            marks = [pytest.mark.xfail(reason=expected[check.name], strict=True)] if check.name in expected else []
            cases.append(pytest.param(component, check, marks=marks, id=f"{_component_id(component)}-{check.name}"))
    return pytest.mark.parametrize("component, check", cases)
