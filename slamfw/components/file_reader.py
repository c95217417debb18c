"""Readers of many files: one or a few stars per file (LAMOST, APOGEE), read in parallel.

A subclass says which files a directory holds (``patterns``), the medium of their wavelengths
(``medium``), and how to read one file (:meth:`FileReader.read_file` -> a :class:`SpectralSet`
on the file's own grid). The base gives it:

- ``path``: a file, a directory, a glob pattern, or a text file listing paths
  (:func:`slamfw.data.files.expand_inputs`);
- files read on the executor (``read``) or in this process a piece at a time (``iter_chunks``,
  which ``slamfw predict`` streams), stacked into one set on a grid per star where grids differ;
  or described, a group of ``chunk_size`` files each (``chunk_sources``: :class:`FileChunk`), for
  the workers of ``slamfw predict`` to read, with ``chunk_read`` and ``chunks_read`` doing in the
  calling process what needs every file in order (repeated stars, the rejected files);
- a file that cannot be read, or that holds a star already read from another file, is
  *rejected*: it goes to :attr:`FileReader.rejected_` with the reason, and the run goes on (the workflows write ``rejected.csv``); only when every file fails
  does reading stop, with an error that gives the first reasons;
- labels from a separate catalogue (``labels``, ``labels_id``, ``labels_columns``,
  ``labels_missing``), joined by id with :func:`astropy.table.join`; a star missing from the
  catalogue gets NaN labels.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any, ClassVar, Iterable, Iterator

import numpy as np
from pydantic import Field

from ..data.files import expand_inputs, read_labels_catalogue
from ..data.spectra import SpectralSet
from ..errors import DataError
from ..execution.chunks import chunks
from .base import InputPath, ParamRole, Params, params_with_role
from .executor import current_executor
from .reader import ChunkSource, Reader

log = logging.getLogger(__name__)

#: Files read per executor task.
FILES_PER_TASK = 16


def _read_files(paths: list[str], reader: "FileReader") -> list[tuple[str, SpectralSet | None, str]]:
    """(path, set or None, reason) for each path: a file that fails is reported, not raised."""
    out = []
    for p in paths:
        try:
            ss = reader.read_file(Path(p))
            if reader.medium and not ss.medium:
                ss.medium = reader.medium
            elif reader.medium and ss.medium != reader.medium:
                raise DataError(f"{Path(p).name}: the file's spectra say {ss.medium!r} wavelengths, the reader "
                                f"{reader.medium!r}")
            out.append((p, ss, ""))
        except DataError as err:
            out.append((p, None, str(err)))
        except (OSError, ValueError, EOFError, KeyError, IndexError, TypeError) as err:
            out.append((p, None, f"{type(err).__name__}: {err}"))
    return out


def _groups(files: list, chunk_size: int) -> Iterator[list[str]]:
    """The files read together: ``chunk_size`` at a time (one star per file fills a chunk)."""
    for s, e in chunks(len(files), chunk_size):
        yield [str(f) for f in files[s:e]]


def _first_reads(results: Iterable[tuple[str, SpectralSet | None, str]], seen: dict[str, str]
                 ) -> Iterator[tuple[str, SpectralSet | None, list[str] | None, str]]:
    """``results`` of :func:`_read_files` in order, as ``(path, set, ids, reason)``: a file that
    holds a star already in ``seen`` (star id -> file name) turned into a rejection (no set, its
    ids kept); ``seen`` gains the stars of the others. ``ids`` is None for a file not read."""
    for path, ss, reason in results:
        ids = None if ss is None else ss.ids.tolist()
        if ids and (dup := [i for i in ids if i in seen]):
            ss, reason = None, f"star {dup[0]!r} was already read from {seen[dup[0]]}"
        elif ids:
            seen.update(dict.fromkeys(ids, Path(path).name))
        yield path, ss, ids, reason


#: Label catalogues read on this process, by what they depend on (a worker reads one once).
_CATALOGUES: dict[tuple, Any] = {}


class FileChunk(ChunkSource):
    """A group of a :class:`FileReader`'s files (absolute paths), read where :meth:`read` runs.

    ``read()`` gives the stars of the files it could read, in file order (a file that fails, or
    that repeats a star of an earlier file of the group, is rejected), stacked, with the labels of
    the reader's catalogue; ``outcome_`` says, for each file in order, ``(path, ids, reason)``:
    the ids of its stars (None when it could not be read) and why it was rejected ("" when it
    was not). The reader's :meth:`FileReader.chunk_read` reads ``outcome_`` in the calling process."""

    def __init__(self, reader_cls: type["FileReader"], params: dict[str, Any], paths: list[str]) -> None:
        self.reader_cls, self.params, self.paths = reader_cls, params, paths
        self.n_stars = len(paths)
        self.outcome_: list[tuple[str, list[str] | None, str]] = []

    def read(self) -> SpectralSet:
        reader = self.reader_cls(**self.params)
        sets: list[SpectralSet] = []
        self.outcome_ = []
        for path, ss, ids, reason in _first_reads(_read_files(self.paths, reader), {}):
            self.outcome_.append((path, ids, reason))
            if ss is not None and ss.n_stars:
                sets.append(ss)
        if not sets:
            return SpectralSet(wave=np.zeros(0), flux=np.zeros((0, 0)), ivar=np.zeros((0, 0)), ids=[],
                               source=reader.path, medium=reader.medium)
        return reader._stacked(sets, reader._cached_catalogue())


