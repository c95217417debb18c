"""slamfw against the original codes, on the same data, the same cores, in one run (prints; asserts nothing).

    python benchmarks/harness.py --quick             # small subsets: checks that the harness runs (minutes)
    python benchmarks/harness.py --case a            # the demo survey, 1000 training stars x 500 pixels
    python benchmarks/harness.py --case a --no-reference    # slamfw's side only
    python benchmarks/harness.py --case a --write-results   # and record the figures in benchmarks/RESULTS.md

Case (a) is the demo's mock survey (4000-9500 K, S/N 200 training set, spline-normalised, on a
3.6 A grid: 1000 stars x 501 pixels, 3 labels); its test set is the demo's (S/N 20, 50, 100).
Both sides get the same prepared (normalised, resampled) spectra, in the same order, and the same
settings: SVR grid C in {1, 10, 100}, gamma in {0.01, 0.1, 1}, epsilon 0.05, 5 unshuffled folds
(slamfw's ``shuffle_folds = false``, as astroslam's GridSearchCV), 2 processes.

For each side it prints training wall time, median CV MSE, the fraction of pixels where both
chose the same (C, gamma) or a near-tie (the CV MSE at slamfw's choice within 1 % of the CV MSE,
on slamfw's grid, at astroslam's choice), inference time per spectrum, label bias and scatter
against the truth, model size and peak memory, and the ratios reference / slamfw. slamfw's
inference is the whole ``slamfw predict`` process (generate, normalise, resample, fit, write) on
``--n-predict`` spectra; the reference codes infer ``--n-reference`` prepared spectra. It also
measures the batched least squares' floating-point rate against this machine's matrix-product
(GEMM) rate, and times The Cannons next to slamfw's ``cannon``.

The reference codes (astroslam, Casey's and Ho's Cannons, unmodified, from PyPI) run in their
own virtual environment, which ``benchmarks/reference/env.py`` builds on first use.
Set SLAMFW_SHARED_DATA to read the shared data from elsewhere than ../shared/data.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEMO = REPO / "examples" / "demo" / "experiment.toml"
sys.path.insert(0, str(HERE))


from bench_predict import run_measured  # noqa: E402


def logged_seconds(log: str, words: str) -> float | None:
    """The seconds in the last log line ``<words> <seconds> s`` (slamfw's "training took 51.5 s")."""
    import re
    found = re.findall(rf"{re.escape(words)} ([0-9.]+) s", log)
    return float(found[-1]) if found else None

GRID = {"C": [1.0, 10.0, 100.0], "gamma": [0.01, 0.1, 1.0], "epsilon": 0.05, "n_folds": 5}
QUICK_GRID = {"C": [1.0, 100.0], "gamma": [0.1, 1.0], "epsilon": 0.05, "n_folds": 3}


@dataclass
class Case:
    """One comparison: the demo config with ``--set`` overrides, and how much to run."""

    name: str
    sets: list[str]
    grid: dict[str, Any]
    n_predict: int
    n_reference: int
    reference_pixels: int = 1          # astroslam trains every k-th pixel
    notes: list[str] = field(default_factory=list)


def case_a(quick: bool, n_predict: int | None) -> Case:
    grid = QUICK_GRID if quick else GRID
    stars, step = (200, 18.0) if quick else (1000, 3.6)
    sets = [f"data.train.mock.n_stars={stars}", f"preprocess.wave_step={step}", "calibration.enabled=false",
            "analyzers=[]", "emulator.name=slam", f"emulator.slam.C={grid['C']}",
            f"emulator.slam.gamma={grid['gamma']}", f"emulator.slam.epsilon={grid['epsilon']}",
            f"emulator.slam.n_folds={grid['n_folds']}", "emulator.slam.shuffle_folds=false"]
    return Case("a" + (" (quick)" if quick else ""), sets, grid, n_predict or (2000 if quick else 20000),
                n_reference=5 if quick else 20)


# ---------------------------------------------------------------- measurements
def gemm_rate(n: int = 2048, repeats: int = 3) -> float:
    """This machine's float64 matrix-product rate (GFLOP/s), numpy's BLAS on all its threads."""
    a = np.random.default_rng(0).normal(size=(n, n))
    b = a.T.copy()
    a @ b
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n ** 3 / best / 1e9


def slamfw_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "slamfw.cli", *args]


