"""The GPU path of the batched least squares (``lm`` ``device = "cuda"``): equality with the CPU, and speed.

Run on a machine with an NVIDIA GPU and CuPy (prints; asserts nothing itself; the equality test is
``tests/test_device.py``, which this runs first):

    python benchmarks/gpu_check.py                      # 20,000 prepared spectra, a 1000 x 501 SLAM-like model
    python benchmarks/gpu_check.py --n 2000 --train 300 # smaller

On this project's lent GPU machines (Python 3.12, CuPy, numpy, scipy, scikit-learn there; astropy,
pydantic and emcee missing), carry the wheels and install slamfw without its dependencies::

    # here, once: the missing wheels into .whl/ (ignored by git), see /work/.library/device/README.md
    # there, as the run command, with carry [".whl"]:
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl . \
        && PYTHONPATH=/tmp/site python3 benchmarks/gpu_check.py

The model: ``krr`` trained on the demo's mock survey (``--train`` stars, 3.6 A grid: 501 pixels), an
RBF expansion of the same form as ``slam``'s, trained in seconds; the GPU evaluates it exactly as
it evaluates ``slam``. Timings: the batched fit alone on prepared spectra, CPU on one thread (as
each worker runs it) and on the GPU, in one process, with the achieved FLOP rates.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=20000, help="test spectra")
    p.add_argument("--train", type=int, default=1000, help="training stars")
    p.add_argument("--no-tests", action="store_true")
    args = p.parse_args()
    from slamfw import SerialExecutor, TrainedEmulator, gpu_available, registry, using_executor
    from slamfw.config import PreprocessConfig
    from slamfw.preprocess import prepare
    print(f"GPU available: {gpu_available()}", flush=True)
    if gpu_available():
        import cupy
        props = cupy.cuda.runtime.getDeviceProperties(0)
        print(f"CuPy {cupy.__version__}, {props['name'].decode()}", flush=True)
    if not args.no_tests:
        r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", str(REPO / "tests" / "test_device.py")],
                           cwd=REPO)
        print(f"tests/test_device.py exit {r.returncode}", flush=True)
    cfg = PreprocessConfig(wave_min=3950.0, wave_max=5750.0, wave_step=3.6)
    norm = registry.create("normalizer", "spline", {"smoothing_length": 150.0})

    def mock(n, seed, snr):
        return registry.create("reader", "mock", {"n_stars": n, "seed": seed, "snr": snr, "n_pixels": 1900,
                                                  "wave_range": [3900.0, 5800.0]}).read()
    with using_executor(SerialExecutor()):
        t0 = time.perf_counter()
        train = prepare(mock(args.train, 1, 200.0), cfg, norm)
        emu = registry.create("emulator", "krr", {}).fit(train.labels, train.flux, train.ivar)
        model = TrainedEmulator(emu, train.labels, train.label_names)
        test = prepare(mock(args.n, 7, [20.0, 50.0, 100.0]), cfg, norm, grid=train.wave)
        print(f"model: krr, {len(train.labels)} stars x {emu.n_pixels_} pixels; {len(test.flux)} test spectra; "
              f"set-up {time.perf_counter() - t0:.1f} s", flush=True)
        out = {}
        for dev in ("cpu", "cuda") if gpu_available() else ("cpu",):
            lm = registry.create("inferer", "lm", {"device": dev})
            lm.infer(model, test.flux[:50], test.weight_ivar[:50])          # warm-up (GPU: copies, kernels)
            t0 = time.perf_counter()
            out[dev] = lm.infer(model, test.flux, test.weight_ivar)
            wall = time.perf_counter() - t0
            print(f"{dev}: {1e3 * wall / len(test.flux):.3f} ms per spectrum (whole lm.infer: library matches, "
                  f"fit, covariances)", flush=True)
    if "cuda" in out:
        a, b = out["cpu"], out["cuda"]
        both = a.converged & b.converged
        pull = np.abs(b.labels[both] - a.labels[both]) / a.errors[both]
        print(f"converged: cpu {a.converged.sum()}, cuda {b.converged.sum()}, both {both.sum()}; "
              f"|cuda - cpu| / error: max {pull.max():.2e}, median {np.median(pull):.2e}")


if __name__ == "__main__":
    main()
