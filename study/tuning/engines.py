"""Every tuning engine a protocol's `tuning.engine` may name, in one place: the tuning phase opens a unit's search,
and `status` counts its trials, through `ENGINES`.

An entry names the engine's `UnitSearch` subclass by module, imported only when that engine is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from study.tuning.search import UnitSearch

ENGINES = {  # tuning.engine -> "module:UnitSearch subclass"
    "optuna": "study.tuning.optuna_engine:OptunaSearch",
    "keras_tuner": "study.tuning.keras_tuner_engine:KerasTunerSearch",
}


def engine_search(engine: str) -> type[UnitSearch]:
    """The UnitSearch subclass of a registered engine."""
    module, name = ENGINES[engine].split(":")
    return getattr(importlib.import_module(module), name)
