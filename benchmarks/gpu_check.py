"""The GPU path of the batched least squares (``lm`` ``device = "cuda"``): equality with the CPU, and speed.

Run on a machine with an NVIDIA GPU and CuPy (prints; asserts nothing itself; the equality test is
``tests/test_device.py``, which this runs first):

    python benchmarks/gpu_check.py                      # 20,000 prepared spectra, a 1000 x 501 krr model
    python benchmarks/gpu_check.py --n 2000 --train 300 # smaller
    python benchmarks/gpu_check.py --no-tests --predict-model MODEL   # and the whole `slamfw predict`

On this project's lent GPU machines (Python 3.12, CuPy, numpy, scipy, scikit-learn there; astropy,
pydantic and emcee missing, no package index), carry the wheels, slamfw's own among them::

    # here, once: the missing wheels into .whl/ (ignored by git; /work/.library/device/README.md),
    # and slamfw's: pip wheel --no-deps --no-build-isolation -w .whl .
    # there, as the run command, with carry [".whl"]:
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl \
        && PYTHONPATH=/tmp/site python3 benchmarks/gpu_check.py

The model: ``krr`` trained on the demo's mock survey (``--train`` stars, 3.6 A grid: 501 pixels), an
RBF expansion of the same form as ``slam``'s, trained in seconds; the GPU evaluates it exactly as
it evaluates ``slam``. Timings: the whole ``lm.infer`` (library matches on the CPU with all BLAS
threads, the batched fit, covariances) on prepared spectra, in one process: the CPU's batched fit on
one BLAS thread (as each executor worker runs it), then the GPU with its own batches
(``maxlike.BATCH_BYTES_DEVICE``) and with the CPU's (``--gpu-small-batches``), each with the mean
evaluations per star.

``--profile``: the host's time per function of the last GPU run (cProfile; run with
``CUDA_LAUNCH_BLOCKING=1`` so that each kernel's time falls on the call that launched it).

``--predict-model MODEL``: the whole ``slamfw predict`` process as a survey user runs it, on a mock
survey ``table`` file of ``--predict-n`` rows (the demo survey's settings, harness_table.py; the
first ``--predict-draw`` spectra drawn, the rest repeating them, so that writing it takes seconds):
on the CPU (the local executor, all cores, chunks of 500 or fewer so that every worker has one)
and on the GPU, in the same chunks (predict then prepares the chunks on the executor's workers and
fits them in its own process, up to the solver's GPU batch at a time: ``Inferer.stars_per_call``):
the serial executor (all in one process) and the local executor (all cores prepare), each twice,
since the first GPU run on a machine compiles CuPy's kernels; the catalogues' labels compared in
units of the CPU's formal errors. ``--predict-table FILE``: an existing ``table`` npz instead of
the mock one; with ``--fit-cpu-n N``, the model's
``lm`` alone is also timed in process (the CPU on the first N spectra, the GPU on all).
``--predict-profile``: one more GPU run with the workers preparing, its calling process under
cProfile (the top functions printed: where the process that fits on the GPU spends its time, and
how long it waits for the workers).
"""
from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import re
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def _timed_infer(label: str, lm, model, test, small_batches: bool = False, profile: bool = False):
    """The whole ``lm.infer`` on the prepared ``test`` spectra, timed (after a 50-spectrum warm-up)."""
    from slamfw.stats import maxlike
    saved = maxlike._batch_stars
    if small_batches:          # the CPU's batches on the GPU
        maxlike._batch_stars = lambda *a, **kw: saved(*a[:3], "cpu")
    try:
        lm.infer(model, test.flux[:50], test.weight_ivar[:50])          # warm-up (GPU: copies, kernels)
        prof = cProfile.Profile() if profile else None
        if prof:
            prof.enable()
        t0 = time.perf_counter()
        res = lm.infer(model, test.flux, test.weight_ivar)
        wall = time.perf_counter() - t0
        if prof:
            prof.disable()
    finally:
        maxlike._batch_stars = saved
    print(f"{label}: {1e3 * wall / len(test.flux):.3f} ms per spectrum (whole lm.infer: library matches, fit, "
          f"covariances); {res.nfev.mean():.2f} evaluations per star", flush=True)
    if prof:
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)
    return res


