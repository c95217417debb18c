"""Executors: serial, local processes, Dask; results in order, shared arguments, progress, limits."""
import logging
import os
import subprocess
import sys

import numpy as np
import pytest

from slamfw import (
    ConfigError, Executor, LocalExecutor, SerialExecutor, chunks, current_executor, registry, using_executor,
)


def _square_plus(x, offset=0):
    return x * x + offset


def _threads_and_pid(_):
    from threadpoolctl import threadpool_info
    return os.getpid(), max((i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"), default=1)


def _weighted_sum(block, weights):
    return float(block @ weights)


EXECUTORS = {
    "serial": lambda: registry.create("executor", "serial"),
    "local-1": lambda: registry.create("executor", "local", {"workers": 1}),
    "local-2": lambda: registry.create("executor", "local", {"workers": 2}),
    "dask-2": lambda: registry.create("executor", "dask", {"workers": 2}),
}


@pytest.fixture(scope="module", params=list(EXECUTORS))
def executor(request):
    with EXECUTORS[request.param]() as ex:
        yield ex


def test_results_in_order_with_shared_args_and_callbacks(executor):
    seen = []
    out = executor.map(_square_plus, [(i,) for i in range(7)], shared={"offset": 1},
                       on_result=lambda i, r: seen.append((i, r)))
    assert out == [i * i + 1 for i in range(7)]
    assert seen == list(enumerate(out))
    rng = np.random.default_rng(0)
    blocks, weights = rng.normal(size=(5, 100)), rng.normal(size=100)   # a shared array, sent once
    assert executor.map(_weighted_sum, [(b,) for b in blocks], shared={"weights": weights}) == \
        [float(b @ weights) for b in blocks]


def test_imap_consumes_a_generator_lazily(executor):
    produced = []

    def tasks():
        for i in range(40):
            produced.append(i)
            yield (i,)

    it = executor.imap(_square_plus, tasks())
    assert next(it) == 0
    assert len(produced) < 40          # a bounded window of tasks in flight, not the whole stream
    assert list(it) == [i * i for i in range(1, 40)]


def test_workers_limit_their_blas_threads(executor):
    out = executor.map(_threads_and_pid, [(i,) for i in range(6)])
    pids = {p for p, _ in out}
    threads = {t for _, t in out}
    if executor.n_workers > 1:
        assert os.getpid() not in pids                       # in worker processes
        assert threads == {max(1, len(os.sched_getaffinity(0)) // executor.n_workers)}


def test_call_limited_sets_the_blas_threads_of_a_task():
    """The wrapper every executor's tasks run in: it sets the thread count, then restores it."""
    from slamfw import call_limited
    before = _threads_and_pid(0)[1]
    assert call_limited(_threads_and_pid, 1, (0,), {})[1] == 1
    assert _threads_and_pid(0)[1] == before
    if before > 1:
        assert call_limited(_threads_and_pid, 2, (0,), {})[1] == 2


def test_dask_tasks_get_the_threads_asked_for():
    """threads_per_worker=2 on one worker: 2 BLAS threads in each task (the nanny would give 1)."""
    with registry.create("executor", "dask", {"workers": 1, "threads_per_worker": 2}) as ex:
        assert {t for _, t in ex.map(_threads_and_pid, [(i,) for i in range(3)])} == {2}


def _environ(name):
    import os
    return os.environ.get(name)


def test_dask_local_cluster_workers_keep_glibcs_malloc_trim_default(monkeypatch):
    """Dask's nannies would set MALLOC_TRIM_THRESHOLD_=65536 (the local executor's predict took
    1.3-1.5x as long with it set); the LocalCluster's workers leave it unset, and keep the nanny's
    other variables."""
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)     # the workers inherit this process's
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    with registry.create("executor", "dask", {"workers": 1}) as ex:
        got = ex.client_.run(_environ, "MALLOC_TRIM_THRESHOLD_")
        threads = ex.client_.run(_environ, "OMP_NUM_THREADS")
    assert list(got.values()) == [None] and list(threads.values()) == ["1"]


def test_current_executor_is_the_one_in_use():
    assert isinstance(current_executor(), SerialExecutor)     # outside any run: in-process
    local = LocalExecutor(workers=2)
    with using_executor(local):
        assert current_executor() is local
    assert isinstance(current_executor(), SerialExecutor)


def test_progress_is_logged_without_a_terminal(caplog):
    with caplog.at_level(logging.INFO, logger="slamfw"):
        list(Executor().imap(_square_plus, [(i,) for i in range(20)], desc="work", unit="spectra", total=200,
                             weight=lambda t: 10))
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("work:")]
    assert len(lines) == 10 and "200/200 spectra (100%)" in lines[-1] and "spectra/s" in lines[-1]


def test_chunks():
    assert chunks(7, 3) == [(0, 3), (3, 6), (6, 7)]
    assert chunks(0, 3) == []


def test_executors_are_a_registry():
    assert {"serial", "local", "dask"} <= set(registry.available("executor"))
    with pytest.raises(ConfigError, match=r"executor\.workers: Input should be greater than or equal to 1"):
        registry.create("executor", "local", {"workers": 0}, where="executor.name")


def test_a_stream_of_unknown_length_logs_its_rate(caplog, monkeypatch):
    import slamfw.components.executor as ex_mod
    clock = iter(range(0, 1000, 4))          # every update 4 s later
    monkeypatch.setattr(ex_mod.time, "perf_counter", lambda: float(next(clock)))
    with caplog.at_level(logging.INFO, logger="slamfw"):
        list(Executor().imap(_square_plus, ((i,) for i in range(7)), desc="predict", unit="spectra",
                             weight=lambda t: 100))
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("predict:")]
    assert len(lines) >= 3 and "spectra/s" in lines[0] and lines[-1].startswith("predict: 700 spectra in")


def _array_kind(block, table):
    """(is the task's array a memory map?, this worker's pid, the id of its shared table)."""
    return isinstance(block, np.memmap), os.getpid(), id(table)


def test_local_workers_get_task_arrays_pickled_and_shared_arguments_once():
    """Task arrays reach the local workers pickled, not memory-mapped by joblib (its maps of every
    task's arrays stayed in /dev/shm until the run ended: 23 GB after 777,000 spectra), and
    the shared arguments are unpickled once per worker, not once per task."""
    big = np.zeros((300, 1000))                                       # 2.4 MB, over joblib's 1 MB threshold
    tasks = [(big + i,) for i in range(8)]
    got = list(LocalExecutor(workers=2).imap(_array_kind, tasks, shared={"table": np.ones((400, 1000))},
                                             progress=False))
    assert not any(memmapped for memmapped, _, _ in got)
    per_worker: dict[int, set] = {}
    for _, pid, table in got:
        per_worker.setdefault(pid, set()).add(table)
    assert all(len(ids) == 1 for ids in per_worker.values()), per_worker


def _mapped_from(_, big, small):
    """In a worker: the files ``big``'s and ``small``'s data lie in (None: not a file's map), whether
    ``big`` is writeable, and ``big[0]`` before this task writes its worker's pid there."""
    def mapping(a):
        addr = a.__array_interface__["data"][0]
        with open("/proc/self/maps") as f:
            for line in f:
                fields = line.split()
                lo, hi = (int(x, 16) for x in fields[0].split("-"))
                if lo <= addr < hi:
                    return fields[5] if len(fields) > 5 else None
        return None
    before = float(big[0])
    big[0] = os.getpid()
    return mapping(big), mapping(small), big.flags.writeable, before, os.getpid()


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="reads the process's maps (Linux)")
def test_local_workers_map_large_shared_arrays_from_the_file_copy_on_write():
    """A large shared array reaches the workers mapped from the shared file (one copy in the page
    cache for all of them, not one each), a small one pickled; each worker can write into its own
    copy-on-write, unseen by the other and by the caller."""
    from slamfw.execution.local import MAP_MIN_BYTES, SHARED_PREFIX
    big = np.zeros(MAP_MIN_BYTES // 8 + 1000)
    small = np.ones(10)
    got = LocalExecutor(workers=2).map(_mapped_from, [(i,) for i in range(8)], shared={"big": big, "small": small},
                                       progress=False)
    for big_file, small_file, writeable, before, pid in got:
        assert big_file is not None and SHARED_PREFIX in big_file, big_file
        assert small_file is None or SHARED_PREFIX not in small_file
        assert writeable
        assert before in (0.0, pid)                   # the original, or this worker's own write
    assert big[0] == 0.0


def _shared_files(_, folder, big=None):
    """The shared-argument files in ``folder`` while this task runs (in a worker)."""
    from slamfw.execution.local import SHARED_PREFIX
    return sorted(p.name for p in __import__("pathlib").Path(folder).glob(SHARED_PREFIX + "*"))


def test_local_tasks_carry_only_the_shared_file_name_and_the_file_goes(tmp_path, monkeypatch):
    """The shared arguments travel once per worker, through a file, not with every task (each task
    sent slam's M x M kernels again: 384 MB per task at 4000 stars); the file exists while the run
    lasts and is gone after it, also when the caller stops early or pickling fails; a file no run
    holds (a killed run's) is removed by the next run, a held one is not."""
    import pickle
    import tempfile
    import threading

    from slamfw.execution import local
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    shared = local._Pickled({"table": np.ones((400, 1000))})             # 3.2 MB
    assert len(pickle.dumps(shared)) < 2000
    assert shared.value()["table"].shape == (400, 1000)
    assert os.path.getsize(shared.path) > 3_000_000
    assert local.remove_stale_shared_files(str(tmp_path)) == []           # held by this run: kept
    path = shared.path
    shared.close()
    assert not os.path.exists(path)
    # during a run the workers see exactly one file, the run's; after it, none
    seen = list(LocalExecutor(workers=2).imap(_shared_files, [(i,) for i in range(4)],
                                              shared={"folder": str(tmp_path), "big": np.ones((400, 1000))},
                                              progress=False))
    assert all(len(files) == 1 and files[0].endswith(".pkl") for files in seen), seen
    assert not list(tmp_path.glob(local.SHARED_PREFIX + "*"))
    # the caller stops after the first result
    it = LocalExecutor(workers=2).imap(_shared_files, [(i,) for i in range(6)], shared={"folder": str(tmp_path)},
                                       progress=False)
    next(it)
    it.close()
    assert not list(tmp_path.glob(local.SHARED_PREFIX + "*"))
    # arguments that cannot be pickled: the error, and no file
    with pytest.raises(Exception):
        list(LocalExecutor(workers=2).imap(_shared_files, [(0,)], shared={"lock": threading.Lock()}, progress=False))
    assert not list(tmp_path.glob(local.SHARED_PREFIX + "*"))
    # files no run holds are removed whatever their names' pids (a huge one, this process's own)
    names = [f"{local.SHARED_PREFIX}99999999999-a.pkl", f"{local.SHARED_PREFIX}{os.getpid()}-b.pkl",
             f"{local.SHARED_PREFIX}notapid-c.pkl"]
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    assert sorted(os.path.basename(p) for p in local.remove_stale_shared_files(str(tmp_path))) == sorted(names)


def test_local_shared_arguments_fall_back_to_the_tasks_without_a_temporary_folder(tmp_path, monkeypatch, caplog):
    import tempfile

    from slamfw.execution import local
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "missing"))
    big = np.arange(300_000.0)                 # 2.4 MB: an array the file would have held beside the pickle
    with caplog.at_level(logging.WARNING):
        shared = local._Pickled({"table": np.arange(5.0), "big": big})
    assert shared.path is None and shared.blob is not None
    assert "sending them with every task" in caplog.text
    np.testing.assert_array_equal(shared.value()["table"], np.arange(5.0))
    np.testing.assert_array_equal(shared.value()["big"], big)
    got = list(LocalExecutor(workers=2).imap(_weighted_sum, [(np.ones(3),), (np.arange(3.0),)],
                                             shared={"weights": np.array([1.0, 2.0, 3.0])}, progress=False))
    assert got == [6.0, 8.0]


