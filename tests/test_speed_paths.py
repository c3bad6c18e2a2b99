"""The shortcuts change nothing: a reused traced model equals a fresh build, cached features equal recomputed ones."""

from __future__ import annotations

import numpy as np
import pytest

from study import worker
from study.data.sources import source_fingerprint
from study.plan import plan_cells
from study.protocol import parse_protocol
from study.worker import WorkerContext, run_cell

PROTOCOL = """\
name: shortcuts
dataset: {source: synthetic, classes: 3, per_class: 20, size: 16}
backbone: {name: cnn, weights: none, width: 4}
strategies:
  - {name: finetune, depth: [2], head: {kind: mlp, units: [8], dropout: 0.3}}
  - {name: frozen}
fractions: [0.5, 1.0]
seeds: 2
train: {epochs: 3, batch_size: 8, lr: {backbone: 1.0e-3, head: 1.0e-2}, early_stopping: null}
"""


@pytest.fixture(scope="module")
def protocol():
    return parse_protocol(PROTOCOL)


@pytest.fixture(scope="module")
def cells(protocol):
    return plan_cells(protocol, source_fingerprint(protocol.dataset, None))


def context(protocol, tmp_path, caches=True) -> WorkerContext:
    return WorkerContext(dataset=protocol.dataset.model_dump(), data_dir=None, cache_dir=str(tmp_path), threads=1,
                         caches=caches)


def test_reused_model_gives_the_fresh_build_result(protocol, cells, tmp_path):
    finetune = [cell for cell in cells if cell.arm.strategy == "finetune"]
    first, second = finetune[0], finetune[-1]
    assert (first.seed, first.fraction) != (second.seed, second.fraction)
    worker._TRAINERS.clear()
    run_cell(first, context(protocol, tmp_path))
    assert len(worker._TRAINERS) == 1
    reused_row, reused = run_cell(second, context(protocol, tmp_path))
    assert len(worker._TRAINERS) == 1, "the second cell should reuse the first cell's traced model"
    worker._TRAINERS.clear()
    fresh_row, fresh = run_cell(second, context(protocol, tmp_path))
    assert reused_row["status"] == fresh_row["status"] == "done", reused_row["error"]
    np.testing.assert_array_equal(reused.filter(like="prob_").to_numpy(), fresh.filter(like="prob_").to_numpy())
    assert reused_row["auc"] == fresh_row["auc"] and reused_row["log_loss"] == fresh_row["log_loss"]


def test_cached_features_match_the_full_model(protocol, cells, tmp_path):
    for cell in cells[:2] + cells[-2:]:
        cached_row, cached = run_cell(cell, context(protocol, tmp_path))
        plain_row, plain = run_cell(cell, context(protocol, tmp_path, caches=False))
        assert cached_row["cached_input_block"] is not None and plain_row["cached_input_block"] is None
        np.testing.assert_allclose(cached.filter(like="prob_").to_numpy(), plain.filter(like="prob_").to_numpy(),
                                   atol=1e-4)
        assert cached_row["trainable_params"] == plain_row["trainable_params"]
        assert cached_row["total_params"] == plain_row["total_params"]
    assert len(list((tmp_path / "features").glob("*.npy"))) == 2 * 2  # two boundaries x two seeds (random weights)


def test_feature_cache_is_read_back_not_recomputed(tmp_path):
    from study.features import FeatureCache

    calls = []

    def compute():
        calls.append(1)
        return np.arange(6, dtype="float32").reshape(2, 3)

    first = FeatureCache(tmp_path).get_or_compute("k", compute)
    second = FeatureCache(tmp_path).get_or_compute("k", compute)
    assert len(calls) == 1 and np.array_equal(first, second)
    (tmp_path / "features" / "k.npy").write_bytes(b"torn")
    third = FeatureCache(tmp_path).get_or_compute("k", compute)
    assert len(calls) == 2 and np.array_equal(third, first)
