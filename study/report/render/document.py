"""The report as data: sections of paragraphs, tables and figures, independent of any output format."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd


@dataclass(frozen=True)
class Table:
    """A table: `display` (strings) is what the HTML, Markdown and LaTeX show; `data` (numbers) goes to the CSV.

    A table without `display` is written as CSV only; one without `data` writes its display to the CSV.
    """

    name: str
    caption: str
    display: pd.DataFrame | None
    data: pd.DataFrame | None = None


@dataclass(frozen=True)
class Figure:
    """A figure as PNG and SVG bytes."""

    name: str
    caption: str
    png: bytes
    svg: bytes


@dataclass
class Section:
    """A titled part of the report: paragraphs of plain text, then tables, figures and further paragraphs (str) in
    order."""

    title: str
    paragraphs: list[str] = field(default_factory=list)
    items: list[Table | Figure | str] = field(default_factory=list)


@dataclass
class Document:
    title: str
    sections: list[Section]

    def tables(self) -> list[Table]:
        return [item for section in self.sections for item in section.items if isinstance(item, Table)]

    def frames(self) -> dict[str, pd.DataFrame]:
        """Each table's numbers by the table's name (its CSV file's stem)."""
        return {table.name: table.data if table.data is not None else table.display for table in self.tables()}

    def figures(self) -> list[Figure]:
        return [item for section in self.sections for item in section.items if isinstance(item, Figure)]
