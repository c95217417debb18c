"""Plugin discovery: built-ins through namespaced entry points, and nothing that fails silently.

Third-party plugins here are real distributions on sys.path (a ``.dist-info`` with its
``entry_points.txt``, as ``pip install`` leaves them), found by ``importlib.metadata``.
"""
import textwrap
import types
from importlib import metadata

import pytest

import slamfw
from slamfw import PLUGIN_API, ConfigError, Emulator, PluginError, registry
from slamfw.cli import main

from .conftest import make_distribution

BUILTIN_EPS = {
    "slamfw.readers.miles", "slamfw.readers.mock", "slamfw.readers.table", "slamfw.readers.lamost", "slamfw.readers.apogee",
    "slamfw.readers.specutils", "slamfw.normalizers.spline",
    "slamfw.normalizers.identity", "slamfw.emulators.slam", "slamfw.emulators.cannon", "slamfw.emulators.krr",
    "slamfw.inferers.lm", "slamfw.inferers.emcee", "slamfw.priors.builtin", "slamfw.priors.table",
    "slamfw.analyzers.cv_scatter", "slamfw.analyzers.cod", "slamfw.analyzers.error_model",
    "slamfw.analyzers.snr_degrade", "slamfw.analyzers.label_distance", "slamfw.analyzers.training_quality",
    "slamfw.analyzers.figures", "slamfw.executors.builtin", "slamfw.executors.dask",
}

# A third-party plugin whose entry point and component both carry built-in names.
SHADOW = '''
import slamfw
from slamfw import Reader
from slamfw_plugins.readers.table import TableReader


class MyTable(TableReader):
    """Someone else's table reader."""


@slamfw.hookimpl
def slamfw_register_readers(register):
    register("table", MyTable)
    register("fancy-table", MyTable)
'''

MISSPELT = '''
import slamfw
from slamfw_plugins.emulators.cannon import CannonEmulator


@slamfw.hookimpl
def slamfw_register_emulator(register):      # no such hook: the plural is slamfw_register_emulators
    register("misspelt", CannonEmulator)
'''

UNDECORATED = '''
from slamfw_plugins.emulators.cannon import CannonEmulator


def slamfw_register_emulators(register):      # the right name, but pluggy ignores it without @hookimpl
    register("undecorated", CannonEmulator)
'''

FUTURE = '''
import slamfw
from slamfw_plugins.emulators.cannon import CannonEmulator

SLAMFW_PLUGIN_API = (2, 0)


@slamfw.hookimpl
def slamfw_register_emulators(register):
    register("from-the-future", CannonEmulator)
'''

GOOD = '''
import slamfw
from slamfw_plugins.emulators.cannon import CannonEmulator

SLAMFW_PLUGIN_API = (1, 0)


class Good(CannonEmulator):
    """A well-behaved third-party emulator."""


@slamfw.hookimpl
def slamfw_register_emulators(register):
    register("good", Good)
'''


@pytest.fixture()
def third_party(tmp_path, monkeypatch):
    """Install five third-party distributions; reload the plugins; undo afterwards."""
    dists = [("shadow-dist", "2.1", {"table": "shadow_mod"}, {"shadow_mod": SHADOW}),
             ("misspelt-dist", "0.3", {"misspelt": "misspelt_mod"}, {"misspelt_mod": MISSPELT}),
             ("undecorated-dist", "0.1", {"undecorated": "undecorated_mod"}, {"undecorated_mod": UNDECORATED}),
             ("future-dist", "9.0", {"future": "future_mod"}, {"future_mod": FUTURE}),
             ("good-dist", "1.4.2", {"good": "good_mod"}, {"good_mod": GOOD})]
    for name, version, eps, mods in dists:
        monkeypatch.syspath_prepend(str(make_distribution(tmp_path / name, name, version, eps, mods)))
    registry.reset()
    yield
    registry.reset()


def test_builtins_come_through_namespaced_entry_points():
    eps = {ep.name: ep for ep in metadata.entry_points(group="slamfw") if ep.dist.name == "slamfw"}
    assert set(eps) == BUILTIN_EPS
    comps = registry.all_components()
    assert set(comps["reader"]) >= {"miles", "mock", "table"}
    assert comps["emulator"]["slam"].distribution == "slamfw"
    assert comps["emulator"]["slam"].version == slamfw.__version__
    assert comps["inferer"]["lm"].plugin == "slamfw.inferers.lm"
    assert set(comps["normalizer"]) >= {"spline", "none"}
    assert "cv-scatter" in comps["analyzer"]
    assert all(p.builtin for p in registry.plugins() if p.name in BUILTIN_EPS)
    assert not registry.broken_plugins() and not registry.collisions()


def test_core_does_not_import_plugins_by_name():
    import pathlib
    core = pathlib.Path(slamfw.__file__).parent
    for py in core.rglob("*.py"):
        text = py.read_text()
        assert "import slamfw_plugins" not in text and "from slamfw_plugins" not in text, py


