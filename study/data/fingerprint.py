"""Source fingerprints: sha256 over length-prefixed text fields and file contents."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from study.core.errors import DataError

_LOADER_VERSION = "study-data-1"  # part of every fingerprint: bump it when the rules of study.data.images change


class Hasher:
    """sha256 over length-prefixed fields, so that no two field sequences hash alike."""

    def __init__(self, kind: str):
        self._hash = hashlib.sha256()
        self.text(_LOADER_VERSION)
        self.text(kind)

    def text(self, value: str) -> None:
        data = value.encode()
        self._hash.update(b"%d:" % len(data) + data)

    def file(self, path: Path) -> None:
        try:
            with open(path, "rb") as handle:
                self._hash.update(b"%d:" % os.fstat(handle.fileno()).st_size)
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    self._hash.update(chunk)
        except OSError as exc:
            raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None

    def hexdigest(self) -> str:
        return self._hash.hexdigest()