def _sleep_then(seconds, value, folder=None):
    """Sleep, then return ``value``; with ``folder``, first record this worker's pid there."""
    import time
    if folder is not None:
        (__import__("pathlib").Path(folder) / f"{value}-{os.getpid()}").write_text("")
    time.sleep(seconds)
    return value


def _finish_time(seconds):
    import time
    time.sleep(seconds)
    return time.time()


def test_local_imap_takes_two_tasks_per_worker_ahead_of_a_slow_consumer():
    """While the caller pauses after each result, the local executor takes at most two tasks per
    worker that it has not handed back (joblib's workers took the whole stream: a GPU fit, the slow
    consumer, found every chunk read and prepared in memory)."""
    import time

    from slamfw.execution.local import AHEAD_PER_WORKER
    taken = []

    def tasks():
        for i in range(30):
            taken.append(i)
            yield (i,)

    handed = 0
    ahead = []
    for result in LocalExecutor(workers=2).imap(_square_plus, tasks(), progress=False):
        assert result == handed * handed
        handed += 1
        time.sleep(0.05)
        ahead.append(len(taken) - handed)
    assert handed == 30 and max(ahead) <= AHEAD_PER_WORKER * 2, ahead


@pytest.mark.parametrize("name", ["local", "dask"])
def test_map_keeps_every_worker_busy_past_a_slow_task(name):
    """``map`` submits all its tasks at once: a slow first task holds back no other worker (with a
    window of two tasks per worker, at most 3 of the quick ones would finish before it). Dask's
    scheduler places each task on a worker as it is submitted, and may queue one or two behind the
    slow one (measured: 11 of 12 before it)."""
    if name == "dask":
        pytest.importorskip("distributed")
    with registry.create("executor", name, {"workers": 2}) as ex:
        done = ex.map(_finish_time, [(4.0,)] + [(0.0,)] * 12, progress=False)
    assert sum(t < done[0] for t in done[1:]) >= (12 if name == "local" else 9), done


