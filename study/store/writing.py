"""The store's one way to write a file: atomically, with the failures no cell can get past raised as fatal."""

from __future__ import annotations

from pathlib import Path

from study.core.failures import fatal_store_error
from study.core.atomic_files import Writer, write_atomic


def write_store_file(path: Path, data: bytes | Writer) -> Path:
    """write_atomic, with a failure no cell can get past (read-only, not permitted, full) raised as FatalError."""
    try:
        return write_atomic(path, data)
    except OSError as exc:
        fatal = fatal_store_error(exc, path.parent)
        if fatal is None:
            raise
        raise fatal from None
