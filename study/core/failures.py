"""Failure kinds of a cell (KerasTuner's): tried again, failed for good, or fatal to the whole sweep.

The package's own errors declare their kind (`StudyError.failure`); errors of Python, NumPy, TensorFlow and the
operating system get one by their type here.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass

from study.core.errors import StudyError
from study.core.vocabulary import FailureKind


class FatalError(StudyError):
    """A condition no cell can get past (the store cannot be written); the sweep stops with this message."""

    failure = FailureKind.FATAL


@dataclass(frozen=True)
class WorkerLost:
    """A cell or trial given up because the process running it died (out of memory, a crash) each time it ran.

    Deterministic: its settings would kill a worker again; the sweep stores it failed and goes on."""

    reason: str  # how its processes died, as far as is known
    attempts: int  # times the driver ran it


# errors whose cause lies in the settings, the data or the code, so a second attempt fails the same way
_DETERMINISTIC = (ValueError, TypeError, ArithmeticError, NotImplementedError, AssertionError, LookupError,
                  AttributeError, NameError)
_DETERMINISTIC_NAMES = {"InvalidArgumentError", "UnimplementedError", "FailedPreconditionError"}  # tf.errors
_DISK_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}  # in a cell: no other cell can write its caches either
FATAL_ERRNOS = _DISK_FULL | {errno.EACCES, errno.EPERM}  # on a store write


def failure_kind(exc: BaseException) -> FailureKind:
    """Which kind of failure an exception raised while running a cell is: the kind it declares, else the one its
    type implies."""
    if isinstance(exc, StudyError):
        return exc.failure
    if isinstance(exc, OSError) and exc.errno in _DISK_FULL:
        return FailureKind.FATAL
    if isinstance(exc, PermissionError):
        return FailureKind.DETERMINISTIC
    if isinstance(exc, _DETERMINISTIC) or any(cls.__name__ in _DETERMINISTIC_NAMES for cls in type(exc).__mro__):
        return FailureKind.DETERMINISTIC
    return FailureKind.RETRYABLE


def fatal_store_error(exc: OSError, path) -> FatalError | None:
    """The one-line fatal error for a failed write under path, or None when the error is not fatal."""
    if exc.errno not in FATAL_ERRNOS:
        return None
    reason = "the disk is full" if exc.errno in {errno.ENOSPC, errno.EDQUOT} else "it is not writable"
    return FatalError(f"cannot write results in {path}: {reason} ({exc.strerror or exc}); free space, fix the "
                      "permissions or choose another --results-dir, then run again to resume")