def test_local_imap_stopped_early_or_failing_leaves_no_task_running(tmp_path):
    """When the caller stops early, the tasks not started are cancelled and a task still running is
    stopped with its worker, so nothing computes for nobody; when a task fails, the stream is taken
    no further than the window; the executor works afterwards."""
    import time

    from slamfw.execution.local import AHEAD_PER_WORKER

    def gone(pid):
        for _ in range(100):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            time.sleep(0.1)
        return False

    ex = LocalExecutor(workers=2)
    it = ex.imap(_sleep_then, [(0.0, 0, str(tmp_path)), (60.0, 1, str(tmp_path))] + [(60.0, i, None)
                                                                                     for i in range(2, 9)],
                 progress=False)
    assert next(it) == 0
    for _ in range(100):                        # the long task has started
        if list(tmp_path.glob("1-*")):
            break
        time.sleep(0.1)
    pid = int(next(tmp_path.glob("1-*")).name.split("-")[1])
    it.close()
    assert gone(pid)
    # a failing task: the caller gets its error, and the stream is not read further than the window
    taken = []

    def tasks():
        for i in range(50):
            taken.append(i)
            yield ("not a number",) if i == 1 else (i,)

    with pytest.raises(TypeError):
        list(ex.imap(_square_plus, tasks(), progress=False))
    assert len(taken) <= AHEAD_PER_WORKER * 2 + 1
    assert ex.map(_square_plus, [(i,) for i in range(5)], progress=False) == [0, 1, 4, 9, 16]


