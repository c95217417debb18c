"""Train and run the ORIGINAL astroslam (SLAM, Zhang, Liu & Deng 2020) on given data; time it.

Run it with the reference venv's python (see env.py), or through ``run_reference("astroslam", ...)``:

    benchmarks/reference/.refenv/bin/python benchmarks/reference/run_astroslam.py DATA.npz \
        --settings '{"C": [10, 100], "gamma": [0.01, 0.1], "epsilon": 0.05, "n_folds": 5,
                     "n_jobs": 2, "n_infer": 10}' --out-dir OUT

Input: see ``_common.py`` (train/test flux, ivar, labels; ``pixels`` selects the pixels trained on).
Settings (JSON object or file): ``C``, ``gamma`` (the grid), ``epsilon`` (fixed), ``n_folds``,
``n_jobs`` (training processes), ``n_infer`` (test spectra to infer), ``infer_n_jobs`` (default 1:
inference time per spectrum on one process), ``infer_n_jobs_also`` (default 0: none; k > 1: the
same inference timed again with ``n_jobs = k``, astroslam's own joblib parallelism over the
spectra, from the same initial guesses), ``backend`` (joblib backend of the training,
astroslam's default "multiprocessing"), ``save_model`` (keep astroslam's dump in OUT).

astroslam's own user path, unchanged (package ``slam``, class ``slam.Slam`` = ``slam.slam3.Slam3``):

1. ``s = Slam(wave, tr_flux, tr_ivar, tr_labels)`` with the package defaults (it "heals" the data:
   ivar < 1, flux outside (1e-3, 1e2) or non-finite -> ivar 0, bad pixels grown by a convolution;
   standardises each pixel's flux and each label by mean and std);
2. ``s.train_pixels(model="svr", method="grid", param_grid={"C": C, "gamma": gamma}, cv=n_folds,
   n_jobs=n_jobs, epsilon=epsilon)``: one ``SlamModel`` per pixel wrapping an sklearn
   ``GridSearchCV(SVR(epsilon=epsilon), cv=n_folds, scoring="neg_mean_squared_error")``, i.e. an
   unshuffled KFold, refit on all stars at the best point; pixels run in parallel by joblib;
3. inference as in the paper: ``X0 = s.predict_labels_quick(flux, ivar)`` (best chi2 among the
   training spectra), then ``s.predict_labels_multi(X0, flux, ivar)`` (``scipy.least_squares``, trf,
   soft_l1, per spectrum; model error from ``s.training_nmse()``, computed once and timed apart).

The per-pixel choice and CV MSE are not in astroslam's summary table (``s.hyperparams`` stays empty
for Slam3, whose ``sms`` are SlamModel objects); they are read from the public attributes
``s.sms[i].regressor.best_params_`` and ``.cv_results_`` (sklearn's GridSearchCV), in astroslam's
standardised flux units; ``cv_mse_flux`` multiplies by the pixel's flux variance (scale_**2).
When only a subset of pixels is trained, inference uses that subset only.

Writes OUT/astroslam.json (timings, sizes, memory, shims, versions) and OUT/astroslam.npz
(``pixels``, ``C``, ``gamma`` per pixel, ``cv_mse_grid`` (pixels, n_gamma, n_C), ``cv_mse``,
``flux_scale``, ``mock`` (pixels with < n_folds good stars), ``labels``, ``labels_init``,
``labels_std``, ``status``, ``nfev``).
"""
from __future__ import annotations

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common

DEFAULTS = {"C": [10.0, 100.0], "gamma": [0.01, 0.1], "epsilon": 0.05, "n_folds": 5, "n_jobs": 2,
            "n_infer": 10, "infer_n_jobs": 1, "infer_n_jobs_also": 0, "backend": "multiprocessing",
            "save_model": False}


