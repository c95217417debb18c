"""slamfw: data-driven stellar label inference (SLAM and friends) through plugins.

``import slamfw`` gives the plugin API (:mod:`slamfw.sdk`, the one list of what plugins may
import). Users' entry points: :mod:`slamfw.api` (load a model, predict, run a config),
``slamfw.registry`` (what is installed), ``slamfw.testing`` (conformance kits).
"""
from __future__ import annotations

from ._version import __version__
from .sdk import *  # noqa: F401,F403 - the plugin API, re-exported
from .sdk import __all__ as _sdk_all

__all__ = ["__version__", *_sdk_all]
