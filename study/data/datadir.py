"""Where dataset files are looked for: the data directory, and paths relative to it."""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "STUDY_DATA_DIR"


def resolve_data_dir(flag: str | Path | None) -> Path | None:
    """The data directory: the --data-dir flag, else $STUDY_DATA_DIR, else None."""
    value = str(flag) if flag not in (None, "") else os.environ.get(ENV_VAR, "")
    return Path(value).expanduser() if value else None


def resolve_path(path: str, data_dir: Path | None) -> Path:
    """path itself if absolute, else path under the data directory (or the current directory without one)."""
    candidate = Path(path).expanduser()
    return candidate if candidate.is_absolute() else (data_dir or Path.cwd()) / candidate


def relative_hint(path: str, data_dir: Path | None) -> str:
    """For a not-found message: where a relative path was read from and how to change that."""
    if Path(path).expanduser().is_absolute():
        return ""
    if data_dir is not None:
        return f" ({path!r} is read relative to the data directory {data_dir}; change it with --data-dir or {ENV_VAR})"
    return f" ({path!r} is read relative to the current directory: no data directory is set; pass --data-dir " \
           f"or set {ENV_VAR})"