def grid_tables(sms: list, Cs: list[float], gammas: list[float]) -> dict[str, np.ndarray]:
    """Per pixel: chosen C and gamma, CV MSE over the grid (n_gamma, n_C) and at the choice."""
    p = len(sms)
    out = {"C": np.full(p, np.nan), "gamma": np.full(p, np.nan),
           "cv_mse_grid": np.full((p, len(gammas), len(Cs)), np.nan), "cv_mse": np.full(p, np.nan)}
    for j, sm in enumerate(sms):
        grid = sm.regressor  # sklearn GridSearchCV, fitted by astroslam
        best = grid.best_params_
        out["C"][j], out["gamma"][j] = best["C"], best["gamma"]
        out["cv_mse"][j] = -grid.best_score_
        res = grid.cv_results_
        for params, score in zip(res["params"], res["mean_test_score"]):
            a = gammas.index(params["gamma"])
            b = Cs.index(params["C"])
            out["cv_mse_grid"][j, a, b] = -score
    return out


def main() -> None:
    inp, st, out_dir, args = _common.parse_cli(__doc__, DEFAULTS)
    import slam  # the original package; the shims come from the venv's _slamfw_refshims.pth
    import slam.predict
    from slam import Slam

    _common.print_shims()
    Cs = [float(c) for c in st["C"]]
    gammas = [float(g) for g in st["gamma"]]
    st = dict(st, C=Cs, gamma=gammas)
    pix = inp.pixels
    m, p_all = inp.train_flux.shape
    n_infer = int(min(st["n_infer"], inp.test_flux.shape[0]))
    print(f"[astroslam] {m} training stars x {len(pix)}/{p_all} pixels, {inp.train_labels.shape[1]} labels, "
          f"grid {len(Cs)} C x {len(gammas)} gamma, {st['n_folds']} folds, n_jobs={st['n_jobs']}, "
          f"inferring {n_infer} spectra", flush=True)

    t: dict[str, float] = {}
    tr_flux = np.ascontiguousarray(inp.train_flux[:, pix])
    tr_ivar = np.ascontiguousarray(inp.train_ivar[:, pix])
    with _common.timer(t, "init_s"):
        s = Slam(np.asarray(inp.wave[pix], float), tr_flux, tr_ivar, inp.train_labels.copy())
    n_bad_in = int(np.sum(~(tr_ivar > 0)))
    n_bad_slam = int(np.sum(~(s.tr_ivar > 0)))

    with _common.timer(t, "train_s"):
        s.train_pixels(model="svr", method="grid", param_grid={"C": Cs, "gamma": gammas},
                       cv=int(st["n_folds"]), n_jobs=int(st["n_jobs"]), verbose=0,
                       backend=st["backend"], epsilon=float(st["epsilon"]))
    tables = grid_tables(s.sms, Cs, gammas)
    flux_scale = np.asarray(s.tr_flux_scaler.scale_, float)
    mock = np.sum(s.sample_weight > 0, axis=0) < int(st["n_folds"])
    good = ~mock
    pairs, counts = np.unique(np.stack([tables["C"][good], tables["gamma"][good]], 1), axis=0,
                              return_counts=True)
    print(f"[astroslam] trained in {t['train_s']:.2f} s; median CV MSE (standardised) "
          f"{np.nanmedian(tables['cv_mse'][good]):.4g}", flush=True)

    # model size: astroslam's own savers (joblib dumps)
    with tempfile.TemporaryDirectory() as tmp:
        full, sms_only = Path(tmp) / "slam.dump", Path(tmp) / "slam_sms.dump"
        with _common.timer(t, "save_s"):
            s.save_dump(str(full), overwrite=True)
        s.save_dump_sms(str(sms_only), overwrite=True)
        size = {"save_dump_bytes": full.stat().st_size, "save_dump_sms_bytes": sms_only.stat().st_size}
        if st["save_model"]:
            dest = out_dir / "astroslam_model.dump"
            full.replace(dest)
            size["saved_to"] = str(dest.resolve())

    # inference on the trained pixels only
    te_flux = np.ascontiguousarray(inp.test_flux[:n_infer][:, pix])
    te_ivar = np.ascontiguousarray(inp.test_ivar[:n_infer][:, pix])
    with _common.timer(t, "infer_init_s"):
        x0 = np.asarray(s.predict_labels_quick(te_flux.copy(), te_ivar.copy(), n_jobs=1), float)
    with _common.timer(t, "model_error_s"):
        s.training_nmse(n_jobs=1, verbose=0)
    with _common.timer(t, "infer_lsq_s"):
        res = s.predict_labels_multi(x0, te_flux.copy(), te_ivar.copy(),
                                     n_jobs=int(st["infer_n_jobs"]), verbose=0)
    labels = np.array([r["x"] for r in res], float)
    parallel = None
    k_also = int(st.get("infer_n_jobs_also") or 0)
    if k_also > 1:
        with _common.timer(t, "infer_lsq_also_s"):
            res_also = s.predict_labels_multi(x0, te_flux.copy(), te_ivar.copy(), n_jobs=k_also, verbose=0)
        labels_also = np.array([r["x"] for r in res_also], float)
        parallel = {"n_jobs": k_also, "lsq_s": t["infer_lsq_also_s"], "per_spectrum_s": t["infer_lsq_also_s"] / n_infer,
                    "max_abs_label_diff": float(np.nanmax(np.abs(labels_also - labels))),
                    "labels_equal": bool(np.array_equal(labels_also, labels, equal_nan=True))}
    lab_std = np.array([r["pstd"] for r in res], float)
    status = np.array([r["status"] for r in res], int)
    nfev = np.array([r["nfev"] for r in res], int)

    summary = {
        "kind": "astroslam",
        "method": "astroslam 1.2022.1228.1: Slam(...).train_pixels(model='svr', method='grid', ...), "
                  "predict_labels_quick + predict_labels_multi",
        "versions": _common.versions(["numpy", "scipy", "scikit-learn", "joblib", "astroslam"]),
        "shims": _common.shims_applied(),
        "settings": st,
        "threads": _common.thread_env(),
        "data": {"n_train": m, "n_test_inferred": n_infer, "n_labels": inp.train_labels.shape[1],
                 "label_names": inp.label_names, "n_pixels_total": p_all, "n_pixels_trained": len(pix),
                 "train_entries_bad_in_input": n_bad_in,
                 "train_entries_bad_after_astroslam_healing": n_bad_slam},
        "train": {"init_s": t["init_s"], "wall_s": t["train_s"],
                  "per_pixel_ms": 1e3 * t["train_s"] / len(pix),
                  "n_mock_pixels": int(mock.sum())},
        "cv": {"available": True,
               "source": "Slam.sms[i].regressor (sklearn GridSearchCV): best_params_, best_score_, "
                         "cv_results_['mean_test_score']; KFold(n_folds) unshuffled",
               "units": "astroslam's standardised flux ((f - mean_j) / std_j); x flux_scale**2 for flux",
               "median_cv_mse_at_chosen": float(np.nanmedian(tables["cv_mse"][good])),
               "median_cv_mse_at_chosen_flux_units":
                   float(np.nanmedian((tables["cv_mse"] * flux_scale ** 2)[good])),
               "chosen_counts": {f"C={c:g},gamma={g:g}": int(n) for (c, g), n in zip(pairs, counts)}},
        "infer": {"n_spectra": n_infer,
                  "pixels_used": f"the {len(pix)} trained pixels only (of {p_all})",
                  "initial_guess": "predict_labels_quick (min chi2 over the training spectra)",
                  "init_s": t["infer_init_s"], "model_error_once_s": t["model_error_s"],
                  "lsq_s": t["infer_lsq_s"], "n_jobs": int(st["infer_n_jobs"]),
                  "per_spectrum_s": t["infer_lsq_s"] / n_infer,
                  "per_spectrum_incl_init_s": (t["infer_lsq_s"] + t["infer_init_s"]) / n_infer,
                  "parallel": parallel,
                  "median_nfev": float(np.median(nfev)), "status_counts":
                      {str(k): int(v) for k, v in zip(*np.unique(status, return_counts=True))}},
        "labels": _common.label_stats(labels, inp.test_labels, inp.label_names),
        "model_size": size,
        "memory": _common.peak_memory_mib(),
        "slam_package_file": slam.__file__,
    }
    arrays = {"pixels": pix, "C_grid": np.array(Cs), "gamma_grid": np.array(gammas),
              "C": tables["C"], "gamma": tables["gamma"], "cv_mse_grid": tables["cv_mse_grid"],
              "cv_mse": tables["cv_mse"], "flux_scale": flux_scale, "mock": mock,
              "labels": labels, "labels_init": x0, "labels_std": lab_std, "status": status, "nfev": nfev}
    _common.write_outputs(out_dir, args.tag or "astroslam", summary, arrays)


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"[astroslam] done in {time.perf_counter() - t0:.1f} s", flush=True)
