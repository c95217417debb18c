"""The Reader contract: spectra from somewhere into a :class:`~slamfw.SpectralSet`."""
from __future__ import annotations

from typing import Iterator

import numpy as np

from ..data.spectra import SpectralSet
from ..execution.chunks import chunks
from .base import Component


class ChunkSource:
    """One piece of a reader's stars, described: ``n_stars`` and ``read() -> SpectralSet``.

    It must be small and picklable (it travels to a worker process), and ``read()`` must give
    the same stars, ids, spectra, labels, units, metadata and medium in the same order as the
    reader's :meth:`Reader.iter_chunks` piece it stands for (``slamfw.testing.check_reader``
    checks it). Readers of files refer to them by absolute path: a worker's working folder may
    be another, and ``slamfw predict`` sends descriptions only to workers that see this
    machine's files (:attr:`~slamfw.Executor.workers_on_this_machine`).
    """

    #: The stars that :meth:`read` gives.
    n_stars: int

    def read(self) -> SpectralSet:
        """The piece's stars (n_stars of them; spectra (n_stars, P)), read and checked where this
        is called (a bad star raises :class:`~slamfw.DataError` naming it)."""
        raise NotImplementedError


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

    ``chunk_sources(chunk_size)`` may describe those pieces instead of reading them: small,
    picklable :class:`ChunkSource` objects, each of which reads its piece (``read()``) in
    whichever process holds it. ``slamfw predict`` then sends the descriptions to the executor's
    workers, and each worker reads, prepares and infers its own chunk, so that this process
    neither reads nor sends spectra. The default returns None (the pieces are read here, by
    ``iter_chunks``); a reader returns None, too, for a file it cannot read piece by piece.
    """

    def chunk_sources(self, chunk_size: int) -> Iterator["ChunkSource"] | None:
        """Descriptions of the pieces of :meth:`iter_chunks` ``(chunk_size)``, in order, each
        read by its ``read()``; or None when this reader cannot describe them (the default)."""
        return None

    def read(self) -> SpectralSet:
        raise NotImplementedError

    def iter_chunks(self, chunk_size: int) -> Iterator[SpectralSet]:
        """The spectra of :meth:`read`, in order, as sets of at most ``chunk_size`` stars."""
        data = self.read()
        for s, e in chunks(data.n_stars, chunk_size):
            yield data.subset(np.arange(s, e))
