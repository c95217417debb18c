"""A public base for emulators that work in standardised labels and flux (paper eq. 2-4)."""
from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ..errors import DataError
from ..stats.standardize import Standardizer, pixel_namer
from .emulator import Emulator


class StandardizedEmulator(Emulator):
    """An emulator working on standardised labels (``label_scaler_``) and flux (``flux_scaler_``).

    What a subclass writes:

    - ``fit``: call :meth:`fit_standardizers`, learn its own fitted attributes (ending in ``_``)
      on ``label_scaler_.transform(labels)`` and ``flux_scaler_.transform(flux)``, then call
      :meth:`rebuild` and return self;
    - ``STATE_ARRAYS``: the names of the fitted array attributes that define the model (saved
      without their trailing ``_``), and ``STATE_KIND``, a short tag of the model kind;
    - ``rebuild``: set everything derived from those arrays (``n_labels_``, ``n_pixels_``,
      ``model_error_``, caches). It runs after ``fit`` and after loading.

    ``to_state``/``from_state`` then save and load the emulator without pickling, and
    ``label_scale_`` (the training labels' standard deviations) serves the finite-difference
    jacobian.

    The model error: :meth:`model_error_from_cv` is the one rule every emulator built on this
    base uses to turn its cross-validated MSE into ``model_error_`` (P,), the emulator's own error
    in flux units, without the training spectra's noise, which an observed spectrum's ivar
    already carries.
    """

    STATE_ARRAYS: ClassVar[tuple[str, ...]] = ()
    STATE_KIND: ClassVar[str] = ""

    #: The model error is at least this fraction of sqrt(CV MSE) (in flux units): where the CV
    #: MSE is all training noise, the emulator is not taken to be exact.
    MIN_MODEL_ERROR_FRACTION: ClassVar[float] = 0.1

    def fit_standardizers(self, labels: np.ndarray, flux: np.ndarray, good: np.ndarray, min_count: int = 2,
                          ivar: np.ndarray | None = None) -> None:
        """Fit ``label_scaler_`` on labels (M, L) and ``flux_scaler_`` on the good (M, P) flux (eq. 2-4);
        a pixel with fewer than ``min_count`` good stars, or a constant one, is an error naming it.

        With ``ivar`` (M, P), ``noise_var_`` (P,) is the training spectra's mean noise variance
        per pixel (over their good pixels), which :meth:`model_error_from_cv` removes."""
        self.label_scaler_ = Standardizer(lambda j: f"label {j}", remedy="Leave the label out.").fit(labels)
        self.flux_scaler_ = Standardizer(pixel_namer(None), min_count=min_count).fit(flux, good)
        if ivar is not None:
            use = good & (ivar > 0)
            var = np.where(use, 1.0 / np.where(use, ivar, 1.0), 0.0)
            self.noise_var_ = var.sum(axis=0) / np.maximum(use.sum(axis=0), 1)

    def model_error_from_cv(self, cv_mse: np.ndarray) -> np.ndarray:
        """(P,) model error in flux units from the CV MSE (P,) in standardised flux (eq. 5):
        ``sqrt(max(CV MSE * s^2 - noise_var, (f * sqrt(CV MSE) * s)^2))``, with ``s`` the flux
        scale, ``noise_var`` the training noise (``noise_var_``, 0 for models saved without it)
        and ``f`` = :attr:`MIN_MODEL_ERROR_FRACTION`. A pixel without a CV MSE (NaN) is taken to
        have CV MSE 1 (the flux scatter itself)."""
        cv_var = np.nan_to_num(np.asarray(cv_mse, float), nan=1.0) * self.flux_scaler_.scale_ ** 2
        noise = getattr(self, "noise_var_", None)
        noise = 0.0 if noise is None else noise
        return np.sqrt(np.maximum(cv_var - noise, self.MIN_MODEL_ERROR_FRACTION ** 2 * cv_var))

    @property
    def label_scale_(self) -> np.ndarray:
        """(L,) standard deviations of the training labels."""
        return self.label_scaler_.scale_

    def rebuild(self) -> None:
        """Set everything derived from the state arrays (after ``fit`` and after loading)."""
        raise NotImplementedError

    def state_metadata(self) -> dict[str, Any]:
        """JSON-able metadata saved beside the arrays (the model kind, by default)."""
        return {"kind": self.STATE_KIND}

    def to_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        self._check_fitted()
        arrays = {name.rstrip("_"): getattr(self, name) for name in self.STATE_ARRAYS}
        arrays.update(self.label_scaler_.to_state("label_"))
        arrays.update(self.flux_scaler_.to_state("flux_"))
        if getattr(self, "noise_var_", None) is not None:
            arrays["noise_var"] = np.asarray(self.noise_var_, float)
        return arrays, self.state_metadata()

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray], metadata: dict[str, Any]) -> "StandardizedEmulator":
        obj = cls(**metadata["params"])
        for name in cls.STATE_ARRAYS:
            setattr(obj, name, np.asarray(arrays[name.rstrip("_")]))
        obj.label_scaler_ = Standardizer.from_state(arrays, "label_")
        obj.flux_scaler_ = Standardizer.from_state(arrays, "flux_")
        if "noise_var" in arrays:
            obj.noise_var_ = np.asarray(arrays["noise_var"], float)
            bad = ~(np.isfinite(obj.noise_var_) & (obj.noise_var_ >= 0))
            if np.any(bad):
                j = int(np.flatnonzero(bad)[0])
                raise DataError(f"'noise_var' is {float(obj.noise_var_[j])!r} at pixel {j} ({int(bad.sum())} "
                                "such); the training noise variance is finite and not negative")
        obj.rebuild()
        return obj
