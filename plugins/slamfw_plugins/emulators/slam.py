"""SLAM (Zhang, Liu & Deng 2020): one RBF Support Vector Regression per wavelength pixel.

Training (paper §2.1-2.2):
1. standardise labels and every pixel's flux over the training set (eq. 2-4);
2. for each (C, gamma) of the grid (epsilon fixed) and each pixel, k-fold cross-validate
   and record CV MSE (eq. 5) and CV MD (eq. 6) in standardised units;
3. choose per pixel the (C, gamma) with the lowest CV MSE, refit on all training stars and
   record the final MSE and MD.

``prune_grid`` (the default) stops cross-validating a grid point as soon as its finished folds'
squared residuals, over the number of stars the CV MSE averages, exceed the lowest CV MSE
finished so far: its CV MSE can only be higher, so it cannot be chosen, and the choice, CV MSE and
MD are those of the whole grid, for less work (mostly at large C and gamma, the slowest points to
solve); the grid entries of the points it skipped are NaN.

The RBF kernel ``K(x, x') = exp(-gamma |x - x'|^2)`` (LIBSVM's, which the paper used through
scikit-learn) depends only on the labels, so one kernel matrix per gamma serves every pixel and
every fold: LIBSVM is run on the precomputed matrix. Pixels are trained in parallel.

``solver = "smo"`` replaces LIBSVM by the same algorithm compiled with numba on the shared kernel
matrices (:mod:`._svr_solver`, an optional extra): the same problem, stopping rule and intercept,
about twice as fast; LIBSVM stays the default.

Prediction is matrix algebra: for the pixels that share a gamma,
``f(theta) = K(theta, X_sv) @ dual_coef + intercept`` with an analytic jacobian.

Model error for the likelihood (eq. 8): ``sigma_j = sqrt(CV MSE_j) * s_j`` in flux units,
where ``s_j`` is the pixel's training-set standard deviation.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import Field, PositiveFloat

from slamfw import (
    ChunkStore, DataError, Params, StandardizedEmulator, check_training_data, chunks, current_executor, hookimpl,
)

from ._rbf import RBFExpansion, RBFPrediction, sq_dist
from ._state import require

if TYPE_CHECKING:                                  # scikit-learn is imported for training only
    from sklearn.svm import SVR

SLAMFW_PLUGIN_API = (1, 8)

log = logging.getLogger(__name__)


def _svr(C: float, epsilon: float, tol: float, max_iter: int, gamma: float | None) -> SVR:
    from sklearn.svm import SVR
    if gamma is None:
        return SVR(kernel="precomputed", C=C, epsilon=epsilon, tol=tol, max_iter=max_iter)
    return SVR(kernel="rbf", gamma=gamma, C=C, epsilon=epsilon, tol=tol, max_iter=max_iter)


def _smo_module():
    """:mod:`._svr_solver` if numba is installed, else None (imported on first use only: numba
    takes most of a second to import, which every process that loads slam would pay)."""
    if importlib.util.find_spec("numba") is None:
        return None
    from . import _svr_solver
    return _svr_solver if _svr_solver.HAVE_NUMBA else None


def _fit_predict(k_tr: np.ndarray, y: np.ndarray, k_te: np.ndarray, C: float, epsilon: float, tol: float,
                 max_iter: int, gamma: float | None, smo: bool) -> np.ndarray:
    """Train one SVR on (k_tr, y) and predict at k_te: LIBSVM, or the numba SMO on a precomputed kernel."""
    if smo:
        beta, intercept, _ = _smo_module().solve_svr(k_tr, y, C, epsilon, tol, max_iter=max_iter)
        return k_te @ beta + intercept
    return _svr(C, epsilon, tol, max_iter, gamma).fit(k_tr, y).predict(k_te)


#: The most memory (bytes) the folds' kernel blocks of one pixel at one gamma may take to be kept
#: for every C (32 M^2 bytes with 5 folds); above it (about 4100 training stars with 5 folds) each
#: is built again for each C, one fold's at a time, into the same pair of buffers. Measured with
#: ``benchmarks/bench_train_memory.py``'s runs (5 pixels, 2 workers, models identical bit for bit):
#: at 6000 stars, built for each C 95.2 and 95.5 s against kept 96.1 and 94.1 s, and 3.2 GB
#: against 5.0 GB (PSS of the process tree); at 3000 stars, 27.0 and 26.4 s against 26.6 and
#: 24.9 s, 1.18 GB against 1.62 GB; at 1000 stars, 3.7 s against 3.5-3.6 s. (Built into new arrays
#: each time, as before the buffers, the blocks cost 6-11 % more time at 6000 stars: their fresh
#: pages cost more than the copy, :func:`._svr_solver.submatrix`.)
FOLD_BLOCKS_BYTES = 2 ** 29


class _BlockBuffers:
    """Float64 buffers that kernel blocks are built into, one per name, each as large as the
    largest block asked of it so far: reused from block to block (and pixel to pixel) instead of
    new arrays, whose fresh pages cost more than the copy (:func:`._svr_solver.submatrix`)."""

    def __init__(self) -> None:
        self._flat: dict[tuple, np.ndarray] = {}

    def get(self, name: tuple, shape: tuple[int, int]) -> np.ndarray:
        """A C-contiguous (rows, cols) view of buffer ``name``; its earlier contents are lost."""
        size = shape[0] * shape[1]
        flat = self._flat.get(name)
        if flat is None or flat.size < size:
            self._flat.pop(name, None)             # (freed before the larger one is made)
            flat = self._flat[name] = np.empty(size)
        return flat[:size].reshape(shape)

    def keep_only(self, name: tuple) -> None:
        """Free every buffer but ``name``: between pixels, so that the memory held is never more
        than new arrays would take (a pixel whose blocks were kept leaves k pairs of buffers that
        a pixel whose blocks are rebuilt, or the final fit, does not use)."""
        self._flat = {k: v for k, v in self._flat.items() if k == name}

    def names(self) -> list[tuple]:
        """The buffers held, by name."""
        return list(self._flat)


def _cv_grid(yj: np.ndarray, gj: np.ndarray, design, svr_gamma: list, Cs: list[float], epsilon: float,
             tol: float, folds: list[tuple[np.ndarray, np.ndarray]], max_iter: int,
             smo: bool = False, prune: bool = False, keep_bytes: float = np.inf) -> tuple[np.ndarray, np.ndarray]:
    """CV MSE and MD (G, H) of one pixel (y (M,), good (M,)) over the (gamma, C) grid (eq. 5-6).

    ``prune``: stop cross-validating a grid point as soon as the squared residuals of its finished
    folds, divided by the number of stars every fold scores, exceed the lowest CV MSE of the
    points finished so far (by more than a relative 1e-9, far above rounding). Its CV MSE can only
    be higher than that (more residuals add to the sum; a star without a finite prediction leaves
    the mean's count smaller), so it cannot be chosen, and its entries are left NaN: the chosen
    point and its CV MSE and MD are the same as without pruning. Points are visited in the
    grid's order.

    The folds' kernel blocks (``design(a, rows, cols, name)``) are built once per gamma, on first
    use, and serve every C (at most k blocks of the pixel's good stars held at a time, in the
    buffers named by fold), when as float64 they take at most ``keep_bytes``; otherwise each is
    built for each C (one fold's held at a time, in one pair of buffers). The results are the same
    either way.
    """
    m = yj.size
    cv_mse = np.full((len(svr_gamma), len(Cs)), np.nan)
    cv_md = np.full_like(cv_mse, np.nan)
    all_good = bool(gj.all())
    split = [(tr, te) if all_good else (tr[gj[tr]], te[gj[te]]) for tr, te in folds]
    scored = [f for f, (tr_g, te_g) in enumerate(split) if tr_g.size >= 2 and te_g.size > 0]
    n_scored = sum(split[f][1].size for f in scored)        # the stars any point's CV MSE can average
    keep = 8 * sum(split[f][0].size * (split[f][0].size + split[f][1].size) for f in scored) <= keep_bytes
    best_mse = np.inf
    for a in range(len(svr_gamma)):
        blocks: dict[int, tuple] = {}        # fold -> (train x train, test x train) at this gamma
        for b, C in enumerate(Cs):
            pred = np.full(m, np.nan)
            sse = 0.0
            pruned = False
            for f in scored:
                tr_g, te_g = split[f]
                pair = blocks.get(f)
                if pair is None:
                    slot = f if keep else 0
                    pair = (design(a, tr_g, tr_g, ("train", slot)), design(a, te_g, tr_g, ("test", slot)))
                    if keep:
                        blocks[f] = pair
                pred[te_g] = _fit_predict(pair[0], yj[tr_g], pair[1], C, epsilon, tol, max_iter, svr_gamma[a], smo)
                del pair
                if prune and f != scored[-1]:
                    r = pred[te_g] - yj[te_g]
                    sse += float(np.sum(r[np.isfinite(r)] ** 2))
                    if sse > best_mse * n_scored * (1 + 1e-9):
                        pruned = True
                        break
            if pruned:
                continue
            resid = pred[gj] - yj[gj]
            resid = resid[np.isfinite(resid)]
            if resid.size:
                cv_mse[a, b] = np.mean(resid ** 2)
                cv_md[a, b] = np.mean(resid)
                best_mse = min(best_mse, cv_mse[a, b])
    return cv_mse, cv_md


def _fit_pixel_block(y: np.ndarray, good: np.ndarray, X: np.ndarray, kernels: list[np.ndarray] | None,
                     gammas: list[float], Cs: list[float], epsilon: float, tol: float,
                     folds: list[tuple[np.ndarray, np.ndarray]], max_iter: int,
                     solver: str = "libsvm", prune: bool = False) -> dict[str, np.ndarray]:
    """Cross-validate and fit the pixels of one block. y, good: (M, p) standardised flux / good mask.

    ``kernels``: one (M, M) RBF matrix per gamma, shared by every pixel and fold; None to let
    LIBSVM compute the kernel itself (training sets too large to hold M x M matrices).
    ``solver``: "libsvm" (scikit-learn's SVR) or "smo" (:mod:`._svr_solver`, which needs numba and
    the precomputed kernels; LIBSVM serves otherwise). ``prune``: skip the remaining folds of grid
    points that can no longer be chosen (see :func:`_cv_grid`).
    """
    m, p = y.shape
    n_g, n_c = len(gammas), len(Cs)
    precomputed = kernels is not None
    from ._svr_solver import submatrix      # here: the module imports numba (when installed), training only
    smo = solver == "smo" and precomputed and _smo_module() is not None
    svr_gamma = [None] * n_g if precomputed else list(gammas)  # what LIBSVM is told, per grid gamma

    buffers = _BlockBuffers()

    def design(a: int, rows: np.ndarray, cols: np.ndarray, buffer: tuple) -> np.ndarray:
        """What SVR.fit/predict takes for these training rows against these support columns (a
        kernel block is built in the buffer named ``buffer``, overwriting what it held)."""
        if not precomputed:
            return X[rows]
        return submatrix(kernels[a], rows, cols, out=buffers.get(buffer, (rows.size, cols.size)))

    out = {
        "cv_mse": np.full((p, n_g, n_c), np.nan), "cv_md": np.full((p, n_g, n_c), np.nan),
        "dual": np.zeros((p, m)), "intercept": np.zeros(p), "gamma": np.zeros(p), "C": np.zeros(p),
        "mse": np.zeros(p), "md": np.zeros(p), "n_support": np.zeros(p, dtype=np.int64),
    }
    for jj in range(p):
        yj, gj = y[:, jj], good[:, jj]
        out["cv_mse"][jj], out["cv_md"][jj] = _cv_grid(yj, gj, design, svr_gamma, Cs, epsilon, tol, folds, max_iter,
                                                       smo, prune, FOLD_BLOCKS_BYTES if precomputed else np.inf)
        flat = out["cv_mse"][jj].ravel()
        best = int(np.nanargmin(flat)) if np.isfinite(flat).any() else 0
        a, b = divmod(best, n_c)
        idx = np.flatnonzero(gj)
        buffers.keep_only(("train", 0))                 # the CV's blocks are done with
        k_all = design(a, idx, idx, ("train", 0))
        if smo:
            beta, intercept, _ = _smo_module().solve_svr(k_all, yj[idx], Cs[b], epsilon, tol, max_iter=max_iter)
            support = np.flatnonzero(beta)
            out["dual"][jj, idx[support]] = beta[support]
            out["intercept"][jj] = intercept
            out["n_support"][jj] = support.size
            fitted = k_all @ beta + intercept
        else:
            svr = _svr(Cs[b], epsilon, tol, max_iter, svr_gamma[a]).fit(k_all, yj[idx])
            out["dual"][jj, idx[svr.support_]] = svr.dual_coef_[0]
            out["intercept"][jj] = svr.intercept_[0]
            out["n_support"][jj] = svr.support_.size
            fitted = svr.predict(k_all)
        out["gamma"][jj], out["C"][jj] = gammas[a], Cs[b]
        resid = fitted - yj[idx]
        out["mse"][jj], out["md"][jj] = np.mean(resid ** 2), np.mean(resid)
    return out


_BLOCK_ARRAYS = ("dual", "intercept", "gamma", "C", "cv_mse", "cv_md", "mse", "md", "n_support")


def _block_problem(arrays: dict[str, np.ndarray], width: int) -> str | None:
    """Why a saved block of ``width`` pixels cannot be reused (None when it can)."""
    missing = [k for k in _BLOCK_ARRAYS if k not in arrays]
    if missing:
        return f"no {missing} arrays"
    wrong = [k for k in _BLOCK_ARRAYS if arrays[k].shape[:1] != (width,) or arrays[k].dtype.kind not in "biuf"]
    return f"arrays {wrong} are not numeric with {width} pixels" if wrong else None


class SlamEmulator(RBFPrediction, StandardizedEmulator):
    """SLAM's SVR-per-pixel emulator.

    Fitted attributes (P pixels, M training stars, L labels; G gammas, H Cs in the grid):
    ``label_scaler_``, ``flux_scaler_`` (eq. 2-4); ``X_train_`` (M, L) standardised labels;
    ``dual_coef_`` (P, M) SVR dual coefficients (0 for non-support vectors); ``intercept_``,
    ``gamma_``, ``C_`` (P,) chosen per pixel; ``cv_mse_grid_``, ``cv_md_grid_`` (P, G, H) over the
    grid (NaN where ``prune_grid`` skipped a point that could not be chosen); ``cv_mse_``,
    ``cv_md_`` (P,) at the chosen point (standardised flux units, the paper's Fig. 2 quantities);
    ``mse_``, ``md_`` (P,) of the final fit on all stars; ``model_error_`` (P,) in flux units;
    ``cv_scheme_`` ("5-fold" etc.).
    """

    #: ``lm``'s ``jacobian_precision = "single"``: the derivatives' products in float32 (the SVR's
    #: dual coefficients are bounded by C; J^T r and J^T J round to at most 3e-5 of their largest
    #: entries on case (a)'s model, ``benchmarks/bench_lm_terms.py``)
    single_precision_jacobian = True

    class Params(Params):
        C: list[PositiveFloat] = Field(default=[10.0, 100.0], min_length=1, description="SVR penalty grid")
        gamma: list[PositiveFloat] = Field(default=[0.01, 0.1], min_length=1, description="RBF width grid")
        epsilon: float = Field(0.05, gt=0, description="SVR tube radius (standardised flux), fixed")
        n_folds: int = Field(5, ge=2, description="k of the k-fold cross-validation")
        random_state: int | None = Field(0, description="seed of the fold split")
        shuffle_folds: bool = Field(True, description="shuffle the stars before the k-fold split (false: "
                                                      "consecutive folds in the training set's order, as "
                                                      "astroslam's GridSearchCV makes them)")
        tol: float = Field(1e-3, gt=0, description="LIBSVM stopping tolerance")
        max_iter: int = Field(-1, description="LIBSVM iteration cap (-1: none)")
        pixels_per_task: int = Field(10, ge=1, description="pixels per task (the unit of resumption; the executor "
                                     "runs tasks in parallel, and small tasks keep every worker busy to the end)")
        max_kernel_stars: int = Field(8000, ge=2, description="above this many training stars LIBSVM "
                                      "computes the RBF kernel itself instead of sharing M x M matrices")
        solver: Literal["libsvm", "smo"] = Field(
            "libsvm", description="SVR dual solver: 'libsvm' (scikit-learn's SVR) or 'smo' (LIBSVM's algorithm - "
            "second-order working set, shrinking, same stopping rule and intercept - compiled with numba on the "
            "shared kernel matrices; needs the optional numba, `pip install slamfw[fast]`, and falls back to "
            "LIBSVM without it or above max_kernel_stars)")
        prune_grid: bool = Field(
            True, description="stop cross-validating a (C, gamma) point once its finished folds' squared residuals, "
            "over the number of stars the CV MSE averages, exceed the lowest CV MSE finished so far: it can no longer "
            "be chosen, and its cv_mse_grid / cv_md_grid entries stay NaN. The chosen point, CV MSE and CV MD are "
            "unchanged (false: score the whole grid)")

    # ------------------------------------------------------------------ training
    def fit(self, labels: np.ndarray, flux: np.ndarray, ivar: np.ndarray) -> "SlamEmulator":
        """Train on labels (M, L), flux (M, P), ivar (M, P); ivar 0 excludes a star from a pixel."""
        labels, flux, ivar = check_training_data(labels, flux, ivar)
        m, p = flux.shape
        if m < self.n_folds:
            raise DataError(f"slam: {m} training stars is fewer than n_folds={self.n_folds}")
        good = ivar > 0
        self.fit_standardizers(labels, flux, good, min_count=self.n_folds, ivar=ivar)
        X = self.label_scaler_.transform(labels)
        Y = np.where(good, self.flux_scaler_.transform(flux), 0.0)
        from sklearn.model_selection import KFold      # imported here: inference never needs scikit-learn
        folds = list(KFold(self.n_folds, shuffle=self.shuffle_folds,
                           random_state=self.random_state if self.shuffle_folds else None).split(X))
        blocks = chunks(p, self.pixels_per_task)
        log.info("slam: training %d pixels x %d stars, grid %d C x %d gamma, %d folds",
                 p, m, len(self.C), len(self.gamma), self.n_folds)
        store = self._block_store(X, Y, good)
        done = {}
        if store is not None:
            done = {i: r for i in range(len(blocks))
                    if (r := store.load(i, lambda a, w=blocks[i][1] - blocks[i][0]: _block_problem(a, w))) is not None}
        todo = [i for i in range(len(blocks)) if i not in done]
        if done:
            log.info("slam: reusing %d of %d finished pixel blocks from %s", len(done), len(blocks), self.workdir)

        def save(k: int, result: dict[str, np.ndarray]) -> None:
            if store is not None:
                store.save(todo[k], result)

        # one RBF matrix per gamma, computed once and shared by every pixel and fold
        kernels = [np.exp(-g * sq_dist(X, X)) for g in self.gamma] if m <= self.max_kernel_stars else None
        solver = self.solver
        if solver == "smo" and _smo_module() is None:
            log.warning("slam: solver 'smo' needs numba (pip install slamfw[fast]); using LIBSVM")
            solver = "libsvm"
        fresh = current_executor().map(
            _fit_pixel_block, [(Y[:, blocks[i][0]:blocks[i][1]], good[:, blocks[i][0]:blocks[i][1]]) for i in todo],
            desc="slam: training pixels", unit="blocks", on_result=save,
            shared=dict(X=X, kernels=kernels, gammas=list(self.gamma), Cs=list(self.C), epsilon=self.epsilon,
                        tol=self.tol, folds=folds, max_iter=self.max_iter, solver=solver,
                        prune=self.prune_grid))
        done.update(zip(todo, fresh))
        results = [done[i] for i in range(len(blocks))]
        cat = {k: np.concatenate([r[k] for r in results]) for k in results[0]}
        self.X_train_ = X
        self.dual_coef_ = cat["dual"]
        self.intercept_ = cat["intercept"]
        self.gamma_ = cat["gamma"]
        self.C_ = cat["C"]
        self.cv_mse_grid_ = cat["cv_mse"]
        self.cv_md_grid_ = cat["cv_md"]
        self.mse_ = cat["mse"]
        self.md_ = cat["md"]
        self.n_support_ = cat["n_support"]
        self.rebuild()
        log.info("slam: median CV MSE %.4f, median final MSE %.4f (standardised units)",
                 np.median(self.cv_mse_), np.median(self.mse_))
        return self

    def _block_store(self, X: np.ndarray, Y: np.ndarray, good: np.ndarray) -> ChunkStore | None:
        """Finished pixel blocks under ``workdir``, keyed by the data and the parameters."""
        if not self.workdir:
            return None
        h = hashlib.sha256()
        for arr in (X, Y, good):
            h.update(np.ascontiguousarray(arr).tobytes())
        params = self.get_params()
        if params.get("solver") == "libsvm":   # blocks saved before the solver parameter existed stay valid
            params.pop("solver")
        if params.get("prune_grid") is False:  # ... and those saved before prune_grid (whole grids)
            params.pop("prune_grid")
        h.update(json.dumps(params, sort_keys=True).encode())
        return ChunkStore(Path(self.workdir) / f"slam-{h.hexdigest()[:16]}", prefix="block")

    def rebuild(self) -> None:
        """Derived attributes (also after loading)."""
        p = self.dual_coef_.shape[0]
        m = self.X_train_.shape[0]
        if self.dual_coef_.ndim != 2 or self.dual_coef_.shape[1] != m:
            raise DataError(f"slam: dual_coef {self.dual_coef_.shape} needs one column per training star ({m} "
                            f"in X_train)")
        for name in ("intercept_", "gamma_", "C_", "mse_", "md_", "n_support_"):
            if getattr(self, name).shape != (p,):
                raise DataError(f"slam: {name.rstrip('_')} {getattr(self, name).shape} needs one value per pixel ({p})")
        for name, ok, rule, where in (
                ("gamma", np.isfinite(self.gamma_) & (self.gamma_ > 0), "finite and positive", "pixel"),
                ("C", np.isfinite(self.C_) & (self.C_ > 0), "finite and positive", "pixel"),
                ("intercept", np.isfinite(self.intercept_), "finite", "pixel"),
                ("dual_coef", np.all(np.isfinite(self.dual_coef_), axis=1), "finite", "pixel"),
                ("X_train", np.all(np.isfinite(self.X_train_), axis=1), "finite", "training star")):
            require(ok, f"slam: {name} is not {rule}", where)
        n_c = len(self.C)
        for name in ("cv_mse_grid_", "cv_md_grid_"):
            if np.shape(getattr(self, name)) != (p, len(self.gamma), n_c):
                raise DataError(f"slam: {name.rstrip('_')} {np.shape(getattr(self, name))} needs one value per pixel, "
                                f"gamma and C of the grid ({p}, {len(self.gamma)}, {n_c})")
        grid_mse = self.cv_mse_grid_.reshape(p, -1)
        for name, chosen, grid in (("gamma", self.gamma_, self.gamma), ("C", self.C_, self.C)):
            off = ~np.isin(chosen, grid)           # its CV MSE (the model error) would be another point's
            if off.any():
                j = int(np.flatnonzero(off)[0])
                raise DataError(f"slam: {name} at pixel {j} ({float(chosen[j])!r}) is not a point of the grid "
                                f"{grid} ({int(off.sum())} such pixel(s))")
        gi = np.array([self.gamma.index(g) for g in self.gamma_])
        ci = np.array([self.C.index(c) for c in self.C_])
        flat = gi * n_c + ci
        self.cv_mse_ = grid_mse[np.arange(p), flat]
        self.cv_md_ = self.cv_md_grid_.reshape(p, -1)[np.arange(p), flat]
        # the CV MSE gives the model error: NaN in the grid is a point prune_grid skipped, never the chosen one
        for what, ok in (("at the chosen (gamma, C)", np.isfinite(self.cv_mse_) & (self.cv_mse_ >= 0)),
                         ("in the grid", np.all(np.isnan(grid_mse) | (np.isfinite(grid_mse) & (grid_mse >= 0)),
                                                axis=1))):
            require(ok, f"slam: cv_mse_grid is not finite and not negative {what}")
        self.cv_scheme_ = f"{self.n_folds}-fold"
        self.n_labels_ = self.X_train_.shape[1]
        self.n_pixels_ = p
        self.model_error_ = self.model_error_from_cv(self.cv_mse_)
        self._rbf = RBFExpansion(self.X_train_, self.dual_coef_, self.intercept_, self.gamma_)

    # ------------------------------------------------------------------ state
    STATE_ARRAYS = ("X_train_", "dual_coef_", "intercept_", "gamma_", "C_", "cv_mse_grid_", "cv_md_grid_", "mse_",
                    "md_", "n_support_")
    STATE_KIND = "slam-svr"

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray], metadata: dict[str, Any]) -> "SlamEmulator":
        arrays = dict(arrays)
        for legacy in ("cv_mse", "cv_md"):  # slamfw 0.1.0 stored the grids under these names
            if legacy in arrays and f"{legacy}_grid" not in arrays:
                arrays[f"{legacy}_grid"] = arrays.pop(legacy)
        return super().from_state(arrays, metadata)


@hookimpl
def slamfw_register_emulators(register):
    register("slam", SlamEmulator)
