"""The shortcuts change nothing: a reused traced model equals a fresh build, cached features equal recomputed ones."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from helpers.protocols import protocol_file_text

from study.data.sources import source_fingerprint
from study.plan.cells import plan_cells
from study.protocol.schema import parse_protocol
from study.training import caches
from study.training.context import WorkerContext
from study.training.process import keep_worker_process
from study.training.worker import run_cell

PROTOCOL = protocol_file_text("cached_block_shortcuts")


@pytest.fixture(scope="module")
def protocol():
    return parse_protocol(PROTOCOL)


@pytest.fixture(scope="module")
def cells(protocol):
    return plan_cells(protocol, source_fingerprint(protocol.dataset, None))


def context(protocol, tmp_path, caches=True) -> WorkerContext:
    return WorkerContext(dataset=protocol.dataset.model_dump(), data_dir=None, cache_dir=str(tmp_path), threads=1,
                         caches=caches)


@pytest.mark.slow
def test_reused_model_gives_the_fresh_build_result(protocol, cells, tmp_path):
    finetune = [cell for cell in cells if cell.arm.strategy == "finetune"]
    first, second = finetune[0], finetune[-1]
    assert (first.seed, first.fraction) != (second.seed, second.fraction)
    caches._TRAINERS.clear()
    run_cell(first, context(protocol, tmp_path))
    assert len(caches._TRAINERS) == 1
    reused_row, reused, _ = run_cell(second, context(protocol, tmp_path))
    assert len(caches._TRAINERS) == 1, "the second cell should reuse the first cell's traced model"
    caches._TRAINERS.clear()
    fresh_row, fresh, _ = run_cell(second, context(protocol, tmp_path))
    assert reused_row["status"] == fresh_row["status"] == "done", reused_row["error"]
    np.testing.assert_array_equal(reused.filter(like="prob_").to_numpy(), fresh.filter(like="prob_").to_numpy())
    assert reused_row["auc"] == fresh_row["auc"] and reused_row["log_loss"] == fresh_row["log_loss"]


@pytest.mark.slow
def test_cached_features_match_the_full_model(protocol, cells, tmp_path):
    for cell in cells[:2] + cells[-2:]:
        cached_row, cached, _ = run_cell(cell, context(protocol, tmp_path))
        plain_row, plain, _ = run_cell(cell, context(protocol, tmp_path, caches=False))
        assert cached_row["cached_input_block"] is not None and plain_row["cached_input_block"] is None
        np.testing.assert_allclose(cached.filter(like="prob_").to_numpy(), plain.filter(like="prob_").to_numpy(),
                                   atol=1e-4)
        assert cached_row["trainable_params"] == plain_row["trainable_params"]
        assert cached_row["total_params"] == plain_row["total_params"]
    assert len(list((tmp_path / "features").glob("*.npy"))) == 2 * 2  # two boundaries x two seeds (random weights)


def test_feature_cache_is_read_back_not_recomputed(tmp_path):
    from study.training.features import FeatureCache

    calls = []

    def compute(blocks):
        calls.append(blocks)
        return {block: np.full((2, 3), block, dtype="float32") for block in blocks}

    keys = {1: "k1", 3: "k3"}
    first = FeatureCache(tmp_path).get_or_compute("group", keys, 3, compute)
    assert calls == [[1, 3]], "the first miss computes every block of the group in one pass"
    second = FeatureCache(tmp_path).get_or_compute("group", keys, 1, compute)
    assert len(calls) == 1 and np.array_equal(first, np.full((2, 3), 3)) and np.array_equal(second, np.ones((2, 3)))
    (tmp_path / "features" / "k3.npy").write_bytes(b"torn")
    third = FeatureCache(tmp_path).get_or_compute("group", keys, 3, compute)
    assert calls[-1] == [3] and np.array_equal(third, first), "only the unreadable block is computed again"


def test_block_outputs_from_one_pass_equal_those_of_separate_passes(protocol, cells, tmp_path):
    from study.training.caches import preprocessed_images
    from study.training.features import compute_block_outputs

    settings, seed = cells[0].settings.network, cells[0].seed
    images = preprocessed_images(context(protocol, tmp_path), settings.backbone.name, settings.backbone.weights)[:40]
    together = compute_block_outputs(settings, [1, 3], images, seed)
    for block in (1, 3):
        np.testing.assert_array_equal(together[block], compute_block_outputs(settings, [block], images, seed)[block])


@pytest.mark.slow
def test_pretrained_cells_built_head_only_equal_a_full_build(tmp_path):
    """A reused pretrained model gets its next seed's head without a backbone build, and the same result."""
    import keras

    weights = tmp_path / "pretrained.weights.h5"
    keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(32, 32, 3)).save_weights(weights)
    protocol = parse_protocol(protocol_file_text("pretrained_head_only", weights=weights))
    cells = plan_cells(protocol, source_fingerprint(protocol.dataset, None))
    for label in ("frozen(mlp)", "finetune(depth=1)", "truncate(at=3,depth=1)"):
        first, second = [cell for cell in cells if cell.arm.label == label]
        caches._TRAINERS.clear()
        run_cell(first, context(protocol, tmp_path))
        (_, start), = caches._TRAINERS.values()
        assert start is not None and start.draws > 0, "the backbone's seed draws should be counted"
        reused_row, reused, _ = run_cell(second, context(protocol, tmp_path))
        caches._TRAINERS.clear()
        fresh_row, fresh, _ = run_cell(second, context(protocol, tmp_path))
        assert reused_row["status"] == fresh_row["status"] == "done", reused_row["error"]
        np.testing.assert_array_equal(reused.filter(like="prob_").to_numpy(), fresh.filter(like="prob_").to_numpy())
        assert reused_row["auc"] == fresh_row["auc"], label


