"""The report's LaTeX tables compiled by a real pdflatex in a plain article: each fits the page with the packages its
first line names, and the width estimates behind the layouts never fall short of what TeX sets."""

from __future__ import annotations

import os
import re
import shutil
import string
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from helpers.synthetic import cell_row, every_stored_cell, grid_rows, with_history, write_protocol, write_store

from study.protocol.schema import load_protocol
from study.report.build import build_report
from study.report.render.latex import escape, latex_table
from study.report.render.page_fit import FONT_SIZES, text_width_pt

LONG_CLAIMS = """\
report: {metric: auc, target: 0.85}
claims:
  - id: frozen-beats-scratch
    text: Frozen ImageNet features beat training from scratch at every training-set size (Author et al. 2020, table 3)
    a: frozen
    b: scratch
  - {id: fine-tuning-every-layer-is-not-worse-than-tuning-one, kind: not_worse, margin: 0.02,
     a: finetune(depth=all), b: finetune(depth=1)}
  - {id: deeper-tuning-pays-with-more-data, kind: trend, a: [frozen, finetune(depth=1), finetune(depth=all)]}
  - {id: pretrained-arms-beat-scratch-when-data-is-scarce, fractions: [0.1, 0.25],
     a: [frozen, finetune(depth=1), finetune(depth=all), truncate(at=2)], b: scratch}
"""
WORDS = "frozen finetune(depth=all) beats scratch at fraction 0.25 (p = 0.0031) −0.056 [−0.060, +0.019] INCONCLUSIVE"
ONE_LINE = pd.DataFrame({"arm": ["frozen", "scratch"], "auc": ["0.812", "0.774"], "seeds": ["5", "5"]})
LONG_TEXT = pd.DataFrame({"claim": ["frozen-beats-scratch", "same"], "verdict": ["SUPPORTED", "INCONCLUSIVE"],
                          "why": [" ".join([WORDS] * 5), WORDS]})
MANY_COLUMNS = pd.DataFrame({f"column {i}": [WORDS.split()[(i + row) % 14] for row in range(3)] for i in range(11)})
MANY_ROWS = pd.concat([LONG_TEXT] * 40, ignore_index=True)
MANY_ROWS_AND_COLUMNS = pd.concat([MANY_COLUMNS] * 30, ignore_index=True)
WRAPPED = r">{\raggedright\arraybackslash}p{"  # the columns of a table whose long cells wrap


def _pdflatex(directory: Path, name: str, body: str, packages: str = "") -> str:
    """Compile an article holding the body with pdflatex in the directory; the log of a run without errors."""
    assert shutil.which("pdflatex"), (
        "pdflatex is missing: apt-get install -y --no-install-recommends texlive-latex-base texlive-latex-recommended "
        "(as .ci/run does)")
    preamble = rf"\usepackage{{{packages}}}" if packages else ""
    (directory / f"{name}.tex").write_text(
        f"\\documentclass{{article}}\n{preamble}\n\\begin{{document}}\n{body}\n\\end{{document}}\n")
    result = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", f"{name}.tex"], cwd=directory,
                            capture_output=True, text=True, timeout=120, env=os.environ | {"max_print_line": "10000"})
    log = (directory / f"{name}.log").read_text(errors="replace")
    assert result.returncode == 0, log[-3000:]
    return log


def _compile_table(tex: Path, directory: Path) -> tuple[str, str]:
    """The table's text and the log of a plain article that loads the packages its first line names and inputs it."""
    text = tex.read_text()
    needs = re.fullmatch(r"% needs \\usepackage\{([a-z,]+)\}", text.splitlines()[0])
    assert needs, f"{tex.name} does not start by naming the packages it needs"
    if tex.parent != directory:
        shutil.copy(tex, directory / tex.name)
    log = _pdflatex(directory, f"page_{tex.stem}", rf"\input{{{tex.stem}}}", needs.group(1))
    assert (directory / f"page_{tex.stem}.pdf").stat().st_size > 0
    return text, log


def _too_large(log: str) -> list[str]:
    """The log's lines saying that something was wider than its line or taller than the page."""
    return [line for line in log.splitlines() if line.startswith("Overfull \\hbox") or "Float too large" in line]


