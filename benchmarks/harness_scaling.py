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
- Projection: LAMOST DR5's 8 million spectra on 100 cores under Dask, from the inference series:
  from the local executor's, and from the ``dask`` executor's where it ran too (``--executor dask
  --workers 2``: a LocalCluster of 2 worker processes on this machine, the same code path as a
  cluster's scheduler, with its scheduling and serialisation).
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
                     extra_args: list[str] | None = None,
                     executors: tuple[str, ...] = ("local",)) -> list[dict[str, Any]]:
    """Time ``slamfw predict`` (with ``extra_args``) from a table file for each N of ``sizes``,
    under each of ``executors`` (``--executor NAME --workers workers``), one after the other on
    the same table files; each row says its ``executor``."""
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
    for executor in executors:
        for n in sizes:
            cat = folder / f"scaling-predict-{n}.fits"
            log(f"scaling: predict {n} spectra ({executor}) ...")
            r = run_measured(slamfw_cmd("predict", str(model_path), "--reader", "table", "--reader-param",
                                        f"path={files[n]}", "-o", str(cat), "--force", "--executor", executor,
                                        "--workers", str(workers), *(extra_args or [])))
            cat.unlink(missing_ok=True)
            row = {"n": n, "files": 1, "wall_s": float(r["wall_s"]), "ms_per_spectrum": 1e3 * r["wall_s"] / n,
                   "peak_mb": float(r["peak_tree_mb"]), "workers": workers, "executor": executor,
                   "drawn": min(n, draw or n), "args": " ".join(extra_args or [])}
            log(f"scaling: N = {n} ({executor}): {row['wall_s']:.1f} s, {row['ms_per_spectrum']:.3f} ms per "
                f"spectrum, peak {row['peak_mb']:.0f} MB (all processes)")
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


def projection(infer: list[dict[str, Any]], workers: int = 2, executor: str = "local") -> dict[str, Any] | None:
    """LAMOST DR5 (8 million spectra) on 100 cores, from the inference series' rows of ``executor``
    (rows without one are the local executor's): the per-spectrum cost on ``workers`` cores
    (largest N, and the slope of wall = t0 + c N), times the cores."""
    infer = [r for r in infer if r.get("executor", "local") == executor]
    if not infer:
        return None
    big = max(infer, key=lambda r: r["n"])
    core_s = big["wall_s"] * workers / big["n"]             # core-seconds per spectrum, overhead included
    out = {"executor": executor, "from_n": big["n"], "core_ms_per_spectrum": 1e3 * core_s,
           "hours_largest_n": DR5_SPECTRA * core_s / DR5_CORES / 3600}
    if len(infer) >= 2:
        n = np.array([r["n"] for r in infer], float)
        w = np.array([r["wall_s"] for r in infer], float)
        slope, t0 = np.polyfit(n, w, 1)
        out.update(overhead_s=float(t0), slope_core_ms=float(1e3 * slope * workers),
                   hours_slope=float((max(t0, 0.0) + DR5_SPECTRA * slope * workers / DR5_CORES) / 3600))
    return out


