"""Stored results that no longer belong to the protocol (an earlier version of it planned them), and their removal."""

from __future__ import annotations

import pandas as pd

from study.runner.inputs import PlannedStudy
from study.runner.lock import RunLock


def stale_results(planned: PlannedStudy) -> pd.DataFrame:
    """The stored rows whose run ids the protocol no longer plans."""
    stored = planned.store.cells()
    return stored[~stored["run_id"].isin(planned.planned_ids)]


def remove_results(planned: PlannedStudy, run_ids: list[str]) -> None:
    """Delete these stored results, under the run lock."""
    lock = RunLock(planned.store.root)
    lock.acquire()
    try:
        planned.store.remove(run_ids)
    finally:
        lock.release()
