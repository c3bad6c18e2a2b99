"""The store's parquet schemas, declared once: every column of a cell row, a prediction file and the split, with its
type and whether it may be empty.

Every file is written with its schema, so that the folder `results/<name>/cells/` reads as one table in any parquet
reader (pandas, pyarrow.dataset, polars, DuckDB). A column is nullable where a row may leave it empty: a failed
cell's metrics, an untuned cell's tuning columns, a cell that was not copied from another protocol, and the columns
added after the first result format (older rows lack them). A row with a column the schema does not declare is
refused (`conformed_row`), never written without it.

Files written before the schema existed (a column typed null in one file and int64 in another) are cast to it
when read (`conform`), and rewritten in it, values unchanged, by the next `study run` under its lock.

A prediction file carries the dataset's class names, in class order, as JSON under the schema metadata key
`class_names`; files written before the names were stored lack the key, and read as they are.
"""

from __future__ import annotations

import json
import re

import pyarrow as pa

from study.core.errors import StudyError

_TEXT, _INT, _FLOAT, _BOOL = pa.string(), pa.int64(), pa.float64(), pa.bool_()


def _fields(*columns: tuple[str, pa.DataType, bool]) -> list[pa.Field]:
    return [pa.field(name, kind, nullable=nullable) for name, kind, nullable in columns]


REQUIRED, OPTIONAL = False, True

CELLS = pa.schema(_fields(
    # what the cell is (study.training.rows.cell_row)
    ("run_id", _TEXT, REQUIRED),
    ("protocol", _TEXT, REQUIRED),
    ("status", _TEXT, REQUIRED),  # done or failed (study.core.vocabulary.CellStatus)
    ("error", _TEXT, OPTIONAL),
    ("traceback", _TEXT, OPTIONAL),
    ("arm", _TEXT, REQUIRED),
    ("strategy", _TEXT, REQUIRED),  # a name of study.protocol.strategy_registry
    ("depth", _TEXT, REQUIRED),  # a number of top blocks, or "all"
    ("truncate_at", _INT, OPTIONAL),
    ("head", _TEXT, REQUIRED),
    ("lr_backbone", _FLOAT, REQUIRED),
    ("lr_head", _FLOAT, REQUIRED),
    ("lr_output", _FLOAT, OPTIONAL),
    ("fraction", _FLOAT, REQUIRED),
    ("seed", _INT, REQUIRED),
    ("backbone", _TEXT, REQUIRED),
    ("weights", _TEXT, REQUIRED),
    ("size", _INT, REQUIRED),
    ("resize", _TEXT, OPTIONAL),
    ("threads", _INT, OPTIONAL),
    ("dataset_source", _TEXT, REQUIRED),
    ("source_file", _TEXT, OPTIONAL),  # the MedMNIST file read (cells stored before it was recorded lack it)
    ("settings_json", _TEXT, REQUIRED),
    # a tuned cell's values and their source (study.plan.tuning_units.tuning_columns)
    ("tuning_engine", _TEXT, OPTIONAL),
    ("tuning_scope", _TEXT, OPTIONAL),
    ("tuning_trials", _INT, OPTIONAL),
    ("tuning_fraction", _FLOAT, OPTIONAL),
    ("tuning_metric", _TEXT, OPTIONAL),
    ("tuned_dropout", _FLOAT, OPTIONAL),
    ("tuned_epochs", _INT, OPTIONAL),
    ("tuned_lr_backbone", _FLOAT, OPTIONAL),
    ("tuned_lr_head", _FLOAT, OPTIONAL),
    ("tuned_weight_decay", _FLOAT, OPTIONAL),
    ("tuned_json", _TEXT, OPTIONAL),
    # where and with what it ran
    ("study_version", _TEXT, REQUIRED),
    ("tensorflow_version", _TEXT, OPTIONAL),
    ("keras_version", _TEXT, OPTIONAL),
    ("numpy_version", _TEXT, REQUIRED),
    ("python_version", _TEXT, REQUIRED),
    ("hostname", _TEXT, REQUIRED),
    ("cpu", _TEXT, OPTIONAL),
    ("started_at", _TEXT, REQUIRED),
    ("finished_at", _TEXT, REQUIRED),
    # a finished cell: sizes, training, timing, model (study.training.worker._run)
    ("n_train", _INT, OPTIONAL),
    ("n_val", _INT, OPTIONAL),
    ("n_test", _INT, OPTIONAL),
    ("n_classes", _INT, OPTIONAL),
    ("epochs", _INT, OPTIONAL),
    ("best_epoch", _INT, OPTIONAL),
    ("steps", _INT, OPTIONAL),
    ("steps_per_epoch", _INT, OPTIONAL),
    ("precise_bn", _BOOL, OPTIONAL),
    ("history_json", _TEXT, OPTIONAL),
    ("monitor", _TEXT, OPTIONAL),
    ("monitor_value", _FLOAT, OPTIONAL),
    ("train_seconds", _FLOAT, OPTIONAL),
    ("trace_seconds", _FLOAT, OPTIONAL),
    ("trainable_params", _INT, OPTIONAL),
    ("total_params", _INT, OPTIONAL),
    ("blocks_kept", _INT, OPTIONAL),
    ("blocks_trained", _INT, OPTIONAL),
    ("cached_input_block", _INT, OPTIONAL),
    ("caches", _BOOL, OPTIONAL),
    # its test metrics (study.training.metrics)
    ("accuracy", _FLOAT, OPTIONAL),
    ("top2_accuracy", _FLOAT, OPTIONAL),
    ("balanced_accuracy", _FLOAT, OPTIONAL),
    ("auc", _FLOAT, OPTIONAL),
    ("f1_macro", _FLOAT, OPTIONAL),
    ("log_loss", _FLOAT, OPTIONAL),
    ("majority_rate", _FLOAT, OPTIONAL),
    ("max_predicted_share", _FLOAT, OPTIONAL),
    ("accuracy_op", _FLOAT, OPTIONAL),
    ("balanced_accuracy_op", _FLOAT, OPTIONAL),
    ("f1_macro_op", _FLOAT, OPTIONAL),
    ("operating_rule", _TEXT, OPTIONAL),
    ("operating_point", _FLOAT, OPTIONAL),
    ("kappa_quadratic", _FLOAT, OPTIONAL),  # with dataset.ordinal only
    ("mae_class", _FLOAT, OPTIONAL),
    # the sweep's own columns (study.execution.local, study.execution.scheduler, study.runner.reuse)
    ("failure", _TEXT, OPTIONAL),  # retryable, deterministic or fatal (study.core.failures.FailureKind)
    ("attempts", _INT, OPTIONAL),
    ("skipped_files", _INT, OPTIONAL),
    ("adopted_from", _TEXT, OPTIONAL),
))

