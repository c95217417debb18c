"""What the built-in emulators share: saving as named arrays plus the two standardisers."""
from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from slamfw import Emulator, Standardizer
from slamfw.standardize import pixel_namer


class ScaledEmulator(Emulator):
    """An emulator working on standardised labels (``label_scaler_``) and flux (``flux_scaler_``).

    Its state is the fitted attributes named in ``_ARRAYS`` (saved without the trailing ``_``) and
    the two standardisers; ``_finish()`` rebuilds everything derived, after ``fit`` and on loading.
    """

    _ARRAYS: ClassVar[tuple[str, ...]] = ()
    _KIND: ClassVar[str] = ""

    def _fit_scalers(self, labels: np.ndarray, flux: np.ndarray, good: np.ndarray, min_count: int) -> None:
        """Fit ``label_scaler_`` on labels (M, L) and ``flux_scaler_`` on the good (M, P) flux (eq. 2-4);
        a pixel with fewer than ``min_count`` good stars, or a constant one, is an error naming it."""
        self.label_scaler_ = Standardizer(lambda j: f"label {j}").fit(labels)
        self.flux_scaler_ = Standardizer(pixel_namer(None), min_count=min_count).fit(flux, good)

    def _finish(self) -> None:
        raise NotImplementedError

    def _state_metadata(self) -> dict[str, Any]:
        return {"kind": self._KIND}

    def to_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        self._check_fitted()
        arrays = {name.rstrip("_"): getattr(self, name) for name in self._ARRAYS}
        arrays.update(self.label_scaler_.to_state("label_"))
        arrays.update(self.flux_scaler_.to_state("flux_"))
        return arrays, self._state_metadata()

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray], metadata: dict[str, Any]) -> "ScaledEmulator":
        obj = cls(**metadata["params"])
        for name in cls._ARRAYS:
            setattr(obj, name, np.asarray(arrays[name.rstrip("_")]))
        obj.label_scaler_ = Standardizer.from_state(arrays, "label_")
        obj.flux_scaler_ = Standardizer.from_state(arrays, "flux_")
        obj._finish()
        return obj
