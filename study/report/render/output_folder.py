"""Writing a report document to disk: index.html, report.md, tables/*.csv and *.tex, figures/*.png and *.svg.

The report is written as a unit: every file goes into a hidden folder beside the report's
(`.<name>.<pid>-<random>.building`, same filesystem), which is then swapped in (the old folder renamed aside as
`.<name>.<pid>-<random>.replaced`, the new one renamed in, the old one removed). A failed or killed build leaves the
last good report (or none), never half of one; the folders a killed build left behind (its process gone) are removed
by the next one. The folder holds the document alone.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import uuid
from pathlib import Path

from study.core.errors import StudyError
from study.core.atomic_files import process_alive, sync_folder, write_atomic
from study.report.render.document import Document
from study.report.render.html import html_page
from study.report.render.latex import latex_table
from study.report.render.markdown import markdown

log = logging.getLogger(__name__)

FLOAT_FORMAT = "%.10g"
BUILDING, REPLACED = "building", "replaced"  # the suffixes of a folder being built, and of one being swapped out


def write_document(document: Document, out_dir: Path) -> list[Path]:
    """Write every format of the document as the folder out_dir, whole or not at all; index.html is the first path
    returned. A folder that cannot be written (read-only, full) raises a one-line StudyError."""
    out_dir = Path(out_dir)
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        _remove_leftovers(out_dir)
        building = _hidden(out_dir, BUILDING)
        os.mkdir(building)
        try:
            written = _write_files(document, building)
            _swap_in(building, out_dir)
        except BaseException:
            shutil.rmtree(building, ignore_errors=True)
            raise
    except OSError as exc:
        raise StudyError(f"cannot write the report in {out_dir}: {exc.strerror or exc}; free space or choose "
                         "another --report-dir, then run `study report`") from None
    return [out_dir / path.relative_to(building) for path in written]


def _hidden(out_dir: Path, suffix: str) -> Path:
    return out_dir.with_name(f".{out_dir.name}.{os.getpid()}-{uuid.uuid4().hex[:12]}.{suffix}")


def _remove_leftovers(out_dir: Path) -> None:
    """Remove the hidden folders an earlier build of out_dir left when it was killed (a build still running in
    another process keeps its own)."""
    pattern = re.compile(rf"\.{re.escape(out_dir.name)}\.(\d+)-[0-9a-f]{{12}}\.({BUILDING}|{REPLACED})")
    for path in sorted(out_dir.parent.iterdir()):
        match = pattern.fullmatch(path.name)
        if match and not process_alive(int(match.group(1))):
            log.info("removing %s, left by a report build that did not finish", path)
            _remove(path)


def _remove(path: Path) -> None:
    """Remove a folder, or a link or file in its place (a report folder may be a link elsewhere)."""
    if path.is_symlink() or not path.is_dir():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


def _write_files(document: Document, folder: Path) -> list[Path]:
    """Every file of the document under folder; index.html first."""
    for subfolder in ("tables", "figures"):
        (folder / subfolder).mkdir()
    written = [
        write_atomic(folder / "index.html", html_page(document).encode()),
        write_atomic(folder / "report.md", markdown(document).encode()),
    ]
    for table in document.tables():
        data = table.data if table.data is not None else table.display
        assert data is not None  # a table without display has its data
        csv = data.to_csv(index=False, float_format=FLOAT_FORMAT, lineterminator="\n")
        written.append(write_atomic(folder / "tables" / f"{table.name}.csv", csv.encode()))
        if table.display is not None:
            tex = latex_table(table.display, table.caption, table.name)
            written.append(write_atomic(folder / "tables" / f"{table.name}.tex", tex.encode()))
    for figure in document.figures():
        written.append(write_atomic(folder / "figures" / f"{figure.name}.png", figure.png))
        written.append(write_atomic(folder / "figures" / f"{figure.name}.svg", figure.svg))
    return written


def _swap_in(building: Path, out_dir: Path) -> None:
    """Put the built folder at out_dir: the old one (if any) renamed aside, the new one renamed in, the old removed."""
    old = None
    if out_dir.exists():
        old = _hidden(out_dir, REPLACED)
        os.rename(out_dir, old)
    try:
        os.rename(building, out_dir)
    except BaseException:
        if old is not None:
            os.rename(old, out_dir)
        raise
    sync_folder(out_dir.parent)
    if old is not None:
        _remove(old)
