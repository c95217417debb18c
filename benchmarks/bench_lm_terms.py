"""The batched least squares' step terms for ``slam``: one compiled pass against the jacobian.

    python benchmarks/bench_lm_terms.py                    # a slam model trained here on mock spectra
    python benchmarks/bench_lm_terms.py --model MODEL.npz  # a saved model (a harness work folder's)

Each step of the batched ``lm`` asks the emulator for the cost, J^T r and J^T J of a batch of rows
(``Emulator.least_squares_terms``). The base class builds them from ``predict_and_jacobian``
(the (K, P, L) jacobian, then products); ``slam`` and ``krr`` compute them in one numba pass over
each gamma group's matrix product. For batches of 500 and 50 rows it prints the time per row of
both, the time of the matrix products alone, and the largest relative difference of the terms;
then the compiled terms with ``jacobian_precision="single"`` (the derivatives' products in
float32), their time per row, the ratio to double's, and the largest relative difference of
each term (the cost, J^T r, J^T J) from double's. A benchmark: it prints, it asserts nothing.
"""
from __future__ import annotations

import argparse

import numpy as np
from threadpoolctl import threadpool_limits

from slamfw import Emulator, registry
from slamfw_plugins.emulators import _rbf

from bench_spline import best_time         # benchmarks/ is on the path when run as a script


def load(path: str | None):
    """(emulator, labels (M, L), flux (M, P), ivar (M, P)) to evaluate at: a saved model at its
    training labels, or a slam trained here on 400 mock stars of 500 pixels."""
    ss = registry.create("reader", "mock", {"n_stars": 400, "seed": 3, "snr": [50, 100], "n_pixels": 500,
                                            "continuum": False}).read()
    if path:
        from slamfw import api
        model = api.load_model(path)
        emu, labels = model.emulator, np.asarray(model.train_labels, float)
        rng = np.random.default_rng(0)
        flux = emu.predict(labels) + rng.normal(0, 0.02, (labels.shape[0], emu.n_pixels_))
        return emu, labels, flux, np.full(flux.shape, 2500.0)
    emu = registry.create("emulator", "slam", {"C": [10.0], "gamma": [0.01, 0.1, 1.0], "n_folds": 3})
    emu.fit(ss.labels, ss.flux, ss.ivar)
    return emu, ss.labels, ss.flux, ss.ivar


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="a saved slam (or krr) model (default: train one on mock spectra)")
    ap.add_argument("--repeat", type=int, default=5, help="the best of this many timings is printed")
    args = ap.parse_args(argv)
    if _rbf.LSQ_KERNEL.get() is None:
        raise SystemExit("numba is not installed (pip install slamfw[fast]): nothing to compare")
    emu, labels, flux, ivar = load(args.model)
    rbf = emu._rbf
    groups = ", ".join(f"gamma {g.gamma:g}: {g.pixels.size} px" for g in rbf.groups)
    print(f"{type(emu).__name__}: {labels.shape[1]} labels, {emu.n_pixels_} pixels ({groups}), "
          f"{rbf.groups[0].centres.shape[0]} centres; one BLAS thread; time per row, best of {args.repeat}")
    print("| rows | compiled terms (us) | from the jacobian (us) | ratio | matrix products alone (us) | max relative difference |")
    print("|---|---|---|---|---|---|")
    singles: list[str] = []
    with threadpool_limits(limits=1):
        for k in (500, 50):
            rows = np.arange(k) % labels.shape[0]
            theta = labels[rows] * (1 + 0.01 * np.sin(np.arange(k))[:, None])
            w = np.sqrt(ivar[rows])
            wf = w * flux[rows]
            fused = emu.least_squares_terms(theta, w, wf)                   # compile (or load numba's cache)
            plain = Emulator.least_squares_terms(emu, theta, w, wf)
            t_fused = best_time(lambda: emu.least_squares_terms(theta, w, wf), args.repeat)
            t_plain = best_time(lambda: Emulator.least_squares_terms(emu, theta, w, wf), args.repeat)
            # copied: each kernel matrix is a view of the expansion's one work array, reused by the next group
            kz = [(g, kmat.copy()) for g, kmat in rbf._kernels(emu.label_scaler_.transform(theta))]
            t_gemm = best_time(lambda: [kmat @ g.stacked_dual() for g, kmat in kz], args.repeat)
            diff = max(np.abs(a - b).max() / np.abs(b).max() for a, b in zip(fused, plain))
            print(f"| {k} | {1e6 * t_fused / k:.0f} | {1e6 * t_plain / k:.0f} | {t_plain / t_fused:.2f}x | "
                  f"{1e6 * t_gemm / k:.0f} | {diff:.1e} |")
            single = emu.least_squares_terms(theta, w, wf, jacobian_precision="single")
            t_single = best_time(lambda: emu.least_squares_terms(theta, w, wf, jacobian_precision="single"),
                                 args.repeat)
            diffs = " / ".join(f"{np.abs(a - b).max() / np.abs(b).max():.1e}" for a, b in zip(single, fused))
            singles.append(f"| {k} | {1e6 * t_single / k:.0f} | {t_fused / t_single:.2f}x | {diffs} |")
    print("\nThe compiled terms with jacobian_precision = \"single\":")
    print("| rows | time (us) | double / single | max relative difference from double: cost / J^T r / J^T J |")
    print("|---|---|---|---|")
    print("\n".join(singles))


if __name__ == "__main__":
    main()
