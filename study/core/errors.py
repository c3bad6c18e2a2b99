"""Error kinds shared by every stage: user mistakes are worded for the user, bugs as bugs.

The code that raises an error declares what it means, as KerasTuner's errors do: `exit_code`, the command's exit
status (the table in `study.cli`), and `failure`, how the sweep treats a cell that raised it
(`study.core.failures.failure_kind`).
"""

from study.core.vocabulary import FailureKind


class StudyError(Exception):
    """A problem the user can fix (missing file, busy results directory, failed cells): exit 1; in a cell, the same
    settings fail again (deterministic)."""

    exit_code = 1
    failure = FailureKind.DETERMINISTIC


class UsageError(StudyError):
    """Command-line flags, or options of `Study.run`, that do not go together or name nothing known: exit 2."""

    exit_code = 2


class ProtocolError(StudyError):
    """A protocol that does not validate; the message names the file, line and field: exit 2."""

    exit_code = 2


class DataError(StudyError):
    """A dataset that cannot be found or read; the message names the file and how to fix it."""
