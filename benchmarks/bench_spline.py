"""The spline normaliser's smoothing splines: numba's kernel against the numpy + LAPACK fallback.

    python benchmarks/bench_spline.py              # 300 stars on 1900 and 7214 pixels
    python benchmarks/bench_spline.py --stars 50   # quicker

For each grid (pixels, smoothing length) it solves the same systems both ways (each star on its
own Doppler-shifted grid, 20 % of the pixels rejected, as the normaliser's rejection rounds make
them) and prints the time per star and solve of each, their ratio, and the largest difference of
the two continua (unit continuum). Then the whole normaliser on the demo survey's mock spectra
(1900 pixels, radial velocities of 20 km/s): each star's own basis on its rest-frame wavelengths
(``normalize``) against one basis on the observed grid (``normalize_rest_frame``, what the
preprocessing calls), time per star and the largest relative difference of the continua.
A benchmark: it prints, it asserts nothing.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from slamfw_plugins.normalizers import _smoothing
from slamfw_plugins.normalizers._smoothing import SmoothingSplines
from slamfw_plugins.normalizers.spline import SplineNormalizer

CASES = [(1900, 100.0), (1900, 150.0), (7214, 100.0)]


def best_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stars", type=int, default=300)
    ap.add_argument("--repeat", type=int, default=3, help="the best of this many timings is printed")
    args = ap.parse_args(argv)
    if _smoothing.KERNEL.get() is None:
        raise SystemExit("numba is not installed (pip install slamfw[fast]): nothing to compare")
    rng = np.random.default_rng(1)
    print(f"{args.stars} stars, 20 % of pixels rejected; time per star and solve, best of {args.repeat}")
    print("| pixels | smoothing length (A) | numba (us) | numpy + LAPACK (us) | ratio | max difference |")
    print("|---|---|---|---|---|---|")
    for n, length in CASES:
        x = (3900.0 + np.arange(n)) * (1 + rng.normal(0, 1e-4, (args.stars, 1)))
        y = 1 + 0.3 * np.sin(x / 150.0) + rng.normal(0, 0.05, x.shape)
        w = (rng.uniform(size=x.shape) > 0.2).astype(float)
        y[w == 0] = np.nan
        lam = w.sum(1) / (x[:, -1] - x[:, 0]) * length ** 4
        fast, plain = SmoothingSplines(x), SmoothingSplines(x, compiled=False)
        fast.values(y[:2], w[:2], lam[:2], np.arange(2))            # compile (or load numba's cache)
        t_fast = best_time(lambda: fast.values(y, w, lam), args.repeat)
        t_plain = best_time(lambda: plain.values(y, w, lam), args.repeat)
        diff = np.abs(fast.values(y, w, lam) - plain.values(y, w, lam)).max()
        print(f"| {n} | {length:g} | {1e6 * t_fast / args.stars:.0f} | {1e6 * t_plain / args.stars:.0f} | "
              f"{t_plain / t_fast:.1f}x | {diff:.1e} |")
    whole_normaliser(args.stars, args.repeat)


def whole_normaliser(n_stars: int, repeat: int) -> None:
    from slamfw import registry
    ss = registry.create("reader", "mock", {"n_stars": n_stars, "seed": 7, "snr": [20, 50, 100], "n_pixels": 1900,
                                            "wave_range": [3900.0, 5800.0], "rv_sigma": 20.0}).read()   # the demo's test set
    doppler = 1 + ss.meta_column("rv", 0.0) / 299792.458
    rest = ss.wave[None, :] / doppler[:, None]
    norm = SplineNormalizer()
    blocks = [slice(s, s + 64) for s in range(0, n_stars, 64)]       # the preprocessing's blocks
    own = lambda: [norm.normalize(rest[b], ss.flux[b], ss.weight_ivar[b]) for b in blocks]        # noqa: E731
    shared = lambda: [norm.normalize_rest_frame(ss.wave, doppler[b], ss.flux[b], ss.weight_ivar[b])  # noqa: E731
                      for b in blocks]
    t_own, t_shared = best_time(own, repeat), best_time(shared, repeat)
    a = np.vstack([c[2] for c in own()])
    b = np.vstack([c[2] for c in shared()])
    print(f"\nwhole normaliser, {n_stars} mock stars of {ss.wave.size} pixels in blocks of 64, time per star")
    print("| each star's basis (normalize) (ms) | one basis (normalize_rest_frame) (ms) | ratio | max relative difference |")
    print("|---|---|---|---|")
    print(f"| {1e3 * t_own / n_stars:.3f} | {1e3 * t_shared / n_stars:.3f} | {t_own / t_shared:.2f}x | "
          f"{np.nanmax(np.abs(a - b) / np.abs(a)):.1e} |")


if __name__ == "__main__":
    main()
