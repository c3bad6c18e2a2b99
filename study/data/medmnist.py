"""The MedMNIST source: find (or download) a MedMNIST v2 .npz file and load it with its official split."""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
import re
import tempfile
import urllib.request
import zipfile
from pathlib import Path

import numpy as np

from study.data.datadir import ENV_VAR
from study.data.dataset import SPLITS, Dataset
from study.data.fingerprint import Hasher
from study.data.images import is_grey, resize_all
from study.errors import DataError

log = logging.getLogger(__name__)

_LABELS = {  # official names (medmnist INFO), used when the medmnist package is not installed
    "breastmnist": ["malignant", "normal, benign"],
    "pneumoniamnist": ["normal", "pneumonia"],
    "retinamnist": ["0", "1", "2", "3", "4"],
    "dermamnist": ["actinic keratoses and intraepithelial carcinoma", "basal cell carcinoma",
                   "benign keratosis-like lesions", "dermatofibroma", "melanoma", "melanocytic nevi",
                   "vascular lesions"],
    "octmnist": ["choroidal neovascularization", "diabetic macular edema", "drusen", "normal"],
    "pathmnist": ["adipose", "background", "debris", "lymphocytes", "mucus", "smooth muscle", "normal colon mucosa",
                  "cancer-associated stroma", "colorectal adenocarcinoma epithelium"],
    "bloodmnist": ["basophil", "eosinophil", "erythroblast",
                   "immature granulocytes(myelocytes, metamyelocytes and promyelocytes)", "lymphocyte", "monocyte",
                   "neutrophil", "platelet"],
    **{name: ["bladder", "femur-left", "femur-right", "heart", "kidney-left", "kidney-right", "liver", "lung-left",
              "lung-right", "pancreas", "spleen"] for name in ("organamnist", "organcmnist", "organsmnist")},
}


class Medmnist:
    """One MedMNIST .npz file: 2D grey or RGB images, one label each, and the official train/val/test split."""

    def __init__(self, name: str, path: Path):
        self.name = name
        self.path = path

    def fingerprint(self) -> str:
        hasher = Hasher("medmnist")
        hasher.text(self.name)
        hasher.file(self.path)
        return hasher.hexdigest()

    def load(self, size: int, resize: str, fingerprint: str) -> Dataset:
        try:
            with np.load(self.path, allow_pickle=False) as npz:
                parts = {split: (npz[f"{split}_images"], npz[f"{split}_labels"]) for split in SPLITS}
        except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
            raise DataError(f"{self.path}: not a MedMNIST file ({exc}); it needs train/val/test_images and "
                            f"train/val/test_labels; get {self.name}.npz again") from None
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
                       class_names=_class_names(self.name, int(labels.max()) + 1), ids=ids, groups=None,
                       split=split, fingerprint=fingerprint)


def find_medmnist(name: str, data_dir: Path | None) -> Path:
    """<data dir>/<name>.npz, else (with the medmnist package) ~/.medmnist/<name>.npz or a fresh download."""
    filename = f"{name}.npz"
    looked = []
    if data_dir is not None:
        if (data_dir / filename).is_file():
            return data_dir / filename
        looked.append(str(data_dir))
    info = _medmnist_info()
    if info is None:
        why = "or pip install medmnist to have it downloaded"
    else:
        home = Path.home() / ".medmnist"
        if (home / filename).is_file():
            return home / filename
        looked.append(str(home))
        try:
            return _download(info, name, data_dir or home)
        except (OSError, KeyError, ValueError) as exc:
            why = f"download failed: {exc}"
    if data_dir is None:
        also = f" and not in {looked[0]}" if looked else ""
        raise DataError(f"MedMNIST file {filename} not found: no data directory is set{also}; pass --data-dir DIR "
                        f"or set {ENV_VAR} to the folder that holds {filename} ({why})")
    raise DataError(f"MedMNIST file {filename} not found in {', '.join(looked)}; put {filename} in {data_dir}, or "
                    f"pass --data-dir DIR or set {ENV_VAR} to the folder that holds it ({why})")


def _medmnist_info() -> dict | None:
    try:
        return importlib.import_module("medmnist").INFO
    except ImportError:
        return None


def _download(info: dict, name: str, folder: Path) -> Path:
    """Fetch <name>.npz from medmnist's INFO url into folder, checking its MD5; atomic."""
    if name not in info:
        raise ValueError(f"medmnist knows no dataset {name!r}")
    url, expected = info[name]["url"], info[name].get("MD5")
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{name}.npz"
    log.info("downloading %s to %s", url, target)
    descriptor, temporary = tempfile.mkstemp(dir=folder, prefix=target.name, suffix=".part")
    try:
        digest = hashlib.md5()
        with os.fdopen(descriptor, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
            for chunk in iter(lambda: response.read(1 << 20), b""):
                out.write(chunk)
                digest.update(chunk)
        if expected and digest.hexdigest() != expected:
            raise ValueError(f"{url} has MD5 {digest.hexdigest()}, expected {expected}")
        os.replace(temporary, target)
    finally:
        Path(temporary).unlink(missing_ok=True)
    return target


def _class_names(name: str, n_classes: int) -> list[str]:
    base = re.sub(r"_\d+$", "", name)  # breastmnist_224.npz (MedMNIST+) has breastmnist's labels
    info = _medmnist_info()
    if info is not None and base in info:
        labels = info[base]["label"]
        names = [labels[str(i)] for i in range(len(labels))]
    else:
        names = _LABELS.get(base, [])
    return names if len(names) >= n_classes else [f"class_{i}" for i in range(n_classes)]
