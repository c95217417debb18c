"""Executors ``serial`` (in this process) and ``local`` (worker processes on this machine).

Both are slamfw's own classes; this module gives them their names, exactly as a third-party
plugin would register its executor.
"""
from __future__ import annotations

from slamfw import LocalExecutor, SerialExecutor, hookimpl

SLAMFW_PLUGIN_API = (1, 0)


@hookimpl
def slamfw_register_executors(register):
    register("serial", SerialExecutor)
    register("local", LocalExecutor)
