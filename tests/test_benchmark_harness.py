"""The benchmark harness's own arithmetic: the figures in benchmarks/RESULTS.md and the README rest
on it (which pixels count as the same choice or a near-tie, the training power law, the DR5
projection, how --write-results keeps the hand-kept tables). No timing is asserted here."""
from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import harness  # noqa: E402
import harness_scaling  # noqa: E402


def _emu(grid: np.ndarray, C=(1.0, 10.0, 100.0), gamma=(0.01, 0.1, 1.0)) -> SimpleNamespace:
    """An emulator-like object with slam's fitted grid attributes: the choice is the grid's argmin
    (NaN: pruned)."""
    p = grid.shape[0]
    flat = np.nanargmin(grid.reshape(p, -1), axis=1)
    gi, ci = np.unravel_index(flat, grid.shape[1:])
    return SimpleNamespace(cv_mse_grid_=grid, C=list(C), gamma=list(gamma), C_=np.array(C)[ci],
                           gamma_=np.array(gamma)[gi], cv_mse_=grid.reshape(p, -1)[np.arange(p), flat])


def test_compare_choices_same_near_tie_pruned_and_off_grid():
    grid = np.full((5, 3, 3), 2.0)
    grid[:, 1, 1] = 1.0                      # slamfw's choice on every pixel: gamma 0.1, C 10
    grid[1, 0, 2] = 1.009                    # pixel 1: the reference's choice is within 1 % (a near-tie)
    grid[2, 0, 2] = 1.011                    # pixel 2: 1.1 % worse: not a near-tie
    grid[3, 0, 2] = np.nan                   # pixel 3: pruned by slam: counts as no near-tie
    grid[4, 2, 1] = grid[4, 0, 1] = 1.0      # pixel 4: ties where an unknown gamma's index (-1, or 0) would land
    emu = _emu(grid)
    pixels = np.arange(5)
    ref_gamma = np.array([0.1, 0.01, 0.01, 0.01, 0.5])      # pixel 4: a gamma slamfw's grid lacks
    ref_C = np.array([10.0, 100.0, 100.0, 100.0, 10.0])
    got = harness.compare_choices(emu, pixels, ref_C, ref_gamma)
    assert got["pixels"] == 5
    assert got["same"] == pytest.approx(1 / 5)
    assert got["same_or_near_tie"] == pytest.approx(2 / 5)


def test_compare_choices_subset_of_pixels():
    """The reference's pixels index slamfw's: pixels 1 and 3 choose (gamma 1, C 1), 0 and 2 do not."""
    grid = np.full((4, 3, 3), 2.0)
    grid[[0, 2], 0, 0] = 1.0
    grid[[1, 3], 2, 0] = 1.0
    emu = _emu(grid)
    ref_C, ref_gamma = np.array([1.0, 1.0]), np.array([1.0, 1.0])
    got = harness.compare_choices(emu, np.array([1, 3]), ref_C, ref_gamma)
    assert got["same"] == 1.0 and got["same_or_near_tie"] == 1.0
    got = harness.compare_choices(emu, np.array([0, 1]), ref_C, ref_gamma)
    assert got["same"] == pytest.approx(0.5) and got["same_or_near_tie"] == pytest.approx(0.5)


def test_power_law_recovers_exponent_and_ignores_nonpositive():
    m = np.array([250, 500, 1000, 2000, 4000])
    a, b = harness_scaling.power_law(m, 3e-4 * m ** 1.9)
    assert b == pytest.approx(1.9) and a == pytest.approx(3e-4)
    assert harness_scaling.power_law([250, 500], [1.0, 0.0]) is None
    # a non-positive time is left out of the fit, not fitted as log(0)
    a, b = harness_scaling.power_law([250, 500, 1000, 2000], [2.0, 8.0, 0.0, 128.0])
    assert b == pytest.approx(2.0) and a == pytest.approx(2.0 / 250 ** 2)


def test_projection_per_spectrum_cost_and_slope():
    infer = [{"n": n, "wall_s": 5.0 + 1e-3 * n} for n in (1000, 10_000, 100_000)]
    proj = harness_scaling.projection(infer, workers=2)
    assert proj["from_n"] == 100_000
    assert proj["core_ms_per_spectrum"] == pytest.approx(1e3 * 105.0 * 2 / 100_000)
    assert proj["slope_core_ms"] == pytest.approx(2.0) and proj["overhead_s"] == pytest.approx(5.0)
    dr5 = harness_scaling.DR5_SPECTRA * 2e-3 / harness_scaling.DR5_CORES / 3600
    assert proj["hours_slope"] == pytest.approx(5.0 / 3600 + dr5)
    assert proj["hours_largest_n"] == pytest.approx(harness_scaling.DR5_SPECTRA * 105.0 * 2 / 100_000
                                                    / harness_scaling.DR5_CORES / 3600)
    # a negative intercept (noise) is not subtracted from the projection
    neg = harness_scaling.projection([{"n": n, "wall_s": -1.0 + 1e-3 * n} for n in (1000, 10_000)], workers=2)
    assert neg["overhead_s"] < 0 and neg["hours_slope"] == pytest.approx(dr5)
    assert harness_scaling.projection([]) is None


