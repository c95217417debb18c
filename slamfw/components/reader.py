"""The Reader contract: spectra from somewhere into a :class:`~slamfw.SpectralSet`."""
from __future__ import annotations

from ..data.spectra import SpectralSet
from .base import Component


class Reader(Component):
    """Reads spectra into a :class:`SpectralSet` (``read() -> SpectralSet``).

    A reader that reads files declares the file or directory as one parameter annotated
    :data:`~slamfw.InputPath`: config files may give it relative to themselves, and
    ``slamfw predict MODEL --data PATH`` sets it. Parameters that choose *which* stars to read
    (label ranges, say) carry :attr:`ParamRole.SELECTION`; a model records the reader's other
    parameters, so that a new survey is read the way the training set was.

    ``read`` returns stars in a fixed order, the same on every call with equal parameters;
    ``slamfw.testing.check_reader`` checks the contract.
    """

    def read(self) -> SpectralSet:
        raise NotImplementedError
