"""The example third-party package examples/slamfw-linear-emulator, found through its entry point.

The fixture makes the package visible exactly as ``pip install`` would: a ``.dist-info`` with
its ``entry_points.txt`` (generated from the package's own pyproject.toml) on ``sys.path``, so
``importlib.metadata`` and therefore slamfw's plugin manager discover it by distribution.
"""
import json
import sys

import pytest

from slamfw import registry
from slamfw.cli import main
from slamfw.testing import check_emulator

from .conftest import REPO
from . import test_cli
from .test_cli import write_config

data = test_cli.data  # the CLI tests' data fixture, reused

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PACKAGE = REPO / "examples" / "slamfw-linear-emulator"


@pytest.fixture()
def installed_linear(tmp_path, monkeypatch):
    project = tomllib.loads((PACKAGE / "pyproject.toml").read_text())["project"]
    info = tmp_path / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n")
    eps = project["entry-points"]["slamfw"]
    (info / "entry_points.txt").write_text("[slamfw]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(PACKAGE))
    registry.reset()
    yield project["name"]
    registry.reset()


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
    assert "14 passed, 0 failed" in capsys.readouterr().out


def test_experiment_with_set_emulator_name(installed_linear, data, capsys):
    d, _ = data
    cfg = write_config(d, name="linear.toml", out="out-linear")
    # the config's slam-specific keys go with the slam section: replace the section by name only
    text = cfg.read_text()
    start = text.index("[emulator]")
    end = text.index("[inferer]")
    cfg.write_text(text[:start] + '[emulator]\nname = "slam"\n\n' + text[end:])
    assert main(["run", str(cfg), "--set", "emulator.name=linear", "--set", "emulator.ridge=0.01"]) == 0
    out = d / "out-linear"
    assert (out / "catalog.fits").is_file()
    report = (out / "report.md").read_text()
    assert "emulator: `linear`" in report
    from slamfw.model import SlamfwModel
    model = SlamfwModel.load(out / "model.npz")
    assert model.emulator_name == "linear" and model.emulator.ridge == 0.01
    assert json.loads(json.dumps(model.metadata()))["emulator"]["name"] == "linear"
