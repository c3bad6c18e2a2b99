"""The executor of `--jobs 1`: each item runs in this process, when its outcome is taken."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from study.execution.executor import Executor


class InProcess(Executor):
    """Runs one item at a time in this process (no worker to lose)."""

    jobs = 1

    def submit(self, function, context, item) -> Callable[[], Any]:
        return partial(function, context, item)

    def wait_any(self, handles: list) -> list:
        return handles

    def outcome(self, handle: Callable[[], Any]) -> Any:
        return handle()

    def cancel(self, handles: list) -> None:
        """Nothing runs until its outcome is taken."""
