"""Batch norm does what the protocol says: `frozen` keeps pretrained statistics, scale and offset fixed in every
block, trained or not, on the image path and the cached-block path; `train` updates them in the blocks that train;
scratch networks end with statistics recomputed for their final weights."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.protocols import protocol_file_text

from study.plan.cells import plan_cells
from study.protocol.schema import parse_protocol


def cells(batchnorm: str) -> dict:
    protocol = parse_protocol(protocol_file_text("batchnorm_mobilenetv2", batchnorm=batchnorm))
    return {cell.arm.label: cell for cell in plan_cells(protocol, "synthetic")}


def batchnorm_state(model) -> dict[str, list[np.ndarray]]:
    """name -> [gamma, beta, moving mean, moving variance] of every BatchNormalization layer, nested ones too."""
    import keras

    state = {}
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            state[layer.name] = [v.numpy().copy() for v in (layer.gamma, layer.beta, layer.moving_mean,
                                                          layer.moving_variance)]
        elif isinstance(layer, keras.Model):
            state.update(batchnorm_state(layer))
    return state


def train_a_few_steps(cell, start_after_frozen: bool):
    """Build the arm, train it 2 epochs on random images; its batch-norm state before and after, and the model."""
    import keras

    from study.training.features import compute_block_outputs
    from study.training.models.backbones import preprocess
    from study.training.models.arm_network import build_arm_model
    from study.training.train import Trainer

    keras.utils.set_random_seed(0)
    arm = build_arm_model(cell.settings, 2, start_after_frozen)
    rng = np.random.default_rng(0)
    images = preprocess("mobilenetv2", rng.integers(0, 255, (24, 32, 32, 3), dtype=np.uint8))
    if arm.input_block is not None:
        images = compute_block_outputs(cell.settings, [arm.input_block], images, 0)[arm.input_block]
    labels = np.arange(24) % 2
    before = batchnorm_state(arm.model)
    trainer = Trainer(arm, cell.settings.train)
    trainer.reset(arm.model.variables, lr_backbone=1e-2, lr_head=1e-2)
    trainer.fit({"train": (images, labels), "val": (images, labels)}, seed=0, n_classes=2)
    return before, batchnorm_state(arm.model), arm


@pytest.mark.integration
@pytest.mark.parametrize("label, start_after_frozen", [
    ("finetune(depth=2)", False), ("finetune(depth=2)", True), ("finetune(depth=all)", False),
])
def test_frozen_batchnorm_keeps_statistics_scale_and_offset(imagenet_keras_home, label, start_after_frozen):
    before, after, arm = train_a_few_steps(cells("frozen")[label], start_after_frozen)
    assert before and before.keys() == after.keys()
    for name, values in before.items():
        for start, end in zip(values, after[name]):
            np.testing.assert_array_equal(start, end, err_msg=name)
    assert arm.backbone_variables  # the convolutions of the trained blocks did train


@pytest.mark.integration
def test_trained_batchnorm_moves_in_the_trained_blocks_only(imagenet_keras_home):
    before, after, arm = train_a_few_steps(cells("train")["finetune(depth=2)"], start_after_frozen=False)
    trained = {variable.path.split("/")[0] for variable in arm.backbone_variables}
    moved = {name for name, values in before.items()
             if not all(np.array_equal(a, b) for a, b in zip(values[2:], after[name][2:]))}
    assert moved and moved == {name for name in before if name in trained}


def test_precise_batchnorm_sets_the_average_batch_statistics():
    import keras

    from study.training.train import recompute_batchnorm_statistics

    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    outputs = keras.layers.BatchNormalization(momentum=0.99, name="bn")(keras.layers.Dense(3, name="dense")(inputs))
    model = keras.Model(inputs, outputs)
    x = np.random.default_rng(0).normal(2.0, 3.0, (40, 4)).astype("float32")
    kernel_before = model.get_layer("dense").get_weights()
    assert recompute_batchnorm_statistics(model, x, batch=10)
    hidden = x @ kernel_before[0] + kernel_before[1]
    batches = hidden.reshape(4, 10, 3)
    layer = model.get_layer("bn")
    np.testing.assert_allclose(layer.moving_mean.numpy(), batches.mean(axis=1).mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(layer.moving_variance.numpy(), batches.var(axis=1).mean(axis=0), rtol=1e-4)
    assert layer.momentum == 0.99  # restored
    for start, end in zip(kernel_before, model.get_layer("dense").get_weights()):
        np.testing.assert_array_equal(start, end)  # statistics only, never a weight
