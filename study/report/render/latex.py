"""LaTeX tables (booktabs) of display frames, ready for \\input in a paper."""

from __future__ import annotations

import pandas as pd

_ESCAPES = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
    "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "†": r"\textsuperscript{\dag}",
    "‡": r"\textsuperscript{\ddag}", "≥": r"$\geq$", "≤": r"$\leq$", "±": r"$\pm$", "−": "-",
    "×": r"$\times$",
}


def escape(text: object) -> str:
    """Text with LaTeX's special characters escaped; missing values as --."""
    if text is None or (isinstance(text, float) and pd.isna(text)):
        return "--"
    return "".join(_ESCAPES.get(char, char) for char in str(text))


def latex_table(frame: pd.DataFrame, caption: str, label: str) -> str:
    """A table float with caption and label around a booktabs tabular (needs \\usepackage{booktabs})."""
    columns = "l" * len(frame.columns)
    lines = [
        r"\begin{table}[ht]", r"\centering", r"\small", rf"\caption{{{escape(caption)}}}", rf"\label{{tab:{label}}}",
        rf"\begin{{tabular}}{{{columns}}}", r"\toprule",
        " & ".join(escape(column) for column in frame.columns) + r" \\", r"\midrule",
        *(" & ".join(escape(value) for value in row) + r" \\" for row in frame.itertuples(index=False)),
        r"\bottomrule", r"\end{tabular}", r"\end{table}",
    ]
    return "\n".join(lines) + "\n"
