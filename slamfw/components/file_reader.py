"""Readers of many files: one or a few stars per file (LAMOST, APOGEE), read in parallel.

A subclass says which files a directory holds (``patterns``), the medium of their wavelengths
(``medium``), and how to read one file (:meth:`FileReader.read_file` -> a :class:`SpectralSet`
on the file's own grid). The base gives it:

- ``path``: a file, a directory, a glob pattern, or a text file listing paths
  (:func:`slamfw.data.files.expand_inputs`);
- files read on the executor (``read``) or in this process a piece at a time (``iter_chunks``,
  which ``slamfw predict`` streams), stacked into one set on a grid per star where grids differ;
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
from typing import Annotated, ClassVar, Iterator

import numpy as np
from pydantic import Field

from ..data.files import expand_inputs, read_labels_catalogue
from ..data.spectra import SpectralSet
from ..errors import DataError
from .base import InputPath, ParamRole, Params
from .executor import current_executor
from .reader import Reader

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
        step = max(1, min(chunk_size, len(files)))
        for s in range(0, len(files), step):
            group = [str(f) for f in files[s:s + step]]
            tasks = [(group[i:i + FILES_PER_TASK],) for i in range(0, len(group), FILES_PER_TASK)]
            blocks = (current_executor().map(_read_files, tasks, shared={"reader": self},
                                             desc=f"{self._name()}: reading", progress=False)
                      if parallel else [_read_files(*t, reader=self) for t in tasks])
            results = [r for block in blocks for r in block]
            sets = []
            for path, ss, reason in results:
                if ss is not None and (dup := [i for i in ss.ids.tolist() if i in seen]):
                    ss, reason = None, f"star {dup[0]!r} was already read from {seen[dup[0]]}"
                if ss is None:
                    log.warning("%s: rejected %s: %s", self._name(), path, reason)
                    self.rejected_.append((path, reason))
                elif ss.n_stars:
                    seen.update(dict.fromkeys(ss.ids.tolist(), Path(path).name))
                    sets.append(ss)
            if not sets:
                continue
            stacked = SpectralSet.stack(sets, source=self.path)
            if catalogue is not None:
                stacked = self._join_labels(stacked, catalogue)
            for a in range(0, stacked.n_stars, chunk_size):
                piece = stacked.subset(np.arange(a, min(a + chunk_size, stacked.n_stars)))
                n_yielded += piece.n_stars
                yield piece
        if n_yielded == 0:
            first = "; ".join(f"{Path(p).name}: {r}" for p, r in self.rejected_[:3])
            raise DataError(f"{self._name()}: none of the {len(files)} file(s) of {self.path!r} could be read "
                            f"({first}{' ...' if len(self.rejected_) > 3 else ''})")
        if self.rejected_:
            log.warning("%s: %d of %d file(s) rejected (listed in the rejected-files CSV)", self._name(),
                        len(self.rejected_), len(files))

    # ------------------------------------------------------------------ labels
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