def sets_args(sets: list[str]) -> list[str]:
    return [a for s in sets for a in ("--set", s)]


def label_stats(pred: np.ndarray, true: np.ndarray, names: list[str]) -> dict[str, dict[str, float]]:
    d = pred - true
    ok = np.all(np.isfinite(d), axis=1)
    return {n: {"bias": float(np.median(d[ok, j])), "scatter": float(np.std(d[ok, j])),
                "robust": float(1.4826 * np.median(np.abs(d[ok, j] - np.median(d[ok, j]))))}
            for j, n in enumerate(names)}


def batched_flop_rate(model, test, n: int) -> dict[str, float]:
    """Time the batched least squares on n prepared spectra, in this process, on one batch per
    worker's share; FLOPs as the emulator counts them (its ``flops_per_evaluation``)."""
    from slamfw import likelihood_weights
    from slamfw.stats.batched_lm import batched_lm
    from slamfw.stats.likelihood import best_library_matches
    emu = model.emulator
    train = np.asarray(model.train_labels, float)
    mean, scale = train.mean(0), train.std(0, ddof=1)
    flux, ivar = test.flux[:n], test.weight_ivar[:n]
    w = likelihood_weights(ivar, emu.model_error_)
    z = (train - mean) / scale
    idx = best_library_matches(flux, w, emu.predict(train), 3, z, 1.0)
    t0 = time.perf_counter()
    res = batched_lm(emu, flux, w, z[idx], [None] * len(flux), mean, scale)
    wall = time.perf_counter() - t0
    return {"spectra": float(len(flux)), "wall_s": wall, "ms_per_spectrum": 1e3 * wall / len(flux),
            "evaluations": float(res["n_evals"]), "gflop": res["flops"] / 1e9,
            "gflop_per_s": res["flops"] / wall / 1e9}


def per_star_time(model, test, n: int) -> float:
    """ms per spectrum of the one-by-one least squares (scipy), one process."""
    from slamfw import SerialExecutor, registry, using_executor
    lm = registry.create("inferer", "lm", {"batched": False})
    with using_executor(SerialExecutor()):
        t0 = time.perf_counter()
        lm.infer(model, test.flux[:n], test.weight_ivar[:n])
    return 1e3 * (time.perf_counter() - t0) / n


# ---------------------------------------------------------------- slamfw's side
def run_slamfw(case: Case, work: Path) -> dict[str, Any]:
    from astropy.table import Table

    from slamfw.config import load_config
    from slamfw.model import SlamfwModel
    from slamfw.workflows.infer import prepare_for_model
    from slamfw.workflows.run import read_test
    from slamfw.workflows.train import prepare_training

    out: dict[str, Any] = {}
    sets = [*case.sets, f"output.dir={work / 'slamfw'}"]
    print(f"slamfw: training ({' '.join(case.sets)}) ...", flush=True)
    r = run_measured(slamfw_cmd("train", str(DEMO), *sets_args(sets), "--executor", "local", "--workers", "2"),
                     keep_log=True)
    model_path = work / "slamfw" / "model.npz"
    model = SlamfwModel.load(model_path)
    emu = model.emulator
    # the emulator's training (as astroslam's train_pixels is timed), and the whole process
    out["train_s"] = logged_seconds(r["log"], "training took") or r["wall_s"]
    out["train_process_s"], out["train_peak_mb"] = r["wall_s"], r["peak_tree_mb"]
    out["model_mb"] = model_path.stat().st_size / 2 ** 20
    out["median_cv_mse"] = float(np.median(emu.cv_mse_))
    out["n_pixels"], out["n_train"] = int(emu.n_pixels_), int(len(model.train_labels))

    # the same prepared spectra for the reference codes
    cfg = load_config(DEMO, sets)
    prepared = prepare_training(cfg)
    train = prepared.train
    assert np.array_equal(train.labels, model.train_labels), "the training set differs from the model's"
    test = prepare_for_model(read_test(cfg, None), model)
    data = work / "data.npz"
    np.savez(data, train_labels=train.labels, train_flux=train.flux, train_ivar=train.weight_ivar,
             test_flux=test.flux, test_ivar=test.weight_ivar, test_labels=test.labels,
             label_names=np.array(model.label_names), wave=np.asarray(train.wave, float))
    out["data"], out["label_names"] = str(data), list(model.label_names)

    # the whole predict process, as a user runs it
    cat = work / "predict.fits"
    n = case.n_predict
    print(f"slamfw: predict {n} spectra (whole process) ...", flush=True)
    r = run_measured(slamfw_cmd("predict", str(model_path), "--reader-param", f"n_stars={n}", "--reader-param",
                                "seed=7", "--reader-param", "snr=[20,50,100]", "--reader-param", "rv_sigma=20",
                                "-o", str(cat), "--executor", "local", "--workers", "2"))
    out["predict_ms_per_spectrum"] = 1e3 * r["wall_s"] / n
    out["predict_peak_mb"] = r["peak_tree_mb"]
    t = Table.read(cat)
    names = list(model.label_names)
    out["labels"] = label_stats(np.column_stack([t[x] for x in names]), np.column_stack([t[f"{x}_true"] for x in names]),
                                names)
    out["fit"] = batched_flop_rate(model, test, min(len(test.flux), 2000))
    out["per_star_ms"] = per_star_time(model, test, min(len(test.flux), 100))
    out["choices"] = {"C": emu.C_.tolist(), "gamma": emu.gamma_.tolist()}
    out["_emulator"] = emu
    return out


