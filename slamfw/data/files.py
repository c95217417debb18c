"""Many input files at once: a directory, a glob pattern, or a text file listing paths.

Readers of one-star-per-file surveys (LAMOST, APOGEE) share this: :func:`expand_inputs` turns
the user's ``path`` into files, :func:`read_labels_catalogue` reads a catalogue of labels to join
by id.
"""
from __future__ import annotations

import glob
import logging
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import DataError, name_some, repeated

log = logging.getLogger(__name__)

#: The file, in ``output.dir``, that lists the input files a run could not read, and why.
REJECTED_FILE = "rejected.csv"

def rejected_path(output: Path) -> Path:
    """Where a command that writes the file ``output`` (``predict``'s catalogue, ``convert``'s
    spectra) lists the files it could not read: ``<output stem>-rejected.csv`` beside it."""
    return output.with_name(f"{output.name.split('.')[0]}-rejected.csv")


#: Suffixes of a file that lists input paths (one per line) rather than holding spectra.
LIST_SUFFIXES = (".txt", ".lst", ".list")


def _has_glob(text: str) -> bool:
    return any(ch in text for ch in "*?[")


def expand_inputs(spec: str, patterns: Sequence[str], what: str = "input") -> list[Path]:
    """The files that ``spec`` names, sorted (a list file keeps its own order):

    - a directory: its files matching any of ``patterns`` (e.g. ``"*.fits"``), not recursive;
    - a glob pattern (``*``, ``?``, ``[...]``; ``**`` recurses);
    - a text file (``.txt``, ``.lst``, ``.list``) listing one path per line, relative to the list
      file's folder; blank lines and lines starting with ``#`` are skipped;
    - any other file: itself.

    A pattern or directory that matches nothing, or a missing path, is a :class:`DataError`
    naming it. Paths a list file names that do not exist are kept: reading them fails and they
    are rejected with that reason, like an unreadable file.
    """
    spec = str(spec)
    path = Path(spec).expanduser()
    if path.is_dir():
        files = sorted({p for pat in patterns for p in path.glob(pat) if p.is_file()})
        if not files:
            raise DataError(f"{what}: no files matching {' or '.join(patterns)} in the directory {spec!r}")
        return files
    if path.is_file():
        if path.suffix.lower() in LIST_SUFFIXES:
            try:
                lines = path.read_text().splitlines()
            except (OSError, UnicodeDecodeError) as err:
                raise DataError(f"{what}: cannot read the list of files {spec!r}: {err}") from None
            files = [(path.parent / line.strip()).expanduser() if not Path(line.strip()).is_absolute()
                     else Path(line.strip()) for line in lines if line.strip() and not line.lstrip().startswith("#")]
            if not files:
                raise DataError(f"{what}: the list of files {spec!r} names no file")
            return files
        return [path]
    if _has_glob(spec):
        files = sorted(Path(p) for p in glob.glob(str(path), recursive=True) if Path(p).is_file())
        if not files:
            raise DataError(f"{what}: the pattern {spec!r} matches no file")
        return files
    raise DataError(f"{what}: {spec!r} does not exist (give a file, a directory, a glob pattern or a list of files)")


