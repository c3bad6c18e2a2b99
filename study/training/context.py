"""What a worker process needs besides the cell: where the data lives and how many threads it may use.

A light module on purpose: the scheduler, the clusters and the tuning phase pass a context along without importing
the worker's TensorFlow and scikit-learn code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class WorkerContext:
    """What a worker needs besides the cell: where data lives and how many threads it may use."""

    dataset: dict[str, Any]  # the protocol's dataset section, including its path
    data_dir: str | None
    cache_dir: str | None
    threads: int
    caches: bool = True  # feature cache and model reuse; off only to measure what they save
    fingerprint: str | None = None  # the driver's dataset fingerprint: a worker that reads other files fails its cells
    cached_blocks: dict[str, list[int]] = field(default_factory=dict)  # features.cached_blocks of the sweep's cells
    keep_models: bool = False  # send each cell's trained model back with its result (run.keep_models)
    log_dir: str | None = None  # where local worker processes write their output (study.execution.pool); None: the terminal
