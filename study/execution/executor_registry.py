"""Every executor `study run --executor` may name, in one place: the CLI's choices, the options' check and the
opening of a cluster all read `EXECUTORS`.

An entry names the function that opens the executor (imported only when it is opened, so that naming an executor
imports none of its packages) and the modules of the extra (pyproject.toml) that installs them.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from functools import reduce
from typing import TYPE_CHECKING, Any

from study.core.errors import StudyError, UsageError

if TYPE_CHECKING:
    from study.execution.executor import Executor


@dataclass(frozen=True)
class ExecutorKind:
    """An executor: its name, who it is in messages, what opens it and the modules its extra installs."""

    name: str  # the value of --executor
    title: str  # its name in messages
    opener: str  # "module:function" or "module:Class.method": (address, jobs, cells, threads) -> a connected Executor
    packages: tuple[str, ...] = ()  # the modules of the extra `study[<name>]`; none: installed with study

    def open(self, address: str | None, jobs: int | None, cells: int, threads: int) -> Executor:
        """The executor at address (or started on this machine) for `cells` cells of `threads` threads each."""
        module, path = self.opener.split(":")
        root: Any = importlib.import_module(module)  # the opener is an attribute path under it
        opener = reduce(getattr, path.split("."), root)
        return opener(address, jobs, cells, threads)

    def require_packages(self) -> None:
        """Raise a one-line StudyError when its extra is not installed; import nothing."""
        if any(importlib.util.find_spec(module) is None for module in self.packages):
            raise StudyError(f'--executor {self.name} needs {self.title}: pip install "study[{self.name}]"')


EXECUTORS = {kind.name: kind for kind in (
    ExecutorKind("local", "local worker processes", "study.execution.local_executor:open_local"),
    ExecutorKind("dask", "Dask", "study.execution.dask:DaskCluster.connect", ("dask", "distributed")),
    ExecutorKind("ray", "Ray", "study.execution.ray:RayCluster.connect", ("ray", "psutil")),
)}


def executor_kind(name: str) -> ExecutorKind:
    """The registered executor of that name; a one-line usage error naming the others."""
    if name not in EXECUTORS:
        raise UsageError(f"unknown executor {name!r}: one of {', '.join(EXECUTORS)}")
    return EXECUTORS[name]
