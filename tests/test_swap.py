"""Every shipped config swaps components by ``--set``: each emulator (slam, cannon, krr, and the
example third-party ``linear`` once installed), ``normalizer.name=none`` and ``inferer.name=lm``.

The runs are the shipped configs themselves, made smaller by more ``--set`` (fewer stars, one
grid point), as a user would try them; ``config.yaml`` must show the selected table only.
"""
import pytest
import yaml
from astropy.table import Table

from slamfw.cli import main
from slamfw.config import load_config, resolve_config
from slamfw.model import SlamfwModel

from .conftest import REPO

DEMO = REPO / "examples" / "demo" / "experiment.toml"
MILES = REPO / "examples" / "miles" / "experiment.toml"

#: The error model still runs (it is part of training), on two S/N values and prepared spectra.
CHEAP_CALIBRATION = ["calibration.folds=2", "calibration.snr=[10.0,100.0]", "calibration.degrade=prepared"]
SMALLER = {
    DEMO: ["data.train.mock.n_stars=60", "data.train.mock.n_pixels=700", "data.test.mock.n_stars=12",
           "data.test.mock.n_pixels=700", "emulator.slam.C=[10.0]", "emulator.slam.gamma=[0.1]",
           "emulator.slam.n_folds=3", "emulator.krr.gamma=[0.1]", "emulator.krr.alpha=[0.01]", *CHEAP_CALIBRATION],
    MILES: ["data.train.miles.where.Teff=[5200.0,5700.0]", "data.test.miles.where.Teff=[5200.0,5700.0]",
            "preprocess.wave_step=4.0", "emulator.slam.C=[10.0]", "emulator.slam.gamma=[0.1]",
            "emulator.slam.n_folds=3", "emulator.krr.gamma=[0.1]", "emulator.krr.alpha=[0.01]", *CHEAP_CALIBRATION],
}
SWAPS = ["emulator.name=slam", "emulator.name=cannon", "emulator.name=krr", "emulator.name=linear",
         "normalizer.name=none", "inferer.name=lm"]


def _sets(items):
    return [a for item in items for a in ("--set", item)]


@pytest.mark.parametrize("config", [DEMO, MILES], ids=["demo", "miles"])
@pytest.mark.parametrize("swap", SWAPS)
def test_every_shipped_config_runs_with_a_swap(config, swap, tmp_path, installed_linear, request):
    if config == MILES:
        request.getfixturevalue("miles_dir")   # the shared data must be there (fails in CI if not)
    out = tmp_path / "out"
    assert main(["run", str(config), *_sets(SMALLER[config]), "--set", swap, "--set", f"output.dir={out}"]) == 0
    key, name = swap.split("=")
    resolved = yaml.safe_load((out / "config.yaml").read_text().split("\n", 1)[1])
    section = resolved[key.split(".")[0]]
    assert section["name"] == name and set(section) == {"name", name}   # the selected table only
    model = SlamfwModel.load(out / "model.npz")
    if key == "emulator.name":
        assert model.emulator_name == name
    cat = Table.read(out / "catalog.fits")
    assert len(cat) > 0 and cat["converged"].mean() > 0.5


@pytest.mark.parametrize("config", sorted(REPO.glob("examples/*/experiment.toml")) + [REPO / "slamfw" / "resources" / "demo.toml"],
                         ids=lambda p: str(p.relative_to(REPO)))
def test_shipped_configs_validate_with_every_emulator(config, installed_linear):
    """Validation of every section, for every emulator installed, without running anything."""
    for name in ("slam", "cannon", "krr", "linear"):
        res = resolve_config(load_config(config, [f"emulator.name={name}"]))
        assert res["emulator"]["name"] == name
