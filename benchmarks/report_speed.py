"""How long `study report` takes on a store the size of a PneumoniaMNIST run of protocols/truncation.yaml.

Writes a synthetic store through ResultStore (7 arms x 5 fractions x 3 seeds, 4,708 training images, 624 test
predictions per cell, features of all 5,856 images at 1,280 dimensions), then builds its report and prints the
wall time. Usage: python benchmarks/report_speed.py WORKDIR
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from study.analysis.embedding import features_path
from study.protocol.schema import load_protocol
from study.report.build import build_report
from study.store.results import ResultStore

ARMS = ["scratch", "frozen", "finetune(depth=1)", "finetune(depth=2)", "finetune(depth=all)", "truncate(at=3)",
        "truncate(at=5)"]
FRACTIONS = [0.05, 0.1, 0.25, 0.5, 1.0]
TRAIN, VAL, TEST = 4708, 524, 624


def protocol_file(workdir: Path) -> Path:
    """protocols/truncation.yaml on PneumoniaMNIST."""
    text = (Path(__file__).parents[1] / "protocols" / "truncation.yaml").read_text()
    path = workdir / "truncation.yaml"
    path.write_text(text.replace("name: breastmnist", "name: pneumoniamnist"))
    return path


def cell(arm: str, fraction: float, seed: int, rng: np.random.Generator) -> tuple[dict, pd.DataFrame]:
    """A done cell and its test predictions; the scores separate the classes more with more data."""
    labels = (np.arange(TEST) % 8 < 5).astype(int)
    scores = 1 / (1 + np.exp(-(labels - 0.5) * (1 + 3 * fraction) - rng.normal(0, 1, TEST)))
    predicted = (scores > 0.5).astype(int)
    strategy = arm.split("(")[0]
    auc = float(pd.Series(scores).groupby(labels).mean().diff().iloc[-1] + 0.5)
    row = {"run_id": f"{arm}-{fraction}-{seed}".replace("(", "_").replace(")", "").replace("=", ""),
           "status": "done", "error": None, "arm": arm, "strategy": strategy, "fraction": fraction, "seed": seed,
           "n_train": round(TRAIN * fraction), "n_val": VAL, "n_test": TEST, "auc": auc,
           "accuracy": float((predicted == labels).mean()), "balanced_accuracy": float((predicted == labels).mean()),
           "f1_macro": 0.8, "log_loss": 0.4, "top2_accuracy": np.nan, "majority_rate": 0.625,
           "max_predicted_share": float(max(predicted.mean(), 1 - predicted.mean())), "monitor": "val_auc",
           "monitor_value": auc + rng.normal(0, 0.01), "epochs": 20, "best_epoch": 12, "train_seconds": 60.0}
    predictions = pd.DataFrame({"run_id": row["run_id"], "image_id": [f"t{i}" for i in range(TEST)],
                                "label": labels, "predicted": predicted, "prob_0": 1 - scores, "prob_1": scores})
    return row, predictions


def write_store(results: Path, protocol) -> ResultStore:
    store = ResultStore(results, protocol.name)
    rng = np.random.default_rng(0)
    for arm in ARMS:
        for fraction in FRACTIONS:
            for seed in range(3):
                store.put(*cell(arm, fraction, seed, rng))
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
    print(f"report of {len(ARMS) * len(FRACTIONS) * 3} cells, {TEST} test images each: "
          f"{time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main(sys.argv[1])
