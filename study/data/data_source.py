"""The interface every dataset source implements: what its protocol section says before any file is read, and the
fingerprint and images of the data it opens."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar

from study.data.dataset import Dataset


class DataSource(ABC):
    """A kind of dataset the protocol's dataset.source names (name), opened from its section (the spec) by open.

    The class tells what the spec alone tells: whether its data comes with a train/val/test split, whether it reads
    files, and its paragraph of `study datasets`. An opened source fingerprints and loads its data.
    """

    name: ClassVar[str]  # the protocol's dataset.source
    reads_files: ClassVar[bool] = True  # False: generated, so checking its data needs no data directory
    source_file: str | None = None  # the one file the images came from (None: one file per image, or none)

    @classmethod
    @abstractmethod
    def open(cls, spec, data_dir: Path | None) -> DataSource:
        """The source the spec names, its relative paths read from data_dir; DataError when it cannot be read."""

    @classmethod
    def has_split(cls, spec) -> bool | None:
        """Whether the spec's data comes with a train/val/test split; None where only its files tell."""
        return False

    @classmethod
    @abstractmethod
    def description(cls) -> str:
        """What the source is and where it looks for files: lines for `study datasets`, without the name column."""

    @abstractmethod
    def fingerprint(self) -> str:
        """sha256 of the content (file bytes, labels, groups, split) and the decoding rules, not the size."""

    @abstractmethod
    def load(self, size: int, resize: str, fingerprint: str) -> Dataset:
        """The images decoded at size x size with the resize filter, stamped with fingerprint."""
