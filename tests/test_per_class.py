"""Class names travel with the data into every view of the classes; per-class sensitivity, specificity, PPV and NPV
at the validation-chosen operating point with their intervals; ROC curves of the arms the Answer compares."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from helpers.commands import study_command
from helpers.protocols import protocol_file_text
from helpers.synthetic import TARGET_AND_CLAIMS, every_stored_cell, grid_rows, predictions_for, write_protocol
from scipy import stats
from sklearn.metrics import roc_auc_score, roc_curve

from study.analysis import roc
from study.analysis.per_class import (
    arm_rows,
    class_counts,
    rates,
    training_prior,
    two_level_rates,
    wilson,
)
from study.analysis.roc import roc_points
from study.data.dataset import Dataset
from study.protocol.schema import load_protocol
from study.report.build import build_report, report_document
from study.runner.events import RunEvents
from study.runner.inputs import open_study, split_rows, store_inputs, study_data
from study.store.results import ResultStore
from study.training.subsets import cell_indices

NAMES = ["benign", "malignant"]


def prediction_frame(labels, probabilities) -> pd.DataFrame:
    probabilities = np.asarray(probabilities, dtype=float)
    return pd.DataFrame({"run_id": "cell", "image_id": [f"img{i}" for i in range(len(labels))], "label": labels,
                         "predicted": probabilities.argmax(axis=1)}
                        | {f"prob_{k}": probabilities[:, k] for k in range(probabilities.shape[1])})


def cell(seed: int = 0, rule: str | None = "youden", point: float | None = 0.6, fraction: float = 1.0) -> pd.Series:
    return pd.Series({"run_id": f"s{seed}", "seed": seed, "fraction": fraction, "operating_rule": rule,
                      "operating_point": point})


# --------------------------------------------------------------------------------------- rates at the point
# ten test images, five of class 1; at the threshold 0.6 on P(class 1) (an image exactly at it counts as class 1)
TEN_LABELS = np.array([1, 1, 1, 1, 1, 0, 0, 0, 0, 0])
TEN_SCORES = np.array([0.9, 0.8, 0.6, 0.55, 0.3, 0.7, 0.5, 0.2, 0.1, 0.05])  # predicted 1: the first three, the 6th


def test_counts_rates_and_wilson_interval_of_ten_known_images():
    frame = prediction_frame(TEN_LABELS, np.c_[1 - TEN_SCORES, TEN_SCORES])
    [row] = arm_rows(pd.DataFrame([cell()]), {"s0": frame}.get, split=None)
    assert row["class"] == 1 and row["seeds"] == 1 and row["rule"] == "youden"  # two classes: class 1 alone
    assert (row["tp"], row["fn"], row["fp"], row["tn"]) == (3, 2, 1, 4)
    expected = {"sensitivity": 3 / 5, "specificity": 4 / 5, "ppv": 3 / 4, "npv": 4 / 6}
    for rate, value in expected.items():
        assert row[f"{rate}_mean"] == pytest.approx(value) and row[f"{rate}_pooled"] == pytest.approx(value)
    # Wilson's score interval by its formula: (p + z^2/2n -+ z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n)
    z, p, n = stats.norm.ppf(0.975), 3 / 5, 5
    centre, half = p + z**2 / (2 * n), z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    low, high = (centre - half) / (1 + z**2 / n), (centre + half) / (1 + z**2 / n)
    assert (row["sensitivity_wilson_low"], row["sensitivity_wilson_high"]) == pytest.approx((low, high))
    assert (low, high) == pytest.approx((0.2307, 0.8824), abs=5e-5)


def test_wilson_interval_matches_newcombes_worked_example():
    # Newcombe (1998), Statistics in Medicine 17:857, Table I, example (c): 81/263 -> 0.2553 to 0.3662
    assert wilson(81, 263) == pytest.approx((0.2553, 0.3662), abs=5e-5)
    assert all(math.isnan(v) for v in wilson(0, 0))


def test_each_class_is_counted_against_the_rest_and_undefined_rates_are_empty():
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    predicted = np.array([0, 0, 1, 1, 0, 1, 1, 1])  # class 2 never predicted
    counts = class_counts(labels, predicted, 3)
    np.testing.assert_array_equal(counts, [[2, 1, 1, 4], [1, 1, 4, 2], [0, 3, 0, 5]])  # tp, fn, fp, tn
    found = rates(counts)
    np.testing.assert_allclose(found[0], [2 / 3, 4 / 5, 2 / 3, 4 / 5])
    np.testing.assert_allclose(found[2, [0, 1, 3]], [0, 1, 5 / 8])
    assert math.isnan(found[2, 2])  # PPV of a class never predicted


def split_of(labels: list[int]) -> pd.DataFrame:
    """A stored fixed split: the given training labels, then two validation and two test images."""
    n = len(labels)
    return pd.DataFrame({"seed": pd.array([None] * (n + 4), dtype="Int64"), "image_id": [f"i{i}" for i in range(n + 4)],
                         "label": labels + [0, 1, 0, 1], "group": pd.array([None] * (n + 4), dtype=object),
                         "split": ["train"] * n + ["val", "val", "test", "test"]})


def test_the_class_prior_rule_is_applied_with_the_training_subsets_shares():
    split = split_of([0, 0, 0, 0, 1, 1, 2, 2])  # the whole training split: shares 1/2, 1/4, 1/4
    np.testing.assert_allclose(training_prior(split, seed=3, fraction=1.0, n_classes=3), [0.5, 0.25, 0.25])
    probabilities = np.array([[0.40, 0.35, 0.25], [0.30, 0.30, 0.40], [0.45, 0.20, 0.35]])
    # p_c * prior_c^-1 (t = -1): [0.8, 1.4, 1.0], [0.6, 1.2, 1.6], [0.9, 0.8, 1.4] -> classes 1, 2, 2
    frame = prediction_frame([1, 2, 0], probabilities)
    rows = arm_rows(pd.DataFrame([cell(rule="prior", point=-1.0)]), {"s0": frame}.get, split)
    assert [(row["tp"], row["fn"], row["fp"], row["tn"]) for row in rows] == [(0, 1, 0, 2), (1, 0, 0, 2),
                                                                              (1, 0, 1, 1)]
    assert arm_rows(pd.DataFrame([cell(rule="prior", point=-1.0)]), {"s0": frame}.get, split=None) == []
    older = arm_rows(pd.DataFrame([cell(rule=None, point=None)]), {"s0": frame}.get, split=None)  # argmax
    assert older[0]["rule"] == "argmax" and [row["tp"] for row in older] == [1, 0, 1]  # predicted 0, 2, 0


@pytest.mark.parametrize("grouped", [False, True])
def test_the_training_prior_is_the_share_of_the_subset_the_worker_draws(grouped):
    rng = np.random.default_rng(2)
    labels = np.repeat(np.arange(3), [70, 20, 10]).astype(np.int64)  # imbalanced, so the subset's shares matter
    dataset = Dataset(images=np.zeros((100, 2, 2, 1), np.uint8), labels=labels, class_names=["a", "b", "c"],
                      ids=np.array([f"i{i}" for i in range(100)]), fingerprint="f",
                      split=rng.choice(["train", "train", "val", "test"], 100),
                      groups=np.array([f"p{i // 3}" for i in range(100)]) if grouped else None)
    split = split_rows(dataset, {None: dataset.split})  # as a run stores it
    for fraction in (0.1, 0.35, 1.0):
        for seed in (0, 5):
            train = labels[cell_indices(dataset, fraction, seed)["train"]]
            np.testing.assert_allclose(training_prior(split, seed, fraction, 3), np.bincount(train, minlength=3)
                                       / len(train), rtol=0, atol=1e-15)


def straightforward_two_level(seeds, n_classes: int, resamples: int) -> tuple[np.ndarray, np.ndarray]:
    """The two-level bootstrap written out with the same draws (seed 0): each resample's images listed by index."""
    rng = np.random.default_rng(0)
    drawn = rng.integers(0, len(seeds), size=(resamples, len(seeds)))
    per_slot = np.zeros((resamples, len(seeds), n_classes, 4))
    for position, (labels, predicted) in enumerate(seeds):
        slots = drawn == position
        images = rng.integers(0, len(labels), size=(int(slots.sum()), len(labels)))
        per_slot[slots] = [rates(class_counts(labels[rows], predicted[rows], n_classes)) for rows in images]
    with warnings.catch_warnings():  # a rate no drawn seed defines
        warnings.simplefilter("ignore", RuntimeWarning)
        return tuple(np.nanpercentile(np.nanmean(per_slot, axis=1), [2.5, 97.5], axis=0))