class FileReader(Reader):
    """Base of readers that read a survey's files (see the module docstring)."""

    #: Glob patterns of the files a directory holds.
    patterns: ClassVar[tuple[str, ...]] = ("*.fits", "*.fits.gz")
    #: The medium of the files' wavelengths, "air" or "vacuum".
    medium: ClassVar[str] = ""

    class Params(Params):
        path: InputPath = Field(..., description="a file, a directory, a glob pattern, or a text file (.txt, "
                                                 ".lst, .list) listing paths, one per line")
        labels: Annotated[str | None, ParamRole.INPUT_PATH] = Field(
            None, description="a catalogue of labels (FITS, ECSV or CSV) joined to the spectra by id")
        labels_id: str = Field("id", description="the catalogue's id column")
        labels_columns: dict[str, str] = Field(
            default_factory=dict, description="label name -> catalogue column (empty: every numeric column)")
        labels_missing: list[float] = Field(default=[-9999.0], description="values that mean 'no label'")
        infinite_ok = ("labels_missing",)       # a catalogue that writes inf for a missing label

    def read_file(self, path: Path) -> SpectralSet:
        """The spectra of one file, on its own grid (raise :class:`DataError` naming the file)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ reading
    def files(self) -> list[Path]:
        return expand_inputs(self.path, self.patterns, what=self._name())

    def _name(self) -> str:
        return type(self).__name__.removesuffix("Reader").lower() or "reader"

    def read(self) -> SpectralSet:
        """Every readable file's stars, the files read on the executor in use."""
        parts = list(self._pieces(10 ** 9, parallel=True))
        return parts[0] if len(parts) == 1 else SpectralSet.stack(parts, source=self.path)

    def iter_chunks(self, chunk_size: int) -> Iterator[SpectralSet]:
        """The stars of every readable file, in file order, ``chunk_size`` at most per piece
        (files are read a piece at a time, in this process: ``slamfw predict`` consumes the pieces
        while its executor infers the previous ones, and an executor's task stream must not start
        tasks of its own)."""
        return self._pieces(chunk_size, parallel=False)

    def _pieces(self, chunk_size: int, parallel: bool) -> Iterator[SpectralSet]:
        files = self.files()
        self.rejected_: list[tuple[str, str]] = []
        catalogue = self._catalogue()
        n_yielded = 0
        seen: dict[str, str] = {}     # star id -> the file it came from
        for group in _groups(files, chunk_size):
            tasks = [(group[i:i + FILES_PER_TASK],) for i in range(0, len(group), FILES_PER_TASK)]
            blocks = (current_executor().map(_read_files, tasks, shared={"reader": self},
                                             desc=f"{self._name()}: reading", progress=False)
                      if parallel else [_read_files(*t, reader=self) for t in tasks])
            sets = []
            for path, ss, _, reason in _first_reads((r for block in blocks for r in block), seen):
                if ss is None:
                    self._reject(path, reason)
                elif ss.n_stars:
                    sets.append(ss)
            if not sets:
                continue
            stacked = self._stacked(sets, catalogue)
            for a, b in chunks(stacked.n_stars, chunk_size):      # as slamfw predict cuts a described group
                piece = stacked.subset(np.arange(a, b))
                n_yielded += piece.n_stars
                yield piece
        self._finish(len(files), n_yielded)

    def _stacked(self, sets: list[SpectralSet], catalogue) -> SpectralSet:
        """One group's sets (in file order) stacked, with the catalogue's labels when there is one."""
        stacked = SpectralSet.stack(sets, source=self.path)
        return stacked if catalogue is None else self._join_labels(stacked, catalogue)

    def _reject(self, path: str, reason: str) -> None:
        log.warning("%s: rejected %s: %s", self._name(), path, reason)
        self.rejected_.append((path, reason))

    def _finish(self, n_files: int, n_stars: int) -> None:
        """The end of a read: an error when no file gave a star, else a count of the rejected files."""
        if n_stars == 0:
            first = "; ".join(f"{Path(p).name}: {r}" for p, r in self.rejected_[:3])
            raise DataError(f"{self._name()}: none of the {n_files} file(s) of {self.path!r} could be read "
                            f"({first}{' ...' if len(self.rejected_) > 3 else ''})")
        if self.rejected_:
            log.warning("%s: %d of %d file(s) rejected (listed in the rejected-files CSV)", self._name(),
                        len(self.rejected_), n_files)

    # ------------------------------------------------------------------ pieces read on workers
    def chunk_sources(self, chunk_size: int) -> Iterator["FileChunk"]:
        """The groups of ``chunk_size`` files that :meth:`iter_chunks` reads, described: each
        :class:`FileChunk` reads its files where it runs (a worker), rejects the files it cannot
        read and those that repeat a star of an earlier file of its group, and joins the labels.
        A star already read from an earlier group's file is found here, in :meth:`chunk_read`,
        which rejects that file and leaves its stars out; :meth:`chunks_read` ends the stream as
        :meth:`iter_chunks` ends (an error when no file could be read)."""
        files = self.files()
        self._catalogue()         # a missing or bad label catalogue is said here, before any work
        self.rejected_ = []
        self._stream = {"files": len(files), "stars": 0, "seen": {}}
        params = self.get_params()
        for name in params_with_role(type(self), ParamRole.INPUT_PATH):
            if params.get(name):
                params[name] = str(Path(params[name]).absolute())
        return (FileChunk(type(self), params, [str(Path(f).absolute()) for f in group])
                for group in _groups(files, chunk_size))

    def chunk_read(self, source: "FileChunk") -> list[str]:
        """Record a group's rejected files, and reject each of its files that holds a star an
        earlier group gave: the ids of that file's stars, to be left out of the catalogue.

        One case differs from :meth:`iter_chunks`, which sees every earlier file at once: a file
        that the worker rejected for repeating a star of an earlier file of its group that is
        rejected here (for a star of an earlier group) stays rejected, though none of its stars
        was read before (files of several stars each, overlapping in three files); its reason,
        logged as a warning and listed with the rejected files, says so."""
        seen: dict[str, str] = self._stream["seen"]
        drop: list[str] = []
        for path, ids, reason in source.outcome_:
            if ids and (dup := [i for i in ids if i in seen]):
                drop += [] if reason else ids          # the worker kept it: its stars were inferred
                reason = f"star {dup[0]!r} was already read from {seen[dup[0]]}"
            elif ids and reason:
                reason += (", itself rejected for a star of an earlier group of files: this file's stars are not in "
                           "the catalogue (the calling process, reading every file, would have kept them)")
            if reason:
                self._reject(path, reason)
            elif ids:
                seen.update(dict.fromkeys(ids, Path(path).name))
                self._stream["stars"] += len(ids)
        return drop

    def chunks_read(self) -> None:
        self._finish(self._stream["files"], self._stream["stars"])

    # ------------------------------------------------------------------ labels
    def _cached_catalogue(self):
        """:meth:`_catalogue`, read once per process for the same reader class, file (its size and
        time) and parameters: each worker that reads a group of files joins its labels (and keeps
        the last catalogue it read in memory)."""
        if not self.labels:
            return None
        try:
            st = Path(self.labels).stat()
        except OSError:
            return self._catalogue()          # its error names the file
        key = (type(self).__qualname__, str(Path(self.labels).absolute()), st.st_size, st.st_mtime_ns, self.labels_id,
               tuple(sorted(self.labels_columns.items())), tuple(self.labels_missing))
        if key not in _CATALOGUES:
            _CATALOGUES.clear()
            _CATALOGUES[key] = self._catalogue()
        return _CATALOGUES[key]

    def _catalogue(self):
        if not self.labels:
            return None
        return read_labels_catalogue(self.labels, self.labels_id, dict(self.labels_columns),
                                     list(self.labels_missing), what=f"{self._name()}: labels")

    def _join_labels(self, ss: SpectralSet, catalogue) -> SpectralSet:
        """``ss`` with the catalogue's labels (NaN for stars it lacks), by an astropy left join."""
        from astropy.table import Table, join

        left = Table({"id": ss.ids.astype(str), "_row": np.arange(ss.n_stars)})
        joined = join(left, catalogue, keys="id", join_type="left")
        joined.sort("_row")
        names = [c for c in catalogue.colnames if c != "id"]
        if not names:
            raise DataError(f"{self._name()}: the label catalogue {self.labels} has no numeric label column; "
                            f"name them with labels_columns")
        if not np.isin(ss.ids, np.asarray(catalogue["id"], dtype=str)).any():
            log.warning("%s: none of the %d star ids (e.g. %r) is in the label catalogue %s (ids e.g. %r): check "
                        "labels_id", self._name(), ss.n_stars, str(ss.ids[0]), self.labels,
                        str(catalogue["id"][0]) if len(catalogue) else "")
        labels = np.column_stack([np.asarray(joined[n].filled(np.nan) if hasattr(joined[n], "filled")
                                             else joined[n], float) for n in names])
        n_missing = int(np.isnan(labels).all(axis=1).sum())
        if n_missing:
            log.info("%s: %d of %d star(s) are not in the label catalogue %s", self._name(), n_missing,
                     ss.n_stars, self.labels)
        out = ss.subset(np.arange(ss.n_stars))
        out.labels, out.label_names = labels, names
        out.label_units = [_unit(n) for n in names]
        return out


def _unit(name: str) -> str:
    """The conventional unit of a label by its name (K for temperatures, dex otherwise)."""
    return "K" if name.lower().startswith("teff") else "dex"
