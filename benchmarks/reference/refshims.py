"""Compatibility shims that let the unmodified reference codes run on current Python and numpy.

This file is NOT imported by slamfw. `env.py` copies it into the reference virtualenv's
site-packages as ``_slamfw_refshims.py`` together with a ``_slamfw_refshims.pth`` file whose single
``import`` line makes every interpreter of that venv (the run scripts and every joblib /
multiprocessing worker, forked or spawned) load it at start-up. The reference packages' installed
files are never edited; everything is patched from outside, and only where it is missing or broken:

* ``collections-abc``: ``collections.Set`` and ``collections.Mapping`` (moved to
  ``collections.abc`` in Python 3.3, removed in 3.10); astroslam's ``slam/utils.py`` imports both
  from ``collections`` and ``slam/__init__`` imports that module. Applied at interpreter start.
* ``numpy-aliases``: ``np.float``, ``np.int``, ``np.object``, ``np.complex``, ``np.str`` (removed
  in numpy 1.24); astroslam uses ``np.float`` in training (``Slam3.train_pixels``), ``np.int`` in
  ``SlamModel.__init__`` and ``np.float`` in its inference cost function. Applied right after
  ``numpy`` is first imported (a post-import hook: numpy is not imported by pip and other tools).
* ``numpy-linalg-linalg``: ``np.linalg.linalg`` (private since numpy 2.0, gone in 2.4), which both
  Cannons name in ``except np.linalg.linalg.LinAlgError:`` (annieslasso ``fitting.py``, TheCannon
  ``train_model.py``); without it a singular pixel (e.g. all training ivar zero) raises
  AttributeError instead of taking the packages' own fallback. ``np.linalg.linalg`` is pointed at
  ``np.linalg._linalg``, which defines the same ``LinAlgError``. Applied with the aliases.
* ``slam.predict_spectrum``: astroslam's ``slam.predict.predict_spectrum`` builds
  ``np.array([...], dtype=float)`` from one entry per pixel, an array of predictions for an
  unmasked pixel but the scalar ``np.nan`` for a masked one; numpy >= 1.24 refuses such a ragged
  list, so inference fails as soon as one pixel of a test spectrum is masked. The replacement
  broadcasts each entry to the number of label vectors and is otherwise the same function (it still
  calls ``slam.predict.predict_pixel``). Applied right after ``slam.predict`` is imported, so the
  modules that import the name from it (``slam.slam3``, ``slam.mcmc``) get the fixed version too.
* ``thecannon.fit_pixel_fixed_scatter``: Casey's Cannon (annieslasso) returns the pixel scatter
  s2 from ``scipy.optimize.fmin`` as a 1-element array, and ``CannonModel.train`` stores it with
  ``s2[pixel] = ...``; numpy >= 2.? refuses to put a 1-element 1-D array into a scalar slot
  ("setting an array element with a sequence"), so training fails at the first pixel. The
  replacement calls the original and turns a size-1 s2 into a float. Applied right after
  ``thecannon.fitting`` is imported (``train`` looks the function up there at call time).

``applied()`` lists the shims applied in this process; every run script prints it. Set
``SLAMFW_REFSHIMS_OFF=1`` to disable all shims (to see the original failures).
"""
from __future__ import annotations

import collections
import collections.abc
import importlib.abc
import importlib.machinery
import os
import sys
from collections.abc import Callable
from types import ModuleType

_APPLIED: list[str] = []
_NUMPY_ALIASES = {"float": float, "int": int, "object": object, "complex": complex, "str": str}
_COLLECTIONS_NAMES = ("Set", "Mapping")


def applied() -> list[str]:
    """The shims applied so far in this process (each one line of text)."""
    return list(_APPLIED)


def _shim_collections() -> None:
    missing = [n for n in _COLLECTIONS_NAMES if not hasattr(collections, n)]
    for name in missing:
        setattr(collections, name, getattr(collections.abc, name))
    if missing:
        _APPLIED.append(f"collections-abc: collections.{'/'.join(missing)} = collections.abc.*")


