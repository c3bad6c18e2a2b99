"""LaTeX tables (booktabs) of display frames, ready for \\input in a paper, that fit an article's page.

How a table fits (font size, orientation, column widths, one page or several) is study.report.render.page_fit's; this
module writes it: a table float (a sidewaystable when turned), or a longtable (inside landscape when turned) for one
that breaks across pages. Each file's first line, a comment, names the packages it needs.
"""

from __future__ import annotations

import re

import pandas as pd

from study.report.render.page_fit import BREAK, Layout, fit_to_page

_ESCAPES = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
    "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "†": r"$^\dagger$", "‡": r"$^\ddagger$", "≥": r"$\geq$",
    "≤": r"$\leq$", "±": r"$\pm$", "−": r"$-$", "×": r"$\times$", "<": r"$<$", ">": r"$>$", "|": r"$|$",
    BREAK: r"\allowbreak{}",
}
_BREAK_AFTER = re.compile(r"(?<=[A-Za-z0-9][(])|(?<=[_/])(?=.)")  # after ( in a word, _ and /: breaks in long words
_MINUS = re.compile(r"(?:(?<![0-9A-Za-z])|(?<=[0-9]e))-(?=[0-9.])")  # a minus sign: set as one, no break after it


def escape(text: object) -> str:
    """Text with LaTeX's special characters escaped, minus signs set as minus signs and line breaks allowed after
    ( in a word, _ and /; missing values as --."""
    return "".join(_ESCAPES.get(char, char) for char in _typeset(text))


def latex_table(frame: pd.DataFrame, caption: str, label: str) -> str:
    """The table with caption and label as LaTeX that fits an article's page, its first line naming the packages it
    needs: booktabs; array when long cells wrap; rotating when turned sideways; longtable (and lscape when turned)
    when it breaks across pages."""
    header = [str(column) for column in frame.columns]
    rows = [list(row) for row in frame.itertuples(index=False)]
    layout = fit_to_page([[_typeset(value) for value in column] for column in zip(header, *rows)], caption)
    spec = "l" * len(header) if layout.widths is None else _paragraph_columns(layout.widths)
    head = [r"\toprule", " & ".join(map(escape, header)) + r" \\", r"\midrule"]
    body = [" & ".join(map(escape, row)) + r" \\" for row in rows]
    size = [f"\\{layout.size.command}", rf"\setlength{{\tabcolsep}}{{{layout.size.column_sep:g}pt}}"]
    if layout.long:
        lines = [r"\begingroup", *size, rf"\begin{{longtable}}{{{spec}}}",
                 rf"\caption{{{escape(caption)}}}\label{{tab:{label}}} \\", *head, r"\endfirsthead", *head, r"\endhead",
                 r"\bottomrule", r"\endfoot", *body, r"\end{longtable}", r"\endgroup"]
        if layout.sideways:
            lines = [r"\begin{landscape}", *lines, r"\end{landscape}"]
    else:
        environment = "sidewaystable" if layout.sideways else "table"
        lines = [rf"\begin{{{environment}}}[htbp]", r"\centering", *size, rf"\caption{{{escape(caption)}}}",
                 rf"\label{{tab:{label}}}", rf"\begin{{tabular}}{{{spec}}}", *head, *body, r"\bottomrule",
                 r"\end{tabular}", rf"\end{{{environment}}}"]
    return "\n".join([f"% needs \\usepackage{{{','.join(_packages(layout))}}}", *lines]) + "\n"


def _typeset(value: object) -> str:
    """The text as it is set: missing values as --, minus signs as minus signs, and where long words may break."""
    text = "--" if value is None or (isinstance(value, float) and pd.isna(value)) else str(value)
    return _BREAK_AFTER.sub(BREAK, _MINUS.sub("−", text))


def _packages(layout: Layout) -> list[str]:
    wrapped = ["array"] if layout.widths is not None else []
    turned = (["lscape"] if layout.long else ["rotating"]) if layout.sideways else []
    return ["booktabs", *wrapped, *(["longtable"] if layout.long else []), *turned]


def _paragraph_columns(widths: tuple[float, ...]) -> str:
    """Ragged-right paragraph columns whose shares of the line, once every column's padding is taken, follow the
    widths; each share is rounded down, so that the columns never add up to more than the line."""
    line = rf"\dimexpr\linewidth-{2 * len(widths)}\tabcolsep\relax"
    return "".join(rf">{{\raggedright\arraybackslash}}p{{{int(10000 * width / sum(widths)) / 10000:.4f}{line}}}"
                   for width in widths)
