"""The on-disk cache of decoded datasets: one images-<fingerprint>-<size>px.npz per source content and size."""

from __future__ import annotations

import logging
import zipfile
from pathlib import Path

import numpy as np

from study.core.atomic_files import write_atomic
from study.data.dataset import Dataset

log = logging.getLogger(__name__)


def cache_file(cache_dir: Path, fingerprint: str, size: int, resize: str) -> Path:
    """Where the arrays of the source with this fingerprint, decoded at size with the resize filter, are cached."""
    return Path(cache_dir) / f"images-{fingerprint}-{size}px-{resize}.npz"


def read_cache(path: Path, fingerprint: str) -> Dataset | None:
    """The cached dataset, or None when path is missing or unreadable (then it is decoded again)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
        return Dataset(images=arrays["images"], labels=arrays["labels"], class_names=arrays["class_names"].tolist(),
                       ids=arrays["ids"], groups=arrays.get("groups"), split=arrays.get("split"),
                       fingerprint=fingerprint, skipped=tuple(arrays.get("skipped", np.array([], str)).tolist()))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        log.warning("ignoring unreadable image cache %s (%s); decoding again", path, exc)
        return None


def write_cache(path: Path, dataset: Dataset) -> None:
    """Write the arrays onto path atomically (study.core.atomic_files); a failure only costs the cache."""
    arrays = {"images": dataset.images, "labels": dataset.labels, "ids": dataset.ids,
              "class_names": np.array(dataset.class_names, dtype=str)}
    optional = {"groups": dataset.groups, "split": dataset.split,
                "skipped": np.array(dataset.skipped, dtype=str) if dataset.skipped else None}
    arrays.update({key: value for key, value in optional.items() if value is not None})
    try:
        write_atomic(path, lambda stream: np.savez(stream, **arrays))  # type: ignore[arg-type]  # stubs: **arrays as allow_pickle
    except OSError as exc:
        log.warning("could not write image cache %s (%s); the next load decodes again", path, exc)
