"""TensorFlow comes with an extra (`cpu` or `gpu`), not with the base install: find it, or say how to install it."""

from __future__ import annotations

import importlib.util

from study.core.errors import StudyError

MISSING_TENSORFLOW = "TensorFlow is not installed: pip install 'study[cpu]' or 'study[gpu]'"


def require_tensorflow() -> None:
    """Raise a one-line StudyError when the tensorflow module cannot be found; import nothing."""
    if importlib.util.find_spec("tensorflow") is None:
        raise StudyError(MISSING_TENSORFLOW)
