"""Which executor a workflow runs on: the config's ``[executor]``, or local processes by default."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from ..components.executor import Executor, executor_in_use, using_executor
from ..config import ExperimentConfig, selected
from ..execution.local import LocalExecutor


def make_executor(cfg: ExperimentConfig | None) -> Executor:
    """The executor the config selects (``[executor]``), or local worker processes, one per core."""
    sel = None if cfg is None else selected(cfg, "executor")
    return LocalExecutor() if sel is None else sel.build()


@contextmanager
def executing(cfg: ExperimentConfig | None) -> Iterator[Executor]:
    """Run the ``with`` block on the config's executor, unless one is already in use (a workflow
    inside another, like each emulator's run inside ``compare``), which is then kept."""
    outer = executor_in_use()
    if outer is not None:
        yield outer
        return
    with using_executor(make_executor(cfg)) as ex:
        yield ex
