"""Output directories: checked before any work, one run at a time, complete or visibly not.

- **Checks before any work** (:func:`plan_outputs`, :func:`check_catalog_output`): ``output.dir``
  must be a folder that can be created and written (not a file, not below a file); a relative
  ``output.model_file`` must stay inside ``output.dir`` (an absolute one may go anywhere); an
  existing file at an output path is overwritten only if slamfw wrote it (a model whose metadata
  says ``slamfw-model``, a catalogue carrying slamfw's comment, a ``config.yaml``/``report.md``
  with slamfw's header, a file the last run listed), or with ``force``.
- **One run at a time** (:class:`OutputDir`): ``<dir>/.slamfw.lock`` (JSON: host, pid, command,
  argv, start time) is created atomically at the start and removed at the end, whatever the end
  (success, error, ``KeyboardInterrupt``). A second run into a locked directory is refused,
  naming the holder; a lock whose process is gone (same host, pid no longer alive) is taken over
  with a warning.
- **Complete or visibly not**: the completion marker ``<dir>/.slamfw-complete`` (JSON: format,
  slamfw version, command, start and end time, the outputs of the run) is removed at the start and
  written last. At the end, the earlier run's outputs that this run did not write again are moved
  into ``<dir>/.stale-<UTC time>/`` (with the earlier ``config.yaml``), so the folder never holds
  a mix of runs. A run that fails before writing anything but ``config.yaml`` puts the earlier
  ``config.yaml`` and marker back: the folder is as the earlier run left it.
"""
from __future__ import annotations

import contextvars
import datetime as _dt
import json
import logging
import os
import shutil
import socket
import sys
import uuid
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from .._version import __version__
from ..data.files import REJECTED_FILE
from ..errors import OutputError, SlamfwError  # noqa: F401  (OutputError: also importable from here)
from ..execution.liveness import pid_alive, process_start
from ..execution.store import atomic_path

log = logging.getLogger(__name__)

LOCK_FILE = ".slamfw.lock"
MARKER_FILE = ".slamfw-complete"
STALE_PREFIX = ".stale-"
CONFIG_FILE = "config.yaml"
CONFIG_HEADER = "# resolved slamfw config"
MARKER_FORMAT = "slamfw-output"
#: Files slamfw writes into an output directory under fixed names (beside the model file and
#: whatever the analyzers write); an earlier run's are moved aside when a run does not rewrite them.
KNOWN_OUTPUTS = ("config.yaml", "report.md", "catalog.fits", "catalog.fits.gz", "catalog.ecsv", REJECTED_FILE,
                 "compare.json", "compare.md", "compare_cv.ecsv")
#: The comment slamfw's catalogues carry (``make_catalog``), in FITS COMMENT cards and ECSV meta.
CATALOG_SIGNATURE = "slamfw label catalogue"

_FORCE: contextvars.ContextVar[bool] = contextvars.ContextVar("slamfw_force_outputs", default=False)


@contextmanager
def forcing(force: bool = True) -> Iterator[None]:
    """Within the block, workflows may overwrite existing files slamfw did not write (``--force``)."""
    token = _FORCE.set(bool(force))
    try:
        yield
    finally:
        _FORCE.reset(token)


def forced(force: bool | None = None) -> bool:
    """``force`` if given, else whether a :func:`forcing` block is active."""
    return _FORCE.get() if force is None else bool(force)


# ---------------------------------------------------------------- recognising slamfw's files

def _head(path: Path, n: int = 65536) -> str:
    try:
        with open(path, "rb") as fh:
            return fh.read(n).decode("utf-8", "replace")
    except OSError:
        return ""


def is_slamfw_model(path: str | os.PathLike) -> bool:
    """A model file slamfw wrote: an npz archive whose metadata names the slamfw model format (read
    without loading the emulator, so a model of an emulator not installed here counts too)."""
    import numpy as np
    try:
        with np.load(path, allow_pickle=False) as npz:
            if "__metadata__" not in npz.files:
                return False
            return json.loads(str(npz["__metadata__"])).get("format") == "slamfw-model"
    except (OSError, ValueError, EOFError, KeyError, AttributeError, zipfile.BadZipFile, json.JSONDecodeError):
        return False