def _limited_pool_infer(gib: float, lm, model, test):
    """The GPU's ``lm.infer`` with CuPy's memory pool limited to ``gib`` GiB: batches that do not
    fit raise CuPy's OutOfMemoryError and are fitted in halves (``maxlike._device_lm``); prints the
    warnings and the piece size the process settles on."""
    import logging

    import cupy

    from slamfw.stats import maxlike
    pool = cupy.get_default_memory_pool()
    pool.free_all_blocks()
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record):
            # the records themselves, as pytest's caplog keeps them: a record that held the error
            # would keep the failed batch's arrays on the device (the bug run 5 found)
            records.append(record)
    handler = Keep(logging.WARNING)
    logging.getLogger("slamfw.stats.maxlike").addHandler(handler)
    saved = dict(maxlike._DEVICE_MAX_STARS)
    maxlike._DEVICE_MAX_STARS.clear()
    pool.set_limit(size=int(gib * 2 ** 30))
    try:
        t0 = time.perf_counter()
        res = lm.infer(model, test.flux, test.weight_ivar)
        wall = time.perf_counter() - t0
    finally:
        pool.set_limit(size=0)
        logging.getLogger("slamfw.stats.maxlike").removeHandler(handler)
        cap = maxlike._DEVICE_MAX_STARS.get("cuda")
        maxlike._DEVICE_MAX_STARS.clear()
        maxlike._DEVICE_MAX_STARS.update(saved)
    train = np.asarray(model.train_labels)
    per_batch = maxlike._batch_stars(lm.n_starts, test.flux.shape[1], train.shape[1], "cuda", len(train))
    print(f"cuda, pool limited to {gib:g} GiB (budget {maxlike.BATCH_BYTES_DEVICE / 2 ** 30:g} GiB, "
          f"{per_batch} stars per batch): {1e3 * wall / len(test.flux):.3f} ms per spectrum; {len(records)} out-of-memory "
          f"warnings; pieces of at most {cap} stars", flush=True)
    for r in records[:4]:
        print(f"  warning: {r.getMessage()[:240]}", flush=True)
    return res


def _compare(name: str, a, b) -> None:
    """Labels b against a (the first len(a) of b), both converged, in units of a's errors."""
    n = len(a.labels)
    both = a.converged & b.converged[:n]
    pull = np.abs(b.labels[:n][both] - a.labels[both]) / a.errors[both]
    print(f"{name}: of {n} stars converged {a.converged.sum()} and {b.converged[:n].sum()}, both {both.sum()}; "
          f"|difference| / error: "
          f"max {pull.max():.2e}, median {np.median(pull):.2e}, above 1e-3: {(pull.max(axis=1) > 1e-3).sum()} stars",
          flush=True)


def _fit_section(model_path: Path, table: Path, n_cpu: int, gpu: bool) -> None:
    """The model's ``lm`` alone, in one process, on the table's prepared spectra: the CPU (one
    thread, the first ``n_cpu`` spectra) and the GPU (all of them)."""
    from slamfw import SerialExecutor, using_executor
    from slamfw.api import load_model
    from slamfw.workflows.infer import call_infer, model_inferer, prepare_for_model, read_with_model_reader
    model = load_model(model_path)
    data = prepare_for_model(read_with_model_reader(model, None, "table", {"path": str(table)}).read(), model)
    flux, ivar, ids = data.flux, data.weight_ivar, np.asarray(data.ids, dtype=str)
    out = {}
    with using_executor(SerialExecutor()):
        for dev, n in (("cpu", min(n_cpu, len(flux))), ("cuda", len(flux))):
            if dev == "cuda" and not gpu:
                continue
            inferer = model_inferer(model, {"device": dev})
            call_infer(inferer, model, flux[:5], ivar[:5], None, ids[:5])           # warm-up
            t0 = time.perf_counter()
            out[dev] = call_infer(inferer, model, flux[:n], ivar[:n], None, ids[:n])
            wall = time.perf_counter() - t0
            print(f"{model_path.name}, lm in process, {dev}: {1e3 * wall / n:.2f} ms per spectrum over {n} spectra "
                  f"({flux.shape[1]} pixels; library matches, fit, covariances); {out[dev].nfev.mean():.2f} "
                  f"evaluations per star", flush=True)
    if "cuda" in out:
        _compare(f"{model_path.name}, cuda against cpu (first {len(out['cpu'].labels)})", out["cpu"], out["cuda"])


