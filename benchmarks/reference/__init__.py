"""Run the ORIGINAL reference codes (astroslam, Casey's and Ho's Cannons) in their own venv.

    import sys; sys.path.insert(0, REPO_ROOT)
    from benchmarks.reference import run_reference
    res = run_reference("astroslam", Path("data.npz"),
                        {"C": [10, 100], "gamma": [0.01, 0.1], "n_folds": 5, "n_jobs": 2, "n_infer": 10},
                        Path("out/"))
    res["train"]["wall_s"], res["infer"]["per_spectrum_s"], res["outputs"]["npz"]

Kinds: "astroslam" (``run_astroslam.py``) and "cannons" (``run_cannons.py``); the settings each
accepts are listed in those scripts' docstrings, the data format in ``_common.py``. The reference
venv is created on first use (``env.ensure_env``, a minute or so with a warm pip cache). Nothing
here imports slamfw, and slamfw does not import this package.
"""
from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from .env import DEFAULT_VENV, RefEnvError, ensure_env

__all__ = ["DEFAULT_VENV", "KINDS", "RefEnvError", "ReferenceRunError", "ensure_env", "run_reference"]

HERE = Path(__file__).resolve().parent
KINDS = {"astroslam": "run_astroslam.py", "cannons": "run_cannons.py"}
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


class ReferenceRunError(RuntimeError):
    """A reference run exited with an error (the message ends with its log's tail)."""


def run_reference(kind: str, data_npz: Path, settings: dict, out_dir: Path, venv: Path | None = None,
                  threads: int = 1, timeout: float | None = None, tag: str | None = None) -> dict:
    """Run one reference script in the reference venv; return its parsed JSON summary.

    kind: "astroslam" or "cannons". settings: the script's settings (astroslam's n_jobs defaults
    to 2). threads: value of OMP/OPENBLAS/MKL_NUM_THREADS in the child (BLAS threads per process).
    The child's stdout and stderr go to ``out_dir/<tag>.log``; the summary gets ``outputs`` with
    the paths of the .json, .npz and .log, and ``wall_s_subprocess`` (including interpreter start
    and imports).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {sorted(KINDS)}, not {kind!r}")
    data_npz = Path(data_npz).resolve()
    if not data_npz.exists():
        raise FileNotFoundError(data_npz)
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    tag = tag or kind
    py = ensure_env(venv)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update({k: str(int(threads)) for k in _THREAD_VARS})
    env.update(MPLBACKEND="Agg", PYTHONUNBUFFERED="1")
    cmd = [str(py), str(HERE / KINDS[kind]), str(data_npz), "--settings", json.dumps(settings),
           "--out-dir", str(out_dir), "--tag", tag]
    log = out_dir / f"{tag}.log"
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        try:
            proc = subprocess.run(cmd, check=False, stdout=fh, stderr=subprocess.STDOUT, env=env, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise ReferenceRunError(f"{kind} ran past {timeout} s; see {log}") from None
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        raise ReferenceRunError(f"{kind} failed (exit {proc.returncode}); log {log}:\n{tail}")
    summary = json.loads((out_dir / f"{tag}.json").read_text())
    summary.setdefault("outputs", {}).update(json=str(out_dir / f"{tag}.json"), log=str(log))
    summary["wall_s_subprocess"] = wall
    return summary
