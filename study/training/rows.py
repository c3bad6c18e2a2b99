"""The stored row of a cell: what identifies it (settings, versions, host, timestamps), and the row of a failure.

Its columns are the store's contract, declared in `study.store.columns.CELLS`; the store refuses a row with a
column that schema lacks.
"""

from __future__ import annotations

import json
import platform
from datetime import datetime, timezone

import numpy as np

import study
from study.core.failures import FailureKind
from study.core.vocabulary import CellStatus
from study.plan.cells import Cell
from study.plan.tuning_units import tuning_columns
from study.training.process import cpu_model


def cell_row(cell: Cell, started: datetime) -> dict:
    """The identifying part of a stored row: settings, versions, timestamps."""
    import importlib.metadata as metadata

    def version(package: str) -> str | None:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return None

    arm = cell.arm
    settings = cell.settings
    return {
        "run_id": cell.run_id,
        "protocol": cell.protocol,
        "status": CellStatus.FAILED.value,
        "error": None,
        "traceback": None,
        "arm": arm.label,
        "strategy": arm.strategy,
        "depth": arm.depth,
        "truncate_at": arm.truncate_at,
        "head": arm.head.kind,
        "lr_backbone": arm.lr_backbone,
        "lr_head": arm.lr_head,
        "lr_output": arm.lr_output if arm.lr_output is not None else arm.lr_head,
        "fraction": cell.fraction,
        "seed": cell.seed,
        "backbone": settings.backbone.name,
        "weights": settings.backbone.weights,
        "size": settings.dataset.size,
        "resize": settings.dataset.resize,
        "threads": settings.train.threads,
        "dataset_source": settings.dataset.source,
        "settings_json": json.dumps(settings.as_dict(), sort_keys=True, default=str),
        **tuning_columns(settings),
        "study_version": study.__version__,
        "tensorflow_version": version("tensorflow-cpu") or version("tensorflow"),
        "keras_version": version("keras"),
        "numpy_version": np.__version__,
        "python_version": platform.python_version(),
        "hostname": platform.node(),
        "cpu": cpu_model(),
        "started_at": started.isoformat(),
        "finished_at": datetime.now(timezone.utc).isoformat(),
    }


def failed_row(cell: Cell, started: datetime, error: str, kind: FailureKind) -> dict:
    """The stored row of a cell that failed with error, of the given failure kind."""
    row = cell_row(cell, started)
    row.update(status=CellStatus.FAILED.value, error=error, failure=kind.value)
    return row
