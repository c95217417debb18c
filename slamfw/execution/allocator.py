"""glibc's memory allocator, set for the processes of ``slamfw predict`` (the command's own
process, and the workers of the local executor and of the dask executor's LocalCluster).

A chunk of ``slamfw predict`` allocates and frees arrays of 0.1 to 10 MB many times over: the
spectra, their continua and masks, the emulator's kernel and model blocks at each LM step. By
default glibc serves an allocation above its *mmap threshold* with a fresh ``mmap`` and gives it
back with ``munmap`` when it is freed; the threshold adapts upwards as large blocks are freed,
and freed memory at the top of the heap beyond the *trim threshold* (twice the mmap threshold) is
given back to the kernel too. Either way the next array of that size touches new pages, and every
first touch of a page is a page fault that the kernel zeroes: measured in ``slamfw predict`` on
20,000 spectra of 1900 pixels on 2 workers, 1.25 million minor faults and 2.9 s of system time in
a run of 14 s.

:func:`tune_allocator` fixes the mmap threshold at 32 MiB (glibc's largest on 64-bit systems)
and the trim threshold at 64 MiB: arrays up to 32 MiB are served from the heap and reused, and
the heap keeps up to 64 MiB of freed memory for the next ones. Measured on that run (6 rounds
in ABBA order against the code before, same host): 14.05 → 13.14 s median, every pair 0.79-1.22
s less. Setting only one of the two makes it slower (each setting turns glibc's adaptation off
for both; as environment variables, 3 pairs): 1.2 s more with the mmap threshold alone, 3.1 s
more with the trim threshold alone.

It changes nothing where glibc is not the C library (macOS, Windows, musl), or where the
environment sets glibc's own variables (``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``,
``MALLOC_TOP_PAD_``, ``MALLOC_MMAP_MAX_``, or a ``glibc.malloc.`` tunable in ``GLIBC_TUNABLES``:
the user's choice, or Dask's nanny, which sets a small trim threshold so that its workers'
memory reports stay true), or ``SLAMFW_MALLOC_TUNING=0``.

The price is memory: the heap keeps up to 64 MiB of freed memory at its top, and a freed block
below 32 MiB that sits under a live one stays in the process (glibc's own adaptive thresholds
end up the same way once it has freed blocks that large). The harness's peak memory of the
whole ``slamfw predict`` process tree on case (a) was 2-5 % higher at c6f5b01 than at c24f831
(713 → 747 MB with one start, 892 → 910 MB with 3; the preparation's changes are in those runs
too). Training is left with glibc's defaults: a fresh harness run's training (2605cf9, which
set the allocator in every command) peaked at 949 MB against 851 MB at ce758a4, in 233 s against
229 s (not an A/B; one run each). So only ``slamfw predict`` sets it (its command, at its start),
and the executors' workers follow the process that starts them (:func:`allocator_tuned`).
"""
from __future__ import annotations

import logging
import os
import sys

log = logging.getLogger(__name__)

#: Allocations up to this size come from the heap (glibc's largest mmap threshold on 64-bit systems).
MMAP_THRESHOLD = 32 * 2**20
#: Freed memory the heap keeps at its top before giving it back to the kernel.
TRIM_THRESHOLD = 64 * 2**20
#: glibc's own environment variables: where one is set, the allocator is left as the user set it.
GLIBC_VARIABLES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_")
#: ... and its tunables (``GLIBC_TUNABLES=glibc.malloc.trim_threshold=...:...``).
GLIBC_TUNABLES_PREFIX = "glibc.malloc."
#: ``SLAMFW_MALLOC_TUNING=0`` leaves the allocator alone.
OPT_OUT = "SLAMFW_MALLOC_TUNING"

# mallopt's parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

_STATE: list[bool] = []        # this process's outcome, once tried


def allocator_tuned() -> bool:
    """Whether :func:`tune_allocator` set this process's allocator (an executor passes this on to
    the workers it starts, which then set theirs)."""
    return bool(_STATE) and _STATE[0]


def tune_allocator() -> bool:
    """Set glibc's mmap and trim thresholds for this process (see the module's docstring), once;
    returns whether they are set. Does nothing (False) off glibc, where the environment sets
    glibc's ``MALLOC_*`` variables or ``glibc.malloc.`` tunables, or with ``SLAMFW_MALLOC_TUNING=0``."""
    if not _STATE:
        _STATE.append(_tune())
    return _STATE[0]


def _tune() -> bool:
    if os.environ.get(OPT_OUT, "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    if not sys.platform.startswith("linux") or any(var in os.environ for var in GLIBC_VARIABLES):
        return False
    if GLIBC_TUNABLES_PREFIX in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    import ctypes
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version          # glibc's: musl also has a mallopt, which does nothing
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    ok = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    if not ok:
        log.debug("glibc's mallopt refused the mmap or trim threshold; the allocator's defaults stay")
    return ok
