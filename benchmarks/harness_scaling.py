"""The harness's scaling series (``harness.py --scaling``): how inference grows with N spectra, how
training grows with M stars, and a projection for LAMOST DR5.

- Inference: the whole ``slamfw predict MODEL --reader table --reader-param path=FILE --executor
  local --workers 2`` process on N mock spectra (case (a)'s test survey: native ~1900-pixel grid,
  un-normalised, S/N 20/50/100, RV spread 20 km/s, seed 7), written before the clock starts, one
  file per N (the ``table`` reader streams it: memory does not grow with N). One mock survey of
  the largest N is written and each N is its first N rows; at most ``draw`` spectra are drawn
  (10 ms each), the rows beyond repeating them under their own ids (``harness_table``).
- Training: slamfw's emulator training time (the log's "training took X s") for M training stars
  on case (a)'s grid and settings, and a least-squares power law t = a M^b.
- Projection: LAMOST DR5's 8 million spectra on 100 cores under Dask, from the inference series.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from harness_table import write_mock_tables

DR5_SPECTRA = 8_000_000
DR5_CORES = 100


def inference_series(model_path: Path, sizes: list[int], folder: Path, reuse_folders: list[Path],
                     run_measured, slamfw_cmd, workers: int = 2, log=print, draw: int | None = None,
                     extra_args: list[str] | None = None) -> list[dict[str, Any]]:
    """Time ``slamfw predict`` (with ``extra_args``) from a table file for each N of ``sizes``."""
    top = max(sizes)
    tables = folder / "tables"
    tag = f"scaling-{top}" + (f"-draw{draw}" if draw and draw < top else "")
    files = {n: next((d / "tables" / f"{tag}-rows0-{n}.npz" for d in reuse_folders
                      if (d / "tables" / f"{tag}-rows0-{n}.npz").is_file()), tables / f"{tag}-rows0-{n}.npz")
             for n in sizes}
    log(f"scaling: writing the mock survey of {top} spectra ({min(top, draw or top)} drawn) into "
        f"{len(files)} table file(s) ...")
    gen = write_mock_tables([(p, 0, n) for n, p in files.items()], top, log=log, draw=draw)
    if gen["reused"]:
        log(f"scaling: reused {len(gen['reused'])} table file(s) from an earlier run")
    rows = []
    for n in sizes:
        cat = folder / f"scaling-predict-{n}.fits"
        log(f"scaling: predict {n} spectra ...")
        r = run_measured(slamfw_cmd("predict", str(model_path), "--reader", "table", "--reader-param",
                                    f"path={files[n]}", "-o", str(cat), "--force", "--executor", "local",
                                    "--workers", str(workers), *(extra_args or [])))
        cat.unlink(missing_ok=True)
        row = {"n": n, "files": 1, "wall_s": float(r["wall_s"]), "ms_per_spectrum": 1e3 * r["wall_s"] / n,
               "peak_mb": float(r["peak_tree_mb"]), "workers": workers,
               "drawn": min(n, draw or n), "args": " ".join(extra_args or [])}
        log(f"scaling: N = {n}: {row['wall_s']:.1f} s, {row['ms_per_spectrum']:.3f} ms per spectrum, "
            f"peak {row['peak_mb']:.0f} MB (all processes)")
        rows.append(row)
    return rows


def training_series(base_sets: list[str], sizes: list[int], folder: Path, run_measured, slamfw_cmd, demo: Path,
                    logged_seconds, log=print) -> list[dict[str, Any]]:
    """slamfw's emulator training time for each M of ``sizes`` (case (a)'s settings otherwise)."""
    rows = []
    for m in sizes:
        sets = [s for s in base_sets if not s.startswith("data.train.mock.n_stars=")]
        sets += [f"data.train.mock.n_stars={m}", f"output.dir={folder / f'train-{m}'}"]
        log(f"scaling: training on {m} stars ...")
        r = run_measured(slamfw_cmd("train", str(demo), *[a for s in sets for a in ("--set", s)], "--force",
                                    "--executor", "local", "--workers", "2"), keep_log=True)
        t = logged_seconds(r["log"], "training took")
        rows.append({"m": m, "train_s": t if t is not None else r["wall_s"], "from_log": t is not None,
                     "process_s": r["wall_s"], "peak_mb": r["peak_tree_mb"]})
        log(f"scaling: M = {m}: training {rows[-1]['train_s']:.1f} s (whole process {r['wall_s']:.1f} s)")
    return rows


def power_law(xs, ys) -> tuple[float, float] | None:
    """(a, b) of the least-squares fit log y = log a + b log x; None with fewer than 2 points."""
    xs, ys = np.asarray(xs, float), np.asarray(ys, float)
    ok = (xs > 0) & (ys > 0)
    if ok.sum() < 2:
        return None
    b, log_a = np.polyfit(np.log(xs[ok]), np.log(ys[ok]), 1)
    return float(np.exp(log_a)), float(b)


def projection(infer: list[dict[str, Any]], workers: int = 2) -> dict[str, Any] | None:
    """LAMOST DR5 (8 million spectra) on 100 cores, from the inference series: the per-spectrum
    cost on ``workers`` cores (largest N, and the slope of wall = t0 + c N), times the cores."""
    if not infer:
        return None
    big = max(infer, key=lambda r: r["n"])
    core_s = big["wall_s"] * workers / big["n"]             # core-seconds per spectrum, overhead included
    out = {"from_n": big["n"], "core_ms_per_spectrum": 1e3 * core_s,
           "hours_largest_n": DR5_SPECTRA * core_s / DR5_CORES / 3600}
    if len(infer) >= 2:
        n = np.array([r["n"] for r in infer], float)
        w = np.array([r["wall_s"] for r in infer], float)
        slope, t0 = np.polyfit(n, w, 1)
        out.update(overhead_s=float(t0), slope_core_ms=float(1e3 * slope * workers),
                   hours_slope=float((max(t0, 0.0) + DR5_SPECTRA * slope * workers / DR5_CORES) / 3600))
    return out


def report(infer: list[dict], train: list[dict], proj: dict | None, quick: bool, model: str = "case (a)'s model",
           grid: str = "case (a)'s grid and settings") -> str:
    lines = ["### Scaling" + (" (quick)" if quick else ""), ""]
    if infer:
        args = infer[0].get("args") or ""
        lines += ["Inference: the whole `slamfw predict` process, reading a table file of N observed mock spectra "
                  "(case (a)'s test survey, native 1900-pixel grid) and streaming it through the local executor "
                  f"with {infer[0]['workers']} workers" + (f", with `{args}`" if args else "") +
                  f"; {model}; peak memory is the process tree's.", "",
                  "| N spectra | spectra drawn | wall (s) | ms per spectrum | peak memory (MB) |",
                  "|---|---|---|---|---|"]
        for r in infer:
            lines.append(f"| {r['n']} | {r['drawn']} | {r['wall_s']:.1f} | {r['ms_per_spectrum']:.3f} | "
                         f"{r['peak_mb']:.0f} |")
        if any(r["drawn"] < r["n"] for r in infer):
            lines += ["", "Where fewer spectra were drawn than N (drawing costs 10 ms each), the rows beyond repeat "
                      "the drawn ones in order under their own ids: every row is fitted, nothing is reused."]
        fit = power_law([r["n"] for r in infer], [r["wall_s"] for r in infer])
        if fit:
            lines += ["", f"Wall time ~ N^{fit[1]:.2f} over N = {infer[0]['n']} to {infer[-1]['n']}."]
    if train:
        lines += ["", f"Training: slamfw's emulator training (the log's \"training took\"), {grid}, M training "
                  "stars, 2 processes.", "",
                  "| M stars | training (s) | whole `slamfw train` process (s) | peak memory (MB) |",
                  "|---|---|---|---|"]
        for r in train:
            lines.append(f"| {r['m']} | {r['train_s']:.1f} | {r['process_s']:.1f} | {r['peak_mb']:.0f} |")
        fit = power_law([r["m"] for r in train], [r["train_s"] for r in train])
        if fit:
            a, b = fit
            largest = max(r["m"] for r in train)
            beyond = [f"{duration(a * m ** b)} at {name}" for m, name in ((4000, "4000 stars"),
                                                                          (17000, "the paper's 17,000"))
                      if m > largest]
            lines += ["", f"Power law: training time = {a:.3g} s x M^{b:.2f} (least squares in log-log over "
                      f"M = {train[0]['m']} to {train[-1]['m']})" +
                      (f"; extrapolated, not measured: {', '.join(beyond)} (same grid and folds)." if beyond
                       else ".")]
    if proj:
        lines += ["", f"Projection for LAMOST DR5 ({DR5_SPECTRA / 1e6:.0f} million spectra) on {DR5_CORES} cores "
                  f"under Dask: {proj['core_ms_per_spectrum']:.2f} core-ms per spectrum at N = {proj['from_n']} "
                  f"(the wall time x 2 cores / N, start-up included) gives {proj['hours_largest_n']:.2f} h"]
        if "hours_slope" in proj:
            lines[-1] += (f"; the slope of wall = t0 + c N ({proj['slope_core_ms']:.2f} core-ms per spectrum, "
                          f"t0 = {proj['overhead_s']:.1f} s per run) gives {proj['hours_slope']:.2f} h")
        lines[-1] += "."
        lines += ["Assumptions: time falls linearly with cores (no Dask scheduling or serialisation cost "
                  "beyond what the local executor pays here); no I/O limit (each worker reads its own files "
                  "as fast as here); each worker pays the per-run overhead t0 once (start, imports, model load); "
                  "the same model as here and spectra like these (LAMOST's ~3900 native "
                  "pixels cost more to read and normalise). Not measured on a cluster."]
    return "\n".join(lines)


def duration(seconds: float) -> str:
    return (f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min" if seconds < 7200
            else f"{seconds / 3600:.1f} h")