def read_labels_catalogue(path: str, id_column: str, columns: dict[str, str], missing: Sequence[float],
                          what: str = "labels"):
    """A catalogue of labels as an astropy ``Table`` with columns ``id`` (str) and one float
    column per label (``columns`` maps label name -> catalogue column; empty: every numeric
    column but the id, under its own name); values in ``missing`` (e.g. -9999) and masked
    entries become NaN. Errors name the file and the column."""
    from astropy.table import MaskedColumn, Table

    p = Path(path)
    if not p.is_file():
        raise DataError(f"{what}: the label catalogue {path!r} does not exist")
    fmt = "ascii.csv" if p.suffix.lower() == ".csv" else None
    try:
        table = Table.read(p, format=fmt) if fmt else Table.read(p)
    except Exception as err:  # astropy raises many kinds for unreadable tables
        raise DataError(f"{what}: cannot read the label catalogue {path!r}: {type(err).__name__}: {err}") from None
    if id_column not in table.colnames:
        raise DataError(f"{what}: the label catalogue {path!r} has no id column {id_column!r} "
                        f"(it has {table.colnames}); set the reader's labels_id")
    if not columns:
        columns = {c: c for c in table.colnames if c != id_column and table[c].dtype.kind in "fiu"}
    ids = table[id_column]
    no_id = np.asarray(ids.mask) if isinstance(ids, MaskedColumn) else np.zeros(len(table), bool)
    if no_id.any():
        log.warning("%s: %d row(s) of the label catalogue %s have no %s (row(s) %s, counted from 0): left out",
                    what, int(no_id.sum()), path, id_column, name_some(np.flatnonzero(no_id), 5))
        table, ids = table[~no_id], ids[~no_id]
    ids = np.asarray(ids)
    if ids.dtype.kind == "f" and np.all(np.isfinite(ids)) and np.all(ids == np.round(ids)):
        ids = ids.astype(np.int64)                 # an id column written as floats (938505172.0): the stars' ids
    out = Table()
    out["id"] = [str(v).strip() for v in ids]
    for label, col in columns.items():
        if col not in table.colnames:
            raise DataError(f"{what}: the label catalogue {path!r} has no column {col!r} for label {label!r} "
                            f"(it has {table.colnames})")
        c = table[col]
        if c.dtype.kind not in "fiu":
            raise DataError(f"{what}: column {col!r} of {path!r} is not numeric ({c.dtype})")
        values = np.array(c, dtype=float)
        if isinstance(c, MaskedColumn):            # empty cells (an integer column's too): missing values
            values[np.asarray(c.mask)] = np.nan
        for m in missing:
            values[values == m] = np.nan
        if np.isinf(values).any():
            raise DataError(f"{what}: column {col!r} of the label catalogue {path!r} is infinite for star(s) "
                            f"{name_some(out['id'][np.isinf(values)], 5)}; leave a missing value empty, or name "
                            f"its placeholder in labels_missing")
        out[label] = values
    dup = repeated(out["id"])
    if dup.size:
        raise DataError(f"{what}: ids repeat in the label catalogue {path!r}: {name_some(dup, 5, quoted=True)}")
    return out


def write_rejected(reader, path: str | Path, which: str, extra: Sequence[tuple[str, str]] = (),
                   force: bool = False) -> Path | None:
    """Record the files ``reader`` rejected (its ``rejected_``: (file, reason) pairs) as the rows
    of set ``which`` ("train", "test", "survey") in the CSV ``path`` (columns ``set``, ``file``,
    ``reason``), with ``extra`` (what, reason) rows such as stars that preparation excluded,
    replacing that set's rows from an earlier run and keeping the other sets';
    written atomically, and removed when no row is left. Returns the path, or None. A file there
    that is not such a list is an error (checked before any work by the workflows), unless
    ``force``: then it is replaced."""
    from astropy.table import Table

    from ..execution.store import atomic_path

    path = Path(path)
    rows: list[tuple[str, str, str]] = []
    ours = False
    if path.is_file():
        try:
            first = path.open(encoding="utf-8", errors="replace").readline().strip()
        except OSError as err:
            raise DataError(f"cannot read {str(path)!r}: {err}") from None
        ours = first == "set,file,reason"
        if not ours and not force:
            raise DataError(f"{str(path)!r} exists and is not a slamfw list of rejected files; move it away "
                            f"(slamfw writes the files it could not read there), or use --force to replace it")
        if ours:
            try:
                old = Table.read(path, format="ascii.csv")
                rows = [tuple(str(v) for v in r) for r in old.iterrows("set", "file", "reason") if str(r[0]) != which]
            except Exception:  # a damaged list from an earlier run is replaced
                rows = []
    rows += [(which, str(f), str(r)) for f, r in [*(getattr(reader, "rejected_", None) or []), *extra]]
    if not rows:
        if ours:
            path.unlink()
        return None
    table = Table(rows=rows, names=("set", "file", "reason"), dtype=(str, str, str))
    with atomic_path(path) as tmp:
        table.write(tmp, format="ascii.csv", overwrite=True)
    return path