def test_projection_and_report_per_executor():
    """Rows of several executors: each projection from its own rows (rows without an executor are
    the local executor's), the report's table with an executor column, and the ratio at a shared N."""
    infer = [{"n": n, "wall_s": 5.0 + 1e-3 * n, "ms_per_spectrum": 1e3 * (5.0 + 1e-3 * n) / n, "drawn": n,
              "peak_mb": 900.0, "workers": 2, "executor": "local"} for n in (1000, 10_000)]
    infer += [{"n": 10_000, "wall_s": 18.0, "ms_per_spectrum": 1.8, "drawn": 10_000, "peak_mb": 1200.0,
               "workers": 2, "executor": "dask"}]
    local = harness_scaling.projection(infer, workers=2)
    dask = harness_scaling.projection(infer, workers=2, executor="dask")
    assert local["executor"] == "local" and local["from_n"] == 10_000 and "hours_slope" in local
    assert dask["core_ms_per_spectrum"] == pytest.approx(1e3 * 18.0 * 2 / 10_000) and "hours_slope" not in dask
    assert harness_scaling.projection(infer, executor="ray") is None
    assert harness_scaling.projection([{k: v for k, v in r.items() if k != "executor"} for r in infer[:2]]) \
        == local
    text = harness_scaling.report(infer, [], [local, dask], False)
    assert "| dask | 10000 | 10000 | 18.0 | 1.800 | 1200 |" in text
    assert "N = 10000: dask 1.800 ms per spectrum against local 1.500 ms (1.20x" in text
    assert "from the dask executor's runs: 3.60 core-ms" in text and "from the local executor's runs" in text
    assert "2-worker LocalCluster measured here" in text
    # whatever the order of the executors, each other one is compared with local's
    flipped = harness_scaling.report(infer[2:] + infer[:2], [], None, False)
    assert "N = 10000: dask 1.800 ms per spectrum against local 1.500 ms (1.20x" in flipped
    assert "against local" not in flipped.replace("dask 1.800 ms per spectrum against local", "")
    alone = harness_scaling.report(infer[2:], [], None, False)
    assert "the dask executor with 2 workers (a LocalCluster on this machine)" in alone


def test_scaling_report_training_only():
    train = [{"m": m, "train_s": 1e-3 * m ** 2, "process_s": 1e-3 * m ** 2 + 5, "peak_mb": 900.0}
             for m in (250, 500, 1000)]
    text = harness_scaling.report([], train, None, False)
    assert "| 1000 | 1000.0 | 1005.0 | 900 |" in text
    assert "M^2.00" in text and "Projection" not in text


def test_logged_seconds_takes_the_last():
    log = "x\nINFO training took 12.5 s\nINFO training took 51.25 s\n"
    assert harness.logged_seconds(log, "training took") == 51.25
    assert harness.logged_seconds("nothing", "training took") is None


def test_write_results_replaces_between_markers_and_keeps_hand_tables(tmp_path):
    path = tmp_path / "RESULTS.md"
    harness.write_results("case x", "first figures", path)
    path.write_text(path.read_text() + "\nhand-kept table after the markers\n")
    harness.write_results("case y", "other case", path)
    harness.write_results("case x", "second figures", path)
    text = path.read_text()
    assert "second figures" in text and "first figures" not in text
    assert "other case" in text and "hand-kept table after the markers" in text
    assert text.count("<!-- case x -->\n") == 1 and text.count("<!-- case x --> end") == 1


def test_scaling_report_extrapolates_only_beyond_the_measured():
    def rows(ms):
        return [{"m": m, "train_s": 1e-3 * m ** 2, "process_s": 1.0, "peak_mb": 1.0} for m in ms]
    short = harness_scaling.report([], rows((250, 500, 1000)), None, False)
    assert "at 4000 stars" in short and "17,000" in short
    full = harness_scaling.report([], rows((250, 1000, 4000)), None, False)
    assert "at 4000 stars" not in full and "at the paper's 17,000" in full
    assert "80.3 h at the paper's 17,000" in full         # 1e-3 x 17000^2 s = 289,000 s


def test_per_pixel_inference_rows_units_halving_and_ratio():
    """Case (c)'s figures at 2f6119b: astroslam 1022 ms on 361 pixels, slamfw 17.04 ms on 7214:
    2831 against 2.362 us per spectrum and pixel, 1199x; halved for 2 cores, 599x."""
    rows = harness.per_pixel_inference_rows((("n_starts = 1", 17.04),), 7214, 1022.0, 361)
    assert len(rows) == 2
    one, two = ([c.strip() for c in r.strip("|").split("|")] for r in rows)
    assert "one process" in one[0] and "halved" in two[0]
    assert float(one[1]) == pytest.approx(1e3 * 17.04 / 7214, rel=1e-3) == float(two[1])
    assert float(one[2]) == pytest.approx(2831, rel=1e-3)
    assert float(two[2]) == pytest.approx(2831 / 2, rel=1e-3)
    assert one[3] == "1198.5x" and two[3] == "599.3x"


