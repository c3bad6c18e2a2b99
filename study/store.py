"""The results store: one parquet file per finished cell, written atomically.

Contract:
- `results/<protocol>/cells/<run_id>.parquet` holds one row; `predictions/<run_id>.parquet` the per-image test
  probabilities. A cell's predictions are written before its row, so a row on disk always has its predictions.
- Writes go to a hidden temporary file in the same folder, are flushed to disk, then renamed: a file is present
  whole or not at all. Readers ignore temporary files and any file that does not parse.
- Finished rows never change, except that `put` of a failed cell's run id again (a retry) replaces it.
- The split the cells were trained on is stored once as `split.parquet`, what the dataset load skipped in
  `dataset.json`. Temporary files a killed run left behind are removed by the next run, under its lock.
- A run with --until-decided stores its plan of looks, the looks made and why it stopped in `sequential.json`.
- A tuned protocol's choices are stored once per tuning unit as `tuning/chosen/<unit key>.json` (the values, the
  best validation score, the budget and how it was spent); the engines' own state (Optuna's SQLite file,
  KerasTuner's project directories) lives beside them in `tuning/`.
- A write that fails because the folder is read-only, not permitted or full raises FatalError (one line).
- Nothing is deleted except by `remove`, which the `prune` command calls.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from study.errors import StudyError
from study.failures import fatal_store_error

log = logging.getLogger(__name__)

CELLS = "cells"
PREDICTIONS = "predictions"
CHOSEN = "tuning/chosen"


class ResultStore:
    """Parquet results of one protocol under `root/<protocol>/`."""

    def __init__(self, results_dir: Path, protocol: str):
        self.root = Path(results_dir) / protocol
        self.cells_dir = self.root / CELLS
        self.predictions_dir = self.root / PREDICTIONS
        self.chosen_dir = self.root / CHOSEN

    # ------------------------------------------------------------------------------------------ writing
    def put(self, row: dict, predictions: pd.DataFrame | None) -> Path:
        """Store one finished (or failed) cell atomically; its predictions first."""
        run_id = row["run_id"]
        if predictions is not None:
            _write_table(pa.Table.from_pandas(predictions, preserve_index=False), self.predictions_dir / f"{run_id}.parquet")
        return _write_table(pa.Table.from_pylist([row]), self.cells_dir / f"{run_id}.parquet")

    def put_split(self, split: pd.DataFrame) -> None:
        """Store the train/val/test assignment of every image (once; later calls must agree)."""
        path = self.root / "split.parquet"
        if path.exists():
            stored = pd.read_parquet(path)
            if not stored.reset_index(drop=True).equals(split.reset_index(drop=True)):
                raise StudyError(
                    f"{path}: the stored split differs from this run's split (the dataset changed?); "
                    "use a new protocol name or another --results-dir"
                )
            return
        _write_table(pa.Table.from_pandas(split, preserve_index=False), path)

    # ------------------------------------------------------------------------------------------ reading
    def cells(self) -> pd.DataFrame:
        """Every stored cell, one row each, ignoring torn or temporary files."""
        frames = [_read(path) for path in sorted(self.cells_dir.glob("*.parquet"))]
        frames = [frame for frame in frames if frame is not None and len(frame)]
        if not frames:
            return pd.DataFrame(columns=["run_id", "status"])
        return pd.concat(frames, ignore_index=True)

    def predictions(self, run_id: str) -> pd.DataFrame | None:
        """The per-image test predictions of one cell, or None when absent or unreadable."""
        return _read(self.predictions_dir / f"{run_id}.parquet")

    def row(self, run_id: str) -> dict | None:
        """The stored row of one cell as plain Python values, or None when absent or unreadable."""
        path = self.cells_dir / f"{run_id}.parquet"
        try:
            rows = pq.read_table(path).to_pylist()
        except FileNotFoundError:
            return None
        except (OSError, pa.ArrowInvalid) as exc:
            log.warning("ignoring unreadable result file %s (%s)", path, exc)
            return None
        return rows[0] if rows else None

    def statuses(self) -> dict[str, str]:
        """run_id -> status of every stored cell (two columns read per file, no data frame: status starts fast)."""
        found = {}
        for path in sorted(self.cells_dir.glob("*.parquet")):
            try:
                columns = pq.read_table(path, columns=["run_id", "status"]).to_pydict()
            except (OSError, pa.ArrowInvalid) as exc:
                log.warning("ignoring unreadable result file %s (%s)", path, exc)
                continue
            found.update(zip(columns["run_id"], columns["status"]))
        return found

    def put_tuning(self, record: dict) -> Path:
        """Store a tuning unit's choice (record["key"] names it); a later choice for the same key replaces it."""
        data = json.dumps(record, indent=1, sort_keys=True).encode()
        return _write_bytes(data, self.chosen_dir / f"{record['key']}.json")

    def tuning_records(self) -> dict[str, dict]:
        """Every stored tuning choice, by unit key; unreadable files are ignored."""
        records = {}
        for path in sorted(self.chosen_dir.glob("*.json")):
            try:
                record = json.loads(path.read_text())
                records[record["key"]] = record
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("ignoring unreadable tuning record %s (%s)", path, exc)
        return records

    # ---------------------------------------------------------------------------------------- housekeeping
    def put_protocol(self, text: str) -> None:
        """Keep a copy of the protocol last run."""
        _write_bytes(text.encode(), self.root / "protocol.yaml")

    def put_dataset_info(self, info: dict) -> None:
        """What the dataset load found: image count and the files it skipped (dataset.json)."""
        _write_bytes(json.dumps(info, indent=1, sort_keys=True).encode(), self.root / "dataset.json")

    def put_sequential(self, record: dict) -> None:
        """The plan, looks and stop reason of a run that adds seeds until its claims are decided."""
        _write_bytes(json.dumps(record, indent=1, sort_keys=True).encode(), self.root / "sequential.json")

    def sequential(self) -> dict | None:
        """The stored sequential record, or None when no run added seeds (or the file does not parse)."""
        try:
            return json.loads((self.root / "sequential.json").read_text())
        except (OSError, ValueError):
            return None

    def remove_temporary(self) -> int:
        """Delete temporary files a killed run left; call only under the run lock. Returns how many."""
        leftovers = [path for folder in (self.root, self.cells_dir, self.predictions_dir, self.chosen_dir)
                     for path in folder.glob(".*.tmp")]
        for path in leftovers:
            path.unlink(missing_ok=True)
        return len(leftovers)

    def remove(self, run_ids: list[str]) -> None:
        """Delete the stored rows and predictions of run_ids (the prune command; call under the run lock)."""
        for run_id in run_ids:
            (self.cells_dir / f"{run_id}.parquet").unlink(missing_ok=True)
            (self.predictions_dir / f"{run_id}.parquet").unlink(missing_ok=True)


def _read(path: Path) -> pd.DataFrame | None:
    try:
        return pq.read_table(path).to_pandas()
    except (OSError, pa.ArrowInvalid) as exc:
        log.warning("ignoring unreadable result file %s (%s)", path, exc)
        return None


def _write_table(table: pa.Table, path: Path) -> Path:
    return _write_atomic(path, lambda stream: pq.write_table(table, stream))


def _write_bytes(data: bytes, path: Path) -> Path:
    return _write_atomic(path, lambda stream: stream.write(data))


def _write_atomic(path: Path, write: Callable) -> Path:
    """write(stream) into a temporary file beside path, flushed to disk, then renamed onto path."""
    temporary = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
        temporary = None
    except OSError as exc:
        fatal = fatal_store_error(exc, path.parent)
        if fatal is None:
            raise
        raise fatal from None
    finally:
        if temporary is not None:
            Path(temporary).unlink(missing_ok=True)
    return path
