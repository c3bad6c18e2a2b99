"""Cells on a Dask or Ray cluster: the driver submits them, the cluster runs them, results come back here.

The driver keeps at most `jobs` cells or tasks in flight, in dispatch order, and yields each outcome as it
finishes; it alone writes the store. Each cell is submitted once and its result arrives once: when a worker
is lost mid-cell, the cluster itself runs that cell again on another worker (Dask reschedules tasks of a dead
worker up to its `allowed-failures`; Ray retries tasks up to `max_retries`), so it is still stored once. A cell
the cluster gives up on because its workers kept dying is stored failed (`WorkerLost`); the sweep goes on.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator

from study.core.failures import WorkerLost
from study.training.context import WorkerContext

CONNECT_SECONDS = 10


class Cluster(ABC):
    """A connected cluster: submit work, wait for some of it, fetch results, let go."""

    kind: str
    address: str  # where it runs, for messages
    jobs: int  # cells in flight at once

    @abstractmethod
    def submit(self, function, context: WorkerContext, item):
        """Start function(context, item) on one worker, alone in its process (one cell or task at a time); a handle
        for wait_any and result."""

    @abstractmethod
    def wait_any(self, handles: list) -> list:
        """Block until at least one handle has finished; the finished ones."""

    @abstractmethod
    def result(self, handle):
        """What a finished task returned; raises when the cluster gave up on it."""

    @abstractmethod
    def worker_death(self, exc: Exception) -> str | None:
        """How the cluster says it gave up on a task because the worker processes running it died; None when exc
        says something else (the driver lost the cluster: fatal)."""

    @abstractmethod
    def cancel(self, handles: list) -> None:
        """Drop cells that have not finished."""

    @abstractmethod
    def close(self) -> None:
        """Disconnect, and stop the cluster if this process started it."""

    def describe(self) -> str:
        """The cluster in words, for the line `run` prints before the sweep."""
        return f"the {self.kind} cluster at {self.address} ({self.jobs} cell(s) at a time)"

    def map_unordered(self, function, items: Iterable, context: WorkerContext) -> Iterator[tuple]:
        """(item, function(context, item), or WorkerLost) for each item, at most `jobs` in flight, as each finishes
        (`study.execution.local.map_unordered` on this cluster).

        The next item is taken only when a worker is free, so a generator may depend on results already yielded (a
        tuning engine asks for its next trial after it was told the last one); unfinished items are cancelled when
        the consumer stops."""
        running: dict = {}  # handle -> item
        try:
            for item in items:
                running[self.submit(function, context, item)] = item
                while len(running) >= self.jobs:
                    yield from self._finished(running)
            while running:
                yield from self._finished(running)
        finally:
            self.cancel(list(running))

    def _finished(self, running: dict) -> Iterator[tuple]:
        for handle in self.wait_any(list(running)):
            yield running.pop(handle), self._outcome(handle)

    def _outcome(self, handle):
        """What a finished handle returned, or WorkerLost when the cluster gave up on it because its workers died."""
        try:
            return self.result(handle)
        except Exception as exc:
            reason = self.worker_death(exc)
            if reason is None:
                raise
            return WorkerLost(reason, attempts=1)
