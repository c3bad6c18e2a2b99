"""The registry of dataset sources: the protocol's dataset.source names and the classes that open them."""

from __future__ import annotations

from study.data.dicom import DicomSource
from study.data.image_files import CsvSource, FolderSource
from study.data.medmnist import Medmnist
from study.data.data_source import DataSource
from study.data.synthetic import Synthetic

SOURCES: dict[str, type[DataSource]] = {  # in the order `study datasets` describes them
    source.name: source for source in (Medmnist, FolderSource, CsvSource, DicomSource, Synthetic)
}


def source_class(name: str) -> type[DataSource]:
    """The source class the protocol's dataset.source names."""
    if name not in SOURCES:
        raise ValueError(f"unknown dataset source {name!r}")
    return SOURCES[name]
