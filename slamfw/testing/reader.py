"""The reader conformance kit: ``check_reader``.

Readers that read files need their parameters (the ``InputPath`` at least) from the caller::

    check_reader(MyReader, {"path": "tests/data/survey.fits"})

It checks the contract of :class:`slamfw.Reader`: ``read()`` returns a valid
:class:`~slamfw.SpectralSet` with at least one star, unique ids and consistent label names and
units, without writing to stdout or stderr (use ``logging``); two reads are equal
(:meth:`~slamfw.SpectralSet.fingerprint`); ``iter_chunks`` yields the same stars in order, and
``chunk_sources``, where it is not None, describes those pieces (each pickles and reads them); and
each ``InputPath`` parameter is honoured: a
nonexistent path raises a :class:`~slamfw.SlamfwError` naming it, an empty copy (an empty
directory or an empty file of the same name) raises a SlamfwError, and a copy of the input in
another directory reads the same spectra. Readers without an input path pass those with a note.
"""
from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import shutil
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..components.base import ParamRole, params_with_role
from ..components.reader import Reader
from ..data.spectra import SpectralSet
from ..errors import SlamfwError
from ._common import Case, CheckResult, NotRun, checker, params_check, raises, resolve, run_checks

__all__ = ["check_reader", "READER_CHECKS", "ReaderCase"]


@dataclasses.dataclass
class _Read:
    """One ``read()``: what it returned (or raised), and what it printed and warned."""

    result: Any = None
    error: str = ""
    printed: str = ""
    warned: list[str] = dataclasses.field(default_factory=list)


@contextlib.contextmanager
def _logging_to(stream: Any) -> Iterator[None]:
    """Send logging's last-resort output (records logged with no handler configured) to
    ``stream`` meanwhile, and keep a broken handler's error report quiet: logging is not printing."""
    saved = logging.lastResort, logging.raiseExceptions
    logging.lastResort = logging.StreamHandler(stream)
    logging.lastResort.setLevel(logging.WARNING)
    logging.raiseExceptions = False
    try:
        yield
    finally:
        logging.lastResort, logging.raiseExceptions = saved


def read_captured(reader: Reader) -> _Read:
    """Call ``reader.read()`` capturing stdout, stderr and warnings."""
    out, err = io.StringIO(), io.StringIO()
    got = _Read()
    with _logging_to(sys.stderr), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
            warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        try:
            got.result = reader.read()
        except Exception as exc:  # noqa: BLE001 - reported by check_read
            got.error = f"{type(exc).__name__}: {exc}"
    got.printed = (out.getvalue() + err.getvalue()).strip()
    got.warned = [f"{x.category.__name__}: {x.message}" for x in w]
    return got


class ReaderCase(Case):
    """A reader class and the caller's parameters; the first ``read()`` is made once."""

    base = Reader

    def __init__(self, cls: type[Reader], params: dict[str, Any]) -> None:
        super().__init__(cls, params)
        self._first: _Read | None = None

    def first(self) -> _Read:
        """The first read, captured."""
        if self._first is None:
            self._first = read_captured(self.fresh())
        return self._first

    def spectra(self) -> SpectralSet:
        """The first read's SpectralSet; :class:`NotRun` when ``read()`` failed."""
        got = self.first()
        if not isinstance(got.result, SpectralSet):
            raise NotRun("read() did not return a SpectralSet")
        return got.result

    def input_paths(self) -> dict[str, str]:
        """The reader's ``InputPath`` parameters that have a value: {name: path}."""
        params = self.fresh().get_params()
        return {k: str(params[k]) for k in params_with_role(self.cls, ParamRole.INPUT_PATH) if params.get(k)}


def _content(ss: SpectralSet) -> tuple[str, list[str], list[str]]:
    return ss.fingerprint(), list(ss.label_names), list(ss.label_units)


check = checker(ReaderCase)
check_params = params_check(ReaderCase)


