"""Pointing Keras at a weight cache of the test's choosing."""

from __future__ import annotations

from pathlib import Path

import pytest


def point_keras_home(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    """Make `home` the Keras cache in this process and in the processes it starts.

    Keras reads KERAS_HOME once, when it is imported; keras.utils.get_file asks
    keras.src.backend.config.keras_home() at each call, so the module value is patched too.
    """
    from keras.src.backend import config

    monkeypatch.setenv("KERAS_HOME", str(home))
    monkeypatch.setattr(config, "_KERAS_DIR", str(home))
