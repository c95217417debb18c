"""scikit-learn conventions for every registered component, and the plugin API boundary."""
import ast
import pathlib

import numpy as np
import pytest
from sklearn.base import clone

import slamfw
from slamfw import ConfigError, registry, sdk
from slamfw.components.base import Component

from .conftest import REPO

REQUIRED = {"path": "/nowhere"}  # readers that read files need an input path to be constructed


def builtin_components():
    out = []
    for kind, reg in registry.all_components().items():
        for name, r in sorted(reg.items()):
            if r.distribution == "slamfw":
                params = {k: v for k, v in REQUIRED.items() if k in r.cls.Params.model_fields}
                out.append(pytest.param(r.cls, params, id=f"{kind}-{name}"))
    return out


@pytest.mark.parametrize("cls,params", builtin_components())
def test_clone_get_params_set_params(cls, params):
    comp = cls(**params)
    deep, shallow = comp.get_params(deep=True), comp.get_params(deep=False)
    assert deep == shallow and set(deep) == set(cls.Params.model_fields)
    copy = clone(comp)                      # sklearn's own clone: no home-made copies
    assert type(copy) is cls and copy is not comp and copy.get_params() == deep
    assert not hasattr(cls, "registered_name")   # the name lives in the registry
    assert comp.set_params(**deep) is comp and comp.get_params() == deep
    with pytest.raises(ConfigError, match="unknown key"):
        comp.set_params(no_such_parameter=1)


def test_set_params_validates_and_clone_keeps_fitted_state_out(small_slam):
    emu = clone(small_slam)
    assert not hasattr(emu, "dual_coef_") and emu.get_params() == small_slam.get_params()
    with pytest.raises(ConfigError, match=r"n_folds: Input should be greater than or equal to 2"):
        emu.set_params(n_folds=1)
    assert emu.n_folds == small_slam.n_folds      # a refused change leaves the component as it was
    emu.set_params(C=[5.0], n_folds=4)
    assert emu.C == [5.0] and emu.n_folds == 4


def test_registered_name_from_the_registry():
    cls = registry.get_component("emulator", "cannon")
    assert registry.registered_name(cls, "emulator") == "cannon"
    assert registry.registered_name(cls(), "emulator") == "cannon"


# ---------------------------------------------------------------- the plugin API boundary
ALLOWED_MODULES = {"slamfw", "slamfw.sdk", "slamfw.testing"}


def _slamfw_imports(path: pathlib.Path):
    """(module, names) of every ``slamfw...`` import in a file."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and \
                (node.module == "slamfw" or node.module.startswith("slamfw.")):
            yield node.module, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name == "slamfw" or a.name.startswith("slamfw."):
                    yield a.name, []


def plugin_files():
    roots = [REPO / "plugins" / "slamfw_plugins", REPO / "examples" / "slamfw-linear-emulator" / "slamfw_linear"]
    return [pytest.param(p, id=str(p.relative_to(REPO))) for root in roots for p in sorted(root.rglob("*.py"))]


@pytest.mark.parametrize("path", plugin_files())
def test_plugins_import_only_the_declared_api(path):
    import slamfw.testing
    for module, names in _slamfw_imports(path):
        assert module in ALLOWED_MODULES, f"{path.name} imports {module}: plugins may import only {ALLOWED_MODULES}"
        public = set(slamfw.testing.__all__) if module == "slamfw.testing" else set(sdk.__all__)
        outside = [n for n in names if n not in public]
        assert not outside, f"{path.name} imports {outside} from {module}, which the plugin API does not declare"


def test_slamfw_exports_exactly_the_sdk():
    assert set(slamfw.__all__) == set(sdk.__all__) | {"__version__"}
    for name in sdk.__all__:
        assert getattr(slamfw, name) is getattr(sdk, name)
    assert slamfw.PLUGIN_API == (1, 11)


def _builtin_names() -> set[str]:
    return {name for kind, reg in registry.all_components().items() for name, r in reg.items()
            if r.distribution == "slamfw"}


def _string_constants(tree: ast.AST):
    """String constants of a module that are not docstrings."""
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.add(id(first.value))
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            yield node


#: String constants of the core that equal a plugin name but mean something else.
NOT_PLUGIN_NAMES = {("compare_plots.py", "none"), ("figures.py", "none"),  # matplotlib: marker face, layout engine
                    ("maxlike.py", "lm")}  # scipy.optimize.least_squares method


def test_the_core_names_no_plugin():
    """No core module imports a plugin or uses a built-in component's registered name."""
    names = _builtin_names()
    assert {"slam", "none", "lm", "table", "mock", "spline"} <= names
    core = pathlib.Path(slamfw.__file__).parent
    for py in core.rglob("*.py"):
        tree = ast.parse(py.read_text())
        for module, _ in _slamfw_imports(py):
            assert not module.startswith("slamfw_plugins"), py
        assert "slamfw_plugins" not in py.read_text(), f"{py} names the built-in plugin package"
        for node in _string_constants(tree):
            if (py.name, node.value) not in NOT_PLUGIN_NAMES:
                assert node.value not in names, f"{py}:{node.lineno} names the plugin {node.value!r}"


