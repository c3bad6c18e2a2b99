"""Writing a report document to disk: index.html, report.md, tables/*.csv and *.tex, figures/*.png and *.svg.

Every file is written atomically (study.core.files); tables and figures left over from an earlier build and not
written this time are removed, so the folder always matches the document.
"""

from __future__ import annotations

import logging
from pathlib import Path

from study.core.files import write_atomic
from study.report.render.document import Document
from study.report.render.html import html_page
from study.report.render.latex import latex_table
from study.report.render.markdown import markdown

log = logging.getLogger(__name__)

FLOAT_FORMAT = "%.10g"


def write_document(document: Document, out_dir: Path) -> list[Path]:
    """Write every format of the document under out_dir; index.html is the first path returned."""
    out_dir = Path(out_dir)
    for folder in ("tables", "figures"):
        (out_dir / folder).mkdir(parents=True, exist_ok=True)
    written = [
        write_atomic(out_dir / "index.html", html_page(document).encode()),
        write_atomic(out_dir / "report.md", markdown(document).encode()),
    ]
    for table in document.tables():
        data = table.data if table.data is not None else table.display
        csv = data.to_csv(index=False, float_format=FLOAT_FORMAT, lineterminator="\n")
        written.append(write_atomic(out_dir / "tables" / f"{table.name}.csv", csv.encode()))
        if table.display is not None:
            tex = latex_table(table.display, table.caption, table.name)
            written.append(write_atomic(out_dir / "tables" / f"{table.name}.tex", tex.encode()))
    for figure in document.figures():
        written.append(write_atomic(out_dir / "figures" / f"{figure.name}.png", figure.png))
        written.append(write_atomic(out_dir / "figures" / f"{figure.name}.svg", figure.svg))
    _remove_stale(out_dir, set(written))
    return written


def _remove_stale(out_dir: Path, keep: set[Path]) -> None:
    for folder in ("tables", "figures"):
        for path in sorted((out_dir / folder).iterdir()):
            if path.is_file() and path.suffix in {".csv", ".tex", ".png", ".svg"} and path not in keep:
                log.info("removing %s from an earlier report build", path)
                path.unlink()
