"""Helpers shared by the run scripts (``run_astroslam.py``, ``run_cannons.py``).

Imported by those scripts INSIDE the reference venv (their directory is on ``sys.path``), so it
depends on numpy and the standard library only, never on slamfw.

Input data (.npz): ``train_labels`` (M, L), ``train_flux`` (M, P), ``train_ivar`` (M, P),
``test_flux`` (N, P), ``test_ivar`` (N, P); optional ``test_labels`` (N, L), ``pixels`` (indices of
the pixels to use; default all), ``label_names`` (L,) and ``wave`` (P,).
"""
from __future__ import annotations

import argparse
import importlib.metadata as md
import json
import os
import platform
import resource
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

try:  # put there by env.py (see refshims.py); absent when run outside the reference venv
    import _slamfw_refshims as _shims
except ImportError:  # pragma: no cover
    _shims = None


@dataclass
class Inputs:
    train_labels: np.ndarray
    train_flux: np.ndarray
    train_ivar: np.ndarray
    test_flux: np.ndarray
    test_ivar: np.ndarray
    test_labels: np.ndarray | None
    pixels: np.ndarray
    label_names: list[str]
    wave: np.ndarray

    @property
    def n_pixels_total(self) -> int:
        return self.train_flux.shape[1]


def load_inputs(path: Path) -> Inputs:
    """Read and check the input .npz (see the module docstring)."""
    with np.load(path, allow_pickle=False) as z:
        d = {k: z[k] for k in z.files}
    need = ("train_labels", "train_flux", "train_ivar", "test_flux", "test_ivar")
    missing = [k for k in need if k not in d]
    if missing:
        raise SystemExit(f"{path}: missing arrays {missing}")
    lab = np.asarray(d["train_labels"], float)
    if lab.ndim == 1:
        lab = lab[:, None]
    fl, iv = np.asarray(d["train_flux"], float), np.asarray(d["train_ivar"], float)
    tf, ti = np.asarray(d["test_flux"], float), np.asarray(d["test_ivar"], float)
    m, p = fl.shape
    if iv.shape != (m, p) or lab.shape[0] != m or tf.shape[1] != p or ti.shape != tf.shape:
        raise SystemExit(f"{path}: inconsistent shapes: labels {lab.shape}, train flux {fl.shape}, "
                         f"train ivar {iv.shape}, test flux {tf.shape}, test ivar {ti.shape}")
    tl = d.get("test_labels")
    if tl is not None:
        tl = np.asarray(tl, float).reshape(tf.shape[0], -1)
    pixels = np.asarray(d["pixels"], int).ravel() if "pixels" in d else np.arange(p)
    if pixels.size == 0 or pixels.min() < 0 or pixels.max() >= p:
        raise SystemExit(f"{path}: `pixels` must index 0..{p - 1}")
    names = [str(s) for s in d["label_names"]] if "label_names" in d else \
        [f"label{i}" for i in range(lab.shape[1])]
    wave = np.asarray(d["wave"], float) if "wave" in d else np.arange(p, dtype=float)
    return Inputs(lab, fl, iv, tf, ti, tl, pixels, names, wave)


def parse_cli(description: str, defaults: dict[str, Any]) -> tuple[Inputs, dict, Path, argparse.Namespace]:
    """Arguments common to the run scripts: DATA.npz --settings JSON|FILE --out-dir DIR."""
    p = argparse.ArgumentParser(description=description,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", type=Path, help="input .npz")
    p.add_argument("--settings", default="{}", help="JSON object, or the path of a JSON file")
    p.add_argument("--out-dir", type=Path, default=Path("."), help="where the .json/.npz go")
    p.add_argument("--tag", default=None, help="output file stem (default: the script's kind)")
    args = p.parse_args()
    raw = args.settings
    text = Path(raw).read_text() if not raw.lstrip().startswith("{") and Path(raw).exists() else raw
    try:
        user = json.loads(text)
    except ValueError as exc:
        raise SystemExit(f"--settings is neither a JSON object nor a JSON file: {exc}")
    unknown = sorted(set(user) - set(defaults))
    if unknown:
        raise SystemExit(f"unknown settings {unknown}; known: {sorted(defaults)}")
    settings = {**defaults, **user}
    args.out_dir.mkdir(parents=True, exist_ok=True)
    return load_inputs(args.data), settings, args.out_dir, args


def shims_applied() -> list[str]:
    return _shims.applied() if _shims is not None else ["(refshims not installed: not the reference venv)"]


def print_shims() -> list[str]:
    shims = shims_applied()
    print("[reference] shims applied in this process:", flush=True)
    for s in shims or ["(none)"]:
        print(f"[reference]   - {s}", flush=True)
    return shims


def versions(dists: list[str]) -> dict[str, str]:
    out = {"python": platform.python_version()}
    for d in dists:
        try:
            out[d] = md.version(d)
        except md.PackageNotFoundError:
            out[d] = "not installed"
    return out


def thread_env() -> dict[str, str]:
    keys = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    return {k: os.environ.get(k, "") for k in keys}


def peak_memory_mib() -> dict[str, float]:
    """ru_maxrss (KiB on Linux) of this process and of its terminated, waited-for children."""
    unit = 1.0 if sys.platform != "darwin" else 1 / 1024
    me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * unit / 1024
    ch = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * unit / 1024
    return {"maxrss_self_mib": round(me, 1), "maxrss_children_max_mib": round(ch, 1)}


@contextmanager
def timer(store: dict, key: str) -> Iterator[None]:
    t0 = time.perf_counter()
    try:
        yield
    finally:
        store[key] = time.perf_counter() - t0


def label_stats(pred: np.ndarray, truth: np.ndarray | None, names: list[str]) -> dict | None:
    """Bias (mean) and scatter (std) of pred - truth per label, over the finite rows."""
    if truth is None:
        return None
    d = np.asarray(pred, float) - truth[: len(pred)]
    ok = np.all(np.isfinite(d), axis=1)
    if not ok.any():
        return {"n": 0}
    d = d[ok]
    return {"n": int(ok.sum()),
            "bias": dict(zip(names, np.round(d.mean(axis=0), 6).tolist())),
            "scatter": dict(zip(names, np.round(d.std(axis=0), 6).tolist()))}


def write_outputs(out_dir: Path, stem: str, summary: dict, arrays: dict[str, np.ndarray]) -> Path:
    """Write STEM.npz and STEM.json (the summary, with the npz path added); return the json path."""
    npz = out_dir / f"{stem}.npz"
    np.savez(npz, **arrays)
    summary.setdefault("outputs", {})["npz"] = str(npz.resolve())
    path = out_dir / f"{stem}.json"
    path.write_text(json.dumps(summary, indent=1, default=_jsonable))
    print(f"[reference] wrote {path} and {npz}", flush=True)
    return path


def _jsonable(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o)}")
