"""The results store: one parquet file per finished cell, written atomically.

Contract:
- `results/<protocol>/cells/<run_id>.parquet` holds one row; `predictions/<run_id>.parquet` the per-image test
  probabilities, with the class names (`predictions.attrs["class_names"]`, in the file's schema metadata; absent in
  files written before them). A cell's predictions are written before its row, so a row on disk always has its
  predictions; a done row whose predictions file is missing or does not parse is not done: `cells` and `statuses`
  leave it out (one warning), so it counts as pending and the next run runs it again, replacing its row.
- Every file is written in its schema, declared once in `study.store.columns` (the row's columns and types), so that
  `cells/` and `predictions/` read as one table in any parquet reader; a row with a column the schema lacks is
  refused with a StudyError. Files written before the schema are cast to it when read, and `conform_files`
  (called by `study run` under its lock) rewrites them in it once, values unchanged.
- Writes go through `study.core.atomic_files.write_atomic` (a hidden temporary file in the same folder, flushed, renamed,
  the folder flushed): a file is present whole or not at all. Readers ignore temporary files, and read any file
  that does not parse as absent, with one warning per file naming what heals it (docs/guide/store.md, "When a store
  file is damaged").
- Finished rows never change, except that `put` of a run id again replaces its row: a failed cell's (a retry), or a
  done cell's whose predictions were lost (and the one rewrite of a file written before the schema, above).
- The split the cells were trained on is stored in `split.parquet`, one block of rows per seed with
  `dataset.resplit` (the seed column null for the fixed split every seed shares); what the dataset load found and
  skipped, and the class names, in `dataset.json`. Temporary files a killed run left behind are removed by the
  next run, under its lock.
- A run with --until-decided stores its plan of looks, the looks made and why it stopped in `sequential.json`.
- A tuned protocol's choices are stored once per tuning unit as `tuning/chosen/<unit key>.json` (the values, the
  best validation score, the budget and how it was spent); the engines' own state (Optuna's SQLite file,
  KerasTuner's project directories) lives beside them in `tuning/`.
- With `run --keep-models`, a cell's trained model is kept in `models/` (`study.store.models`), written before its
  row like its predictions.
- Local worker processes write their output (TensorFlow's start-up lines, warnings) to `logs/worker-<pid>.log`.
- A write that fails because the folder is read-only, not permitted or full raises FatalError (one line).
- Nothing is deleted except by `remove`, which the `prune` command calls, and the kept models that
  `--keep-models best` no longer keeps.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from study.core.errors import StudyError
from study.core.vocabulary import CellStatus
from study.store.writing import write_store_file
from study.store.models import KeptModel, ModelFiles
from study.store.columns import (
    CELLS,
    SPLIT,
    class_names_of,
    conform,
    conformed_frame,
    conformed_row,
    predictions_schema_for,
    undeclared,
    with_class_names,
)

log = logging.getLogger(__name__)

CELLS_DIR = "cells"
PREDICTIONS_DIR = "predictions"
CHOSEN_DIR = "tuning/chosen"
LOGS_DIR = "logs"
RERUN = "its cell counts as pending: `study run` runs it again"
REWRITE = "read as absent: `study run` writes it again"
_WARNED: set[tuple] = set()  # the damaged files (path, mtime, size) warned about in this process


class ResultStore:
    """Parquet results of one protocol under `root/<protocol>/`."""

    def __init__(self, results_dir: Path, protocol: str):
        self.root = Path(results_dir) / protocol
        self.cells_dir = self.root / CELLS_DIR
        self.predictions_dir = self.root / PREDICTIONS_DIR
        self.chosen_dir = self.root / CHOSEN_DIR
        self.logs_dir = self.root / LOGS_DIR
        self.models = ModelFiles(self.root)

    # ------------------------------------------------------------------------------------------ writing
    def put(self, row: dict, predictions: pd.DataFrame | None, model: KeptModel | None = None) -> Path:
        """Store one finished (or failed) cell atomically; its model (when given) and predictions first."""
        run_id = row["run_id"]
        path = self.cells_dir / f"{run_id}.parquet"
        table = conformed_row(row, str(path))
        if model is not None:
            self.models.put(model)
        if predictions is not None:
            where = self.predictions_dir / f"{run_id}.parquet"
            _write_table(_predictions_table(predictions, where), where)
        return _write_table(table, path)

    def put_split(self, split: pd.DataFrame) -> None:
        """Store the train/val/test assignment of every image (columns seed, image_id, label, group, split), one
        block of rows per seed (seed null: the fixed split every seed shares). A block already stored must agree
        with this run's; blocks of seeds not stored yet are added. One file."""
        path = self.root / "split.parquet"
        split, stored = _split_columns(split), _read_split(path)
        if stored is not None:
            split = _merged_split(stored, split, path)
            if split.equals(stored):
                return
        _write_table(conformed_frame(pa.Table.from_pandas(split, preserve_index=False), SPLIT, str(path)), path)

    def split(self) -> pd.DataFrame | None:
        """The stored split (every seed's block), or None when none is stored."""
        return _read_split(self.root / "split.parquet")

    def dataset_info(self) -> dict | None:
        """What the dataset load found (dataset.json), or None when absent or unreadable (one warning)."""
        return _read_json(self.root / "dataset.json", REWRITE)

    # ------------------------------------------------------------------------------------------ reading
    def cells(self) -> pd.DataFrame:
        """Every stored cell, one row each, ignoring torn or temporary files and done rows without their predictions."""
        tables = [_read(path, _cells_schema) for path in sorted(self.cells_dir.glob("*.parquet"))]
        cells = pa.concat_tables([CELLS.empty_table(), *filter(None, tables)]).to_pandas()
        complete = [self._complete(run_id, status) for run_id, status in zip(cells["run_id"], cells["status"])]
        return cells.loc[np.array(complete, dtype=bool)].reset_index(drop=True)

    def predictions(self, run_id: str) -> pd.DataFrame | None:
        """The per-image test predictions of one cell, or None when absent or unreadable; the stored class names in
        `attrs["class_names"]` (absent for files written before them)."""
        table = _read(self.predictions_dir / f"{run_id}.parquet", predictions_schema_for)
        if table is None:
            return None
        frame = table.to_pandas()
        names = class_names_of(table.schema)
        if names is not None:
            frame.attrs["class_names"] = names
        return frame

    def row(self, run_id: str) -> dict | None:
        """The stored row of one cell as plain Python values, or None when absent or unreadable."""
        path = self.cells_dir / f"{run_id}.parquet"
        if not path.exists():
            return None
        table = _read(path, _cells_schema)
        return table.to_pylist()[0] if table is not None and table.num_rows else None

    def statuses(self) -> dict[str, str]:
        """run_id -> status of every stored cell (two columns read per file, no data frame: status starts fast); a
        done row without its predictions is left out (pending)."""
        found: dict[str, str] = {}
        for path in sorted(self.cells_dir.glob("*.parquet")):
            try:
                columns = pq.read_table(path, columns=["run_id", "status"]).to_pydict()
            except (OSError, pa.ArrowInvalid) as exc:
                _warn_once(path, f"unreadable ({_one_line(exc)}); {RERUN}")
                continue
            found.update((run_id, status) for run_id, status in zip(columns["run_id"], columns["status"])
                         if self._complete(run_id, status))
        return found

    def _complete(self, run_id: str, status: str) -> bool:
        """Whether a stored row stands: a failed one, or a done one whose predictions file is there and parses."""
        if status != CellStatus.DONE:
            return True
        path = self.predictions_dir / f"{run_id}.parquet"
        try:
            pq.read_metadata(path)
            return True
        except FileNotFoundError:
            why = "missing"
        except (OSError, pa.ArrowInvalid) as exc:
            why = f"unreadable ({_one_line(exc)})"
        _warn_once(path, f"{why}; {RERUN}")
        return False

    def put_tuning(self, record: dict) -> Path:
        """Store a tuning unit's choice (record["key"] names it); a later choice for the same key replaces it."""
        data = json.dumps(record, indent=1, sort_keys=True).encode()
        return write_store_file(self.chosen_dir / f"{record['key']}.json", data)

    def tuning_records(self) -> dict[str, dict]:
        """Every stored tuning choice, by unit key; unreadable files are ignored."""
        records = {}
        for path in sorted(self.chosen_dir.glob("*.json")):
            record = _read_json(path, "read as absent: `study run` stores the choice again from the tuning database")
            if record is not None and "key" in record:
                records[record["key"]] = record
        return records

    # ---------------------------------------------------------------------------------------- housekeeping
    def put_protocol(self, text: str) -> None:
        """Keep a copy of the protocol last run."""
        write_store_file(self.root / "protocol.yaml", text.encode())

    def put_dataset_info(self, info: dict) -> None:
        """What the dataset load found: image count, class names and the files it skipped (dataset.json)."""
        write_store_file(self.root / "dataset.json", json.dumps(info, indent=1, sort_keys=True).encode())

    def put_sequential(self, record: dict) -> None:
        """The plan, looks and stop reason of a run that adds seeds until its claims are decided."""
        write_store_file(self.root / "sequential.json", json.dumps(record, indent=1, sort_keys=True).encode())

    def sequential(self) -> dict | None:
        """The stored sequential record, or None when no run added seeds (or the file does not parse: one warning)."""
        return _read_json(self.root / "sequential.json", "read as absent: `study run --until-decided` makes the "
                          "looks again (the cells stored are not trained again)")

    def conform_files(self) -> int:
        """Rewrite in the declared schema, values unchanged, every cell, prediction and split file written before it;
        call only under the run lock. Returns how many were rewritten. A file with a column the schema lacks, or
        that does not cast, is left as it is (with a warning)."""
        files = [(path, _cells_schema) for path in sorted(self.cells_dir.glob("*.parquet"))]
        files += [(path, predictions_schema_for) for path in sorted(self.predictions_dir.glob("*.parquet"))]
        files += [(path, _split_schema) for path in [self.root / "split.parquet"] if path.exists()]
        return sum(_conform_file(path, schema_for) for path, schema_for in files)

    def remove_temporary(self) -> int:
        """Delete temporary files a killed run left, and kept models without their description; call only under the
        run lock. Returns how many."""
        leftovers = [path for folder in (self.root, self.cells_dir, self.predictions_dir, self.chosen_dir)
                     for path in folder.glob(".*.tmp")]
        for path in leftovers:
            path.unlink(missing_ok=True)
        return len(leftovers) + self.models.remove_leftovers()

    def remove(self, run_ids: list[str]) -> None:
        """Delete the stored rows, predictions and kept models of run_ids (the prune command; call under the run
        lock)."""
        self.models.remove(run_ids)
        for run_id in run_ids:
            (self.cells_dir / f"{run_id}.parquet").unlink(missing_ok=True)
            (self.predictions_dir / f"{run_id}.parquet").unlink(missing_ok=True)


