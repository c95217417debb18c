"""Air and vacuum wavelengths (Angstrom).

MILES measures wavelengths in air; LAMOST, APOGEE and SDSS in vacuum. A reader declares its
medium (:attr:`SpectralSet.medium`); pre-processing converts a survey to the training set's
medium with these functions, so a user never has to remember.

The refractive index of standard air is Morton (2000, ApJS 130, 403) eq. 8 (the IAU standard,
as the SDSS and VALD use it); its inverse for air to vacuum is Piskunov's fit to the same formula
(VALD3), good to about 1e-5 Angstrom in the optical and infrared.
"""
from __future__ import annotations

import numpy as np

from ..errors import DataError


def vacuum_to_air(wave: np.ndarray) -> np.ndarray:
    """Air wavelengths of vacuum wavelengths ``wave`` (any shape, Angstrom)."""
    w = np.asarray(wave, float)
    s2 = (1e4 / w) ** 2
    n = 1.0 + 0.0000834254 + 0.02406147 / (130.0 - s2) + 0.00015998 / (38.9 - s2)
    return w / n


def air_to_vacuum(wave: np.ndarray) -> np.ndarray:
    """Vacuum wavelengths of air wavelengths ``wave`` (any shape, Angstrom)."""
    w = np.asarray(wave, float)
    s2 = (1e4 / w) ** 2
    n = (1.0 + 0.00008336624212083 + 0.02408926869968 / (130.1065924522 - s2)
         + 0.0001599740894897 / (38.92568793293 - s2))
    return w * n


def convert_medium(wave: np.ndarray, source: str, target: str) -> np.ndarray:
    """``wave`` (any shape) from medium ``source`` to ``target`` ("air", "vacuum"; "" means
    unknown, and then nothing is converted)."""
    for m in (source, target):
        if m not in ("", "air", "vacuum"):
            raise DataError(f"unknown wavelength medium {m!r}: use 'air' or 'vacuum'")
    if not source or not target or source == target:
        return np.asarray(wave, float)
    return air_to_vacuum(wave) if target == "vacuum" else vacuum_to_air(wave)


def one_sided_medium(data: str, model: str, what: str) -> str | None:
    """A warning when only one of the spectra (``data``) and the model (``model``) declares its
    medium: nothing is converted then, and a mismatch would shift every line by about 1.4 A at
    5000 A (80 km/s). None when both or neither declare one."""
    if bool(data) == bool(model):
        return None
    side = f"the spectra are in {data}" if data else f"the model's training set was in {model}"
    other = "the model's training set" if data else "the spectra"
    return (f"{what}: {side}, but {other} declare(s) no wavelength medium, so nothing is "
            f"converted; if they differ (air vs vacuum), every line is off by about 1.4 A at 5000 A. Declare it "
            f"(the table reader's `medium` parameter, or MEDIUM in the file's metadata)")
