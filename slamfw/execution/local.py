"""Local worker processes (loky's reusable process pool, as joblib uses): the executor configs get
by default.

Each task's arguments are pickled to its worker (never memory-mapped: joblib's maps kept a copy of
every task's arrays in /dev/shm until the end of the run, 23 GB after 777,000 spectra of ``slamfw
predict``, until the kernel killed the run for memory). The arguments every task shares (the
model; slam's M x M kernels, 384 MB at 4000 training stars) are pickled once per run into a file
of the temporary directory, which each worker reads and unpickles once per run: the tasks carry
only its name (they carried the pickled bytes, so every task sent them again). Their large arrays
are mapped from that file copy-on-write, one copy in the page cache for all the workers. The run holds a
lock on the file and removes it when it ends; a later multi-worker run with the same temporary
directory removes the files no run holds (those of killed runs). ``imap`` takes at most two tasks
per worker of a stream ahead of its consumer (joblib's workers took a new task whenever they
finished one, so a slow consumer found the whole stream read and its results waiting in memory);
``map``, whose tasks are all in memory already, submits them all. Each worker watches the process
that started it and exits when that process is gone (killed with SIGKILL, say), so a killed run
leaves no orphans; each task runs with its BLAS/OpenMP threads limited so that workers x threads
fits the cores. Each worker started by ``slamfw predict`` sets glibc's allocator for large arrays
when it starts, as that command's process does (:mod:`slamfw.execution.allocator`: 7 % of its
run).
"""
from __future__ import annotations

import os
import threading
import time
import weakref
from typing import Any, Callable, Iterable, Iterator, Sequence

from pydantic import Field, field_validator

from ..components.base import Params
from ..components.executor import Executor, Progress, available_cores, collected, results_in_order

#: Seconds between a worker's checks that its parent is still there.
WATCH_INTERVAL_S = 0.5

#: Tasks of an ``imap`` stream that may be taken and not yet handed back, per worker.
AHEAD_PER_WORKER = 2

#: Environment variables that set the thread counts of BLAS, OpenMP, numba and numexpr in a
#: worker when it starts (joblib's list).
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
                    "VECLIB_MAXIMUM_THREADS", "NUMBA_NUM_THREADS", "NUMEXPR_NUM_THREADS")


def watch_parent(parent_pid: int, interval: float = WATCH_INTERVAL_S) -> None:
    """Start a daemon thread that ends this process as soon as its parent is no longer ``parent_pid``
    (the parent died and this process was adopted): workers die with their parent."""
    def watch() -> None:
        while True:
            if os.getppid() != parent_pid:
                os._exit(1)
            time.sleep(interval)
    threading.Thread(target=watch, name="slamfw-parent-watch", daemon=True).start()


def start_worker(parent_pid: int, tune: bool = False) -> None:
    """A local worker's start: :func:`watch_parent`, and, with ``tune`` (the process that starts
    it set its own: ``slamfw predict``), glibc's allocator set for large arrays
    (:func:`~slamfw.execution.allocator.tune_allocator`)."""
    from .allocator import tune_allocator
    watch_parent(parent_pid)
    if tune:
        tune_allocator()


def run_prepare(prepare: Callable[[], Any] | None) -> None:
    """A worker's ``prepare()`` of :meth:`LocalExecutor.prestart` (None: nothing, the worker only
    started); an error is logged, not raised: the tasks meet it themselves."""
    if prepare is None:
        return
    try:
        prepare()
    except Exception as exc:
        import logging
        logging.getLogger(__name__).warning("local executor: a worker's preparation failed (%s: %s); its tasks "
                                            "will do without it", type(exc).__name__, exc)


def call_limited(func: Callable[..., Any], threads: int, task: tuple, shared: dict[str, Any]) -> Any:
    """``func(*task, **shared)`` with at most ``threads`` BLAS/OpenMP threads."""
    from .threads import limit_threads
    with limit_threads(threads):
        return func(*task, **shared)


#: The shared arguments' files in the temporary directory: ``slamfw-shared-<parent pid>-<random>.pkl``.
SHARED_PREFIX = "slamfw-shared-"