def is_slamfw_catalog(path: str | os.PathLike) -> bool:
    """A catalogue slamfw wrote: FITS whose table header, or ECSV whose header, carries slamfw's comment."""
    path = Path(path)
    name = path.name.lower()
    if name.endswith(".ecsv"):
        header = "".join(line for line in _head(path).splitlines(keepends=True) if line.startswith("#"))
        return CATALOG_SIGNATURE in header or (name == "compare_cv.ecsv" and "train_p50" in header)
    try:
        from astropy.io import fits
        with fits.open(path, memmap=False) as hdus:
            return any(CATALOG_SIGNATURE in str(hdu.header.get("COMMENT", "")) for hdu in hdus[1:])
    except Exception:  # not FITS, damaged, ...
        return False


def is_slamfw_output(path: str | os.PathLike, listed: set[str] | frozenset[str] = frozenset()) -> bool:
    """Whether the file ``path`` is one slamfw wrote (and may overwrite): listed by the earlier
    run's completion marker (``listed``: absolute paths), or recognised by its content."""
    path = Path(path)
    if str(path.absolute()) in listed:
        return True
    name = path.name.lower()
    if name.endswith(".npz"):
        return is_slamfw_model(path)
    if name.endswith((".fits", ".fits.gz", ".fit", ".ecsv")):
        return is_slamfw_catalog(path)
    head = _head(path, 4096)
    if name.endswith((".yaml", ".yml")):
        return head.startswith(CONFIG_HEADER)
    if name.endswith(".md"):
        return head.startswith("# slamfw")
    if name.endswith(".csv"):
        return head.startswith("set,file,reason")
    if name.endswith(".json"):
        try:
            doc = json.loads(_head(path, 1 << 26))
        except json.JSONDecodeError:
            return False
        return isinstance(doc, dict) and ("slamfw_version" in doc or doc.get("format") == MARKER_FORMAT)
    return False


# ---------------------------------------------------------------- checking paths before any work

def check_dir(path: str | os.PathLike, key: str, file: str | os.PathLike | None = None) -> Path:
    """``path`` (absolute) if it is, or can be made, a folder slamfw can write in; else an
    :class:`OutputError` naming ``key`` (and ``file``, when ``path`` is that file's folder).
    Creates nothing."""
    given = str(path)
    subject = f"{key} {given!r}" if file is None else f"{key} {str(file)!r}: its folder {given!r}"
    p = Path(path).expanduser().absolute()
    cur = p
    while not cur.exists():
        if cur.is_symlink():
            raise OutputError(f"{subject}: {str(cur)!r} is a broken symbolic link")
        if cur.parent == cur:
            break
        cur = cur.parent
    if cur.exists() and not cur.is_dir():
        where = "is a file" if cur == p else f"is below the file {str(cur)!r}"
        raise OutputError(f"{subject} {where}, so it cannot be a folder; choose another {key}")
    if not os.access(cur, os.W_OK | os.X_OK):
        what = "cannot be written in" if cur == p else f"cannot be created in {str(cur)!r}"
        raise OutputError(f"{subject} {what} (permission denied)")
    return p


def inside_dir(out: Path, rel: str | os.PathLike, key: str) -> Path:
    """``out / rel``; an :class:`OutputError` when a relative ``rel`` leads outside ``out`` (an
    absolute path may point anywhere: the user named it)."""
    p = Path(rel).expanduser()
    if p.is_absolute():
        full = Path(os.path.normpath(p))
    else:
        full = Path(os.path.normpath(out / p))
        if out not in full.parents:
            raise OutputError(f"{key} {str(rel)!r} leads outside output.dir ({str(out)!r}); give a name inside "
                              f"it, or an absolute path to write elsewhere")
    if full == out:
        raise OutputError(f"{key} {str(rel)!r} names output.dir itself, not a file in it")
    return full


