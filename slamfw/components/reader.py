"""The Reader contract: spectra from somewhere into a :class:`~slamfw.SpectralSet`."""
from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np

from ..data.spectra import SpectralSet
from ..execution.chunks import chunks
from .base import Component


class ChunkSource:
    """Consecutive pieces of a reader's stars, described: ``n_stars`` and ``read() -> SpectralSet``.

    It must be small and picklable (it travels to a worker process), and ``read()`` must give
    the stars, ids, spectra, labels, units, metadata and medium, in order, of the consecutive
    :meth:`Reader.iter_chunks` pieces it stands for (less the stars that :meth:`Reader.chunk_read`
    then leaves out): one piece for a reader that knows its pieces' sizes before reading (a
    table); zero, one or more for a reader of files, which knows only its files (``slamfw
    predict`` cuts what ``read()`` gives into pieces of ``chunk_size``, as ``iter_chunks`` does). ``slamfw.testing.check_reader`` checks it. Readers of files refer to
    them by absolute path: a worker's working folder may be another, and ``slamfw predict`` sends
    descriptions only to workers that see this machine's files
    (:attr:`~slamfw.Executor.workers_share_files`).

    The object that ``read()`` ran on comes back to the calling process, in order, through
    :meth:`Reader.chunk_read`: a reader that must know what other pieces held (files rejected,
    stars already read from another file) records it on the object there.
    """

    #: The stars that :meth:`read` gives; a reader of files, which knows only its files before
    #: reading them, gives its files' count (one star per file).
    n_stars: int

    def read(self) -> SpectralSet:
        """The pieces' stars (spectra (n, P)), read and checked where this is called (a bad star
        raises :class:`~slamfw.DataError` naming it; a reader of files rejects a bad file and
        goes on, and gives no star when it rejects every file)."""
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
    picklable :class:`ChunkSource` objects, each of which reads its pieces (``read()``) in
    whichever process holds it. ``slamfw predict`` then sends the descriptions to the executor's
    workers, and each worker reads, prepares and infers its own chunks, so that this process
    neither reads nor sends spectra. The default returns None (the pieces are read here, by
    ``iter_chunks``); a reader returns None, too, for a file it cannot read piece by piece.
    Each description comes back after its ``read()``, in order, to :meth:`chunk_read`, which
    returns the ids of stars to leave out of the catalogue, and :meth:`chunks_read` ends the
    stream (a reader of files rejects there a file whose star another file gave, and raises when
    no file could be read).
    """

    def chunk_sources(self, chunk_size: int) -> Iterator["ChunkSource"] | None:
        """Descriptions of the pieces of :meth:`iter_chunks` ``(chunk_size)``, in order, each
        read by its ``read()``; or None when this reader cannot describe them (the default)."""
        return None

    def chunk_read(self, source: "ChunkSource") -> Sequence[str]:
        """Called in this process with each description of :meth:`chunk_sources`, in order, as it
        comes back from the ``read()`` on a worker: the ids of the stars it read that must be left
        out of the catalogue (default: none)."""
        return ()

    def chunks_read(self) -> None:
        """Called in this process after every description came back through :meth:`chunk_read`
        (may raise :class:`~slamfw.DataError`: no star could be read, say); default: nothing."""

    def read(self) -> SpectralSet:
        raise NotImplementedError

    def iter_chunks(self, chunk_size: int) -> Iterator[SpectralSet]:
        """The spectra of :meth:`read`, in order, as sets of at most ``chunk_size`` stars."""
        data = self.read()
        for s, e in chunks(data.n_stars, chunk_size):
            yield data.subset(np.arange(s, e))
