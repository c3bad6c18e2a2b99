"""What a worker process keeps between cells: the decoded dataset and its splits, the preprocessed images, the
traced models of recent structures, and its feature cache."""

from __future__ import annotations

import functools
import json
from collections import OrderedDict
from dataclasses import replace
from pathlib import Path

import numpy as np
from pydantic import TypeAdapter

from study.data.dataset import Dataset
from study.data.sources import load_dataset
from study.data.splits import ensure_split, seed_split
from study.plan.cells import Cell
from study.protocol.schema import DatasetSpec
from study.training.context import WorkerContext
from study.training.features import FeatureCache


def _spec(dataset_json: str):
    """The dataset section of a context, validated."""
    return TypeAdapter(DatasetSpec).validate_python(json.loads(dataset_json))


@functools.lru_cache(maxsize=2)
def _dataset(dataset_json: str, data_dir: str | None, cache_dir: str | None, fingerprint: str | None
             ) -> Dataset:
    """The dataset, loaded once per process and version of its files (fingerprint: the driver's; a worker kept
    alive across runs reads edited files again)."""
    spec = _spec(dataset_json)
    loaded = load_dataset(spec, Path(data_dir) if data_dir else None, Path(cache_dir) if cache_dir else None)
    return ensure_split(loaded, spec)


@functools.lru_cache(maxsize=16)
def _seed_dataset(dataset_json: str, data_dir: str | None, cache_dir: str | None, seed: int | None,
                  fingerprint: str | None) -> Dataset:
    return seed_split(_dataset(dataset_json, data_dir, cache_dir, fingerprint), _spec(dataset_json), seed)


@functools.lru_cache(maxsize=2)
def _preprocessed(dataset_json: str, data_dir: str | None, cache_dir: str | None, backbone: str, weights: str,
                  fingerprint: str | None) -> np.ndarray:
    from study.training.models.backbones import preprocess

    return preprocess(backbone, _dataset(dataset_json, data_dir, cache_dir, fingerprint).images, weights)


def load_for(context: WorkerContext, seed: int | None) -> Dataset:
    """The dataset of a context, loaded once per process, with the split the cells of seed train on: the same
    fixed split for every seed (and for seed None) unless dataset.resplit gives each seed its own."""
    return _seed_dataset(json.dumps(context.dataset, sort_keys=True), context.data_dir, context.cache_dir, seed,
                         context.fingerprint)


def preprocessed_images(context: WorkerContext, backbone: str, weights: str) -> np.ndarray:
    """Every image of the context's dataset, preprocessed for the backbone and its initial weights, computed once per
    process."""
    return _preprocessed(json.dumps(context.dataset, sort_keys=True), context.data_dir, context.cache_dir, backbone,
                         weights, context.fingerprint)


_TRAINERS: OrderedDict[str, tuple] = OrderedDict()  # structure key -> (Trainer, FreshStart or None), most recent last
MAX_TRAINERS = 3
_FEATURES: dict[str | None, FeatureCache] = {}


def _structure_key(cell: Cell, n_classes: int) -> str:
    """Cells with equal keys build models of identical structure: only seed, fraction, rates and epochs differ."""
    settings = cell.settings
    structure = replace(settings, arm=replace(settings.arm, lr_backbone=0.0, lr_head=0.0, lr_output=None),
                        train=replace(settings.train, epochs=0), tuned=None, awaiting_tuning=False)
    return json.dumps([structure.as_dict(), n_classes], sort_keys=True, default=str)


def trainer_for(cell: Cell, n_classes: int, caches: bool):
    """A Trainer reset to this cell's fresh initial state; reused across cells of the same structure.

    A reused Trainer of a pretrained model takes its initial values from the structure's FreshStart, which builds
    only the head; otherwise the whole model is built again under the cell's seed.
    """
    import keras

    from study.training.models.fresh import FreshStart, seed_independent_trunk
    from study.training.models.arm_network import build_arm_model
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
            trainer = Trainer(fresh, cell.settings.train)
            if caches and seed_independent_trunk(cell.settings):
                start = FreshStart(fresh, cell.seed, cell.settings, n_classes)
                start = start if start.usable else None
    trainer.reset(initial, cell.arm.lr_backbone, cell.arm.lr_head, cell.arm.lr_output)
    if caches:
        _TRAINERS[key] = (trainer, start)
        while len(_TRAINERS) > MAX_TRAINERS:
            _TRAINERS.popitem(last=False)
    return trainer


def feature_cache(context: WorkerContext) -> FeatureCache:
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
    from study.training.models.arm_network import frozen_boundary

    boundary = frozen_boundary(cell.settings)
    if boundary is None or not context.caches:
        return images
    network = cell.settings.network
    blocks = {boundary, *context.cached_blocks.get(backbone_identity(network), ())}
    keys = {block: feature_key(network, block, dataset.fingerprint, cell.seed) for block in blocks}
    return feature_cache(context).get_or_compute(
        feature_key(network, None, dataset.fingerprint, cell.seed), keys, boundary,
        lambda missing: compute_block_outputs(network, missing, images, cell.seed),
    )
