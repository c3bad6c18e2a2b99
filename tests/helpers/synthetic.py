"""Synthetic results stores for the report, claims and stats tests, written through ResultStore like a real run,
and the protocol whose plan they fill."""

from __future__ import annotations

import functools
import json
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from helpers.protocols import protocol_file_text
from study.analysis.sequential import with_seeds
from study.data.sources import source_fingerprint
from study.plan.cells import plan_cells
from study.plan.settings import CellSettings
from study.protocol.schema import load_protocol, parse_protocol
from study.store.results import ResultStore

ARMS = {  # label: strategy, depth, truncate_at
    "scratch": ("scratch", "all", None),
    "frozen": ("frozen", "0", None),
    "finetune(depth=1)": ("finetune", "1", None),
    "finetune(depth=all)": ("finetune", "all", None),
    "truncate(at=2)": ("truncate", "all", 2),
}
N_TEST = 40
POOL = 200


def protocol_text(name: str = "synth", fractions=(0.1, 0.25, 0.5, 1.0), seeds: int = 5, extra: str = "") -> str:
    """The five-arm synthetic protocol with these fields, `extra` appended."""
    return protocol_file_text("synthetic_five_arms", name=name, fractions=list(fractions), seeds=seeds) + extra


def cell_row(arm: str, fraction: float, seed: int, auc: float, **overrides) -> dict:
    """A done cell as the worker stores it; accuracy and the other metrics follow auc."""
    strategy, depth, truncate_at = ARMS[arm]
    row = {
        "run_id": f"{arm}-f{fraction}-s{seed}".replace("(", "_").replace(")", "").replace("=", ""),
        "protocol": "synth", "status": "done", "error": None, "arm": arm, "strategy": strategy, "depth": depth,
        "truncate_at": truncate_at, "head": "linear", "fraction": fraction, "seed": seed,
        "n_train": int(round(POOL * fraction)), "n_val": 30, "n_test": N_TEST, "n_classes": 2, "backbone": "cnn",
        "weights": "none", "size": 16, "accuracy": auc - 0.05, "top2_accuracy": np.nan, "balanced_accuracy": auc - 0.06,
        "auc": auc, "f1_macro": auc - 0.07, "log_loss": 1.2 - auc, "majority_rate": 0.5, "max_predicted_share": 0.6,
        "epochs": 10, "best_epoch": 7, "monitor": "val_auc", "monitor_value": auc, "train_seconds": 1.0,
        "lr_backbone": 1e-4, "lr_head": 1e-3, "dataset_source": "synthetic",
        "settings_json": json.dumps(arm_settings()[arm].as_dict(), sort_keys=True),
        "study_version": "0.1.0", "tensorflow_version": "2.16", "keras_version": "3.3", "numpy_version": "1.26",
        "python_version": "3.11", "hostname": "synthetic", "started_at": "2024-01-01T00:00:00",
        "finished_at": f"2024-01-01T00:00:{seed:02d}",
    }
    return row | overrides


@functools.cache
def arm_settings() -> dict[str, CellSettings]:
    """Each arm's cell settings, as the protocol's plan resolves them."""
    return {cell.arm.label: cell.settings for cell in plan_cells(parse_protocol(protocol_text()), "synthetic")}


def with_history(row: dict) -> dict:
    """The row with the columns newer workers store: the per-epoch history (validation AUC peaks at best_epoch),
    the operating-point metrics, the resize filter, threads and steps."""
    epochs, best = row["epochs"], row["best_epoch"]
    history = [{"epoch": e, "loss": round(0.2 + 0.6 / e, 6), "val_auc": round(row["auc"] - 0.01 * abs(e - best), 6),
                "val_loss": round(1.3 - row["auc"] + 0.01 * abs(e - best), 6),
                "val_accuracy": round(row["accuracy"], 6), "lr_backbone": 1e-4, "lr_head": 1e-3, "lr_output": 1e-3}
               for e in range(1, epochs + 1)]
    return row | {
        "history_json": json.dumps(history), "accuracy_op": row["accuracy"] + 0.02,
        "balanced_accuracy_op": row["balanced_accuracy"] + 0.03, "f1_macro_op": row["f1_macro"] + 0.03,
        "operating_point": 0.42, "operating_rule": "youden", "resize": "bilinear", "threads": 1,
        "steps": epochs * 7, "steps_per_epoch": 7,
    }


