"""Generated data for the kits: :func:`make_check_data` and an analytic reference emulator.

:class:`ReferenceEmulator` is a small emulator whose model is known exactly: three labels like
Teff, log g and [Fe/H], ``n_pixels`` (40) pixels of normalised flux made of eight absorption lines
whose depths depend smoothly and non-linearly on the labels, with an analytic jacobian. The
inferer and analyzer kits use it so that their checks do not depend on any emulator plugin. It
is not registered and is not a plugin; plugin authors may use it in their own tests::

    from slamfw.testing import make_reference_model, reference_labels
    model = make_reference_model()                # a TrainedEmulator with 200 training labels
    theta = reference_labels(10, seed=1)          # (10, 3) labels inside the training range
    flux = model.emulator.predict(theta)          # (10, 40) noiseless spectra
"""
from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field
from scipy.special import expit

from ..components.base import Params
from ..components.emulator import Emulator, check_training_data
from ..components.inferer import TrainedEmulator
from ..errors import DataError

#: Label names, units and ranges of the generated data (like Teff, log g, [Fe/H]).
LABEL_NAMES = ["Teff", "logg", "FeH"]
LABEL_UNITS = ["K", "dex", "dex"]
LABEL_RANGES = np.array([[4000.0, 7000.0], [1.0, 5.0], [-2.0, 0.5]])

_CENTER = np.array([5500.0, 3.0, -0.75])
_SCALE = np.array([1000.0, 1.3, 0.8])
# eight lines: depth_k = dmax_k * sigmoid(A_k . z + B_k z_Teff^2 + C_k), z the scaled labels
_A = np.array([[-1.2, 0.1, 0.6], [-0.8, 0.3, 0.9], [0.9, 0.0, 0.2], [0.5, 0.8, 0.1],
               [0.2, -0.9, 0.4], [-0.3, 0.2, 1.1], [1.1, 0.5, -0.2], [-0.6, -0.4, 0.7]])
_B = np.array([0.4, 0.0, -0.5, 0.3, 0.0, 0.2, -0.3, 0.1])
_C = np.array([0.2, -0.3, 0.5, 0.0, -0.2, 0.3, -0.1, 0.4])
_DMAX = np.array([0.6, 0.5, 0.7, 0.4, 0.5, 0.6, 0.45, 0.55])


