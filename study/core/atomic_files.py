"""The one way the package writes a file that others may read at any moment: whole, or not at all.

The data goes to a hidden temporary file in the path's folder (`.<name>.<random>.tmp`), is flushed to disk and
renamed onto the path; then the folder is flushed too, so that the rename survives a power cut. A failure at any
point leaves the old file (if any) as it was and no temporary file behind.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

Writer = Callable[[BinaryIO], object]


def write_atomic(path: Path, data: bytes | Writer) -> Path:
    """Write data (bytes, or a function that writes into the binary stream it is given) onto path atomically,
    creating its folder when missing; the file gets the permissions of any new file (umask). Returns path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    try:
        with os.fdopen(os.open(temporary, flags, 0o666), "wb") as stream:
            if isinstance(data, (bytes, bytearray, memoryview)):
                stream.write(data)
            else:
                data(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    sync_folder(path.parent)
    return path


def sync_folder(folder: Path) -> None:
    """Flush a folder's entries (a rename in it) to disk; nothing where the platform cannot open a folder (Windows)."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def writable(path: Path) -> bool:
    """Whether path could be written: it, or the nearest folder above it that exists, is writable (a read-only
    filesystem is not, also for root)."""
    existing = Path(path).absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    return os.access(existing, os.W_OK)


def process_alive(pid: int) -> bool:
    """Whether a process with this pid runs on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True