@pytest.mark.slow
def test_every_table_of_a_report_with_long_claims_fits_an_article_page(tmp_path):
    rows = grid_rows({"scratch": 0.0, "frozen": 0.06, "finetune(depth=1)": 0.03, "finetune(depth=all)": 0.03,
                      "truncate(at=2)": 0.04}, noise=0.005)
    rows[0] |= {"max_predicted_share": 1.0}  # a collapsed cell: its marks go into the tables
    rows = [with_history(row) for row in rows]
    rows.append(cell_row("scratch", 0.1, 9, 0.5, status="failed", error=(
        "ResourceExhaustedError: OOM when allocating tensor with shape[64,112,112,96] on "
        "/job:localhost/replica:0/task:0/device:CPU:0 by allocator mklcpu\nTraceback ...")))
    store = write_store(tmp_path / "results", rows)
    build_report(load_protocol(write_protocol(tmp_path, extra=LONG_CLAIMS)), store, tmp_path / "report",
                 every_stored_cell(store))
    tables = sorted((tmp_path / "report" / "tables").glob("*.tex"))
    assert {"claims.tex", "claim_fractions.tex", "pairwise.tex", "answer.tex", "failed_cells.tex"} <= {
        tex.name for tex in tables}
    pages = tmp_path / "pages"
    pages.mkdir()
    for tex in tables:
        text, log = _compile_table(tex, pages)
        assert not _too_large(log), f"{tex.name}: {_too_large(log)}"
        if tex.stem == "claims":
            assert "pretrained-arms-beat-scratch-when-data-is-scarce" in text
            assert WRAPPED in text  # its long cells wrap


@pytest.mark.parametrize("frame, shape, pages", [
    (ONE_LINE, [r"\begin{table}[htbp]", r"\begin{tabular}{lll}"], 1),
    (LONG_TEXT, [r"\begin{table}[htbp]", WRAPPED], 1),
    (MANY_COLUMNS, [r"\begin{sidewaystable}[htbp]", WRAPPED], 1),
    (MANY_ROWS, [r"\begin{longtable}", WRAPPED], 3),
    (MANY_ROWS_AND_COLUMNS, [r"\begin{landscape}", r"\begin{longtable}", WRAPPED], 2),
], ids=["one line", "wrapped", "sideways", "across pages", "sideways across pages"])
def test_each_layout_fits_the_page_with_the_packages_it_names(tmp_path, frame, shape, pages):
    tex = tmp_path / "table.tex"
    tex.write_text(latex_table(frame, "A table: " + WORDS, "table"))
    text, log = _compile_table(tex, tmp_path)
    assert all(fragment in text for fragment in shape), text[:600]
    assert not _too_large(log), _too_large(log)
    written = re.search(r"Output written on page_table\.pdf \((\d+) pages?", log)
    assert written and int(written.group(1)) >= pages


def test_width_estimates_never_fall_short_of_what_tex_sets(tmp_path):
    texts = [*(char for char in string.printable if not char.isspace()), *"±×≥≤−†‡", *WORDS.split(), WORDS]
    probes = [rf"\sbox\probe{{\{size.command} {escape(text)}}}\typeout{{WIDTH {i} {j} \the\wd\probe}}"
              for i, size in enumerate(FONT_SIZES) for j, text in enumerate(texts)]
    log = _pdflatex(tmp_path, "widths", "\n".join([r"\newsavebox\probe", *probes]))
    measured = re.findall(r"^WIDTH (\d+) (\d+) ([\d.]+)pt$", log, re.M)
    assert len(measured) == len(FONT_SIZES) * len(texts)
    short = [(FONT_SIZES[int(i)].command, texts[int(j)], float(width)) for i, j, width in measured
             if text_width_pt(texts[int(j)], FONT_SIZES[int(i)]) < float(width)]
    assert not short, short


def test_escape_sets_minus_signs_and_symbols_and_lets_long_words_break():
    assert escape("-0.056 [-0.060, 4.91e-06] frozen-beats-scratch") == (
        r"$-$0.056 [$-$0.060, 4.91e$-$06] frozen-beats-scratch")
    assert escape("P(A > B) | 100% #1 & x_y") == r"P(\allowbreak{}A $>$ B) $|$ 100\% \#1 \& x\_\allowbreak{}y"
    assert escape("finetune(depth=all) (Holm) a/b ‡1") == (
        r"finetune(\allowbreak{}depth=all) (Holm) a/\allowbreak{}b $^\ddagger$1")
    assert escape(None) == escape(float("nan")) == "--"