def test_collision_with_a_builtin_name_is_reported_and_the_builtin_keeps_it(third_party, capsys):
    table = registry.lookup("reader", "table")
    assert table.distribution == "slamfw"                                  # the rule: built-ins first
    shadowed = registry.lookup("reader", "table:table")                    # <plugin>:<name>
    assert shadowed is not None and shadowed.cls.__name__ == "MyTable" and shadowed.distribution == "shadow-dist"
    assert registry.get_component("reader", "fancy-table").__name__ == "MyTable"
    cols = registry.collisions()
    assert len(cols) == 1 and cols[0].kept.distribution == "slamfw" and cols[0].shadowed.plugin == "table"
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "name collisions" in out and "reader 'table' from plugin 'table' (shadow-dist)" in out
    assert "'table:table'" in out
    assert "good-dist 1.4.2" in out and "shadow-dist 2.1" in out           # each distribution's version


def test_broken_plugins_are_reported_by_name(third_party, capsys):
    broken = {b.name: b for b in registry.broken_plugins()}
    assert set(broken) == {"misspelt", "undecorated", "future"}
    assert "unknown hook 'slamfw_register_emulator'" in broken["misspelt"].error
    assert broken["misspelt"].distribution == "misspelt-dist"
    assert "not decorated with @slamfw.hookimpl" in broken["undecorated"].error
    assert "plugin API 2.0" in broken["future"].error and "%d.%d" % PLUGIN_API in broken["future"].error
    emus = registry.available("emulator")
    assert not {"misspelt", "undecorated", "from-the-future"} & set(emus)
    # nothing else breaks
    assert {"slam", "cannon", "krr", "good"} <= set(emus) and emus["good"].distribution == "good-dist"
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    for name in ("misspelt (misspelt-dist)", "undecorated (undecorated-dist)", "future (future-dist)"):
        assert name in out
    with pytest.raises(ConfigError, match="not loaded.*plugin API 2.0"):
        registry.get_component("emulator", "future")


def test_disabling_plugins_by_environment(third_party, monkeypatch, capsys):
    monkeypatch.setenv("SLAMFW_DISABLE_PLUGINS", "good-dist, slamfw.emulators.krr")
    registry.reset()
    emus = registry.available("emulator")
    assert "good" not in emus and "krr" not in emus and "slam" in emus
    assert ("good", "good-dist") in registry.disabled_plugins()
    assert main(["plugins"]) == 0
    assert "disabled by SLAMFW_DISABLE_PLUGINS" in capsys.readouterr().out


def test_entry_point_name_taken_by_another_distribution_is_renamed(tmp_path, monkeypatch):
    for dist in ("alpha-dist", "beta-dist"):
        mod = dist.split("-")[0] + "_mod"
        src = GOOD.replace('"good"', f'"{dist.split("-")[0]}"')
        monkeypatch.syspath_prepend(str(make_distribution(tmp_path / dist, dist, "1.0", {"same": mod}, {mod: src})))
    registry.reset()
    try:
        names = {p.name: p.distribution for p in registry.plugins()}
        assert names["same"] == "alpha-dist" and names["beta-dist:same"] == "beta-dist"
        assert {"alpha", "beta"} <= set(registry.available("emulator"))
        assert any("beta-dist" in n for n in registry.notes())
    finally:
        registry.reset()


def test_import_error_and_raising_hook_are_reported(tmp_path, monkeypatch):
    raising = 'import slamfw\n\n@slamfw.hookimpl\ndef slamfw_register_readers(register):\n    raise RuntimeError("boom")\n'
    monkeypatch.syspath_prepend(str(make_distribution(tmp_path / "a", "kaputt-dist", "1.0", {"kaputt": "nonexistent_mod"}, {})))
    monkeypatch.syspath_prepend(str(make_distribution(tmp_path / "b", "bad-dist", "1.0", {"badhook": "badhook_mod"},
                                                      {"badhook_mod": raising})))
    registry.reset()
    try:
        broken = {b.name: b for b in registry.broken_plugins()}
        assert "nonexistent_mod" in broken["kaputt"].error and broken["kaputt"].distribution == "kaputt-dist"
        assert "boom" in broken["badhook"].error
        assert "miles" in registry.available("reader")
    finally:
        registry.reset()


def test_register_wrong_base_class_is_reported():
    class NotAnEmulator:
        pass

    mod = types.SimpleNamespace(
        slamfw_register_emulators=slamfw.hookimpl(lambda register: register("bogus", NotAnEmulator)))
    registry.register_plugin(mod, name="bogus-plugin")
    try:
        assert "bogus" not in registry.available("emulator")
        assert any(b.name == "bogus-plugin" and "not a subclass" in b.error for b in registry.broken_plugins())
    finally:
        registry.reset()


