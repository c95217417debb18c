"""Where the batched least squares runs: numpy on the CPU, or CuPy on an NVIDIA GPU.

``device = "cuda"`` (the ``lm`` inferer's parameter) needs CuPy, an optional extra
(``pip install 'slamfw[cuda13]'``, or ``[cuda12]`` for CUDA 12), and an emulator that can
evaluate itself on the GPU (:meth:`slamfw.Emulator.on_device`; ``slam``, ``krr`` and ``cannon``
can). The least-squares code is the same for both devices, written against the array module it
is given (:func:`array_module`), so the CPU path tests the GPU path's logic; the matrix products'
rounding differs between them, and a singular damped system (rare: the damping is floored) gives
CuPy a NaN step, which is rejected, where numpy raises and falls back to least squares.
"""
from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

from ..components.emulator import Emulator
from ..errors import ConfigError

#: The devices ``lm`` accepts.
DEVICES = ("cpu", "cuda")


_CUPY_ERROR: list[str] = []


def _cupy_error() -> str:
    """CuPy's last import or device error as ' (why)' for a refusal's message; '' when none."""
    return f" ({_CUPY_ERROR[0]})" if _CUPY_ERROR else ""


def _cupy() -> ModuleType | None:
    try:
        import cupy
    except Exception as exc:   # not installed, or its CUDA libraries missing
        _CUPY_ERROR[:] = [f"{type(exc).__name__}: {exc}"]
        return None
    return cupy


def gpu_available() -> bool:
    """True when CuPy imports and sees at least one CUDA GPU."""
    cupy = _cupy()
    if cupy is None:
        return False
    try:
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception as exc:
        _CUPY_ERROR[:] = [f"{type(exc).__name__}: {exc}"]
        return False


def array_module(device: str) -> ModuleType:
    """numpy for ``"cpu"``, CuPy for ``"cuda"``; a :class:`ConfigError` that says what is missing
    when the GPU cannot be used."""
    if device == "cpu":
        return np
    if device != "cuda":
        raise ConfigError(f"device {device!r}: use one of {', '.join(DEVICES)}")
    cupy = _cupy()
    if cupy is None:
        raise ConfigError(f"device 'cuda' needs CuPy, which did not import{_cupy_error()}: pip install "
                          f"'slamfw[cuda13]' (or 'slamfw[cuda12]' for CUDA 12)")
    if not gpu_available():
        raise ConfigError(f"device 'cuda': CuPy sees no CUDA GPU on this machine{_cupy_error()} (use device = 'cpu')")
    return cupy


def to_numpy(a: Any) -> np.ndarray:
    """A host numpy array of a numpy or CuPy array."""
    return a.get() if hasattr(a, "get") and not isinstance(a, np.ndarray) else np.asarray(a)


def _unsupported(emulator: Any, device: str) -> ConfigError:
    return ConfigError(f"device {device!r}: emulator {type(emulator).__name__} cannot run there (it has no "
                       f"on_device); use device = 'cpu'")


def check_device(device: str, emulator: Any = None) -> None:
    """Refuse, before any work, a device this machine (or this emulator, when given) cannot use."""
    xp = array_module(device)
    if emulator is not None and xp is not np and type(emulator).on_device is Emulator.on_device:
        raise _unsupported(emulator, device)


def device_evaluator(emulator: Any, xp: ModuleType, device: str) -> Any:
    """The emulator's evaluator on ``xp`` (:meth:`~slamfw.Emulator.on_device`)."""
    evaluate = emulator.on_device(xp)
    if evaluate is None:
        raise _unsupported(emulator, device)
    return evaluate
