"""The report as Markdown: pipe tables, figures linked from figures/*.png."""

from __future__ import annotations

import pandas as pd

from study.report.render.document import Document, Figure, Table


def markdown(document: Document) -> str:
    """The whole document as Markdown text ending in one newline."""
    lines = [f"# {document.title}", ""]
    for section in document.sections:
        lines += [f"## {section.title}", ""]
        for paragraph in section.paragraphs:
            lines += [paragraph, ""]
        for item in section.items:
            if isinstance(item, str):
                lines += [item, ""]
            elif isinstance(item, Table) and item.display is not None:
                lines += [f"**{item.caption}**", "", *pipe_table(item.display), ""]
            elif isinstance(item, Figure):
                lines += [f"![{item.caption}](figures/{item.name}.png)", "", f"*{item.caption}*", ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def pipe_table(frame: pd.DataFrame) -> list[str]:
    """A GitHub-style pipe table of a frame of strings (| escaped, missing values as -)."""
    header = [_escape(column) for column in frame.columns]
    rows = [[_escape(value) for value in row] for row in frame.itertuples(index=False)]
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


def _escape(value) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "-"
    return str(value).replace("|", "\\|")