def test_in_process_registration_refuses_a_misspelt_hook():
    mod = types.SimpleNamespace(slamfw_register_emulatorz=slamfw.hookimpl(lambda register: None))
    with pytest.raises(PluginError, match="unknown hook 'slamfw_register_emulatorz'"):
        registry.register_plugin(mod, name="typo-plugin")
    assert "typo-plugin" not in {p.name for p in registry.plugins()}
    assert "slam" in registry.available("emulator")


def test_in_process_plugin_and_cli_listing(capsys):
    class Mine(Emulator):
        """My emulator."""

    mod = types.SimpleNamespace(slamfw_register_emulators=slamfw.hookimpl(lambda register: register("mine", Mine)))
    registry.register_plugin(mod, name="mine-plugin", distribution="my-dist")
    try:
        assert main(["plugins"]) == 0
        out = capsys.readouterr().out
        assert "emulators:" in out and "mine" in out and "my-dist" in out
        assert "slam" in out and "slamfw" in out
    finally:
        registry.reset()


def test_plugins_name_shows_parameters(capsys):
    assert main(["plugins", "cannon"]) == 0
    out = capsys.readouterr().out
    assert "[emulator.cannon]" in out
    line = next(ln for ln in out.splitlines() if ln.strip().startswith("order "))
    assert "int" in line and "= 2" in line and "polynomial order" in line
    assert main(["plugins", "miles", "--kind", "reader"]) == 0
    out = capsys.readouterr().out
    assert "[data.train.miles]" in out
    assert "(required)" in next(ln for ln in out.splitlines() if ln.strip().startswith("path "))
    assert "[input-path]" in out and "[selection]" in out
    assert main(["plugins", "nonesuch"]) == 2


def test_hook_reference_page_is_up_to_date():
    from slamfw.registry import hook_reference
    from .conftest import REPO
    assert (REPO / "docs" / "hooks.md").read_text().strip() == hook_reference().strip(), \
        "docs/hooks.md is out of date: write slamfw.registry.hook_reference() into it"


def test_unknown_kind():
    with pytest.raises(ValueError):
        registry.available("frobnicator")
    with pytest.raises(ConfigError):
        registry.get_component("emulator", "definitely-not-there")


def test_hooks_come_from_the_table_of_kinds():
    from slamfw.components.kinds import KINDS
    from slamfw.registry import hookspecs
    pm = registry.get_plugin_manager()
    for kind in KINDS.values():
        caller = getattr(pm.hook, kind.hook)
        assert caller.spec is not None and "register" in caller.spec.argnames
        assert kind.base.__name__ in getattr(hookspecs, kind.hook).__doc__
    assert textwrap.dedent(hookspecs.hook_doc(KINDS["emulator"])).startswith("Register emulators")


HALF = '''
import slamfw
from slamfw_plugins.emulators.cannon import CannonEmulator
from slamfw_plugins.readers.mock import MockReader


@slamfw.hookimpl
def slamfw_register_readers(register):
    register("half-reader", MockReader)


@slamfw.hookimpl
def slamfw_register_emulators(register):
    register("half-registered", CannonEmulator)
    raise RuntimeError("second thoughts")
'''

RESERVED = '''
import slamfw
from slamfw_plugins.emulators.cannon import CannonEmulator


@slamfw.hookimpl
def slamfw_register_emulators(register):
    register("model", CannonEmulator)          # emulator.model is the core's key
'''

NEXT_MINOR = "%d.%d" % (PLUGIN_API[0], PLUGIN_API[1] + 1)     # a minor version newer than this slamfw's
MINOR = GOOD.replace("(1, 0)", f"({PLUGIN_API[0]}, {PLUGIN_API[1] + 1})").replace('"good"', '"newer-minor"')


def test_a_failing_plugin_contributes_nothing(tmp_path, monkeypatch, capsys):
    """A hook that raises after registering something, in any of the plugin's hooks, leaves no trace."""
    for name, mod, src in (("half-dist", "half_mod", HALF), ("reserved-dist", "reserved_mod", RESERVED),
                           ("minor-dist", "minor_mod", MINOR)):
        monkeypatch.syspath_prepend(str(make_distribution(tmp_path / name, name, "1.0", {name.split("-")[0]: mod},
                                                          {mod: src})))
    registry.reset()
    try:
        assert "half-registered" not in registry.available("emulator")
        assert "half-reader" not in registry.available("reader")
        assert registry.lookup("emulator", "half:half-registered") is None
        broken = {b.name: b.error for b in registry.broken_plugins()}
        assert "second thoughts" in broken["half"]
        assert "'model', a key the core uses" in broken["reserved"]
        assert "newer-minor" in registry.available("emulator")          # a newer minor API loads ...
        assert any(f"'minor' (minor-dist) declares plugin API {NEXT_MINOR}" in n for n in registry.notes())  # ... with a note
        assert main(["plugins"]) == 0
        assert f"declares plugin API {NEXT_MINOR}" in capsys.readouterr().out
    finally:
        registry.reset()
