"""Shared fixtures: the shared data location, and small fitted models on mock spectra."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

from slamfw import TrainedEmulator, registry
from slamfw.config import PreprocessConfig
from slamfw.preprocess import prepare

REPO = Path(__file__).resolve().parents[1]


def interrupted_at_call(func, n: int, calls: list | None = None):
    """``func``, except that its ``n``-th call raises KeyboardInterrupt (a run stopped there, as by
    Ctrl-C); each call is first appended to ``calls`` when given."""
    calls = [] if calls is None else calls

    def wrapper(*a, **k):
        calls.append(1)
        if len(calls) == n:
            raise KeyboardInterrupt
        return func(*a, **k)
    return wrapper
LINEAR_PACKAGE = REPO / "examples" / "slamfw-linear-emulator"

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def shared_data_dir() -> Path | None:
    """``$SLAMFW_SHARED_DATA`` or ``../shared/data`` beside the repository."""
    env = os.environ.get("SLAMFW_SHARED_DATA")
    path = Path(env) if env else REPO.parent / "shared" / "data"
    return path if path.is_dir() else None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_dir()
    if path is None:
        msg = "shared data not found (set SLAMFW_SHARED_DATA or put ../shared/data beside the repo)"
        if os.environ.get("CI"):
            pytest.fail(msg)  # in CI the data are always present: never skip silently
        pytest.skip(msg)
    return path


def _shared_subdir(shared_data: Path, name: str) -> Path:
    """A folder of the shared data; the test fails (never skips) when it is missing."""
    path = shared_data / name
    if not path.is_dir():
        pytest.fail(f"{path} is missing")
    return path


@pytest.fixture(scope="session")
def miles_dir(shared_data: Path) -> Path:
    return _shared_subdir(shared_data, "miles_stellar_library")


@pytest.fixture(scope="session")
def lamost_dir(shared_data: Path) -> Path:
    return _shared_subdir(shared_data, "lamost_samples")


@pytest.fixture(scope="session")
def apogee_dir(shared_data: Path) -> Path:
    return _shared_subdir(shared_data, "apogee_samples")


def mock_set(n_stars: int, seed: int, snr=500.0, teff=(4500.0, 9000.0), n_pixels: int = 120,
             wave_range=(4780.0, 4960.0), rv_sigma: float = 0.0):
    """Already-normalised mock spectra around H-beta (fast to train on)."""
    reader = registry.create("reader", "mock", dict(
        n_stars=n_stars, seed=seed, snr=snr, teff=list(teff), n_pixels=n_pixels,
        wave_range=list(wave_range), continuum=False, rv_sigma=rv_sigma))
    return reader.read()


@pytest.fixture(scope="session")
def small_train():
    ss = mock_set(120, seed=11)
    return prepare(ss, PreprocessConfig(), registry.create("normalizer", "none"))


@pytest.fixture(scope="session")
def small_slam(small_train):
    emu = registry.create("emulator", "slam", dict(C=[1.0, 10.0], gamma=[0.1, 1.0], n_folds=3))
    return emu.fit(small_train.labels, small_train.flux, small_train.ivar)


@pytest.fixture(scope="session")
def small_model(small_slam, small_train):
    return TrainedEmulator(small_slam, small_train.labels, small_train.label_names)


@pytest.fixture()
def rng():
    return np.random.default_rng(1234)


def make_distribution(root: Path, name: str, version: str, entry_points: dict[str, str],
                      modules: dict[str, str]) -> Path:
    """A distribution as ``pip install`` leaves it: modules plus a ``.dist-info`` whose
    ``entry_points.txt`` lists ``entry_points`` in the ``slamfw`` group. Put ``root`` on sys.path."""
    root.mkdir(parents=True, exist_ok=True)
    for mod, source in modules.items():
        (root / f"{mod}.py").write_text(source)
    info = root / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text("[slamfw]\n" + "".join(f"{k} = {v}\n" for k, v in entry_points.items()))
    return root


@pytest.fixture()
def installed_linear(tmp_path_factory, monkeypatch):
    """The example third-party package examples/slamfw-linear-emulator, visible as after ``pip install``:
    a ``.dist-info`` with the ``entry_points.txt`` its own pyproject.toml declares, on sys.path."""
    project = tomllib.loads((LINEAR_PACKAGE / "pyproject.toml").read_text())["project"]
    eps = project["entry-points"]["slamfw"]
    root = make_distribution(tmp_path_factory.mktemp("site"), project["name"], project["version"], eps, {})
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.syspath_prepend(str(LINEAR_PACKAGE))
    registry.reset()
    yield project["name"]
    registry.reset()