def _loky_thread_errors(monkeypatch) -> list:
    """The exceptions that end threads (loky's manager thread) from now on in this test."""
    import threading
    errors: list = []
    monkeypatch.setattr(threading, "excepthook", lambda args: errors.append(args.exc_value))
    return errors


def test_a_failing_task_stops_the_workers_without_an_error_in_lokys_thread(monkeypatch):
    """A task fails while another runs and more wait beyond loky's call queue (``map`` submits them
    all; ``queue_size`` + 8 tasks, whatever the cores): the workers are stopped and loky fails the
    queued tasks itself. Cancelled first, as they were, the queued tasks made loky's manager thread
    raise InvalidStateError (a traceback on stderr) before it stopped the workers: in 3 runs of 3
    before the fix."""
    import threading
    errors = _loky_thread_errors(monkeypatch)
    ex = LocalExecutor(workers=2)
    for _ in range(2):
        n = ex._pool().queue_size + 8
        with pytest.raises(TypeError):
            ex.map(_sleep_then, [(0.0, 0, 123)] + [(0.5, i) for i in range(1, n)], progress=False)   # Path(123)
        for thread in threading.enumerate():      # the shutdown handled
            if thread.name == "ExecutorManagerThread":
                thread.join(20)
    assert errors == []
    assert ex.map(_square_plus, [(i,) for i in range(3)], progress=False) == [0, 1, 4]


