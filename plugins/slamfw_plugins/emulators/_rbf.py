"""RBF kernel expansions shared by the kernel emulators (``slam``, ``krr``).

Both models are, per pixel j, ``f_j(z) = sum_i dual[j, i] exp(-gamma_j |z - x_i|^2) + intercept_j``
over standardised training labels ``x_i``. Pixels that share a gamma share the kernel row, so
evaluation is one matrix product per gamma.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from math import prod
from typing import Any

import numpy as np

from .._jit import Kernel


def sq_dist(a: np.ndarray, b: np.ndarray, xp: Any = np, out: np.ndarray | None = None) -> np.ndarray:
    """Squared Euclidean distances (K, M) between rows of a (K, L) and b (M, L) (arrays of the
    array module ``xp``: numpy, or CuPy), written into ``out`` (K, M) when given."""
    d = xp.matmul(a, b.T, out=out)   # built in place: one (K, M) array, no temporaries
    d *= -2.0
    d += (a * a).sum(1)[:, None]
    d += (b * b).sum(1)[None, :]
    return xp.maximum(d, 0.0, out=d)


#: Largest work array (bytes) that an expansion keeps between evaluations, per thread
#: (:class:`_Scratch`); a bigger one is allocated for the call and freed after it. A block of at
#: most 1023 rows (:data:`ROW_BLOCK`) by 8000 centres fits.
SCRATCH_BYTES = 64 * 2 ** 20


class _Scratch(threading.local):
    """The work arrays of an expansion's evaluations in one thread (the squared distances, the
    kernel matrix, the matrix product), kept between calls and grown to the largest seen, so that
    a batched fit's evaluations write into memory already mapped instead of asking the allocator
    for tens of megabytes each time (fresh pages cost a page fault each). Views of them never
    leave the expansion's methods. They live as long as the expansion (the emulator) and its
    thread: one array per distinct set of centres, the kernel matrix and the product, each at
    most :data:`SCRATCH_BYTES` (case (a)'s model, 1000 centres: 8 MB each at 1023 rows)."""

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}

    def take(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """An uninitialised C-contiguous float64 array of ``shape``: a view of the kept array
        ``name`` (grown if too small), or a new array if it would exceed :data:`SCRATCH_BYTES`."""
        n = prod(shape)
        if 8 * n > SCRATCH_BYTES:
            return np.empty(shape)
        buf = self.arrays.get(name)
        if buf is None or buf.size < n:
            self.arrays[name] = buf = np.empty(n)
        return buf[:n].reshape(shape)


def _scratch_for(xp: Any) -> _Scratch | None:
    """An expansion's work arrays on the array module ``xp``: :class:`_Scratch` on numpy, None on
    another (CuPy allocates from its own pool)."""
    return _Scratch() if xp is np else None


#: Rows of labels per pass of :meth:`RBFExpansion.least_squares_terms` (the batch split into
#: ``K // ROW_BLOCK`` near-equal blocks): each block's work arrays stay in cache between the
#: kernel matrix, its product and the compiled sums, and a block is still tall enough for the
#: matrix product's full rate. Measured on case (a)'s batched fit of 2000 spectra x 3 starts,
#: one thread: 512 took 3.0 s against 3.5 s in one pass (1024: 3.15 s, 256: 3.1 s). The terms
#: equal one pass's to rounding: BLAS may compute a shorter block's distances (an inner dimension
#: of L) by another kernel, which can round an entry differently in its last bit (on a random
#: 300-centre expansion, a few of 1100 rows); on case (a)'s fit, labels, costs and evaluations
#: were identical to one pass's.
ROW_BLOCK = 512

#: Largest stacked coefficient matrix (bytes, per gamma group) that ``value_and_gradient`` keeps;
#: beyond it, the value and each label's derivative are separate products of the same kernel.
STACKED_BYTES = 256 * 2 ** 20


@dataclass
class _Group:
    gamma: float
    pixels: np.ndarray   # (p,) pixel indices
    centres: np.ndarray  # (S, L) training labels with a non-zero coefficient in any of these pixels
    dual: np.ndarray     # (S, p)
    stacked: np.ndarray | None = None   # (S, (L + 1) p): [dual, x_1 * dual, ..., x_L * dual], built on first use
    single: np.ndarray | None = None    # (S, L p): the stacked columns of the labels in single precision, on first use

    def stacked_dual(self) -> np.ndarray | None:
        """The coefficients of the value and of each label's kernel-weighted sum side by side, so
        that one matrix product gives ``K @ dual`` and every ``(K * x_l) @ dual``; None if too big."""
        if self.stacked is None:
            n_lab = self.centres.shape[1]
            if self.dual.nbytes * (n_lab + 1) > STACKED_BYTES:
                return None
            self.stacked = np.ascontiguousarray(np.concatenate(
                [self.dual] + [self.centres[:, l_, None] * self.dual for l_ in range(n_lab)], axis=1))
        return self.stacked

    def stacked_single(self) -> np.ndarray | None:
        """The label columns of :meth:`stacked_dual` (every ``x_l * dual``), in float32, built
        label by label (not from the float64 stack, which may be too big where this is not); None
        if this too is bigger than :data:`STACKED_BYTES`."""
        if self.single is None:
            s, p = self.dual.shape
            n_lab = self.centres.shape[1]
            if 4 * s * p * n_lab > STACKED_BYTES:
                return None
            single = np.empty((s, n_lab * p), np.float32)
            for l_ in range(n_lab):
                single[:, l_ * p:(l_ + 1) * p] = self.centres[:, l_, None] * self.dual
            self.single = single
        return self.single


def _least_squares_terms_py(kd_all, kx_all, pixels, gamma, z, intercept, fs, fm, inv_ls, w, wf, cost, grad, jtj,
                            model):
    """Add one gamma group's pixels to the least-squares terms of K rows (compiled by numba;
    the caller checks the shapes: numba does not check bounds).

    kd_all (K, >= p): ``K @ dual`` in its first p columns, kx_all (K, >= L p): each ``(K * x_l) @
    dual`` side by side in its last L p columns (float64, or float32: the derivatives' products in
    single precision; C-contiguous, for the simplest indexing: both may be the one (K, (L + 1) p)
    product), for the group's pixels (p,) (int, in [0, P)); z (K, L) standardised labels;
    intercept, fs, fm (P,) the expansion's intercept and the flux scaler's scale and mean; inv_ls
    (L,) 1 / the label scaler's scale; w, wf (K, P) weights and weighted flux. Per row b and pixel
    q, with the model ``m = (kd + intercept) fs + fm``, the residual ``r = wf - w m`` and its
    derivative by the physical label l, ``J_l = 2 gamma w fs (z_l kd - kx_l) / ls_l``, it adds
    ``r^2 / 2`` to cost (K,), ``J_l r`` to grad (K, L) and ``J_l J_m`` to jtj (K, L, L), upper
    triangle only; ``model`` (K, P), unless it has no rows: m is written there. Each row's sums
    run over the pixels in increasing order, one rounding per operation, no fused or reordered
    arithmetic (the per-pixel constants are gathered once per call into (p,) arrays and, for
    L = 3, a row's sums kept in locals: speed only, the same bits)."""
    n_rows, n_lab = z.shape
    p = pixels.size
    keep = model.shape[0] > 0
    kx0 = kx_all.shape[1] - n_lab * p          # kx of label l, pixel j: kx_all[b, kx0 + l p + j]
    icp, fsp, fmp, m_row = np.empty(p), np.empty(p), np.empty(p), np.empty(p)
    for j in range(p):
        q = pixels[j]
        icp[j], fsp[j], fmp[j] = intercept[q], fs[q], fm[q]
    two_g = 2.0 * gamma
    jl = np.empty(n_lab)
    for b in range(n_rows):
        for j in range(p):
            m_row[j] = (kd_all[b, j] + icp[j]) * fsp[j] + fmp[j]
        if keep:
            for j in range(p):
                model[b, pixels[j]] = m_row[j]
        c = 0.0
        if n_lab == 3:
            z0, z1, z2, i0, i1, i2 = z[b, 0], z[b, 1], z[b, 2], inv_ls[0], inv_ls[1], inv_ls[2]
            g0, g1, g2 = grad[b, 0], grad[b, 1], grad[b, 2]
            a00, a01, a02 = jtj[b, 0, 0], jtj[b, 0, 1], jtj[b, 0, 2]
            a11, a12, a22 = jtj[b, 1, 1], jtj[b, 1, 2], jtj[b, 2, 2]
            for j in range(p):
                q = pixels[j]
                wq = w[b, q]
                if wq == 0.0:          # then wf is 0 too: no residual, no derivative
                    continue
                r = wf[b, q] - wq * m_row[j]
                f = two_g * wq * fsp[j]
                kd = kd_all[b, j]
                j0 = f * (z0 * kd - kx_all[b, kx0 + j]) * i0
                j1 = f * (z1 * kd - kx_all[b, kx0 + p + j]) * i1
                j2 = f * (z2 * kd - kx_all[b, kx0 + 2 * p + j]) * i2
                c += r * r
                g0 += j0 * r
                g1 += j1 * r
                g2 += j2 * r
                a00 += j0 * j0
                a01 += j0 * j1
                a02 += j0 * j2
                a11 += j1 * j1
                a12 += j1 * j2
                a22 += j2 * j2
            grad[b, 0], grad[b, 1], grad[b, 2] = g0, g1, g2
            jtj[b, 0, 0], jtj[b, 0, 1], jtj[b, 0, 2] = a00, a01, a02
            jtj[b, 1, 1], jtj[b, 1, 2], jtj[b, 2, 2] = a11, a12, a22
        else:
            for j in range(p):
                q = pixels[j]
                wq = w[b, q]
                if wq == 0.0:
                    continue
                r = wf[b, q] - wq * m_row[j]
                c += r * r
                f = two_g * wq * fsp[j]
                kd = kd_all[b, j]
                for l_ in range(n_lab):
                    jl[l_] = f * (z[b, l_] * kd - kx_all[b, kx0 + l_ * p + j]) * inv_ls[l_]
                for l_ in range(n_lab):
                    grad[b, l_] += jl[l_] * r
                    for m_ in range(l_, n_lab):
                        jtj[b, l_, m_] += jl[l_] * jl[m_]
        cost[b] += 0.5 * c


#: The compiled :func:`_least_squares_terms_py` (numba, on first use); without it the terms come
#: from the (K, P, L) jacobian with numpy.
LSQ_KERNEL = Kernel(_least_squares_terms_py, "RBF least-squares terms", "computing them from the jacobian with numpy")


class RBFExpansion:
    """Evaluates the expansion and its gradient for (K, L) standardised labels.

    Parameters
    ----------
    X : (M, L) standardised training labels
    dual : (P, M) coefficients (0 where a star does not contribute to a pixel)
    intercept : (P,)
    gamma : (P,) RBF width of each pixel
    """

    def __init__(self, X: np.ndarray, dual: np.ndarray, intercept: np.ndarray, gamma: np.ndarray) -> None:
        self.n_pixels, self.n_labels = dual.shape[0], X.shape[1]
        self.intercept = intercept
        self.xp: Any = np                            # the array module of the arrays below
        self._devices: dict[str, RBFExpansion] = {}
        self._scratch = _scratch_for(np)
        self.groups = []
        centres: dict[bytes, np.ndarray] = {}      # groups with the same centres share one array
        for g in np.unique(gamma):
            pix = np.flatnonzero(gamma == g)
            rows = np.flatnonzero(np.any(dual[pix] != 0, axis=0))
            key = rows.tobytes()
            if key not in centres:
                centres[key] = np.ascontiguousarray(X[rows])
            self.groups.append(_Group(float(g), pix, centres[key], np.ascontiguousarray(dual[pix][:, rows].T)))

    def to(self, xp: Any) -> "RBFExpansion":
        """This expansion with its arrays on the array module ``xp`` (CuPy: the GPU), made once
        and kept; ``xp`` numpy gives itself."""
        if xp is self.xp:
            return self
        name = xp.__name__
        if name not in self._devices:
            dev = object.__new__(RBFExpansion)
            dev.n_pixels, dev.n_labels, dev.xp, dev._devices = self.n_pixels, self.n_labels, xp, {}
            dev._scratch = _scratch_for(xp)
            dev.intercept = xp.asarray(self.intercept)
            moved: dict[int, Any] = {}
            dev.groups = []
            for grp in self.groups:
                if id(grp.centres) not in moved:
                    moved[id(grp.centres)] = xp.asarray(grp.centres)
                stacked = grp.stacked_dual()
                dev.groups.append(replace(grp, pixels=xp.asarray(grp.pixels), centres=moved[id(grp.centres)],
                                          dual=xp.asarray(grp.dual),
                                          stacked=None if stacked is None else xp.asarray(stacked), single=None))
            self._devices[name] = dev
        return self._devices[name]

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_devices"] = {}                      # device copies stay in their process
        state["_scratch"] = None                    # work arrays too: made again on arrival
        state["xp"] = self.xp.__name__              # a module does not pickle: its name does
        if self.xp is np:                           # the stacked coefficients are rebuilt where needed
            state["groups"] = [replace(grp, stacked=None, single=None) for grp in self.groups]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        import importlib
        state["xp"] = importlib.import_module(state["xp"])
        state["_scratch"] = _scratch_for(state["xp"])
        self.__dict__.update(state)

    def _work(self, name: str, shape: tuple[int, ...]) -> np.ndarray | None:
        """A work array (:class:`_Scratch`) on numpy; None on another array module (allocate)."""
        return None if self._scratch is None else self._scratch.take(name, shape)

    def _kernels(self, z: np.ndarray):
        """(group, its kernel matrix (K, S) at z (K, L)) for each gamma group; the squared
        distances computed once per distinct set of centres."""
        dist: dict[int, np.ndarray] = {}
        k = z.shape[0]
        for grp in self.groups:
            s = grp.centres.shape[0]
            d2 = dist.get(id(grp.centres))
            if d2 is None:
                d2 = dist[id(grp.centres)] = sq_dist(z, grp.centres, self.xp, self._work(f"d2-{len(dist)}", (k, s)))
            kz = self.xp.multiply(d2, -grp.gamma, out=self._work("kz", (k, s)))
            yield grp, self.xp.exp(kz, out=kz)      # in place, into the one work array: use it before the next

    def value(self, z: np.ndarray) -> np.ndarray:
        """(K, P) expansion at z (K, L)."""
        out = self.xp.empty((z.shape[0], self.n_pixels))
        for grp, kz in self._kernels(z):
            out[:, grp.pixels] = kz @ grp.dual + self.intercept[grp.pixels]
        return out

    def gradient(self, z: np.ndarray) -> np.ndarray:
        """(K, P, L) derivative of the expansion with respect to z."""
        return self.value_and_gradient(z)[1]

    def value_and_gradient(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(K, P) expansion and (K, P, L) its derivative at z (K, L), sharing the kernel matrix:
        per gamma group, ``K @ dual`` and, per label l, ``d/dz_l = -2 gamma (z_l (K @ dual) -
        (K * x_l) @ dual)``, all from one matrix product of (K, S) by (S, (L + 1) p). The
        derivative is a (K, P, L) view of a C-contiguous (K, L, P) array (pixels last), the layout
        a sum over pixels wants."""
        k, n_lab = z.shape[0], self.n_labels
        val = self.xp.empty((k, self.n_pixels))
        jac = self.xp.empty((k, n_lab, self.n_pixels))
        for grp, kz in self._kernels(z):                                # kz (K, S)
            stacked = grp.stacked_dual()
            p = grp.pixels.size
            if stacked is not None:
                out = self.xp.matmul(kz, stacked, out=self._work("product", (k, stacked.shape[1])))  # (K, (L+1) p)
                kd = out[:, :p]
                kx = [out[:, (l_ + 1) * p:(l_ + 2) * p] for l_ in range(n_lab)]
            else:
                kd = kz @ grp.dual
                kx = [(kz * grp.centres[:, l_][None, :]) @ grp.dual for l_ in range(n_lab)]
            val[:, grp.pixels] = kd + self.intercept[grp.pixels]
            for l_ in range(n_lab):
                jac[:, l_, grp.pixels] = -2.0 * grp.gamma * (z[:, l_, None] * kd - kx[l_])
        return val, jac.transpose(0, 2, 1)

    def least_squares_terms(self, z: np.ndarray, w: np.ndarray, wf: np.ndarray, flux_scale: np.ndarray,
                            flux_mean: np.ndarray, inv_label_scale: np.ndarray, single: bool = False,
                            model: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """The weighted least-squares terms at standardised labels z (K, L), in one pass over
        each gamma group's matrix product, without the (K, P, L) jacobian: with the physical model
        ``m = value(z) * flux_scale + flux_mean`` (P,) each, the residuals ``r = wf - w m`` (w, wf
        (K, P), wf 0 where w is 0) and their derivatives J (K, P, L) by the physical labels
        (``inv_label_scale`` (L,): dz/dlabel), returns the cost ``sum_p r^2 / 2`` (K,), ``J^T r``
        (K, L) and ``J^T J`` (K, L, L). ``single``: the products that give the derivatives,
        ``(K * x_l) @ dual``, in single precision (float32 kernel matrix and coefficients: about
        twice the rate of double's), the model and the cost still in double (``K @ dual``).
        ``model`` (K, P) float64 C-contiguous, when given: filled with the physical model m. None
        where it cannot (numba missing or unusable, another array module, a group too big to
        stack): the caller then uses the jacobian."""
        kernel = LSQ_KERNEL.get() if self.xp is np else None
        if kernel is None or any((grp.stacked_single() if single else grp.stacked_dual()) is None
                                 for grp in self.groups):
            return None
        k, n_lab = z.shape
        pixels = (self.n_pixels,)
        if (z.shape != (k, self.n_labels) or w.shape != (k, self.n_pixels) or wf.shape != w.shape
                or inv_label_scale.shape != (n_lab,) or flux_scale.shape != pixels or flux_mean.shape != pixels
                or self.intercept.shape != pixels):
            raise ValueError(f"least_squares_terms: z {z.shape}, w {w.shape} and wf {wf.shape} must be ({k}, "
                             f"{self.n_labels}) and ({k}, {self.n_pixels}), inv_label_scale {inv_label_scale.shape} "
                             f"({self.n_labels},), flux_scale {flux_scale.shape} and flux_mean {flux_mean.shape} "
                             f"({self.n_pixels},)")
        z, w, wf = (np.ascontiguousarray(a, dtype=float) for a in (z, w, wf))
        if model is None:
            model = np.empty((0, self.n_pixels))
        elif (model.shape != w.shape or model.dtype != np.float64 or not model.flags.c_contiguous
              or not model.flags.writeable):
            raise ValueError(f"least_squares_terms: model must be a writeable C-contiguous float64 array of shape "
                             f"{w.shape}; got {model.dtype} {model.shape}")
        cost, grad, jtj = np.zeros(k), np.zeros((k, n_lab)), np.zeros((k, n_lab, n_lab))
        n_blocks = max(1, k // ROW_BLOCK)
        for i in range(n_blocks):
            a, b = i * k // n_blocks, (i + 1) * k // n_blocks
            rows = slice(a, b)
            for grp, kz in self._kernels(z[rows]):
                if single:
                    kd, kx = kz @ grp.dual, kz.astype(np.float32) @ grp.stacked_single()
                else:
                    stacked = grp.stacked_dual()              # C-contiguous: the product's columns p: are kx
                    kd = kx = np.matmul(kz, stacked, out=self._work("product", (b - a, stacked.shape[1])))
                try:
                    kernel(kd, kx, grp.pixels, grp.gamma, z[rows], self.intercept, flux_scale, flux_mean,
                           inv_label_scale, w[rows], wf[rows], cost[rows], grad[rows], jtj[rows],
                           model[rows] if model.shape[0] else model)
                except Exception as exc:   # numba that imports but cannot compile here
                    LSQ_KERNEL.failed(exc)
                    return None
        upper = np.triu_indices(n_lab, 1)
        jtj[:, upper[1], upper[0]] = jtj[:, upper[0], upper[1]]
        return cost, grad, jtj

    @property
    def flops_per_evaluation(self) -> float:
        """Floating-point operations of :meth:`value_and_gradient` per row of labels (the matrix
        products and the kernel matrix; exp counted as one)."""
        total = 0.0
        for c in {id(grp.centres): grp.centres for grp in self.groups}.values():
            total += c.shape[0] * (2 * self.n_labels + 3)        # squared distances
        for grp in self.groups:
            s, p = grp.centres.shape[0], grp.dual.shape[1]
            total += 2 * s + 2 * s * (self.n_labels + 1) * p + 3 * self.n_labels * p
        return total


class RBFPrediction:
    """``predict`` and analytic ``jacobian`` for emulators keeping an :class:`RBFExpansion` in ``_rbf``
    over standardised labels and flux."""

    #: Whether ``least_squares_terms(..., jacobian_precision="single")`` computes the derivatives'
    #: products in float32 (else it computes in double). Off here: a ridge regression's dual
    #: coefficients (``krr``) are large and cancel, and float32 then rounds J^T J by up to 4e-4 of
    #: its largest entry (measured at ``alpha`` 1e-6); ``slam``'s, bounded by C, turn it on.
    single_precision_jacobian: bool = False

    def predict(self, labels: np.ndarray) -> np.ndarray:
        """Normalised flux (K, P) at labels (K, L) in physical units."""
        theta = self._check_labels(labels)
        return self.flux_scaler_.inverse_transform(self._rbf.value(self.label_scaler_.transform(theta)))

    def jacobian(self, labels: np.ndarray) -> np.ndarray:
        """Analytic d flux / d label (K, P, L) in physical units."""
        theta = self._check_labels(labels)
        jac = self._rbf.gradient(self.label_scaler_.transform(theta))
        return jac * self.flux_scaler_.scale_[None, :, None] / self.label_scaler_.scale_[None, None, :]

    def predict_and_jacobian(self, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`predict` and :meth:`jacobian` together, from one kernel matrix per gamma group."""
        theta = self._check_labels(labels)
        val, jac = self._rbf.value_and_gradient(self.label_scaler_.transform(theta))
        return (self.flux_scaler_.inverse_transform(val),
                jac * self.flux_scaler_.scale_[None, :, None] / self.label_scaler_.scale_[None, None, :])

    def least_squares_terms(self, labels: np.ndarray, weights: np.ndarray, weighted_flux: np.ndarray, *,
                            jacobian_precision: str = "double", model_out: np.ndarray | None = None
                            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`slamfw.Emulator.least_squares_terms`, in one compiled pass over each gamma
        group's matrix product (:meth:`RBFExpansion.least_squares_terms`) where numba is
        installed, else (or for a subclass that overrides :meth:`predict` or
        :meth:`predict_and_jacobian`) from :meth:`predict_and_jacobian`, in double.
        ``jacobian_precision`` "single": the derivatives' products in float32, where the class's
        :attr:`single_precision_jacobian` allows it (``slam``), else in double. ``model_out``
        (K, P): filled with the model, as :meth:`slamfw.Emulator.least_squares_terms` says."""
        theta, w, wf = self._check_least_squares(labels, weights, weighted_flux, jacobian_precision)
        single = jacobian_precision == "single" and self.single_precision_jacobian
        if (type(self).predict is not RBFPrediction.predict
                or type(self).predict_and_jacobian is not RBFPrediction.predict_and_jacobian):
            # a subclass's own model: through it
            return super().least_squares_terms(theta, w, wf, model_out=model_out)
        model = None
        if model_out is not None:
            model = model_out if model_out.flags.c_contiguous and model_out.dtype == np.float64 else np.empty(w.shape)
        terms = self._rbf.least_squares_terms(
            self.label_scaler_.transform(theta), w, wf,
            np.asarray(self.flux_scaler_.scale_, float), np.asarray(self.flux_scaler_.mean_, float),
            1.0 / np.asarray(self.label_scaler_.scale_, float), single=single, model=model)
        if terms is None:
            return super().least_squares_terms(theta, w, wf, model_out=model_out)
        if model is not None and model is not model_out:
            model_out[...] = model
        return terms

    def on_device(self, xp: Any):
        """:meth:`predict_and_jacobian` on the array module ``xp`` (CuPy: the GPU): labels (K, L)
        an ``xp`` array, unchecked (the batched least squares' own rows)."""
        rbf = self._rbf.to(xp)
        lm, ls = xp.asarray(self.label_scaler_.mean_), xp.asarray(self.label_scaler_.scale_)
        fm, fs = xp.asarray(self.flux_scaler_.mean_), xp.asarray(self.flux_scaler_.scale_)

        def evaluate(labels):
            val, jac = rbf.value_and_gradient((labels - lm) / ls)
            return val * fs + fm, jac * fs[None, :, None] / ls[None, None, :]
        return evaluate

    @property
    def flops_per_evaluation(self) -> float:
        """Floating-point operations of :meth:`predict_and_jacobian` per row of labels."""
        return self._rbf.flops_per_evaluation
