"""Run one cell in a worker process: load data, draw the training subset, build, fit, evaluate."""

from __future__ import annotations

import functools
import json
import logging
import os
import platform
import signal
import time
import traceback
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import TypeAdapter

import study
from study.core.errors import DataError
from study.core.failures import FailureKind, failure_kind
from study.data.dataset import Dataset, split_indices
from study.data.sources import load_dataset
from study.data.splits import ensure_split, seed_split, training_subsets
from study.plan.cells import Cell
from study.plan.tuning import tuning_columns
from study.protocol.schema import DatasetSpec
from study.training.features import FeatureCache
from study.training.metrics import (
    METRICS,
    choose_operating_point,
    classification_metrics,
    operating_metrics,
    ordinal_metrics,
)

log = logging.getLogger(__name__)


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
    log_dir: str | None = None  # where local worker processes write their output (study.execution.pool); None: the terminal


def configure_tensorflow(threads: int) -> None:
    """Set oneDNN and thread counts before TensorFlow starts; later calls in the same process do nothing.

    Also keeps a loky worker process alive while its caches grow (see `keep_worker_process`).
    """
    keep_worker_process()
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # C++ notices; errors still surface as Python exceptions
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")  # retracing notices: every cell traces its own functions on purpose
    # Keras' note that MobileNet(V2) at sizes without their own file use the 224 px weights (README: offline set-up)
    warnings.filterwarnings("ignore", message=r".*will be loaded as the default", category=UserWarning)
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(max(1, min(2, threads)))
    except RuntimeError:  # the runtime already started in this process; its settings stay
        pass


def keep_worker_process() -> None:
    """Stop loky from replacing this worker process because its memory grew.

    loky takes a worker whose memory grew by 300 MB since its first task for a leak and starts a new one, which
    would pay TensorFlow's import, the data and every tracing again; here the growth is the traced models and
    cached features that make later cells fast, and both are bounded (MAX_TRAINERS, one feature array).
    """
    from joblib.externals.loky import process_executor

    process_executor._MAX_MEMORY_LEAK_SIZE = 1 << 62  # read by the worker's task loop after every task


def _spec(dataset_json: str):
    """The dataset section of a context, validated."""
    return TypeAdapter(DatasetSpec).validate_python(json.loads(dataset_json))


@functools.lru_cache(maxsize=2)
def _dataset(dataset_json: str, data_dir: str | None, cache_dir: str | None) -> Dataset:
    spec = _spec(dataset_json)
    loaded = load_dataset(spec, Path(data_dir) if data_dir else None, Path(cache_dir) if cache_dir else None)
    return ensure_split(loaded, spec)


@functools.lru_cache(maxsize=16)
def _seed_dataset(dataset_json: str, data_dir: str | None, cache_dir: str | None, seed: int | None) -> Dataset:
    return seed_split(_dataset(dataset_json, data_dir, cache_dir), _spec(dataset_json), seed)


@functools.lru_cache(maxsize=2)
def _preprocessed(dataset_json: str, data_dir: str | None, cache_dir: str | None, backbone: str) -> np.ndarray:
    from study.training.models.backbones import preprocess

    return preprocess(backbone, _dataset(dataset_json, data_dir, cache_dir).images)


def load_for(context: WorkerContext, seed: int | None) -> Dataset:
    """The dataset of a context, loaded once per process, with the split the cells of seed train on: the same
    fixed split for every seed (and for seed None) unless dataset.resplit gives each seed its own."""
    return _seed_dataset(json.dumps(context.dataset, sort_keys=True), context.data_dir, context.cache_dir, seed)


def preprocessed_images(context: WorkerContext, backbone: str) -> np.ndarray:
    """Every image of the context's dataset, preprocessed for the backbone, computed once per process."""
    return _preprocessed(json.dumps(context.dataset, sort_keys=True), context.data_dir, context.cache_dir, backbone)


def train_val_indices(dataset: Dataset, fraction: float, seed: int) -> dict[str, np.ndarray]:
    """Image indices of the training subset and of the full validation split (what tuning may see)."""
    parts = split_indices(dataset)
    train = parts["train"]
    groups = dataset.groups[train] if dataset.groups is not None else None
    subset = training_subsets(dataset.labels[train], groups, [fraction], seed)[fraction]
    return {"train": train[subset], "val": parts["val"]}


def cell_indices(dataset: Dataset, fraction: float, seed: int) -> dict[str, np.ndarray]:
    """Image indices of the cell's training subset and of the full validation and test splits."""
    return {**train_val_indices(dataset, fraction, seed), "test": split_indices(dataset)["test"]}


def run_cell(cell: Cell, context: WorkerContext) -> tuple[dict, pd.DataFrame | None]:
    """Train and evaluate one cell; never raises: a failure comes back as a failed row."""
    started = datetime.now(timezone.utc)
    try:
        return _run(cell, context, started)
    except Exception as exc:  # a failed cell is a result, not the end of the sweep
        log.debug("cell %s failed", cell.run_id, exc_info=True)
        row = failed_row(cell, started, f"{type(exc).__name__}: {exc}", failure_kind(exc))
        row["traceback"] = traceback.format_exc(limit=8)
        return row, None