SPLIT = pa.schema(_fields(
    ("seed", _INT, OPTIONAL),  # null: the fixed split every seed shares
    ("image_id", _TEXT, REQUIRED),
    ("label", _INT, REQUIRED),
    ("group", _TEXT, OPTIONAL),
    ("split", _TEXT, REQUIRED),
))

_PROBABILITY = re.compile(r"prob_(\d+)")
CLASS_NAMES = b"class_names"  # prediction files' schema metadata: the class names in class order, as JSON


def predictions_schema(n_classes: int) -> pa.Schema:
    """The schema of a prediction file of n_classes classes: one probability column prob_<k> per class."""
    return pa.schema(_fields(
        ("run_id", _TEXT, REQUIRED),
        ("image_id", _TEXT, REQUIRED),
        ("label", _INT, REQUIRED),
        ("predicted", _INT, REQUIRED),
        *((f"prob_{k}", _FLOAT, REQUIRED) for k in range(n_classes)),
    ))


def predictions_schema_for(names: list[str]) -> pa.Schema:
    """The prediction schema of a table with these columns (its class count: its prob_<k> columns)."""
    return predictions_schema(sum(1 for name in names if _PROBABILITY.fullmatch(name)))


def with_class_names(table: pa.Table, names: list[str] | None) -> pa.Table:
    """The table with the class names in its schema metadata (unchanged when names is None)."""
    if names is None:
        return table
    return table.replace_schema_metadata({**(table.schema.metadata or {}), CLASS_NAMES: json.dumps(list(names))})


def class_names_of(schema: pa.Schema) -> list[str] | None:
    """The class names stored in a schema's metadata, or None when it holds none (files written before them)."""
    stored = (schema.metadata or {}).get(CLASS_NAMES)
    return None if stored is None else [str(name) for name in json.loads(stored)]


def undeclared(names: list[str], schema: pa.Schema) -> list[str]:
    """The names that are not columns of schema."""
    declared = set(schema.names)
    return [name for name in names if name not in declared]


def conformed_row(row: dict, where: str) -> pa.Table:
    """One cell row as a table in the CELLS schema (absent optional columns empty); a StudyError naming where and
    the columns when the row holds one the schema does not declare or leaves a required one empty."""
    extra = undeclared(list(row), CELLS)
    if extra:
        raise StudyError(f"{where}: columns {', '.join(extra)} are not in the store's schema (study/store/columns.py)")
    empty = [field.name for field in CELLS if not field.nullable and row.get(field.name) is None]
    if empty:
        raise StudyError(f"{where}: required columns {', '.join(empty)} are empty (study/store/columns.py)")
    return pa.Table.from_pylist([row], schema=CELLS)


def conformed_frame(table: pa.Table, schema: pa.Schema, where: str) -> pa.Table:
    """A table with exactly the schema's columns, in its order and types; a StudyError naming where and the columns
    when they differ."""
    if table.schema.names != schema.names:
        raise StudyError(f"{where}: columns {table.schema.names} differ from the store's schema {schema.names} "
                         "(study/store/columns.py)")
    return table.cast(schema)


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """A stored table cast to the schema: columns in its order, each cast to its type, absent ones empty. Columns
    the schema does not declare are left out (`undeclared` names them); stored class names are kept. Raises
    ValueError (pyarrow's) when a value does not cast or a required column is empty."""
    columns = [
        table.column(field.name).cast(field.type) if field.name in table.column_names
        else pa.nulls(table.num_rows, field.type)
        for field in schema
    ]
    return with_class_names(pa.Table.from_arrays(columns, schema=schema), class_names_of(table.schema))