def check_file(path: Path, key: str, force: bool, listed: set[str] | frozenset[str] = frozenset()) -> Path:
    """``path`` may be written: its folder is usable, it is no folder, and it is missing, a file
    slamfw wrote, or ``force`` is given."""
    check_dir(path.parent, key, file=path)
    if path.is_dir():
        raise OutputError(f"{key} {str(path)!r} is a folder; it must name a file")
    if path.exists() and not force and not is_slamfw_output(path, listed):
        raise OutputError(f"{key} {str(path)!r} exists and was not written by slamfw: it is not overwritten "
                          f"(choose another path, move it away, or use --force to overwrite it)")
    return path


def check_catalog_output(output: str | os.PathLike, force: bool | None = None, key: str = "--output") -> Path:
    """The catalogue path of ``predict``, checked before any work: a suffix the catalogue writer
    knows, a usable folder, no file slamfw did not write there or at its ``-rejected.csv``
    (unless ``force``), and not a folder another run is writing into or an output of a finished
    run (its completion marker lists it; unless ``force``)."""
    from ..data.catalog import check_catalog_path
    from ..data.files import rejected_path
    path = check_catalog_path(output)
    check_standalone_output(Path(path), key, forced(force))
    check_file(rejected_path(Path(path)).absolute(), f"{key} (its list of rejected files)", forced(force))
    return path


def check_standalone_output(path: Path, key: str, force: bool) -> Path:
    """A file written by a command that owns no folder (``predict``, ``convert``): a usable path,
    no file slamfw did not write (unless ``force``), not in a folder a run holds, and not a file
    of a finished run's set (its completion marker lists it), unless ``force``."""
    full = path.absolute()
    check_file(full, key, force)
    check_unlocked(full.parent)
    listed = _marker_paths(full.parent, _read_marker(full.parent)) if full.parent.is_dir() else set()
    if str(full) in listed and not force:
        raise OutputError(f"{key} {str(path)!r} is an output of the finished run in {str(full.parent)!r} (listed in "
                          f"its {MARKER_FILE}): writing it would leave that folder's set of outputs mixed. Choose "
                          f"another path, or use --force")
    return full


def check_unlocked(folder: Path) -> None:
    """An :class:`OutputError` naming the holder when another live run holds ``folder``'s lock
    (checked before any work; the run itself takes the lock when it starts)."""
    path = Path(folder) / LOCK_FILE
    text, holder = _read_lock(path)
    if text is None or (holder is not None and (_is_stale(holder) or holder.get("token") in _HELD)):
        return
    who = describe_holder(holder) if holder is not None else f"an unreadable lock {str(path)!r}"
    raise OutputError(f"{str(folder)!r} is in use by another run: {who}. One run at a time writes into a folder: "
                      f"wait for it to finish, or choose another folder. If that run is gone, delete {str(path)!r}.")


