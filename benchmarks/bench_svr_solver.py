"""slam's SVR solvers side by side: LIBSVM (scikit-learn) against the numba SMO (solver = "smo").

    python benchmarks/bench_svr_solver.py --data /tmp/s11/caseA/data.npz --pixels 50 --workers 2
    python benchmarks/bench_svr_solver.py --quick          # a mock survey, 300 stars x 20 pixels

Both run the same full grid search (C {1, 10, 100} x gamma {0.01, 0.1, 1}, epsilon 0.05, 5
unshuffled folds, as astroslam's GridSearchCV) on the same stars and pixels with the same executor.
It prints each solver's training wall time, the ratio, and the fraction of pixels where the smo
path chose LIBSVM's (C, gamma) or a point whose CV MSE is within 1 % of the CV MSE at LIBSVM's
choice. A benchmark: it prints, it asserts nothing.

``--data``: an .npz with ``train_labels`` (M, L), ``train_flux`` (M, P), ``train_ivar`` (M, P) (the
harness's case files); without it a mock survey is generated. ``--pixels`` evenly spaced pixels.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

from slamfw import LocalExecutor, registry, using_executor
from slamfw_plugins.emulators import _svr_solver


def load(path: str | None, stars: int, pixels: int):
    if path:
        d = np.load(path)
        labels, flux, ivar = d["train_labels"], d["train_flux"], d["train_ivar"]
    else:
        ss = registry.create("reader", "mock", dict(n_stars=stars, seed=3, snr=100.0, n_pixels=max(pixels, 100),
                                                    continuum=False)).read()
        labels, flux, ivar = ss.labels, ss.flux, ss.ivar
    labels, flux, ivar = labels[:stars], flux[:stars], ivar[:stars]
    cols = np.unique(np.linspace(0, flux.shape[1] - 1, min(pixels, flux.shape[1])).round().astype(int))
    return labels, flux[:, cols], ivar[:, cols]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None)
    ap.add_argument("--stars", type=int, default=1000)
    ap.add_argument("--pixels", type=int, default=50)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--pixels-per-task", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=1, help="rounds, each timing libsvm then smo; the best "
                    "time of each is compared (the machine's load varies)")
    ap.add_argument("--quick", action="store_true", help="300 mock stars x 20 pixels")
    args = ap.parse_args(argv)
    if args.quick:
        args.data, args.stars, args.pixels = None, 300, 20
    if not _svr_solver.HAVE_NUMBA:
        raise SystemExit("numba is not installed (pip install slamfw[fast]): nothing to compare")
    labels, flux, ivar = load(args.data, args.stars, args.pixels)
    params = dict(C=[1.0, 10.0, 100.0], gamma=[0.01, 0.1, 1.0], epsilon=0.05, n_folds=5, shuffle_folds=False,
                  pixels_per_task=args.pixels_per_task, prune_grid=False)   # whole grids, compared point by point
    # compile once here (numba caches it on disk for the worker processes)
    _svr_solver.solve_svr(np.eye(3), np.arange(3.0), 1.0, 0.05)
    local = LocalExecutor(workers=args.workers)
    print(f"{labels.shape[0]} stars x {flux.shape[1]} pixels, grid 3 C x 3 gamma, 5 unshuffled folds, "
          f"{local.n_workers} processes")
    print(f"  load average before: {os.getloadavg()[0]:.2f}")
    fits, times = {}, {"libsvm": [], "smo": []}
    for rnd in range(args.repeat):
        for solver in ("libsvm", "smo"):
            emu = registry.create("emulator", "slam", dict(params, solver=solver))
            with using_executor(local):
                t0 = time.perf_counter()
                emu.fit(labels, flux, ivar)
                times[solver].append(time.perf_counter() - t0)
            fits[solver] = emu
            print(f"  round {rnd + 1}: {solver:7s} training {times[solver][-1]:8.1f} s   median CV MSE "
                  f"{np.median(emu.cv_mse_):.5f}   (load average {os.getloadavg()[0]:.2f})", flush=True)
    best = {k: min(v) for k, v in times.items()}
    print(f"  best of {args.repeat}: libsvm {best['libsvm']:.1f} s, smo {best['smo']:.1f} s")
    ref, ours = fits["libsvm"], fits["smo"]
    p = ref.n_pixels_
    n_c = len(ref.C)
    flat_ref = np.array([ref.gamma.index(g) * n_c + ref.C.index(c) for g, c in zip(ref.gamma_, ref.C_)])
    ours_at_ref = ours.cv_mse_grid_.reshape(p, -1)[np.arange(p), flat_ref]
    same = (ours.C_ == ref.C_) & (ours.gamma_ == ref.gamma_)
    near = np.abs(ours.cv_mse_ - ours_at_ref) <= 0.01 * ours_at_ref
    rel = np.abs(ours.cv_mse_grid_ - ref.cv_mse_grid_) / ref.cv_mse_grid_
    print(f"  ratio libsvm / smo: {best['libsvm'] / best['smo']:.2f}x (best times); per round: "
          + ", ".join(f"{a / b:.2f}x" for a, b in zip(times["libsvm"], times["smo"])))
    print(f"  same (C, gamma): {same.mean():.1%}; same or within 1 % CV MSE: {(same | near).mean():.1%} "
          f"of {p} pixels")
    print(f"  CV MSE over the whole grid, smo vs libsvm: median rel. diff {np.median(rel):.1e}, max {rel.max():.1e}")
    chosen = {}
    for g, c in zip(ref.gamma_, ref.C_):
        chosen[(float(g), float(c))] = chosen.get((float(g), float(c)), 0) + 1
    print("  libsvm's choices (gamma, C): " + ", ".join(f"{k}: {v}" for k, v in sorted(chosen.items())))


if __name__ == "__main__":
    main()