def failed_row(cell: Cell, started: datetime, error: str, kind: FailureKind) -> dict:
    """The stored row of a cell that failed with error, of the given failure kind."""
    row = _base_row(cell, started)
    row.update(status="failed", error=error, failure=kind.value)
    return row


_TRAINERS: OrderedDict[str, tuple] = OrderedDict()  # structure key -> (Trainer, FreshStart or None), most recent last
MAX_TRAINERS = 3
_FEATURES: dict[str | None, FeatureCache] = {}


def _structure_key(cell: Cell, n_classes: int) -> str:
    """Cells with equal keys build models of identical structure: only seed, fraction, rates and epochs differ."""
    settings = {key: value for key, value in cell.settings.items() if key != "tuned"}
    arm = {k: v for k, v in settings["arm"].items() if k not in {"lr_backbone", "lr_head", "lr_output"}}
    train = {k: v for k, v in settings["train"].items() if k != "epochs"}
    return json.dumps({**settings, "arm": arm, "train": train, "n_classes": n_classes}, sort_keys=True, default=str)


def trainer_for(cell: Cell, n_classes: int, caches: bool):
    """A Trainer reset to this cell's fresh initial state; reused across cells of the same structure.

    A reused Trainer of a pretrained model takes its initial values from the structure's FreshStart, which builds
    only the head; otherwise the whole model is built again under the cell's seed.
    """
    import keras

    from study.training.models.fresh import FreshStart, seed_independent_trunk
    from study.training.models.strategies import build_arm_model
    from study.training.train import Trainer

    key = _structure_key(cell, n_classes)
    trainer, start = _TRAINERS.pop(key, (None, None)) if caches else (None, None)
    if trainer is not None:
        trainer.trace_seconds = 0.0  # traced for an earlier cell
    if start is not None:
        initial = start.values_for(cell.seed)
    else:
        keras.utils.set_random_seed(cell.seed)
        fresh = build_arm_model(cell.settings, n_classes, start_after_frozen=caches)
        initial = fresh.model.variables
        if trainer is None:
            trainer = Trainer(fresh, cell.settings["train"])
            if caches and seed_independent_trunk(cell.settings):
                start = FreshStart(fresh, cell.seed, cell.settings, n_classes)
                start = start if start.usable else None
    trainer.reset(initial, cell.arm.lr_backbone, cell.arm.lr_head, cell.arm.lr_output)
    if caches:
        _TRAINERS[key] = (trainer, start)
        while len(_TRAINERS) > MAX_TRAINERS:
            _TRAINERS.popitem(last=False)
    return trainer


def _feature_cache(context: WorkerContext) -> FeatureCache:
    """This process's feature cache for the context's cache directory."""
    if context.cache_dir not in _FEATURES:
        _FEATURES[context.cache_dir] = FeatureCache(Path(context.cache_dir) if context.cache_dir else None)
    return _FEATURES[context.cache_dir]


def model_inputs(cell: Cell, context: WorkerContext, dataset: Dataset, images: np.ndarray) -> np.ndarray:
    """Preprocessed images, or the cached output of the arm's frozen lower blocks for every image."""
    from study.training.features import (
        backbone_identity,
        compute_block_outputs,
        feature_key,
    )
    from study.training.models.strategies import frozen_boundary

    boundary = frozen_boundary(cell.settings)
    if boundary is None or not context.caches:
        return images
    blocks = {boundary, *context.cached_blocks.get(backbone_identity(cell.settings), ())}
    keys = {block: feature_key(cell.settings, block, dataset.fingerprint, cell.seed) for block in blocks}
    return _feature_cache(context).get_or_compute(
        feature_key(cell.settings, None, dataset.fingerprint, cell.seed), keys, boundary,
        lambda missing: compute_block_outputs(cell.settings, missing, images, cell.seed),
    )


KILL_HOOK = "STUDY_TEST_KILL_WORKER"  # a test hook, see die_if_asked


def die_if_asked(cell: Cell) -> None:
    """Test hook: SIGKILL this process, as the kernel's OOM killer would, when the environment variable
    STUDY_TEST_KILL_WORKER lists the run id of the cell (or of the trial's cell, `<unit>-trial<n>`), comma-separated.
    The tests use it to check that such a cell is stored failed and the sweep goes on."""
    if cell.run_id in os.environ.get(KILL_HOOK, "").split(","):
        os.kill(os.getpid(), signal.SIGKILL)


