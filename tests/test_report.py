"""Summaries of cells, and the report built from a synthetic results store (no TensorFlow)."""

from __future__ import annotations

import io
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from helpers.synthetic import (
    as_planned,
    every_stored_cell,
    N_TEST,
    TARGET_AND_CLAIMS,
    cell_row,
    grid_rows,
    protocol_text,
    with_history,
    write_features,
    write_protocol,
    write_store,
)
from PIL import Image
from scipy import stats

from study.analysis.curves import fit_curves
from study.analysis.summaries import (
    arm_order,
    arms_in_rows,
    flagged,
    is_degenerate,
    of_plan,
    summarize,
)
from study.core.vocabulary import METRICS
from study.protocol.schema import load_protocol, parse_protocol
from study.report import figures, tables
from study.report.build import build_report, report_document

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
    assert arm_order(_cells()) == arms_in_rows(summary) == expected
    assert list(summary[["arm", "fraction"]].itertuples(index=False, name=None)) == [
        (arm, f) for arm in expected for f in sorted(FRACTIONS)
    ]
    assert summary["n_seeds"].tolist() == [3] * len(summary)  # the failed cell is left out
    assert set(summary.columns) >= {f"{m}_{s}" for m in METRICS for s in ("mean", "std", "ci_low", "ci_high")}


def test_summary_does_not_depend_on_row_order():
    cells = _cells()
    shuffled = cells.sample(frac=1, random_state=1)
    pd.testing.assert_frame_equal(summarize(cells), summarize(shuffled))


def test_only_the_planned_cells_are_read_whatever_else_the_store_holds():
    cells = _cells()
    cells["finished_at"] = "2024-01-01"
    other = cells.iloc[[1]].assign(run_id="another-version", auc=0.1, finished_at="2025-01-01")  # newer, not planned
    planned = list(cells["run_id"])
    kept, others = of_plan(pd.concat([other, cells], ignore_index=True), planned)
    assert others == 1 and "another-version" not in set(kept["run_id"])
    pd.testing.assert_frame_equal(kept, cells.reset_index(drop=True))