def report(infer: list[dict], train: list[dict], proj: dict | list[dict] | None, quick: bool,
           model: str = "case (a)'s model", grid: str = "case (a)'s grid and settings") -> str:
    """The scaling section's text; ``proj``: :func:`projection`'s result, or one per executor."""
    lines = ["### Scaling" + (" (quick)" if quick else ""), ""]
    if infer:
        args = infer[0].get("args") or ""
        names = list(dict.fromkeys(r.get("executor", "local") for r in infer))
        if len(names) == 1:
            where = f"the {names[0]} executor with {infer[0]['workers']} workers" + (
                " (a LocalCluster on this machine)" if names[0] == "dask" else "")
        else:
            where = (f"the {' and the '.join(names)} executors with {infer[0]['workers']} workers each (dask: a "
                     f"LocalCluster on this machine), one after the other on the same files")
        lines += ["Inference: the whole `slamfw predict` process, reading a table file of N observed mock spectra "
                  f"(case (a)'s test survey, native 1900-pixel grid) and streaming it through {where}"
                  + (f", with `{args}`" if args else "") + f"; {model}; peak memory is the process tree's.", ""]
        several = len(names) > 1
        lines += ["| " + ("executor | " if several else "") + "N spectra | spectra drawn | wall (s) | ms per spectrum "
                  "| peak memory (MB) |", "|---" * (6 if several else 5) + "|"]
        for r in infer:
            lines.append("| " + (f"{r.get('executor', 'local')} | " if several else "") +
                         f"{r['n']} | {r['drawn']} | {r['wall_s']:.1f} | {r['ms_per_spectrum']:.3f} | "
                         f"{r['peak_mb']:.0f} |")
        if any(r["drawn"] < r["n"] for r in infer):
            lines += ["", "Where fewer spectra were drawn than N (drawing costs 10 ms each), the rows beyond repeat "
                      "the drawn ones in order under their own ids: every row is fitted, nothing is reused."]
        for name in names:
            mine = [r for r in infer if r.get("executor", "local") == name]
            fit = power_law([r["n"] for r in mine], [r["wall_s"] for r in mine])
            if fit:
                lines += ["", f"Wall time ~ N^{fit[1]:.2f} over N = {mine[0]['n']} to {mine[-1]['n']}"
                          + (f" ({name})." if several else ".")]
        if several and "local" in names:
            for name in (x for x in names if x != "local"):
                for r in (x for x in infer if x.get("executor") == name):
                    loc = next((x for x in infer if x.get("executor", "local") == "local" and x["n"] == r["n"]), None)
                    if loc is not None:
                        lines += ["", f"N = {r['n']}: {name} {r['ms_per_spectrum']:.3f} ms per spectrum against "
                                  f"local {loc['ms_per_spectrum']:.3f} ms ({r['wall_s'] / loc['wall_s']:.2f}x the "
                                  f"local executor's wall time, in this run)."]
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
    projs = [p for p in ([proj] if isinstance(proj, dict) else (proj or [])) if p]
    for p in projs:
        name = p.get("executor", "local")
        lines += ["", f"Projection for LAMOST DR5 ({DR5_SPECTRA / 1e6:.0f} million spectra) on {DR5_CORES} cores "
                  f"under Dask, from the {name} executor's runs: {p['core_ms_per_spectrum']:.2f} core-ms per "
                  f"spectrum at N = {p['from_n']} (the wall time x 2 cores / N, start-up included) gives "
                  f"{p['hours_largest_n']:.2f} h"]
        if "hours_slope" in p:
            lines[-1] += (f"; the slope of wall = t0 + c N ({p['slope_core_ms']:.2f} core-ms per spectrum, "
                          f"t0 = {p['overhead_s']:.1f} s per run) gives {p['hours_slope']:.2f} h")
        lines[-1] += "."
    if projs:
        dask = any(p.get("executor") == "dask" for p in projs)
        lines += ["Assumptions: time falls linearly with cores ("
                  + ("Dask's scheduling and serialisation cost as much per spectrum as on the 2-worker LocalCluster "
                     "measured here, not more on a cluster's network" if dask else
                     "no Dask scheduling or serialisation cost beyond what the local executor pays here")
                  + "); no I/O limit (each worker reads its own files as fast as here: LAMOST files are read by "
                  "the workers where they see the survey, a LocalCluster or `dask` with `shared_files`, and "
                  "otherwise by the calling process, at most about 230-300 files a second, benchmarks/bench_files.py); "
                  "each worker pays the per-run overhead t0 once (start, imports, model load); the same model as "
                  "here and spectra like these "
                  "(LAMOST's ~3900 native pixels cost more to read and normalise). Not measured on a cluster."]
    return "\n".join(lines)


def duration(seconds: float) -> str:
    return (f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min" if seconds < 7200
            else f"{seconds / 3600:.1f} h")

