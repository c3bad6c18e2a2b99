"""The `local` executor: this process for one job, else a pool of fresh local worker processes."""

from __future__ import annotations

from study.core.errors import UsageError
from study.execution.executor import Executor
from study.execution.in_process import InProcess
from study.training.process import available_cores


def local_executor(jobs: int) -> Executor:
    """This process when jobs is 1, else the pool of `jobs` local worker processes (shared by every call)."""
    if jobs <= 1:
        return InProcess()
    from study.execution.pool import LocalPool

    return LocalPool(jobs)


def open_local(address: str | None, jobs: int | None, cells: int, threads: int) -> Executor:
    """The local executor of `jobs` workers (default: one per `threads` cores), for any number of cells."""
    if address is not None:
        raise UsageError("--address needs --executor dask or --executor ray")
    return local_executor(jobs or max(1, available_cores() // threads))
