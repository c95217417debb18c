"""A strict stand-in for CuPy on the CPU: numpy's arithmetic behind CuPy's rules on what may meet what.

The device path's other stand-in (numpy under another name) checks its logic, but not the mistakes
that only a GPU would show: an array that silently leaves the device, a host array mixed into
device arithmetic, a numpy function that needs the array on the host. Here each array of the
module is a :class:`DeviceArray`, which keeps these rules of CuPy's:

- no implicit conversion to numpy: ``np.asarray(d)``, ``host[i] = d`` and anything else that needs
  ``__array__`` raise TypeError, as CuPy does ("Implicit conversion to a NumPy array is not
  allowed"); ``d.get()`` and :func:`asnumpy` copy to the host;
- arithmetic and functions (ufuncs, operators, ``module.f(...)``, numpy functions dispatched
  through ``__array_function__``) refuse a host ``numpy.ndarray``, 0-d ones too, beside device
  arrays, and a list as an operand (TypeError, CuPy's "Unsupported type"); Python and numpy
  scalars (``numpy.generic``) are fine;
- reductions give 0-d device arrays, not numpy scalars; ``float()``, ``int()``, ``bool()``,
  ``item()`` and ``tolist()`` of them work (a synchronisation on a GPU); a 0-d array is no
  Python index (no ``__index__``);
- ``linalg.solve`` of a singular matrix does not raise: its rows are NaN (cuSOLVER's zero pivots);
- no host views: ``data``, ``ctypes``, ``flat`` and ``base`` are refused; ``format(d, spec)`` works
  (CuPy formats the host copy).

It is stricter than CuPy in a few places, so that code which passes here relies on none of them:
a host array may not index a device array, nor be written into one (CuPy converts the first, and
raises ValueError for the second); ``sum`` and the like refuse a host array (CuPy's call its
method, on the host); and numpy methods CuPy lacks are not told apart. Creation functions
(``asarray``, ``array``, ``zeros``, ``full``, ...) take host data, and lists of device arrays.
Names CuPy does not have (``errstate``, ``seterr``) are missing here too.
"""
from __future__ import annotations

import types
from typing import Any

import numpy as np
from numpy.lib.mixins import NDArrayOperatorsMixin

#: Functions that take host data (shapes, scalars, numpy arrays) and make device arrays.
_CREATION = {"asarray", "array", "zeros", "ones", "empty", "full", "eye", "arange", "zeros_like", "ones_like",
             "empty_like", "full_like", "identity", "linspace", "ascontiguousarray"}
#: numpy names CuPy does not have.
_MISSING = {"errstate", "seterr", "geterr"}
#: numpy array attributes that would hand out the host memory behind a device array.
_HOST_VIEWS = {"data", "ctypes", "flat", "base"}


class DeviceArray(NDArrayOperatorsMixin):
    """A numpy array that behaves, towards numpy and host arrays, like a CuPy array."""

    __slots__ = ("_a",)

    def __init__(self, a: np.ndarray) -> None:
        self._a = a

    # -- leaving the device: only explicitly
    def __array__(self, dtype=None, copy=None):
        raise TypeError("Implicit conversion to a NumPy array is not allowed. Please use `.get()` to construct a "
                        "NumPy array explicitly.")

    def get(self) -> np.ndarray:
        return self._a.copy()

    def tolist(self) -> Any:
        return self._a.tolist()

    def item(self) -> Any:
        return self._a.item()

    def __float__(self) -> float:
        return float(self._a)

    def __int__(self) -> int:
        return int(self._a)

    def __bool__(self) -> bool:
        return bool(self._a)

    def __len__(self) -> int:
        return len(self._a)

    def __iter__(self):
        return (_wrap(row) for row in self._a)

    def __repr__(self) -> str:
        return f"DeviceArray({self._a!r})"

    def __format__(self, spec: str) -> str:
        return format(self._a.item() if self._a.ndim == 0 else self._a, spec)

    # -- numpy's protocols: dispatched to the same function on device data
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        out = kwargs.get("out")
        if out is not None:
            kwargs["out"] = tuple(_device_operand(o, ufunc.__name__) for o in out)
        if any(isinstance(x, (list, tuple)) for x in inputs):
            raise TypeError(f"Unsupported type {type(next(x for x in inputs if isinstance(x, (list, tuple))))} "
                            f"in {ufunc.__name__} on the device")
        result = getattr(ufunc, method)(*(_device_operand(x, ufunc.__name__) for x in inputs), **kwargs)
        return _wrap(result)

    def __array_function__(self, func, types_, args, kwargs):
        return _wrap(func(*_device_tree(args, func.__name__), **_device_tree(kwargs, func.__name__)))

    # -- indexing
    def __getitem__(self, key):
        return _wrap(self._a[_index(key)])

    def __setitem__(self, key, value):
        self._a[_index(key)] = _device_operand(value, "setitem")

    # -- attributes and methods of numpy's arrays, on device data
    @property
    def shape(self) -> tuple[int, ...]:
        return self._a.shape

    @property
    def dtype(self) -> np.dtype:
        return self._a.dtype

    @property
    def ndim(self) -> int:
        return self._a.ndim

    @property
    def size(self) -> int:
        return self._a.size

    @property
    def T(self) -> "DeviceArray":
        return DeviceArray(self._a.T)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in _HOST_VIEWS:   # numpy's __array_interface__ ...: no way to the host
            raise AttributeError(name)
        attr = getattr(self._a, name)
        if callable(attr):
            return lambda *args, **kwargs: _wrap(attr(*_device_tree(args, name), **_device_tree(kwargs, name)))
        return _wrap(attr)