def test_standardized_emulator_is_public_and_used():
    from slamfw_plugins.emulators.cannon import CannonEmulator
    assert issubclass(CannonEmulator, slamfw.StandardizedEmulator)
    assert issubclass(slamfw.StandardizedEmulator, Component)


class _Quadratic(slamfw.Emulator):
    """An emulator without an analytic jacobian: the core's finite-difference fallback serves it."""

    def fit(self, labels, flux, ivar):
        self.n_labels_, self.n_pixels_ = 2, 3
        return self

    def predict(self, labels):
        t = self._check_labels(labels)
        self.calls_.append(t.copy())
        return np.column_stack([t[:, 0] ** 2, t[:, 0] * t[:, 1], np.sin(t[:, 1])])


def _expected_jacobian(theta):
    return np.stack([np.column_stack([2 * theta[:, 0], np.zeros(len(theta))]),
                     np.column_stack([theta[:, 1], theta[:, 0]]),
                     np.column_stack([np.zeros(len(theta)), np.cos(theta[:, 1])])], axis=1)


@pytest.mark.parametrize("label_scale", [None, np.array([700.0, 0.5])])
def test_fallback_jacobian(label_scale):
    """Central differences, stepping fd_step x label_scale_ when the emulator has it, else
    fd_step x max(|label|, 1)."""
    emu = _Quadratic().fit(None, None, None)
    emu.calls_ = []
    if label_scale is not None:
        emu.label_scale_ = label_scale
    theta = np.array([[5000.0, 2.0], [4000.0, -1.0]])
    np.testing.assert_allclose(emu.jacobian(theta), _expected_jacobian(theta), rtol=1e-5, atol=1e-8)
    steps = [np.max(np.abs(c - theta), axis=0) for c in emu.calls_]
    expect = emu.fd_step * (label_scale if label_scale is not None else np.maximum(np.abs(theta).max(0), 1.0))
    np.testing.assert_allclose(steps[0], [expect[0], 0.0])       # the first call steps label 0 only
    np.testing.assert_allclose(steps[2], [0.0, expect[1]])       # the third, label 1


def test_every_shipped_components_numbers_refuse_nan_and_infinity():
    """Found by a bad-input hunt: 36 float parameters took infinity (C = [inf] hung training, gtol =
    inf reported the starting labels as fits, regularization = inf wrote a model of NaN). Wherever
    plain pydantic reads a NaN or an infinity (alone, in a list or in a table) into a parameter of a
    registered component, slamfw's ``Params`` refuse it, naming the key; a selection (``where``)
    takes an infinite bound, as in ``Teff = [4000, inf]``, and so do the fields where infinity means
    something (``infinite_ok``: a prior's open side, an open top S/N bin, no rejection above the
    spline, a catalogue's inf for a missing label); both refuse NaN."""
    import math

    from pydantic import ValidationError, create_model

    from slamfw import ParamRole, registry

    def not_finite(v):
        if isinstance(v, float):
            return not math.isfinite(v)
        items = v.values() if isinstance(v, dict) else v if isinstance(v, (list, tuple)) else ()
        return any(map(not_finite, items))
    refused = selections = 0
    for kind, comps in registry.all_components().items():
        for name, reg in comps.items():
            for field, info in reg.cls.Params.model_fields.items():
                plain = create_model("Plain", x=(info.annotation, ...))
                for bad in (math.nan, math.inf, -math.inf):
                    for value in (bad, [1.0, bad], {"a": bad}, {"a": [1.0, bad]}):
                        try:
                            if not not_finite(plain(x=value).x):
                                continue
                        except ValidationError:
                            continue             # not a value of this field's shape, or refused anyway
                        try:
                            reg.cls.Params.model_validate({field: value})
                            errors = []
                        except ValidationError as err:
                            errors = [e["msg"] for e in err.errors() if e["loc"][:1] == (field,)]
                        if (ParamRole.SELECTION in info.metadata or field in reg.cls.Params.infinite_ok) \
                                and not math.isnan(bad):
                            selections += 1           # taken, unless a bound of its own refuses it (k_upper > 0)
                            assert not any("finite" in m for m in errors), (kind, name, field, value, errors)
                        else:
                            refused += 1
                            assert errors, (kind, name, field, value)   # this, or a bound (gt=0) before it
    assert refused >= 100 and selections >= 12, (refused, selections)
