"""DeLong's test against pROC's published values on its aSAH data, and the properties that could break."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from study.analysis.delong import delong_auc_variance, delong_test

# pROC's aSAH data (Turck et al. 2010, Intensive Care Med 36:107): 113 patients in the package's row order, as
# outcome (G = Good, P = Poor), wfns, s100b, ndka. Transcribed as in erenozen/opendose,
# engine/tests/test_methodcomp_extras.py (commit f73f9f00c2b654aa3cd3f3c3310f6caa69040382); it has pROC's 72 Good and
# 41 Poor, and reproducing the published numbers below to 1e-10 confirms every row.
ASAH = """
G,1,0.13,3.01 G,1,0.14,8.54 G,1,0.1,8.09 G,1,0.04,10.42 P,3,0.13,17.4 P,2,0.1,12.75 G,5,0.47,6.0 P,4,0.16,13.2
G,1,0.18,15.54 G,2,0.1,6.01 P,5,0.12,15.96 G,2,0.1,17.86 P,5,0.44,5.18 P,5,0.71,8.9 G,1,0.04,13.41 G,2,0.08,20.75
P,5,0.49,11.6 G,2,0.04,16.11 P,2,0.07,32.37 P,5,0.33,54.82 P,2,0.09,32.41 G,1,0.09,49.94 P,1,0.07,40.34
G,1,0.11,9.47 G,1,0.07,6.29 G,2,0.17,12.53 G,1,0.07,6.54 G,2,0.11,6.3 G,1,0.13,80.3 G,1,0.19,12.8 G,3,0.05,9.8
G,4,0.16,9.81 P,2,0.41,9.85 G,1,0.14,18.21 G,4,0.34,5.03 P,5,0.35,14.04 P,4,0.48,21.93 G,1,0.09,8.02
P,4,0.96,7.42 P,2,0.25,8.38 G,5,0.5,6.59 G,5,0.46,9.63 G,1,0.16,13.12 G,1,0.07,7.96 G,2,0.43,14.34
G,4,0.45,41.43 G,1,0.11,7.63 G,1,0.08,7.06 G,2,0.09,12.59 P,5,0.86,13.56 P,5,0.52,3.87 G,2,0.08,9.44
G,1,0.06,7.66 G,2,0.13,12.98 P,5,2.07,419.19 G,1,0.1,27.19 G,2,0.14,22.27 G,2,0.15,9.95 P,2,0.07,21.22
G,1,0.06,11.73 P,5,0.77,10.4 G,1,0.05,58.83 G,1,0.09,6.39 P,2,0.3,11.09 P,5,0.03,12.22 P,2,0.09,13.67
G,1,0.04,17.21 P,4,0.23,22.63 P,5,0.7,12.9 G,2,0.09,9.7 P,4,0.27,21.57 P,4,0.71,8.23 P,1,0.08,72.57
P,4,0.26,15.54 G,1,0.08,10.51 G,2,0.16,10.6 G,1,0.09,14.57 P,4,0.13,5.19 P,2,0.1,9.63 G,1,0.08,4.61
P,2,0.11,21.48 G,3,0.33,17.3 G,2,0.11,12.71 G,4,0.28,9.44 G,2,0.07,11.07 G,1,0.1,19.46 G,4,0.32,10.83
P,5,0.22,5.37 G,1,0.07,11.97 G,1,0.05,7.75 G,5,0.24,9.83 G,4,0.38,10.55 G,2,0.1,28.49 G,2,0.15,8.53
G,1,0.08,12.57 G,1,0.14,12.9 G,1,0.1,46.83 G,3,0.07,11.68 G,1,0.04,12.67 G,2,0.19,9.01 P,5,0.56,9.57
P,2,0.14,34.06 P,2,0.58,11.72 P,5,0.32,14.26 P,5,0.82,47.61 P,5,0.74,11.67 G,2,0.15,24.58 G,4,0.47,10.33
G,4,0.17,13.87 P,5,0.44,15.89 G,1,0.15,22.43 G,1,0.5,6.79 G,1,0.48,13.45
"""
ASAH_ROWS = [row.split(",") for row in ASAH.split()]
ASAH_POOR = np.array([row[0] == "P" for row in ASAH_ROWS], dtype=int)  # pROC's cases: roc(aSAH$outcome, marker)
ASAH_MARKERS = {name: np.array([float(row[column]) for row in ASAH_ROWS]) for column, name in
                enumerate(("wfns", "s100b", "ndka"), start=1)}

# xrobin/pROC tests/testthat/test-roc.test.R, "roc.test statistic and p are as expected with defaults":
# roc.test(r.a, r.b) (paired DeLong, two-sided, 95% interval of AUC a - AUC b).
PROC_ROC_TEST = [
    ("wfns", "s100b", 2.20898359144091, 0.0271757822291882, 0.0104061769564846, 0.174214419249478),
    ("wfns", "ndka", 2.79777591868904, 0.00514557970691098, 0.0634011709339876, 0.3600405634833566),
    ("ndka", "s100b", -1.39077002573558, 0.164295175223054, -0.2876917446341914, 0.0488706064228094),
]
# xrobin/pROC tests/testthat/test-var.R, "var with delong works"; AUCs of wfns and ndka from tests/testthat/test-auc.R,
# "full auc works".
PROC_VARIANCE = {"wfns": 0.00146991470882363, "ndka": 0.0031908105493913, "s100b": 0.00266868245717244}
PROC_AUC = {"wfns": 0.823678861788618, "ndka": 0.611957994579946}

PUBLISHED = 1e-10  # pROC's values are printed to 15 significant digits


def correlated_models(seed: int, n: int = 300, signal_a: float = 1.2, signal_b: float = 0.8):
    """Labels and two models' scores on the same images, sharing image-level noise (so their AUCs correlate)."""
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < 0.4).astype(int)
    shared = rng.normal(size=n)
    scores_a = signal_a * labels + shared + 0.7 * rng.normal(size=n)
    scores_b = signal_b * labels + shared + 0.7 * rng.normal(size=n)
    return labels, scores_a, scores_b


