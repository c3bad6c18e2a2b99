"""The answer section: first in the report, the recommended arm chosen by validation, its test against the
runner-up, the training size for the target, the claims in a sentence each, and the warnings."""

from __future__ import annotations

import pandas as pd
import pytest
from helpers.synthetic import POOL, cell_row, grid_rows, protocol_text, write_store

from study.analysis.stats import holm
from study.protocol.schema import parse_protocol
from study.report import answer
from study.report.build import report_document

CLAIMS = """\
report: {metric: auc, target: 0.85}
claims:
  - {id: frozen-beats-scratch, a: frozen, b: scratch}
"""


def _document(tmp_path, rows, extra=CLAIMS, split=None, official_split=False, seeds=5):
    store = write_store(tmp_path / "results", rows)
    protocol = parse_protocol(protocol_text(extra=extra, seeds=seeds), "synth.yaml")
    return report_document(protocol, store.cells(), store.predictions, tmp_path / "none.npz",
                           official_split=official_split, split=split)


def _answer_table(document) -> pd.DataFrame:
    return next(table.data for table in document.tables() if table.name == "answer")


def _texts(document) -> list[str]:
    section = document.sections[0]
    return section.paragraphs + [item for item in section.items if isinstance(item, str)]


def _split(train: int) -> pd.DataFrame:
    """A fixed stored split with `train` training images and no groups, both classes on each side."""
    return pd.DataFrame({"seed": pd.array([None] * (train + 10), dtype="Int64"),
                         "image_id": [f"i{k}" for k in range(train + 10)], "label": [k % 2 for k in range(train + 10)],
                         "group": pd.array([None] * (train + 10), dtype=object),
                         "split": ["train"] * train + ["test"] * 10})


@pytest.mark.slow
def test_answer_comes_first_and_picks_by_validation_not_test(tmp_path):
    rows = grid_rows({"scratch": 0.0, "frozen": 0.1}, seeds=5, noise=0.005)
    for row in rows:  # validation prefers scratch everywhere, although frozen is better on test
        row["monitor_value"] = 0.99 if row["arm"] == "scratch" else 0.5
    document = _document(tmp_path, rows)
    assert document.sections[0].title == "Answer"
    table = _answer_table(document)
    assert list(table["fraction"]) == [0.1, 0.25, 0.5, 1.0]
    assert set(table["arm"]) == {"scratch"} and set(table["runner_up"]) == {"frozen"}
    assert list(table["n_train"]) == [round(POOL * f) for f in (0.1, 0.25, 0.5, 1.0)]
    assert all(verdict.startswith("behind frozen on test (p=") for verdict in table["verdict"])


@pytest.mark.slow
def test_recommended_arm_beats_or_ties_its_runner_up(tmp_path):
    rows = grid_rows({"scratch": 0.0, "frozen": 0.1, "finetune(depth=1)": 0.1001}, seeds=5, noise=0.005)
    for row in rows:
        row["monitor_value"] = {"frozen": 0.9, "finetune(depth=1)": 0.8, "scratch": 0.7}[row["arm"]]
    table = _answer_table(_document(tmp_path, rows))
    assert set(table["arm"]) == {"frozen"}
    assert all(v.startswith("not distinguishable from finetune(depth=1) (p=") for v in table["verdict"])
    for row in rows:
        row["monitor_value"] = {"frozen": 0.9, "finetune(depth=1)": 0.7, "scratch": 0.8}[row["arm"]]
    table = _answer_table(_document(tmp_path / "again", rows))
    assert all(v.startswith("beats scratch (p=") for v in table["verdict"])
    mean = table["mean"].iloc[-1]
    assert table["ci_low"].iloc[-1] < mean < table["ci_high"].iloc[-1]


