"""How long `study report` takes on stores the size of PneumoniaMNIST runs of protocols/truncation.yaml.

Per case, writes a synthetic store through ResultStore (7 arms x 5 fractions x 3 or 10 seeds, 4,708 training
images, 624 or 6,000 test predictions per cell, features of every image at 1,280 dimensions), then builds its
report and prints the wall time with the load average at the end. Reports go to WORKDIR/<case>/report.
Usage: python benchmarks/report_speed.py WORKDIR [CASE ...]   cases: 105x624, 105x6000, 350x624, 350x6000
(default: 105x624 350x6000)
"""

from __future__ import annotations

import os
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

TRAIN, VAL = 4708, 524
CASES = {"105x624": (3, 624), "105x6000": (3, 6000), "350x624": (10, 624), "350x6000": (10, 6000)}  # seeds, test
DEFAULT_CASES = ("105x624", "350x6000")


def protocol_file(workdir: Path, seeds: int) -> Path:
    """protocols/truncation.yaml on PneumoniaMNIST with `seeds` seeds."""
    text = (Path(__file__).parents[1] / "protocols" / "truncation.yaml").read_text()
    path = workdir / "truncation.yaml"
    path.write_text(text.replace("name: breastmnist", "name: pneumoniamnist").replace("seeds: 3", f"seeds: {seeds}"))
    return path


def cell(planned: Cell, test: int, rng: np.random.Generator) -> tuple[dict, pd.DataFrame]:
    """A done cell of the plan and its `test` predictions; the scores separate the classes more with more data."""
    fraction = planned.fraction
    labels = (np.arange(test) % 8 < 5).astype(int)
    scores = 1 / (1 + np.exp(-(labels - 0.5) * (1 + 3 * fraction) - rng.normal(0, 1, test)))
    predicted = (scores > 0.5).astype(int)
    auc = float(pd.Series(scores).groupby(labels).mean().diff().iloc[-1] + 0.5)
    row = cell_row(planned, datetime.now(timezone.utc)) | {
        "status": "done", "n_train": round(TRAIN * fraction), "n_val": VAL, "n_test": test, "n_classes": 2,
        "auc": auc, "accuracy": float((predicted == labels).mean()),
        "balanced_accuracy": float((predicted == labels).mean()), "f1_macro": 0.8, "log_loss": 0.4,
        "top2_accuracy": np.nan, "majority_rate": 0.625,
        "max_predicted_share": float(max(predicted.mean(), 1 - predicted.mean())), "monitor": "val_auc",
        "monitor_value": auc + rng.normal(0, 0.01), "epochs": 20, "best_epoch": 12, "train_seconds": 60.0}
    predictions = pd.DataFrame({"run_id": row["run_id"], "image_id": [f"t{i}" for i in range(test)],
                                "label": labels, "predicted": predicted, "prob_0": 1 - scores, "prob_1": scores})
    return row, predictions


def write_store(results: Path, protocol, test: int) -> ResultStore:
    """Every planned cell of the protocol, done, with `test` predictions each, and the feature map."""
    store = ResultStore(results, protocol.name)
    rng = np.random.default_rng(0)
    for planned in plan_cells(protocol, "benchmark"):
        store.put(*cell(planned, test, rng))
    n = TRAIN + VAL + test
    labels = (np.arange(n) % 4 != 0).astype(int)
    path = features_path(store.root, protocol.backbone.name, protocol.dataset.size)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, features=(rng.normal(size=(n, 1280)) + labels[:, None]).astype(np.float32), labels=labels,
             ids=np.array([f"i{k}" for k in range(n)]), split=np.array(["train"] * TRAIN + ["val"] * VAL + ["test"] * test),
             class_names=np.array(["normal", "pneumonia"]))
    return store


def time_case(workdir: Path, case: str) -> str:
    """Writes the case's store, builds its report and says how long the build took, with the load average."""
    seeds, test = CASES[case]
    workdir.mkdir(parents=True, exist_ok=True)
    protocol = load_protocol(protocol_file(workdir, seeds))
    store = write_store(workdir / "results", protocol, test)
    start = time.perf_counter()
    build_report(protocol, store, workdir / "report", store.cells()["run_id"])  # every stored cell is planned
    seconds = time.perf_counter() - start
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    return f"{len(store.cells())} cells x {test} test images: {seconds:.1f} s (load average {load})"


def main(workdir: str, cases: list[str]) -> None:
    for case in cases or DEFAULT_CASES:
        if case not in CASES:
            sys.exit(f"unknown case {case!r}; cases: {', '.join(CASES)}")
        print(time_case(Path(workdir) / case, case), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