@pytest.mark.parametrize("n_classes", [2, 3])
def test_two_level_interval_equals_the_straightforward_computation(n_classes):
    rng = np.random.default_rng(n_classes)
    seeds = [(np.arange(15) % n_classes, rng.integers(0, n_classes, 15)) for _ in range(3)]
    low, high = two_level_rates(seeds, n_classes, resamples=40)
    expected_low, expected_high = straightforward_two_level(seeds, n_classes, 40)
    np.testing.assert_allclose(low, expected_low, rtol=0, atol=1e-12)
    np.testing.assert_allclose(high, expected_high, rtol=0, atol=1e-12)


def test_seed_and_image_noise_widen_the_interval_around_the_mean():
    labels = np.arange(40) % 2
    perfect, half = labels.copy(), np.where(np.arange(40) % 4 < 2, labels, 1 - labels)
    low, high = two_level_rates([(labels, perfect), (labels, perfect)], 2)
    assert (low == 1).all() and (high == 1).all()  # nothing varies: a zero-width interval
    low, high = two_level_rates([(labels, perfect), (labels, half)], 2)
    assert (low[1, 0] < 0.75 < high[1, 0]) and high[1, 0] == 1.0  # sensitivity of class 1: 1.0 and 0.5 per seed


# ------------------------------------------------------------------------------------------------ ROC curves
def test_roc_points_are_sklearns_curves_of_each_seed_and_of_the_seeds_pooled():
    rng = np.random.default_rng(0)
    scores = {seed: np.round(rng.random(30), 1) for seed in (4, 7)}  # ties
    frames = {seed: prediction_frame(np.arange(30) % 2, np.c_[1 - s, s]) for seed, s in scores.items()}
    points = roc_points(frames)
    pooled = points[points["curve"] == "pooled"]
    assert pooled["seed"].isna().all()
    for drawn, frame in ((pooled, pd.concat(frames.values())), *(
            (points[points["seed"].eq(seed).fillna(False)], frames[seed]) for seed in frames)):
        fpr, tpr, threshold = roc_curve(frame["label"], frame["prob_1"])
        np.testing.assert_array_equal(drawn["fpr"], fpr)
        np.testing.assert_array_equal(drawn["tpr"], tpr)
        np.testing.assert_array_equal(drawn["threshold"], threshold)


