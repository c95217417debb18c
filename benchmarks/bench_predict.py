"""Streaming ``slamfw predict`` on executors: peak memory and spectra per second (prints, asserts nothing).

    python benchmarks/bench_predict.py                          # 20,000 and 200,000 spectra (about 30 min)
    python benchmarks/bench_predict.py --sizes 2000 20000 --emulator slam --json out.json

Trains a model on the shipped demo config (made small with ``--set``), then runs the whole
``slamfw predict MODEL --reader mock --reader-param n_stars=N --executor E --workers W`` process
for each size and each executor (serial; local and dask with 1 and 2 workers), as a user runs it.
Peak memory is sampled every 0.1 s with psutil: the ``slamfw`` process itself, and the sum over it
and all its worker processes. Needs ``pip install 'slamfw[dask]'`` (for dask and psutil).

The default model is the quadratic Cannon on normalised mock spectra of 150 pixels, so that the
run measures the pipeline (generation, preparation, inference, writing) and how it scales and
streams, more than one emulator's cost; ``--emulator slam`` uses SLAM (1 grid point) instead.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "examples" / "demo" / "experiment.toml"
SMALL = ["data.train.mock.n_stars=80", "data.train.mock.n_pixels=150", "data.train.mock.continuum=false",
         "normalizer.name=none", "preprocess.wave_step=12", "emulator.slam.C=[10.0]", "emulator.slam.gamma=[0.1]",
         "emulator.slam.n_folds=3"]
EXECUTORS = [("serial", None), ("local", 1), ("local", 2), ("dask", 1), ("dask", 2)]


def slamfw(*args: str) -> list[str]:
    return [sys.executable, "-m", "slamfw.cli", *args]


def train(folder: Path, emulator: str) -> Path:
    sets = [a for s in [*SMALL, f"emulator.name={emulator}", f"output.dir={folder}"] for a in ("--set", s)]
    subprocess.run(slamfw("train", str(DEMO), *sets), check=True, capture_output=True)
    return folder / "model.npz"


def run_measured(cmd: list[str], keep_log: bool = False) -> dict:
    """Run ``cmd``, sampling its RSS and its process tree's every 0.1 s, and its own CPU time
    (user + system, at the last sample: ``cpu_self_s``) (``keep_log``: also return its stderr,
    slamfw's log, as ``log``)."""
    import psutil
    t0 = time.perf_counter()
    proc = psutil.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    peak_self = peak_tree = cpu_self = 0
    while proc.poll() is None:
        try:
            rss = proc.memory_info().rss
            tree = rss + sum(c.memory_info().rss for c in proc.children(recursive=True))
            times = proc.cpu_times()
        except psutil.Error:
            continue
        peak_self, peak_tree = max(peak_self, rss), max(peak_tree, tree)
        cpu_self = times.user + times.system
        time.sleep(0.1)
    wall = time.perf_counter() - t0
    out, err = proc.communicate()
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{err.decode()[-2000:]}")
    out = {"wall_s": wall, "peak_self_mb": peak_self / 2 ** 20, "peak_tree_mb": peak_tree / 2 ** 20,
           "cpu_self_s": cpu_self}
    if keep_log:
        out["log"] = err.decode(errors="replace")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[20000, 200000])
    p.add_argument("--emulator", default="cannon", help="emulator of the model (cannon, slam, krr, ...)")
    p.add_argument("--chunk-size", type=int, default=500)
    p.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        model = train(Path(tmp) / "model", args.emulator)
        print(f"model: {args.emulator} on 150-pixel normalised mock spectra; {os.cpu_count()} cores; "
              f"chunks of {args.chunk_size}")
        print(f"{'spectra':>8} {'executor':>9} {'workers':>7} {'wall (s)':>9} {'spectra/s':>10} "
              f"{'peak MB (slamfw)':>17} {'peak MB (all)':>14}")
        for n in args.sizes:
            for name, workers in EXECUTORS:
                cmd = slamfw("predict", str(model), "--reader-param", f"n_stars={n}", "--reader-param", "seed=7",
                             "--chunk-size", str(args.chunk_size), "-o", str(Path(tmp) / f"{name}{workers}-{n}.fits"),
                             "--executor", name, *(["--workers", str(workers)] if workers else []))
                r = {"n_spectra": n, "executor": name, "workers": workers or 1, **run_measured(cmd)}
                r["spectra_per_s"] = n / r["wall_s"]
                rows.append(r)
                print(f"{n:>8} {name:>9} {r['workers']:>7} {r['wall_s']:>9.1f} {r['spectra_per_s']:>10.0f} "
                      f"{r['peak_self_mb']:>17.0f} {r['peak_tree_mb']:>14.0f}", flush=True)
    if len(args.sizes) > 1:
        lo, hi = min(args.sizes), max(args.sizes)
        for name, workers in EXECUTORS:
            a = next(r for r in rows if r["n_spectra"] == lo and r["executor"] == name and r["workers"] == (workers or 1))
            b = next(r for r in rows if r["n_spectra"] == hi and r["executor"] == name and r["workers"] == (workers or 1))
            print(f"{name} x{workers or 1}: peak memory at {hi} / at {lo} spectra = "
                  f"{b['peak_tree_mb'] / a['peak_tree_mb']:.2f} (all processes), "
                  f"{b['peak_self_mb'] / a['peak_self_mb']:.2f} (slamfw process)")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
