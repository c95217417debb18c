"""Exceptions that slamfw raises for problems a user can fix.

Every message names what is wrong and where: which star, which pixel, which config key.
The CLI prints these as one paragraph and exits non-zero; anything else is a bug and
shows a traceback with ``--verbose``.
"""
from __future__ import annotations


class SlamfwError(Exception):
    """Base class for errors caused by input, configuration or files (not by bugs)."""


class ConfigError(SlamfwError):
    """A configuration value is missing, misspelled or invalid."""


class DataError(SlamfwError):
    """Spectra or labels are unusable (shapes, NaN, negative ivar, no overlap, ...)."""


class ModelFileError(SlamfwError):
    """A model file is damaged, of another format version, or not a slamfw model."""


class OutputError(SlamfwError):
    """An output path is unusable (a file where a folder must be, not writable, outside
    ``output.dir``, or an existing file slamfw did not write), or the output folder is in use."""


class PluginError(SlamfwError):
    """A plugin is unknown, failed to import, or registered something invalid."""


class NotFittedError(SlamfwError, AttributeError):
    """A component was used before ``fit``."""
