"""What every component shares: a pydantic ``Params`` model and scikit-learn's parameter protocol.

A component's ``__init__(**params)`` validates the keyword arguments against its ``Params`` model
and stores them as attributes (no data in constructors; fitted attributes end in ``_``).
``get_params(deep=True)`` and ``set_params(**params)`` follow scikit-learn, so
``sklearn.base.clone(component)`` gives an unfitted copy with equal parameters.

Parameters may carry a *role* in their annotation, which the core reads instead of guessing by
name (see :class:`ParamRole`)::

    class Params(Params):
        path: InputPath = Field(..., description="the directory of FITS files")
        where: Annotated[dict[str, list[float]], ParamRole.SELECTION] = Field(default_factory=dict)
"""
from __future__ import annotations

import enum
import math
import types
import typing
from typing import Annotated, Any, Callable, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator

from ..errors import ConfigError


def _leaf_types(annotation: Any) -> set[Any]:
    """The types a value of ``annotation`` may hold, through ``Annotated``, unions, ``Literal``
    (the types of its values) and containers (their item types)."""
    origin = typing.get_origin(annotation)
    if origin is None:
        return {annotation}
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return {type(a) for a in args}
    if origin is Annotated:
        return _leaf_types(args[0])
    if origin in (typing.Union, types.UnionType):
        return set().union(*(_leaf_types(a) for a in args))
    return set().union(*(_leaf_types(a) for a in args if a is not Ellipsis)) if args else {Any}


def _holds_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return True
    if isinstance(value, (list, tuple)):
        return any(_holds_bool(v) for v in value)
    if isinstance(value, dict):
        return any(_holds_bool(v) for v in value.values())
    return False


def _wants_a_number(annotation: Any) -> bool:
    """Whether ``annotation`` takes numbers and no booleans: pydantic would read ``true`` as 1
    there. A field that takes anything, or a pydantic model (which checks its own fields), does not."""
    leaves = _leaf_types(annotation)
    if leaves & {bool, Any, object} or any(isinstance(t, type) and issubclass(t, BaseModel) for t in leaves):
        return False
    return bool(leaves & {int, float})


def _not_finite(value: Any) -> float | None:
    """The first number in ``value`` (a number, or lists and dicts of them) that is NaN or
    infinite, or None."""
    if isinstance(value, float) and not math.isfinite(value):
        return value
    items = value.values() if isinstance(value, dict) else value if isinstance(value, (list, tuple)) else ()
    return next((bad for bad in map(_not_finite, items) if bad is not None), None)


class NumbersNotBooleans(BaseModel):
    """A pydantic model whose numeric fields refuse ``true``/``false``: pydantic's lax mode reads
    ``n_starts = true`` as 1 and ``wave_step = true`` as 1.0, silently; here it is an error
    naming the key, "expected a number, got true/false". They refuse NaN and infinity too (an
    infinite C hung training, an infinite gtol reported the starting labels as fits), except the
    fields named in ``infinite_ok`` (infinity is then a value, such as no time limit) and
    selections (:attr:`ParamRole.SELECTION`: ``where = {Teff = [4000, inf]}``), which still
    refuse NaN."""

    #: Fields whose numbers may be infinite (never NaN).
    infinite_ok: ClassVar[tuple[str, ...]] = ()

    @field_validator("*", mode="after")
    @classmethod
    def _finite_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        field = cls.model_fields.get(info.field_name or "")
        if field is None or not _wants_a_number(field.annotation) or (bad := _not_finite(value)) is None:
            return value
        if math.isnan(bad):
            raise ValueError("expected finite numbers, got nan")
        if info.field_name not in cls.infinite_ok and ParamRole.SELECTION not in field.metadata:
            raise ValueError(f"expected finite numbers, got {bad}")
        return value

    @field_validator("*", mode="before")
    @classmethod
    def _no_booleans_for_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        field = cls.model_fields.get(info.field_name or "")
        if field is not None and _holds_bool(value) and _wants_a_number(field.annotation):
            if isinstance(value, bool):
                raise ValueError(f"expected a number, got {str(value).lower()} (a boolean)")
            raise ValueError(f"expected numbers, got a boolean (true/false) in {value!r}")
        return value


