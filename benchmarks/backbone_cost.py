"""A backbone's cost per image relative to MobileNetV2, as the registry's `cost` holds it (study/protocol/blocks.py).

Times training steps (forward and backward, every layer trainable, a global-pool and dense head) and inference steps
of each backbone with random weights at one input size, on 1 thread as the rate in study/runner/cost.py assumes.
Each repeat times MobileNetV2 and the backbone one after the other, so that load from other processes shifts both
alike; it prints milliseconds per image (medians) and the median of the repeats' ratios to MobileNetV2, with the load
average before and after. Steps of one kind run back to back: alternating a training and an inference step of
InceptionV3 timed it about 3 times slower.

A KerasHub backbone is timed as a preset folder of the architecture (random weights need no download):
`--random-preset dinov2_small:DIR` writes one for a known preset (benchmarks/random_presets.py) and times it.

Usage:
    python benchmarks/backbone_cost.py inceptionv3 --size 96 --batch 16 --repeats 9
    python benchmarks/backbone_cost.py --random-preset dinov2_small:/tmp/dinov2_small --size 224 --batch 8
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from statistics import median

import numpy as np

from study.protocol.blocks import backbone_info
from study.training.models.arm_network import pool
from study.training.models.backbones import build_backbone, preprocess
from study.training.process import configure_tensorflow

REFERENCE = "mobilenetv2"


def steps(name: str, size: int, batch: int) -> tuple[Callable[[], None], Callable[[], None]]:
    """A training step and an inference step of the backbone under a small head, traced once."""
    import keras

    keras.utils.set_random_seed(0)
    base = build_backbone(name, "none", size)
    outputs = keras.layers.Dense(2, activation="softmax")(pool(base.output, backbone_info(name).pooling))
    model = keras.Model(base.input, outputs)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    images = preprocess(name, rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8))
    labels = rng.integers(0, 2, batch)
    model.train_on_batch(images, labels)
    model.predict_on_batch(images)
    return lambda: model.train_on_batch(images, labels), lambda: model.predict_on_batch(images)


def seconds(step: Callable[[], None]) -> float:
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def compare(name: str, size: int, batch: int, repeats: int) -> None:
    """Print the backbone's and MobileNetV2's ms per image and their ratio, for training and for inference."""
    reference, backbone = steps(REFERENCE, size, batch), steps(name, size, batch)
    for kind, index in (("train", 0), ("inference", 1)):
        pairs = [(seconds(reference[index]), seconds(backbone[index])) for _ in range(repeats)]
        ms = [1000 * median(times) / batch for times in zip(*pairs)]
        ratio = median(theirs / ours for ours, theirs in pairs)
        print(f"{name} {kind}: {ms[1]:.2f} ms/image, {REFERENCE} {ms[0]:.2f} ms/image: {ratio:.2f} x {REFERENCE}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("backbones", nargs="*", help="registered backbone names or KerasHub preset folders")
    parser.add_argument("--random-preset", action="append", default=[], metavar="PRESET:DIR",
                        help="write a random-initialised preset of a known KerasHub preset's architecture and time it")
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    configure_tensorflow(threads=1)
    print(f"{args.size} px, batch {args.batch}, 1 thread; load average before: "
          f"{' '.join(f'{load:.2f}' for load in os.getloadavg())}")
    from random_presets import write_random_preset

    folders = [write_random_preset(*spec.split(":", 1)) for spec in args.random_preset]
    for name in [*args.backbones, *folders]:
        compare(name, args.size, args.batch, args.repeats)
    print(f"load average after: {' '.join(f'{load:.2f}' for load in os.getloadavg())}")


if __name__ == "__main__":
    main()