def test_a_curve_of_many_images_keeps_a_few_of_its_points_and_its_area():
    rng = np.random.default_rng(3)
    labels = np.arange(20000) % 2
    scores = rng.normal(labels, 1.0)
    frame = prediction_frame(labels, np.c_[-scores, scores])
    pooled = roc_points({0: frame}).query("curve == 'pooled'")
    fpr, tpr, threshold = roc_curve(labels, scores)
    assert len(pooled) <= 2 * (2 * roc.LEVELS + 1) < len(fpr) / 5
    assert set(pooled["threshold"]) <= set(threshold) and pooled["threshold"].is_monotonic_decreasing  # its own points
    assert pooled[["fpr", "tpr"]].iloc[[0, -1]].to_numpy().tolist() == [[0, 0], [1, 1]]
    area = np.trapezoid(pooled["tpr"], pooled["fpr"])
    assert area == pytest.approx(roc_auc_score(labels, scores), abs=1 / roc.LEVELS)


def test_the_macro_curve_of_three_classes_has_the_macro_auc_as_its_area():
    rng = np.random.default_rng(1)
    labels = np.arange(60) % 3
    probabilities = rng.dirichlet(np.ones(3), 60)
    probabilities[np.arange(60), labels] += 0.3
    probabilities = np.round(probabilities / probabilities.sum(axis=1, keepdims=True), 1)  # ties
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    points = roc_points({0: prediction_frame(labels, probabilities)})
    pooled = points[points["curve"] == "pooled"]
    area = np.trapezoid(pooled["tpr"], pooled["fpr"])
    assert area == pytest.approx(roc_auc_score(labels, probabilities, multi_class="ovr", average="macro"), abs=1e-12)
    assert pooled["threshold"].isna().all() and pooled["fpr"].is_monotonic_increasing