def predictions_for(row: dict) -> pd.DataFrame:
    """Test predictions whose accuracy matches the row's, different images wrong for each cell."""
    labels = np.arange(N_TEST) % 2
    order = np.random.default_rng(zlib.crc32(row["run_id"].encode())).permutation(N_TEST)
    correct = np.zeros(N_TEST, dtype=bool)
    correct[order[: int(round(row["accuracy"] * N_TEST))]] = True
    predicted = np.where(correct, labels, 1 - labels)
    if row["max_predicted_share"] >= 0.95:
        predicted = np.ones(N_TEST, dtype=int)
    prob_1 = np.where(predicted == 1, 0.8, 0.2)
    return pd.DataFrame({"run_id": row["run_id"], "image_id": [f"img{i:03d}" for i in range(N_TEST)],
                         "label": labels, "predicted": predicted, "prob_0": 1 - prob_1, "prob_1": prob_1})


def as_planned(rows: list[dict], protocol: Path) -> list[dict]:
    """The rows with the run ids the protocol file plans for their arm, fraction and seed (on its synthetic data), as
    a real run stores them; rows the protocol does not plan keep theirs."""
    spec = load_protocol(protocol)
    fingerprint = source_fingerprint(spec.dataset, None)
    planned = {(cell.arm.label, cell.fraction, cell.seed): cell.run_id
               for cell in plan_cells(with_seeds(spec, list(range(max(row["seed"] for row in rows) + 1))), fingerprint)}
    return [row | {"run_id": planned.get((row["arm"], row["fraction"], row["seed"]), row["run_id"])} for row in rows]


def every_stored_cell(store: ResultStore) -> list[str]:
    """The run ids of every cell in the store: what a synthetic store's report reads as planned."""
    return list(store.cells()["run_id"])


def write_store(results: Path, rows: list[dict], name: str = "synth") -> ResultStore:
    """A results store holding the rows, with predictions for the done ones."""
    store = ResultStore(results, name)
    for row in rows:
        store.put(row, predictions_for(row) if row["status"] == "done" else None)
    return store


def grid_rows(effects: dict[str, float], fractions=(0.1, 0.25, 0.5, 1.0), seeds: int = 5, noise: float = 0.01,
              seed: int = 0) -> list[dict]:
    """Cells of every arm in effects at every fraction and seed: auc = 0.7 + 0.1 * fraction + effect + shared seed
    noise (the same for every arm at one seed and fraction, so arms pair) + arm noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for fraction in fractions:
        for s in range(seeds):
            shared = rng.normal(0, 0.03)
            for arm, effect in effects.items():
                auc = float(np.clip(0.7 + 0.1 * fraction + effect + shared + rng.normal(0, noise), 0.01, 0.99))
                rows.append(cell_row(arm, fraction, s, auc))
    return rows


def write_protocol(directory: Path, name: str = "synth", extra: str = "", **kwargs) -> Path:
    """directory/<name>.yaml holding protocol_text(name, extra=extra, **kwargs)."""
    path = Path(directory) / f"{name}.yaml"
    path.write_text(protocol_text(name, extra=extra, **kwargs))
    return path


TARGET_AND_CLAIMS = """\
report: {metric: auc, target: 0.85}
claims:
  - {id: frozen-beats-scratch, text: by construction, a: frozen, b: scratch}
  - {id: same, a: finetune(depth=1), b: finetune(depth=all)}
"""


def write_features(path: Path, n: int = 60, seed: int = 0) -> None:
    """A features file of n images whose two classes lie apart."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    features = (rng.normal(size=(n, 64)) + labels[:, None] * 2.0).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    split = np.array(["train", "train", "val", "test"] * (n // 4))
    np.savez(path, features=features, labels=labels, ids=np.array([f"img{i}" for i in range(n)]), split=split,
             class_names=np.array(["benign", "malignant"]))
