"""The ``none`` normaliser, for spectra that are already continuum-normalised."""
from __future__ import annotations

import numpy as np

from slamfw import Normalizer, hookimpl

SLAMFW_PLUGIN_API = (1, 0)


class IdentityNormalizer(Normalizer):
    """Returns the spectra unchanged (continuum 1)."""

    def normalize(self, wave: np.ndarray, flux: np.ndarray, ivar: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        flux = np.atleast_2d(flux)
        return flux.copy(), np.atleast_2d(ivar).copy(), np.ones_like(flux)


@hookimpl
def slamfw_register_normalizers(register):
    register("none", IdentityNormalizer)
