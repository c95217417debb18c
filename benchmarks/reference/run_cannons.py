"""Train and run the ORIGINAL Cannons (Casey's ``thecannon``, Ho's ``TheCannon``) on given data.

Run it with the reference venv's python (see env.py), or through ``run_reference("cannons", ...)``:

    benchmarks/reference/.refenv/bin/python benchmarks/reference/run_cannons.py DATA.npz \
        --settings '{"n_infer": 10}' --out-dir OUT

Input: see ``_common.py``. Settings (JSON object or file): ``n_infer`` (test spectra to infer),
``threads`` (Casey's ``test(threads=...)``; only 1 works: with more, annieslasso's pool workers
cannot unpickle the vectorizer, whose ``BaseVectorizer.__setstate__`` reads an undefined name, an
upstream bug independent of the Python/numpy versions, and the pool hangs; so it is refused),
``train_threads`` (Casey's ``train(threads=...)``; default 1: with more it maps ONE pixel at a
time onto a multiprocessing pool, which only adds overhead), ``use_pixels`` (default false: the
Cannons train on all pixels; true: only on ``pixels``), ``which`` (["casey", "ho"]).

The packages' own user paths, unchanged, both quadratic in the labels given:

* Casey (annieslasso 0.2.96, ``import thecannon``): ``CannonModel(labels, flux, ivar,
  vectorizer=PolynomialVectorizer(names, 2))``, ``.train(threads)`` (per pixel theta and scatter
  s2 by optimisation), ``.test(flux, ivar, threads)`` (``scipy.optimize.leastsq`` from the
  training-set median labels). Model size: the pickle of what ``.write(path)`` saves (not
  ``write`` itself, which on Python >= 3.11 silently stores None for every numpy array).
* Ho (thecannon 0.7.3, ``import TheCannon``): ``Dataset(wl, ids, flux, ivar, labels, test_ids,
  test_flux, test_ivar)``, ``CannonModel(order=2, useErrors=False).train(ds)`` (per pixel linear
  algebra over a grid of scatters), ``.infer_labels(ds)`` (``scipy.optimize.curve_fit`` from its
  default start). Ho's package has no save function: the size is that of ``pickle.dumps(model)``.

Writes OUT/cannons.json (per Cannon: training time, inference time per spectrum, model size,
bias/scatter vs test_labels when given; versions, shims, peak memory) and OUT/cannons.npz
(``labels_casey``, ``labels_ho``, ``pixels``).
"""
from __future__ import annotations

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import io
import pickle
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common

DEFAULTS = {"n_infer": 10, "threads": 1, "train_threads": 1, "use_pixels": False,
            "which": ["casey", "ho"]}


def run_casey(inp: _common.Inputs, pix: np.ndarray, n: int, st: dict) -> tuple[dict, np.ndarray]:
    import thecannon

    if int(st["threads"]) != 1:
        raise SystemExit("casey: threads must be 1: annieslasso 0.2.96's test(threads>1) hangs, its "
                         "workers failing to unpickle the vectorizer (BaseVectorizer.__setstate__ "
                         "uses an undefined name `kwds`)")

    t: dict[str, float] = {}
    # the vectorizer parses label names as terms: use plain identifiers
    names = [f"L{i}" for i in range(inp.train_labels.shape[1])]
    vec = thecannon.vectorizer.PolynomialVectorizer(names, 2)
    with _common.timer(t, "init_s"):
        model = thecannon.CannonModel(inp.train_labels.copy(), inp.train_flux[:, pix].copy(),
                                      inp.train_ivar[:, pix].copy(), vectorizer=vec)
    with _common.timer(t, "train_s"):
        model.train(threads=int(st["train_threads"]))
    # What CannonModel.write saves (no training spectra). Not write() itself: on Python >= 3.11
    # its `value.__getstate__()` returns None for numpy arrays (object.__getstate__), so the file
    # silently lacks theta, s2 and the labels and is far too small.
    state = {"theta": model.theta, "s2": model.s2, "vectorizer": model.vectorizer.__getstate__(),
             "censors": model.censors, "regularization": model.regularization,
             "dispersion": model.dispersion, "training_set_labels": model.training_set_labels}
    size = len(pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL))
    with _common.timer(t, "infer_s"):
        labels, _cov, _meta = model.test(inp.test_flux[:n][:, pix].copy(), inp.test_ivar[:n][:, pix].copy(),
                                       threads=int(st["threads"]))
    labels = np.asarray(labels, float)
    out = {"package": "annieslasso (thecannon)", "vectorizer": "PolynomialVectorizer(order=2)",
           "n_terms": len(vec.terms) + 1, "init_s": t["init_s"], "train_s": t["train_s"],
           "train_per_pixel_ms": 1e3 * t["train_s"] / len(pix),
           "infer_s": t["infer_s"], "infer_per_spectrum_s": t["infer_s"] / n,
           "n_failed": int(np.sum(~np.all(np.isfinite(labels), axis=1))),
           "model_size_bytes": size, "model_size_from": "pickle of the state CannonModel.write saves (write() itself drops "
                              "numpy arrays on Python >= 3.11)",
           "labels": _common.label_stats(labels, inp.test_labels, inp.label_names)}
    return out, labels


