"""The DICOM source: single-frame DICOM images labelled by class folders or a CSV manifest, grouped by a header
tag (PatientID by default) so that a patient never crosses a split."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from study.core.errors import DataError
from study.data.datadir import relative_hint, resolve_path
from study.data.dicom_pixels import dicom_pixels
from study.data.image_files import FileSource, ManifestColumns, Record, read_manifest, subfolders

log = logging.getLogger(__name__)

RULES = "dicom-1"  # the fingerprint's kind: bump it when the pixel rules of study.data.dicom_pixels change
SUFFIXES = (".dcm", ".dicom")  # in class folders, other files count only when they carry the DICM marker


class DicomSource(FileSource):
    """The DICOM files under spec.path's class subfolders, or those a CSV manifest (spec.path ending .csv) lists with
    their labels; each file's group is its spec.group_by header value. pydicom is imported only when files are read."""

    name = "dicom"

    @classmethod
    def open(cls, spec, data_dir: Path | None) -> DicomSource:
        root = resolve_path(spec.path, data_dir)
        manifest = root.suffix.lower() == ".csv"
        if not (root.is_file() if manifest else root.is_dir()):
            what = "DICOM manifest" if manifest else "DICOM folder"
            raise DataError(f"{what} {root} not found{relative_hint(spec.path, data_dir)}")
        if manifest:
            columns: ManifestColumns = {"path_column": spec.path_column, "label_column": spec.label_column,
                                        "group_column": None, "split_column": None}
            listed, missing = read_manifest(root, columns, spec.on_bad_file)
        else:
            listed, missing = class_records(root), []
        records, unreadable = [], []
        for record in listed:
            try:
                records.append(replace(record, group=_group(record.path, spec.group_by)))
            except _Unreadable as exc:
                if spec.on_bad_file != "skip":
                    raise DataError(f"{exc}; replace or remove the file, or set dataset.on_bad_file: skip") from None
                unreadable.append(str(exc))
        if unreadable:
            log.warning("skipped %d unreadable DICOM files (dataset.on_bad_file: skip), e.g. %s", len(unreadable),
                        unreadable[0])
        if not records:
            raise DataError(f"{root}: no readable DICOM file" + (f" (first: {unreadable[0]})" if unreadable else ""))
        return cls(RULES, records, root, spec.on_bad_file, tuple(missing + unreadable), decode=dicom_pixels)

    @classmethod
    def description(cls) -> str:
        return """\
path: a folder with one subfolder of DICOM files per class (*.dcm, *.dicom, or any file with the
DICM marker; searched recursively), or a CSV manifest (path ending .csv) with path_column and
label_column like csv. Single-frame images only (a multi-frame file is an error naming it). Pixels:
rescale slope and intercept (modality LUT), then the VOI LUT or the first window mapped to 0..255
(without either, the image's own range), MONOCHROME1 inverted. group_by (PatientID, StudyInstanceUID,
SeriesInstanceUID or none) keeps a patient's images on one side of the split; no split of its own."""


class _Unreadable(DataError):
    """A file whose DICOM header cannot be read."""


def class_records(root: Path) -> list[Record]:
    """One record per DICOM file below each class subfolder of root, labelled with the subfolder's name."""
    folders = subfolders(root)
    if not folders:
        raise DataError(f"{root} holds no class subfolders; put each class's DICOM files in its own subfolder "
                        f"(e.g. {root / 'benign'})")
    records = []
    for folder in folders:
        files = _dicom_files(folder)
        if not files:
            raise DataError(f"class folder {folder} holds no DICOM files (*.dcm, *.dicom, or files with the DICM "
                            "marker); add files or remove the folder")
        records += [Record(file, file.relative_to(root).as_posix(), folder.name) for file in files]
    return records


def _dicom_files(folder: Path) -> list[Path]:
    """The DICOM files below folder, sorted: *.dcm and *.dicom, and other files that carry the DICM marker; hidden
    files and DICOMDIR index files left out."""
    from pydicom.misc import is_dicom

    files = (
        path for path in folder.rglob("*")
        if path.is_file() and path.name.upper() != "DICOMDIR"
        and not any(part.startswith(".") for part in path.relative_to(folder).parts)
        and (path.suffix.lower() in SUFFIXES or is_dicom(path))
    )
    return sorted(files, key=lambda path: path.relative_to(folder).as_posix())


def _group(path: Path, group_by: str) -> str | None:
    """The file's group_by header value (None for group_by none); refuses multi-frame files."""
    import pydicom

    try:
        header = pydicom.dcmread(path, stop_before_pixels=True)
    except Exception as exc:  # pydicom raises many kinds on damaged files
        raise _Unreadable(f"cannot read DICOM file {path}: {' '.join(str(exc).split())}") from None
    frames = int(header.get("NumberOfFrames") or 1)
    if frames > 1:
        raise DataError(f"{path}: a multi-frame DICOM file ({frames} frames); the dicom source reads single-frame "
                        "images: split it into one file per frame, or leave it out")
    if group_by == "none":
        return None
    value = str(header.get(group_by) or "").strip()
    if not value:
        raise DataError(f"{path}: no {group_by} in its header (dataset.group_by); set group_by to another tag, or "
                        "to none")
    return value
