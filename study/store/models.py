"""Kept models: a cell's trained network as a Keras file beside the store, with what applying it needs.

Contract:
- `results/<protocol>/models/<run_id>.keras` holds the cell's model from preprocessed images to class
  probabilities; `<run_id>.json` beside it describes it (`KeptModel.info`: input size, resize filter, backbone and
  its preprocessing, class names, the cell's arm, fraction, seed and validation value).
- A model is kept when both files are there and readable (a damaged one is trained again by the next run that keeps
  models): the `.keras` file is written first and its description last, each
  atomically (`study.store.writing`); removal deletes the description first. A `.keras` file without its
  description is a leftover of a killed run, removed by the next run under its lock.
- The driver alone writes them (a worker sends the file back with its cell's result), before the cell's row.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from study.core.errors import StudyError
from study.store.writing import write_store_file

MODELS_DIR = "models"
MODEL_SUFFIX = ".keras"
INFO_SUFFIX = ".json"


@dataclass(frozen=True)
class KeptModel:
    """A cell's trained model: the bytes of its `.keras` file and its description."""

    run_id: str
    keras_file: bytes = field(repr=False)
    info: dict[str, Any]


class ModelFiles:
    """The kept models of one protocol, in `root/models/`."""

    def __init__(self, root: Path):
        self.folder = Path(root) / MODELS_DIR

    def keras_path(self, run_id: str) -> Path:
        """Where the cell's kept model lives (the Keras file)."""
        return self.folder / f"{run_id}{MODEL_SUFFIX}"

    def info_path(self, run_id: str) -> Path:
        """Where the kept model's description lives (JSON); a model counts as kept only with it."""
        return self.folder / f"{run_id}{INFO_SUFFIX}"

    def put(self, model: KeptModel) -> Path:
        """Store a model and its description (replacing any kept for its run id); the path of its `.keras` file."""
        path = write_store_file(self.keras_path(model.run_id), model.keras_file)
        write_store_file(self.info_path(model.run_id), json.dumps(model.info, indent=1, sort_keys=True).encode())
        return path

    def kept(self) -> set[str]:
        """The run ids whose model and description are both stored and readable (a damaged one is trained again)."""
        return {path.stem for path in self.folder.glob(f"*{INFO_SUFFIX}")
                if not path.name.startswith(".") and _readable(path, self.keras_path(path.stem))}

    def remove(self, run_ids: list[str]) -> None:
        """Delete the kept models of run_ids (call under the run lock)."""
        for run_id in run_ids:
            self.info_path(run_id).unlink(missing_ok=True)
            self.keras_path(run_id).unlink(missing_ok=True)

    def remove_leftovers(self) -> int:
        """Delete the temporary files and the models without a description a killed run left (call under the run
        lock); how many."""
        leftovers = list(self.folder.glob(".*.tmp"))
        leftovers += [path for path in self.folder.glob(f"*{MODEL_SUFFIX}")
                      if not path.name.startswith(".") and not self.info_path(path.stem).exists()]
        for path in leftovers:
            path.unlink(missing_ok=True)
        return len(leftovers)


def _readable(info_path: Path, keras_path: Path) -> bool:
    """Whether a description parses and its Keras file is a whole zip archive."""
    try:
        json.loads(info_path.read_text())
    except (OSError, ValueError):
        return False
    return zipfile.is_zipfile(keras_path)


def model_info(keras_path: Path) -> dict[str, Any]:
    """The description stored beside a kept model's `.keras` file; a StudyError naming what is missing."""
    keras_path = Path(keras_path)
    if not keras_path.is_file():
        raise StudyError(f"model file {keras_path} not found; kept models are results/<protocol>/{MODELS_DIR}/"
                         f"<run id>{MODEL_SUFFIX} (study run --keep-models best|all)")
    info_path = keras_path.with_suffix(INFO_SUFFIX)
    try:
        return json.loads(info_path.read_text())
    except FileNotFoundError:
        raise StudyError(f"{keras_path} has no description {info_path} beside it; give a model that "
                         "study run --keep-models kept (its .keras and .json files together)") from None
    except (OSError, ValueError) as exc:
        raise StudyError(f"cannot read the model description {info_path}: {exc}; `study run --keep-models best|all` "
                         "trains its cell again") from None
