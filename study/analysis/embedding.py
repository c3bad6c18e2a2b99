"""A t-SNE map of the frozen ImageNet backbone's features of the training images (Cheng & Malhi 2016, figure 6).

The run stores the features (the report cannot compute them: that needs TensorFlow) at
`results/<protocol>/features/<backbone>-<size>px.npz` with arrays `features` (N x D), `labels` (int), `ids` (str),
`split` (train/val/test) and `class_names` (str). The map reduces the training images' features (a random sample
of MAX_IMAGES of them, fixed seed, for larger splits) to 50 dimensions with PCA, then to 2 with t-SNE, both with a
fixed random state, on one thread.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PCA_DIMENSIONS = 50
PERPLEXITY = 30.0
RANDOM_STATE = 0
MIN_IMAGES = 10
MAX_IMAGES = 600  # larger training splits are mapped through a random sample of this many images (fixed seed)
KEYS = ("features", "labels", "ids", "split", "class_names")


def features_path(store_root: Path, backbone: str, size: int) -> Path:
    """Where the run stores the backbone features of a dataset at one image size."""
    return Path(store_root) / "features" / f"{backbone}-{size}px.npz"


@dataclass(frozen=True)
class Embedding:
    """2-D t-SNE coordinates of the training images mapped, their labels and the class names; n_train: how many
    training images the file holds (more than were mapped when it exceeds MAX_IMAGES)."""

    coords: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    n_features: int
    perplexity: float
    n_train: int


class FeaturesError(Exception):
    """The features file exists but cannot be used; the message says why."""


def readable_features(path: Path) -> bool:
    """Whether path holds a features file with every array (else the run writes it again)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return set(KEYS) <= set(data.files)
    except (OSError, ValueError, zipfile.BadZipFile):
        return False


def tsne_map(path: Path) -> Embedding:
    """The t-SNE map of the training images in a features file; FeaturesError when the file is unusable."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [key for key in KEYS if key not in data.files]
            if missing:
                raise FeaturesError(f"{path}: missing array(s) {', '.join(missing)}; expected {', '.join(KEYS)}")
            arrays = {key: data[key] for key in KEYS}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise FeaturesError(f"{path}: not a readable npz of string and number arrays ({exc}); `study run` "
                            "writes it again") from None
    train = np.flatnonzero(arrays["split"].astype(str) == "train")
    if len(train) < MIN_IMAGES:
        raise FeaturesError(f"{path}: {len(train)} training images, the map needs {MIN_IMAGES} or more")
    mapped = _sample(train)
    features = np.asarray(arrays["features"], dtype=np.float64)[mapped]
    with threadpool_limits(1):  # one thread: under load, OpenMP threads waiting on each other cost minutes
        reduced = PCA(n_components=min(PCA_DIMENSIONS, *features.shape),
                      random_state=RANDOM_STATE).fit_transform(features)
        perplexity = min(PERPLEXITY, (len(features) - 1) / 3.0)
        coords = TSNE(n_components=2, perplexity=perplexity, init="pca", learning_rate="auto",
                      random_state=RANDOM_STATE).fit_transform(reduced)
    return Embedding(coords, np.asarray(arrays["labels"])[mapped].astype(int), [str(c) for c in arrays["class_names"]],
                     features.shape[1], perplexity, len(train))


def _sample(indices: np.ndarray) -> np.ndarray:
    """The indices, or a random MAX_IMAGES of them in their order (fixed seed) when there are more."""
    if len(indices) <= MAX_IMAGES:
        return indices
    return np.sort(np.random.default_rng(RANDOM_STATE).choice(indices, MAX_IMAGES, replace=False))