def mann_whitney_aucs(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """AUC of each row by the rank-sum formula (midranks for ties)."""
    ranks = stats.rankdata(scores, axis=-1)
    positives = labels.sum(axis=-1)
    negatives = labels.shape[-1] - positives
    return ((ranks * labels).sum(axis=-1) - positives * (positives + 1) / 2) / (positives * negatives)


def test_asah_transcription_has_procs_patients():
    assert len(ASAH_ROWS) == 113
    assert ASAH_POOR.sum() == 41  # pROC: "72 controls (aSAH$outcome Good) < 41 cases (aSAH$outcome Poor)"


@pytest.mark.parametrize(("marker_a", "marker_b", "z", "p", "ci_low", "ci_high"), PROC_ROC_TEST)
def test_paired_test_matches_proc_roc_test(marker_a, marker_b, z, p, ci_low, ci_high):
    result = delong_test(ASAH_POOR, ASAH_MARKERS[marker_a], ASAH_MARKERS[marker_b])
    assert result.z == pytest.approx(z, rel=PUBLISHED)
    assert result.p == pytest.approx(p, rel=PUBLISHED)
    assert (result.ci_low, result.ci_high) == pytest.approx((ci_low, ci_high), rel=PUBLISHED)
    assert result.difference == pytest.approx((ci_low + ci_high) / 2, rel=PUBLISHED)
    assert result.difference == pytest.approx(result.auc_a - result.auc_b)


@pytest.mark.parametrize("marker", sorted(PROC_VARIANCE))
def test_variance_matches_proc_var(marker):
    auc, variance = delong_auc_variance(ASAH_POOR, ASAH_MARKERS[marker])
    assert variance == pytest.approx(PROC_VARIANCE[marker], rel=PUBLISHED)
    if marker in PROC_AUC:
        assert auc == pytest.approx(PROC_AUC[marker], rel=PUBLISHED)


def test_identical_curves_give_z_0_and_p_1_as_in_proc():
    # test-roc.test.R, "DeLong roc.test works when curves are identical": roc.test(r.wfns, r.wfns) has Z = 0, p = 1
    result = delong_test(ASAH_POOR, ASAH_MARKERS["wfns"], ASAH_MARKERS["wfns"])
    assert (result.difference, result.standard_error, result.z, result.p) == (0.0, 0.0, 0.0, 1.0)
    assert (result.ci_low, result.ci_high) == (0.0, 0.0)


@pytest.mark.parametrize("seed", range(3))
def test_identical_synthetic_scores_give_p_1(seed):
    labels, scores, _ = correlated_models(seed)
    result = delong_test(labels, scores, scores.copy())
    assert (result.z, result.p) == (0.0, 1.0)


@pytest.mark.parametrize("marker", sorted(ASAH_MARKERS))
def test_auc_equals_sklearn_on_tied_scores(marker):
    labels, scores = ASAH_POOR, ASAH_MARKERS[marker]  # wfns has 5 levels for 113 patients: mostly ties
    assert delong_auc_variance(labels, scores)[0] == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_auc_equals_sklearn_on_synthetic_scores(seed):
    labels, scores_a, scores_b = correlated_models(seed)
    rounded = np.round(scores_b, 1)  # adds ties
    result = delong_test(labels, scores_a, rounded)
    assert result.auc_a == pytest.approx(roc_auc_score(labels, scores_a), abs=1e-12)
    assert result.auc_b == pytest.approx(roc_auc_score(labels, rounded), abs=1e-12)


@pytest.mark.parametrize(("marker_a", "marker_b"), [(a, b) for a, b, *_ in PROC_ROC_TEST])
def test_swapping_models_flips_z_and_keeps_p(marker_a, marker_b):
    forward = delong_test(ASAH_POOR, ASAH_MARKERS[marker_a], ASAH_MARKERS[marker_b])
    backward = delong_test(ASAH_POOR, ASAH_MARKERS[marker_b], ASAH_MARKERS[marker_a])
    assert backward.z == pytest.approx(-forward.z, rel=1e-12)
    assert backward.p == pytest.approx(forward.p, rel=1e-12)
    assert (backward.ci_low, backward.ci_high) == pytest.approx((-forward.ci_high, -forward.ci_low), rel=1e-12)


def test_a_clearly_better_model_is_significant():
    labels, strong, weak = correlated_models(seed=7, signal_a=2.0, signal_b=0.3)
    result = delong_test(labels, strong, weak)
    assert result.difference > 0.15
    assert result.p < 0.01
    assert result.ci_low > 0


@pytest.mark.parametrize("seed", range(3))
def test_variances_agree_with_a_bootstrap_over_images(seed):
    labels, scores_a, scores_b = correlated_models(seed)
    images = np.random.default_rng(1000 + seed).integers(0, len(labels), size=(2000, len(labels)))
    resampled_labels = labels[images]
    boot_a = mann_whitney_aucs(resampled_labels, scores_a[images])
    boot_b = mann_whitney_aucs(resampled_labels, scores_b[images])
    result = delong_test(labels, scores_a, scores_b)
    assert delong_auc_variance(labels, scores_a)[1] == pytest.approx(np.var(boot_a, ddof=1), rel=0.2)
    assert result.standard_error**2 == pytest.approx(np.var(boot_a - boot_b, ddof=1), rel=0.2)


@pytest.mark.parametrize(
    ("labels", "scores_a", "scores_b", "message"),
    [
        ([1, 1, 1, 1], [0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1], "only one class"),
        ([0, 0, 0, 0], [0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1], "only one class"),
        ([0, 1, 0, 1], [0.1, 0.2, 0.3], [0.4, 0.3, 0.2, 0.1], "shape"),
        ([0, 1, 0, 1], [0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2], "shape"),
        ([0, 1, 2, 1], [0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1], "one class against the rest"),
        ([0, 1, 0, 0], [0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1], "at least two images of each class"),
    ],
)
def test_bad_inputs_raise_a_one_line_value_error(labels, scores_a, scores_b, message):
    with pytest.raises(ValueError, match=message) as raised:
        delong_test(labels, scores_a, scores_b)
    assert "\n" not in str(raised.value)


def test_variance_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="shape"):
        delong_auc_variance([0, 1, 0, 1], [0.1, 0.2, 0.3])