def _wrap(x: Any) -> Any:
    """Results back on the device: arrays, and numpy scalars as 0-d arrays (CuPy's reductions)."""
    if isinstance(x, np.ndarray):
        return DeviceArray(x)
    if isinstance(x, np.generic):
        return DeviceArray(np.asarray(x))
    if isinstance(x, tuple):
        return tuple(_wrap(v) for v in x)
    if isinstance(x, list):
        return [_wrap(v) for v in x]
    return x


def _device_operand(x: Any, what: str) -> Any:
    """The numpy array behind a device operand; a host array (0-d too) is refused, as CuPy refuses it."""
    if isinstance(x, DeviceArray):
        return x._a
    if isinstance(x, np.ndarray):
        raise TypeError(f"Unsupported type {type(x)} in {what} on the device: a host array beside device arrays "
                        f"(copy it with asarray first)")
    return x


def _device_tree(x: Any, what: str) -> Any:
    if isinstance(x, (list, tuple)):
        return type(x)(_device_tree(v, what) for v in x)
    if isinstance(x, dict):
        return {k: _device_tree(v, what) for k, v in x.items()}
    return _device_operand(x, what)


def _index(key: Any) -> Any:
    """An index for the numpy array behind a device array: device index arrays, slices, integers
    (a host index array is refused: stricter than CuPy)."""
    if isinstance(key, tuple):
        return tuple(_index(k) for k in key)
    return _device_operand(key, "indexing")


def asnumpy(a: Any) -> np.ndarray:
    return a.get() if isinstance(a, DeviceArray) else np.asarray(a)


def _creation(func):
    def make(*args, **kwargs):
        return _wrap(func(*_on_host_for_creation(args), **kwargs))
    return make


def _on_host_for_creation(x: Any) -> Any:
    """Device arrays, alone or in lists (``array([d0, d1])``), as their numpy arrays."""
    if isinstance(x, (list, tuple)):
        return type(x)(_on_host_for_creation(v) for v in x)
    return x._a if isinstance(x, DeviceArray) else x


def _device_function(func, name):
    def call(*args, **kwargs):
        return _wrap(func(*_device_tree(args, name), **_device_tree(kwargs, name)))
    return call


def _solve(a, b):
    """``linalg.solve`` as CuPy's: a singular matrix gives NaN rows instead of an exception."""
    a, b = _device_operand(a, "solve"), _device_operand(b, "solve")
    try:
        return DeviceArray(np.linalg.solve(a, b))
    except np.linalg.LinAlgError:
        if a.ndim == 2:
            return DeviceArray(np.full(b.shape, np.nan))
        out = np.empty(b.shape, float)
        for i in range(a.shape[0]):
            try:
                out[i] = np.linalg.solve(a[i], b[i])
            except np.linalg.LinAlgError:
                out[i] = np.nan
        return DeviceArray(out)


def make_module(name: str = "cupy_standin") -> types.ModuleType:
    """A module with CuPy's names over numpy's functions and :class:`DeviceArray`'s rules."""
    module = types.ModuleType(name)
    linalg = types.ModuleType(f"{name}.linalg")
    linalg.solve = _solve
    linalg.__getattr__ = lambda attr: _device_function(getattr(np.linalg, attr), f"linalg.{attr}")
    module.linalg = linalg
    module.ndarray = DeviceArray
    module.asnumpy = asnumpy

    def lookup(attr: str) -> Any:
        if attr in _MISSING or attr.startswith("__"):
            raise AttributeError(f"module {name!r} has no attribute {attr!r}")
        value = getattr(np, attr)
        if attr in _CREATION:
            return _creation(value)
        if callable(value) and not isinstance(value, type):
            return _device_function(value, attr)
        return value                      # constants (inf, nan, newaxis), dtypes
    module.__getattr__ = lookup
    return module
