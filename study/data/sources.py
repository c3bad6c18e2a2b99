"""Dataset sources: find the files, fingerprint them, decode and resize the images, cache the arrays.

Image rules for file sources:
- grey stays one channel, and so does RGB with R == G == B everywhere (BUSI); if any image of a source is truly
  colour, every image of it becomes RGB;
- palette and RGBA images become RGB (alpha dropped); 16-bit, 32-bit and float images are min-max scaled to
  0..255 per image; EXIF orientation is applied;
- every image is resized to size x size with Lanczos; a non-square image is stretched (no crop, no padding).
The cache holds `images-<fingerprint>-<size>px.npz` in the cache directory, written atomically.
"""

from __future__ import annotations

import csv
import hashlib
import importlib
import logging
import os
import re
import tempfile
import time
import urllib.request
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from study.data.dataset import SPLITS, Dataset
from study.errors import DataError

log = logging.getLogger(__name__)

ENV_VAR = "STUDY_DATA_DIR"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
_LOADER_VERSION = "study-data-1"  # part of every fingerprint: bump it when the decoding rules change
_SPLIT_NAMES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
_HIGH_DEPTH_MODES = {"I", "F", "I;16", "I;16L", "I;16B", "I;16N"}
_MEDMNIST_LABELS = {  # official names (medmnist INFO), used when the medmnist package is not installed
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


# --------------------------------------------------------------------------------------------- public API
def resolve_data_dir(flag: str | Path | None) -> Path | None:
    """The data directory: the --data-dir flag, else $STUDY_DATA_DIR, else None."""
    value = str(flag) if flag not in (None, "") else os.environ.get(ENV_VAR, "")
    return Path(value).expanduser() if value else None


def source_fingerprint(spec, data_dir: Path | None) -> str:
    """sha256 of the source's content (file bytes, labels, groups, split) and the decoding rules, not the size."""
    return _open(spec, data_dir).fingerprint()


def load_dataset(spec, data_dir: Path | None, cache_dir: Path | None = None) -> Dataset:
    """Decode the source at spec.size, or read the arrays cached for its fingerprint and size."""
    source = _open(spec, data_dir)
    fingerprint = source.fingerprint()
    cache = None if cache_dir is None else Path(cache_dir) / f"images-{fingerprint}-{spec.size}px.npz"
    if cache is not None and (cached := _read_cache(cache, fingerprint)) is not None:
        log.info("%s dataset: %d images from cache %s", spec.source, len(cached), cache)
        return cached
    started = time.perf_counter()
    dataset = source.load(spec.size, fingerprint)
    log.info("%s dataset: decoded %d images at %d px (%d channel(s)) in %.1f s", spec.source, len(dataset),
             spec.size, dataset.channels, time.perf_counter() - started)
    if cache is not None:
        _write_cache(cache, dataset)
    return dataset


def describe_sources() -> str:
    """What each source is and where it looks for files (the `study datasets` command)."""
    current = os.environ.get(ENV_VAR) or "not set"
    return f"""\
Data directory: --data-dir DIR, else ${ENV_VAR} (now: {current}); relative dataset paths are read from it.

medmnist   A MedMNIST v2 .npz file (name: breastmnist, pneumoniamnist, ...) with its official train/val/test split.
           Looks for <data dir>/<name>.npz; if the medmnist package is installed, also ~/.medmnist/<name>.npz,
           and downloads it from the MedMNIST record into the data directory (else ~/.medmnist).
folder     path: a folder with one subfolder of images per class (png, jpg, jpeg, bmp, tif, tiff; searched
           recursively; other files ignored). Optional train/ val/ test/ folders above the class folders fix the
           split. Class names are the subfolder names, sorted.
csv        path: a CSV manifest; path_column holds image paths relative to the CSV's folder, label_column the
           labels (names or integers, sorted), optional group_column (patient, study) and split_column
           (train/val/test).
synthetic  Generated images (classes, per_class, channels, noise): oriented stripe patches at random places
           under Gaussian noise, one orientation per class. No files; for tests and quick checks.

Images are decoded once, resized to size x size (Lanczos; non-square images are stretched) and cached per
source fingerprint and size. Sources without a split get a stratified, group-aware one (val_fraction,
test_fraction, split_seed)."""


# ------------------------------------------------------------------------------------------------ sources
def _open(spec, data_dir: Path | None):
    data_dir = None if data_dir is None else Path(data_dir).expanduser()
    if spec.source == "synthetic":
        return _Synthetic(spec.classes, spec.per_class, spec.channels, spec.noise)
    if spec.source == "medmnist":
        return _Medmnist(spec.name, _find_medmnist(spec.name, data_dir))
    if spec.source == "folder":
        return _folder_source(spec.path, data_dir)
    if spec.source == "csv":
        return _csv_source(spec, data_dir)
    raise ValueError(f"unknown dataset source {spec.source!r}")


class _Hasher:
    """sha256 over length-prefixed fields, so that no two field sequences hash alike."""

    def __init__(self, kind: str):
        self._hash = hashlib.sha256()
        self.text(_LOADER_VERSION)
        self.text(kind)

    def text(self, value: str) -> None:
        data = value.encode()
        self._hash.update(b"%d:" % len(data) + data)

    def file(self, path: Path) -> None:
        try:
            with open(path, "rb") as handle:
                self._hash.update(b"%d:" % os.fstat(handle.fileno()).st_size)
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    self._hash.update(chunk)
        except OSError as exc:
            raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


@dataclass(frozen=True)
class _Record:
    path: Path
    id: str
    label: str
    group: str | None = None
    split: str | None = None


class _Files:
    """A folder or CSV source: one record per image file."""

    def __init__(self, kind: str, records: list[_Record], origin: Path):
        self.kind = kind
        self.records = records
        labels = {record.label for record in records}
        self.class_names = sorted(labels, key=int) if all(re.fullmatch(r"-?\d+", x) for x in labels) else sorted(labels)
        if len(self.class_names) < 2:
            raise DataError(f"{origin}: found {len(self.class_names)} class(es) {self.class_names}; a classifier "
                            "needs at least 2")

    def fingerprint(self) -> str:
        hasher = _Hasher(self.kind)
        for record in self.records:
            for field in (record.id, record.label, record.group or "", record.split or ""):
                hasher.text(field)
            hasher.file(record.path)
        return hasher.hexdigest()

    def load(self, size: int, fingerprint: str) -> Dataset:
        with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
            arrays = list(pool.map(lambda record: _read_image(record.path, size), self.records))
        colour = sum(array.shape[2] == 3 for array in arrays)
        if 0 < colour < len(arrays):
            log.info("%d of %d images are colour: the grey ones become RGB too", colour, len(arrays))
        images = np.stack([np.repeat(a, 3, axis=2) if colour and a.shape[2] == 1 else a for a in arrays])
        index = {name: position for position, name in enumerate(self.class_names)}
        records = self.records
        return Dataset(
            images=images,
            labels=np.array([index[record.label] for record in records], dtype=np.int64),
            class_names=list(self.class_names),
            ids=np.array([record.id for record in records], dtype=str),
            groups=np.array([r.group for r in records], dtype=str) if records[0].group is not None else None,
            split=np.array([r.split for r in records], dtype=str) if records[0].split is not None else None,
            fingerprint=fingerprint,
        )


# ------------------------------------------------------------------------------------------------- folder
def _folder_source(path: str, data_dir: Path | None) -> _Files:
    root = _resolve(path, data_dir)
    if not root.is_dir():
        raise DataError(f"image folder {root} not found{_relative_hint(path, data_dir)}")
    tops = _subfolders(root)
    names = {folder.name.lower() for folder in tops}
    layout = [(folder, _SPLIT_NAMES[folder.name.lower()]) for folder in tops] \
        if "train" in names and names <= set(_SPLIT_NAMES) else [(root, None)]
    records = []
    for base, split in layout:
        class_folders = _subfolders(base)
        if not class_folders:
            raise DataError(f"{base} holds no class subfolders; put each class's images in its own subfolder "
                            f"(e.g. {base / 'benign'})")
        for folder in class_folders:
            files = _image_files(folder)
            if not files:
                raise DataError(f"class folder {folder} holds no images ({', '.join(IMAGE_SUFFIXES)}); "
                                "add images or remove the folder")
            records += [_Record(file, file.relative_to(root).as_posix(), folder.name, None, split) for file in files]
    return _Files("folder", records, root)


def _subfolders(folder: Path) -> list[Path]:
    return sorted(child for child in folder.iterdir() if child.is_dir() and not child.name.startswith("."))


def _image_files(folder: Path) -> list[Path]:
    files = (
        path for path in folder.rglob("*")
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()
        and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    )
    return sorted(files, key=lambda path: path.relative_to(folder).as_posix())


# ---------------------------------------------------------------------------------------------------- csv
def _csv_source(spec, data_dir: Path | None) -> _Files:
    csv_path = _resolve(spec.path, data_dir)
    if not csv_path.is_file():
        raise DataError(f"CSV manifest {csv_path} not found{_relative_hint(spec.path, data_dir)}")
    columns = {"path_column": spec.path_column, "label_column": spec.label_column,
               "group_column": spec.group_column, "split_column": spec.split_column}
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            found = reader.fieldnames or []
            for setting, column in columns.items():
                if column is not None and column not in found:
                    raise DataError(f"{csv_path}: no column {column!r} (the dataset's {setting}); columns found: "
                                    f"{', '.join(found) or 'none'}")
            records, lines = [], {}
            for row in reader:
                record = _csv_record(csv_path, reader.line_num, row, spec)
                if record.id in lines:
                    raise DataError(f"{csv_path}:{reader.line_num}: image {record.id!r} is listed again "
                                    f"(first on line {lines[record.id]})")
                lines[record.id] = reader.line_num
                records.append(record)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{csv_path}: not a readable UTF-8 CSV file ({exc})") from None
    if not records:
        raise DataError(f"{csv_path}: the manifest lists no images")
    return _Files("csv", records, csv_path)


def _csv_record(csv_path: Path, line: int, row: dict, spec) -> _Record:
    where = f"{csv_path}:{line}"

    def cell(column: str) -> str:
        value = (row.get(column) or "").strip()
        if not value:
            raise DataError(f"{where}: empty {column!r}")
        return value

    relative = cell(spec.path_column).replace("\\", "/")
    path = csv_path.parent / relative
    if not path.is_file():
        raise DataError(f"{where}: image file {relative!r} not found (looked for {path}); image paths are "
                        "relative to the CSV's folder")
    split = None
    if spec.split_column is not None:
        value = cell(spec.split_column)
        split = _SPLIT_NAMES.get(value.lower())
        if split is None:
            raise DataError(f"{where}: {spec.split_column} is {value!r}; expected train, val or test")
    group = cell(spec.group_column) if spec.group_column is not None else None
    return _Record(path, relative, cell(spec.label_column), group, split)


def _resolve(path: str, data_dir: Path | None) -> Path:
    candidate = Path(path).expanduser()
    return candidate if candidate.is_absolute() else (data_dir or Path.cwd()) / candidate


def _relative_hint(path: str, data_dir: Path | None) -> str:
    if Path(path).expanduser().is_absolute():
        return ""
    if data_dir is not None:
        return f" ({path!r} is read relative to the data directory {data_dir}; change it with --data-dir or {ENV_VAR})"
    return f" ({path!r} is read relative to the current directory: no data directory is set; pass --data-dir " \
           f"or set {ENV_VAR})"


# ----------------------------------------------------------------------------------------------- medmnist
class _Medmnist:
    def __init__(self, name: str, path: Path):
        self.name = name
        self.path = path

    def fingerprint(self) -> str:
        hasher = _Hasher("medmnist")
        hasher.text(self.name)
        hasher.file(self.path)
        return hasher.hexdigest()

    def load(self, size: int, fingerprint: str) -> Dataset:
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
        if images.shape[3] == 3 and _is_grey(images):
            images = images[..., :1]
        labels = labels[:, 0].astype(np.int64)
        split = np.concatenate([np.full(len(part[1]), name, dtype="<U5") for name, part in parts.items()])
        ids = np.array([f"{name}/{i}" for name, part in parts.items() for i in range(len(part[1]))], dtype=str)
        return Dataset(images=_resize_all(images.astype(np.uint8), size), labels=labels,
                       class_names=_medmnist_class_names(self.name, int(labels.max()) + 1), ids=ids, groups=None,
                       split=split, fingerprint=fingerprint)


def _find_medmnist(name: str, data_dir: Path | None) -> Path:
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


def _medmnist_class_names(name: str, n_classes: int) -> list[str]:
    base = re.sub(r"_\d+$", "", name)  # breastmnist_224.npz (MedMNIST+) has breastmnist's labels
    info = _medmnist_info()
    if info is not None and base in info:
        labels = info[base]["label"]
        names = [labels[str(i)] for i in range(len(labels))]
    else:
        names = _MEDMNIST_LABELS.get(base, [])
    return names if len(names) >= n_classes else [f"class_{i}" for i in range(n_classes)]


# ---------------------------------------------------------------------------------------------- synthetic
_SYNTHETIC_SEED = 7_2025
_CONTRAST = 60.0  # grey levels of a pattern's peak; noise is relative to it


class _Synthetic:
    """Oriented stripe patches (one orientation per class, jittered) at random places, a weaker patch of
    random orientation as a distractor, and Gaussian noise of std noise x the pattern contrast."""

    def __init__(self, classes: int, per_class: int, channels: int, noise: float):
        self.classes, self.per_class, self.channels, self.noise = classes, per_class, channels, noise

    def fingerprint(self) -> str:
        hasher = _Hasher("synthetic")
        hasher.text(f"{self.classes}/{self.per_class}/{self.channels}/{self.noise!r}/{_SYNTHETIC_SEED}")
        return hasher.hexdigest()

    def load(self, size: int, fingerprint: str) -> Dataset:
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


# -------------------------------------------------------------------------------------------------- pixels
def _read_image(path: Path, size: int) -> np.ndarray:
    """One file as uint8 size x size x C (C 1 or 3) under the module's image rules."""
    try:
        with Image.open(path) as image:
            image.load()
            pixels = _to_uint8(ImageOps.exif_transpose(image))
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"cannot read image {path}: {exc}; replace or remove the file") from None
    return _resize(pixels, size)


