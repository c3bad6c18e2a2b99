"""Content-addressed cache of frozen backbone outputs: computed once, reused by every cell that needs them.

A cell whose lower blocks stay frozen (and sees no augmentation) trains only the blocks above a boundary; the
boundary's output for every image depends only on the dataset, the backbone, its weights, the input size and
the boundary, so it is computed once and stored as `<cache dir>/features/<key>.npy`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock

from study.models.blocks import backbone_info

log = logging.getLogger(__name__)

FEATURE_FORMAT = 1  # bump when the way features are computed changes
BATCH = 128


def feature_key(settings: dict[str, Any], boundary: int, dataset_fingerprint: str, seed: int) -> str:
    """What identifies the output of blocks 0..boundary for every image of the dataset."""
    backbone = settings["backbone"]
    payload = {
        "format": FEATURE_FORMAT,
        "dataset": dataset_fingerprint,
        "size": settings["dataset"]["size"],
        "backbone": backbone["name"],
        "width": backbone.get("width"),
        "weights": backbone["weights"],
        "preprocessing": backbone_info(backbone["name"]).preprocessing,
        "boundary": boundary,
        # random initial weights depend on the seed, pretrained ones do not
        "seed": seed if backbone["weights"] == "none" else None,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]


def compute_block_output(settings: dict[str, Any], boundary: int, images: np.ndarray, seed: int) -> np.ndarray:
    """The output of blocks 0..boundary of the cell's backbone (inference mode) for preprocessed images."""
    import keras

    from study.models.backbones import build_backbone

    backbone = settings["backbone"]
    info = backbone_info(backbone["name"])
    keras.utils.set_random_seed(seed)  # the same draw as the cell's own build, for random initial weights
    base = build_backbone(backbone["name"], backbone["weights"], settings["dataset"]["size"], backbone.get("width"))
    prefix = keras.Model(base.input, base.get_layer(info.blocks[boundary].last_layer).output)
    return np.concatenate([prefix(images[i : i + BATCH], training=False).numpy() for i in range(0, len(images), BATCH)])


class FeatureCache:
    """Frozen block outputs on disk, one .npy per key, written atomically; concurrent writers wait on a lock."""

    def __init__(self, cache_dir: Path | None):
        self.root = Path(cache_dir) / "features" if cache_dir else None
        self.memory: dict[str, np.ndarray] = {}

    def get_or_compute(self, key: str, compute) -> np.ndarray:
        """The cached array for key, computing and storing it on a miss."""
        if key in self.memory:
            return self.memory[key]
        if self.root is None:
            array = compute()
        else:
            self.root.mkdir(parents=True, exist_ok=True)
            path = self.root / f"{key}.npy"
            with FileLock(str(path) + ".lock"):
                array = _load(path)
                if array is None:
                    array = compute()
                    _save(path, array)
        self.memory = {key: array}  # keep one array in memory: cells are dispatched grouped by arm
        return array


def _load(path: Path) -> np.ndarray | None:
    if not path.exists():
        return None
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        log.warning("recomputing unreadable feature cache %s (%s)", path, exc)
        return None


def _save(path: Path, array: np.ndarray) -> None:
    handle, temporary = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            np.save(stream, array, allow_pickle=False)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
