"""The synthetic source: oriented stripe patches under noise, one orientation per class, for tests and checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from study.data.dataset import Dataset
from study.data.fingerprint import Hasher
from study.data.data_source import DataSource

_SYNTHETIC_SEED = 7_2025
_CONTRAST = 60.0  # grey levels of a pattern's peak; noise is relative to it


class Synthetic(DataSource):
    """Oriented stripe patches (one orientation per class, jittered) at random places, a weaker patch of
    random orientation as a distractor, and Gaussian noise of std noise x the pattern contrast."""

    name = "synthetic"
    reads_files = False

    def __init__(self, classes: int, per_class: int, channels: int, noise: float):
        self.classes, self.per_class, self.channels, self.noise = classes, per_class, channels, noise

    @classmethod
    def open(cls, spec, data_dir: Path | None) -> Synthetic:
        return cls(spec.classes, spec.per_class, spec.channels, spec.noise)

    @classmethod
    def description(cls) -> str:
        return """\
Generated images (classes, per_class, channels, noise): oriented stripe patches at random places
under Gaussian noise, one orientation per class. No files; for tests and quick checks."""

    def fingerprint(self) -> str:
        hasher = Hasher("synthetic")
        hasher.text(f"{self.classes}/{self.per_class}/{self.channels}/{self.noise!r}/{_SYNTHETIC_SEED}")
        return hasher.hexdigest()

    def load(self, size: int, resize: str, fingerprint: str) -> Dataset:  # drawn at size: nothing to resize
        grid = (np.arange(size) + 0.5) / size
        ys, xs = np.meshgrid(grid, grid, indexing="ij")
        images = np.empty((self.classes * self.per_class, size, size, self.channels), dtype=np.uint8)
        for label in range(self.classes):
            rng = np.random.default_rng([_SYNTHETIC_SEED, label])  # each class's images stay put as others change
            for i in range(self.per_class):
                angle = np.pi * (label + rng.uniform(-0.25, 0.25)) / self.classes
                pattern = _patch(xs, ys, angle, rng) + 0.5 * _patch(xs, ys, rng.uniform(0, np.pi), rng)
                gain = rng.uniform(0.8, 1.2, self.channels) if self.channels == 3 else np.ones(1)
                pixels = pattern[..., None] * gain + rng.normal(0, self.noise, (size, size, self.channels))
                images[label * self.per_class + i] = np.clip(np.round(128 + _CONTRAST * pixels), 0, 255)
        n = len(images)
        return Dataset(images=images, labels=np.repeat(np.arange(self.classes, dtype=np.int64), self.per_class),
                       class_names=[f"class_{label}" for label in range(self.classes)],
                       ids=np.array([f"synthetic/{i}" for i in range(n)], dtype=str), groups=None, split=None,
                       fingerprint=fingerprint)


def _patch(xs: np.ndarray, ys: np.ndarray, angle: float, rng: np.random.Generator) -> np.ndarray:
    """Stripes at angle under a Gaussian window at a random place, random width, frequency and phase."""
    cx, cy = rng.uniform(0.25, 0.75, 2)
    sigma, cycles, phase = rng.uniform(0.1, 0.18), rng.uniform(3, 5), rng.uniform(0, 2 * np.pi)
    window = np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * sigma**2))
    return window * np.cos(2 * np.pi * cycles * ((xs - cx) * np.cos(angle) + (ys - cy) * np.sin(angle)) + phase)
