"""Small files in the MedMNIST layout, for the tests of the MedMNIST source."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def fake_npz(path: Path, side: int, seed: int = 0, counts=(6, 2, 4)) -> Path:
    """A small MedMNIST-shaped file: counts train, val and test grey images of side px, labels 0 and 1 in turn."""
    rng = np.random.default_rng(seed)
    parts = {}
    for split, n in zip(("train", "val", "test"), counts):
        parts[f"{split}_images"] = rng.integers(0, 256, (n, side, side), dtype=np.uint8)
        parts[f"{split}_labels"] = (np.arange(n) % 2).reshape(n, 1).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **parts)
    return path
