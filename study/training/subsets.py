"""The image indices a cell or a tuning trial sees: its training subset, and the splits it is scored on."""

from __future__ import annotations

import numpy as np

from study.data.dataset import Dataset, split_indices
from study.data.splits import training_subsets


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