def test_killing_a_pool_fails_its_running_and_queued_tasks_without_an_error_in_lokys_thread(monkeypatch, tmp_path):
    """``_kill`` (an abandoned run, the command line's end) on a pool with two tasks executing,
    more queued and some of those cancelled (as a run sharing the pool does): every task ends at
    once, failed or cancelled, the workers are gone, and loky's manager thread ends without a
    traceback (with a cancelled task still pending, it raised InvalidStateError before it killed
    the workers, which then kept the process from exiting)."""
    import time

    from slamfw.execution.local import _kill
    errors = _loky_thread_errors(monkeypatch)
    pool = LocalExecutor(workers=2)._pool()
    futures = [pool.submit(_sleep_then, 30.0, i, str(tmp_path)) for i in range(pool.queue_size + 8)]
    for _ in range(400):                        # two tasks executing: each wrote its worker's pid
        if len(list(tmp_path.iterdir())) >= 2:
            break
        time.sleep(0.05)
    pids = [int(p.name.split("-")[1]) for p in tmp_path.iterdir()]
    assert len(pids) == 2 and sum(f.cancel() for f in futures[-4:]) == 4
    thread = pool._executor_manager_thread
    _kill(pool)
    for fut in futures[:-4]:
        with pytest.raises(Exception, match="shutdown|terminated|killed"):
            fut.result(timeout=20)
    assert all(f.cancelled() for f in futures[-4:])
    thread.join(20)
    assert not thread.is_alive() and errors == []
    for pid in pids:
        for _ in range(100):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            raise AssertionError(f"worker {pid} still runs")


def test_a_failing_stream_of_tasks_gives_the_results_taken_before_its_error(executor):
    """A stream of tasks that fails (a chunk that cannot be read) first gives back the results of
    the tasks taken before it, so that they can be saved, then its error."""
    def failing():
        yield (1,)
        yield (2,)
        raise OSError("chunk 3 cannot be read")

    got = []
    with pytest.raises(OSError, match="chunk 3"):
        for r in executor.imap(_square_plus, failing(), progress=False):
            got.append(r)
    assert got == [1, 4]
    assert executor.map(_square_plus, [(i,) for i in range(5)], progress=False) == [0, 1, 4, 9, 16]


def test_results_in_order_bounds_the_stream_and_hands_back_what_is_left():
    """The loop of an executor's imap: at most ``ahead`` tasks taken and not yet yielded; a stream's
    error after the results taken before it; the handles left to ``abandon`` when the caller stops
    early or a result raises, and none when all went well; the bar counts each task's weight."""
    from slamfw import Progress, results_in_order
    taken, abandoned = [], []

    def stream(n, fail_at=None):
        for i in range(n):
            if i == fail_at:
                raise OSError(f"task {i} cannot be read")
            taken.append(i)
            yield (i,)

    def result(handle):
        if handle == "bad":
            raise ValueError("a task failed")
        return handle * 10

    def submit(task):
        return "bad" if task[0] == 5 else task[0]

    bar = Progress(None, "t", "spectra", enabled=False)
    it = results_in_order(stream(9), submit, result, ahead=3, bar=bar, weight=lambda t: 2.0,
                          abandon=abandoned.extend)
    assert next(it) == 0 and taken == [0, 1, 2]
    assert next(it) == 10 and taken == [0, 1, 2, 3]
    it.close()                                       # stopped early: 2 and 3 were taken, not yielded
    assert abandoned == [2, 3] and bar.done == 4.0
    abandoned.clear()
    taken.clear()
    with pytest.raises(ValueError, match="a task failed"):
        list(results_in_order(stream(9), submit, result, ahead=3, abandon=abandoned.extend))
    assert abandoned == ["bad", 6, 7] and taken == list(range(8))      # the failed one with the rest
    abandoned.clear()
    got = []
    with pytest.raises(OSError, match="task 2 cannot"):
        for r in results_in_order(stream(9, fail_at=2), submit, result, ahead=None, abandon=abandoned.extend):
            got.append(r)
    assert got == [0, 10] and abandoned == []
    assert list(results_in_order(stream(4), submit, result, ahead=None, abandon=abandoned.extend)) == [0, 10, 20, 30]
    assert abandoned == []