def compare_choices(emu, pixels: np.ndarray, ref_C: np.ndarray, ref_gamma: np.ndarray) -> dict[str, float]:
    """Same (C, gamma) as the reference on each pixel of ``pixels``, or a near-tie: slamfw's CV MSE
    at its choice within 1 % of its CV MSE at the reference's choice."""
    grid = emu.cv_mse_grid_[pixels]                            # (p, G, H)
    gi = np.array([emu.gamma.index(g) if g in emu.gamma else -1 for g in ref_gamma])
    ci = np.array([emu.C.index(c) if c in emu.C else -1 for c in ref_C])
    known = (gi >= 0) & (ci >= 0)
    same = known & (emu.C_[pixels] == ref_C) & (emu.gamma_[pixels] == ref_gamma)
    at_ref = np.where(known, grid[np.arange(len(pixels)), np.maximum(gi, 0), np.maximum(ci, 0)], np.nan)
    near = known & (emu.cv_mse_[pixels] <= 1.01 * at_ref)
    return {"pixels": float(len(pixels)), "same": float(same.mean()), "same_or_near_tie": float((same | near).mean())}


# ---------------------------------------------------------------- the report
def fmt_ratio(a: float | None, b: float | None) -> str:
    return "-" if not a or not b else f"{a / b:.1f}x"