def _print_profile(path: Path, n: int = 22) -> None:
    """The top ``n`` functions of a cProfile file by own time and by cumulative time."""
    import io
    import pstats
    for key in ("tottime", "cumulative"):
        out = io.StringIO()
        pstats.Stats(str(path), stream=out).sort_stats(key).print_stats(n)
        text = out.getvalue()
        print(f"calling process, by {key}:\n" + text[text.find("   ncalls"):], flush=True)


def _predict_section(model_path: Path, n: int, draw: int, work: Path, gpu: bool, table: Path | None = None,
                     profile: bool = False) -> None:
    """The whole ``slamfw predict`` on a survey table (a mock one of ``n`` rows unless ``table``),
    CPU and GPU (see the module's doc)."""
    from astropy.table import Table
    from astropy.units import UnitsWarning
    work.mkdir(parents=True, exist_ok=True)
    if table is None:
        sys.path.insert(0, str(REPO / "benchmarks"))
        from harness_table import write_mock_tables
        table = work / f"survey-{n}-draw{draw}.npz"
        t0 = time.perf_counter()
        write_mock_tables([(table, 0, n)], n, draw=draw, log=lambda *a, **k: None)
        print(f"survey table: {n} rows ({draw} drawn), {time.perf_counter() - t0:.1f} s", flush=True)
    else:
        with np.load(table) as z:
            n = len(z["flux"])
    n_workers = os.cpu_count() or 1
    # chunks of 500 (predict's default), fewer where that would leave workers idle
    chunk = str(min(500, -(-n // n_workers)))
    workers = ["--executor", "local", "--workers", str(n_workers)]
    runs = [(f"cpu, chunks of {chunk}", workers + ["--chunk-size", chunk])]
    if gpu:
        # on the GPU, predict prepares the chunks on the workers and fits them in its own process, up
        # to the solver's batch at a time (lm's stars_per_call). CuPy compiles its kernels at their
        # first use on a machine (and keeps them on disk): the first GPU run, which that may slow,
        # runs again at the end
        cuda = ["--inferer-param", "device=cuda", "--chunk-size", chunk]
        runs += [("cuda, serial, 1st", ["--executor", "serial", *cuda]),
                 ("cuda, workers prepare", workers + cuda),
                 ("cuda, serial, 2nd", ["--executor", "serial", *cuda]),
                 ("cuda, workers prepare, 2nd", workers + cuda)]
        if profile:
            runs += [("cuda, workers prepare, profiled", workers + cuda)]
    cats = {}
    for name, extra in runs:
        cat = work / f"cat-{len(cats)}.fits"
        prof = work / f"predict-{len(cats)}.prof"
        python = [sys.executable, "-m", "cProfile", "-o", str(prof)] if "profiled" in name else [sys.executable]
        cmd = [*python, "-m", "slamfw.cli", "predict", str(model_path), "--reader", "table", "--reader-param",
               f"path={table}", "-o", str(cat), "--force", *extra]
        t0 = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if r.returncode:
            print(f"predict ({name}) failed, exit {r.returncode}:\n{r.stderr[-3000:]}", flush=True)
            continue
        # predict's own log line: the time from the model loaded to the catalogue written
        inner = re.search(r"predict: \d+ spectra in ([0-9.]+) s", r.stdout + r.stderr)
        where = "" if "serial" in name else f", {n_workers} workers"
        print(f"{model_path.name}, predict ({name}{where}): {wall:.1f} s for {n} spectra, {1e3 * wall / n:.3f} ms "
              f"per spectrum (whole process: start, read, normalise, fit, write); "
              f"{inner.group(1) if inner else '?'} s of it after start-up (predict's log)", flush=True)
        if "profiled" in name:
            _print_profile(prof)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UnitsWarning)
            cats[name] = Table.read(cat)
    ref_name = next((k for k in cats if k.startswith("cpu")), None)
    if ref_name is not None:
        ref = cats[ref_name]
        names = [c[:-len("_err_formal")] for c in ref.colnames if c.endswith("_err_formal")]
        for name, t in cats.items():
            if name == ref_name:
                continue
            both = np.asarray(ref["converged"]) & np.asarray(t["converged"])
            pull = np.column_stack([np.abs(np.asarray(t[x]) - np.asarray(ref[x])) / np.asarray(ref[f"{x}_err_formal"])
                                    for x in names])[both]
            print(f"catalogue ({name}) against cpu: converged {both.sum()} of {len(ref)} in both; |difference| / "
                  f"formal error: max {pull.max():.2e}, median {np.median(pull):.2e}, above 1e-3: "
                  f"{(pull.max(axis=1) > 1e-3).sum()} stars", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=20000, help="test spectra")
    p.add_argument("--train", type=int, default=1000, help="training stars")
    p.add_argument("--no-tests", action="store_true")
    p.add_argument("--skip-cpu", action="store_true", help="time the GPU only (with --profile)")
    p.add_argument("--gpu-small-batches", action="store_true", help="also time the GPU with the CPU's batch size")
    p.add_argument("--profile", action="store_true", help="cProfile the last GPU run")
    p.add_argument("--pool-limit", type=float, default=0.0,
                   help="GiB: also run the GPU with CuPy's memory pool limited to this (a real out-of-memory "
                        "error, which the solver meets by fitting in halves), the labels compared")
    p.add_argument("--predict-model", type=Path, help="a model file: also time the whole slamfw predict")
    p.add_argument("--predict-n", type=int, default=20000)
    p.add_argument("--predict-draw", type=int, default=2000)
    p.add_argument("--predict-table", type=Path, help="a survey table npz for --predict-model (default: a mock one)")
    p.add_argument("--fit-cpu-n", type=int, default=0,
                   help="with --predict-table: also time the model's lm in process (CPU on this many spectra)")
    p.add_argument("--predict-profile", action="store_true",
                   help="with --predict-model: one more GPU run with the workers preparing, its calling process "
                        "under cProfile (the top functions printed)")
    p.add_argument("--work", type=Path, default=Path("/tmp/slamfw-gpu-check"))
    args = p.parse_args()
    from slamfw import SerialExecutor, TrainedEmulator, gpu_available, registry, using_executor
    from slamfw.config import PreprocessConfig
    from slamfw.preprocess import prepare
    gpu = gpu_available()
    print(f"GPU available: {gpu}", flush=True)
    if gpu:
        import cupy
        props = cupy.cuda.runtime.getDeviceProperties(0)
        print(f"CuPy {cupy.__version__}, {props['name'].decode()}", flush=True)
    if not args.no_tests:
        r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                            str(REPO / "tests" / "test_device.py")], cwd=REPO)
        print(f"tests/test_device.py exit {r.returncode}", flush=True)
    if args.n > 0:
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
            if not args.skip_cpu:
                out["cpu"] = _timed_infer("cpu", registry.create("inferer", "lm", {"device": "cpu"}), model, test)
            if gpu:
                lm = registry.create("inferer", "lm", {"device": "cuda"})
                if args.gpu_small_batches:
                    out["cuda (cpu's batches)"] = _timed_infer("cuda, the CPU's batch size", lm, model, test,
                                                               small_batches=True)
                out["cuda"] = _timed_infer("cuda", lm, model, test, profile=args.profile)
                if args.pool_limit > 0:
                    out["cuda, pool limited"] = _limited_pool_infer(args.pool_limit, lm, model, test)
        for name in out:
            if name != "cpu" and "cpu" in out:
                _compare(f"{name} against cpu", out["cpu"], out[name])
        if "cuda, pool limited" in out:
            _compare("cuda, pool limited against cuda", out["cuda"], out["cuda, pool limited"])
    if args.predict_model and args.predict_table and args.fit_cpu_n > 0:
        _fit_section(args.predict_model, args.predict_table, args.fit_cpu_n, gpu)
    if args.predict_model:
        _predict_section(args.predict_model, args.predict_n, args.predict_draw, args.work, gpu, args.predict_table,
                         args.predict_profile)


if __name__ == "__main__":
    main()
