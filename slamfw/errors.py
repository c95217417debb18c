"""Exceptions that slamfw raises for problems a user can fix.

Every message names what is wrong and where: which star, which pixel, which config key.
The CLI prints these as one paragraph and exits non-zero; anything else is a bug and
shows a traceback with ``--verbose``. :func:`name_some` and :func:`repeated` help a message name
the stars (files, pixels) concerned.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np


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


def name_some(items: Sequence[object], k: int = 10, quoted: bool = False) -> str:
    """``items`` (a sequence or 1-d array: star ids, file names, pixels) as a message names them:
    the first ``k`` joined by ", ", then ", ... (N in all)" when there are more, so that an error
    or a warning says which stars are concerned without listing a million of them. ``quoted``:
    each in quotes, as Python writes a string ('0', 'HD 1'), where ids may look like numbers or
    hold commas."""
    n = len(items)
    shown = ", ".join(repr(str(x)) if quoted else str(x) for x in items[:k])
    return shown if n <= k else f"{shown}, ... ({n} in all)"


def repeated(values: Sequence[object] | np.ndarray) -> np.ndarray:
    """The values that occur more than once in ``values`` (1-d), each once, sorted: the duplicate
    star ids a message names. One sort, so that the check costs no more on a survey's millions of
    ids than on a hundred."""
    unique, counts = np.unique(np.asarray(values), return_counts=True)
    return unique[counts > 1]
