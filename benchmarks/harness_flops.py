"""The harness's floating-point rates: numpy's GEMM on one and on all BLAS threads, and the batched
least squares (``slamfw.stats.batched_lm.batched_lm``) on one process with one BLAS thread, and on
two processes at once, each with one BLAS thread (wall time of the pair).

FLOPs are counted as the code counts them: ``result["flops"]`` of ``batched_lm`` (the emulator's
``flops_per_evaluation`` times the rows evaluated, plus the normal equations). These are the
operations performed: pixels of weight 0 (masked, or ivar = 0) are evaluated and summed like the
others, so the rate is the arithmetic done, not only the useful part; ``flop_rates`` reports the
fraction of zero weights beside it. GEMM: 2 n^3 per float64 n x n product.
"""
from __future__ import annotations

import multiprocessing as mp
import time
from pathlib import Path
from typing import Any

import numpy as np


def gemm_rate(threads: int | None = None, n: int = 2048, repeats: int = 3) -> float:
    """numpy's float64 matrix-product rate (GFLOP/s), on ``threads`` BLAS threads (None: all)."""
    from threadpoolctl import threadpool_limits
    a = np.random.default_rng(0).normal(size=(n, n))
    b = a.T.copy()
    with threadpool_limits(limits=threads, user_api="blas"):
        a @ b
        best = np.inf
        for _ in range(repeats):
            t0 = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - t0)
    return 2.0 * n ** 3 / best / 1e9


def blas_threads() -> int:
    from threadpoolctl import threadpool_info
    return max((p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"), default=1)


def _problem(model, flux: np.ndarray, ivar: np.ndarray):
    """The batched fit's inputs, as the ``lm`` inferer sets them up (3 starts: the best library matches)."""
    from slamfw import likelihood_weights
    from slamfw.stats.likelihood import best_library_matches
    emu = model.emulator
    train = np.asarray(model.train_labels, float)
    mean, scale = train.mean(0), train.std(0, ddof=1)
    w = likelihood_weights(ivar, emu.model_error_)
    z = (train - mean) / scale
    idx = best_library_matches(flux, w, emu.predict(train), 3, z, 1.0)
    return emu, flux, w, z[idx], mean, scale


def fit_once(model, flux: np.ndarray, ivar: np.ndarray, threads: int = 1) -> dict[str, float]:
    """Time ``batched_lm`` on these prepared spectra in this process, on ``threads`` BLAS threads."""
    from threadpoolctl import threadpool_limits

    from slamfw.stats.batched_lm import batched_lm
    emu, flux, w, starts, mean, scale = _problem(model, flux, ivar)
    with threadpool_limits(limits=threads, user_api="blas"):
        t0 = time.perf_counter()
        res = batched_lm(emu, flux, w, starts, [None] * len(flux), mean, scale)
        t1 = time.perf_counter()
    return {"start": t0, "end": t1, "flops": float(res["flops"]), "evaluations": float(res["n_evals"]),
            "spectra": float(len(flux)), "zero_weight_fraction": float(np.mean(w == 0))}


def _worker(model_path: str, data_path: str, rows: tuple[int, int], barrier, queue) -> None:
    from slamfw.model import SlamfwModel
    model = SlamfwModel.load(model_path)
    with np.load(data_path) as z:
        flux, ivar = z["test_flux"][rows[0]:rows[1]], z["test_ivar"][rows[0]:rows[1]]
    emu, flux, w, starts, mean, scale = _problem(model, flux, ivar)
    from threadpoolctl import threadpool_limits

    from slamfw.stats.batched_lm import batched_lm
    with threadpool_limits(limits=1, user_api="blas"):
        batched_lm(emu, flux[:2], w[:2], starts[:2], [None] * 2, mean, scale)     # warm up
        barrier.wait()
        t0 = time.perf_counter()
        res = batched_lm(emu, flux, w, starts, [None] * len(flux), mean, scale)
        t1 = time.perf_counter()
    queue.put({"start": t0, "end": t1, "flops": float(res["flops"]), "evaluations": float(res["n_evals"]),
               "spectra": float(len(flux))})


def fit_pair(model_path: Path, data_path: Path, n: int) -> dict[str, float]:
    """The first n prepared test spectra of ``data_path`` split in halves, fitted by two spawned
    processes at once, each on one BLAS thread; the wall time is the pair's (first start to last
    end, CLOCK_MONOTONIC, both started together at a barrier)."""
    ctx = mp.get_context("spawn")
    barrier, queue = ctx.Barrier(2), ctx.Queue()
    half = n // 2
    procs = [ctx.Process(target=_worker, args=(str(model_path), str(data_path), rows, barrier, queue))
             for rows in ((0, half), (half, n))]
    for p in procs:
        p.start()
    parts = [queue.get(timeout=3600) for _ in procs]
    for p in procs:
        p.join()
    wall = max(p["end"] for p in parts) - min(p["start"] for p in parts)
    flops = sum(p["flops"] for p in parts)
    return {"spectra": float(n), "wall_s": wall, "ms_per_spectrum": 1e3 * wall / n, "gflop": flops / 1e9,
            "gflop_per_s": flops / wall / 1e9, "evaluations": sum(p["evaluations"] for p in parts),
            "each_s": [p["end"] - p["start"] for p in parts]}


def flop_rates(model, model_path: Path, data_path: Path, n: int) -> dict[str, Any]:
    """The batched fit on the first n prepared test spectra: ``one``, one process on one BLAS thread;
    ``pair``, two processes on one thread each (halves); ``zero_weight_fraction``, the fraction of
    (spectrum, pixel) likelihood weights that are 0 (computed and counted like the others)."""
    with np.load(data_path) as z:
        flux, ivar = z["test_flux"][:n], z["test_ivar"][:n]
    one = fit_once(model, flux, ivar, threads=1)
    wall = one["end"] - one["start"]
    single = {"spectra": one["spectra"], "wall_s": wall, "ms_per_spectrum": 1e3 * wall / one["spectra"],
              "evaluations": one["evaluations"], "gflop": one["flops"] / 1e9, "gflop_per_s": one["flops"] / wall / 1e9}
    return {"one": single, "pair": fit_pair(model_path, data_path, n),
            "zero_weight_fraction": one["zero_weight_fraction"]}
