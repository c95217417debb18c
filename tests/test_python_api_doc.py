"""docs/python-api.md runs as written, and the Python API (``slamfw.api``) does what it says."""
import re
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table

from slamfw import SpectralSet, api, registry
from slamfw.config import ExperimentConfig, selected
from slamfw.workflows.run import RunResult

from .conftest import REPO

DOC = REPO / "docs" / "python-api.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)


def test_the_page_has_examples():
    blocks = python_blocks()
    assert len(blocks) >= 8
    assert any("api.run(" in b for b in blocks) and any("emulator.name=" in b for b in blocks)


def test_every_python_block_of_the_page_runs_in_order(tmp_path, monkeypatch):
    """The blocks, concatenated, are one script; run it in an empty directory."""
    monkeypatch.chdir(tmp_path)
    script = "\n".join(python_blocks())
    namespace: dict = {"__name__": "python_api_doc"}
    exec(compile(script, str(DOC), "exec"), namespace)
    assert namespace["res"].catalog_paths and (tmp_path / "runs" / "slam" / "catalog.fits").is_file()
    assert {"cannon", "krr"} <= {s.name for s in namespace["cmp"].summaries}
    assert (tmp_path / "runs" / "compare" / "compare.json").is_file()
    assert (tmp_path / "runs" / "survey.ecsv").is_file() and (tmp_path / "runs" / "toy-model.npz").is_file()
    assert namespace["found"].labels.shape == (20, 2)
    assert namespace["streamed"].n_spectra == 600 and (tmp_path / "runs" / "big.fits").is_file()


# ---------------------------------------------------------------- the API itself

def small_experiment(out: str = "out") -> dict:
    """A quick mock experiment: krr with a one-point grid, no normaliser (mock spectra normalised)."""
    mock = {"n_stars": 60, "n_pixels": 200, "continuum": False, "teff": [4500.0, 6500.0]}
    return {
        "seed": 5,
        "labels": ["Teff", "logg", "FeH"],
        "data": {"train": {"reader": "mock", "mock": {**mock, "seed": 1}},
                 "test": {"reader": "mock", "mock": {**mock, "n_stars": 10, "snr": [30, 100], "seed": 2}}},
        "emulator": {"name": "slam", "slam": {"C": [10.0], "gamma": [0.1], "n_folds": 3},
                     "krr": {"gamma": [0.1], "alpha": [0.01]}},
        "inferer": {"name": "lm"},
        "analyzers": [{"name": "cv-scatter"}],
        "output": {"dir": out},
    }


def test_config_from_a_dict(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    raw = small_experiment()
    raw["emulator"]["model"] = "models/m.npz"
    cfg = api.config(raw, ["emulator.name=krr", "emulator.krr.alpha=[0.1]"])
    assert isinstance(cfg, ExperimentConfig)
    emu = selected(cfg, "emulator")
    assert emu.name == "krr" and emu.params["alpha"] == [0.1] and emu.params["gamma"] == [0.1]
    assert emu.core["model"] == str(tmp_path / "models" / "m.npz")   # a dict's paths: the working directory's
    assert selected(cfg, "data.train").params["n_stars"] == 60
    assert api.config(cfg) is cfg                                     # a config passes through
    assert selected(api.config(cfg, ["emulator.name=slam"]), "emulator").params["C"] == [10.0]


def test_config_leaves_the_callers_dict_alone():
    raw = small_experiment()
    api.config(raw, ["emulator.name=krr", "output.dir=elsewhere"])
    assert raw["emulator"]["name"] == "slam" and raw["output"]["dir"] == "out"


def test_config_with_overrides_keeps_paths_relative_to_the_file(tmp_path, monkeypatch):
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "exp.toml").write_text('labels = ["Teff"]\n[data.train]\nreader = "table"\n'
                                     '[data.train.table]\npath = "train.npz"\n')
    monkeypatch.chdir(tmp_path)
    cfg = api.config(folder / "exp.toml")
    assert selected(cfg, "data.train").params["path"] == str(folder / "train.npz")
    assert selected(api.config(cfg, ["seed=1"]), "data.train").params["path"] == str(folder / "train.npz")


def test_run_with_overrides(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = api.run(small_experiment(), ["emulator.name=krr", "output.dir=runs/k"])
    assert isinstance(res, RunResult)
    assert res.model.emulator_name == "krr" and res.output_dir == Path("runs/k")
    assert [p.name for p in res.catalog_paths] == ["catalog.fits", "catalog.ecsv"]
    cat = Table.read(tmp_path / "runs" / "k" / "catalog.ecsv")
    assert len(cat) == res.result.n == 10
    np.testing.assert_allclose(cat["Teff"], res.result.labels[:, 0])
    assert (tmp_path / "runs" / "k" / "model.npz").is_file() and (tmp_path / "runs" / "k" / "config.yaml").is_file()
    assert "Teff_scatter" in res.reports[0].numbers


def write_table_file(ss: SpectralSet, path: Path) -> None:
    """The layout the table reader reads; no label columns, so the survey is unlabelled."""
    if path.suffix == ".npz":
        np.savez(path, wave=ss.wave, flux=ss.flux, ivar=ss.ivar, id=ss.ids, snr=ss.meta["snr"], rv=ss.meta["rv"])
    else:
        wave = np.broadcast_to(ss.wave, ss.flux.shape)   # a FITS table gives wave per row (identical rows)
        Table({"id": ss.ids, "wave": wave, "flux": ss.flux, "ivar": ss.ivar, "snr": ss.meta["snr"],
               "rv": ss.meta["rv"]}).write(path)


@pytest.mark.parametrize("suffix", [".npz", ".fits"])
def test_predict_in_memory_equals_predict_through_a_file(tmp_path, monkeypatch, suffix):
    monkeypatch.chdir(tmp_path)
    model = api.train(small_experiment(), ["emulator.name=krr"]).model
    survey = registry.create("reader", "mock", {"n_stars": 8, "n_pixels": 200, "continuum": False, "snr": 50,
                                                "rv_sigma": 15.0, "seed": 11}).read()
    path = tmp_path / f"survey{suffix}"
    write_table_file(survey, path)

    mem_data, mem = api.predict(model, survey)
    file_data, from_file = api.predict(model, path, reader="table")
    np.testing.assert_array_equal(mem_data.ids, file_data.ids)
    np.testing.assert_array_equal(mem_data.flux, file_data.flux)
    np.testing.assert_allclose(from_file.labels, mem.labels, rtol=1e-12)
    np.testing.assert_allclose(from_file.cov, mem.cov, rtol=1e-10, atol=1e-300)
    np.testing.assert_array_equal(from_file.converged, mem.converged)
    # the in-memory set kept its true labels; the file had none
    assert mem_data.labels is not None and file_data.labels is None
    assert "Teff_true" in api.catalog(mem_data, mem, model).colnames
    assert "Teff_true" not in api.catalog(file_data, from_file, model).colnames
    # and the saved model gives the same
    saved = api.load_model(model.save(tmp_path / "m.npz"))
    np.testing.assert_allclose(api.predict(saved, survey)[1].labels, mem.labels, rtol=1e-10)
