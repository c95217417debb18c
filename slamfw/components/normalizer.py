"""The Normalizer contract: spectra divided by a pseudo-continuum."""
from __future__ import annotations

import numpy as np

from .base import Component


class Normalizer(Component):
    """Divides spectra by a pseudo-continuum.

    Subclasses implement :meth:`normalize_one` (one star) or override :meth:`normalize`
    (vectorised over stars), and may override :meth:`normalize_rest_frame` (stars observed on one
    grid, at rest-frame wavelengths ``wave / doppler``), which the preprocessing calls for
    radial-velocity-shifted stars. Contract (``slamfw.testing.check_normalizer``): the normalised
    inverse variance is ``ivar * continuum**2``; a star that cannot be normalised (too few good
    pixels, a continuum <= 0) comes back with ivar 0 and finite flux, never NaN; each star's
    result does not depend on the other stars passed with it.
    """

    def normalize(self, wave: np.ndarray, flux: np.ndarray, ivar: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Normalise N spectra.

        Parameters
        ----------
        wave : (P,) or (N, P) wavelengths (per star when rest-frame shifts differ)
        flux, ivar : (N, P)

        Returns
        -------
        norm_flux, norm_ivar, continuum : (N, P) each; ``norm_ivar = ivar * continuum**2``.
        """
        flux = np.atleast_2d(flux)
        ivar = np.atleast_2d(ivar)
        wave = np.broadcast_to(wave, flux.shape)
        out = [self.normalize_one(wave[i], flux[i], ivar[i]) for i in range(flux.shape[0])]
        if not out:
            return flux.copy(), ivar.copy(), np.ones_like(flux)
        nf, ni, cont = (np.array(a) for a in zip(*out))
        return nf, ni, cont

    def normalize_rest_frame(self, wave: np.ndarray, doppler: np.ndarray, flux: np.ndarray, ivar: np.ndarray
                             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Normalise N spectra observed on one grid and shifted to their rest frames.

        Parameters
        ----------
        wave : (P,) the observed wavelengths, the same for every star
        doppler : (N,) ``1 + rv / c``: star i's rest-frame wavelengths are ``wave / doppler[i]``
        flux, ivar : (N, P)

        Returns
        -------
        norm_flux, norm_ivar, continuum : (N, P) each, as :meth:`normalize` on the rest-frame
        wavelengths (N, P), which is what this default does. A normaliser may override it to
        build what depends on the grid alone once for all the stars (the spline does); its
        result must equal the default's to rounding, and each star's still must not depend on
        the other stars passed with it (``slamfw.testing.check_normalizer`` checks both).
        """
        doppler = np.asarray(doppler, float)
        return self.normalize(np.asarray(wave, float)[None, :] / doppler[:, None], flux, ivar)

    def normalize_one(self, wave: np.ndarray, flux: np.ndarray, ivar: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One star: wave, flux, ivar (P,) -> norm_flux, norm_ivar, continuum (P,)."""
        raise NotImplementedError