def _read_marker(out: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads((out / MARKER_FILE).read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _marker_paths(out: Path, doc: dict[str, Any] | None) -> set[str]:
    """Absolute paths of the outputs a completion marker lists."""
    if not doc:
        return set()
    paths = set()
    for entry in doc.get("outputs", []) or []:
        if isinstance(entry, str) and entry:
            p = Path(entry)
            paths.add(str(p if p.is_absolute() else Path(os.path.normpath(out / entry.rstrip("/")))))
    return paths


@dataclass
class OutputPlan:
    """What a workflow will write: the folder (absolute), the model file (or None), and every
    file it writes under a fixed name, each checked."""

    dir: Path
    command: str
    model_path: Path | None = None
    files: list[Path] = field(default_factory=list)
    #: Inputs inside the folder that must not be moved aside (``emulator.model``).
    inputs: list[Path] = field(default_factory=list)


def plan_outputs(cfg: Any, command: str, force: bool | None = None, out: str | os.PathLike | None = None
                 ) -> OutputPlan:
    """Check every output path of ``slamfw run`` (``command`` "run"), ``train`` or ``compare`` for
    the config, before any work; ``out`` overrides ``output.dir`` (compare's per-emulator folders)."""
    force = forced(force)
    key = "output.dir"
    folder = check_dir(cfg.output.dir if out is None else out, key)
    check_unlocked(folder)
    listed = _marker_paths(folder, _read_marker(folder)) if folder.is_dir() else set()
    plan = OutputPlan(folder, command)
    check_file(folder / REJECTED_FILE, REJECTED_FILE, force, listed)   # written only when a file is rejected
    emu = getattr(cfg, "emulator", None)
    loading = emu is not None and bool(getattr(emu, "model", None))
    if loading:
        plan.inputs.append(Path(emu.model).expanduser().absolute())
    if command in ("run", "train"):
        plan.files.append(check_file(folder / CONFIG_FILE, "config.yaml", force, listed))
        if not loading:
            plan.model_path = check_file(inside_dir(folder, cfg.output.model_file, "output.model_file"),
                                         "output.model_file", force, listed)
    if command == "run":
        if cfg.data.test is not None:
            for fmt in cfg.output.formats:
                plan.files.append(check_file(folder / f"catalog.{fmt}", "output.formats", force, listed))
        plan.files.append(check_file(folder / "report.md", "report.md", force, listed))
    if command == "compare":
        for name in ("compare.json", "compare.md", "compare_cv.ecsv"):
            plan.files.append(check_file(folder / name, name, force, listed))
    return plan


# ---------------------------------------------------------------- the lock

def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


#: Tokens of the locks this process holds.
_HELD: set[str] = set()


def describe_holder(holder: dict[str, Any]) -> str:
    argv = holder.get("argv")
    cmd = " ".join(map(str, argv)) if isinstance(argv, list) and argv else "?"
    return (f"slamfw {holder.get('command', '?')} (pid {holder.get('pid', '?')} on host {holder.get('host', '?')}, "
            f"started {holder.get('started', '?')}; command line: {cmd})")


def _create_exclusive(path: Path, text: str) -> bool:
    """Create ``path`` holding ``text``, atomically, only if it does not exist."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(text)
    try:
        os.link(tmp, path)        # atomic, and the lock is complete as soon as it exists
        return True
    except FileExistsError:
        return False
    except OSError:               # no hard links on this file system
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        return True
    finally:
        tmp.unlink(missing_ok=True)


def _read_lock(path: Path) -> tuple[str | None, dict[str, Any] | None]:
    """(text, holder) of a lock; text None when it is gone, holder None when it is unreadable."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None, None
    except OSError:
        return "", None
    try:
        holder = json.loads(text)
    except ValueError:
        return text, None
    return text, holder if isinstance(holder, dict) else None


def _is_stale(holder: dict[str, Any]) -> bool:
    if holder.get("host") != socket.gethostname():
        return False  # another machine's process cannot be checked
    try:
        pid = int(holder["pid"])
    except (KeyError, TypeError, ValueError):
        return False
    if pid == os.getpid():
        return holder.get("token") not in _HELD   # ours by pid only: a restarted container's reused pid
    return not pid_alive(pid, holder.get("proc_start"))


def acquire_lock(folder: Path, command: str) -> dict[str, Any]:
    """Take ``folder/.slamfw.lock`` for this process; an :class:`OutputError` naming the holder if
    another live run holds it. A lock whose process is gone (same host) is taken over, with a warning."""
    path = folder / LOCK_FILE
    info = {"host": socket.gethostname(), "pid": os.getpid(), "command": command, "argv": list(sys.argv),
            "started": _now(), "slamfw_version": __version__, "proc_start": process_start(os.getpid()),
            "token": uuid.uuid4().hex}
    text = json.dumps(info, indent=1)
    for _ in range(5):
        if _create_exclusive(path, text):
            _HELD.add(info["token"])
            return info
        old_text, holder = _read_lock(path)
        if old_text is None:
            continue  # released meanwhile
        if holder is None:
            raise OutputError(f"output.dir {str(folder)!r} is locked by {str(path)!r}, which cannot be read; if no "
                              f"slamfw run is writing into this folder, delete that file and run again")
        if not _is_stale(holder):
            same = holder.get("token") in _HELD
            raise OutputError(
                f"output.dir {str(folder)!r} is in use by {'this process: ' if same else 'another run: '}"
                f"{describe_holder(holder)}. One run at a time writes into a folder: wait for it to finish, or "
                f"choose another output.dir. If that run is gone, delete {str(path)!r}.")
        log.warning("output.dir %s: taking over the stale lock of %s: that process is no longer running",
                    folder, describe_holder(holder))
        aside = path.with_name(f"{LOCK_FILE}.stale.{os.getpid()}.{uuid.uuid4().hex[:8]}")
        try:
            os.rename(path, aside)
        except FileNotFoundError:
            continue
        if aside.read_text() != old_text:   # another process took it over in between: give it back
            try:
                os.link(aside, path)
            except OSError:
                pass
        aside.unlink(missing_ok=True)
    raise OutputError(f"output.dir {str(folder)!r}: could not take the lock {str(path)!r} (other runs keep taking it)")


def release_lock(folder: Path, info: dict[str, Any]) -> None:
    """Remove the lock if it is still this run's."""
    path = folder / LOCK_FILE
    _HELD.discard(info["token"])
    _, holder = _read_lock(path)
    if holder is not None and holder.get("token") == info["token"]:
        path.unlink(missing_ok=True)
    elif holder is not None:
        log.warning("output.dir %s: the lock was taken over by %s while this run held it", folder,
                    describe_holder(holder))


# ---------------------------------------------------------------- one run in a folder

def _stat(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def _visible(entry: os.DirEntry) -> bool:
    return not entry.name.startswith(".")


class OutputDir:
    """The folder of one run, from start to end (a context manager)::

        with OutputDir(plan) as rd:          # checks the lock, removes the marker, notes what is there
            ...                               # writes outputs; rd.add(path) for outputs kept or outside
        # success: stale outputs moved aside, marker written last; failure: see the module doc; lock released
    """

    def __init__(self, plan: OutputPlan) -> None:
        self.plan = plan
        self.dir = plan.dir
        self.command = plan.command
        self._lock: dict[str, Any] | None = None
        self._added: set[str] = set()
        self.stale_dir: Path | None = None

    # -- start
    def __enter__(self) -> "OutputDir":
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise OutputError(f"output.dir {str(self.dir)!r} cannot be created: {err.strerror or err}") from None
        self._lock = acquire_lock(self.dir, self.command)
        try:
            self._begin()
        except BaseException:
            release_lock(self.dir, self._lock)
            raise
        return self

    def _begin(self) -> None:
        self.started = _now()
        marker = self.dir / MARKER_FILE
        self._old_marker = marker.read_bytes() if marker.is_file() else None
        old_doc = _read_marker(self.dir)
        listed = _marker_paths(self.dir, old_doc)
        cfg_path = self.dir / CONFIG_FILE
        self._old_config = cfg_path.read_bytes() if cfg_path.is_file() else None
        self._snapshot = self._scan()
        keep = {str(p) for p in self.plan.inputs}
        previous: set[str] = set()
        for p in listed:            # what the earlier run wrote, inside this folder, still there
            path = Path(p)
            if self.dir in path.parents and path.exists():
                previous.add(p)
        candidates = [self.dir / name for name in KNOWN_OUTPUTS]
        if self.plan.model_path is not None and self.dir in self.plan.model_path.parents:
            candidates.append(self.plan.model_path)
        for path in candidates:     # slamfw's files under fixed names (an earlier run killed before its marker)
            if path.is_file() and is_slamfw_output(path):
                previous.add(str(path))
        self._previous = sorted(previous - keep)
        marker.unlink(missing_ok=True)   # from now on the folder does not look complete

    def _scan(self) -> dict[str, Any]:
        """The visible entries of the folder: files by (inode, mtime, size), sub-folders by their marker."""
        snap: dict[str, Any] = {}
        with os.scandir(self.dir) as it:
            for entry in it:
                if not _visible(entry):
                    continue
                path = Path(entry.path)
                if entry.is_dir():
                    snap[str(path)] = ("dir", _stat(path / MARKER_FILE), (path / LOCK_FILE).exists())
                else:
                    snap[str(path)] = _stat(path)
        return snap

    def add(self, path: str | os.PathLike) -> None:
        """Count ``path`` among this run's outputs: one written outside the folder, or an earlier
        output this run keeps (a reused model)."""
        self._added.add(str(Path(path).expanduser().absolute()))

    def changed(self) -> set[str]:
        """Absolute paths this run wrote, changed or removed in the folder, and the ones added."""
        now = self._scan()
        out = {p for p, s in now.items() if self._snapshot.get(p) != s}
        out |= {p for p in self._snapshot if p not in now}
        return out | self._added

    # -- end
    def __exit__(self, exc_type, exc, tb) -> bool:
        try:
            if exc_type is None:
                self._complete()
            else:
                self._failed(exc)
        except Exception as err:   # never hide the run's own error
            if exc_type is None:
                raise
            log.warning("output.dir %s: tidying up after the failed run failed too: %s: %s", self.dir,
                        type(err).__name__, err)
        finally:
            if self._lock is not None:
                release_lock(self.dir, self._lock)
                self._lock = None
        return False

    def _rel(self, path: str) -> str:
        p = Path(path)
        if self.dir in p.parents:
            rel = p.relative_to(self.dir).as_posix()
            return rel + "/" if p.is_dir() else rel
        return str(p)

    def _move_stale(self, written: set[str], reason: str) -> list[str]:
        """Move the earlier run's outputs that this run did not write into ``.stale-<time>/``."""
        stale = [p for p in self._previous if p not in written and Path(p).exists()]
        config_replaced = self._old_config is not None and str(self.dir / CONFIG_FILE) in written
        if not stale:
            return []
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        target = self.dir / f"{STALE_PREFIX}{stamp}"
        n = 1
        while target.exists():
            n += 1
            target = self.dir / f"{STALE_PREFIX}{stamp}-{n}"
        target.mkdir()
        moved = []
        for p in stale:
            rel = Path(p).relative_to(self.dir)
            (target / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.move(p, target / rel)
            moved.append(rel.as_posix())
        if config_replaced:
            (target / CONFIG_FILE).write_bytes(self._old_config)
            moved.append(CONFIG_FILE + " (the earlier run's)")
        try:
            earlier = None if self._old_marker is None else json.loads(self._old_marker)
        except ValueError:
            earlier = None
        info = {"moved": _now(), "reason": reason, "files": moved, "earlier_marker": earlier}
        (target / "stale.json").write_text(json.dumps(info, indent=1))
        self.stale_dir = target
        log.warning("output.dir %s: %d output(s) of an earlier run that this run did not write again moved to %s: %s",
                    self.dir, len(moved), target, ", ".join(moved))
        return moved

    def _complete(self) -> None:
        written = self.changed()
        self._move_stale(written, f"replaced by the slamfw {self.command} run started {self.started}")
        outputs = sorted(self._rel(p) for p in written if Path(p).exists())
        doc = {"format": MARKER_FORMAT, "slamfw_version": __version__, "command": self.command,
               "started": self.started, "finished": _now(), "outputs": outputs}
        with atomic_path(self.dir / MARKER_FILE) as tmp:
            tmp.write_text(json.dumps(doc, indent=1))

    def _failed(self, exc: BaseException | None) -> None:
        written = self.changed()
        cfg_path = str(self.dir / CONFIG_FILE)
        if written <= {cfg_path}:   # nothing but config.yaml: put the folder back as it was
            if cfg_path in written:
                if self._old_config is not None:
                    with atomic_path(cfg_path) as tmp:
                        tmp.write_bytes(self._old_config)
                else:
                    Path(cfg_path).unlink(missing_ok=True)
            if self._old_marker is not None:
                with atomic_path(self.dir / MARKER_FILE) as tmp:
                    tmp.write_bytes(self._old_marker)
            log.info("output.dir %s: the run wrote no result; the folder is left as it was before it", self.dir)
            return
        what = "interrupted" if isinstance(exc, KeyboardInterrupt) else f"failed ({type(exc).__name__}: {exc})"
        self._move_stale(written, f"the slamfw {self.command} run started {self.started} {what}")
        log.warning("output.dir %s: the run %s; the folder holds its config.yaml and what it finished, with no "
                    "completion marker (%s)", self.dir, what.split(" (")[0], MARKER_FILE)


def read_completion(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The completion marker of ``folder`` (None: no finished run there, or one is being rewritten)."""
    return _read_marker(Path(folder).expanduser().absolute())