def report(case: Case, mine: dict, ref: dict | None, cannons: dict | None, gemm: float) -> str:
    lines = [f"### Case {case.name}: {mine['n_train']} training stars x {mine['n_pixels']} pixels",
             "", f"Grid C {case.grid['C']} x gamma {case.grid['gamma']}, epsilon {case.grid['epsilon']}, "
             f"{case.grid['n_folds']} unshuffled folds, 2 processes.", ""]
    a = reference_figures(ref)
    rows = [("training wall time (s)", mine["train_s"], a.get("train_s")),
            ("median CV MSE (standardised)", mine["median_cv_mse"], a.get("median_cv_mse")),
            ("inference per spectrum (ms)", mine["predict_ms_per_spectrum"], a.get("infer_ms")),
            ("model size (MB)", mine["model_mb"], a.get("model_mb")),
            ("peak memory, training (MB)", mine["train_peak_mb"], a.get("peak_mb"))]
    lines += ["| | slamfw | astroslam | astroslam / slamfw |", "|---|---|---|---|"]
    for name, x, y in rows:
        lines.append(f"| {name} | {x:.4g} | {'-' if y is None else f'{y:.4g}'} | {fmt_ratio(y, x)} |")
    if a.get("train_pixels"):
        per_a, per_m = a["train_s"] / a["train_pixels"], mine["train_s"] / mine["n_pixels"]
        lines.append(f"| training per pixel (s) | {per_m:.4g} | {per_a:.4g} | {fmt_ratio(per_a, per_m)} |")
    if a.get("infer_ms"):
        lines.append(f"| inference per spectrum, astroslam halved for 2 cores (ms) | "
                     f"{mine['predict_ms_per_spectrum']:.4g} | {a['infer_ms'] / 2:.4g} | "
                     f"{fmt_ratio(a['infer_ms'] / 2, mine['predict_ms_per_spectrum'])} |")
    lines += ["", f"Training: the emulator's fit on the prepared spectra, on both sides (the whole `slamfw train` "
              f"process, reading and normalising included, took {mine['train_process_s']:.4g} s)."]
    lines += ["", f"slamfw's inference is the whole `slamfw predict` process on {case.n_predict} spectra (generate, "
              f"normalise, resample, fit, write) on 2 processes; astroslam's is its own least squares on "
              f"{a.get('n_infer', case.n_reference)} prepared spectra on one process, on the "
              f"{a.get('train_pixels', '?')} pixels it was trained on."]
    if ref and "choices" in ref:
        c = ref["choices"]
        lines.append(f"Same (C, gamma) as astroslam on {100 * c['same']:.1f} % of its {int(c['pixels'])} pixels, the "
                     f"same or a near-tie on {100 * c['same_or_near_tie']:.1f} %.")
    fit = mine["fit"]
    lines += ["", f"Batched least squares alone ({int(fit['spectra'])} prepared spectra, 3 starts each, one process): "
              f"{fit['ms_per_spectrum']:.2f} ms per spectrum, {fit['gflop_per_s']:.1f} GFLOP/s against this "
              f"machine's GEMM rate of {gemm:.1f} GFLOP/s ({100 * fit['gflop_per_s'] / gemm:.0f} %); the one-by-one "
              f"solver: {mine['per_star_ms']:.2f} ms per spectrum."]
    lines += ["", "| label | slamfw bias | slamfw scatter | astroslam bias | astroslam scatter |", "|---|---|---|---|---|"]
    ref_labels = a.get("labels") or {}
    for n, s in mine["labels"].items():
        rb, rs = (ref_labels.get("bias") or {}).get(n), (ref_labels.get("scatter") or {}).get(n)
        lines.append(f"| {n} | {s['bias']:.4g} | {s['scatter']:.4g} | {'-' if rb is None else f'{rb:.4g}'} | "
                     f"{'-' if rs is None else f'{rs:.4g}'} |")
    if cannons:
        c = mine.get("cannon", {})
        lines += ["", "| The Cannon (quadratic) | training (s) | inference per spectrum (ms) |", "|---|---|---|",
                  f"| slamfw `cannon` (batched `lm`, one process) | {c.get('train_s', float('nan')):.3g} | "
                  f"{c.get('infer_ms', float('nan')):.3g} |"]
        for key, name in (("casey", "Casey's (annieslasso 0.2.96)"), ("ho", "Ho's (thecannon 0.7.3)")):
            v = cannons.get(key)
            if isinstance(v, dict):
                lines.append(f"| {name} | {v['train_s']:.3g} | {1e3 * v['infer_per_spectrum_s']:.3g} |")
    for note in case.notes:
        lines.append(f"- {note}")
    return "\n".join(lines)


def reference_figures(ref: dict | None) -> dict[str, Any]:
    """The figures of astroslam's summary (``benchmarks/reference/run_astroslam.py``) the report uses."""
    if not ref:
        return {}
    size = ref.get("model_size") or {}
    mem = ref.get("memory") or {}
    return {"train_s": ref["train"]["wall_s"], "train_pixels": ref["data"]["n_pixels_trained"],
            "median_cv_mse": ref["cv"].get("median_cv_mse_at_chosen"),
            "infer_ms": 1e3 * ref["infer"]["per_spectrum_s"], "n_infer": ref["infer"]["n_spectra"],
            "model_mb": (size.get("save_dump_bytes") or 0) / 2 ** 20 or None,
            "peak_mb": max(mem.get("maxrss_self_mib", 0), mem.get("maxrss_children_max_mib", 0)) or None,
            "labels": ref.get("labels"), "shims": ref.get("shims")}