@pytest.mark.slow
def test_size_needed_measured_or_extrapolated_with_interval(tmp_path):
    rows = grid_rows({"scratch": 0.0, "frozen": 0.1}, seeds=5, noise=0.005)
    sizes = next(t.data for t in _document(tmp_path, rows).tables() if t.name == "answer_sizes").set_index("arm")
    frozen_means = pd.DataFrame(r for r in rows if r["arm"] == "frozen").groupby("n_train")["auc"].mean()
    assert sizes.at["frozen", "how"] == "measured"
    assert sizes.at["frozen", "n_needed"] == frozen_means[frozen_means >= 0.85].index.min()
    assert sizes.at["scratch", "how"].startswith("extrapolated")
    low, high = sizes.at["scratch", "ci_low"], sizes.at["scratch", "ci_high"]
    assert low <= sizes.at["scratch", "n_needed"] <= high


@pytest.mark.slow
def test_the_answer_and_the_curve_table_give_one_size_when_too_few_fractions_for_a_fit(tmp_path):
    rows = grid_rows({"scratch": 0.0, "frozen": 0.1}, fractions=(0.5, 1.0), seeds=3, noise=0.005)
    store = write_store(tmp_path / "results", rows)
    protocol = parse_protocol(protocol_text(extra=CLAIMS, fractions=(0.5, 1.0), seeds=3), "synth.yaml")
    document = report_document(protocol, store.cells(), store.predictions, tmp_path / "none.npz")
    tables = {table.name: table for table in document.tables()}
    answered = tables["answer_sizes"].display.set_index("arm").iloc[:, 0]
    assert answered["frozen"].startswith("reached at n = ")  # measured: frozen's mean passes 0.85 at fraction 1
    fits = tables["curve_fits"].display.set_index("arm")
    assert fits.at["frozen", "in the Answer"] == answered["frozen"]  # the same words in both places
    assert fits.at["frozen", "fit note"].startswith("not reached: not fitted: 2 training sizes")
    learning = next(section for section in document.sections if section.title == "Learning curves")
    assert "only where no measured size does is the fitted curve's size used" in learning.paragraphs[0]
    figure = next(item for item in document.sections[0].items if getattr(item, "name", "") == "learning_curve")
    assert "no curve fitted" in figure.caption


def test_size_interval_needs_three_seeds():
    cells = pd.DataFrame([cell_row("scratch", f, s, 0.7 + 0.1 * f) for f in (0.1, 0.25, 0.5, 1.0) for s in (0, 1)])
    low, high, note = answer.size_interval(cells, "auc", 0.85)
    assert pd.isna(low) and pd.isna(high) and note.startswith("no interval: 2 seed(s)")


@pytest.mark.slow
def test_claims_in_one_sentence_each(tmp_path):
    rows = grid_rows({"scratch": 0.0, "frozen": 0.1}, seeds=5, noise=0.005)
    texts = _texts(_document(tmp_path, rows))
    claim = [text for text in texts if text.startswith("frozen-beats-scratch: ")]
    assert len(claim) == 1 and claim[0].startswith("frozen-beats-scratch: SUPPORTED, because ")
    assert ". Tested: frozen better than" in claim[0]
    assert "(effect +0.1" in claim[0] and "over 5 seed(s), p " in claim[0]
    same = [text for text in texts if text.startswith("The runner-up test and claim frozen-beats-scratch compare")]
    assert len(same) == 1 and "at fraction(s) 0.1, 0.25, 0.5, 1:" in same[0]  # frozen picked, scratch runner-up


