"""The report's map of the data: the pooled output of the whole frozen backbone for every image, computed in a
worker and stored by the driver as one .npz."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from study.core.atomic_files import write_atomic
from study.plan.settings import NetworkSettings
from study.training import caches
from study.training.context import WorkerContext
from study.training.process import configure_tensorflow


def feature_map(context: WorkerContext, network: NetworkSettings) -> dict[str, np.ndarray]:
    """The pooled output of the whole frozen backbone for every image, with labels, ids and split (the report's map).

    The split is the fixed one of split_seed, also with dataset.resplit (whose cells each train on their own)."""
    from study.protocol.blocks import backbone_info
    from study.training.features import compute_block_outputs, feature_key
    from study.training.models.backbones import pool_features

    configure_tensorflow(context.threads)
    dataset = caches.load_for(context, None)
    assert dataset.split is not None  # loaded datasets carry their split (ensure_split)
    images = caches.preprocessed_images(context, network.backbone.name, network.backbone.weights)
    last = len(backbone_info(network.backbone.name).blocks) - 1
    keys = {last: feature_key(network, last, dataset.fingerprint, seed=0)}
    maps = caches.feature_cache(context).get_or_compute(
        feature_key(network, None, dataset.fingerprint, seed=0), keys, last,
        lambda missing: compute_block_outputs(network, missing, images, seed=0),
    )
    return {
        "features": pool_features(maps, backbone_info(network.backbone.name)).astype("float32"),
        "labels": dataset.labels,
        "ids": dataset.ids.astype(str),
        "split": dataset.split.astype(str),
        "class_names": np.array(dataset.class_names, dtype=str),
    }


def write_feature_map(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Store a feature map as one .npz, written atomically."""
    write_atomic(path, lambda stream: np.savez(stream, **arrays))  # type: ignore[arg-type]  # stubs: **arrays as allow_pickle
