"""The in-memory dataset every later stage works on."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SPLITS = ("train", "val", "test")


@dataclass
class Dataset:
    """Decoded images at the protocol's size, with labels and optional groups and split.

    images are uint8, N x size x size x C with C 1 (grey) or 3 (RGB); labels are int64 in 0..n_classes-1;
    ids, groups and split are str arrays of length N; fingerprint identifies the source content (not the size).
    """

    images: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    ids: np.ndarray
    groups: np.ndarray | None
    split: np.ndarray | None
    fingerprint: str
    skipped: tuple[str, ...] = ()  # files the source listed but could not read, each "path: why" (on_bad_file: skip)
    source_file: str | None = None  # the one file the images came from, with its native size (MedMNIST)

    def __post_init__(self) -> None:
        n = len(self.labels)
        if self.images.dtype != np.uint8 or self.images.ndim != 4 or self.images.shape[3] not in (1, 3):
            raise ValueError(f"images must be uint8 N x H x W x 1|3, got {self.images.dtype} {self.images.shape}")
        if self.labels.dtype != np.int64 or len(self.images) != n or len(self.ids) != n:
            raise ValueError("images, labels (int64) and ids must have one entry per image")
        if n and (self.labels.min() < 0 or self.labels.max() >= len(self.class_names)):
            raise ValueError(f"labels must lie in 0..{len(self.class_names) - 1}")
        for name in ("groups", "split"):
            value = getattr(self, name)
            if value is not None and len(value) != n:
                raise ValueError(f"{name} must have one entry per image")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def channels(self) -> int:
        return int(self.images.shape[3])


def split_indices(dataset: Dataset) -> dict[str, np.ndarray]:
    """Index arrays of the train, val and test parts (every key present, possibly empty)."""
    if dataset.split is None:
        raise ValueError("dataset has no split yet; call study.data.splits.ensure_split first")
    return {name: np.flatnonzero(dataset.split == name) for name in SPLITS}
