"""glibc's allocator set for large arrays (slamfw.tune_allocator): in slamfw predict's process and its workers."""
import os
import subprocess
import sys

import pytest

from slamfw import LocalExecutor, allocator_tuned, tune_allocator
from slamfw.execution import allocator

GLIBC = sys.platform.startswith("linux") and os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")
needs_glibc = pytest.mark.skipif(not GLIBC, reason="glibc's allocator only")
#: the probe reads mallinfo2 (glibc 2.33 and later)
needs_mallinfo2 = pytest.mark.skipif(not (GLIBC and hasattr(__import__("ctypes").CDLL(None), "mallinfo2")),
                                     reason="glibc 2.33 or later (mallinfo2)")

#: In a fresh interpreter: tune (or not), then how many bytes glibc maps while an 8 MB block is held.
PROBE = """
import ctypes, sys
from slamfw.execution.allocator import tune_allocator
tuned = tune_allocator()
libc = ctypes.CDLL(None)
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                               "fsmblks", "uordblks", "fordblks", "keepcost")]
libc.mallinfo2.restype = Info
before = libc.mallinfo2().hblkhd
block = bytearray(8 * 2**20)
print(tuned, libc.mallinfo2().hblkhd - before)
"""


def _probe(**env: str) -> tuple[bool, int]:
    clean = {k: v for k, v in os.environ.items()
             if k not in (*allocator.GLIBC_VARIABLES, allocator.OPT_OUT, "GLIBC_TUNABLES")}
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True,
                         env={**clean, **env}).stdout.split()
    return out[0] == "True", int(out[1])


@needs_mallinfo2
def test_tuned_an_8_mb_array_comes_from_the_heap_not_from_a_fresh_mapping():
    assert _probe() == (True, 0)
    tuned, mapped = _probe(SLAMFW_MALLOC_TUNING="0")           # glibc's default: mmap above 128 KB
    assert not tuned and mapped >= 8 * 2**20


@needs_mallinfo2
@pytest.mark.parametrize("env", [{"MALLOC_TRIM_THRESHOLD_": "65536"}, {"MALLOC_MMAP_THRESHOLD_": "131072"},
                                 {"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=65536"},
                                 {"SLAMFW_MALLOC_TUNING": "off"}])
def test_the_users_own_allocator_settings_are_left_alone(env):
    tuned, mapped = _probe(**env)
    assert not tuned and mapped >= 8 * 2**20


def _tuned_here(_):
    return os.getpid(), list(allocator._STATE)


@needs_glibc
@pytest.mark.parametrize("parent", [[True], []])
def test_local_workers_tune_their_allocator_when_their_parent_did(monkeypatch, parent):
    """Workers set their allocator when they start where the process that starts them set its
    own (slamfw predict), and leave it alone otherwise (training)."""
    for var in (*allocator.GLIBC_VARIABLES, allocator.OPT_OUT, "GLIBC_TUNABLES"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(allocator, "_STATE", parent)
    with LocalExecutor(workers=2, idle_timeout=5) as ex:
        got = ex.map(_tuned_here, [(i,) for i in range(4)], progress=False)
    assert all(pid != os.getpid() and state == parent for pid, state in got), got


def test_slamfw_predict_tunes_the_allocator_and_train_does_not(monkeypatch, tmp_path):
    from slamfw.cli import main
    calls = []
    monkeypatch.setattr(allocator, "tune_allocator", lambda: calls.append(1) or True)
    assert main(["train", str(tmp_path / "missing.toml")]) == 2 and calls == []
    assert main(["predict", str(tmp_path / "missing.npz"), "-o", str(tmp_path / "c.fits")]) == 2
    assert calls == [1]


def test_the_dask_local_clusters_workers_follow_the_calling_process(monkeypatch):
    pytest.importorskip("distributed")
    from slamfw_plugins.executors import dask as dask_executor
    for state in ([True], [False], []):
        monkeypatch.setattr(allocator, "_STATE", state)
        assert dask_executor._worker_plugin().tune is (state == [True])


def test_tune_allocator_is_tried_once_per_process(monkeypatch):
    calls = []
    monkeypatch.setattr(allocator, "_STATE", [])
    monkeypatch.setattr(allocator, "_tune", lambda: calls.append(1) or False)
    assert not allocator_tuned()
    assert tune_allocator() is False and tune_allocator() is False and calls == [1]
    assert not allocator_tuned()
