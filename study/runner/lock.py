"""The run lock: one `study run` per results folder; who holds it is written beside it.

The lock is an OS file lock (filelock, fcntl on Unix): the OS releases it when its process dies, even by
SIGKILL, so a stale lock is simply taken over. The holder file (`.lock.holder`: pid, host, start time) only
describes the lock while the lock is held; a holder file left by a killed run is overwritten by the next one.
"""

from __future__ import annotations

import json
import logging
import os
import platform
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from filelock import FileLock, Timeout

from study.core.errors import StudyError
from study.core.failures import fatal_store_error
from study.core.atomic_files import process_alive, write_atomic

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]  # typeshed declares the module present on every platform

log = logging.getLogger(__name__)


class RunLock:
    """The lock that keeps two runs from writing one protocol's results at once."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.path = self.root / ".lock"
        self.holder_path = self.root / ".lock.holder"
        self._lock = FileLock(str(self.path), thread_local=False)

    def acquire(self, wait: bool = False, on_wait: Callable[[str], None] | None = None) -> None:
        """Take the lock; when another run holds it, fail naming that run, or (wait) block until it ends."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            self._try(wait, on_wait)
            self._write_holder()
        except OSError as exc:
            fatal = fatal_store_error(exc, self.root)
            if fatal is None:
                raise
            raise fatal from None

    def _try(self, wait: bool, on_wait: Callable[[str], None] | None) -> None:
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            holder = self.holder()
            if not wait:
                raise self._refusal(holder) from None
            if on_wait:
                on_wait(holder)
            self._lock.acquire()

    def refuse_if_held(self) -> None:
        """The refusal acquire gives while another run holds the lock, raised before anything is printed or read."""
        holder = self.held_elsewhere()
        if holder is not None:
            raise self._refusal(holder)

    def _refusal(self, holder: str) -> StudyError:
        return StudyError(f"{self.root}: another `study run` is writing these results ({holder}); wait for it to "
                          "finish, add --wait to start when it does, or use another --results-dir")

    def release(self) -> None:
        """Drop the holder file, then the lock."""
        self.holder_path.unlink(missing_ok=True)
        self._lock.release()

    def held_elsewhere(self) -> str | None:
        """The holder's description while another process holds the lock, else None (never blocks). It opens the
        lock file for reading alone, so a read-only store is probed too (a shared flock conflicts with the run's)."""
        if fcntl is None:  # Windows: the lock is probed as a run takes it
            return self._probe_writing()
        try:
            descriptor = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return self.holder()
        finally:
            os.close(descriptor)
        return None

    def _probe_writing(self) -> str | None:
        if not self.path.exists():
            return None
        probe = FileLock(str(self.path), thread_local=False)
        try:
            probe.acquire(timeout=0)
        except Timeout:
            return self.holder()
        probe.release()
        return None

    def holder(self) -> str:
        """Who holds the lock, from the holder file: 'pid 123 on host since 2026-...'."""
        try:
            info = json.loads(self.holder_path.read_text())
            described = f"pid {info['pid']} on {info['host']} since {info['started']}"
        except (OSError, ValueError, KeyError, TypeError):
            return f"holder unknown: {self.holder_path.name} is missing or unreadable"
        if info["host"] == platform.node() and not process_alive(info["pid"]):
            described += ", which has ended: a process it started still holds the lock; end that process"
        return described

    def _write_holder(self) -> None:
        info = {"pid": os.getpid(), "host": platform.node(),
                "started": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        write_atomic(self.holder_path, json.dumps(info).encode())

