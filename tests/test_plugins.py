import types
from importlib import metadata

import pytest

import slamfw
from slamfw import ConfigError, Emulator, PluginError, plugins


def test_builtins_come_through_the_entry_point_group():
    eps = {ep.name: ep for ep in metadata.entry_points(group="slamfw")}
    for name in ("miles", "mock", "table", "spline", "none", "slam", "lm", "cv-scatter"):
        assert name in eps, name
        assert eps[name].dist.name == "slamfw"
    comps = plugins.all_components()
    assert set(comps["reader"]) >= {"miles", "mock", "table"}
    assert comps["emulator"]["slam"].distribution == "slamfw"
    assert comps["inferer"]["lm"].plugin == "lm"
    assert set(comps["normalizer"]) >= {"spline", "none"}
    assert "cv-scatter" in comps["analyzer"]


def test_core_does_not_import_plugins_by_name():
    import pathlib
    core = pathlib.Path(slamfw.__file__).parent
    for py in core.rglob("*.py"):
        text = py.read_text()
        assert "import slamfw_plugins" not in text and "from slamfw_plugins" not in text, py


class _FakeEP:
    def __init__(self, name, target, dist="broken-dist"):
        self.name, self._target = name, target
        self.dist = types.SimpleNamespace(name=dist)

    def load(self):
        if isinstance(self._target, Exception):
            raise self._target
        return self._target


def test_broken_plugin_reported_without_taking_others_down(monkeypatch):
    class Toy(Emulator):
        """toy"""

    good = types.SimpleNamespace(slamfw_register_emulators=slamfw.hookimpl(lambda register: register("toy", Toy)))
    bad_hook = types.SimpleNamespace(
        slamfw_register_readers=slamfw.hookimpl(lambda register: (_ for _ in ()).throw(RuntimeError("boom"))))
    real = list(metadata.entry_points(group="slamfw"))
    fakes = real + [_FakeEP("kaputt", ImportError("No module named 'nonexistent'")),
                    _FakeEP("toyplugin", good, "toy-dist"), _FakeEP("badhook", bad_hook, "bad-dist")]
    monkeypatch.setattr(plugins, "_entry_points", lambda: fakes)
    plugins.reset()
    try:
        broken = {b.name: b for b in plugins.broken_plugins()}
        assert "kaputt" in broken and "nonexistent" in broken["kaputt"].error
        assert broken["kaputt"].distribution == "broken-dist"
        assert "badhook" in broken and "boom" in broken["badhook"].error
        emus = plugins.available("emulator")
        assert emus["toy"].distribution == "toy-dist" and "slam" in emus
        assert "miles" in plugins.available("reader")
        with pytest.raises(ConfigError, match="failed to load"):
            plugins.get_component("emulator", "kaputt")
    finally:
        plugins.reset()


def test_register_wrong_base_class_is_reported(monkeypatch):
    class NotAnEmulator:
        pass

    mod = types.SimpleNamespace(
        slamfw_register_emulators=slamfw.hookimpl(lambda register: register("bogus", NotAnEmulator)))
    plugins.register_plugin(mod, name="bogus-plugin")
    try:
        assert "bogus" not in plugins.available("emulator")
        assert any(b.name == "bogus-plugin" and "not a subclass" in b.error for b in plugins.broken_plugins())
    finally:
        plugins.reset()


def test_in_process_plugin_and_cli_listing(capsys):
    from slamfw.cli import main

    class Mine(Emulator):
        """My emulator."""

    mod = types.SimpleNamespace(slamfw_register_emulators=slamfw.hookimpl(lambda register: register("mine", Mine)))
    plugins.register_plugin(mod, name="mine-plugin", distribution="my-dist")
    try:
        assert main(["plugins"]) == 0
        out = capsys.readouterr().out
        assert "emulators:" in out and "mine" in out and "my-dist" in out
        assert "slam" in out and "slamfw" in out
    finally:
        plugins.reset()


def test_unknown_kind():
    with pytest.raises(ValueError):
        plugins.available("frobnicator")
    with pytest.raises(PluginError.__mro__[1]):
        plugins.get_component("emulator", "definitely-not-there")