def make_check_data(n_stars: int = 60, n_pixels: int = 20, seed: int = 0
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Small smooth training data: labels (M, 3) like Teff/logg/[Fe/H], flux and ivar (M, P).

    Each pixel is an absorption line whose depth depends smoothly and non-linearly on the
    labels, plus Gaussian noise of 0.004 (S/N 250).
    """
    rng = np.random.default_rng(seed)
    labels = np.column_stack([rng.uniform(4000, 7000, n_stars), rng.uniform(1.0, 5.0, n_stars),
                              rng.uniform(-2.0, 0.5, n_stars)])
    z = (labels - labels.mean(0)) / labels.std(0)
    a = rng.normal(size=(3, n_pixels))
    depth = 0.4 / (1.0 + np.exp(-(z @ a + 0.3 * (z[:, :1] ** 2) @ a[:1])))
    sigma = 0.004
    flux = 1.0 - depth + rng.normal(0, sigma, depth.shape)
    return labels, flux, np.full_like(flux, 1.0 / sigma ** 2)


def reference_labels(n: int, seed: int = 0, margin: float = 0.0) -> np.ndarray:
    """(n, 3) labels drawn uniformly inside :data:`LABEL_RANGES`, shrunk by ``margin`` (a fraction
    of each range's width) on both sides."""
    rng = np.random.default_rng(seed)
    lo, hi = LABEL_RANGES[:, 0], LABEL_RANGES[:, 1]
    pad = margin * (hi - lo)
    return rng.uniform(lo + pad, hi - pad, size=(n, 3))


class ReferenceEmulator(Emulator):
    """An emulator that knows the true model: eight absorption lines on ``n_pixels`` pixels.

    ``predict(labels (K, 3)) -> flux (K, P)`` is ``prod_k (1 - depth_k(labels) * profile_k)``,
    with Gaussian line profiles of unit depth and depths ``dmax * sigmoid(...)`` of the scaled
    labels; ``jacobian`` is analytic, (K, P, 3). ``fit(labels (M, 3), flux (M, P), ivar (M, P))``
    learns nothing: it validates the data and sets ``model_error_`` (P,) to the rms residual of
    the good training pixels about the model, floored at 1e-4.
    """

    class Params(Params):
        n_pixels: int = Field(40, ge=16, description="pixels of the model spectrum")

    label_scale_ = _SCALE

    def wave(self) -> np.ndarray:
        """(P,) a nominal wavelength grid (Angstrom) for the model's pixels."""
        return np.linspace(5000.0, 5100.0, self.n_pixels)

    def _profiles(self) -> np.ndarray:
        x = np.linspace(0.0, 1.0, self.n_pixels)
        centers = (np.arange(_DMAX.size) + 0.5) / _DMAX.size
        return np.exp(-0.5 * ((x[None, :] - centers[:, None]) / (0.3 / _DMAX.size)) ** 2)  # (8, P)

    def _model(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """flux (K, P), the factors 1 - d phi (K, 8, P), sigmoids (K, 8) and scaled labels (K, 3)."""
        z = (theta - _CENTER) / _SCALE
        s = expit(z @ _A.T + _B * z[:, :1] ** 2 + _C)
        factors = 1.0 - (_DMAX * s)[:, :, None] * self._profiles()[None]
        return factors.prod(axis=1), factors, s, z

    def fit(self, labels: np.ndarray, flux: np.ndarray, ivar: np.ndarray) -> "ReferenceEmulator":
        labels, flux, ivar = check_training_data(labels, flux, ivar)
        if labels.shape[1] != 3 or flux.shape[1] != self.n_pixels:
            raise DataError(f"ReferenceEmulator takes 3 labels and {self.n_pixels} pixels, "
                            f"got labels {labels.shape} and flux {flux.shape}")
        resid = np.where(ivar > 0, flux - self._model(labels)[0], 0.0)
        count = np.maximum((ivar > 0).sum(0), 1)
        self.model_error_ = np.maximum(np.sqrt((resid ** 2).sum(0) / count), 1e-4)
        self.n_labels_, self.n_pixels_ = 3, self.n_pixels
        return self

    def predict(self, labels: np.ndarray) -> np.ndarray:
        return self._model(self._check_labels(labels))[0]

    def jacobian(self, labels: np.ndarray) -> np.ndarray:
        """(K, P, 3) analytic d flux / d label."""
        theta = self._check_labels(labels)
        flux, factors, s, z = self._model(theta)
        ddepth = (_DMAX * s * (1 - s))[:, :, None] * (_A[None] + np.einsum(
            "m,k,l->kml", 2 * _B, z[:, 0], np.array([1.0, 0.0, 0.0])))        # (K, 8, 3) per unit z
        dlog = -self._profiles()[None] / factors                                 # (K, 8, P)
        return flux[:, :, None] * np.einsum("kmp,kml->kpl", dlog, ddepth) / _SCALE

    def to_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        self._check_fitted()
        return {"model_error": self.model_error_}, {"kind": "slamfw-reference"}

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray], metadata: dict[str, Any]) -> "ReferenceEmulator":
        obj = cls(**metadata["params"])
        obj.model_error_ = np.asarray(arrays["model_error"], float)
        obj.n_labels_, obj.n_pixels_ = 3, obj.n_pixels
        return obj


def make_reference_model(n_train: int = 200, n_pixels: int = 40, seed: int = 0) -> TrainedEmulator:
    """A :class:`~slamfw.TrainedEmulator` of a :class:`ReferenceEmulator` fitted on ``n_train``
    noiseless spectra, whose (n_train, 3) labels are the inferers' initial-guess library."""
    labels = reference_labels(n_train, seed=seed)
    emu = ReferenceEmulator(n_pixels=n_pixels)
    flux = emu._model(labels)[0]
    emu.fit(labels, flux, np.full_like(flux, 1e8))
    return TrainedEmulator(emu, labels, list(LABEL_NAMES))


def noisy_spectra(emulator: Emulator, labels: np.ndarray, snr: float | np.ndarray, seed: int = 0,
                  bad_fraction: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """flux, ivar (N, P): the emulator's spectra at ``labels`` (N, 3) plus Gaussian noise of
    1/``snr`` (a scalar or (N,)); a random ``bad_fraction`` of pixels gets ivar 0 (flux kept)."""
    rng = np.random.default_rng(seed)
    clean = emulator.predict(labels)
    sigma = np.broadcast_to(1.0 / np.asarray(snr, float).reshape(-1, 1), clean.shape)
    flux = clean + rng.normal(size=clean.shape) * sigma
    ivar = 1.0 / sigma ** 2
    ivar = np.where(rng.uniform(size=clean.shape) < bad_fraction, 0.0, ivar)
    return flux, ivar
