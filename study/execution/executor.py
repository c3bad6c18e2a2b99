"""What every executor offers: map a function over items on its workers, at most `jobs` at a time, each outcome
yielded as it finishes.

An executor submits one item at a time, waits for some of them to finish and hands back what each returned (or
`WorkerLost` when it gave up on an item because the worker processes running it died); `map_unordered` is written
once, here, on top of those steps. Each kind of executor is named once, in `study.execution.executor_registry`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Generator, Iterable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from study.training.context import WorkerContext


class Executor(ABC):
    """Runs function(context, item) for items on its workers; closing it lets its workers go."""

    jobs: int  # items in flight at once

    @abstractmethod
    def submit(self, function: Callable[[WorkerContext, Any], Any], context: WorkerContext, item: Any) -> Any:
        """Start function(context, item) on a worker; a handle for wait_any and outcome."""

    @abstractmethod
    def wait_any(self, handles: list) -> list:
        """Block until at least one handle has finished; the finished ones, in the order their outcomes are taken."""

    @abstractmethod
    def outcome(self, handle: Any) -> Any:
        """What a finished handle's function returned, or WorkerLost when its worker processes died; an exception the
        function raised is raised here."""

    @abstractmethod
    def cancel(self, handles: list) -> None:
        """Stop the handles that have not finished (the consumer stopped)."""

    def close(self) -> None:
        """Let the workers go (nothing to do for an executor that holds none)."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def map_unordered(self, function: Callable[[WorkerContext, Any], Any], items: Iterable, context: WorkerContext
                      ) -> Generator[tuple[Any, Any], None, None]:
        """(item, function(context, item), or WorkerLost) for each item, at most `jobs` in flight, as each finishes.

        The next item is taken only when a worker is free, so items may be a generator that depends on outcomes
        already yielded (a tuning engine asks for its next trial after it was told the last one). An exception the
        function raised is raised here; unfinished items are cancelled when the consumer stops."""
        running: dict = {}  # handle -> item
        try:
            for item in items:
                running[self.submit(function, context, item)] = item
                while len(running) >= self.jobs:
                    yield from self._finished(running)
            while running:
                yield from self._finished(running)
        finally:
            if running:
                self.cancel(list(running))

    def _finished(self, running: dict) -> Iterator[tuple[Any, Any]]:
        finished = [(handle, running.pop(handle)) for handle in self.wait_any(list(running))]
        for handle, item in finished:
            yield item, self.outcome(handle)
