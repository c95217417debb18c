"""What every conformance kit shares: results, the error, the runner, and the parameter check.

A *check* is a module-level :class:`Check`: a function ``func(case) -> message`` with a stable
short name (``check_jacobian``) and a human title. The message is ``""`` when the check passes,
starts with ``"note:"`` when it passes with something worth saying, and says what is wrong
otherwise; an exception raised by the function is a failure too. A *case* (:class:`Case`)
holds the component class, its parameters, the data the kit generated for it and whatever the
checks share (a fitted emulator, a first read), computed once.
"""
from __future__ import annotations

import json
import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Sequence

from ..components.base import Component
from ..errors import SlamfwError

log = logging.getLogger("slamfw.testing")


@dataclass
class CheckResult:
    """The outcome of one check.

    name : the check's human title (what ``slamfw check-plugin`` prints)
    passed : whether it passed
    message : why not, or a note when it passed
    check : the check's stable short name (``check_jacobian``), as used by
        :func:`~slamfw.testing.parametrize_with_checks` and ``expected_failed_checks``
    """

    name: str
    passed: bool
    message: str = ""
    check: str = ""


class ComponentCheckError(AssertionError):
    """Raised by the kits when checks fail; ``results`` holds every outcome (passed ones too)."""

    def __init__(self, message: str, results: list[CheckResult]):
        super().__init__(message)
        self.results = results

    @property
    def failed(self) -> list[CheckResult]:
        """The results of the checks that failed."""
        return [r for r in self.results if not r.passed]


class EmulatorCheckError(ComponentCheckError):
    """Raised by :func:`~slamfw.testing.check_emulator` (kept for compatibility)."""


class NotRun(Exception):
    """Raised inside a check when what it needs could not be made (the fit failed, say)."""


class Case:
    """One component under test: its class, parameters and the data its checks share.

    Subclasses set ``base`` (the component contract they check) and ``error`` (the
    :class:`ComponentCheckError` subclass their kit raises), and add lazily computed shared state.
    """

    base: ClassVar[type[Component]] = Component
    error: ClassVar[type[ComponentCheckError]] = ComponentCheckError

    def __init__(self, cls: type[Component], params: dict[str, Any]) -> None:
        self.cls = cls
        self.params = dict(params)

    def fresh(self) -> Component:
        """A new instance built from the case's parameters."""
        return self.cls(**self.params)


def resolve(component: type[Component] | Component, params: dict[str, Any] | None,
            base: type[Component]) -> tuple[type[Component], dict[str, Any]]:
    """``(cls, params)`` from a class plus ``params`` or from an instance (its ``get_params()``)."""
    cls = component if isinstance(component, type) else type(component)
    if not issubclass(cls, base):
        raise TypeError(f"this kit checks {base.__name__} components; got {component!r}")
    if isinstance(component, type):
        return cls, dict(params or {})
    if params:
        raise TypeError("give params with a class only: an instance is checked with its own get_params()")
    return cls, dict(component.get_params())


def _params_key(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, default=repr)


_CACHE: "OrderedDict[tuple, Case]" = OrderedDict()
_CACHE_SIZE = 16


def cached_case(case_cls: type[Case], component: type[Component] | Component,
                params: dict[str, Any] | None = None) -> Case:
    """The case of ``component`` for ``case_cls``, shared by every check in this process.

    Keyed by (case type, component class, parameters); the last 16 are kept, so that one check
    per test (:func:`~slamfw.testing.parametrize_with_checks`) does not refit for every check.
    """
    cls, params = resolve(component, params, case_cls.base)
    key = (case_cls, cls, _params_key(params))
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    case = _CACHE[key] = case_cls(cls, params)
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return case


class Check:
    """A named conformance check of one kind of component.

    ``check(component, params=None)`` runs it alone on a class (with ``params``) or an unfitted
    instance, returns its :class:`CheckResult` and raises :class:`ComponentCheckError` when it
    fails; state shared between checks is cached per (class, parameters) in this process.
    ``name`` is the stable short name, ``title`` the human one.
    """

    def __init__(self, func: Callable[[Any], str | None], title: str, case_cls: type[Case],
                 name: str | None = None) -> None:
        self.func = func
        self.title = title
        self.case_cls = case_cls
        self.name = name or func.__name__
        self.__doc__ = f"{title}.\n\n{func.__doc__ or ''}".rstrip()

    def run(self, case: Case) -> CheckResult:
        """Run on ``case``; every exception becomes a failed result naming it."""
        try:
            msg = self.func(case) or ""
        except NotRun as err:
            msg = f"not run: {err}"
        except Exception as err:  # noqa: BLE001 - every failure becomes a report line
            log.debug("check %s raised", self.name, exc_info=True)
            msg = f"{type(err).__name__}: {err}"
        passed = not msg or msg.startswith("note:")
        return CheckResult(self.title, passed, msg.removeprefix("note:").strip(), self.name)

    def __call__(self, component: type[Component] | Component, params: dict[str, Any] | None = None
                 ) -> CheckResult:
        case = cached_case(self.case_cls, component, params)
        result = self.run(case)
        if not result.passed:
            raise case.error(failure_message(case.cls, [result]), [result])
        return result

    def __repr__(self) -> str:
        return self.name