def _run(cell: Cell, context: WorkerContext, started: datetime) -> tuple[dict, pd.DataFrame]:
    configure_tensorflow(context.threads)
    settings = cell.settings
    dataset = load_for(context, cell.seed)
    if context.fingerprint is not None and dataset.fingerprint != context.fingerprint:
        raise DataError(f"the dataset this worker ({platform.node()}) reads under {context.data_dir} differs from "
                        "the driver's; give every worker the same data directory (README: Running on a cluster)")
    images = preprocessed_images(context, settings["backbone"]["name"])
    die_if_asked(cell)
    indices = cell_indices(dataset, cell.fraction, cell.seed)
    n_classes = len(dataset.class_names)

    clock = time.perf_counter()
    inputs = model_inputs(cell, context, dataset, images)
    trainer = trainer_for(cell, n_classes, context.caches)
    data = {part: (inputs[index], dataset.labels[index]) for part, index in indices.items()}
    result = trainer.fit(data, cell.seed, n_classes)
    train_seconds = time.perf_counter() - clock
    probabilities = trainer.predict(data["test"][0])
    labels = data["test"][1]
    scores = classification_metrics(labels, probabilities)
    prior = np.bincount(data["train"][1], minlength=n_classes) / len(data["train"][1])
    rule, point = choose_operating_point(data["val"][1], trainer.predict(data["val"][0]), prior)
    arm_model = trainer.arm_model

    row = _base_row(cell, started)
    row.update(
        status="done",
        n_train=int(len(indices["train"])),
        n_val=int(len(indices["val"])),
        n_test=int(len(indices["test"])),
        n_classes=n_classes,
        epochs=result.epochs,
        best_epoch=result.best_epoch,
        steps=result.steps,
        steps_per_epoch=result.steps_per_epoch,
        precise_bn=result.precise_bn,
        history_json=json.dumps(result.history),
        monitor=(settings["train"]["early_stopping"] or {}).get("monitor", "val_loss"),
        monitor_value=result.best_value,
        train_seconds=train_seconds,
        trace_seconds=trainer.trace_seconds,
        trainable_params=int(sum(np.prod(v.shape) for v in arm_model.model.trainable_variables)),
        total_params=arm_model.total_params,
        blocks_kept=arm_model.blocks_kept,
        blocks_trained=arm_model.blocks_trained,
        cached_input_block=arm_model.input_block,
        caches=context.caches,
        **{name: scores[name] for name in (*METRICS, "majority_rate", "max_predicted_share")},
        **operating_metrics(labels, probabilities, rule, point, prior),
        **(ordinal_metrics(labels, probabilities) if settings["dataset"].get("ordinal") else {}),
        operating_rule=rule,
        operating_point=point,
    )
    row["finished_at"] = datetime.now(timezone.utc).isoformat()
    predictions = pd.DataFrame(
        {
            "run_id": cell.run_id,
            "image_id": dataset.ids[indices["test"]].astype(str),
            "label": labels.astype("int64"),
            "predicted": probabilities.argmax(axis=1).astype("int64"),
        }
    )
    for column in range(n_classes):
        predictions[f"prob_{column}"] = probabilities[:, column]
    return row, predictions


def _base_row(cell: Cell, started: datetime) -> dict:
    """The identifying part of a stored row: settings, versions, timestamps."""
    import importlib.metadata as metadata

    def version(package: str) -> str | None:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return None

    arm = cell.arm
    backbone = cell.settings["backbone"]
    return {
        "run_id": cell.run_id,
        "protocol": cell.protocol,
        "status": "failed",
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
        "backbone": backbone["name"],
        "weights": backbone["weights"],
        "size": cell.settings["dataset"]["size"],
        "resize": cell.settings["dataset"].get("resize"),
        "threads": cell.settings["train"].get("threads"),
        "dataset_source": cell.settings["dataset"]["source"],
        "settings_json": json.dumps(cell.settings, sort_keys=True, default=str),
        **tuning_columns(cell.settings),
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


@functools.lru_cache(maxsize=1)
def cpu_model() -> str:
    """The CPU's model name and widest vector instructions: training from few images can differ between CPUs."""
    name, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    name = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                    break
    except OSError:  # not Linux: the platform's own description
        pass
    vector = next((ext for ext in ("avx512f", "avx2", "avx", "neon", "asimd") if ext in flags), None)
    return f"{name} ({vector})" if vector else name


def feature_map(context: WorkerContext, settings: dict[str, Any]) -> dict[str, np.ndarray]:
    """The pooled output of the whole frozen backbone for every image, with labels, ids and split (the report's map).

    The split is the fixed one of split_seed, also with dataset.resplit (whose cells each train on their own)."""
    from study.protocol.blocks import backbone_info
    from study.training.features import compute_block_outputs, feature_key

    configure_tensorflow(context.threads)
    dataset = load_for(context, None)
    images = preprocessed_images(context, settings["backbone"]["name"])
    last = len(backbone_info(settings["backbone"]["name"]).blocks) - 1
    keys = {last: feature_key(settings, last, dataset.fingerprint, seed=0)}
    maps = _feature_cache(context).get_or_compute(
        feature_key(settings, None, dataset.fingerprint, seed=0), keys, last,
        lambda missing: compute_block_outputs(settings, missing, images, seed=0),
    )
    return {
        "features": maps.mean(axis=(1, 2)).astype("float32"),
        "labels": dataset.labels,
        "ids": dataset.ids.astype(str),
        "split": dataset.split.astype(str),
        "class_names": np.array(dataset.class_names, dtype=str),
    }


def write_feature_map(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Store a feature map as one .npz, written atomically (study.core.files)."""
    from study.core.files import write_atomic

    write_atomic(path, lambda stream: np.savez(stream, **arrays))
