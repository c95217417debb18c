"""Quick self-check of the reference runners: tiny synthetic data through astroslam and the Cannons.

    python benchmarks/reference/selfcheck.py            # same as --quick
    python benchmarks/reference/selfcheck.py --quick --venv /tmp/refenv --out /tmp/refcheck

Builds (or reuses) the reference venv, makes 60 training and 20 test stars x 40 pixels with 3
labels (smooth functions of the labels plus noise at S/N 100; one training and one test pixel
masked, so that astroslam's masked-pixel path and its shim are exercised), runs
``run_reference("astroslam", ...)`` with a 2 x 2 grid and 3 folds on 30 of the pixels and
``run_reference("cannons", ...)`` on all of them, inferring 10 test spectra, and prints the
summaries. Exits non-zero if a run fails or its results are not sane. A couple of minutes at most
once the venv exists.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.reference import ensure_env, run_reference


def synthetic(path: Path, n_train: int = 60, n_test: int = 20, n_pix: int = 40, snr: float = 100.0,
              seed: int = 0) -> Path:
    """Write a tiny data set: flux = 1 - absorption lines whose depth/width/centre vary with labels."""
    rng = np.random.default_rng(seed)
    n = n_train + n_test
    labels = np.column_stack([rng.uniform(4500.0, 6500.0, n), rng.uniform(1.0, 5.0, n),
                              rng.uniform(-1.0, 0.5, n)])
    x = (labels - [5500.0, 3.0, -0.25]) / [1000.0, 2.0, 0.75]  # in [-1, 1]
    wave = np.linspace(5000.0, 5040.0, n_pix)
    centres = np.array([5004.0, 5013.0, 5021.0, 5033.0])
    a = np.array([-0.20, -0.10, 0.05, -0.05])  # Teff sensitivity of each line's depth
    b = np.array([0.02, 0.10, 0.15, 0.20])     # [Fe/H] sensitivity
    depth = np.clip(0.4 + a * x[:, :1] + b * x[:, 2:3] + 0.05 * x[:, :1] * x[:, 2:3], 0.02, 0.9)
    width = 1.2 + 0.3 * x[:, 1:2]
    lines = depth[:, :, None] * np.exp(-0.5 * ((wave - centres[:, None]) / width[:, :, None]) ** 2)
    flux = 1.0 - lines.sum(axis=1) - 0.02 * x[:, 1:2] * np.sin(wave / 3.0)
    ivar = np.full_like(flux, snr ** 2)
    flux = flux + rng.normal(0.0, 1.0 / snr, flux.shape)
    ivar[3, 11] = 0.0             # one bad training pixel
    ivar[n_train + 1, 20] = 0.0   # one bad test pixel
    pixels = np.arange(5, 35)     # astroslam trains on a subset, as in the big cases
    np.savez(path, train_labels=labels[:n_train], train_flux=flux[:n_train], train_ivar=ivar[:n_train],
             test_flux=flux[n_train:], test_ivar=ivar[n_train:], test_labels=labels[n_train:],
             pixels=pixels, wave=wave, label_names=np.array(["Teff", "logg", "FeH"]))
    return path


def _brief_astroslam(r: dict) -> dict:
    return {"train_wall_s": round(r["train"]["wall_s"], 3),
            "train_per_pixel_ms": round(r["train"]["per_pixel_ms"], 2),
            "median_cv_mse_at_chosen": r["cv"]["median_cv_mse_at_chosen"],
            "chosen_counts": r["cv"]["chosen_counts"],
            "infer_per_spectrum_s": round(r["infer"]["per_spectrum_s"], 4),
            "infer_init_s": round(r["infer"]["init_s"], 4),
            "model_error_once_s": round(r["infer"]["model_error_once_s"], 4),
            "pixels_used": r["infer"]["pixels_used"], "labels": r["labels"],
            "model_size": r["model_size"], "memory": r["memory"],
            "wall_s_subprocess": round(r["wall_s_subprocess"], 2), "shims": r["shims"]}


def _brief_cannons(r: dict) -> dict:
    out = {}
    for k in ("casey", "ho"):
        c = r[k]
        out[k] = {"train_s": round(c["train_s"], 4), "infer_per_spectrum_s": round(c["infer_per_spectrum_s"], 5),
                  "n_failed": c["n_failed"], "model_size_bytes": c["model_size_bytes"], "labels": c["labels"]}
    out.update(memory=r["memory"], wall_s_subprocess=round(r["wall_s_subprocess"], 2), shims=r["shims"])
    return out


def check(astro: dict, cannons: dict) -> list[str]:
    """Sanity conditions; returns the failures."""
    bad = []
    lab = np.load(astro["outputs"]["npz"])
    if not np.all(np.isfinite(lab["labels"])):
        bad.append("astroslam: non-finite labels")
    if lab["cv_mse_grid"].shape != (30, 2, 2) or not np.all(np.isfinite(lab["cv_mse_grid"])):
        bad.append(f"astroslam: cv_mse_grid shape {lab['cv_mse_grid'].shape} or NaN")
    if not any(s.startswith("slam.predict_spectrum") for s in astro["shims"]):
        bad.append("astroslam: predict_spectrum shim not applied")
    for k in ("casey", "ho"):
        if cannons[k]["n_failed"]:
            bad.append(f"{k}: {cannons[k]['n_failed']} failed fits")
    # label recovery at S/N 100 with 60 training stars: loose bounds (Teff K, logg, FeH)
    lim = {"Teff": 300.0, "logg": 0.6, "FeH": 0.3}
    for name, res in (("astroslam", astro["labels"]), ("casey", cannons["casey"]["labels"]),
                      ("ho", cannons["ho"]["labels"])):
        for lbl, s in res["scatter"].items():
            if not s < lim[lbl]:
                bad.append(f"{name}: {lbl} scatter {s} >= {lim[lbl]}")
    return bad


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="the tiny check (the default and only mode)")
    p.add_argument("--venv", type=Path, default=None, help="reference venv (default: env.DEFAULT_VENV)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: a temporary one)")
    args = p.parse_args()
    py = ensure_env(args.venv, verbose=True)
    print(f"[selfcheck] reference python: {py}")
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        data = synthetic(out / "synthetic.npz")
        astro = run_reference("astroslam", data, {"C": [1.0, 10.0], "gamma": [0.1, 1.0], "epsilon": 0.05,
                                                  "n_folds": 3, "n_jobs": 2, "n_infer": 10},
                              out, venv=args.venv, timeout=600)
        print("[selfcheck] astroslam:\n" + json.dumps(_brief_astroslam(astro), indent=1))
        cannons = run_reference("cannons", data, {"n_infer": 10}, out, venv=args.venv, timeout=600)
        print("[selfcheck] cannons:\n" + json.dumps(_brief_cannons(cannons), indent=1))
        bad = check(astro, cannons)
    if bad:
        sys.exit("[selfcheck] FAILED:\n  " + "\n  ".join(bad))
    print("[selfcheck] OK")


if __name__ == "__main__":
    main()
