"""The stored tuning choices a protocol uses."""

from __future__ import annotations

from study.protocol.schema import Protocol


def current_choices(records: dict[str, dict], protocol: Protocol) -> dict[str, dict]:
    """The stored choices made with the protocol's present budget (a changed budget means tuning goes on)."""
    if protocol.tuning is None:
        return {}
    return {key: record for key, record in records.items() if record.get("trials") == protocol.tuning.trials}
