"""Dataset sources: the entry points that open a protocol's source, fingerprint it, load it and describe them."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from study.core.errors import DataError
from study.data.cache import cache_file, read_cache, write_cache
from study.data.datadir import ENV_VAR, resolve_data_dir
from study.data.dataset import Dataset
from study.data.image_files import csv_source, folder_source
from study.data.images import IMAGE_SUFFIXES
from study.data.medmnist import Medmnist
from study.data.medmnist_files import user_cache
from study.data.medmnist_table import URL_VAR
from study.data.synthetic import Synthetic

__all__ = ["ENV_VAR", "IMAGE_SUFFIXES", "describe_sources", "load_dataset", "resolve_data_dir", "source_fingerprint"]

log = logging.getLogger(__name__)


def source_fingerprint(spec, data_dir: Path | None) -> str:
    """sha256 of the source's content (file bytes, labels, groups, split) and the decoding rules, not the size."""
    return _open(spec, data_dir).fingerprint()


def load_dataset(spec, data_dir: Path | None, cache_dir: Path | None = None) -> Dataset:
    """Decode the source at spec.size with spec.resize, or read the arrays cached for its fingerprint, size and
    filter."""
    source = _open(spec, data_dir)
    fingerprint = source.fingerprint()
    cache = None if cache_dir is None else cache_file(cache_dir, fingerprint, spec.size, spec.resize)
    if cache is not None and (cached := read_cache(cache, fingerprint)) is not None:
        log.info("%s dataset: %d images from cache %s", spec.source, len(cached), cache)
        if cached.skipped and spec.on_bad_file != "skip":
            raise DataError(f"{cached.skipped[0]}; replace or remove the file, or set dataset.on_bad_file: skip")
        cached.source_file = source.source_file
        return cached
    started = time.perf_counter()
    dataset = source.load(spec.size, spec.resize, fingerprint)
    log.info("%s dataset: decoded %d images at %d px (%s, %d channel(s)) in %.1f s", spec.source, len(dataset),
             spec.size, spec.resize, dataset.channels, time.perf_counter() - started)
    if cache is not None:
        write_cache(cache, dataset)
    dataset.source_file = source.source_file
    return dataset


def describe_sources() -> str:
    """What each source is and where it looks for files (the `study datasets` command)."""
    current = os.environ.get(ENV_VAR) or "not set"
    suffixes = ", ".join(suffix.lstrip(".") for suffix in IMAGE_SUFFIXES)
    return f"""\
Data directory: --data-dir DIR, else ${ENV_VAR} (now: {current}); relative dataset paths are read from it.

medmnist   A 2D MedMNIST v2 dataset (name: breastmnist, pneumoniamnist, ...) with its official train/val/test split.
           Its files <name>.npz (28 px), <name>_64.npz, <name>_128.npz and <name>_224.npz (MedMNIST+) are
           looked for in the data directory, else in
           {user_cache()}. Of those there, the smallest of at least size px is read, else the largest;
           with none there, the file of that size (the 28 px one for other sizes) is downloaded from the
           MedMNIST Zenodo record (or ${URL_VAR}) and its MD5 checked.
folder     path: a folder with one subfolder of images per class ({suffixes}; searched
           recursively; other files ignored). Segmentation masks beside the images (<image>_mask.png,
           <image>_mask_1.png, as in the original BUSI download) are skipped. Optional train/ val/ test/ folders
           above the class folders fix the split. Class names are the subfolder names, sorted.
csv        path: a CSV manifest; path_column holds image paths relative to the CSV's folder, label_column the
           labels (names or integers, sorted; read as text with spaces trimmed, so a number written two ways,
           1 and 1.0, is an error), optional group_column (patient, study) and split_column (train/val/test).
dicom      path: a folder with one subfolder of DICOM files per class (*.dcm, *.dicom, or any file with the
           DICM marker; searched recursively), or a CSV manifest (path ending .csv) with path_column and
           label_column like csv. Single-frame images only (a multi-frame file is an error naming it). Pixels:
           rescale slope and intercept (modality LUT), then the VOI LUT or the first window mapped to 0..255
           (without either, the image's own range), MONOCHROME1 inverted. group_by (PatientID, StudyInstanceUID,
           SeriesInstanceUID or none) keeps a patient's images on one side of the split; no split of its own.
synthetic  Generated images (classes, per_class, channels, noise): oriented stripe patches at random places
           under Gaussian noise, one orientation per class. No files; for tests and quick checks.

Images are decoded once, resized to size x size with the resize filter (default bilinear; non-square images are
stretched) and cached per source fingerprint, size and filter. A file that cannot be decoded, or a CSV row whose file is missing, stops the run
naming it; with dataset.on_bad_file: skip it is left out, listed in results/<name>/dataset.json and counted. Sources without a split get a stratified, group-aware one (val_fraction,
test_fraction, split_seed; with resplit: true, one per seed). Every class needs validation and test images in every
seed's split, the source's own included."""


def _open(spec, data_dir: Path | None):
    """The source object (fingerprint(), load(size, resize, fingerprint) and source_file) the spec names."""
    data_dir = None if data_dir is None else Path(data_dir).expanduser()
    if spec.source == "synthetic":
        return Synthetic(spec.classes, spec.per_class, spec.channels, spec.noise)
    if spec.source == "medmnist":
        return Medmnist(spec.name, spec.size, data_dir)
    if spec.source == "folder":
        return folder_source(spec.path, data_dir, spec.on_bad_file)
    if spec.source == "csv":
        return csv_source(spec, data_dir)
    if spec.source == "dicom":
        from study.data.dicom import (
            dicom_source,  # pydicom is imported only for DICOM data
        )

        return dicom_source(spec, data_dir)
    raise ValueError(f"unknown dataset source {spec.source!r}")