def remove_stale_shared_files(folder: str | None = None) -> list[str]:
    """Remove the shared-argument files that no run holds any more (their run was killed before its
    cleanup); returns their paths. A run holds an exclusive ``flock`` on its file while it lasts,
    so this works across hosts and PID namespaces sharing the folder, and whatever the pids. Where
    there is no ``fcntl`` (Windows) nothing is removed."""
    import glob
    import tempfile
    try:
        import fcntl
    except ImportError:
        return []
    removed = []
    folder = folder or tempfile.gettempdir()
    for path in glob.glob(os.path.join(glob.escape(folder), SHARED_PREFIX + "*.pkl")):
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.unlink(path)
            removed.append(path)
        except OSError:                              # held by a live run (or not ours to remove)
            pass
        finally:
            os.close(fd)
    return removed


class _Pickled:
    """Keyword arguments pickled once in the parent into a temporary file (``path``), under a key
    unique to one ``imap`` call; :meth:`value` reads and unpickles them once per worker process.
    Pickling this object sends only the key and the path. The parent holds an exclusive ``flock``
    on the file until :meth:`close` removes it. Where the file cannot be written (a full or
    missing temporary directory) the pickled bytes travel with every task instead (``blob``), with
    a warning.

    Arrays of at least :data:`MAP_MIN_BYTES` (slam's kernels, a large model's coefficients) are
    written beside the pickle, out of band (pickle protocol 5), and each worker maps them from the
    file copy-on-write: the workers share one copy in the page cache, and a worker that writes
    into one gets its own copy of the pages it writes, as it had its own arrays before."""

    _cache: dict[str, dict[str, Any]] = {}      # in a worker: the last run's shared arguments

    def __init__(self, shared: dict[str, Any]) -> None:
        import tempfile
        import uuid

        import cloudpickle                          # joblib's dependency; pickles as loky does (a closure, a local class)
        self.key, self.path, self.blob, self._fd = uuid.uuid4().hex, None, None, None
        buffers: list[Any] = []

        def out_of_band(buffer: Any) -> bool:
            big = buffer.raw().nbytes >= MAP_MIN_BYTES
            if big:
                buffers.append(buffer)
            return not big
        data = cloudpickle.dumps(shared, protocol=5, buffer_callback=out_of_band)
        remove_stale_shared_files()
        try:
            # written under a name the cleaner ignores, locked, then renamed: never visible unlocked
            fd, part = tempfile.mkstemp(prefix=f"{SHARED_PREFIX}{os.getpid()}-", suffix=".part")
            self._fd = fd
            try:
                import fcntl
                fcntl.flock(fd, fcntl.LOCK_EX)
            except ImportError:
                pass
            try:
                with open(fd, "wb", closefd=False) as f:
                    _write_shared(f, data, [b.raw() for b in buffers])
                self.path = part[:-len(".part")] + ".pkl"
                os.rename(part, self.path)
            except BaseException:
                os.unlink(part)
                raise
        except OSError as exc:
            import logging
            size = len(data) + sum(b.raw().nbytes for b in buffers)
            logging.getLogger(__name__).warning(
                "local executor: could not write the shared arguments (%.0f MB) to the temporary directory "
                "(%s); sending them with every task instead (set TMPDIR to a folder with room)", size / 1e6, exc)
            self.close()
            del data, buffers
            self.blob = cloudpickle.dumps(shared, protocol=5)
        except BaseException:
            self.close()
            raise

    def value(self) -> dict[str, Any]:
        cache = _Pickled._cache
        if self.key not in cache:
            import pickle
            cache.clear()                            # one run at a time: keep no older run's model
            if self.blob is not None:
                cache[self.key] = pickle.loads(self.blob)
                size = len(self.blob)
            else:
                cache[self.key], size = _read_shared(self.path)
            allow_cached(size)
        return cache[self.key]

    def __getstate__(self) -> dict[str, Any]:
        return {"key": self.key, "path": self.path, "blob": self.blob, "_fd": None}

    def close(self) -> None:
        """Remove the file and release its lock (in the parent, when the run ends)."""
        if self.path is not None:
            try:
                os.unlink(self.path)
            except OSError:
                pass
            self.path = None
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None


#: Arrays of at least this many bytes among the shared arguments are mapped from the file by the
#: workers, not copied into each (:class:`_Pickled`).
MAP_MIN_BYTES = 1 << 20

#: The shared arguments' file: this tag, the number of out-of-band buffers and the pickle's length
#: (little-endian uint64), each buffer's offset and length, the pickle, then the buffers, each at an
#: offset that is a multiple of :data:`_ALIGN` (pages, for the maps).
_SHARED_TAG = b"SLAMFWS1"
_ALIGN = 4096


