"""Atomic writes, and a folder of finished pieces of work (the unit of resumption).

Everything slamfw writes goes to a temporary name beside the target and is renamed into place,
so a kill never leaves a half-written file under its final name. :class:`ChunkStore` keeps one
``.npz`` per finished piece (a block of pixels in training, a chunk of spectra in inference); a
piece that cannot be read back (cut short, damaged, written by something else, or not what the
caller expects) is logged, removed and redone: a damaged checkpoint never fails a rerun.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import socket
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Mapping

import numpy as np

from ..errors import OutputError
from .liveness import pid_alive, process_start

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


#: The array under which :meth:`ChunkStore.save` records the SHA-256 of a piece's other arrays.
DIGEST_KEY = "__chunkstore_sha256__"

#: A caller's check of a piece it loads: None (or True) when the arrays are what it expects, else a
#: short reason (or False); an exception it raises counts as a reason too.
Validator = Callable[[dict[str, np.ndarray]], "str | bool | None"]


def _digest(arrays: Mapping[str, np.ndarray]) -> str:
    """SHA-256 of the names, dtypes, shapes and bytes of ``arrays``."""
    h = hashlib.sha256()
    for key in sorted(arrays):
        a = np.ascontiguousarray(arrays[key])
        h.update(json.dumps([key, a.dtype.str, list(a.shape)]).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def check_arrays(arrays: Mapping[str, np.ndarray], spec: Mapping[str, tuple[str, tuple[int | None, ...] | None]],
                 optional: Mapping[str, tuple[str, tuple[int | None, ...] | None]] | None = None) -> str | None:
    """What is wrong with ``arrays`` for a caller that expects ``spec`` (and, when present,
    ``optional``): ``{name: (dtype kinds, shape)}``, kinds as in ``numpy.dtype.kind`` (``"f"``,
    ``"fi"``, ``"b"``, ``"U"``; ``""`` any), shape a tuple whose ``None`` entries take any length
    (None: any shape). Returns None when they match, else the first mismatch in words: a
    :class:`ChunkStore` ``validate`` callback in one line.
    """
    for name, (kinds, shape) in list(spec.items()) + list((optional or {}).items()):
        if name not in arrays:
            if name in spec:
                return f"no array {name!r}"
            continue
        a = np.asarray(arrays[name])
        if kinds and a.dtype.kind not in kinds:
            return f"array {name!r} has dtype {a.dtype}, expected kind {kinds!r}"
        if shape is not None and (a.ndim != len(shape)
                                  or any(want is not None and got != want for got, want in zip(a.shape, shape))):
            want_txt = "(" + ", ".join("*" if w is None else str(w) for w in shape) + ")"
            return f"array {name!r} has shape {a.shape}, expected {want_txt}"
    return None


#: The start of the name of the file that marks a folder of pieces in use by a process (:meth:`ChunkStore.in_use`).
_IN_USE = ".in-use-"
#: The file of the pieces a finished run left to the folder's other users to delete.
_PENDING = ".pending-removal"


def _marker_name(pid: int) -> str:
    return f"{_IN_USE}{socket.gethostname()}-{pid}"


class ChunkStore:
    """Finished pieces of one job, one ``<prefix>_<index>.npz`` each, in ``folder``.

    :meth:`save` records a digest of the arrays in the piece; :meth:`load` checks it, and the
    caller's ``validate``, and treats a piece that fails either (or cannot be read at all) as
    missing: it is logged at WARNING with its file name and removed, so the work is redone.
    """

    def __init__(self, folder: str | os.PathLike, prefix: str = "chunk") -> None:
        self.folder = Path(folder)
        self.prefix = prefix
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:      # e.g. under /proc or /sys, which refuse new folders even to root
            raise OutputError(f"cannot create the folder {str(self.folder)!r} for the finished pieces of this job: "
                              f"{err.strerror or err}; choose a folder that can be written") from None

    def path(self, key: int | str) -> Path:
        """The file of piece ``key`` (an index, or a name such as a hash of what the piece holds)."""
        return self.folder / (f"{self.prefix}_{key:05d}.npz" if isinstance(key, int) else f"{self.prefix}_{key}.npz")

    def load(self, key: int | str, validate: Validator | None = None,
             report: Callable[[str], None] | None = None) -> dict[str, np.ndarray] | None:
        """The arrays of piece ``key``, or None when it is missing or unusable (then redone).

        Unusable: the file cannot be read (empty, cut short, not an ``.npz``, a bad CRC), it lacks
        the digest :meth:`save` records or its arrays do not match it, or ``validate`` (see
        :data:`Validator`; :func:`check_arrays` builds the usual one) rejects the arrays. Such a
        piece is logged at WARNING, naming its file and the reason (or that message is passed to
        ``report``: a worker process hands it to the process whose log the user reads), and deleted.
        """
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            arrays = _read_npz(path)
            problem = _check_digest(arrays)
            if problem is None and validate is not None:
                verdict = validate(arrays)
                problem = ("it is not what the caller expects" if verdict is False
                           else None if verdict is None or verdict is True else str(verdict))
        except Exception as err:   # anything at all that stops the piece being read back: redo it
            problem = f"{type(err).__name__}: {err}"
        if problem is None:
            return arrays
        self._drop_damaged(path, problem, report)
        return None

    def _drop_damaged(self, path: Path, problem: str, report: Callable[[str], None] | None = None) -> None:
        try:
            path.unlink(missing_ok=True)
            what = "removed"
        except OSError as err:
            what = f"could not be removed ({err})"
        (report or log.warning)(f"checkpoint {path} is damaged or unusable ({problem}); {what}, it will be redone")

    def save(self, key: int | str, arrays: dict[str, np.ndarray]) -> Path:
        """Write piece ``key`` atomically, with a digest of its arrays that :meth:`load` checks."""
        if DIGEST_KEY in arrays:
            raise ValueError(f"{DIGEST_KEY!r} is reserved by ChunkStore")
        arrays = {k: np.asarray(v) for k, v in arrays.items()}
        return save_npz(self.path(key), {**arrays, DIGEST_KEY: np.asarray(_digest(arrays))})

    @contextmanager
    def in_use(self) -> Iterator[None]:
        """While the block runs, this process uses the pieces in the folder (a marker file says so):
        :meth:`discard` in another process then leaves its pieces for the last user to remove. Two
        ``predict`` runs of the same model into one folder may share pieces; the first to finish
        deleted them under the other."""
        marker = self.folder / _marker_name(os.getpid())
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            marker.write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid(),
                                          "proc_start": process_start(os.getpid())}))
        except OSError as err:
            raise OutputError(f"cannot mark the folder {str(self.folder)!r} in use: {err.strerror or err}") from None
        try:
            yield
        finally:
            marker.unlink(missing_ok=True)
            self._remove_empty_folders()

    def _used_by_others(self) -> bool:
        """Whether another live process marks the folder in use (:meth:`in_use`). A marker of this
        machine whose process is gone (a killed run) is removed; one of another machine counts as
        in use, and is named, so that a user can remove it once that run is over."""
        host, mine = socket.gethostname(), _marker_name(os.getpid())
        for marker in self.folder.glob(f"{_IN_USE}*"):
            if marker.name == mine:
                continue
            try:
                holder = json.loads(marker.read_text())
                pid, where = int(holder["pid"]), str(holder["host"])
            except (OSError, ValueError, KeyError, TypeError):
                continue                        # being written, or not ours
            if where == host and not pid_alive(pid, holder.get("proc_start")):
                marker.unlink(missing_ok=True)  # left by a killed run
                continue
            if where != host:
                log.warning("the finished pieces in %s are marked in use by process %d of %s (%s): they are left "
                            "to it; remove that file if that run is over", self.folder, pid, where, marker.name)
            return True
        return False

    def discard(self, keys: list[int | str]) -> None:
        """Delete the pieces ``keys`` (and the folder, then its parent, once they are empty): another
        job's pieces in the same folder are left alone. While another process uses the folder
        (:meth:`in_use`), the keys are noted instead, and the last user deletes them with its own."""
        pending = self.folder / _PENDING
        if self._used_by_others():
            log.info("the finished pieces in %s are in use by another run: it will remove them", self.folder)
            with open(pending, "a") as fh:
                fh.write("".join(f"{json.dumps(key)}\n" for key in keys))
            return
        try:
            noted = [json.loads(line) for line in pending.read_text().splitlines() if line.strip()]
        except (OSError, ValueError):
            noted = []
        for key in [*keys, *noted]:
            self.path(key).unlink(missing_ok=True)
        pending.unlink(missing_ok=True)
        self._remove_empty_folders()

    def _remove_empty_folders(self) -> None:
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


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of the ``.npz`` at ``path`` (no pickles); raises when it cannot be read."""
    with np.load(path, allow_pickle=False) as z:
        if not hasattr(z, "files"):
            raise ValueError("not an .npz archive")
        return {k: z[k] for k in z.files}


def _check_digest(arrays: dict[str, np.ndarray]) -> str | None:
    """Pop the digest from ``arrays``; what is wrong with them (None: they are the ones saved)."""
    recorded = arrays.pop(DIGEST_KEY, None)
    if recorded is None:
        return "it carries no digest: not written by ChunkStore.save (another program or an older slamfw)"
    if recorded.shape != () or recorded.dtype.kind != "U" or str(recorded) != _digest(arrays):
        return "its arrays do not match the digest recorded when it was written"
    return None
