"""The Inferer contract, and what it needs from a trained model."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..data.results import LabelResult
from .base import Component
from .emulator import Emulator


class InferenceModel(Protocol):
    """What an inferer needs from a trained model (a :class:`slamfw.model.SlamfwModel` has it)."""

    emulator: Emulator
    train_labels: np.ndarray  # (M, L) physical units, the initial-guess library
    label_names: list[str]


@dataclass
class TrainedEmulator:
    """The minimal :class:`InferenceModel`: a fitted emulator and its (M, L) training labels."""

    emulator: Emulator
    train_labels: np.ndarray
    label_names: list[str]


class Prior(Protocol):
    """A prior on physical labels: ``log_prob(theta (L,)) -> float``.

    Gaussian priors also expose ``mean`` and ``sigma`` ((L,), NaN/inf for no prior on a label),
    which least-squares inferers turn into extra residuals.
    """

    def log_prob(self, theta: np.ndarray) -> float: ...


class Inferer(Component):
    """Finds labels for many spectra: ``infer(model, flux, ivar, prior=None) -> LabelResult``.

    ``flux`` and ``ivar`` are (N, P) on the model's wavelength grid, normalised like the
    training set; ivar 0 marks bad pixels, whose flux must not matter. Contract
    (``slamfw.testing.check_inferer``): noiseless emulator spectra give back their labels; the
    result for a star does not depend on which other stars share the call; NaN flux at a good
    pixel and wrong shapes are :class:`~slamfw.DataError`; equal parameters give equal results.
    """

    def infer(self, model: InferenceModel, flux: np.ndarray, ivar: np.ndarray,
              prior: Prior | None = None) -> LabelResult:
        raise NotImplementedError
