"""The Inferer contract, and what it needs from a trained model."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..data.results import LabelResult
from .base import Component
from .emulator import Emulator
from .prior import Prior


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


def stars_per_call_problem(value: object) -> str | None:
    """Why ``value`` is not a valid :meth:`Inferer.stars_per_call` (None or a positive integer), or
    None when it is."""
    if value is None or (isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 1):
        return None
    return f"stars_per_call gave {value!r}; it must be a positive integer (stars) or None"


class Inferer(Component):
    """Finds labels for many spectra: ``infer(model, flux, ivar, prior=None, ids=None) -> LabelResult``.

    ``flux`` and ``ivar`` are (N, P) on the model's wavelength grid, normalised like the
    training set; ivar 0 marks bad pixels, whose flux must not matter. ``prior`` is a fitted
    :class:`~slamfw.Prior` (None: flat) and ``ids`` (N,) the stars' ids, which priors that differ
    from star to star need. An inferer that cannot use a prior it is given raises
    :class:`~slamfw.ConfigError` naming it. Contract
    (``slamfw.testing.check_inferer``): noiseless emulator spectra give back their labels; the
    result for a star does not depend on which other stars share the call; NaN flux at a good
    pixel and wrong shapes are :class:`~slamfw.DataError`; equal parameters give equal results.
    """

    def infer(self, model: InferenceModel, flux: np.ndarray, ivar: np.ndarray,
              prior: Prior | None = None, ids: np.ndarray | None = None) -> LabelResult:
        raise NotImplementedError

    def stars_per_call(self, model: InferenceModel) -> int | None:
        """How many stars one ``infer`` call in the pipeline's own process should get, or None (the
        default): each chunk is then inferred where it was prepared, on the executor's workers.

        An inferer that drives one accelerator (``lm`` with ``device = "cuda"``) returns its batch
        size: ``slamfw predict`` then prepares the chunks on the workers and infers them in the
        calling process (``slamfw run``, whose spectra are prepared already, infers there too),
        consecutive chunks together up to this many stars, so that one process, not every worker,
        uses the device, in large batches. The result for a star does not depend on which stars
        share its call (the contract), so only the rounding of batched arithmetic can tell the two
        ways apart."""
        return None