def test_the_best_cells_get_delong_beside_mcnemar(tmp_path):
    from helpers.synthetic import grid_rows, write_store

    from study.analysis.significance import mcnemar_table
    from study.analysis.summaries import flagged

    store = write_store(tmp_path, grid_rows({"scratch": 0.0, "frozen": 0.05}, seeds=3))
    cells = flagged(store.cells())
    table = mcnemar_table(cells, [("frozen", "scratch")], store.predictions)
    assert len(table) == 4 and table["delong_p"].notna().all()
    assert (table["delong_p_holm"] >= table["delong_p"]).all()
    row = table.iloc[-1]
    a, b = (store.predictions(cells[(cells["arm"] == row[f"arm_{s}"]) & (cells["seed"] == row[f"seed_{s}"])
                                    & (cells["fraction"] == row["fraction"])]["run_id"].iloc[0]) for s in "ab")
    merged = a.merge(b, on="image_id", suffixes=("_a", "_b"))
    expected = delong_test(merged["label_a"].to_numpy(), merged["prob_1_a"].to_numpy(), merged["prob_1_b"].to_numpy())
    assert row["auc_a"] == pytest.approx(roc_auc_score(merged["label_a"], merged["prob_1_a"]), abs=1e-12)
    assert row["delong_p"] == expected.p
