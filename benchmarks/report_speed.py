"""How long `study report` takes on a store the size of a PneumoniaMNIST run of protocols/truncation.yaml.

Writes a synthetic store through ResultStore (7 arms x 5 fractions x 3 seeds, 4,708 training images, 624 test
predictions per cell, features of all 5,856 images at 1,280 dimensions), then builds its report and prints the
wall time. Usage: python benchmarks/report_speed.py WORKDIR
"""

from __future__ import annotations

import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from study.analysis.embedding import features_path
from study.plan.cells import Cell, plan_cells
from study.protocol.schema import load_protocol
from study.report.build import build_report
from study.store.results import ResultStore
from study.training.rows import cell_row

TRAIN, VAL, TEST = 4708, 524, 624


def protocol_file(workdir: Path) -> Path:
    """protocols/truncation.yaml on PneumoniaMNIST."""
    text = (Path(__file__).parents[1] / "protocols" / "truncation.yaml").read_text()
    path = workdir / "truncation.yaml"
    path.write_text(text.replace("name: breastmnist", "name: pneumoniamnist"))
    return path


def cell(planned: Cell, rng: np.random.Generator) -> tuple[dict, pd.DataFrame]:
    """A done cell of the plan and its test predictions; the scores separate the classes more with more data."""
    fraction = planned.fraction
    labels = (np.arange(TEST) % 8 < 5).astype(int)
    scores = 1 / (1 + np.exp(-(labels - 0.5) * (1 + 3 * fraction) - rng.normal(0, 1, TEST)))
    predicted = (scores > 0.5).astype(int)
    auc = float(pd.Series(scores).groupby(labels).mean().diff().iloc[-1] + 0.5)
    row = cell_row(planned, datetime.now(timezone.utc)) | {
        "status": "done", "n_train": round(TRAIN * fraction), "n_val": VAL, "n_test": TEST, "n_classes": 2,
        "auc": auc, "accuracy": float((predicted == labels).mean()),
        "balanced_accuracy": float((predicted == labels).mean()), "f1_macro": 0.8, "log_loss": 0.4,
        "top2_accuracy": np.nan, "majority_rate": 0.625,
        "max_predicted_share": float(max(predicted.mean(), 1 - predicted.mean())), "monitor": "val_auc",
        "monitor_value": auc + rng.normal(0, 0.01), "epochs": 20, "best_epoch": 12, "train_seconds": 60.0}
    predictions = pd.DataFrame({"run_id": row["run_id"], "image_id": [f"t{i}" for i in range(TEST)],
                                "label": labels, "predicted": predicted, "prob_0": 1 - scores, "prob_1": scores})
    return row, predictions


def write_store(results: Path, protocol) -> ResultStore:
    """Every planned cell of the protocol (7 arms x 5 fractions x 3 seeds), done, and the feature map."""
    store = ResultStore(results, protocol.name)
    rng = np.random.default_rng(0)
    for planned in plan_cells(protocol, "benchmark"):
        store.put(*cell(planned, rng))
    n = TRAIN + VAL + TEST
    labels = (np.arange(n) % 4 != 0).astype(int)
    path = features_path(store.root, protocol.backbone.name, protocol.dataset.size)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, features=(rng.normal(size=(n, 1280)) + labels[:, None]).astype(np.float32), labels=labels,
             ids=np.array([f"i{k}" for k in range(n)]), split=np.array(["train"] * TRAIN + ["val"] * VAL + ["test"] * TEST),
             class_names=np.array(["normal", "pneumonia"]))
    return store


def main(workdir: str) -> None:
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    protocol = load_protocol(protocol_file(workdir))
    store = write_store(workdir / "results", protocol)
    start = time.perf_counter()
    build_report(protocol, store, workdir / "report")
    print(f"report of {len(store.cells())} cells, {TEST} test images each: "
          f"{time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main(sys.argv[1])
