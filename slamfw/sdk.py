"""The plugin API: everything a slamfw plugin may import, in one list.

A plugin imports from ``slamfw`` (which re-exports exactly this list), from ``slamfw.sdk``, or
from ``slamfw.testing`` (the conformance kits). Anything else in slamfw may change without
notice; this list changes only with :data:`PLUGIN_API` (a new major version when something is
removed or changed incompatibly). slamfw's own plugins keep to it, and a test checks that they do.

- components: the contracts (``Reader`` and the ``ChunkSource`` of its pieces, ``Normalizer``,
  ``Emulator``, ``Inferer``, ``Analyzer``), their ``Params`` base, parameter roles
  (``InputPath``, ``ParamRole``), the public standardised-emulator base
  ``StandardizedEmulator``, and ``FileReader``, the base of readers of
  many files (directories, globs, lists of files; rejected files; a label catalogue joined by id);
- data: ``SpectralSet``, ``LabelResult``, ``KNOWN_META`` and their ``META_UNITS``; wavelength media (``air_to_vacuum``,
  ``vacuum_to_air``);
- inference: ``InferenceModel`` (what an inferer receives), ``TrainedEmulator``; the ``Prior``
  contract and its ``LeastSquaresForm``; the likelihood (``likelihood_weights``, ``chi2``,
  ``reduced_chi2``, ``rmse``, ``library_chi2``, ``best_library_matches``, ``spectrum_snr``) and the
  multi-start least-squares fit ``maximum_likelihood`` (with ``Solver``, ``check_observations``,
  ``prior_forms``); its devices (``DEVICES``, ``check_device``, ``gpu_available``);
- analysis: ``AnalysisContext``, ``Report``, ``table_to_markdown``;
- statistics: ``Standardizer`` (eq. 2-4), ``pixel_namer``, ``label_namer``, ``residual_stats`` and
  ``cross_validate_flux`` (eq. 5-6), ``bias_scatter``, ``robust_scatter``, ``accuracy_by_snr``,
  ``snr_bins``, ``BinAccuracy`` (eq. 9-10);
- execution: ``current_executor`` (what a component runs its tasks on), ``chunks``, and for
  writing executors ``Executor``, ``SerialExecutor``, ``LocalExecutor``, ``using_executor``,
  ``Progress``, ``results_in_order``, ``collected`` (an executor's ``map`` from its results),
  ``available_cores``, ``call_limited``, ``watch_parent``, ``tune_allocator`` and
  ``allocator_tuned`` (glibc's allocator for large arrays, in ``slamfw predict``'s processes),
  ``limit_threads`` (BLAS and OpenMP threads, cheaply enough per task), ``import_modules`` (a
  worker's preparation, :meth:`Executor.prestart`); ``ChunkStore``, ``atomic_path``,
  ``save_npz`` (atomic writes and resumable pieces of work);
- plugins: ``hookimpl``, ``PLUGIN_API``;
- errors: ``SlamfwError`` and its kinds; ``name_some`` and ``repeated``, which help a message name
  the stars concerned (plugin API 1.11).
"""
from __future__ import annotations

from .components import (
    AnalysisContext, Analyzer, ChunkSource, Component, Emulator, InferenceModel, Inferer, InputPath, Normalizer,
    ParamRole, Params, LeastSquaresForm, Prior, Reader, Report, StandardizedEmulator, TrainedEmulator,
    check_training_data,
)
from .components.file_reader import FileReader
from .data.media import air_to_vacuum, vacuum_to_air
from .data.results import LabelResult
from .data.spectra import KNOWN_META, META_UNITS, SpectralSet
from .errors import (
    ConfigError, DataError, ModelFileError, NotFittedError, OutputError, PluginError, SlamfwError, name_some, repeated,
)
from .components.executor import (
    Executor, Progress, SerialExecutor, available_cores, collected, current_executor, import_modules, results_in_order,
    using_executor,
)
from .execution.chunks import chunks
from .execution.allocator import allocator_tuned, tune_allocator
from .execution.local import LocalExecutor, call_limited, watch_parent
from .execution.store import ChunkStore, atomic_path, save_npz
from .execution.threads import limit_threads
from .registry.hookspecs import PLUGIN_API, hookimpl
from .reporting.markdown import table_to_markdown
from .stats.crossval import cross_validate_flux, residual_stats
from .stats.likelihood import (
    best_library_matches, chi2, library_chi2, likelihood_weights, reduced_chi2, rmse, spectrum_snr,
)
from .stats.device import DEVICES, check_device, gpu_available
from .stats.maxlike import Solver, check_observations, maximum_likelihood, prior_forms
from .stats.metrics import (
    LABEL_DISTANCE_SCALES, BinAccuracy, accuracy_by_snr, bias_scatter, label_distance, label_key, robust_scatter, snr_bins,
)
from .stats.standardize import Standardizer, label_namer, pixel_namer
# figures
from .reporting.figures import (
    WAVE_LABEL, axis_label, corner_figure, flux_percentiles, log_axis, new_figure, panel_grid,
    plot_flux_percentiles, precision_figure, save_figure,
)

__all__ = [
    # components
    "Component", "Params", "ParamRole", "InputPath", "Reader", "ChunkSource", "Normalizer", "Emulator",
    "StandardizedEmulator",
    "Inferer", "Analyzer", "check_training_data", "FileReader",
    # data
    "SpectralSet", "LabelResult", "KNOWN_META", "META_UNITS", "air_to_vacuum", "vacuum_to_air",
    # inference
    "InferenceModel", "TrainedEmulator", "Prior", "LeastSquaresForm", "likelihood_weights", "library_chi2",
    "best_library_matches", "chi2", "reduced_chi2", "rmse", "spectrum_snr", "maximum_likelihood", "Solver",
    "check_observations", "prior_forms", "DEVICES", "check_device", "gpu_available",
    # analysis
    "AnalysisContext", "Report", "table_to_markdown",
    # statistics
    "Standardizer", "pixel_namer", "label_namer", "residual_stats", "cross_validate_flux", "bias_scatter",
    "robust_scatter", "accuracy_by_snr", "snr_bins", "BinAccuracy", "label_distance", "label_key", "LABEL_DISTANCE_SCALES",
    # execution
    "current_executor", "chunks", "Executor", "SerialExecutor", "LocalExecutor", "using_executor", "Progress",
    "results_in_order", "collected", "available_cores", "call_limited", "watch_parent", "tune_allocator",
    "allocator_tuned", "limit_threads", "import_modules", "ChunkStore", "atomic_path", "save_npz",
    # plugins
    "hookimpl", "PLUGIN_API",
    # errors
    "SlamfwError", "ConfigError", "DataError", "ModelFileError", "OutputError", "PluginError", "NotFittedError",
    "name_some", "repeated",
    # figures
    "WAVE_LABEL", "axis_label", "corner_figure", "flux_percentiles", "log_axis", "new_figure", "panel_grid",
    "plot_flux_percentiles", "precision_figure", "save_figure",
]
