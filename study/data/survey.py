"""What a data location holds, read before a protocol exists (`study init`): the dataset section that reads it, where
its images' groups come from, and the sizes of its images."""

from __future__ import annotations

import csv
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from study.core.errors import DataError
from study.data.dicom import SUFFIXES as DICOM_SUFFIXES
from study.data.dicom import class_records
from study.data.image_files import SPLIT_NAMES, ManifestColumns, folder_source, read_manifest
from study.data.images import IMAGE_SUFFIXES
from study.data.medmnist_files import find_medmnist
from study.data.medmnist_table import FLAGS

# CSV column names (lower case, letters and digits only) that say what a column holds
PATH_COLUMNS = ("path", "imagepath", "image", "file", "filename", "filepath", "imagefile", "img")
LABEL_COLUMNS = ("label", "class", "classname", "diagnosis", "target", "category", "finding", "y")
GROUP_COLUMNS = ("patientid", "patient", "subjectid", "subject", "participantid", "participant", "groupid", "group",
                 "caseid")
SPLIT_COLUMNS = ("split", "set", "subset", "partition")


@dataclass(frozen=True)
class Survey:
    """A data location as a protocol reads it."""

    section: dict  # the protocol's dataset section without the size and split settings: source and its fields
    found: str  # what the data is, in words
    name: str  # a protocol name from the data's own name
    group: str | None  # where each image's group (patient) comes from; None: no groups
    no_group: str = ""  # without groups: why there are none
    sizes: Counter = field(default_factory=Counter)  # (width, height) -> images; empty for MedMNIST


def survey(data: str, data_dir: Path | None, size: int) -> Survey:
    """What DATA holds: an image or DICOM folder, a CSV manifest (found as given, or under the data directory), or a
    MedMNIST name (its file picked for size px, as the medmnist source picks it)."""
    path = _existing(data, data_dir)
    if path is None:
        flag = data.lower()
        if flag not in FLAGS:
            where = f"here or in the data directory {data_dir}" if data_dir else "here (no data directory is set)"
            raise DataError(f"{data}: no such folder or CSV file {where}, nor a MedMNIST dataset name "
                            f"({', '.join(sorted(FLAGS))})")
        return _medmnist(flag, data_dir, size)
    written = _written(path, data_dir)
    if path.is_dir():
        return _dicom_folder(path, written) if _holds_dicom(path) else _image_folder(path, written)
    if path.suffix.lower() == ".csv":
        return _manifest(path, written)
    raise DataError(f"{data}: expected a folder of class subfolders, a CSV manifest (.csv) or a MedMNIST dataset "
                    f"name, got the file {path}")


def _existing(data: str, data_dir: Path | None) -> Path | None:
    """DATA as an existing path: as given, else under the data directory."""
    for candidate in (Path(data).expanduser(), None if data_dir is None else data_dir / data):
        if candidate is not None and candidate.exists():
            return candidate.resolve()
    return None


def _written(path: Path, data_dir: Path | None) -> str:
    """The path as the protocol holds it: relative to the data directory when inside it, else absolute (a dataset
    path is read relative to the data directory)."""
    if data_dir is not None and path.is_relative_to(data_dir.expanduser().resolve()):
        return path.relative_to(data_dir.expanduser().resolve()).as_posix()
    return str(path)


def _name(text: str) -> str:
    """A protocol name (letters, digits, '_', '.', '-'; starting with a letter or digit) from text."""
    return re.sub(r"^[^A-Za-z0-9]+", "", re.sub(r"[^A-Za-z0-9_.-]+", "-", text)) or "study"


def _medmnist(flag: str, data_dir: Path | None, size: int) -> Survey:
    if FLAGS[flag].multi_label:
        raise DataError(f"{flag} is multi-label; study handles single-label classification only")
    found = find_medmnist(flag, size, data_dir)
    return Survey({"source": "medmnist", "name": flag}, f"MedMNIST dataset {flag}, file {found.path}", flag, None,
                  "MedMNIST files carry no patient ids, and their official split is used as it is")


def _image_folder(path: Path, written: str) -> Survey:
    records = folder_source(str(path), None).records
    return Survey({"source": "folder", "path": written}, f"image folder {path}", _name(path.name), None,
                  "an image folder carries no patient ids (a CSV manifest with a patient column does)",
                  Counter(size for size in map(_image_size, (r.path for r in records)) if size))