def test_a_failing_run_inside_a_stream_of_tasks_keeps_the_outer_run_going():
    """A stream of tasks may run another run on the same pool (a reader that reads its files on
    the executor). When the inner run fails, it leaves the pool to the outer run: the outer run
    gives back the results taken before, then the inner run's own error (not a broken pool's)."""
    ex = LocalExecutor(workers=3)

    def stream():
        yield (3.0, 1)                 # the outer run's tasks still run when the inner one fails,
        yield (3.0, 2)                 # with a task of its own still running
        ex.map(_sleep_then, [(0.0, 0), ("not a number", 1), (5.0, 2)], progress=False)
        yield (0.0, 3)

    got = []
    with pytest.raises(TypeError):
        for r in ex.imap(_sleep_then, stream(), progress=False):
            got.append(r)
    assert got == [1, 2]
    assert ex.map(_square_plus, [(i,) for i in range(4)], progress=False) == [0, 1, 4, 9]


def _joblib_backend(_):
    from joblib.parallel import get_active_backend
    backend, n_jobs = get_active_backend()
    return type(backend).__name__, n_jobs, os.environ.get("ENABLE_IPC")


def test_joblib_inside_a_local_task_runs_on_threads():
    """A task that runs joblib (scikit-learn's ``n_jobs``) gets threads, as many as the task's
    BLAS threads, not a process pool of its own in each worker (as in the workers joblib starts
    itself); the workers start with TBB's ENABLE_IPC set, as joblib's do."""
    got = LocalExecutor(workers=2).map(_joblib_backend, [(i,) for i in range(4)], progress=False)
    threads = LocalExecutor(workers=2).threads_per_worker
    assert set(got) == {("ThreadingBackend", threads, os.environ.get("ENABLE_IPC", "1"))}, got


@pytest.mark.parametrize("own", [False, True])
def test_limit_threads_limits_blas_and_finds_the_libraries_once(monkeypatch, own):
    """limit_threads: BLAS at the limit inside the block and as before after it; the libraries
    are found once per process, again only after modules were imported (threadpoolctl's cached
    controller, or, where threadpoolctl has none, slamfw's own)."""
    import sys
    import types

    import threadpoolctl
    from threadpoolctl import threadpool_info, threadpool_limits

    from slamfw import limit_threads
    from slamfw.execution import threads
    if own:
        monkeypatch.delattr(threadpoolctl, "get_cached_controller", raising=False)
    else:
        assert hasattr(threadpoolctl, "get_cached_controller")

    def blas():
        return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
    with threadpool_limits(2, user_api="blas"):
        before = blas()
        assert before and set(before) == {2}
        with limit_threads(1):
            assert blas() == [1] * len(before)
            first = threads._controller()
        assert blas() == before
    with limit_threads(1):
        assert threads._controller() is first
    sys.modules["_slamfw_test_new_module"] = types.ModuleType("_slamfw_test_new_module")
    try:
        assert threads._controller() is not first
    finally:
        del sys.modules["_slamfw_test_new_module"]


def _loky_workers() -> list:
    import psutil
    out = []
    for c in psutil.Process().children():
        try:
            if "popen_loky_posix" in " ".join(c.cmdline()):
                out.append(c)
        except psutil.Error:           # gone meanwhile
            pass
    return out


def _mark(folder, kind):
    """Record in ``folder`` that this worker ran a ``kind`` (its pid, and when: the system's
    monotonic clock, one for every process)."""
    import time
    (__import__("pathlib").Path(folder) / f"{kind}-{os.getpid()}-{time.monotonic_ns()}").write_text("")
    return os.getpid()


