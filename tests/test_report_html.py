"""The HTML report opened in a real headless Chromium: self-contained, its tables and figures render."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from helpers.synthetic import (
    every_stored_cell,
    ARMS,
    TARGET_AND_CLAIMS,
    grid_rows,
    write_features,
    write_protocol,
    write_store,
)
from PIL import Image

from study.protocol.schema import load_protocol
from study.report.build import build_report

pytestmark = pytest.mark.slow  # the tests share one report build (about 20 s) and open it in Chromium

CHROMIUM = Path("/usr/bin/chromium")
PROBE = """<script>
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  const probe = document.createElement("pre");
  probe.id = "probe";
  probe.textContent = JSON.stringify({
    tables: Array.from(document.querySelectorAll("table")).map(t => [t.id, t.tBodies[0].rows.length]),
    images: images.map(i => [i.closest("figure").id, i.complete, i.naturalWidth, i.naturalHeight]),
    sections: Array.from(document.querySelectorAll("section > h2")).map(h => h.textContent),
    answer: Array.from(document.querySelectorAll("#table-answer tbody tr")).map(
      r => Array.from(r.cells).map(c => c.textContent)),
  });
  document.body.appendChild(probe);
});
</script>
"""


def _chromium(profile: Path, *arguments: str) -> str:
    """Run headless Chromium with a fresh profile and no network use; its stdout."""
    assert CHROMIUM.is_file(), f"{CHROMIUM} is missing: apt-get install -y chromium (as .ci/run does)"
    command = [
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={profile}", "--virtual-time-budget=10000", *arguments,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def _dump_dom(page: Path, profile: Path) -> str:
    return _chromium(profile, "--dump-dom", page.as_uri())


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> tuple[Path, Path]:
    """index.html of a synthetic report, copied alone into an empty folder (nothing else to load from)."""
    root = tmp_path_factory.mktemp("html")
    rows = grid_rows({"scratch": 0.0, "frozen": 0.06, "finetune(depth=1)": 0.03, "finetune(depth=all)": 0.02,
                      "truncate(at=2)": 0.04}, seeds=3, noise=0.005)
    rows[0] |= {"max_predicted_share": 1.0}
    store = write_store(root / "results", rows)
    write_features(store.root / "features" / "cnn-16px.npz")
    paths = build_report(load_protocol(write_protocol(root, extra=TARGET_AND_CLAIMS)), store, root / "report",
                         every_stored_cell(store))
    alone = root / "alone"
    alone.mkdir()
    shutil.copy(paths[0], alone / "index.html")
    return alone / "index.html", root / "report"


def test_html_needs_no_other_file(page):
    text = page[0].read_text()
    assert not re.search(r"""(src|href)=["'](?!data:|#)""", text), "the page refers to another file or site"
    assert "url(" not in text and "<link" not in text and "<script" not in text
    figures = len(list((page[1] / "figures").glob("*.png")))
    assert text.count('<img src="data:image/png;base64,') == figures == 8


def test_chromium_renders_every_table_and_figure(page, tmp_path):
    probed = page[0].with_name("probed.html")
    probed.write_text(page[0].read_text().replace("</body>", PROBE + "</body>"))
    dom = _dump_dom(probed, tmp_path / "profile")
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    assert found, "the page did not finish loading in Chromium"
    probe = json.loads(found.group(1).replace("&quot;", '"'))
    tables = dict(probe["tables"])
    for name in ("claims", "claim_fractions", "summary_auc", "curve_fits", "pairwise", "friedman", "ranks", "mcnemar",
                 "topk", "degenerate_cells", "per_class"):
        assert tables.get(f"table-{name}", 0) > 0, f"table {name} missing or empty"
    images = {name: (complete, width, height) for name, complete, width, height in probe["images"]}
    assert set(images) == {f"figure-{name}" for name in ("learning_curve", "significance", "critical_difference",
                                                           "heatmap_depth", "heatmap_cut", "confusion", "tsne", "roc")}
    for name, (complete, width, height) in images.items():
        assert complete and width > 100 and height > 100, f"{name} did not render ({width} x {height})"
    assert re.search(r"<td>frozen-beats-scratch</td><td>by construction</td><td>[^<]*</td>"
                     r"<td>(SUPPORTED|INCONCLUSIVE|CONTRADICTED)</td>", dom)
    assert probe["sections"][0] == "Answer" and probe["sections"][1] == "Overview"
    assert [row[0] for row in probe["answer"]] == ["0.1", "0.25", "0.5", "1"]
    assert all(row[2] in ARMS for row in probe["answer"]), probe["answer"]


def test_chromium_screenshot_shows_the_page(page, tmp_path):
    """A screenshot of the top of the page (kept beside the report, to look at): the answer is drawn, not blank."""
    shot = page[1] / "screenshot.png"
    _chromium(tmp_path / "profile", "--hide-scrollbars", "--window-size=1280,2400", f"--screenshot={shot}",
              page[0].as_uri())
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.shape == (2400, 1280)
    assert pixels.std() > 20 and (pixels < 100).mean() > 0.01, "the screenshot is (nearly) blank"
