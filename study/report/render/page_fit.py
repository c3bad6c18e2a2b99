"""How a table fits an article's page: its font size, its orientation, its columns' widths, and whether it breaks
across pages.

A table whose cells fit the text width of a 10pt article (345 pt) on one line each keeps them so, in \\small. A wider
one gets paragraph columns that share the line by the text they hold: short columns keep their cells on one line,
long ones wrap, and no column is narrower than its longest word. It is set in \\footnotesize, else \\scriptsize, else
turned sideways (its line is then the text height) in \\footnotesize, else \\scriptsize: the first of these layouts
whose line holds every column's longest word and whose height fits a page. A table no layout fits on one page breaks
across pages in the first layout whose line holds its words. (One whose words no line holds gets the last layout and
is wider than its line.) Widths and heights are estimated from Computer Modern's glyph widths, erring wide.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace

TEXT_WIDTH_PT = 345.0  # \textwidth of the standard article class at 10pt (letter or A4 paper)
TEXT_HEIGHT_PT = 550.0  # its \textheight on letter paper (598 pt on A4)
BREAK = "\u200b"  # a zero-width space in a cell's text: a line may break there


@dataclass(frozen=True)
class FontSize:
    """A LaTeX size command as a table uses it."""

    command: str
    points: float
    scale: float  # Computer Modern's glyph widths at this design size per point, relative to its 10pt design
    baseline: float  # \baselineskip in pt
    column_sep: float  # the \tabcolsep in pt that tables in this size get, on each side of every column


SMALL = FontSize("small", 9.0, 1.03, 11.0, 6.0)
FOOTNOTESIZE = FontSize("footnotesize", 8.0, 1.07, 9.5, 4.0)
SCRIPTSIZE = FontSize("scriptsize", 7.0, 1.14, 8.0, 3.0)
FONT_SIZES = (SMALL, FOOTNOTESIZE, SCRIPTSIZE)


@dataclass(frozen=True)
class Layout:
    """A font size and orientation, the widths of the columns in em of Computer Modern's 10pt design (None: each cell
    on one line), and whether the table breaks across pages."""

    size: FontSize
    sideways: bool = False
    widths: tuple[float, ...] | None = None
    long: bool = False

    @property
    def line(self) -> float:
        """The width in pt the table may take."""
        return TEXT_HEIGHT_PT if self.sideways else TEXT_WIDTH_PT

    @property
    def page(self) -> float:
        """The height in pt a page gives the table."""
        return TEXT_WIDTH_PT if self.sideways else TEXT_HEIGHT_PT


_ONE_LINE = Layout(SMALL)
_WRAPPED = (Layout(FOOTNOTESIZE), Layout(SCRIPTSIZE), Layout(FOOTNOTESIZE, sideways=True),
            Layout(SCRIPTSIZE, sideways=True))
_MARGIN = 1.03  # the estimates of text widths err wide by this factor
_RULES_PT = 30.0  # the height of the caption's skip and of the three rules with their padding
_BREAKS = re.compile(rf"{BREAK}|(?<=[A-Za-z]-)(?=[A-Za-z])|\s+")  # where a cell's line may break
# Computer Modern's glyph widths in em at its 10pt design, rounded up; characters not listed count as 0.5 em (digits)
_EM_WIDTHS = {
    **dict.fromkeys(".,:;!'`[]il", 0.28), **dict.fromkeys("fj", 0.31), **dict.fromkeys(" ()-|trsI", 0.39),
    **dict.fromkeys("cez", 0.45), **dict.fromkeys("bdhknpquvxyJS", 0.56), **dict.fromkeys("m%#", 0.84),
    **dict.fromkeys("ABCDEFGHKLNOPQRTUVXYZw=+<>±×≥≤−&@", 0.78), **dict.fromkeys("MW", 1.03), BREAK: 0.0,
}


def fit_to_page(columns: list[list[str]], caption: str) -> Layout:
    """The layout of a table given as columns of texts as they are set, each headed by its header (see the module's
    docstring)."""
    one_line = [max(map(_text_width, column)) for column in columns]
    if sum(one_line) <= _available(_ONE_LINE, len(columns)):
        candidates = [_ONE_LINE]
        heights = [_height(_ONE_LINE, columns, one_line, caption)]
    else:
        longest_word = [max(_text_width(word) for cell in column for word in _BREAKS.split(cell)) for column in columns]
        wanted = [max([word, *map(_text_width, column[1:])]) for word, column in zip(longest_word, columns)]
        wrapped = [(layout, _column_widths(layout, columns, longest_word, wanted, caption))
                   for layout in _WRAPPED if sum(longest_word) <= _available(layout, len(columns))]
        wrapped = wrapped or [(_WRAPPED[-1], longest_word)]
        candidates = [replace(layout, widths=tuple(widths)) for layout, widths in wrapped]
        heights = [_height(layout, columns, widths, caption) for layout, widths in wrapped]
    return next((layout for layout, height in zip(candidates, heights) if height <= layout.page),
                replace(candidates[0], long=True))


def _column_widths(layout: Layout, columns: list[list[str]], longest_word: list[float], wanted: list[float],
                   caption: str) -> list[float]:
    """The columns' widths on the layout's line: each at least its longest word (a header wraps at its words) and at
    most its longest cell. Of the widths that share the line out by capping the wide columns at a common width, by
    scaling every column alike, or by a blend of the two, those that give the shortest table."""
    available = _available(layout, len(columns))
    if sum(wanted) <= available:
        return wanted
    capped = _filling(lambda cap: [max(word, min(width, cap)) for width, word in zip(wanted, longest_word)],
                      max(wanted), available)
    scaled = _filling(lambda k: [max(word, k * width) for width, word in zip(wanted, longest_word)], 1.0, available)
    blends = [[(1 - blend) * a + blend * b for a, b in zip(capped, scaled)] for blend in (0.0, 0.25, 0.5, 0.75, 1.0)]
    return min(blends, key=lambda widths: _height(layout, columns, widths, caption))


def _filling(widths: Callable[[float], list[float]], high: float, available: float) -> list[float]:
    """The widths at the largest parameter in [0, high] at which they add up to no more than the available width,
    for widths that grow with their parameter."""
    low = 0.0
    for _ in range(50):
        middle = (low + high) / 2
        low, high = (middle, high) if sum(widths(middle)) <= available else (low, middle)
    return widths(low)


def _height(layout: Layout, columns: list[list[str]], widths: list[float], caption: str) -> float:
    """The table's height in pt: caption, header and rows at the layout's baseline, with its rules."""
    row_lines = [max(_lines(cell, width) for cell, width in zip(row, widths)) for row in zip(*columns)]
    caption_lines = _lines(caption, layout.line / (layout.size.points * layout.size.scale))
    return (sum(row_lines) + caption_lines) * layout.size.baseline + _RULES_PT


def _lines(text: str, width: float) -> int:
    """The number of lines the text takes when wrapped at its break points to a width in em."""
    lines, filled, space = 1, 0.0, _text_width(" ")
    for word in _BREAKS.split(text):
        word_width = _text_width(word)
        if filled and filled + space + word_width > width:
            lines, filled = lines + 1, word_width
        else:
            filled += (space if filled else 0.0) + word_width
    return lines


def _available(layout: Layout, n_columns: int) -> float:
    """The line's width left for the cells once every column's padding is taken, in em of the 10pt design."""
    return (layout.line - 2 * layout.size.column_sep * n_columns) / (layout.size.points * layout.size.scale)


def text_width_pt(text: str, size: FontSize) -> float:
    """The estimated width in pt of the text (with break marks, unescaped) set in Computer Modern in this size, erring
    wide."""
    return _text_width(text) * size.points * size.scale


def _text_width(text: str) -> float:
    """The width of the text in em of Computer Modern's 10pt design, erring wide."""
    return _MARGIN * sum(_EM_WIDTHS.get(char, 0.5) for char in text)
