"""Whether a process that marked a file as its own (a lock, a folder in use) is still running."""
from __future__ import annotations

import os
from pathlib import Path


def process_start(pid: int) -> str | None:
    """The start time of process ``pid`` (Linux: /proc), to tell a reused pid from the holder;
    None where the system does not say."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
        return text.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def pid_alive(pid: int, started: str | None) -> bool:
    """Whether process ``pid`` of this machine runs, and is the one that started at ``started``
    (:func:`process_start`; None: any). On Windows, where ``os.kill`` would end the process, it is
    assumed alive."""
    if os.name == "nt":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, under another user
    except (OSError, OverflowError, ValueError):
        return False
    if started is not None:
        now = process_start(pid)
        if now is not None and now != started:
            return False  # the pid was reused by another process
    return True