def _dicom_folder(path: Path, written: str) -> Survey:
    return _dicom({"source": "dicom", "path": written}, class_records(path), f"DICOM folder {path}",
                  _name(path.name))


def _manifest(path: Path, written: str) -> Survey:
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            rows = list(reader)
            columns = reader.fieldnames or []
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: not a readable UTF-8 CSV file ({exc})") from None
    label = _column(columns, LABEL_COLUMNS)
    paths = _column(columns, PATH_COLUMNS) or next(
        (c for c in columns if rows and Path(rows[0].get(c) or "").suffix.lower() in IMAGE_SUFFIXES + DICOM_SUFFIXES),
        None)
    if label is None or paths is None:
        missing = "labels" if label is None else "image paths"
        raise DataError(f"{path}: no column of {missing} found among {', '.join(columns) or 'no columns'}; name it "
                        f"{'label' if label is None else 'path'}")
    name = _name(path.parent.name)
    if any(Path(row.get(paths) or "").suffix.lower() in DICOM_SUFFIXES for row in rows):
        records, _ = read_manifest(path, {"path_column": paths, "label_column": label, "group_column": None,
                                          "split_column": None}, "fail")
        return _dicom({"source": "dicom", "path": written, "path_column": paths, "label_column": label}, records,
                      f"DICOM manifest {path}", name)
    group = _column(columns, GROUP_COLUMNS)
    split = _column(columns, SPLIT_COLUMNS)
    if split is not None and not all((row.get(split) or "").strip().lower() in SPLIT_NAMES for row in rows):
        split = None  # not a train/val/test column
    columns_read: ManifestColumns = {"path_column": paths, "label_column": label, "group_column": group,
                                     "split_column": split}
    section = {"source": "csv", "path": written, **columns_read}
    records, _ = read_manifest(path, columns_read, "fail")
    no_group = f"no patient column among {', '.join(columns)} (looked for patient, patient_id, subject, group, ...)"
    return Survey(section, f"CSV manifest {path}", name, None if group is None else f"column {group!r}",
                  "" if group else no_group, Counter(s for s in map(_image_size, (r.path for r in records)) if s))


def _column(columns: Sequence[str], names: tuple[str, ...]) -> str | None:
    """The first of columns whose name, in lower-case letters and digits, is one of names (in names' order)."""
    plain = {re.sub(r"[^a-z0-9]", "", column.lower()): column for column in reversed(columns)}
    return next((plain[name] for name in names if name in plain), None)


def _dicom(section: dict, records: list, found: str, name: str) -> Survey:
    """A DICOM source grouped by PatientID when every file's header has one."""
    import pydicom

    sizes: Counter[tuple[int, int]] = Counter()
    unnamed = 0
    for record in records:
        try:
            header = pydicom.dcmread(record.path, stop_before_pixels=True)
        except Exception as exc:  # pydicom raises many kinds on damaged files
            raise DataError(f"cannot read DICOM file {record.path}: {' '.join(str(exc).split())}; replace or remove "
                            "the file") from None
        sizes[int(header.get("Columns") or 0), int(header.get("Rows") or 0)] += 1
        unnamed += not str(header.get("PatientID") or "").strip()
    grouped = unnamed == 0
    return Survey({**section, "group_by": "PatientID" if grouped else "none"}, found, name,
                  "DICOM PatientID" if grouped else None,
                  "" if grouped else f"{unnamed} of {len(records)} DICOM files have no PatientID", sizes)


def _holds_dicom(folder: Path) -> bool:
    """Whether a folder holds DICOM files rather than images: any *.dcm or *.dicom, or a file of another kind that
    carries the DICM marker."""
    from pydicom.misc import is_dicom

    return any(path.is_file() and (path.suffix.lower() in DICOM_SUFFIXES or (
        path.suffix.lower() not in IMAGE_SUFFIXES + (".csv",) and is_dicom(path))) for path in folder.rglob("*"))


def _image_size(path: Path) -> tuple[int, int] | None:
    """An image file's (width, height) as it loads (EXIF rotation applied), from its header; None when unreadable
    (loading the data names the file)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            width, height = image.size
            return (height, width) if image.getexif().get(0x0112) in (5, 6, 7, 8) else (width, height)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None
