"""study: a data-efficiency study harness for transfer learning in medical image classification.

The library's public face (imported on first use, so that `import study` stays light):

- `load(protocol, results_dir=..., report_dir=..., data_dir=...)`: a `Study` of a protocol file, dict or `Protocol`;
- `Study`: `validate`, `plan`, `status`, `run`, `report`, and the results as DataFrames: `cells`, `predictions`,
  `tables`, `claims`;
- `Protocol`, `load_protocol`: the protocol schema and its loader;
- `StudyError`, `ProtocolError`: what a failing call raises, with a one-line message.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"
__all__ = ["Protocol", "ProtocolError", "Study", "StudyError", "load", "load_protocol"]

_HOMES = {"load": "study.api", "Study": "study.api", "Protocol": "study.protocol.schema",
          "load_protocol": "study.protocol.schema", "StudyError": "study.core.errors",
          "ProtocolError": "study.core.errors"}

if TYPE_CHECKING:
    from study.api import Study, load
    from study.core.errors import ProtocolError, StudyError
    from study.protocol.schema import Protocol, load_protocol


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module 'study' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_HOMES[name]), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