def slamfw_cannon(data: Path) -> dict[str, float]:
    """slamfw's quadratic Cannon on the same prepared spectra: training, and batched inference on one process."""
    from slamfw import SerialExecutor, TrainedEmulator, registry, using_executor
    with np.load(data) as z:
        arrays = {k: z[k] for k in z.files}
    names = [str(x) for x in arrays["label_names"]]
    emu = registry.create("emulator", "cannon", {"order": 2})
    with using_executor(SerialExecutor()):
        t0 = time.perf_counter()
        emu.fit(arrays["train_labels"], arrays["train_flux"], arrays["train_ivar"])
        train_s = time.perf_counter() - t0
        model = TrainedEmulator(emu, arrays["train_labels"], names)
        n = min(len(arrays["test_flux"]), 2000)
        t0 = time.perf_counter()
        registry.create("inferer", "lm", {}).infer(model, arrays["test_flux"][:n], arrays["test_ivar"][:n])
        infer_ms = 1e3 * (time.perf_counter() - t0) / n
    return {"train_s": train_s, "infer_ms": infer_ms}


def machine() -> str:
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--case", choices=["a"], default="a")
    p.add_argument("--quick", action="store_true", help="small subsets: check that the harness runs")
    p.add_argument("--n-predict", type=int, default=None)
    p.add_argument("--no-reference", action="store_true", help="slamfw's side only")
    p.add_argument("--work", default=None, help="keep the intermediate files here")
    p.add_argument("--write-results", action="store_true", help="record the figures in benchmarks/RESULTS.md")
    args = p.parse_args()
    case = case_a(args.quick, args.n_predict)
    gemm = gemm_rate()
    print(f"machine: {machine()}; GEMM (float64, numpy) {gemm:.1f} GFLOP/s", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work or tmp)
        work.mkdir(parents=True, exist_ok=True)
        mine = run_slamfw(case, work)
        ref = cannons = None
        if not args.no_reference:
            ref, cannons = run_references(case, mine, work)
        text = report(case, mine, ref, cannons, gemm)
    print("\n" + text)
    if args.write_results:
        write_results(case, text)


def run_references(case: Case, mine: dict, work: Path) -> tuple[dict | None, dict | None]:
    """astroslam and the Cannons on the same prepared spectra (their own environment)."""
    from reference import run_reference
    settings = {**case.grid, "n_jobs": 2, "n_infer": case.n_reference}
    pixels = np.arange(0, mine["n_pixels"], case.reference_pixels)
    with np.load(mine["data"]) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["pixels"] = pixels
    np.savez(mine["data"], **arrays)
    print("astroslam: training and inference ...", flush=True)
    ref = run_reference("astroslam", Path(mine["data"]), settings, work / "astroslam")
    with np.load(ref["outputs"]["npz"]) as z:
        ref["choices"] = compare_choices(mine["_emulator"], z["pixels"], z["C"], z["gamma"])
    for shim in ref.get("shims") or []:
        print(f"astroslam shim: {shim}")
    print("The Cannons: training and inference ...", flush=True)
    cannons = run_reference("cannons", Path(mine["data"]), {"n_infer": min(200, case.n_predict)}, work / "cannons")
    mine["cannon"] = slamfw_cannon(Path(mine["data"]))
    return ref, cannons


def write_results(case: Case, text: str) -> None:
    path = HERE / "RESULTS.md"
    head = ("# Benchmark results\n\nWritten by `python benchmarks/harness.py --write-results` (latest run per case).\n")
    old = path.read_text() if path.exists() else head
    marker = f"<!-- case {case.name} -->"
    body = f"{marker}\nMeasured {time.strftime('%Y-%m-%d')} on {machine()}.\n\n{text}\n{marker} end\n"
    if marker in old:
        start = old.index(marker)
        end = old.index(f"{marker} end\n") + len(f"{marker} end\n")
        old = old[:start] + body + old[end:]
    else:
        old = old.rstrip("\n") + "\n\n" + body
    path.write_text(old)
    print(f"written to {path}")


if __name__ == "__main__":
    main()