def _to_uint8(image: Image.Image) -> np.ndarray:
    if image.mode in _HIGH_DEPTH_MODES:
        values = np.asarray(image, dtype=np.float64)
        low, high = float(values.min()), float(values.max())
        scaled = (values - low) * (255.0 / (high - low)) if high > low else np.zeros_like(values)
        return np.round(scaled).astype(np.uint8)[..., None]
    if image.mode in ("1", "L", "LA", "La"):
        return np.asarray(image.convert("L"))[..., None]
    if image.mode in ("P", "PA"):
        image = image.convert("RGBA")
    rgb = np.asarray(image.convert("RGB"))
    return rgb[..., :1] if _is_grey(rgb) else rgb


def _is_grey(rgb: np.ndarray) -> bool:
    return bool((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all())


def _resize(pixels: np.ndarray, size: int) -> np.ndarray:
    if pixels.shape[:2] == (size, size):
        return pixels
    image = Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels)
    return np.asarray(image.resize((size, size), Image.Resampling.LANCZOS)).reshape(size, size, pixels.shape[2])


def _resize_all(images: np.ndarray, size: int) -> np.ndarray:
    if images.shape[1:3] == (size, size):
        return images
    with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
        return np.stack(list(pool.map(lambda pixels: _resize(pixels, size), images)))


# -------------------------------------------------------------------------------------------------- cache
def _read_cache(path: Path, fingerprint: str) -> Dataset | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
        return Dataset(images=arrays["images"], labels=arrays["labels"], class_names=arrays["class_names"].tolist(),
                       ids=arrays["ids"], groups=arrays.get("groups"), split=arrays.get("split"),
                       fingerprint=fingerprint)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        log.warning("ignoring unreadable image cache %s (%s); decoding again", path, exc)
        return None


def _write_cache(path: Path, dataset: Dataset) -> None:
    """Write the arrays to a temporary file beside path, then rename it; a failure only costs the cache."""
    arrays = {"images": dataset.images, "labels": dataset.labels, "ids": dataset.ids,
              "class_names": np.array(dataset.class_names, dtype=str)}
    optional = {"groups": dataset.groups, "split": dataset.split}
    arrays.update({key: value for key, value in optional.items() if value is not None})
    temporary = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        with os.fdopen(descriptor, "wb") as handle:
            np.savez(handle, **arrays)
        os.replace(temporary, path)
    except OSError as exc:
        log.warning("could not write image cache %s (%s); the next load decodes again", path, exc)
    finally:
        if temporary is not None:
            Path(temporary).unlink(missing_ok=True)
