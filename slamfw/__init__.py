"""slamfw: data-driven stellar label inference (SLAM and friends) through plugins."""
from __future__ import annotations

__version__ = "0.1.0"

from .errors import ConfigError, DataError, ModelFileError, NotFittedError, PluginError, SlamfwError  # noqa: E402
from .hookspecs import hookimpl  # noqa: E402
from .interfaces import (  # noqa: E402
    AnalysisContext, Analyzer, Component, Emulator, Inferer, LabelResult, Normalizer, Params, Reader, Report,
    TrainedEmulator, check_training_data,
)
from .spectra import SpectralSet  # noqa: E402
from .standardize import Standardizer  # noqa: E402

__all__ = [
    "__version__", "hookimpl", "SpectralSet", "Standardizer", "Component", "Params", "Reader", "Normalizer",
    "Emulator", "Inferer", "Analyzer", "AnalysisContext", "LabelResult", "Report", "TrainedEmulator",
    "check_training_data",
    "SlamfwError", "ConfigError", "DataError", "ModelFileError", "PluginError", "NotFittedError",
]
