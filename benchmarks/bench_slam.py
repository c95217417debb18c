"""Speed of the `slam` emulator and the `lm` inferer (a benchmark: it prints, it asserts nothing).

    python benchmarks/bench_slam.py                   # both cases below
    python benchmarks/bench_slam.py --case mock       # 1000 stars x 1000 pixels, 3x3 grid, 5 folds
    python benchmarks/bench_slam.py --case miles      # MILES FGK, 3900-5800 A at 1 A, paper's 2x2 grid

Reported: training wall time; inference time per spectrum on one process (the number to compare
with astroslam's 2.2 s) and with all cores; CV MSE. For reference, the original astroslam takes
about 1140 s to train 1000 stars x 500 pixels with a 3x3 grid and 5 folds on 2 cores.
Set SLAMFW_SHARED_DATA to read the shared data from elsewhere than ../shared/data.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from slamfw import LocalExecutor, SerialExecutor, TrainedEmulator, registry, using_executor
from slamfw.config import PreprocessConfig
from slamfw.preprocess import prepare

REPO = Path(__file__).resolve().parents[1]


def shared_data() -> Path:
    return Path(os.environ.get("SLAMFW_SHARED_DATA", REPO.parent / "shared" / "data"))


def timed(fn, *args, **kw):
    t0 = time.perf_counter()
    out = fn(*args, **kw)
    return out, time.perf_counter() - t0


def bench(name: str, train, test, C, gamma, n_folds: int, workers: int | None) -> dict:
    local = LocalExecutor(workers=workers)
    print(f"\n== {name}: {train.n_stars} training stars x {train.n_pixels} pixels, "
          f"grid {len(C)} C x {len(gamma)} gamma, {n_folds} folds, {local.n_workers} processes")
    emu = registry.create("emulator", "slam", dict(C=C, gamma=gamma, n_folds=n_folds))
    with using_executor(local):
        _, t_train = timed(emu.fit, train.labels, train.flux, train.ivar)
    model = TrainedEmulator(emu, train.labels, train.label_names)
    lm = registry.create("inferer", "lm", {})
    k = min(test.n_stars, 100)
    with using_executor(SerialExecutor()):
        res1, t1 = timed(lm.infer, model, test.flux[:k], test.ivar[:k])
    with using_executor(local):
        resn, tn = timed(lm.infer, model, test.flux, test.ivar)
    pred1, tp = timed(emu.predict, train.labels[:1])
    n_rep = 200
    _, tp = timed(lambda: [emu.predict(train.labels[i % train.n_stars][None]) for i in range(n_rep)])
    _, tj = timed(lambda: [emu.jacobian(train.labels[i % train.n_stars][None]) for i in range(n_rep)])
    out = {
        "case": name, "n_train": train.n_stars, "n_pixels": train.n_pixels, "grid": [len(C), len(gamma)],
        "n_folds": n_folds, "processes": local.n_workers,
        "train_time_s": t_train,
        "train_time_per_pixel_ms": 1e3 * t_train / train.n_pixels,
        "infer_ms_per_spectrum_1proc": 1e3 * t1 / k,
        "infer_ms_per_spectrum_all": 1e3 * tn / test.n_stars,
        "predict_one_ms": 1e3 * tp / n_rep, "jacobian_one_ms": 1e3 * tj / n_rep,
        "median_cv_mse": float(np.median(emu.cv_mse_)),
        "converged_fraction": float(resn.converged.mean()),
    }
    if test.labels is not None:
        d = resn.labels - test.labels
        out["label_scatter"] = dict(zip(test.label_names, np.std(d, axis=0).round(4).tolist()))
    for key, val in out.items():
        print(f"  {key:28s} {val:.4g}" if isinstance(val, float) else f"  {key:28s} {val}")
    return out


def case_mock(args) -> dict:
    kw = dict(n_pixels=args.n_pixels, continuum=False, wave_range=[3900.0, 5800.0])
    train = registry.create("reader", "mock", dict(kw, n_stars=args.n_stars, snr=200.0, seed=1)).read()
    test = registry.create("reader", "mock", dict(kw, n_stars=300, snr=[20.0, 50.0, 100.0], seed=2)).read()
    return bench("mock", train, test, [1.0, 10.0, 100.0], [0.01, 0.1, 1.0], 5, args.workers)


def case_miles(args) -> dict:
    path = shared_data() / "miles_stellar_library"
    ss = registry.create("reader", "miles", dict(path=str(path), where={"Teff": [4000, 7000]})).read()
    ss = ss.select_labels(["Teff", "logg", "FeH"]).drop_unlabelled()
    pp = PreprocessConfig(wave_min=3900.0, wave_max=5800.0, wave_step=1.0)
    ss = prepare(ss, pp, registry.create("normalizer", "spline", {}))
    held = np.random.default_rng(0).random(ss.n_stars) < 0.2
    return bench("miles-fgk", ss.subset(~held), ss.subset(held), [10.0, 100.0], [0.01, 0.1], 5, args.workers)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--case", choices=["mock", "miles", "all"], default="all")
    p.add_argument("--n-stars", type=int, default=1000)
    p.add_argument("--n-pixels", type=int, default=1000)
    p.add_argument("--workers", type=int, default=None, help="local worker processes (default: the cores)")
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = p.parse_args()
    results = []
    if args.case in ("miles", "all"):
        results.append(case_miles(args))
    if args.case in ("mock", "all"):
        results.append(case_mock(args))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