@check("read() returns a valid SpectralSet")
def check_read(case: ReaderCase) -> str:
    """``read()`` returns a :class:`~slamfw.SpectralSet` that passes its own validation again,
    with at least one star, unique ids, and as many label names and units as label columns."""
    got = case.first()
    if got.error:
        return f"read() raised {got.error}"
    ss = got.result
    if not isinstance(ss, SpectralSet):
        return f"read() returned {type(ss).__name__}, not a SpectralSet"
    dataclasses.replace(ss)  # validates the arrays again (they may have been changed after creation)
    if ss.n_stars < 1:
        return "read() returned no stars"
    if len(set(ss.ids.tolist())) != ss.n_stars:
        return "the star ids are not unique"
    n_lab = 0 if ss.labels is None else ss.labels.shape[1]
    if len(ss.label_names) != n_lab or len(ss.label_units) != n_lab:
        return f"{n_lab} label columns with {len(ss.label_names)} names and {len(ss.label_units)} units"
    if len(set(ss.label_names)) != n_lab:
        return f"duplicate label names {ss.label_names}"
    return f"note: {ss.n_stars} stars, {ss.n_pixels} pixels, labels {ss.label_names}"


@check("read() writes nothing to stdout or stderr")
def check_silent(case: ReaderCase) -> str:
    """``read()`` prints nothing (report through ``logging``); warnings are noted, not failed."""
    got = case.first()
    if got.printed:
        return f"read() printed {got.printed[:200]!r} (use logging)"
    if got.warned:
        return f"note: read() warned: {'; '.join(sorted(set(got.warned)))[:300]}"
    return ""


@check("two reads give the same spectra")
def check_deterministic(case: ReaderCase) -> str:
    """A second ``read()`` of the same instance and a read by a fresh instance give equal
    fingerprints (wave, flux, ivar, mask, labels, ids), label names and units."""
    first = _content(case.spectra())
    reader = case.fresh()
    for what in ("a read by a fresh instance", "a second read by one instance"):
        ss = reader.read()
        if not isinstance(ss, SpectralSet):
            return f"{what} returned {type(ss).__name__}"
        if _content(ss) != first:
            return f"{what} gives other spectra (seed any randomness with a parameter)"
    return ""


