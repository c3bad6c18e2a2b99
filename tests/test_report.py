"""Summaries and reports from synthetic cell frames (no TensorFlow)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy import stats

from study.analysis import METRICS, arm_order, is_degenerate, summarize
from study.errors import StudyError
from study.report import build_report

ARMS = {
    "truncate(at=3)": ("truncate", None, 3.0),
    "finetune(depth=all)": ("finetune", "all", np.nan),
    "finetune(depth=10)": ("finetune", "10", np.nan),
    "finetune(depth=2)": ("finetune", "2", np.nan),
    "frozen": ("frozen", "0", np.nan),
    "scratch": ("scratch", None, np.nan),
}
FRACTIONS = [0.5, 0.1, 1.0]
SEEDS = [0, 1, 2]


def _cell(arm: str, fraction: float, seed: int, rng: np.random.Generator, **overrides) -> dict:
    strategy, depth, truncate_at = ARMS[arm]
    auc = float(np.clip(0.6 + 0.3 * fraction + rng.normal(0, 0.03), 0, 1))
    row = {
        "run_id": f"{arm}-f{fraction}-s{seed}", "status": "done", "error": None, "arm": arm, "strategy": strategy,
        "depth": depth, "truncate_at": truncate_at, "fraction": fraction, "n_train": int(round(546 * fraction)),
        "seed": seed, "backbone": "resnet50", "weights": "imagenet", "accuracy": auc - 0.05, "auc": auc,
        "balanced_accuracy": auc - 0.07, "f1_macro": auc - 0.08, "top2_accuracy": np.nan, "log_loss": 1.2 - auc,
        "majority_rate": 0.73, "max_predicted_share": 0.6, "epochs": 20, "train_seconds": 3.5,
    }
    return row | overrides


def _cells() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = [_cell(arm, f, s, rng) for arm in ARMS for f in FRACTIONS for s in SEEDS]
    rows[0] |= {"max_predicted_share": 1.0}  # truncate(at=3), fraction 0.5, seed 0: degenerate
    rows.append(_cell("scratch", 0.1, 3, rng, status="failed", error="ResourceExhaustedError: OOM\nTraceback ..."))
    return pd.DataFrame(rows)


def test_interval_matches_scipy_t_interval():
    values = [0.71, 0.74, 0.69, 0.80]
    cells = pd.DataFrame([_cell("scratch", 0.1, s, np.random.default_rng(s), auc=v) for s, v in enumerate(values)])
    row = summarize(cells).iloc[0]
    low, high = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values))
    assert row["auc_mean"] == pytest.approx(np.mean(values), rel=1e-12)
    assert row["auc_std"] == pytest.approx(np.std(values, ddof=1), rel=1e-12)
    assert (row["auc_ci_low"], row["auc_ci_high"]) == pytest.approx((low, high), rel=1e-12)
    assert row["n_seeds"] == 4 and row["n_train"] == 55


def test_single_seed_has_no_spread_or_interval():
    row = summarize(pd.DataFrame([_cell("frozen", 1.0, 0, np.random.default_rng(0))])).iloc[0]
    assert not np.isnan(row["auc_mean"])
    assert np.isnan(row["auc_std"]) and np.isnan(row["auc_ci_low"]) and np.isnan(row["auc_ci_high"])


def test_degenerate_flags_single_class_and_chance_auc():
    rng = np.random.default_rng(0)
    cells = pd.DataFrame([
        _cell("scratch", 0.1, 0, rng, max_predicted_share=0.95, auc=0.8),
        _cell("scratch", 0.1, 1, rng, max_predicted_share=0.6, auc=0.51),
        _cell("scratch", 0.1, 2, rng, max_predicted_share=0.6, auc=0.49),
        _cell("scratch", 0.1, 3, rng, max_predicted_share=0.94, auc=0.6),
        _cell("scratch", 0.1, 4, rng, max_predicted_share=0.6, auc=np.nan),
    ])
    assert is_degenerate(cells).tolist() == [True, True, True, False, False]
    assert summarize(cells)["degenerate"].tolist() == [2 + 1]


def test_rows_follow_arm_order_then_fraction():
    summary = summarize(_cells())
    expected = ["scratch", "frozen", "finetune(depth=2)", "finetune(depth=10)", "finetune(depth=all)", "truncate(at=3)"]
    assert arm_order(summary["arm"]) == expected
    assert list(summary[["arm", "fraction"]].itertuples(index=False, name=None)) == [
        (arm, f) for arm in expected for f in sorted(FRACTIONS)
    ]
    assert summary["n_seeds"].tolist() == [3] * len(summary)  # the failed cell is left out
    assert set(summary.columns) >= {f"{m}_{s}" for m in METRICS for s in ("mean", "std", "ci_low", "ci_high")}


def test_summary_does_not_depend_on_row_order():
    cells = _cells()
    shuffled = cells.sample(frac=1, random_state=1)
    pd.testing.assert_frame_equal(summarize(cells), summarize(shuffled))


def test_report_rebuilds_byte_identical(tmp_path):
    cells = _cells()
    first = build_report(cells, tmp_path / "a", "BreastMNIST")
    second = build_report(cells.sample(frac=1, random_state=2), tmp_path / "b", "BreastMNIST")
    for name in ("summary.csv", "summary.md"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert [p.name for p in first] == [p.name for p in second]
    assert not [p for p in (tmp_path / "a").iterdir() if p.name.startswith(".")]  # no temporary files left
    for path in first:
        if path.suffix == ".png":
            with Image.open(path) as image:
                image.verify()
                assert image.format == "PNG"


def test_markdown_content(tmp_path):
    build_report(_cells(), tmp_path, "BreastMNIST")
    text = (tmp_path / "summary.md").read_text()
    assert text.startswith("# BreastMNIST\n")
    assert "Cells: 54 done, 1 failed." in text
    assert "## auc: mean [95% CI] over seeds" in text and "## top2_accuracy" not in text
    assert "| truncate(at=3) |" in text and "†1/3" in text and "## † Degenerate cells" in text
    assert "ResourceExhaustedError: OOM |" in text and "Traceback" not in text
    assert pd.read_csv(tmp_path / "summary.csv").shape[0] == len(ARMS) * len(FRACTIONS)


@pytest.mark.parametrize("cells", [
    pd.DataFrame(columns=["run_id", "status"]),
    pd.DataFrame([{"run_id": "x", "status": "failed", "error": "ValueError: bad", "arm": "scratch", "fraction": 0.1,
                   "seed": 0}]),
])
def test_empty_or_all_failed_store(tmp_path, cells):
    paths = build_report(cells, tmp_path, "Nothing yet")
    text = (tmp_path / "summary.md").read_text()
    assert "No finished cells" in text
    assert all(path.exists() for path in paths)
    with Image.open(tmp_path / "learning_curve.png") as image:
        assert image.format == "PNG"


def test_unknown_metric_is_refused(tmp_path):
    with pytest.raises(StudyError, match="unknown report metric 'acc'"):
        build_report(_cells(), tmp_path, "x", metric="acc")


def test_report_import_does_not_load_tensorflow():
    code = "import sys, study.report; print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
