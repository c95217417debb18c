"""The example third-party package examples/slamfw-linear-emulator, found through its entry point.

The fixture makes the package visible exactly as ``pip install`` would: a ``.dist-info`` with
its ``entry_points.txt`` (generated from the package's own pyproject.toml) on ``sys.path``, so
``importlib.metadata`` and therefore slamfw's plugin manager discover it by distribution.
"""
import json

from slamfw import registry
from slamfw.cli import main
from slamfw.testing import check_emulator

from . import test_cli
from .test_cli import write_config

data = test_cli.data  # the CLI tests' data fixture, reused


def test_listed_by_slamfw_plugins_with_its_distribution(installed_linear, capsys):
    reg = registry.available("emulator")
    assert reg["linear"].distribution == installed_linear == "slamfw-linear-emulator"
    assert reg["linear"].cls.__module__ == "slamfw_linear.emulator"
    assert main(["plugins"]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.strip().startswith("linear "))
    assert "slamfw-linear-emulator" in line and "LinearEmulator" in line


def test_passes_the_conformance_kit(installed_linear, capsys):
    results = check_emulator(registry.get_component("emulator", "linear"))
    assert all(r.passed for r in results)
    assert main(["check-emulator", "linear"]) == 0
    assert "15 passed, 0 failed" in capsys.readouterr().out


def test_experiment_with_set_emulator_name(installed_linear, data, capsys):
    """No editing of the config: the linear emulator is selected by --set, with its own table."""
    d, _ = data
    cfg = write_config(d, name="linear.toml", out="out-linear")
    assert main(["run", str(cfg), "--set", "emulator.name=linear", "--set", "emulator.linear.ridge=0.01"]) == 0
    out = d / "out-linear"
    assert (out / "catalog.fits").is_file()
    report = (out / "report.md").read_text()
    assert "emulator: `linear`" in report
    from slamfw.model import SlamfwModel
    model = SlamfwModel.load(out / "model.npz")
    assert model.emulator_name == "linear" and model.emulator.ridge == 0.01
    assert json.loads(json.dumps(model.metadata()))["emulator"]["name"] == "linear"
    resolved = (out / "config.yaml").read_text()
    assert "linear:" in resolved and "ridge: 0.01" in resolved and "slam:" not in resolved