def test_warnings_degenerate_groups_seeds_and_shares(tmp_path):
    rows = grid_rows({"scratch": 0.0, "frozen": 0.1}, seeds=2, noise=0.005)
    rows[0]["max_predicted_share"] = 1.0
    texts = _texts(_document(tmp_path, rows, split=_split(POOL // 2), seeds=2))
    warnings = [text for text in texts if text.startswith("Warning: ")]
    assert any("1 of 16 cells are degenerate (0 with no ranking, 1 collapsed" in w for w in warnings)
    assert any("images of one patient may sit on both sides" in w for w in warnings)
    assert any("8 of 8 arm-fraction results rest on fewer than 3 seeds (fewest: 2)" in w for w in warnings)
    assert any("0.1 gave 0.2" in w and "1 gave 2" in w for w in warnings)


@pytest.mark.slow
def test_no_warnings_for_a_clean_official_run(tmp_path):
    rows = grid_rows({"scratch": 0.0, "frozen": 0.1}, seeds=5, noise=0.005)
    texts = _texts(_document(tmp_path, rows, split=_split(POOL), official_split=True))
    assert not [text for text in texts if text.startswith("Warning: ")]


@pytest.mark.slow
@pytest.mark.parametrize("groups, warned", [(None, True), ("p1", False)])
def test_group_column_silences_the_patient_warning(tmp_path, groups, warned):
    rows = grid_rows({"scratch": 0.0, "frozen": 0.1}, seeds=5, noise=0.005)
    split = _split(POOL).assign(group=groups)
    texts = _texts(_document(tmp_path, rows, split=split))
    assert any("one patient" in text for text in texts) == warned


def test_far_interval_bounds_are_shown_as_such():
    sizes = pd.DataFrame([{"arm": "scratch", "target": 0.85, "n_needed": 900.0, "how": "extrapolated: 1.6 x ...",
                           "ci_low": 600.0, "ci_high": 8_000_000.0, "interval_note": "bootstrap", "n_largest": 546}])
    text = answer.size_display(sizes, "auc").iloc[0, 1]
    assert text.startswith("about n = 900 (extrapolated from the fitted curve: 1.6 x ...)")
    assert "[95% CI 600 to beyond 10 x the largest size measured; bootstrap]" in text


@pytest.mark.slow
def test_the_runner_up_test_is_one_comparison_per_fraction_holm_adjusted_over_the_fractions(tmp_path):
    """Validation picks the pair before any test number is read, so the family is the fractions, not every pair."""
    effects = {"scratch": 0.0, "frozen": 0.02, "finetune(depth=1)": 0.0, "finetune(depth=all)": 0.0}
    rows = grid_rows(effects, seeds=5, noise=0.01, seed=3)
    for row in rows:
        row["monitor_value"] = {"frozen": 0.9, "scratch": 0.8}.get(row["arm"], 0.5)
    document = _document(tmp_path, rows)
    table = _answer_table(document)
    pairwise = next(t.data for t in document.tables() if t.name == "pairwise")
    pair = pairwise[(pairwise["arm_a"].isin(["frozen", "scratch"])) & (pairwise["arm_b"].isin(["frozen", "scratch"]))]
    raw = pair.set_index("fraction").loc[table["fraction"], "t_p"].to_numpy()
    assert list(table["runner_up"]) == ["scratch"] * 4
    assert table["p"].to_numpy() == pytest.approx(holm(raw))
    every_pair = pair.set_index("fraction").loc[table["fraction"], "t_p_holm"].to_numpy()
    assert (table["p"].to_numpy() < every_pair).any(), "the family of all six pairs would be stricter"


def _overview_split(document) -> str:
    overview = next(section for section in document.sections if section.title == "Overview")
    return next(paragraph for paragraph in overview.paragraphs if paragraph.startswith("Split: "))


@pytest.mark.slow
def test_the_split_sentence_names_the_groups_per_side_or_warns_of_leakage(tmp_path):
    rows = grid_rows({"scratch": 0.0, "frozen": 0.1}, seeds=3, noise=0.005)
    split = _split(POOL)
    split["group"] = [f"video{index // 3}" for index in range(len(split))]  # three frames per video: one spans sides
    grouped = _overview_split(_document(tmp_path / "grouped", rows, split=split, seeds=3))
    train_groups = split.loc[split["split"] == "train", "group"].nunique()
    test_groups = split.loc[split["split"] == "test", "group"].nunique()
    shared = len(set(split.loc[split["split"] == "train", "group"]) & set(split.loc[split["split"] == "test", "group"]))
    assert (f"grouped: {split['group'].nunique()} groups, {train_groups} in train, 0 in val, {test_groups} in test"
            in grouped)
    assert shared == 1 and "1 group(s) sit on more than one side" in grouped
    plain = _overview_split(_document(tmp_path / "plain", rows, split=_split(POOL), seeds=3))
    assert "no group column, so images of one patient may sit on both sides" in plain
