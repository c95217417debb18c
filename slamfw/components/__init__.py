"""The component contracts, one module per kind, and the table of kinds (:mod:`.kinds`)."""
from .analyzer import AnalysisContext, Analyzer, Report
from .base import Component, InputPath, ParamRole, Params, params_with_role
from .emulator import Emulator, check_training_data
from .executor import Executor, Progress, SerialExecutor, available_cores, current_executor, using_executor
from .inferer import InferenceModel, Inferer, TrainedEmulator
from .prior import LeastSquaresForm, Prior
from .kinds import KINDS, Kind, kind_of
from .normalizer import Normalizer
from .reader import ChunkSource, Reader
from .standardized import StandardizedEmulator

__all__ = ["AnalysisContext", "Analyzer", "Report", "Component", "InputPath", "ParamRole", "Params",
           "params_with_role", "Emulator", "check_training_data", "InferenceModel", "Inferer", "Prior", "LeastSquaresForm",
           "TrainedEmulator", "KINDS", "Kind", "kind_of", "Normalizer", "Reader", "ChunkSource",
           "StandardizedEmulator",
           "Executor", "Progress", "SerialExecutor", "available_cores", "current_executor", "using_executor"]