def test_dispatch_puts_long_cells_first_and_keeps_arms_together():
    from study.execution.scheduler import dispatch_order

    protocol = parse_protocol(PROTOCOL.replace("  - {name: frozen}", "  - {name: frozen}\n  - {name: scratch}"))
    order = dispatch_order(plan_cells(protocol, source_fingerprint(protocol.dataset, None)))
    arms = [cell.arm.label for cell in order]
    assert arms[0] == "finetune(depth=2)", "the first cell on cached features computes them for all, at the start"
    assert list(dict.fromkeys(arms[1:])) == ["scratch", "finetune(depth=2)", "frozen"], "trained from images first"
    assert [arms[1:].count(arm) for arm in dict.fromkeys(arms[1:])] == [4, 3, 4]
    assert [cell.fraction for cell in order[1:5]] == [1.0, 1.0, 0.5, 0.5], "larger fractions first"
    assert dispatch_order([]) == []


_HELD: list = []


def _hold_memory_and_report(megabytes: int, keep: bool) -> int:
    import os
    import time

    if keep:
        keep_worker_process()
    else:  # loky's own threshold, whatever an earlier task in this reused worker set
        from joblib.externals.loky import process_executor

        process_executor._MAX_MEMORY_LEAK_SIZE = int(3e8)
    _HELD.append(np.ones(megabytes * 2**20 // 8))
    time.sleep(1.2)  # loky looks at a worker's memory at most once a second
    return os.getpid()


@pytest.mark.slow
@pytest.mark.parametrize("keep", [True, False])
def test_a_worker_that_grows_its_caches_is_kept(keep):
    """loky replaces a worker whose memory grew 300 MB (it calls that a leak); ours keep their caches instead."""
    from joblib.externals.loky import get_reusable_executor

    executor = get_reusable_executor(max_workers=1, reuse=False)
    pids = [executor.submit(_hold_memory_and_report, size, keep).result() for size in (0, 400, 0)]
    executor.shutdown()
    assert (len(set(pids)) == 1) == keep, pids


def test_the_first_cached_cell_stores_every_block_the_sweep_needs(protocol, cells, tmp_path):
    from dataclasses import replace

    from study.training.features import cached_blocks

    needed = cached_blocks(cells)
    assert list(needed.values()) == [[2, 4]], "finetune(depth=2) starts after block 2, frozen after block 4 of 5"
    row, _, _ = run_cell(cells[0], replace(context(protocol, tmp_path), cached_blocks=needed))
    assert row["status"] == "done", row["error"]
    assert len(list((tmp_path / "features").glob("*.npy"))) == 2


def test_cached_block_outputs_are_keyed_by_the_resize_filter(cells):
    from study.training.features import feature_key

    settings = cells[0].settings.network
    lanczos = replace(settings, dataset=replace(settings.dataset, resize="lanczos"))
    assert feature_key(settings, 1, "data", 0) != feature_key(lanczos, 1, "data", 0)
