"""A fresh model's initial values for any seed, without building the backbone again.

With pretrained weights (ImageNet or a file) and no augmentation layers, every variable below the head starts at
its pretrained value whatever the seed; only the new head starts from seeded random values. Keras draws each
default initializer seed from Python's `random` module, so the head of a fresh build under seed s gets the draws
that follow the backbone's. `FreshStart` keeps one full build's initial values and counts the draws its backbone
took; for another seed it replays that many draws and builds the head alone, which gives exactly the values a
full build would give (tested) for a fraction of the cost: a MobileNetV2 build with its weights takes about 1 s.
"""

from __future__ import annotations

import logging
import random

import numpy as np

from study.plan.settings import CellSettings
from study.training.models.arm_network import ArmModel, build_head

log = logging.getLogger(__name__)

KERAS_SEED_DRAW = (1, int(1e9))  # keras.src.random.seed_generator.make_default_seed: random.randint(1, 1e9)
MAX_DRAWS = 100_000  # a backbone makes a few hundred layers; more means Keras draws its seeds differently


def seed_independent_trunk(settings: CellSettings) -> bool:
    """Whether everything below the head starts at the same values for every seed."""
    return settings.backbone.pretrained and not settings.train.augment


def draws_before(seed: int, state: tuple) -> int | None:
    """How many Keras seed draws after random.seed(seed) lead to `state`; None if no number up to MAX_DRAWS does."""
    generator = random.Random(seed)
    for count in range(MAX_DRAWS):
        if generator.getstate() == state:
            return count
        generator.randint(*KERAS_SEED_DRAW)
    return None


class FreshStart:
    """Initial variable values of one model structure for any seed, from one full build under `seed`."""

    def __init__(self, arm_model: ArmModel, seed: int, settings: CellSettings, n_classes: int):
        model = arm_model.model
        self.settings, self.n_classes = settings, n_classes
        self.values = [variable.numpy() for variable in model.variables]
        self.draws = draws_before(seed, arm_model.random_state_before_head)
        if self.draws is None:
            log.debug("Keras did not draw its seeds from `random` as expected; every cell builds its whole model")
        position = {id(variable): index for index, variable in enumerate(model.variables)}
        self.feature_shape = tuple(model.get_layer("pool").input.shape[1:])
        head = build_head(settings, n_classes, self.feature_shape)
        self.head_positions = {layer.name: [position[id(v)] for v in model.get_layer(layer.name).variables]
                               for layer in head.layers if layer.variables}

    @property
    def usable(self) -> bool:
        return self.draws is not None

    def values_for(self, seed: int) -> list[np.ndarray]:
        """The initial value of every model variable, in model.variables order, of a fresh build under `seed`."""
        import keras

        assert self.draws is not None, "only a usable start gives values"
        keras.utils.set_random_seed(seed)
        for _ in range(self.draws):
            random.randint(*KERAS_SEED_DRAW)
        head = build_head(self.settings, self.n_classes, self.feature_shape)
        values = list(self.values)
        for name, positions in self.head_positions.items():
            for index, variable in zip(positions, head.get_layer(name).variables, strict=True):
                values[index] = variable.numpy()
        return values
