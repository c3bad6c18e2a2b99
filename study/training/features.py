"""Content-addressed cache of frozen backbone outputs: computed once, reused by every cell that needs them.

A cell whose lower blocks stay frozen (and sees no augmentation) trains only the blocks above a boundary; the
boundary's output for every image depends only on the dataset, the backbone, its weights, the input size and
the boundary, so it is computed once and stored as `<cache dir>/features/<key>.npy`. The boundaries of every arm
on one backbone are computed together, from one build and one pass over the images, by the first cell that needs
any of them.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock

from study.core.atomic_files import write_atomic
from study.plan.cells import weights_fingerprint
from study.plan.settings import NetworkSettings
from study.protocol.blocks import backbone_info
from study.protocol.radimagenet import preprocessing_mode

log = logging.getLogger(__name__)

FEATURE_FORMAT = 1  # bump when the way features are computed changes
BATCH = 128


def feature_key(network: NetworkSettings, boundary: int | None, dataset_fingerprint: str, seed: int) -> str:
    """What identifies the output of blocks 0..boundary for every image of the dataset; with boundary None, the
    group of every boundary of that backbone (the name of the lock its computations share)."""
    backbone = network.backbone
    payload = {
        "format": FEATURE_FORMAT,
        "dataset": dataset_fingerprint,
        "size": network.dataset.size,
        "resize": network.dataset.resize,  # the images' filter: the decoded-image cache keys it too
        "backbone": backbone.name,
        "width": backbone.width,
        "weights": backbone.weights,
        "preprocessing": preprocessing_mode(backbone.name, backbone.weights),
        "boundary": boundary,
        # random initial weights depend on the seed, pretrained ones do not
        "seed": None if backbone.pretrained else seed,
    }
    if backbone.source == "keras_hub":  # a preset folder's content, not only its path
        payload["preset"] = weights_fingerprint(backbone.weights, backbone.name)
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]


def backbone_identity(network: NetworkSettings) -> str:
    """The backbone and input size of a cell's settings: cells with equal identities share cached block outputs."""
    backbone = network.backbone
    return json.dumps([backbone.name, backbone.width, backbone.weights, network.dataset.size])


def cached_blocks(cells: Iterable[Any]) -> dict[str, list[int]]:
    """Per backbone identity, every block whose output some cell trains on (computed together on the first miss)."""
    from study.training.models.arm_network import frozen_boundary

    blocks: dict[str, set[int]] = {}
    for cell in cells:
        boundary = frozen_boundary(cell.settings)
        if boundary is not None:
            blocks.setdefault(backbone_identity(cell.settings.network), set()).add(boundary)
    return {identity: sorted(found) for identity, found in blocks.items()}


def compute_block_outputs(network: NetworkSettings, boundaries: list[int], images: np.ndarray,
                          seed: int) -> dict[int, np.ndarray]:
    """The outputs of blocks 0..b of the cell's backbone (inference mode) for preprocessed images, for every b in
    `boundaries`, from one build and one pass over the images."""
    prefix = frozen_prefix(network, boundaries, seed)
    parts: dict[int, list[np.ndarray]] = {b: [] for b in boundaries}
    for start in range(0, len(images), BATCH):
        outputs = prefix(images[start : start + BATCH], training=False)
        for boundary, output in zip(boundaries, outputs if isinstance(outputs, (list, tuple)) else [outputs]):
            parts[boundary].append(output.numpy())
    return {boundary: np.concatenate(arrays) for boundary, arrays in parts.items()}


def frozen_prefix(network: NetworkSettings, boundaries: list[int], seed: int):
    """The cell's backbone as built for its cell (under its seed, for random initial weights), as a model from
    images to the outputs of blocks 0..b for every b in `boundaries` (one output when there is one)."""
    import keras

    from study.training.models.backbones import build_backbone

    backbone = network.backbone
    info = backbone_info(backbone.name)
    keras.utils.set_random_seed(seed)  # the same draw as the cell's own build, for random initial weights
    base = build_backbone(backbone.name, backbone.weights, network.dataset.size, backbone.width)
    outputs = [base.get_layer(info.blocks[b].last_layer).output for b in boundaries]
    return keras.Model(base.input, outputs if len(outputs) > 1 else outputs[0], name="frozen_blocks")


class FeatureCache:
    """Frozen block outputs on disk, one .npy per key, written atomically; concurrent writers wait on a lock."""

    def __init__(self, cache_dir: Path | None):
        self.root = Path(cache_dir) / "features" if cache_dir else None
        self.memory: dict[str, np.ndarray] = {}

    def get_or_compute(self, group: str, keys: dict[int, str], wanted: int,
                       compute: Callable[[list[int]], dict[int, np.ndarray]]) -> np.ndarray:
        """The array of block `wanted` (keys: block -> key). On a miss, every block of `keys` not yet stored is
        computed at once by compute(blocks) -> {block: array} and stored, under the group's lock."""
        key = keys[wanted]
        if key in self.memory:
            return self.memory[key]
        if self.root is None:
            array = compute([wanted])[wanted]
        else:
            self.root.mkdir(parents=True, exist_ok=True)
            with FileLock(str(self.root / f"{group}.lock")):
                stored = _load(_file(self.root, key))
                if stored is None:
                    missing = sorted(b for b, k in keys.items() if b == wanted or not _file(self.root, k).exists())
                    arrays = compute(missing)
                    for block in missing:
                        write_atomic(_file(self.root, keys[block]),
                                     partial(np.save, arr=arrays[block], allow_pickle=False))
                    stored = arrays[wanted]
            array = stored
        self.memory = {key: array}  # keep one array in memory: cells are dispatched grouped by arm
        return array


def _file(root: Path, key: str) -> Path:
    """The file of a key's array under the cache root."""
    return root / f"{key}.npy"


def _load(path: Path) -> np.ndarray | None:
    if not path.exists():
        return None
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        log.warning("recomputing unreadable feature cache %s (%s)", path, exc)
        return None
