"""Stored results that no longer belong to the protocol (an earlier version of it planned them), and their removal."""

from __future__ import annotations

import pandas as pd

from study.runner.inputs import PlannedStudy
from study.runner.lock import RunLock


def stale_results(study: PlannedStudy) -> pd.DataFrame:
    """The stored rows whose run ids the protocol no longer plans."""
    stored = study.store.cells()
    return stored[~stored["run_id"].isin(study.planned_ids)]


def remove_results(study: PlannedStudy, run_ids: list[str]) -> None:
    """Delete these stored results, under the run lock."""
    lock = RunLock(study.store.root)
    lock.acquire()
    try:
        study.store.remove(run_ids)
    finally:
        lock.release()