# ------------------------------------------------------------------------------------ the report itself
def _overview(document) -> list[str]:
    return next(section for section in document.sections if section.title == "Overview").paragraphs


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A store of cells with histories where frozen beats scratch by construction, with a collapsed cell, a cell with
    no ranking, a failed cell and features."""
    root = tmp_path_factory.mktemp("report")
    rows = grid_rows({"scratch": 0.0, "frozen": 0.06, "finetune(depth=1)": 0.03, "finetune(depth=all)": 0.03,
                      "truncate(at=2)": 0.04}, noise=0.005)
    rows[0] |= {"max_predicted_share": 1.0}  # scratch, fraction 0.1, seed 0: collapsed
    rows[58] |= {"auc": 0.51}  # finetune(depth=all), fraction 0.5, seed 1: no ranking
    rows = [with_history(row) for row in rows]
    rows.append(cell_row("scratch", 0.1, 9, 0.5, status="failed", error="ResourceExhaustedError: OOM\nTraceback ..."))
    store = write_store(root / "results", rows)
    write_features(store.root / "features" / "cnn-16px.npz")
    protocol = load_protocol(write_protocol(root, extra=TARGET_AND_CLAIMS))
    first = build_report(protocol, store, root / "a", every_stored_cell(store))
    second = build_report(protocol, store, root / "b", every_stored_cell(store))
    return root, first, second


@pytest.mark.slow
def test_report_writes_every_format(built):
    root, paths, _ = built
    out = root / "a"
    assert paths[0] == out / "index.html"
    assert (out / "report.md").is_file()
    tables = {p.name for p in (out / "tables").iterdir()}
    for name in ("summary", "summary_auc", "pairwise", "friedman", "ranks", "mcnemar", "curve_fits", "claims",
                 "claim_fractions", "topk", "degenerate_cells", "failed_cells", "training_curves",
                 "summary_accuracy_op"):
        assert f"{name}.csv" in tables
    assert "summary_auc.tex" in tables and "summary.tex" not in tables  # CSV-only tables have no LaTeX
    figures = {p.name for p in (out / "figures").iterdir()}
    for name in ("learning_curve", "training_curves", "significance", "critical_difference", "heatmap_depth",
                 "confusion", "tsne"):
        assert {f"{name}.png", f"{name}.svg"} <= figures
        with Image.open(out / "figures" / f"{name}.png") as image:
            assert image.format == "PNG" and image.width > 100
    assert not [p for p in out.rglob(".*")]  # no temporary files left


@pytest.mark.slow
def test_rebuilding_gives_identical_files(built):
    root, first, second = built
    assert [p.relative_to(root / "a") for p in first] == [p.relative_to(root / "b") for p in second]
    for path in first:  # tables, figures (training curves included), Markdown and HTML
        assert path.read_bytes() == (root / "b" / path.relative_to(root / "a")).read_bytes(), path.name


@pytest.mark.slow
def test_claims_in_the_report(built):
    root, _, _ = built
    claims = pd.read_csv(root / "a" / "tables" / "claims.csv").set_index("claim")
    assert claims.at["frozen-beats-scratch", "verdict"] == "supported"
    assert claims.at["same", "verdict"] == "inconclusive"
    text = (root / "a" / "report.md").read_text()
    statement = "frozen better than scratch on auc at fractions 0.1, 0.25, 0.5, 1"
    assert f"| frozen-beats-scratch | by construction | {statement} | SUPPORTED |" in text
    assert "by construction (frozen-beats-scratch): SUPPORTED, because " in text  # the Answer
    assert f". Tested: {statement} (effect " in text
    assert claims.at["frozen-beats-scratch", "text"] == "by construction"
    assert "by construction" in (root / "a" / "tables" / "claims.tex").read_text()


@pytest.mark.slow
def test_markdown_marks_degenerate_and_failed_cells(built):
    root, _, _ = built
    text = (root / "a" / "report.md").read_text()
    assert text.startswith("# synth: synthetic results\n")
    assert "Cells: 100 done, 1 failed, 2 degenerate: 1 with no ranking (†), 1 collapsed at 0.5 (‡)." in text
    assert "No ranking (†): the test AUC is within 0.02 of chance" in text
    kept = ("kept in claims on auc, log_loss, accuracy_op, balanced_accuracy_op, f1_macro_op but left out of claims "
            "on the argmax-based metrics accuracy, balanced_accuracy, f1_macro, top2_accuracy")
    assert "Collapsed at 0.5 (‡): " in text and kept in text
    assert "| scratch | 0.714 [0.659, 0.770] ‡1 |" in text and "| finetune(depth=all) |" in text
    assert "**Degenerate cells († no ranking, ‡ collapsed at 0.5)**" in text
    assert "| finetune(depth=all) | 0.5 | 1 | no ranking † |" in text.replace("| finetune_depthall-f0.5-s1 ", "")
    assert "| scratch | 0.1 | 0 | collapsed at 0.5 ‡ |" in text.replace("| scratch-f0.1-s0 ", "")
    assert "ResourceExhaustedError: OOM |" in text and "Traceback" not in text
    assert "![auc against training-set size" in text and "(figures/learning_curve.png)" in text
    summary = pd.read_csv(root / "a" / "tables" / "summary.csv")
    assert len(summary) == 5 * 4 and summary["degenerate"].sum() == 2
    assert summary["no_ranking"].sum() == 1 and summary["collapsed"].sum() == 1
    cells = pd.read_csv(root / "a" / "tables" / "cells.csv")
    assert len(cells) == 101 and cells["run_id"].is_unique and cells["degenerate"].sum() == 2
    assert cells["no_ranking"].sum() == 1 and cells["collapsed"].sum() == 1
    assert cells.loc[cells["status"] == "failed", "error"].str.startswith("ResourceExhaustedError").all()


@pytest.mark.slow
def test_cells_and_summaries_hold_the_operating_point_metrics(built):
    root, _, _ = built
    cells = pd.read_csv(root / "a" / "tables" / "cells.csv")
    done = cells[cells["status"] == "done"]
    assert {"accuracy_op", "balanced_accuracy_op", "f1_macro_op", "operating_point", "operating_rule"} <= set(cells)
    assert np.allclose(done["accuracy_op"], done["accuracy"] + 0.02) and set(done["operating_rule"]) == {"youden"}
    assert {"resize", "threads", "steps", "steps_per_epoch"} <= set(cells)
    summary = pd.read_csv(root / "a" / "tables" / "summary.csv")
    assert np.allclose(summary["accuracy_op_mean"], summary["accuracy_mean"] + 0.02)
    text = (root / "a" / "report.md").read_text()
    assert "**accuracy_op: mean [95% CI] over seeds, at the operating point chosen on validation**" in text
    assert "maximises Youden's J" in text
    assert "Image resize filter (to 16 px): bilinear. TensorFlow threads per cell: 1." in text


@pytest.mark.slow
def test_training_curves_of_every_arm_and_seed_at_the_largest_fraction(built):
    root, _, _ = built
    history = pd.read_csv(root / "a" / "tables" / "training_curves.csv")
    assert set(history["fraction"]) == {1.0} and len(set(history["arm"])) == 5
    assert (history.groupby("arm")["seed"].nunique() == 5).all() and len(history) == 5 * 5 * 10
    kept = history[history["kept"]]
    assert len(kept) == 25 and set(kept["epoch"]) == {7}
    assert {"loss", "val_auc", "val_loss", "lr_backbone", "lr_head", "lr_output"} <= set(history)
    text = (root / "a" / "report.md").read_text()
    assert "## Training curves" in text and "(figures/training_curves.png)" in text
    assert "validation value val_auc (bottom); dots: the epoch whose weights were kept (best_epoch)" in text


@pytest.mark.slow
def test_without_stored_histories_the_training_curves_say_so(tmp_path):
    protocol = parse_protocol(protocol_text(seeds=3))
    cells = pd.DataFrame(grid_rows({"scratch": 0.0, "frozen": 0.05}, seeds=3))
    document = report_document(protocol, cells, lambda run_id: None, tmp_path / "none.npz")
    curves = next(section for section in document.sections if section.title == "Training curves")
    assert curves.paragraphs == ["No training curves: no stored cell has its per-epoch history (history_json; cells "
                                 "stored before it was recorded lack it)."] and not curves.items
    overview = _overview(document)
    assert "Image resize filter (to 16 px): not stored. TensorFlow threads per cell: not stored." in overview
    assert "training_curves" not in {table.name for table in document.tables()}
    assert not any(table.name.endswith("_op") for table in document.tables())


@pytest.mark.slow
def test_a_store_partly_with_histories_draws_the_cells_that_have_one(tmp_path):
    protocol = parse_protocol(protocol_text(seeds=3))
    rows = grid_rows({"scratch": 0.0, "frozen": 0.05}, seeds=3)
    rows = [with_history(row) if row["arm"] == "frozen" or row["fraction"] < 1 else row for row in rows]
    document = report_document(protocol, pd.DataFrame(rows), lambda run_id: None, tmp_path / "none.npz")
    history = next(table.data for table in document.tables() if table.name == "training_curves")
    assert history.groupby("arm")["fraction"].max().to_dict() == {"frozen": 1.0, "scratch": 0.5}
    assert "training_curves" in {figure.name for figure in document.figures()}
    resize = f"Image resize filter (to 16 px): bilinear ({len(rows) - 3} cells), not stored (3 cells)."
    assert any(paragraph.startswith(resize) for paragraph in _overview(document))


def test_a_cell_both_without_ranking_and_collapsed_is_counted_in_each_kind(tmp_path):
    protocol = parse_protocol(protocol_text(seeds=3))
    rows = grid_rows({"scratch": 0.0, "frozen": 0.05}, seeds=3)
    rows[0] |= {"auc": 0.5, "max_predicted_share": 1.0}
    rows[1] |= {"max_predicted_share": 0.97}
    document = report_document(protocol, pd.DataFrame(rows), lambda run_id: None, tmp_path / "none.npz")
    counts = "Cells: 24 done, 0 failed, 2 degenerate: 1 with no ranking (†), 2 collapsed at 0.5 (‡), 1 of them both"
    assert f"{counts}." in _overview(document)
    listed = next(table.display for table in document.tables() if table.name == "degenerate_cells")
    assert list(listed["kind"]) == ["no ranking †, collapsed at 0.5 ‡", "collapsed at 0.5 ‡"]


def test_flags_count_no_ranking_and_collapsed_cells_apart():
    assert tables.flag(1, 5) == " †1/5" and tables.flag(1, 5, 2) == " †1/5 ‡2" and tables.flag(0, 5, 1) == " ‡1"
    assert tables.flag(0, 5, 0) == "" and tables.flag(2) == " †2"
    assert tables.marks(True, True) == "†‡" and tables.marks(False, False) == ""


def test_training_curves_of_many_arms_fill_a_grid():
    history = pd.DataFrame([
        {"arm": f"finetune(depth={depth})", "fraction": 1.0, "seed": seed, "epoch": epoch, "loss": 1 / epoch,
         "val_auc": 0.7 + 0.01 * epoch, "kept": epoch == 3}
        for depth in range(8) for seed in range(3) for epoch in range(1, 6)])
    figure = figures.training_curves(history, "val_auc")
    assert len(figure.axes) == 8 * 2 and tuple(figure.get_size_inches()) == pytest.approx((4 * 3.4, 2 * 3.9 + 0.5))
    png, _ = figures.encode(figure)
    with Image.open(io.BytesIO(png)) as image:
        assert image.width > 1000


@pytest.mark.slow
def test_tables_hold_the_tests(built):
    root, _, _ = built
    pairwise = pd.read_csv(root / "a" / "tables" / "pairwise.csv")
    assert len(pairwise) == 4 * 10  # 4 fractions x 10 pairs of 5 arms
    assert (pairwise["t_p_holm"] >= pairwise["t_p"] - 1e-12).all()
    assert ((pairwise["ci2_low"] <= pairwise["mean_diff"]) & (pairwise["mean_diff"] <= pairwise["ci2_high"])).all()
    assert pairwise["p_a_beats_b"].between(0, 1).all()
    text = (root / "a" / "report.md").read_text()
    assert "| mean a - b [95% CI] | seeds and test images 95% CI | P(A > B) |" in text
    assert "P(A > B), the probability that a beats b on a new seed and a new draw of test images" in text
    mcnemar = pd.read_csv(root / "a" / "tables" / "mcnemar.csv")
    assert len(mcnemar) == 6 * 4 and (mcnemar["n_images"] == N_TEST).all()  # 4 strategies: 6 pairs
    fits = pd.read_csv(root / "a" / "tables" / "curve_fits.csv")
    assert len(fits) == 5 and fits["note"].notna().all()
    topk = pd.read_csv(root / "a" / "tables" / "topk.csv")
    assert "top-2 accuracy" not in topk.columns  # two classes: top-2 is trivially 1


def test_tsne_absent_is_said_plainly(tmp_path):
    store = write_store(tmp_path / "results", grid_rows({"scratch": 0.0, "frozen": 0.05}, seeds=2))
    build_report(load_protocol(write_protocol(tmp_path)), store, tmp_path / "out", every_stored_cell(store))
    text = (tmp_path / "out" / "report.md").read_text()
    assert "No t-SNE map: the figure is absent because no backbone features are stored at" in text
    assert "cnn-16px.npz" in text and not (tmp_path / "out" / "figures" / "tsne.png").exists()
    assert "not enough seeds" not in text and "| 0.1 | 2 | 2 |" in text  # Friedman: only two arms


def test_stale_figures_of_an_earlier_build_are_removed(tmp_path):
    store = write_store(tmp_path / "results", grid_rows({"scratch": 0.0, "frozen": 0.05}, seeds=2))
    (tmp_path / "out" / "figures").mkdir(parents=True)
    (tmp_path / "out" / "figures" / "tsne.png").write_bytes(b"old")
    build_report(load_protocol(write_protocol(tmp_path)), store, tmp_path / "out", every_stored_cell(store))
    assert not (tmp_path / "out" / "figures" / "tsne.png").exists()


@pytest.mark.parametrize("rows", [
    [],
    [cell_row("scratch", 0.1, 0, 0.5, status="failed", error="ValueError: bad")],
])
def test_empty_or_all_failed_store(tmp_path, rows):
    store = write_store(tmp_path / "results", rows)
    paths = build_report(load_protocol(write_protocol(tmp_path, extra=TARGET_AND_CLAIMS)), store, tmp_path / "out",
                         every_stored_cell(store))
    text = (tmp_path / "out" / "report.md").read_text()
    assert "No finished cells" in text
    assert all(path.exists() for path in paths)


@pytest.mark.slow
def test_report_command_does_not_import_tensorflow(tmp_path):
    protocol = write_protocol(tmp_path, extra=TARGET_AND_CLAIMS)
    write_store(tmp_path / "results", as_planned(grid_rows({"scratch": 0.0, "frozen": 0.05}, seeds=3), protocol))
    code = (
        "import sys; from study.cli import main\n"
        f"code = main(['report', {str(protocol)!r}, '--results-dir', {str(tmp_path / 'results')!r}, "
        f"'--report-dir', {str(tmp_path / 'report')!r}])\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras'))\n"
        "assert not loaded and not code, (code, loaded[:5])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "report" / "synth" / "index.html").is_file()


def test_without_stored_predictions_the_pairwise_table_has_no_two_level_columns(tmp_path):
    protocol = parse_protocol(protocol_text(seeds=3))
    cells = pd.DataFrame(grid_rows({"scratch": 0.0, "frozen": 0.05}, seeds=3))
    document = report_document(protocol, cells, lambda run_id: None, tmp_path / "none.npz")
    pairwise = next(table for table in document.tables() if table.name == "pairwise")
    assert pairwise.data[["ci2_low", "ci2_high", "p_a_beats_b"]].isna().all().all()
    assert set(pairwise.display["P(A > B)"]) == {"-"} and set(pairwise.display["seeds and test images 95% CI"]) == {"-"}


def test_a_single_arm_protocol_gets_a_report_without_pairs(tmp_path):
    protocol = parse_protocol(protocol_text(seeds=3))
    cells = pd.DataFrame(grid_rows({"frozen": 0.0}, seeds=3))
    document = report_document(protocol, cells, lambda run_id: None, tmp_path / "none.npz")
    pairwise = next(section for section in document.sections if section.title == "Pairwise comparisons")
    assert pairwise.paragraphs == ["One arm only: there are no pairs of arms to compare."] and not pairwise.items


def test_the_overview_names_the_medmnist_file_the_cells_read(tmp_path):
    protocol = parse_protocol(protocol_text(seeds=3).replace(
        "{source: synthetic, classes: 2, per_class: 30, size: 16}", "{source: medmnist, name: breastmnist, size: 16}"))
    rows = grid_rows({"scratch": 0.0, "frozen": 0.05}, seeds=3)
    old = report_document(protocol, pd.DataFrame(rows), lambda run_id: None, tmp_path / "none.npz")
    assert _overview(old)[0].startswith("Dataset: medmnist breastmnist at 16 px. Backbone: cnn")
    rows = [row | {"source_file": "breastmnist.npz (28 px)"} for row in rows]
    document = report_document(protocol, pd.DataFrame(rows), lambda run_id: None, tmp_path / "none.npz")
    assert _overview(document)[0].startswith(
        "Dataset: medmnist breastmnist at 16 px, read from breastmnist.npz (28 px). Backbone: cnn")


def test_intervals_of_bounded_metrics_stay_in_their_range(tmp_path):
    rows = grid_rows({"scratch": 0.0, "frozen": 0.05}, seeds=2)
    for row in rows:  # two seeds far apart: the t interval (t = 12.7 with 1 degree of freedom) spans several units
        auc = 0.1 if row["seed"] == 0 else 0.99
        row |= {"auc": auc, "accuracy": auc - 0.05 if auc > 0.5 else 0.05, "monitor_value": auc}
    protocol = parse_protocol(protocol_text(seeds=2, extra="report: {metric: auc, target: 0.85}\n"))
    document = report_document(protocol, pd.DataFrame(rows), lambda run_id: None, tmp_path / "none.npz")
    shown = {table.name: table.display for table in document.tables()}
    intervals = [(float(low), float(high))
                 for name in ("summary_auc", "summary_accuracy", "topk", "answer")
                 for text in shown[name].to_numpy().ravel()
                 for low, high in re.findall(r"\[(-?\d+\.\d+), (-?\d+\.\d+)\]", str(text))]
    assert len(intervals) >= 3 * 8 and all(0 <= low <= high <= 1 for low, high in intervals)
    summary = next(table.data for table in document.tables() if table.name == "summary")
    for metric in ("auc", "accuracy"):
        assert summary[f"{metric}_ci_low"].min() == 0 and summary[f"{metric}_ci_high"].max() == 1
    curves = figures.learning_curves(summary.assign(no_ranking=0, collapsed=0), pd.DataFrame(), "auc", 0.85)
    assert 0 <= curves.axes[0].get_ylim()[0] and curves.axes[0].get_ylim()[1] <= 1


def _contrast(rgba_a, rgba_b) -> float:
    """The WCAG contrast ratio of two colours."""
    def luminance(rgba):
        linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgba[:3]]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    high, low = sorted((luminance(rgba_a), luminance(rgba_b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def _annotation_contrasts(figure) -> list[float]:
    """The contrast of every number written on a heatmap cell against that cell's colour."""
    from matplotlib.colors import to_rgba

    contrasts = []
    for axes in figure.axes:
        for image in axes.images:
            values = np.ma.getdata(image.get_array())
            for text in axes.texts:
                j, i = (int(round(v)) for v in text.get_position())
                if 0 <= i < values.shape[0] and 0 <= j < values.shape[1] and not np.isnan(values[i, j]):
                    contrasts.append(_contrast(to_rgba(text.get_color()), image.cmap(image.norm(values[i, j]))))
    return contrasts