# --------------------------------------------------------------------------------------- names in the store
def test_predictions_keep_their_class_names_through_the_store_and_its_rewrite(tmp_path):
    row = grid_rows({"scratch": 0.0}, fractions=(1.0,), seeds=1)[0]
    frame = predictions_for(row)
    frame.attrs["class_names"] = NAMES
    store = ResultStore(tmp_path, "named")
    store.put(row, frame)
    path = store.predictions_dir / f"{row['run_id']}.parquet"
    assert pq.read_schema(path).metadata[b"class_names"] == b'["benign", "malignant"]'  # for any parquet reader
    assert store.predictions(row["run_id"]).attrs["class_names"] == NAMES
    table = pq.read_table(path)
    pq.write_table(table.set_column(2, "label", table["label"].cast("int32")), path)  # a file of an older layout
    assert store.conform_files() == 1 and pq.read_schema(path).field("label").type == "int64"
    assert store.predictions(row["run_id"]).attrs["class_names"] == NAMES  # kept by the rewrite
    pq.write_table(table.replace_schema_metadata(None), path)  # written before the names were stored
    assert "class_names" not in store.predictions(row["run_id"]).attrs


def test_a_run_stores_the_class_names_in_dataset_json(tmp_path):
    study = open_study(write_protocol(tmp_path), tmp_path / "results", tmp_path / "report", None, RunEvents())
    store_inputs(study, study_data(study), RunEvents())
    assert study.store.dataset_info()["class_names"] == ["class_0", "class_1"]


# ------------------------------------------------------------------------------------------------ the report
def named_store(root, names: list[str] | None) -> ResultStore:
    """Three arms, two fractions, three seeds; the predictions with the class names, or as stored before them."""
    store = ResultStore(root / "results", "synth")
    for row in grid_rows({"scratch": 0.0, "frozen": 0.06, "finetune(depth=1)": 0.03}, fractions=(0.25, 1.0),
                         seeds=3):
        frame = predictions_for(row)
        if names:
            frame.attrs["class_names"] = names
        store.put(row, frame)
    return store


@pytest.fixture(scope="module")
def named_report(tmp_path_factory):
    root = tmp_path_factory.mktemp("named")
    store = named_store(root, NAMES)
    protocol = load_protocol(write_protocol(root, fractions=[0.25, 1.0], seeds=3, extra=TARGET_AND_CLAIMS))
    build_report(protocol, store, root / "report", every_stored_cell(store))
    return store, root / "report"


def test_the_per_class_table_shows_the_compared_arms_with_the_stored_class_names(named_report):
    store, out = named_report
    table = pd.read_csv(out / "tables" / "per_class.csv")
    answer = pd.read_csv(out / "tables" / "answer.csv")
    assert list(table["fraction"]) == [0.25, 0.25, 1.0, 1.0] and set(table["class_name"]) == {"malignant"}
    assert list(table.loc[table["role"] == "recommended", "arm"]) == list(answer["arm"])
    assert list(table.loc[table["role"] == "runner-up", "arm"]) == list(answer["runner_up"])
    cells = store.cells()
    for row in table.itertuples(index=False):  # argmax rule: these cells stored no operating point
        ids = cells.loc[(cells["arm"] == row.arm) & (cells["fraction"] == row.fraction), "run_id"]
        frames = [store.predictions(run_id) for run_id in ids]
        per_seed = [(f["predicted"] == 1)[f["label"] == 1].mean() for f in frames]
        assert row.rule == "argmax" and row.seeds == 3
        assert row.sensitivity_mean == pytest.approx(np.mean(per_seed))
        assert row.tp + row.fn == sum((f["label"] == 1).sum() for f in frames)
        assert row.sensitivity_ci_low <= row.sensitivity_mean <= row.sensitivity_ci_high
    text = (out / "report.md").read_text()
    assert "## Per class: operating point and ROC curves" in text
    assert "the positive class, class 1 (malignant)" in text and "| malignant | 3 |" in text
    confusion = pd.read_csv(out / "tables" / "confusion.csv")
    assert set(confusion["true_class"]) == set(confusion["predicted_class"]) == set(NAMES)


