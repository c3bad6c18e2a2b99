"""Image-file sources: a folder of class subfolders, or a CSV manifest of image paths and labels; the records and
manifest reading the DICOM source shares."""

from __future__ import annotations

import csv
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TypedDict

import numpy as np

from study.core.errors import DataError
from study.data.datadir import relative_hint, resolve_path
from study.data.dataset import Dataset
from study.data.fingerprint import Hasher
from study.data.images import IMAGE_SUFFIXES, read_images
from study.data.data_source import DataSource

log = logging.getLogger(__name__)

SPLIT_NAMES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")  # a label written as a number
_MASK_STEM = re.compile(r"_mask(_\d+)?$", re.IGNORECASE)  # BUSI's segmentation masks: benign (1)_mask.png, ..._mask_1


class _MissingFile(DataError):
    """A manifest row whose image file does not exist."""


@dataclass(frozen=True)
class Record:
    path: Path
    id: str
    label: str
    group: str | None = None
    split: str | None = None


class ManifestColumns(TypedDict):
    """The CSV columns of a manifest's image paths, labels, groups and splits (None: not read)."""

    path_column: str
    label_column: str
    group_column: str | None
    split_column: str | None


class FileSource(DataSource):
    """A source of one record per image file (a folder, a CSV manifest, DICOM files)."""

    def __init__(self, kind: str, records: list[Record], origin: Path, on_bad_file: str = "fail",
                 skipped: tuple[str, ...] = (), decode: Callable[[Path], np.ndarray] | None = None):
        self.kind = kind
        self.records = records
        self.on_bad_file = on_bad_file
        self.skipped = skipped  # listed files already known to be missing or unreadable (on_bad_file: skip)
        self.decode = decode  # one file to uint8 pixels (None: an image file)
        labels = {record.label for record in records}
        self.class_names = sorted(labels, key=int) if all(re.fullmatch(r"-?\d+", x) for x in labels) else sorted(labels)
        if len(self.class_names) < 2:
            raise DataError(f"{origin}: found {len(self.class_names)} class(es) {self.class_names}; a classifier "
                            "needs at least 2")

    def fingerprint(self) -> str:
        hasher = Hasher(self.kind)
        for record in self.records:
            for field in (record.id, record.label, record.group or "", record.split or ""):
                hasher.text(field)
            try:
                hasher.file(record.path)
            except DataError:  # e.g. no read permission: load() names it, or skips it (on_bad_file: skip)
                if self.on_bad_file != "skip":
                    raise
                hasher.text("unreadable")
        return hasher.hexdigest()

    def load(self, size: int, resize: str, fingerprint: str) -> Dataset:
        index = {name: position for position, name in enumerate(self.class_names)}
        images, bad = read_images([record.path for record in self.records], size, resize,
                                  self.on_bad_file == "skip", self.decode)
        records = [record for position, record in enumerate(self.records) if position not in bad]
        emptied = sorted(set(self.class_names) - {record.label for record in records})
        if emptied:
            raise DataError(f"class {emptied[0]!r} has no readable image left after skipping {len(bad)} bad files "
                            f"(first: {next(iter(bad.values()))})")
        if bad:
            log.warning("skipped %d unreadable image files (dataset.on_bad_file: skip), e.g. %s", len(bad),
                        next(iter(bad.values())))
        return Dataset(
            images=images,
            labels=np.array([index[record.label] for record in records], dtype=np.int64),
            class_names=list(self.class_names),
            ids=np.array([record.id for record in records], dtype=str),
            groups=np.array([r.group for r in records], dtype=str) if records[0].group is not None else None,
            split=np.array([r.split for r in records], dtype=str) if records[0].split is not None else None,
            fingerprint=fingerprint,
            skipped=self.skipped + tuple(bad.values()),
        )


# ------------------------------------------------------------------------------------------------- folder
class FolderSource(FileSource):
    """A folder of class subfolders of images."""

    name = "folder"

    @classmethod
    def open(cls, spec, data_dir: Path | None) -> FolderSource:
        return folder_source(spec.path, data_dir, spec.on_bad_file)

    @classmethod
    def has_split(cls, spec) -> None:
        return None  # train/ val/ test/ folders, where they exist

    @classmethod
    def description(cls) -> str:
        suffixes = ", ".join(suffix.lstrip(".") for suffix in IMAGE_SUFFIXES)
        return f"""\
path: a folder with one subfolder of images per class ({suffixes}; searched
recursively; other files ignored). Segmentation masks beside the images (<image>_mask.png,
<image>_mask_1.png, as in the original BUSI download) are skipped. Optional train/ val/ test/ folders
above the class folders fix the split. Class names are the subfolder names, sorted."""


def folder_source(path: str, data_dir: Path | None, on_bad_file: str = "fail") -> FolderSource:
    """The images under path's class subfolders, split by train/ val/ test/ folders above them if present."""
    root = resolve_path(path, data_dir)
    if not root.is_dir():
        raise DataError(f"image folder {root} not found{relative_hint(path, data_dir)}")
    tops = subfolders(root)
    names = {folder.name.lower() for folder in tops}
    layout = [(folder, SPLIT_NAMES[folder.name.lower()]) for folder in tops] \
        if "train" in names and names <= set(SPLIT_NAMES) else [(root, None)]
    records = []
    for base, split in layout:
        class_folders = subfolders(base)
        if not class_folders:
            raise DataError(f"{base} holds no class subfolders; put each class's images in its own subfolder "
                            f"(e.g. {base / 'benign'})")
        for folder in class_folders:
            files = image_files(folder)
            if not files:
                raise DataError(f"class folder {folder} holds no images ({', '.join(IMAGE_SUFFIXES)}); "
                                "add images or remove the folder")
            records += [Record(file, file.relative_to(root).as_posix(), folder.name, None, split) for file in files]
    return FolderSource("folder", records, root, on_bad_file)


