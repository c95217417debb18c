"""Atomic writes, and a folder of finished pieces of work (the unit of resumption).

Everything slamfw writes goes to a temporary name beside the target and is renamed into place,
so a kill never leaves a half-written file under its final name. :class:`ChunkStore` keeps one
``.npz`` per finished piece (a block of pixels in training, a chunk of spectra in inference); a
piece that cannot be read back (cut short by a kill, damaged) is simply redone.
"""
from __future__ import annotations

import logging
import os
import shutil
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

log = logging.getLogger(__name__)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed to ``path``, else removed.

    The temporary name keeps the suffix, so writers that choose the format by suffix still work.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def save_npz(path: str | os.PathLike, arrays: dict[str, np.ndarray], compressed: bool = False) -> Path:
    """Write ``arrays`` to ``path`` atomically (``np.savez``; no object arrays)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        (np.savez_compressed if compressed else np.savez)(fh, **arrays)
    return Path(path)


class ChunkStore:
    """Finished pieces of one job, one ``<prefix>_<index>.npz`` each, in ``folder``."""

    def __init__(self, folder: str | os.PathLike, prefix: str = "chunk") -> None:
        self.folder = Path(folder)
        self.prefix = prefix
        self.folder.mkdir(parents=True, exist_ok=True)

    def path(self, key: int | str) -> Path:
        """The file of piece ``key`` (an index, or a name such as a hash of what the piece holds)."""
        return self.folder / (f"{self.prefix}_{key:05d}.npz" if isinstance(key, int) else f"{self.prefix}_{key}.npz")

    def load(self, key: int | str) -> dict[str, np.ndarray] | None:
        """The arrays of piece ``key``, or None when it is missing or unreadable (then redone)."""
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as err:
            log.warning("%s is unreadable (%s: %s); it will be redone", path, type(err).__name__, err)
            return None

    def save(self, key: int | str, arrays: dict[str, np.ndarray]) -> Path:
        return save_npz(self.path(key), arrays)

    def discard(self, keys: list[int | str]) -> None:
        """Delete the pieces ``keys`` (and the folder, then its parent, once they are empty): another
        job's pieces in the same folder are left alone."""
        for key in keys:
            self.path(key).unlink(missing_ok=True)
        for folder in (self.folder, self.folder.parent):
            try:
                folder.rmdir()
            except OSError:
                break  # not empty

    def remove(self) -> None:
        """Delete the folder and everything in it (once the job has succeeded), and its parent
        folder too if that is left empty (``.checkpoints/`` once the last job in it is done)."""
        shutil.rmtree(self.folder, ignore_errors=True)
        try:
            self.folder.parent.rmdir()
        except OSError:
            pass  # not empty: another job's pieces are still there
