"""The MedMNIST source: a MedMNIST v2 .npz file with its official split."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from study.core.errors import DataError
from study.data.dataset import SPLITS, Dataset
from study.data.fingerprint import Hasher
from study.data.images import is_grey, resize_all
from study.data.medmnist_files import find_medmnist, user_cache
from study.data.medmnist_table import FLAGS, URL_VAR
from study.data.data_source import DataSource


class Medmnist(DataSource):
    """One MedMNIST .npz file: 2D grey or RGB images, one label each, and the official train/val/test split."""

    name = "medmnist"

    def __init__(self, flag: str, size: int, data_dir: Path | None):
        self.flag = flag
        self.path = (found := find_medmnist(flag, size, data_dir)).path
        self.source_file = found.describe()

    @classmethod
    def open(cls, spec, data_dir: Path | None) -> Medmnist:
        return cls(spec.name, spec.size, data_dir)

    @classmethod
    def has_split(cls, spec) -> bool:
        return True

    @classmethod
    def description(cls) -> str:
        return f"""\
A 2D MedMNIST v2 dataset (name: breastmnist, pneumoniamnist, ...) with its official train/val/test split.
Its files <name>.npz (28 px), <name>_64.npz, <name>_128.npz and <name>_224.npz (MedMNIST+) are
looked for in the data directory, else in
{user_cache()}. Of those there, the smallest of at least size px is read, else the largest;
with none there, the file of that size (the 28 px one for other sizes) is downloaded from the
MedMNIST Zenodo record (or ${URL_VAR}) and its MD5 checked."""

    def fingerprint(self) -> str:
        hasher = Hasher("medmnist")
        hasher.text(self.flag)
        hasher.file(self.path)
        return hasher.hexdigest()

    def load(self, size: int, resize: str, fingerprint: str) -> Dataset:
        try:
            with np.load(self.path, allow_pickle=False) as npz:
                parts = {split: (npz[f"{split}_images"], npz[f"{split}_labels"]) for split in SPLITS}
        except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
            raise DataError(f"{self.path}: not a MedMNIST file ({exc}); it needs train/val/test_images and "
                            f"train/val/test_labels; get {self.path.name} again") from None
        images = np.concatenate([part[0] for part in parts.values()])
        labels = np.concatenate([part[1].reshape(len(part[1]), -1) for part in parts.values()])
        if labels.shape[1] != 1:
            raise DataError(f"{self.path}: {labels.shape[1]} labels per image (multi-label); study handles "
                            "single-label classification only")
        images = images[..., None] if images.ndim == 3 else images
        if images.ndim != 4 or images.shape[3] not in (1, 3):
            raise DataError(f"{self.path}: images of shape {images.shape[1:]} are not 2D grey or RGB (3D "
                            "MedMNIST sets are not supported)")
        if images.shape[3] == 3 and is_grey(images):
            images = images[..., :1]
        labels = labels[:, 0].astype(np.int64)
        split = np.concatenate([np.full(len(part[1]), name, dtype="<U5") for name, part in parts.items()])
        ids = np.array([f"{name}/{i}" for name, part in parts.items() for i in range(len(part[1]))], dtype=str)
        return Dataset(images=resize_all(images.astype(np.uint8), size, resize), labels=labels,
                       class_names=_class_names(self.flag, int(labels.max()) + 1), ids=ids, groups=None,
                       split=split, fingerprint=fingerprint)


def _class_names(flag: str, n_classes: int) -> list[str]:
    """The official class names, or class_0, class_1, ... for a file with more labels than its dataset has."""
    names = list(FLAGS[flag].labels)
    return names if len(names) >= n_classes else [f"class_{i}" for i in range(n_classes)]