def test_numbers_on_heatmap_cells_are_readable():
    arms = ["scratch", "frozen", "finetune(depth=1)", "finetune(depth=all)"]
    pairwise = pd.DataFrame([{"fraction": 1.0, "arm_a": a, "arm_b": b, "mean_diff": d, "t_p_holm": 0.01}
                             for (a, b), d in zip([(a, b) for i, a in enumerate(arms) for b in arms[i + 1:]],
                                                  [-0.3, -0.28, -0.02, 0.01, 0.25, 0.3])])
    summary = pd.DataFrame([{"arm": a, "fraction": f, "n_train": int(100 * f), "auc_mean": 0.5 + 0.1 * k + 0.2 * f,
                             "no_ranking": 0, "collapsed": 0} for k, a in enumerate(arms) for f in (0.1, 0.5, 1.0)])
    drawn = [figures.significance_matrices(pairwise, "auc", 0.05),
             figures.heatmap(summary, [(a, a) for a in arms], "auc", "depth"),
             figures.confusion_matrices([("a", np.array([[50, 0], [3, 47]])), ("b", np.array([[30, 20], [25, 25]]))],
                                        ["benign", "malignant"])]
    for figure in drawn:
        contrasts = _annotation_contrasts(figure)
        assert contrasts and min(contrasts) >= 4.5, f"unreadable number on a cell: contrast {min(contrasts):.2f}"
    assert figures.text_colour((0.4, 0.0, 0.1, 1.0)) == "white" and figures.text_colour((0.97, 0.9, 0.85)) == "black"