def _read_split(path: Path) -> pd.DataFrame | None:
    """A stored split, None when absent or unreadable (one warning); a file written before the seed and group
    columns existed reads as the fixed split."""
    if not path.exists():
        return None
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowInvalid) as exc:
        _warn_once(path, f"unreadable ({_one_line(exc)}); {REWRITE}")
        return None
    split = conform(table, SPLIT).to_pandas()
    return split.assign(seed=split["seed"].astype("Int64"), group=split["group"].astype(object))


def _split_columns(split: pd.DataFrame) -> pd.DataFrame:
    """The split with a seed column (null: the fixed split) and a group column (null: no group), where it lacks them."""
    if "seed" not in split:
        split = split.assign(seed=pd.array([None] * len(split), dtype="Int64"))
    if "group" not in split:
        split = split.assign(group=pd.array([None] * len(split), dtype=object))
    return split[["seed", "image_id", "label", "group", "split"]]


def _merged_split(stored: pd.DataFrame, split: pd.DataFrame, path: Path) -> pd.DataFrame:
    """This run's blocks and the stored blocks of other seeds, in seed order (null first); a StudyError when a
    stored block differs from this run's block of the same seed."""
    kept = []
    for seed, block in stored.groupby("seed", dropna=False, sort=False):
        new = split[split["seed"].isna()] if pd.isna(seed) else split[split["seed"] == seed]
        if new.empty:
            kept.append(block)
        elif not _same_block(block, new):
            which = "the fixed split" if pd.isna(seed) else f"seed {seed}'s split"
            raise StudyError(f"{path}: the stored split differs from this run's split ({which}; the dataset "
                             "changed?); use a new protocol name or another --results-dir")
    merged = pd.concat([split, *kept], ignore_index=True)
    return merged.sort_values("seed", na_position="first", kind="stable", ignore_index=True)


