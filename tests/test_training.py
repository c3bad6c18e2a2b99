"""What trains in each arm, per-group learning rates, early stopping, metrics, reproducibility."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from helpers.protocols import protocol_file_text
from sklearn import metrics as sk

from study.data.sources import load_dataset, source_fingerprint
from study.data.splits import ensure_split
from study.plan.cells import plan_cells
from study.plan.settings import EarlyStopping
from study.protocol.schema import parse_protocol
from study.training.context import WorkerContext
from study.training.metrics import classification_metrics
from study.training.worker import run_cell

PROTOCOL = protocol_file_text("every_strategy_three_classes")


@pytest.fixture(scope="module")
def cells():
    protocol = parse_protocol(PROTOCOL)
    return {cell.arm.label: cell for cell in plan_cells(protocol, source_fingerprint(protocol.dataset, None))}


def build(cell, start_after_frozen: bool = False):
    import keras

    from study.training.models.arm_network import build_arm_model

    keras.utils.set_random_seed(0)
    return build_arm_model(cell.settings, 3, start_after_frozen)


def names(variables) -> set[str]:
    return {variable.path.split("/")[0] for variable in variables}


def test_each_arm_trains_the_blocks_it_names(cells):
    frozen = build(cells["frozen(mlp)"])
    assert frozen.backbone_variables == [] and frozen.blocks_trained == 0
    assert names(frozen.head_variables) == {"head_dense1", "head_out"}

    top = build(cells["finetune(depth=1)"])
    assert names(top.backbone_variables) == {"block4_conv", "block4_bn"}
    assert top.blocks_trained == 1 and top.blocks_kept == 5

    full = build(cells["finetune(depth=all)"])
    assert {"stem_conv", "block1_conv", "block4_conv"} <= names(full.backbone_variables)

    cut = build(cells["truncate(at=2)"])
    assert cut.blocks_kept == 3
    assert "block3_conv" not in names(cut.model.weights) and "block2_conv" in names(cut.backbone_variables)
    assert cut.model.output_shape == (None, 3)


def test_scratch_trains_batch_norm_statistics_quickly(cells):
    scratch = build(cells["scratch"])
    bns = [layer for layer in scratch.model.get_layer(index=1).layers if "bn" in layer.name]
    assert bns and all(layer.momentum == 0.9 for layer in bns)


def test_frozen_batch_norm_statistics_do_not_move(cells):
    import keras

    frozen = build(cells["frozen(mlp)"])
    before = [w.copy() for w in frozen.model.get_weights()]
    images = np.random.default_rng(0).random((8, 16, 16, 3), dtype=np.float32)
    frozen.model(images, training=True)
    backbone = frozen.model.get_layer(index=1)
    moving = [v for v in backbone.weights if "moving" in v.path]
    assert moving and all(np.array_equal(a, b) for a, b in zip(before, frozen.model.get_weights()))
    assert not any(isinstance(l, keras.layers.BatchNormalization) and l.trainable for l in backbone.layers)


def largest_changes(cell, groups, **rates) -> list[float]:
    """Train the cell's fresh model 2 epochs at the given rates; the largest change of each variable group."""
    from study.training.train import Trainer

    arm = build(cell)
    rng = np.random.default_rng(1)
    x = rng.random((48, 16, 16, 3), dtype=np.float32)
    y = np.arange(48) % 3
    variables = groups(arm)
    before = [[v.numpy().copy() for v in group] for group in variables]
    trainer = Trainer(arm, replace(cell.settings.train, early_stopping=None, epochs=2))
    trainer.reset(arm.model.variables, **rates)
    trainer.fit({"train": (x, y), "val": (x, y)}, seed=0, n_classes=3)
    return [max(np.abs(v.numpy() - b).max() for v, b in zip(group, start)) for group, start in zip(variables, before)]


def test_backbone_and_head_learn_at_their_own_rates(cells):
    backbone, head = largest_changes(cells["finetune(depth=all)"], lambda arm: (arm.backbone_variables, arm.head_variables),
                                     lr_backbone=1e-9, lr_head=1e-1)
    assert backbone < 1e-6 < 1e-3 < head


