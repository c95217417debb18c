"""slamfw-linear-emulator: an example third-party slamfw plugin."""
from .emulator import LinearEmulator

__all__ = ["LinearEmulator"]
__version__ = "0.1.0"