def _write_shared(f: Any, data: bytes, buffers: list[memoryview]) -> None:
    """Write ``data`` (a pickle) and its out-of-band ``buffers`` to the binary file ``f`` (see
    :data:`_SHARED_TAG`)."""
    import struct
    head = len(_SHARED_TAG) + 16 + 16 * len(buffers)
    offsets, at = [], head + len(data)
    for buf in buffers:
        at = -(-at // _ALIGN) * _ALIGN
        offsets.append(at)
        at += buf.nbytes
    f.write(_SHARED_TAG + struct.pack(f"<{2 + 2 * len(buffers)}Q", len(buffers), len(data),
                                      *[v for o, buf in zip(offsets, buffers) for v in (o, buf.nbytes)]))
    f.write(data)
    for o, buf in zip(offsets, buffers):
        f.seek(o)
        f.write(buf)


def _read_shared(path: str) -> tuple[Any, int]:
    """The object in the file :func:`_write_shared` wrote, its out-of-band buffers mapped from the
    file copy-on-write (shared with every process that maps them until one writes), and the file's
    size in bytes."""
    import mmap
    import pickle
    import struct
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
    view = memoryview(mapped)
    tag = len(_SHARED_TAG)
    if bytes(view[:tag]) != _SHARED_TAG:
        raise RuntimeError(f"local executor: {path} is not a file of shared arguments")
    n, length = struct.unpack_from("<2Q", view, tag)
    table = struct.unpack_from(f"<{2 * n}Q", view, tag + 16)
    start = tag + 16 + 16 * n
    value = pickle.loads(view[start:start + length], buffers=[view[o:o + m] for o, m in zip(table[::2], table[1::2])])
    return value, size


#: loky's own limit on a worker's memory growth (bytes), read before :func:`allow_cached` first raised it.
_LOKY_LEAK_LIMIT: list[int] = []

#: The least growth (bytes) beyond a worker's memory after its first task that loky may take for a
#: leak, before the shared arguments: the first task may be a light one (a prestart's preparation,
#: a block of normalisation) and the later ones import numba, scikit-learn and their kin (a worker of
#: the MILES run grew from 68 to 375 MB so, and loky replaced it).
LEAK_ALLOWANCE = 2 ** 30


def allow_cached(nbytes: int) -> None:
    """Let this worker hold ``nbytes`` of cached shared arguments without loky taking them for a leak.

    Where psutil is installed, loky measures a worker's memory after its first task and replaces
    the worker, with a warning ("A worker stopped while some jobs were given to the executor"),
    once it has grown by more than ``_MAX_MEMORY_LEAK_SIZE`` (300 MB) since then. A worker whose
    first task was a prestart's preparation, or a run with small shared arguments, grew by the
    whole of the next run's when it read them: slam's kernels at 8000 training stars (1.5 GB)
    stopped every worker after its first task, and its successor read them again. The limit
    becomes the larger of loky's own and :data:`LEAK_ALLOWANCE` (the imports of later tasks),
    plus the size of the arguments this worker holds now (one run's at a time), so a growth
    beyond them still counts as a leak. A loky without the limit is left alone."""
    try:
        from joblib.externals.loky import process_executor
    except ImportError:                              # pragma: no cover - joblib always brings loky
        return
    if not _LOKY_LEAK_LIMIT:
        limit = getattr(process_executor, "_MAX_MEMORY_LEAK_SIZE", None)
        if not isinstance(limit, int):
            return
        _LOKY_LEAK_LIMIT.append(max(limit, LEAK_ALLOWANCE))
    process_executor._MAX_MEMORY_LEAK_SIZE = _LOKY_LEAK_LIMIT[0] + int(nbytes)


def _call_pickled(func: Callable[..., Any], threads: int, task: tuple, shared: _Pickled) -> Any:
    """:func:`call_limited` with the shared arguments unpickled once per worker; joblib inside the
    task (scikit-learn's ``n_jobs``) runs on threads, not on a process pool of its own in each
    worker (as joblib does in the workers it starts itself)."""
    import joblib
    with joblib.parallel_config(backend="threading", n_jobs=threads):
        return call_limited(func, threads, task, shared.value())


#: The pools of the multi-worker runs in progress in this process (a run's stream of tasks may run
#: another on the same pool: a reader that reads its files on the executor).
_RUNS: list[Any] = []

#: The pool this process started last (loky's reusable pool: the same one unless it was resized
#: or replaced, which shuts the earlier one down).
_POOLS: list[Any] = []

#: Every pool this process started and has not stopped (weakly), for :func:`stop_idle_workers`.
_STARTED: "weakref.WeakSet[Any]" = weakref.WeakSet()
_EXIT_HOOKED: list[bool] = []


def _kill(pool: Any) -> None:
    """Shut loky's ``pool`` down now, its workers killed and its queued tasks failed.

    loky's manager thread fails each pending task (``ShutdownExecutorError``) and forgets it, then
    looks for more in its queue of task ids. A task cancelled before makes it raise
    InvalidStateError (its error cannot be set: 3 runs of 3 with queued tasks), and an id still in
    that queue, of a task it has just forgotten, KeyError (seen once in a test run, 2 runs of 3 in
    a reviewer's); either ends the thread with a traceback on stderr, the first before it kills
    the workers (which then keep the process from exiting). So the tasks of this module's runs
    are not cancelled when the pool is killed, and here the ids of the tasks not yet handed to a
    worker are taken out of that queue, a cancelled one's task forgotten as loky forgets it (a run
    sharing the pool cancels its own queued tasks): loky fails the others. These are loky
    internals, left alone where they are missing."""
    import queue
    ids, pending = getattr(pool, "_work_ids", None), getattr(pool, "_pending_work_items", None)
    while ids is not None:
        try:
            work_id = ids.get_nowait()
        except queue.Empty:
            break
        item = None if pending is None else pending.get(work_id)
        if item is not None and item.future.cancelled():
            pending.pop(work_id, None)
    pool.shutdown(wait=False, kill_workers=True)


def stop_idle_workers() -> None:
    """Stop now the worker processes of the pools this process started that no run is using: at
    the end of a command of the command line, and at the interpreter's exit, before loky's own
    exit handler (:func:`_hook_exit`). They are killed rather than asked to exit, which each would
    do by tearing down its interpreter (about 0.2 s at the end of every command), and which would
    keep the calling process waiting at its exit. At the exit, loky's handler wakes each pool's
    manager thread and joins it; a thread whose pool still holds a task that no worker will run
    waits for its result for good, and the process never exits (seen once at the end of the test
    suite: a pool without workers, pytest's summary printed, then a hang). Killed, a pool fails
    such tasks and its thread ends."""
    _POOLS[:] = [pool for pool in _POOLS if pool in _RUNS]
    for pool in list(_STARTED):
        if pool not in _RUNS:
            _STARTED.discard(pool)
            _kill(pool)


def _hook_exit() -> None:
    """Register :func:`stop_idle_workers` once, after loky's exit handler (registered when its
    first pool takes its first task), so that it runs before it (they run in reverse order)."""
    if _EXIT_HOOKED or not hasattr(threading, "_register_atexit"):
        return
    try:
        threading._register_atexit(stop_idle_workers)
    except RuntimeError:         # the interpreter is shutting down already
        return
    _EXIT_HOOKED.append(True)


def _submitted(future: Any) -> Any:
    """``future``, just submitted to a pool (loky's exit handler is registered by now): hooks
    :func:`stop_idle_workers` to the interpreter's exit the first time."""
    if not _EXIT_HOOKED:
        _hook_exit()
    return future


#: The most worker processes per usable core the ``local`` executor starts.
MAX_WORKERS_PER_CORE = 8


class LocalExecutor(Executor):
    """Worker processes on this machine (loky); ``workers`` defaults to the usable cores."""

    class Params(Params):
        workers: int | None = Field(None, ge=1, description="worker processes (default: the usable cores; at most "
                                    f"{MAX_WORKERS_PER_CORE} per core)")
        idle_timeout: float = Field(60.0, gt=0, description="seconds an idle worker waits for work before exiting")

        @field_validator("workers")
        @classmethod
        def _not_beyond_the_machine(cls, workers: int | None) -> int | None:
            cores = available_cores()
            if workers is not None and workers > MAX_WORKERS_PER_CORE * cores:
                raise ValueError(f"{workers} worker processes on {cores} usable core(s): at most "
                                 f"{MAX_WORKERS_PER_CORE * cores} ({MAX_WORKERS_PER_CORE} per core); each is a Python "
                                 f"process of its own")
            return workers

    workers_on_this_machine = True

    @property
    def n_workers(self) -> int:
        return self.workers or available_cores()

    @property
    def threads_per_worker(self) -> int:
        return max(1, available_cores() // self.n_workers)

    def imap(self, func: Callable[..., Any], tasks: Iterable[tuple], *, shared: dict[str, Any] | None = None,
             desc: str = "", unit: str = "task", total: float | None = None,
             weight: Callable[[tuple], float] | None = None, progress: bool = True) -> Iterator[Any]:
        """As :meth:`Executor.imap`; at most :data:`AHEAD_PER_WORKER` x ``n_workers`` tasks of the
        stream are taken and not yet handed back (running, queued, or finished and waiting), so a
        slow consumer holds back the reading of the stream."""
        return self._results(func, tasks, shared, desc, unit, total, weight, progress,
                             ahead=AHEAD_PER_WORKER * self.n_workers)

    def map(self, func: Callable[..., Any], tasks: Sequence[tuple], *, shared: dict[str, Any] | None = None,
            desc: str = "", unit: str = "task", on_result: Callable[[int, Any], None] | None = None,
            progress: bool = True) -> list[Any]:
        """As :meth:`Executor.map`, with every task submitted at once: the tasks are in memory
        already, and a slow task then keeps no other worker waiting."""
        return collected(self._results(func, tasks, shared, desc, unit, len(tasks), None, progress, ahead=None),
                         on_result)

    def prestart(self, prepare: Callable[[], Any] | None = None) -> None:
        """As :meth:`Executor.prestart`: the pool (:meth:`_pool`, the one the run's tasks then
        use) started now (loky starts all its workers at the first submission), and one
        ``prepare`` submitted per worker, ahead of any task; nothing with one worker (the tasks
        run in this process)."""
        if self.n_workers == 1:
            return
        pool = self._pool()
        for _ in range(self.n_workers):
            _submitted(pool.submit(run_prepare, prepare))

    def _pool(self) -> Any:
        """loky's reusable process pool with this executor's workers (started or resized as needed;
        kept between runs until its workers have been idle ``idle_timeout`` seconds). Each worker
        watches this process, and starts with the thread counts of BLAS, OpenMP and numba limited
        to :attr:`threads_per_worker` (unless this process's environment sets them) and glibc's
        allocator set for large arrays where this process's is (:func:`start_worker`)."""
        from joblib.externals.loky import get_reusable_executor

        from .allocator import allocator_tuned
        env = {var: os.environ.get(var, str(self.threads_per_worker)) for var in THREAD_VARIABLES}
        env["ENABLE_IPC"] = os.environ.get("ENABLE_IPC", "1")    # TBB's schedulers coordinate across processes
        pool = get_reusable_executor(max_workers=self.n_workers, timeout=self.idle_timeout, initializer=start_worker,
                                     initargs=(os.getpid(), allocator_tuned()), env=env)
        _POOLS[:] = [pool]
        _STARTED.add(pool)
        return pool

    def _results(self, func: Callable[..., Any], tasks: Iterable[tuple], shared: dict[str, Any] | None, desc: str,
                 unit: str, total: float | None, weight: Callable[[tuple], float] | None, progress: bool,
                 ahead: int | None) -> Iterator[Any]:
        """``func(*task, **shared)`` of each task, in order, with at most ``ahead`` tasks submitted
        and not yet yielded (None: no limit). If the stream of tasks fails, the results of the
        tasks taken before are yielded first, then its error raised. If the caller stops early, or
        a task fails, and some tasks are still running, the workers are stopped (as joblib does;
        loky fails the tasks not started), so that nothing goes on computing for nobody; with none
        running, or another run on the pool, the tasks not started are cancelled."""
        if self.n_workers == 1:   # one worker: no process to start, the same results
            yield from Executor.imap(self, func, tasks, shared=shared, desc=desc, unit=unit, total=total,
                                     weight=weight, progress=progress)
            return
        bar = Progress(total, desc, unit, progress)
        try:
            pickled = _Pickled(shared or {})
            try:
                pool = self._pool()
            except BaseException:
                pickled.close()
                raise
        except BaseException:
            bar.close()
            raise
        threads = self.threads_per_worker

        def abandon(futures: list[Any]) -> None:
            # stop the workers of a task still running, unless another run (an outer one, whose
            # stream of tasks runs this one) still uses the pool
            if _RUNS.count(pool) == 1 and any(fut.running() for fut in futures):
                _kill(pool)
            else:
                for fut in futures:
                    fut.cancel()
        _RUNS.append(pool)
        try:
            def submit(task: tuple) -> Any:
                return _submitted(pool.submit(_call_pickled, func, threads, task, pickled))
            yield from results_in_order(tasks, submit,
                                        lambda fut: fut.result(), ahead=ahead, bar=bar, weight=weight,
                                        abandon=abandon)
        finally:
            _RUNS.remove(pool)
            bar.close()
            pickled.close()