def test_the_output_layer_learns_at_its_own_rate(cells):
    def hidden_and_output(arm):
        assert names(arm.output_variables) == {"head_out"}
        hidden = [v for v in arm.head_variables if id(v) not in {id(o) for o in arm.output_variables}]
        assert names(hidden) == {"head_dense1"}
        return hidden, arm.output_variables

    hidden, output = largest_changes(cells["frozen(mlp)"], hidden_and_output,
                                     lr_backbone=1e-3, lr_head=1e-9, lr_output=1e-1)
    assert hidden < 1e-6 < 1e-3 < output


def test_early_stopping_keeps_the_best_validation_epoch(cells):
    from study.training.train import Trainer

    cell = cells["frozen(mlp)"]
    arm = build(cell)
    rng = np.random.default_rng(2)
    x = rng.random((30, 16, 16, 3), dtype=np.float32)
    y = np.arange(30) % 3
    trainer = Trainer(arm, replace(cell.settings.train, epochs=6, early_stopping=EarlyStopping("val_loss", 2)))
    trainer.reset(arm.model.variables, 1e-3, 5e-1)
    result = trainer.fit({"train": (x, y), "val": (x[::-1], y[::-1])}, 0, 3)
    losses = [entry["val_loss"] for entry in result.history]
    assert result.best_value == min(losses) and losses[result.best_epoch - 1] == min(losses)
    assert result.epochs - result.best_epoch <= 2
    restored = classification_metrics(y[::-1], trainer.predict(x[::-1]))["log_loss"]
    assert restored == pytest.approx(result.best_value, rel=1e-5)


def test_nan_loss_fails_the_cell_with_the_reason(cells):
    import dataclasses

    cell = cells["scratch"]
    broken = dataclasses.replace(cell, arm=dataclasses.replace(cell.arm, lr_head=1e12, lr_backbone=1e12))
    context = WorkerContext(dataset=parse_protocol(PROTOCOL).dataset.model_dump(), data_dir=None, cache_dir=None, threads=1)
    row, predictions, _ = run_cell(broken, context)
    assert row["status"] == "failed" and predictions is None
    assert "training loss became nan" in row["error"].lower()


def test_same_cell_twice_gives_identical_results(cells):
    context = WorkerContext(dataset=parse_protocol(PROTOCOL).dataset.model_dump(), data_dir=None, cache_dir=None, threads=1)
    first, first_predictions, _ = run_cell(cells["truncate(at=2)"], context)
    second, second_predictions, _ = run_cell(cells["truncate(at=2)"], context)
    assert first["status"] == "done", first["error"]
    for metric in ("accuracy", "auc", "log_loss", "epochs", "n_train"):
        assert first[metric] == second[metric]
    assert first_predictions.equals(second_predictions)
    assert first["cpu"] and first["cpu"] == second["cpu"], "each cell names the CPU that trained it"


def test_training_never_sees_validation_or_test_images(cells):
    from study.training.subsets import cell_indices

    protocol = parse_protocol(PROTOCOL)
    dataset = ensure_split(load_dataset(protocol.dataset, None), protocol.dataset)
    for fraction in (0.25, 1.0):
        parts = cell_indices(dataset, fraction, seed=0)
        assert not set(parts["train"]) & (set(parts["val"]) | set(parts["test"]))
        assert len(parts["val"]) == (dataset.split == "val").sum()


def test_metrics_match_sklearn_on_known_values():
    labels = np.array([0, 0, 1, 1, 2, 2])
    probabilities = np.array([[.8, .1, .1], [.3, .6, .1], [.2, .7, .1], [.1, .2, .7], [.1, .1, .8], [.5, .1, .4]])
    scores = classification_metrics(labels, probabilities)
    assert scores["accuracy"] == pytest.approx(3 / 6)
    assert scores["top2_accuracy"] == pytest.approx(1.0)
    assert scores["balanced_accuracy"] == pytest.approx(3 / 6)
    assert scores["auc"] == pytest.approx(sk.roc_auc_score(labels, probabilities, multi_class="ovr", average="macro"))
    assert scores["f1_macro"] == pytest.approx(sk.f1_score(labels, probabilities.argmax(1), average="macro"))
    assert scores["log_loss"] == pytest.approx(sk.log_loss(labels, probabilities))
    assert scores["majority_rate"] == pytest.approx(1 / 3) and scores["max_predicted_share"] == pytest.approx(1 / 3)
    binary = classification_metrics(np.array([0, 1, 1]), np.array([[.9, .1], [.4, .6], [.6, .4]]))
    assert np.isnan(binary["top2_accuracy"]) and binary["auc"] == pytest.approx(1.0)

