"""The Emulator contract: labels in, normalised flux out."""
from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ..errors import DataError, NotFittedError
from .base import Component


#: What ``Emulator.least_squares_terms``' ``jacobian_precision`` may be.
JACOBIAN_PRECISIONS = ("double", "single")


def check_jacobian_precision(value: str, where: str) -> None:
    """A ValueError naming ``where`` unless ``value`` is one of :data:`JACOBIAN_PRECISIONS`."""
    if value not in JACOBIAN_PRECISIONS:
        raise ValueError(f"{where}: jacobian_precision must be one of {JACOBIAN_PRECISIONS}, got {value!r}")


class Emulator(Component):
    """Labels in, normalised flux out: the generative model of the spectra.

    Contract
    --------
    - ``fit(labels (M, L), flux (M, P), ivar (M, P)) -> self`` (ivar 0 marks a bad pixel)
    - ``predict(labels (K, L)) -> flux (K, P)``, vectorised over K
    - ``jacobian(labels (K, L)) -> (K, P, L)``: d flux / d label in physical units; this base
      class gives a central finite-difference fallback
    - ``model_error_ (P,)``: per-pixel model scatter in flux units (finite, > 0), used in the
      likelihood
    - ``to_state() -> (arrays, metadata)`` and ``from_state(arrays, metadata)`` for safe saving;
      ``from_state`` finds the constructor parameters in ``metadata["params"]``
    - ``random_state``: emulators that draw random numbers take it as a parameter, and equal
      parameters on equal data give identical models
    - optional, for method comparison (paper Fig. 2): ``cv_mse_`` and ``cv_md_`` (P,), the
      cross-validated mean squared and mean difference (predicted - true) of each pixel in
      standardised flux units (eq. 5-6), and ``cv_scheme_`` (e.g. ``"5-fold"``) saying how they
      were measured. Emulators without them are cross-validated by ``slamfw compare`` itself.
    - ``least_squares_terms(labels, weights, weighted_flux, *, jacobian_precision="double",
      model_out=None)``: the cost, ``J^T r`` and ``J^T J`` of a weighted least-squares step,
      which the batched least squares calls; this base class computes them from ``predict_and_jacobian``. With
      ``jacobian_precision="single"`` an emulator may compute J (not the cost) in single
      precision, where that is faster (``slam`` does); this base ignores it (plugin API
      1.5: the batched least squares passes the keyword only to a method that declares it);
      ``model_out``, where the method declares it (plugin API 1.8), a (K, P) array it fills
      with the model flux the terms come from
    - optional: ``on_device(xp)``, an evaluator of flux and jacobian on another array module
      (CuPy: the GPU), for the batched least squares' ``device = "cuda"``
    - optional: ``label_scale_`` (L,), a typical scale of each label (the training set's
      standard deviation, say); the finite-difference jacobian steps by ``fd_step`` times it.

    Fitted attributes end in ``_``; ``n_labels_`` and ``n_pixels_`` are always set by ``fit``.
    ``slamfw.testing.check_emulator`` checks this contract.
    """

    #: Relative finite-difference step of the fallback jacobian (times ``label_scale_``, or
    #: times max(|label|, 1) for emulators without it).
    fd_step: ClassVar[float] = 1e-3
    #: A directory the pipeline lends for resumable training (None: keep nothing). Emulators whose
    #: training is long may save finished pieces there and reuse them when ``fit`` is rerun on
    #: the same data and parameters; it is not a parameter and is never saved with the model.
    workdir: Any = None

    def fit(self, labels: np.ndarray, flux: np.ndarray, ivar: np.ndarray) -> "Emulator":
        raise NotImplementedError

    def predict(self, labels: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def jacobian(self, labels: np.ndarray) -> np.ndarray:
        """(K, P, L) derivatives by central differences (override with an analytic one)."""
        theta = self._check_labels(labels)
        k, n_lab = theta.shape
        scale = getattr(self, "label_scale_", None)
        if scale is None:
            scale = np.maximum(np.abs(theta).max(axis=0), 1.0)
        jac = np.empty((k, self.n_pixels_, n_lab))
        for l_ in range(n_lab):
            h = self.fd_step * scale[l_]
            up, dn = theta.copy(), theta.copy()
            up[:, l_] += h
            dn[:, l_] -= h
            jac[:, :, l_] = (self.predict(up) - self.predict(dn)) / (2 * h)
        return jac

    def predict_and_jacobian(self, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Flux (K, P) and d flux / d label (K, P, L) at labels (K, L), together: what each step of
        the batched least squares needs. Override when the two share work (a kernel matrix)."""
        return self.predict(labels), self.jacobian(labels)

    def least_squares_terms(self, labels: np.ndarray, weights: np.ndarray, weighted_flux: np.ndarray, *,
                            jacobian_precision: str = "double", model_out: np.ndarray | None = None
                            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The terms of a weighted least-squares step at labels (K, L), physical units: with the
        residuals ``r = weighted_flux - weights * predict(labels)`` (K, P) (``weighted_flux``
        is 0 where ``weights`` is) and their derivatives ``J = dr/dlabels`` (K, P, L), returns
        the cost ``sum_p r^2 / 2`` (K,), ``J^T r`` (K, L) and ``J^T J`` (K, L, L): what each step
        of the batched least squares needs. This default computes them from
        :meth:`predict_and_jacobian`; an emulator may compute them without building the
        (K, P, L) jacobian (the kernel emulators do), equal to rounding
        (``slamfw.testing.check_emulator`` checks it). ``jacobian_precision``: "double", or
        "single", which allows an emulator to compute J's products in float32 (the cost stays in
        double); this default computes everything in double either way. ``model_out`` (K, P)
        float64, when given, is filled with the model ``predict(labels)`` the terms were computed
        from (plugin API 1.8: the batched least squares then keeps each row's model at its
        solution, instead of evaluating the emulator there again; it passes the keyword only to
        a method that declares it)."""
        theta, w, wf = self._check_least_squares(labels, weights, weighted_flux, jacobian_precision)
        model, jac = self.predict_and_jacobian(theta)
        if model_out is not None:
            model_out[...] = model
        r = wf - w * model
        jt = np.multiply(jac.transpose(0, 2, 1), -w[:, None, :])            # (K, L, P)
        return (0.5 * np.einsum("kp,kp->k", r, r), np.matmul(jt, r[:, :, None])[:, :, 0],
                np.matmul(jt, jt.transpose(0, 2, 1)))

    def on_device(self, xp: Any) -> Any:
        """An evaluator on the array module ``xp`` (numpy, or CuPy for a GPU): a function of
        labels (K, L), an ``xp`` array in physical units, returning ``xp`` arrays flux (K, P) and
        d flux / d label (K, P, L), as :meth:`predict_and_jacobian`; the model's arrays are copied
        to the device once. None (this default): the emulator cannot run there, and the batched
        least squares refuses ``device = "cuda"`` for it."""
        return None

    def to_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        raise NotImplementedError

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray], metadata: dict[str, Any]) -> "Emulator":
        raise NotImplementedError

    # -- helpers every emulator can use
    def _check_fitted(self) -> None:
        if not hasattr(self, "n_labels_"):
            raise NotFittedError(f"{type(self).__name__} is not fitted: call fit() or load a model")

    def _check_least_squares(self, labels: np.ndarray, weights: np.ndarray, weighted_flux: np.ndarray,
                             jacobian_precision: str = "double") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Validate :meth:`least_squares_terms`' input: labels (K, L) finite, weights and
        weighted_flux (K, P) floats (weighted_flux set to 0 where the weight is), and
        ``jacobian_precision`` one of :data:`JACOBIAN_PRECISIONS`."""
        check_jacobian_precision(jacobian_precision, f"{type(self).__name__}.least_squares_terms")
        theta = self._check_labels(labels)
        w, wf = np.asarray(weights, dtype=float), np.asarray(weighted_flux, dtype=float)
        shape = (theta.shape[0], self.n_pixels_)
        if w.shape != shape or wf.shape != shape:
            raise DataError(f"{type(self).__name__}.least_squares_terms: weights {w.shape} and weighted_flux "
                            f"{wf.shape} must both be {shape}, one row per row of labels")
        return theta, w, np.where(w != 0, wf, 0.0)     # no residual where there is no weight

    def _check_labels(self, labels: np.ndarray) -> np.ndarray:
        """Validate labels for predict/jacobian: (K, L) finite floats."""
        self._check_fitted()
        theta = np.asarray(labels, dtype=float)
        if theta.ndim == 1:
            theta = theta[None, :]
        if theta.ndim != 2 or theta.shape[1] != self.n_labels_:
            raise DataError(f"{type(self).__name__} expects labels of shape (K, {self.n_labels_}), "
                            f"got {np.shape(labels)}")
        if not np.all(np.isfinite(theta)):
            k = int(np.argwhere(~np.isfinite(theta))[0, 0])
            raise DataError(f"label vector {k} is not finite: {theta[k].tolist()}")
        return theta


def check_training_data(labels: np.ndarray, flux: np.ndarray, ivar: np.ndarray
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate and convert ``fit`` inputs; errors name the star and the problem.

    Returns labels (M, L), flux (M, P) with non-finite values at ivar-0 pixels set to 0, ivar (M, P).
    """
    labels = np.atleast_2d(np.asarray(labels, dtype=float))
    flux = np.atleast_2d(np.asarray(flux, dtype=float))
    ivar = np.atleast_2d(np.asarray(ivar, dtype=float))
    m = labels.shape[0]
    if flux.shape[0] != m or ivar.shape != flux.shape:
        raise DataError(f"training shapes disagree: labels {labels.shape}, flux {flux.shape}, ivar {ivar.shape}")
    if m < 2:
        raise DataError(f"need at least 2 training stars, got {m}")
    if not np.all(np.isfinite(labels)):
        i = int(np.argwhere(~np.isfinite(labels))[0, 0])
        raise DataError(f"training star {i} has a non-finite label: {labels[i].tolist()}")
    if np.any(~np.isfinite(ivar) | (ivar < 0)):
        i = int(np.argwhere(~np.isfinite(ivar) | (ivar < 0))[0, 0])
        raise DataError(f"training star {i} has ivar < 0 or not finite")
    bad = ~np.isfinite(flux) & (ivar > 0)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise DataError(f"training star {i} has non-finite flux at pixel {j} with ivar > 0")
    return labels, np.where(np.isfinite(flux), flux, 0.0), ivar