def test_prestart_starts_the_local_workers_before_any_task_and_prepares_them(tmp_path):
    """``prestart`` starts the workers at once (no task yet), and a worker that takes a
    preparation runs it before any task of its own (they were queued first); one worker: nothing
    is started (its tasks run in this process). Which worker takes which preparation is loky's
    choice: under load one may start late and find both taken (the check before, 4 tasks looking
    for the prepared module, failed in 2 of 5 runs under load, in a reviewer's runs)."""
    import time
    from functools import partial

    import psutil

    from slamfw.execution import local
    local.stop_idle_workers()
    psutil.wait_procs(_loky_workers(), timeout=30)
    LocalExecutor(workers=1).prestart(partial(_mark, str(tmp_path), "prep"))
    assert not _loky_workers() and not list(tmp_path.iterdir())
    ex = LocalExecutor(workers=2)
    ex.prestart(partial(_mark, str(tmp_path), "prep"))
    deadline = time.monotonic() + 60
    while len(_loky_workers()) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(_loky_workers()) == 2                     # started with no task submitted
    ex.map(_mark, [(str(tmp_path), "task")] * 6, progress=False)
    for _ in range(200):                                  # a preparation may end after the last task
        marks = [p.name.split("-") for p in tmp_path.iterdir()]
        if sum(m[0] == "prep" for m in marks) == 2:
            break
        time.sleep(0.05)
    prepared = {int(pid): int(t) for kind, pid, t in marks if kind == "prep"}
    first_task = {}
    for kind, pid, t in marks:
        if kind == "task":
            first_task[int(pid)] = min(int(t), first_task.get(int(pid), int(t)))
    assert sum(m[0] == "prep" for m in marks) == 2
    assert set(prepared) <= {w.pid for w in _loky_workers()}          # in the workers, not here
    assert all(prepared[pid] < first_task[pid] for pid in prepared if pid in first_task)
    local.stop_idle_workers()


def _lower_loky_leak_limit(limit):
    """In a worker: loky's limit on memory growth set to ``limit`` bytes, as if loky had it so."""
    import time

    from joblib.externals.loky import process_executor

    from slamfw.execution import local
    local._LOKY_LEAK_LIMIT[:] = [limit]
    process_executor._MAX_MEMORY_LEAK_SIZE = limit
    time.sleep(1.1)                  # loky checks a worker's memory at most once a second
    return os.getpid()


def test_lokys_leak_limit_allows_the_imports_and_the_shared_arguments(monkeypatch):
    """The rule of ``allow_cached``: loky's limit or LEAK_ALLOWANCE, whichever is larger, plus what
    the worker holds of the run's shared arguments (here in this process, as in a worker)."""
    from joblib.externals.loky import process_executor

    from slamfw.execution import local
    monkeypatch.setattr(process_executor, "_MAX_MEMORY_LEAK_SIZE", int(3e8))
    monkeypatch.setattr(local, "_LOKY_LEAK_LIMIT", [])
    local.allow_cached(5_000_000)
    assert process_executor._MAX_MEMORY_LEAK_SIZE == local.LEAK_ALLOWANCE + 5_000_000
    local.allow_cached(0)                               # the next run's arguments replace the last's
    assert process_executor._MAX_MEMORY_LEAK_SIZE == local.LEAK_ALLOWANCE
    monkeypatch.setattr(local, "_LOKY_LEAK_LIMIT", [])
    monkeypatch.setattr(process_executor, "_MAX_MEMORY_LEAK_SIZE", 4 * local.LEAK_ALLOWANCE)
    local.allow_cached(1)
    assert process_executor._MAX_MEMORY_LEAK_SIZE == 4 * local.LEAK_ALLOWANCE + 1


def _pid_after(seconds, table):
    import time
    float(table.sum())               # its pages now count in this worker's memory (mapped from the file)
    time.sleep(seconds)
    return os.getpid()


def test_shared_arguments_larger_than_lokys_leak_limit_keep_the_workers():
    """loky (with psutil) replaces a worker that grew by more than its limit (300 MB) since its
    first task; a worker that then read a run's shared arguments larger than that was replaced
    after one task (slam's kernels at 4000 stars), with a warning, and its successor read them
    again. Scaled down here: the limit set to 40 MB, then a run sharing 80 MB."""
    import time

    import psutil

    from slamfw.execution import local
    local.stop_idle_workers()
    psutil.wait_procs(_loky_workers(), timeout=30)
    ex = LocalExecutor(workers=2)
    first = set(ex.map(_lower_loky_leak_limit, [(40 * 2 ** 20,)] * 4, progress=False))
    assert len(first) == 2                               # each worker took one (both ran at once)
    table = np.ones((10_000, 1000))                      # 80 MB
    later = ex.map(_pid_after, [(1.1,)] * 6, shared={"table": table}, progress=False)
    time.sleep(0.5)                                      # a replaced worker's successor would start now
    assert set(later) <= first, (first, later)
    assert {w.pid for w in _loky_workers()} == first
    local.stop_idle_workers()


