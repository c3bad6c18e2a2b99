"""Error kinds shared by every stage: user mistakes are worded for the user, bugs as bugs."""


class StudyError(Exception):
    """A problem the user can fix (bad protocol, missing file, busy results directory)."""


class ProtocolError(StudyError):
    """A protocol that does not validate; the message names the file, line and field."""


class DataError(StudyError):
    """A dataset that cannot be found or read; the message names the file and how to fix it."""