def test_the_roc_figure_draws_the_pooled_predictions_and_the_page_shows_it(named_report):
    store, out = named_report
    points = pd.read_csv(out / "tables" / "roc_curves.csv")  # the pooled curves
    cells = store.cells()
    assert len(points.groupby(["fraction", "arm"])) == 4  # the recommended arm and its runner-up at each fraction
    for (fraction, arm), drawn in points.groupby(["fraction", "arm"]):
        ids = cells.loc[(cells["arm"] == arm) & (cells["fraction"] == fraction), "run_id"]
        pooled = pd.concat([store.predictions(run_id) for run_id in ids])
        fpr, tpr, _ = roc_curve(pooled["label"], pooled["prob_1"])
        np.testing.assert_allclose(drawn["fpr"], fpr, rtol=1e-9)
        np.testing.assert_allclose(drawn["tpr"], tpr, rtol=1e-9)
    assert (out / "figures" / "roc.png").is_file() and (out / "figures" / "roc.svg").is_file()
    page = (out / "index.html").read_text()
    assert '<figure id="figure-roc"><img src="data:image/png;base64,' in page
    assert "Per-class rates at the validation-chosen operating point" in page


def test_a_store_written_before_class_names_still_reports_with_numbered_classes(tmp_path):
    store = named_store(tmp_path, names=None)
    protocol = load_protocol(write_protocol(tmp_path, fractions=[0.25, 1.0], seeds=3))
    arguments = (protocol, store.cells(), store.predictions, tmp_path / "no-features.npz")
    for stored, shown in ((None, "class 1"), (["no finding", "finding"], "finding")):  # dataset.json's, if any
        document = report_document(*arguments, class_names=stored)
        table = next(table for table in document.tables() if table.name == "per_class")
        assert set(table.data["class_name"]) == set(table.display["class"]) == {shown}


@pytest.mark.slow
def test_a_real_run_stores_class_names_and_its_operating_point_is_applied_again_exactly(tmp_path):
    protocol = tmp_path / "tiny.yaml"
    protocol.write_text(protocol_file_text("tiny", classes=3, seeds=1, epochs=2))
    dirs = ["--results-dir", str(tmp_path / "results"), "--report-dir", str(tmp_path / "report")]
    result = study_command("run", str(protocol), *dirs, "--jobs", "1")
    assert result.returncode == 0, result.stderr
    store = ResultStore(tmp_path / "results", "tiny")
    names = ["class_0", "class_1", "class_2"]
    assert store.dataset_info()["class_names"] == names
    cells = store.cells()
    assert len(cells) == 4 and set(cells["operating_rule"]) == {"prior"}
    for _, cell_row in cells.iterrows():
        assert store.predictions(cell_row["run_id"]).attrs["class_names"] == names
        rows = arm_rows(cells[cells["run_id"] == cell_row["run_id"]], store.predictions, store.split())
        correct = sum(row["tp"] for row in rows)
        assert correct / (rows[0]["tp"] + rows[0]["fn"] + rows[0]["fp"] + rows[0]["tn"]) == pytest.approx(
            cell_row["accuracy_op"], abs=1e-12)
        assert np.mean([row["sensitivity_mean"] for row in rows]) == pytest.approx(
            cell_row["balanced_accuracy_op"], abs=1e-12)
    table = pd.read_csv(tmp_path / "report" / "tiny" / "tables" / "per_class.csv")
    assert set(table["class_name"]) == set(names)
