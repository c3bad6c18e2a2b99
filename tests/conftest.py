"""Shared fixtures: where the offline datasets and ImageNet weights are, and small protocols."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
SHARED = PROJECT.parent / "shared"

TINY_PROTOCOL = """\
name: tiny
dataset: {{source: synthetic, classes: 2, per_class: 30, size: 16}}
backbone: {{name: cnn, weights: none, width: 4}}
strategies:
  - {{name: scratch}}
  - {{name: finetune, depth: [1]}}
fractions: [0.5, 1.0]
seeds: {seeds}
train: {{min_steps: 0, epochs: {epochs}, batch_size: 16, lr: {{backbone: 1.0e-3, head: 1.0e-2}}, early_stopping: null}}
"""


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The offline datasets beside the project (BreastMNIST npz, BUSI folder)."""
    assert (SHARED / "data" / "breastmnist.npz").is_file(), f"offline data not found in {SHARED / 'data'}"
    return SHARED / "data"


def point_keras_home(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    """Make `home` the Keras cache in this process and in the processes it starts.

    Keras reads KERAS_HOME once, when it is imported; keras.utils.get_file asks
    keras.src.backend.config.keras_home() at each call, so the module value is patched too.
    """
    from keras.src.backend import config

    monkeypatch.setenv("KERAS_HOME", str(home))
    monkeypatch.setattr(config, "_KERAS_DIR", str(home))


@pytest.fixture(scope="session")
def imagenet_keras_home(tmp_path_factory: pytest.TempPathFactory):
    """A writable copy of ../shared/weights/keras, made the Keras cache for the session; its path."""
    source = SHARED / "weights" / "keras"
    assert (source / "models").is_dir(), f"offline ImageNet weights not found in {source}"
    home = tmp_path_factory.mktemp("keras_home")
    shutil.copytree(source, home, dirs_exist_ok=True)
    with pytest.MonkeyPatch.context() as monkeypatch:
        point_keras_home(monkeypatch, home)
        yield home


def unreachable_url() -> str:
    """An http address on this machine where nothing listens (a download from it fails at once)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def write_tiny_protocol(directory: Path, seeds: int = 2, epochs: int = 2) -> Path:
    """A synthetic protocol small enough to run in seconds."""
    path = directory / "tiny.yaml"
    path.write_text(TINY_PROTOCOL.format(seeds=seeds, epochs=epochs))
    return path


def study_command(*args: str, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    """Run `python -m study ...` in a fresh process, as a user would."""
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "study", *args], cwd=PROJECT, env=full_env, capture_output=True, text=True, **kwargs
    )
