"""What a cluster worker does with a cell: one cell at a time per process, with a cache folder it can write.

These functions run inside Dask and Ray worker processes. TensorFlow is imported there, by the cell itself
(`worker.configure_tensorflow`, which also turns oneDNN on), never by the driver that submits them.
"""

from __future__ import annotations

import os
import tempfile
import threading
from dataclasses import replace
from pathlib import Path

from study.training.context import WorkerContext

# Keras' random seed and the worker's model and feature caches belong to the process: a worker with several
# threads still trains one cell at a time, with the protocol's thread count (train.threads: results depend on it).
_ONE_CELL_AT_A_TIME = threading.Lock()


def writable_cache_dir(cache_dir: str | None) -> str | None:
    """The driver's cache folder when this machine can write it (shared or same-layout filesystem), else one here."""
    if cache_dir is None:
        return None
    try:
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        if os.access(cache_dir, os.W_OK):
            return cache_dir
    except OSError:
        pass
    return str(Path(tempfile.gettempdir()) / "study-cache")


def on_worker(context: WorkerContext) -> WorkerContext:
    """The context as this worker sees it: a cache folder it can write (the thread count stays the protocol's)."""
    return replace(context, cache_dir=writable_cache_dir(context.cache_dir))


def run_on_worker(function, context: WorkerContext, item):
    """function(context, item) on this worker, like every cell: alone in its process, with the protocol's threads
    and a cache folder it can write."""
    with _ONE_CELL_AT_A_TIME:
        return function(on_worker(context), item)