def _same_block(stored: pd.DataFrame, new: pd.DataFrame) -> bool:
    """Whether two blocks assign the same images, labels and sides (and groups, where the stored block has them)."""
    columns = ["image_id", "label", "split"] + (["group"] if stored["group"].notna().any() else [])
    return stored[columns].reset_index(drop=True).equals(new[columns].reset_index(drop=True))


def _cells_schema(names: list[str]) -> pa.Schema:
    return CELLS


def _split_schema(names: list[str]) -> pa.Schema:
    return SPLIT


def _predictions_table(predictions: pd.DataFrame, path: Path) -> pa.Table:
    """The predictions as a table in the schema of their class count, with their class names
    (predictions.attrs["class_names"]) where they have them; a StudyError for other columns."""
    table = pa.Table.from_pandas(predictions, preserve_index=False)
    table = conformed_frame(table, predictions_schema_for(table.column_names), str(path))
    return with_class_names(table, predictions.attrs.get("class_names"))


def _read(path: Path, schema_for: Callable[[list[str]], pa.Schema]) -> pa.Table | None:
    """A stored file cast to its declared schema (schema_for(its column names)), or None when it does not parse;
    columns the schema lacks are left out with a warning."""
    try:
        table = pq.read_table(path)
        schema = schema_for(table.column_names)
        extra = undeclared(table.column_names, schema)
        if extra:
            log.warning("%s: leaving out columns the store's schema lacks: %s", path, ", ".join(extra))
        return conform(table, schema)
    except (OSError, pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        _warn_once(path, f"unreadable ({_one_line(exc)}); {RERUN}")
        return None


def _conform_file(path: Path, schema_for: Callable[[list[str]], pa.Schema]) -> bool:
    """Rewrite a file in its declared schema when it is in another one; whether it was rewritten."""
    try:
        stored = pq.read_schema(path)
        schema = schema_for(stored.names)
        if stored.remove_metadata().equals(schema):
            return False
        if undeclared(stored.names, schema):
            log.warning("%s: not rewritten in the store's schema: it has columns the schema lacks", path)
            return False
        table = conform(pq.read_table(path), schema)
        _write_table(table, path)
    except (OSError, pa.ArrowInvalid, pa.ArrowNotImplementedError):  # unreadable: its reader warns
        return False
    return True


def _read_json(path: Path, remedy: str) -> dict | None:
    """A stored JSON object, or None when absent, or unreadable (a warning naming the file and the remedy)."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        data = exc
    if isinstance(data, dict):
        return data
    why = _one_line(data) if isinstance(data, Exception) else "not a JSON object"
    _warn_once(path, f"unreadable ({why}); {remedy}")
    return None


def _warn_once(path: Path, message: str) -> None:
    """Warn about a damaged file once per process and version of the file: a command reads some files several times,
    and a notebook's process sees a file damaged again after a repair."""
    version: tuple[Path, int | None, int | None]
    try:
        stat = path.stat()
        version = (path, stat.st_mtime_ns, stat.st_size)
    except OSError:
        version = (path, None, None)
    if version not in _WARNED:
        _WARNED.add(version)
        log.warning("%s: %s", path, message)


def _one_line(error: object) -> str:
    """An error as one line, without pyarrow's repetition of the file's path."""
    return re.sub(r"^Could not open Parquet input source '[^']*': ", "", " ".join(str(error).split()))


def _write_table(table: pa.Table, path: Path) -> Path:
    return write_store_file(path, lambda stream: pq.write_table(table, stream))