def test_tsne_maps_at_most_max_images_of_a_large_training_split():
    from study.analysis.embedding import MAX_IMAGES, _sample

    small = np.arange(0, 2 * MAX_IMAGES, 2)
    assert np.array_equal(_sample(small), small)
    large = np.arange(3 * MAX_IMAGES) * 3
    drawn = _sample(large)
    assert len(drawn) == MAX_IMAGES and len(set(drawn)) == MAX_IMAGES and set(drawn) <= set(large)
    assert np.array_equal(drawn, np.sort(drawn)) and np.array_equal(drawn, _sample(large))


def test_the_learning_curve_title_says_what_it_draws():
    rows = grid_rows({"scratch": 0.0, "frozen": 0.1}, fractions=(0.5, 1.0), seeds=3)
    summary = summarize(flagged(pd.DataFrame(rows))).assign(no_ranking=0, collapsed=0)
    unfitted = figures.learning_curves(summary, fit_curves(summary, "auc", 0.85), "auc", 0.85)
    assert "no curve fitted" in unfitted.axes[0].get_title()
    rows = grid_rows({"scratch": 0.0, "frozen": 0.1}, seeds=3)
    summary = summarize(flagged(pd.DataFrame(rows))).assign(no_ranking=0, collapsed=0)
    fitted = figures.learning_curves(summary, fit_curves(summary, "auc", 0.85), "auc", 0.85)
    assert "dashed: fitted" in fitted.axes[0].get_title()


def test_svg_clip_paths_are_numbered_so_that_a_rebuild_gives_the_same_file():
    from study.report.figures import _numbered_clip_paths

    def drawn(first: str, second: str) -> bytes:  # two figures' SVG, as matplotlib names clips by object address
        return (f'<defs><clipPath id="{first}"><rect/></clipPath><clipPath id="{second}"><rect/></clipPath></defs>'
                f'<path clip-path="url(#{second})"/><path clip-path="url(#{first})"/>').encode()

    one, other = _numbered_clip_paths(drawn("pc6115429f3", "pe998b8f58f")), _numbered_clip_paths(drawn("p1", "p2"))
    assert one == other
    assert b'<clipPath id="clip0">' in one and b'clip-path="url(#clip1)"' in one