def test_per_pixel_inference_rows_with_astroslam_measured_on_2_processes():
    rows = harness.per_pixel_inference_rows((("3 starts", 10.0),), 1000, 2000.0, 250, ref_ms_2=1500.0)
    assert len(rows) == 3 and "2 processes (measured)" in rows[2]
    cells = [c.strip() for c in rows[2].strip("|").split("|")]
    assert float(cells[1]) == pytest.approx(10.0) and float(cells[2]) == pytest.approx(6000.0)
    assert cells[3] == "600.0x"


def test_a_reference_run_without_the_2_process_timing_is_reused(tmp_path):
    """astroslam's summary from before ``infer_n_jobs_also`` existed is reused (its other settings
    equal); a differing setting that changes the measurement is still refused."""
    import json
    import os
    (tmp_path / "astroslam").mkdir()
    settings = {"C": [1.0], "n_jobs": 2, "n_infer": 20}
    (tmp_path / "data.npz").write_bytes(b"")
    (tmp_path / "astroslam" / "astroslam.json").write_text(json.dumps({"settings": settings}))
    os.utime(tmp_path / "data.npz", (1e9, 1e9))                # the summary is newer than the data
    reuse = harness.Reuse(tmp_path, data_same=True, data_sha256="x")
    got = harness.reusable_reference("astroslam", reuse, {**settings, "infer_n_jobs_also": 2}, None)
    assert got is not None and reuse.refused == []
    with pytest.raises(SystemExit, match="settings differ .*n_infer"):
        harness.reusable_reference("astroslam", reuse, {**settings, "n_infer": 10}, None)


@pytest.mark.parametrize("parallel, expect", [
    ("missing", None),                                   # a summary from before infer_n_jobs_also
    (None, None),                                        # infer_n_jobs_also 0
    ({"n_jobs": 3, "per_spectrum_s": 0.5}, None),        # not 2 processes: no 2-process figure
    ({"n_jobs": 2, "per_spectrum_s": 0.8825}, 882.5)])
def test_reference_figures_2_process_inference_only_when_measured_on_2(parallel, expect):
    ref = {"train": {"wall_s": 800.0}, "data": {"n_pixels_trained": 501}, "cv": {},
           "infer": {"per_spectrum_s": 1.0, "n_spectra": 20}}
    if parallel != "missing":
        ref["infer"]["parallel"] = parallel
    got = harness.reference_figures(ref)
    assert got["infer_ms"] == pytest.approx(1000.0)
    assert got["infer_ms_2"] == (None if expect is None else pytest.approx(expect))


def test_case_c_generator_matches_its_source_and_its_noise_model(shared_data, tmp_path, monkeypatch):
    """Case (c)'s spectra (``harness_cases.py --check``): the binspec network gives SOURCE.md's check
    value and equals a per-star loop; a tiny mock's pulls are N(0, 1), its S/N the target, its bad
    pixels those of the APOGEE error arrays; its config loads; case (b)'s overrides load."""
    monkeypatch.setenv("SLAMFW_SHARED_DATA", str(shared_data))
    import harness_cases
    harness_cases.check_network()
    paths = harness_cases.check_apogee(tmp_path)
    assert paths["train"].is_file() and paths["test"].is_file() and paths["config"].is_file()
    harness_cases.check_miles()


def test_catalogue_difference_matches_stars_by_id_and_single_text_reports_it():
    a = {"_ids": np.array(["x", "y", "z"]), "_labels": np.array([[5000.0, 2.0], [6000.0, 0.5], [7000.0, -1.0]])}
    b = {"_ids": np.array(["z", "x", "y"]), "_labels": np.array([[7000.0, -1.0], [5000.5, 2.0], [6000.0, 0.6]])}
    d = harness.catalogue_difference(a, b, ["Teff", "logg"])
    assert d == {"Teff": {"median": 0.0, "max": 0.5}, "logg": {"median": 0.0, "max": pytest.approx(0.1)}}
    short = harness.catalogue_difference(a, {"_ids": b["_ids"][:2], "_labels": b["_labels"][:2]}, ["Teff", "logg"])
    assert short["Teff"]["max"] == float("inf")
    text = harness.single_text({"peak_mb": 900.0, "label_diff": d})
    assert "jacobian_precision=single" in text and "Teff 0 and 0.5, logg 0 and 0.1" in text and "900 MB" in text
    assert harness.single_text(None) == ""
    text = harness.secant_text({"peak_mb": 700.0, "label_diff": d})
    assert "steps=secant" in text and "Teff 0 and 0.5, logg 0 and 0.1" in text and "700 MB" in text
    assert harness.secant_text(None) == ""