def _shim_numpy(np: ModuleType) -> None:
    missing = [n for n in _NUMPY_ALIASES if n not in vars(np)]
    for name in missing:
        setattr(np, name, _NUMPY_ALIASES[name])
    if missing:
        names = ", ".join("np." + n for n in missing)
        _APPLIED.append(f"numpy-aliases: {names} restored as the Python builtins (numpy {np.__version__})")
    linalg = getattr(np, "linalg", None)
    if linalg is not None and "linalg" not in vars(linalg) and hasattr(linalg, "_linalg"):
        linalg.linalg = linalg._linalg
        _APPLIED.append("numpy-linalg-linalg: np.linalg.linalg = np.linalg._linalg (LinAlgError)")


def _shim_slam_predict(mod: ModuleType) -> None:
    import numpy as np

    def predict_spectrum(svrs, X_, mask=None, scaler=None):
        """astroslam's predict_spectrum, with masked pixels broadcast to NaN columns."""
        if X_.ndim == 1:
            X_ = X_.reshape(1, -1)
        if scaler is not None:
            X_ = scaler.transform(X_)
        if mask is None:
            mask = np.ones((len(svrs),), dtype=bool)
        n = X_.shape[0]
        ys = [np.broadcast_to(np.asarray(mod.predict_pixel(svr, X_, m), dtype=float), (n,))
              for svr, m in zip(svrs, mask)]
        return np.array(ys, dtype=float).T

    predict_spectrum.__module__ = mod.__name__
    predict_spectrum.__qualname__ = "predict_spectrum"
    mod._original_predict_spectrum = mod.predict_spectrum
    mod.predict_spectrum = predict_spectrum
    _APPLIED.append("slam.predict_spectrum: masked pixels (scalar NaN) broadcast to NaN columns "
                    "instead of a ragged np.array")


def _shim_thecannon_fitting(mod: ModuleType) -> None:
    import numpy as np

    original = mod.fit_pixel_fixed_scatter

    def fit_pixel_fixed_scatter(*args, **kwargs):
        """annieslasso's fit_pixel_fixed_scatter, with a size-1 s2 returned as a float."""
        theta, s2, meta = original(*args, **kwargs)
        if np.ndim(s2) > 0 and np.size(s2) == 1:
            s2 = float(np.asarray(s2).reshape(()))
        return theta, s2, meta

    fit_pixel_fixed_scatter.__module__ = mod.__name__
    fit_pixel_fixed_scatter.__qualname__ = "fit_pixel_fixed_scatter"
    fit_pixel_fixed_scatter.__doc__ = (original.__doc__ or "") + fit_pixel_fixed_scatter.__doc__
    mod._original_fit_pixel_fixed_scatter = original
    mod.fit_pixel_fixed_scatter = fit_pixel_fixed_scatter
    _APPLIED.append("thecannon.fit_pixel_fixed_scatter: 1-element s2 array returned as a float")


class _Loader(importlib.abc.Loader):
    """Wraps a module's loader to run a hook once the module has been executed."""

    def __init__(self, inner: importlib.abc.Loader, hook: Callable[[ModuleType], None]) -> None:
        self._inner = inner
        self._hook = hook

    def create_module(self, spec):
        return self._inner.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._inner.exec_module(module)
        self._hook(module)

    def __getattr__(self, name):  # get_source, is_package, ... as the wrapped loader has them
        return getattr(self._inner, name)


class _PostImportFinder(importlib.abc.MetaPathFinder):
    """Finds nothing itself: lets the other finders find a hooked module and wraps its loader."""

    def __init__(self, hooks: dict[str, Callable[[ModuleType], None]]) -> None:
        self.hooks = hooks

    def find_spec(self, fullname, path, target=None):
        hook = self.hooks.get(fullname)
        if hook is None:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _Loader(spec.loader, hook)
                return spec
        return None


def install() -> None:
    """Apply the start-up shim and register the post-import ones (once per process)."""
    if os.environ.get("SLAMFW_REFSHIMS_OFF") == "1":
        return
    if any(isinstance(f, _PostImportFinder) for f in sys.meta_path):
        return
    _shim_collections()
    hooks = {"numpy": _shim_numpy, "slam.predict": _shim_slam_predict,
             "thecannon.fitting": _shim_thecannon_fitting}
    for name, hook in list(hooks.items()):  # already imported (not expected at start-up)
        if name in sys.modules:
            hook(sys.modules[name])
            del hooks[name]
    sys.meta_path.insert(0, _PostImportFinder(hooks))


install()