def run_ho(inp: _common.Inputs, pix: np.ndarray, n: int, st: dict) -> tuple[dict, np.ndarray]:
    from TheCannon import dataset
    from TheCannon import model as ho_model

    t: dict[str, float] = {}
    m = inp.train_flux.shape[0]
    with _common.timer(t, "init_s"):
        with _quiet():
            ds = dataset.Dataset(np.asarray(inp.wave[pix], float), np.arange(m).astype(str),
                                 inp.train_flux[:, pix].copy(), inp.train_ivar[:, pix].copy(),
                                 inp.train_labels.copy(), np.arange(n).astype(str),
                                 inp.test_flux[:n][:, pix].copy(), inp.test_ivar[:n][:, pix].copy())
        ds.set_label_names(list(inp.label_names))
    md = ho_model.CannonModel(2, useErrors=False)
    with _common.timer(t, "train_s"):
        md.train(ds)
    size = len(pickle.dumps(md, protocol=pickle.HIGHEST_PROTOCOL))
    with _common.timer(t, "infer_s"):
        md.infer_labels(ds)  # returns (errors, chi2); labels land in ds
    labels = np.asarray(ds.test_label_vals, float)
    failed = np.all(labels <= -9999.0 + 1e-6, axis=1) | ~np.all(np.isfinite(labels), axis=1)
    out = {"package": "thecannon (TheCannon)", "model": "CannonModel(order=2, useErrors=False)",
           "init_s": t["init_s"], "train_s": t["train_s"],
           "train_per_pixel_ms": 1e3 * t["train_s"] / len(pix),
           "infer_s": t["infer_s"], "infer_per_spectrum_s": t["infer_s"] / n,
           "n_failed": int(failed.sum()),
           "model_size_bytes": size, "model_size_from": "len(pickle.dumps(CannonModel))",
           "labels": _common.label_stats(np.where(failed[:, None], np.nan, labels), inp.test_labels,
                                         inp.label_names)}
    return out, labels


class _quiet:
    """Silence stdout (Ho's Dataset prints per construction)."""

    def __enter__(self):
        self._old, sys.stdout = sys.stdout, io.StringIO()

    def __exit__(self, *exc):
        sys.stdout = self._old


def main() -> None:
    inp, st, out_dir, args = _common.parse_cli(__doc__, DEFAULTS)
    import TheCannon  # noqa: F401
    import thecannon  # noqa: F401

    _common.print_shims()
    pix = inp.pixels if st["use_pixels"] else np.arange(inp.n_pixels_total)
    n = int(min(st["n_infer"], inp.test_flux.shape[0]))
    print(f"[cannons] {inp.train_flux.shape[0]} training stars x {len(pix)} pixels, "
          f"{inp.train_labels.shape[1]} labels, inferring {n} spectra", flush=True)
    summary: dict = {
        "kind": "cannons",
        "versions": _common.versions(["numpy", "scipy", "annieslasso", "thecannon"]),
        "settings": st, "threads": _common.thread_env(),
        "data": {"n_train": inp.train_flux.shape[0], "n_test_inferred": n,
                 "n_labels": inp.train_labels.shape[1], "label_names": inp.label_names,
                 "n_pixels_total": inp.n_pixels_total, "n_pixels_used": len(pix)},
    }
    arrays: dict[str, np.ndarray] = {"pixels": pix}
    runners = {"casey": run_casey, "ho": run_ho}
    for name in st["which"]:
        if name not in runners:
            raise SystemExit(f"unknown Cannon {name!r}; choose from {sorted(runners)}")
        t0 = time.perf_counter()
        summary[name], arrays[f"labels_{name}"] = runners[name](inp, pix, n, st)
        print(f"[cannons] {name}: train {summary[name]['train_s']:.3f} s, "
              f"infer {summary[name]['infer_per_spectrum_s'] * 1e3:.2f} ms/spectrum "
              f"({time.perf_counter() - t0:.1f} s in all)", flush=True)
    summary["shims"] = _common.shims_applied()
    summary["memory"] = _common.peak_memory_mib()
    _common.write_outputs(out_dir, args.tag or "cannons", summary, arrays)


if __name__ == "__main__":
    main()