def checker(case_cls: type[Case]) -> Callable[[str], Callable[[Callable[[Any], str | None]], Check]]:
    """A decorator factory: ``@check("title")`` turns ``func(case)`` into a :class:`Check`."""
    def check(title: str) -> Callable[[Callable[[Any], str | None]], Check]:
        def wrap(func: Callable[[Any], str | None]) -> Check:
            return Check(func, title, case_cls)
        return wrap
    return check


def failure_message(cls: type, results: Sequence[CheckResult]) -> str:
    """``"<Class> fails k of n conformance checks:"`` and one line per failed check."""
    failed = [r for r in results if not r.passed]
    lines = "\n".join(f"  - {r.check}: {r.name}: {r.message}" for r in failed)
    return f"{cls.__name__} fails {len(failed)} of {len(results)} conformance checks:\n{lines}"


def run_checks(checks: Sequence[Check], case: Case, raise_on_fail: bool) -> list[CheckResult]:
    """Run ``checks`` in order on ``case``; raise ``case.error`` listing failures if asked."""
    results = []
    for check in checks:
        result = check.run(case)
        log.debug("%s %s: %s", "PASS" if result.passed else "FAIL", check.name, result.message)
        results.append(result)
    if raise_on_fail and not all(r.passed for r in results):
        raise case.error(failure_message(case.cls, results), results)
    return results


def raises(fn: Callable[[], Any], expected: type[BaseException] = SlamfwError, contains: str = "") -> str:
    """``""`` if ``fn()`` raises ``expected`` with a message (containing ``contains``), else what
    went wrong."""
    try:
        fn()
    except expected as err:
        if not str(err).strip():
            return f"raised {type(err).__name__} without a message"
        if contains and contains not in str(err):
            return f"raised {type(err).__name__} whose message does not name {contains!r}: {err}"
        return ""
    except Exception as err:  # noqa: BLE001 - reported, not hidden
        return f"raised {type(err).__name__}: {err} instead of a {expected.__name__}"
    return f"did not raise (expected a {expected.__name__})"


PARAMS_TITLE = "parameters round-trip through get_params(), set_params() and clone()"


def _set_params_problem(comp: Component, got: dict[str, Any]) -> str:
    if comp.set_params(**got) is not comp:
        return "set_params() must return self"
    if comp.get_params() != got:
        return "set_params(**get_params()) changed the parameters"
    msg = raises(lambda: comp.set_params(no_such_parameter__=1), SlamfwError)
    if msg:
        return f"set_params() with an unknown key: {msg}"
    if comp.get_params() != got:
        return "a rejected set_params() call changed the parameters"
    return ""


def _clone_problem(comp: Component, got: dict[str, Any]) -> str:
    from sklearn.base import clone
    twin = clone(comp)
    if twin is comp or type(twin) is not type(comp):
        return "sklearn.base.clone() did not give a new object of the same class"
    if twin.get_params() != got:
        return f"clone() has other params: {twin.get_params()} != {got}"
    fitted = sorted(k for k in vars(twin) if k.endswith("_") and not k.startswith("_"))
    if fitted:
        return f"a fresh copy has fitted-looking attributes {fitted} (constructors must not set names ending in _)"
    return ""


def check_params_func(case: Case) -> str:
    """``get_params()`` is a JSON-able dict of every ``Params`` field and ``cls(**get_params())``
    has equal params; ``set_params`` returns self and rejects unknown keys (a
    :class:`~slamfw.SlamfwError`) without changing anything; ``sklearn.base.clone`` gives a new,
    unfitted instance with equal params."""
    comp = case.fresh()
    got = comp.get_params()
    if not isinstance(got, dict):
        return f"get_params() returned {type(got).__name__}, not a dict"
    fields = set(case.cls.Params.model_fields)
    if set(got) != fields:
        return f"get_params() keys {sorted(got)} differ from the Params fields {sorted(fields)}"
    try:
        json.dumps(got)
    except TypeError as err:
        return f"get_params() is not JSON-able: {err}"
    again = case.cls(**got).get_params()
    if again != got:
        return f"cls(**get_params()) has other params: {again} != {got}"
    return _set_params_problem(comp, got) or _clone_problem(comp, got)


def params_check(case_cls: type[Case]) -> Check:
    """The shared parameter check (:func:`check_params_func`) for the kind of ``case_cls``."""
    return Check(check_params_func, PARAMS_TITLE, case_cls, name="check_params")