@check("iter_chunks gives the stars of read(), in order")
def check_chunks(case: ReaderCase) -> str:
    """``iter_chunks(k)`` yields SpectralSets of at most ``k`` stars whose concatenation equals
    ``read()`` (ids, labels, flux, ivar, mask and metadata; on a grid per star, up to the padding
    that :meth:`~slamfw.SpectralSet.stack` adds to the shorter rows of each set), for a k that
    splits the stars unevenly and for k larger than the set: ``slamfw predict`` streams through it."""
    whole = case.spectra()
    for size in (max(1, (whole.n_stars + 1) // 3), whole.n_stars + 5):
        parts = list(case.fresh().iter_chunks(size))
        if not parts or not all(isinstance(p, SpectralSet) for p in parts):
            return f"iter_chunks({size}) did not yield SpectralSets"
        if any(p.n_stars > size for p in parts):
            return f"iter_chunks({size}) yielded a chunk of {max(p.n_stars for p in parts)} stars"
        if sum(p.n_stars for p in parts) != whole.n_stars:
            return f"iter_chunks({size}) yields {sum(p.n_stars for p in parts)} stars, read() {whole.n_stars}"
        start = 0
        for part in parts:
            if problem := _rows_problem(part, whole.subset(np.arange(start, start + part.n_stars))):
                return f"iter_chunks({size}): the chunks' {problem} differ from read()'s"
            start += part.n_stars
    return ""


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal arrays, NaN equal to NaN (a float column of metadata: a radial velocity not measured)."""
    a, b = np.asarray(a), np.asarray(b)
    return np.array_equal(a, b, equal_nan=a.dtype.kind in "fc" and b.dtype.kind in "fc")


def _missing(a: np.ndarray) -> bool:
    """A column that :meth:`~slamfw.SpectralSet.stack` filled for stars without it (NaN, or "")."""
    a = np.asarray(a)
    return bool(np.all(a == "")) if a.dtype.kind in "USO" else bool(np.all(np.isnan(a.astype(float))))


def _rows_problem(a: SpectralSet, b: SpectralSet) -> str:
    """What differs between two sets of the same stars ('' when nothing): the grid, ids,
    spectra, labels or metadata, as :meth:`~slamfw.SpectralSet.stack` makes them equal: pixels
    that one set has beyond the other's are padding (ivar 0, mask False); stars that share a grid
    may have it once; labels or a metadata column missing from one set are NaN (or "") in the
    other."""
    n = min(a.n_pixels, b.n_pixels)
    if any(x.ivar[:, n:].any() or x.mask[:, n:].any() for x in (a, b)):
        return "pixels"
    shape = (a.n_stars, n)
    if not np.array_equal(np.broadcast_to(a.wave[..., :n], shape), np.broadcast_to(b.wave[..., :n], shape)):
        return "wavelength grids"
    for name in ("flux", "ivar", "mask"):
        if not np.array_equal(getattr(a, name)[:, :n], getattr(b, name)[:, :n]):
            return name
    if not np.array_equal(a.ids, b.ids):
        return "ids"
    if a.labels is None or b.labels is None:
        if not all(x.labels is None or _missing(x.labels) for x in (a, b)):
            return "labels"
    elif list(a.label_names) != list(b.label_names) or not _same(a.labels, b.labels):
        return "labels"
    for key in set(a.meta) | set(b.meta):
        if key not in a.meta or key not in b.meta:
            if not _missing((a.meta if key in a.meta else b.meta)[key]):
                return "metadata"
        elif not _same(a.meta[key], b.meta[key]):
            return "metadata"
    return ""


@check("chunk_sources describes the chunks of iter_chunks")
def check_chunk_sources(case: ReaderCase) -> str:
    """Where ``chunk_sources(k)`` is not None: each description survives pickling (it travels to
    a worker) and says its ``n_stars`` (an int). Its ``read()``, less the stars that
    ``chunk_read`` (given the description as ``read()`` left it, in order) leaves out, gives the
    next stars of ``iter_chunks(k)`` (as :func:`check_chunks` compares them; label units and
    medium too), until every piece's stars are given; a star left out must have been given by an
    earlier description; then ``chunks_read`` runs. For the same sizes as :func:`check_chunks`. A
    reader whose ``chunk_sources`` is None passes with a note."""
    import pickle
    if case.fresh().chunk_sources(1) is None:
        return "note: chunk_sources is None (the pieces are read where iter_chunks runs)"
    whole = case.spectra()
    for size in (max(1, (whole.n_stars + 1) // 3), whole.n_stars + 5):
        reader = case.fresh()
        sources = reader.chunk_sources(size)
        if sources is None:
            return f"chunk_sources({size}) is None, chunk_sources(1) is not"
        parts = list(case.fresh().iter_chunks(size))
        k, offset, given = 0, 0, set()          # the next piece, its next star; the ids given so far
        for i, src in enumerate(sources):
            try:
                src = pickle.loads(pickle.dumps(src))
            except Exception as exc:
                return f"chunk_sources({size}): chunk {i} does not pickle ({type(exc).__name__}: {exc})"
            if not isinstance(src.n_stars, (int, np.integer)) or src.n_stars < 0:
                return f"chunk_sources({size}): chunk {i}'s n_stars is {src.n_stars!r}, not an int >= 0"
            got = src.read()
            if not isinstance(got, SpectralSet):
                return f"chunk_sources({size}): chunk {i}'s read() returned {type(got).__name__}"
            left_out = set(reader.chunk_read(pickle.loads(pickle.dumps(src))))
            if not left_out <= given:
                return (f"chunk_sources({size}): chunk_read leaves out stars {sorted(left_out - given)[:3]} that "
                        f"no earlier chunk gave")
            kept = got.subset(np.flatnonzero(~np.isin(got.ids, list(left_out))))
            given.update(kept.ids.tolist())
            r = 0
            while r < kept.n_stars:
                if k == len(parts):
                    return f"chunk_sources({size}): chunk {i} gives more stars than iter_chunks({size})"
                take = min(kept.n_stars - r, parts[k].n_stars - offset)
                mine, theirs = kept.subset(np.arange(r, r + take)), parts[k].subset(np.arange(offset, offset + take))
                problem = _rows_problem(mine, theirs) or ("wavelength medium" if mine.medium != theirs.medium else "")
                if not problem and mine.labels is not None and theirs.labels is not None and (
                        list(mine.label_units) != list(theirs.label_units)):
                    problem = "label units"
                if problem:
                    return f"chunk_sources({size}): chunk {i}'s read() gives other {problem} than iter_chunks' piece {k}"
                r, offset = r + take, offset + take
                if offset == parts[k].n_stars:
                    k, offset = k + 1, 0
        if k != len(parts):
            return f"chunk_sources({size}) describes {k} of the {len(parts)} pieces of iter_chunks({size})"
        reader.chunks_read()
    return ""


def _missing_path(root: Path, original: str) -> str:
    return str(root / "no-such-dir" / Path(original).name)


@check("a nonexistent input path raises a SlamfwError naming it")
def check_path_missing(case: ReaderCase) -> str:
    """Each ``InputPath`` parameter set to a path that does not exist makes ``read()`` raise a
    :class:`~slamfw.SlamfwError` whose message contains the path."""
    names = case.input_paths()
    if not names:
        return "note: no InputPath parameter"
    with tempfile.TemporaryDirectory() as tmp:
        for name, value in names.items():
            missing = _missing_path(Path(tmp), value)
            msg = raises(lambda k=name, v=missing: case.cls(**{**case.params, k: v}).read(), SlamfwError, contains=missing)
            if msg:
                return f"{name}={missing!r}: {msg}"
    return ""


def _copy_input(original: Path, dest_dir: Path, empty: bool) -> Path:
    dest = dest_dir / original.name
    if original.is_dir():
        if empty:
            dest.mkdir()
        else:
            shutil.copytree(original, dest)
    elif empty:
        dest.touch()
    else:
        shutil.copy2(original, dest)
    return dest


@check("the input path is honoured (a copy reads the same, an empty copy fails)")
def check_path_copy(case: ReaderCase) -> str:
    """For each ``InputPath`` parameter: a copy of the file or directory (``shutil.copytree`` or
    ``copy2``, under the same name in another directory) reads the same spectra (fingerprint,
    label names and units; ``source`` may differ); an empty directory or empty file of the same
    name makes ``read()`` raise a :class:`~slamfw.SlamfwError`. A file is copied alone: a reader
    whose input file needs files beside it should take a directory."""
    names = case.input_paths()
    if not names:
        return "note: no InputPath parameter"
    first = _content(case.spectra())
    with tempfile.TemporaryDirectory() as tmp:
        for name, value in names.items():
            original = Path(value)
            if not original.exists():
                return f"{name}={str(original)!r} does not exist"
            copy = _copy_input(original, Path(tmp), empty=False)
            ss = case.cls(**{**case.params, name: str(copy)}).read()
            if not isinstance(ss, SpectralSet) or _content(ss) != first:
                return f"reading a copy of {name} at {str(copy)!r} gives other spectra"
            shutil.rmtree(copy) if copy.is_dir() else copy.unlink()
            empty = _copy_input(original, Path(tmp), empty=True)
            msg = raises(lambda k=name, v=str(empty): case.cls(**{**case.params, k: v}).read(), SlamfwError)
            if msg:
                return f"{name} = an empty {'directory' if empty.is_dir() else 'file'}: {msg}"
            shutil.rmtree(empty) if empty.is_dir() else empty.unlink()
    return ""


#: The reader checks, in the order :func:`check_reader` runs them.
READER_CHECKS = [check_params, check_read, check_silent, check_deterministic, check_chunks, check_chunk_sources,
                 check_path_missing, check_path_copy]


def check_reader(reader: type[Reader] | Reader, params: dict[str, Any] | None = None, *,
                 raise_on_fail: bool = True) -> list[CheckResult]:
    """Run the reader contract checks (:data:`READER_CHECKS`); one :class:`CheckResult` each.

    Parameters
    ----------
    reader : a :class:`~slamfw.Reader` subclass (built with ``params``) or an instance (its
        ``get_params()`` are used for every fresh copy the checks need).
    params : for a class: the parameters to read with, e.g. ``{"path": ...}`` for readers of files.
    raise_on_fail : raise :class:`~slamfw.testing.ComponentCheckError` naming the failed checks.
    """
    cls, params = resolve(reader, params, Reader)
    return run_checks(READER_CHECKS, ReaderCase(cls, params), raise_on_fail)
