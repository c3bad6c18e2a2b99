"""Cells on a Dask or Ray cluster: the driver submits them, the cluster runs them, results come back here.

The driver keeps at most `jobs` cells or tasks in flight, in dispatch order, and yields each outcome as it
finishes; it alone writes the store. Each cell is submitted once and its result arrives once: when a worker
is lost mid-cell, the cluster itself runs that cell again on another worker (Dask reschedules tasks of a dead
worker up to its `allowed-failures`; Ray retries tasks up to `max_retries`), so it is still stored once. A cell
the cluster gives up on because its workers kept dying is stored failed (`WorkerLost`); the sweep goes on.
"""

from __future__ import annotations

from abc import abstractmethod

from study.core.failures import WorkerLost
from study.execution.executor import Executor

CONNECT_SECONDS = 10


class Cluster(Executor):
    """A connected Dask or Ray cluster: submit work, wait for some of it, fetch results, let go."""

    kind: str
    address: str  # where it runs, for messages

    @abstractmethod
    def result(self, handle):
        """What a finished task returned; raises when the cluster gave up on it."""

    @abstractmethod
    def worker_death(self, exc: Exception) -> str | None:
        """How the cluster says it gave up on a task because the worker processes running it died; None when exc
        says something else (the driver lost the cluster: fatal)."""

    def describe(self) -> str:
        """The cluster in words, for the line `run` prints before the sweep."""
        return f"the {self.kind} cluster at {self.address} ({self.jobs} cell(s) at a time)"

    def outcome(self, handle):
        """What a finished handle returned, or WorkerLost when the cluster gave up on it because its workers died."""
        try:
            return self.result(handle)
        except Exception as exc:
            reason = self.worker_death(exc)
            if reason is None:
                raise
            return WorkerLost(reason, attempts=1)