def test_import_modules_skips_what_cannot_be_imported(caplog):
    import sys

    from slamfw.components.executor import import_modules
    sys.modules.pop("colorsys", None)
    with caplog.at_level(logging.DEBUG, logger="slamfw.components.executor"):
        import_modules(["no_such_module_here", "colorsys"])
    assert "colorsys" in sys.modules
    assert "could not import no_such_module_here (ModuleNotFoundError" in caplog.text


def test_the_command_line_stops_the_idle_workers_it_started():
    """``stop_idle_workers`` (the end of a ``slamfw`` command) kills the local executor's idle
    workers at once, and leaves the workers of a run still in progress alone."""
    import psutil

    from slamfw.execution import local
    workers = _loky_workers
    local.stop_idle_workers()                         # earlier tests' workers (a pool shut down without
    psutil.wait_procs(workers(), timeout=30)          # waiting may still be exiting): gone first
    ex = LocalExecutor(workers=2)
    stream = ex.imap(os.getpid, [()] * 4, progress=False)
    next(stream)                                      # a run in progress: its workers stay
    local.stop_idle_workers()
    assert len(workers()) == 2 and len(set(stream)) >= 1
    procs = workers()
    local.stop_idle_workers()
    gone, alive = psutil.wait_procs(procs, timeout=30)
    assert len(procs) == 2 and not alive, alive


def test_a_pool_with_a_task_no_worker_will_run_does_not_hang_the_exit():
    """Seen once at the end of the test suite: pytest printed its summary, then hung for good in
    loky's exit handler, which joined the manager thread of a pool whose worker list was empty
    and which still held a pending task (that thread waits for the task's result, and nothing
    will send it). The pools slamfw started are killed at the exit first (their pending tasks
    failed, their threads ended). The pending task is made up here: a LocalExecutor run, then a
    task entered in the pool's books that no worker was given."""
    script = (
        "import concurrent.futures, os\n"
        "from joblib.externals.loky.process_executor import _WorkItem\n"
        "from slamfw import LocalExecutor\n"
        "from slamfw.execution import local\n"
        "assert sorted(LocalExecutor(workers=2).map(abs, [(-1,), (-2,)], progress=False)) == [1, 2]\n"
        "pool = local._POOLS[0]\n"
        "pool._pending_work_items[10 ** 6] = _WorkItem(concurrent.futures.Future(), os.getpid, (), {})\n"
        "print('done', flush=True)\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "done", proc.stderr[-2000:]


def test_a_number_of_local_workers_beyond_the_machine_is_refused(monkeypatch):
    """Found by a bad-input hunt: workers = 100000 hung while the processes started (leaking 208
    semaphores). At most 8 per usable core."""
    from slamfw import ConfigError, registry
    from slamfw.execution import local
    monkeypatch.setattr(local, "available_cores", lambda: 2)
    assert registry.create("executor", "local", {"workers": 16}).n_workers == 16
    with pytest.raises(ConfigError, match=r"workers: 17 worker processes on 2 usable core\(s\): at most 16"):
        registry.create("executor", "local", {"workers": 17})


def test_dask_settings_mistakes_are_config_errors():
    """Found by a bad-input hunt: a memory limit dask cannot read, and an address with no port, were
    internal errors from dask (the first when a worker started)."""
    from slamfw import ConfigError, registry
    with pytest.raises(ConfigError, match=r"memory_limit: 'lots' is not a size"):
        registry.create("executor", "dask", {"memory_limit": "lots"})
    assert registry.create("executor", "dask", {"memory_limit": "2 GiB"}).memory_limit == "2 GiB"
    with pytest.raises(ConfigError, match=r"executor.dask.address: cannot connect to the scheduler at 'nonsense'"):
        registry.create("executor", "dask", {"address": "nonsense"}).start()