def subfolders(folder: Path) -> list[Path]:
    return sorted(child for child in folder.iterdir() if child.is_dir() and not child.name.startswith("."))


def image_files(folder: Path) -> list[Path]:
    """The image files below folder, sorted; hidden files and segmentation masks (<image>_mask.png) left out."""
    files = (
        path for path in folder.rglob("*")
        if path.suffix.lower() in IMAGE_SUFFIXES and not _MASK_STEM.search(path.stem) and path.is_file()
        and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    )
    return sorted(files, key=lambda path: path.relative_to(folder).as_posix())


# ---------------------------------------------------------------------------------------------------- csv
class CsvSource(FileSource):
    """The images a CSV manifest lists, with their labels and optional groups and split."""

    name = "csv"

    @classmethod
    def open(cls, spec, data_dir: Path | None) -> CsvSource:
        csv_path = resolve_path(spec.path, data_dir)
        if not csv_path.is_file():
            raise DataError(f"CSV manifest {csv_path} not found{relative_hint(spec.path, data_dir)}")
        columns: ManifestColumns = {"path_column": spec.path_column, "label_column": spec.label_column,
                                    "group_column": spec.group_column, "split_column": spec.split_column}
        records, missing = read_manifest(csv_path, columns, spec.on_bad_file)
        return cls("csv", records, csv_path, spec.on_bad_file, tuple(missing))

    @classmethod
    def has_split(cls, spec) -> bool:
        return spec.split_column is not None

    @classmethod
    def description(cls) -> str:
        return """\
path: a CSV manifest; path_column holds image paths relative to the CSV's folder, label_column the
labels (names or integers, sorted; read as text with spaces trimmed, so a number written two ways,
1 and 1.0, is an error), optional group_column (patient, study) and split_column (train/val/test)."""


def read_manifest(csv_path: Path, columns: ManifestColumns, on_bad_file: str) -> tuple[list[Record], list[str]]:
    """A manifest's rows as records, and "row: why" of each row whose file is missing (left out with on_bad_file:
    skip, else an error). columns maps path_column, label_column, group_column and split_column to the CSV's column
    names (None: not read)."""
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            found = reader.fieldnames or []
            for setting, column in columns.items():
                if column is not None and column not in found:
                    raise DataError(f"{csv_path}: no column {column!r} (the dataset's {setting}); columns found: "
                                    f"{', '.join(found) or 'none'}")
            records: list[Record] = []
            missing: list[str] = []
            lines: dict[str, int] = {}  # image id -> its line
            labels: dict[Decimal, tuple[str, int]] = {}  # a label's number -> its first spelling and line
            for row in reader:
                try:
                    record = _csv_record(csv_path, reader.line_num, row, columns)
                except _MissingFile as exc:
                    if on_bad_file != "skip":
                        raise DataError(f"{exc}; fix the row, or set dataset.on_bad_file: skip") from None
                    missing.append(str(exc))
                    continue
                if record.id in lines:
                    raise DataError(f"{csv_path}:{reader.line_num}: image {record.id!r} is listed again "
                                    f"(first on line {lines[record.id]})")
                lines[record.id] = reader.line_num
                _check_label(csv_path, reader.line_num, record.label, labels, columns["label_column"])
                records.append(record)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{csv_path}: not a readable UTF-8 CSV file ({exc})") from None
    if not records:
        raise DataError(f"{csv_path}: the manifest lists no images" + (f" that exist ({missing[0]})" if missing else ""))
    if missing:
        log.warning("skipped %d manifest rows whose image is missing (dataset.on_bad_file: skip), e.g. %s",
                    len(missing), missing[0])
    return records, missing


def _check_label(csv_path: Path, line: int, label: str, seen: dict[Decimal, tuple[str, int]], column: str) -> None:
    """Refuse a label that is the number of another label written differently (1 and 1.0, 01, +1, 1e0): as text they
    would be two classes. seen maps each number to its first spelling and line."""
    if not _NUMBER.fullmatch(label):
        return
    first, first_line = seen.setdefault(Decimal(label), (label, line))
    if first != label:
        raise DataError(f"{csv_path}:{line}: {column} {label!r} is the number of {first!r} (line {first_line}) "
                        "written differently; labels are read as text, so these would be two classes: write each "
                        "class one way")


def _csv_record(csv_path: Path, line: int, row: dict, columns: ManifestColumns) -> Record:
    where = f"{csv_path}:{line}"

    def cell(column: str) -> str:
        value = (row.get(column) or "").strip()
        if not value:
            raise DataError(f"{where}: empty {column!r}")
        return value

    relative = cell(columns["path_column"]).replace("\\", "/")
    path = csv_path.parent / relative
    if not path.is_file():
        raise _MissingFile(f"{where}: image file {relative!r} not found (looked for {path}); image paths are "
                          "relative to the CSV's folder")
    split, split_column, group_column = None, columns["split_column"], columns["group_column"]
    if split_column is not None:
        value = cell(split_column)
        split = SPLIT_NAMES.get(value.lower())
        if split is None:
            raise DataError(f"{where}: {split_column} is {value!r}; expected train, val or test")
    group = cell(group_column) if group_column is not None else None
    return Record(path, relative, cell(columns["label_column"]), group, split)
