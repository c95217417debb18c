"""Training cost of the emulators against the training-set size (a benchmark: it prints, asserts nothing).

    python benchmarks/bench_emulators.py                        # M = 250 ... 4000, 500 pixels
    python benchmarks/bench_emulators.py --sizes 500 1000 --slam-max 500 --json out.json

Mock spectra (the demo's spectral model, 4000-9500 K, S/N 200, already normalised) on 500
pixels over 3900-5800 A. For each training-set size M: each emulator's training wall time, its
median CV MSE (each emulator's own CV), and for the in-process emulators the peak memory numpy
allocated (tracemalloc). `slam` (its paper grid C = 10, 100; gamma = 0.01, 0.1; 5 folds, all
cores) runs only up to --slam-max stars, since its LIBSVM solves grow about as M^2.
"""
from __future__ import annotations

import argparse
import json
import time
import tracemalloc

import numpy as np

from slamfw import LocalExecutor, SerialExecutor, registry, using_executor

EMULATORS = {
    "slam": dict(C=[10.0, 100.0], gamma=[0.01, 0.1]),
    "cannon": {},
    "krr": {},
}
#: slam trains on local worker processes (every core); the others in this process.
PARALLEL = {"slam"}


def run(name: str, params: dict, train) -> dict:
    emu = registry.create("emulator", name, params)
    in_process = name not in PARALLEL
    if in_process:
        tracemalloc.start()
    t0 = time.perf_counter()
    with using_executor(SerialExecutor() if in_process else LocalExecutor()):
        emu.fit(train.labels, train.flux, train.ivar)
    dt = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1] / 1e6 if in_process else float("nan")
    if in_process:
        tracemalloc.stop()
    return {"emulator": name, "n_train": train.n_stars, "n_pixels": train.n_pixels, "train_time_s": dt,
            "median_cv_mse": float(np.median(emu.cv_mse_)), "cv_scheme": emu.cv_scheme_, "peak_mb": peak}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[250, 500, 1000, 2000, 4000])
    p.add_argument("--n-pixels", type=int, default=500)
    p.add_argument("--slam-max", type=int, default=1000)
    p.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = p.parse_args()
    rows = []
    print(f"{'M':>6} {'emulator':>8} {'train (s)':>10} {'median CV MSE':>14} {'CV':>14} {'peak MB':>8}")
    for m in args.sizes:
        train = registry.create("reader", "mock", dict(
            n_stars=m, n_pixels=args.n_pixels, continuum=False, wave_range=[3900.0, 5800.0], snr=200.0,
            seed=1)).read()
        for name, params in EMULATORS.items():
            if name == "slam" and m > args.slam_max:
                continue
            r = run(name, params, train)
            rows.append(r)
            print(f"{m:>6} {name:>8} {r['train_time_s']:>10.2f} {r['median_cv_mse']:>14.4f} "
                  f"{r['cv_scheme']:>14} {r['peak_mb']:>8.0f}", flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=2)


if __name__ == "__main__":
    main()
