"""The report as one self-contained HTML page: inline CSS, figures embedded as base64 PNG, no external resource."""

from __future__ import annotations

import base64
import html

import pandas as pd

from study.report.render.document import Document, Figure, Table

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 75rem; padding: 0 1rem; color: #222; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.25rem; margin-top: 2.2rem; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.6rem 0 1.4rem; font-size: 0.82rem; }
caption { caption-side: top; text-align: left; font-weight: 600; padding-bottom: 0.3rem; }
th, td { border: 1px solid #ddd; padding: 0.2rem 0.45rem; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
figure { margin: 1rem 0 1.8rem; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 0.85rem; color: #444; }
nav ul { columns: 2; font-size: 0.9rem; }
"""


def html_page(document: Document) -> str:
    """The whole document as an HTML page that needs no other file."""
    parts = [
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        f"<title>{html.escape(document.title)}</title>", f"<style>{STYLE}</style>", "</head>", "<body>",
        f"<h1>{html.escape(document.title)}</h1>", "<nav><ul>",
        *(f'<li><a href="#s{i}">{html.escape(s.title)}</a></li>' for i, s in enumerate(document.sections)),
        "</ul></nav>",
    ]
    for index, section in enumerate(document.sections):
        parts.append(f'<section id="s{index}"><h2>{html.escape(section.title)}</h2>')
        parts += [f"<p>{html.escape(paragraph)}</p>" for paragraph in section.paragraphs]
        for item in section.items:
            if isinstance(item, str):
                parts.append(f"<p>{html.escape(item)}</p>")
            elif isinstance(item, Table) and item.display is not None:
                parts.append(_table(item))
            elif isinstance(item, Figure):
                parts.append(_figure(item))
        parts.append("</section>")
    parts += ["</body>", "</html>"]
    return "\n".join(parts) + "\n"


def _table(table: Table) -> str:
    frame: pd.DataFrame = table.display
    head = "".join(f"<th>{html.escape(str(column))}</th>" for column in frame.columns)
    body = "\n".join(
        "<tr>" + "".join(f"<td>{_cell(value)}</td>" for value in row) + "</tr>" for row in frame.itertuples(index=False)
    )
    return (f'<table id="table-{table.name}"><caption>{html.escape(table.caption)}</caption>'
            f"<thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table>")


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "-"
    return html.escape(str(value))


def _figure(figure: Figure) -> str:
    data = base64.b64encode(figure.png).decode("ascii")
    return (f'<figure id="figure-{figure.name}"><img src="data:image/png;base64,{data}" '
            f'alt="{html.escape(figure.caption)}"><figcaption>{html.escape(figure.caption)}</figcaption></figure>')
