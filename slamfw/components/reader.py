"""The Reader contract: spectra from somewhere into a :class:`~slamfw.SpectralSet`."""
from __future__ import annotations

from typing import Iterator

import numpy as np

from ..data.spectra import SpectralSet
from ..execution.chunks import chunks
from .base import Component


class Reader(Component):
    """Reads spectra into a :class:`SpectralSet` (``read() -> SpectralSet``).

    A reader that reads files declares the file or directory as one parameter annotated
    :data:`~slamfw.InputPath`: config files may give it relative to themselves, and
    ``slamfw predict MODEL --data PATH`` sets it. Parameters that choose *which* stars to read
    (label ranges, say) carry :attr:`ParamRole.SELECTION`; a model records the reader's other
    parameters, so that a new survey is read the way the training set was.

    ``read`` returns stars in a fixed order, the same on every call with equal parameters.
    ``iter_chunks(chunk_size)`` yields the same stars in the same order in pieces of at most
    ``chunk_size`` (this default slices ``read()``; a reader of large surveys overrides it to read
    one piece at a time, so that ``slamfw predict`` streams). ``slamfw.testing.check_reader``
    checks the contract.
    """

    def read(self) -> SpectralSet:
        raise NotImplementedError

    def iter_chunks(self, chunk_size: int) -> Iterator[SpectralSet]:
        """The spectra of :meth:`read`, in order, as sets of at most ``chunk_size`` stars."""
        data = self.read()
        for s, e in chunks(data.n_stars, chunk_size):
            yield data.subset(np.arange(s, e))