class Params(NumbersNotBooleans):
    """Base for component parameter models: unknown keys are errors, and so are booleans given for
    numbers."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)


class ParamRole(str, enum.Enum):
    """What the core may do with a parameter, declared in its annotation.

    - ``INPUT_PATH``: a file or directory the component reads. A relative value in a config file
      is resolved against the file's folder; ``slamfw predict --data PATH`` sets a reader's
      input path; a model file does not record it (it says which data, not how to read them).
    - ``SELECTION``: chooses which stars to read (``where`` ranges, say), not how to read them;
      a model file does not record it either, so ``predict`` reads every star of a new survey.
    """

    INPUT_PATH = "input-path"
    SELECTION = "selection"


#: A ``str`` parameter naming the file or directory a component reads (see :class:`ParamRole`).
InputPath = Annotated[str, ParamRole.INPUT_PATH]


def params_with_role(cls: type["Component"], role: ParamRole) -> list[str]:
    """Names of the parameters of ``cls`` whose annotation carries ``role``."""
    return [name for name, f in cls.Params.model_fields.items() if role in f.metadata]


def format_validation_error(err: ValidationError, prefix: str | Callable[[str], str]) -> str:
    """One line per problem, each with the dotted path of the offending key.

    ``prefix`` is prepended to every location, or, when callable, maps the first key of the
    location to the dotted path it came from (a parameter may come from more than one place).
    """
    lines = []
    for e in err.errors():
        loc = [str(p) for p in e["loc"]]
        if callable(prefix):
            head = prefix(loc[0]) if loc else ""
            path = ".".join([head, *loc[1:]]) if head else ".".join(loc)
        else:
            path = ".".join(p for p in (prefix, *loc) if p != "")
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        lines.append(f"{path}: {msg}")
    return "; ".join(lines)


def _identical(a: Any, b: Any) -> bool:
    """Equal values of identical types, recursively (10 and 10.0 differ here)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_identical(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_identical(a[k], b[k]) for k in a)
    return bool(a == b)


_MISSING = object()


class Component:
    """Base of all pluggable components.

    Subclasses declare ``Params`` (a :class:`Params` subclass). ``__init__(**params)`` validates
    and stores them as attributes; a value that validation leaves unchanged is stored as the very
    object given, which is what ``sklearn.base.clone`` checks.
    """

    Params: ClassVar[type[Params]] = Params

    def __init__(self, **params: Any) -> None:
        for key, value in self.validate_params(params).items():
            given = params.get(key, _MISSING)
            setattr(self, key, given if _identical(given, value) else value)

    @classmethod
    def validate_params(cls, params: dict[str, Any], prefix: str | Callable[[str], str] | None = None
                        ) -> dict[str, Any]:
        """``params`` checked by ``Params``, defaults filled in, as a plain dict.

        A :class:`ConfigError` names each bad key as ``prefix.key`` (``prefix`` defaults to the
        class name; a callable maps each key to its dotted path).
        """
        try:
            return cls.Params(**params).model_dump()
        except ValidationError as err:
            raise ConfigError(format_validation_error(err, prefix or cls.__name__)) from None

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The parameters, as stored (JSON-able). ``deep`` is accepted for scikit-learn:
        components hold no nested components, so it changes nothing."""
        return {k: getattr(self, k) for k in self.Params.model_fields}

    def set_params(self, **params: Any) -> "Component":
        """Change parameters, validated together with the others; returns self."""
        merged = {**self.get_params(), **params}
        for key, value in self.validate_params(merged).items():
            setattr(self, key, params[key] if key in params and _identical(params[key], value) else value)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"
