"""Published test numbers for public datasets, and a run's best numbers beside them.

The references are the MedMNIST benchmarks' published figures (official splits, whole training split). They use
other models, resolutions and training budgets than a run of this harness, so the comparison places numbers side by
side and labels them; it never tests one against the other.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from importlib import resources

import pandas as pd

from study.protocol.arms import backbone_tag, protocol_arms
from study.protocol.schema import Protocol
from study.report.tables import num


@dataclass(frozen=True)
class Reference:
    source: str
    model: str
    input_px: str  # "28", "224"; "any": the same at every resolution; "not stated": the source does not say
    training: str
    accuracy: float | None
    auc: float | None


def _published() -> dict[str, list[Reference]]:
    """The published rows of published.csv (one per dataset, source and model), by dataset, in file order.

    MedMNIST v2: every 2D dataset's Table 3 (ResNet-18 and ResNet-50 at 28 and 224 px, auto-sklearn, AutoKeras,
    Google AutoML Vision; test AUC and ACC). MedMNIST+: the BreastMNIST figures quoted in its text.
    """
    rows: dict[str, list[Reference]] = {}
    with resources.as_file(resources.files(__package__).joinpath("published.csv")) as path, \
            path.open(newline="") as stream:
        for row in csv.DictReader(stream):
            rows.setdefault(row["dataset"], []).append(Reference(
                row["source"], row["model"], row["input_px"], row["training"],
                float(row["accuracy"]) if row["accuracy"] else None, float(row["auc"]) if row["auc"] else None))
    return rows


REFERENCES = _published()

OPERATING_ACCURACY = "accuracy (val. operating point)"  # test accuracy at the rule chosen on validation
COLUMNS = ["kind", "source", "model", "input px", "training", "accuracy", OPERATING_ACCURACY, "auc"]


def references_for(protocol: Protocol) -> list[Reference]:
    """The published references for the protocol's dataset (MedMNIST flags only), or none."""
    return REFERENCES.get(getattr(protocol.dataset, "name", ""), []) if protocol.dataset.source == "medmnist" else []


def comparison(protocol: Protocol, summary: pd.DataFrame) -> pd.DataFrame:
    """Published rows (none for a dataset without references), then this run's arms on the whole training split
    (fraction 1), as display strings.

    Without fraction 1 the run contributes no rows. Published numbers use the default argmax rule, so their accuracy
    at a validation-chosen operating point is '-'; this run's is 'not stored' for cells stored before it was recorded.
    """
    references = references_for(protocol)
    rows = [
        {"kind": "published", "source": ref.source, "model": ref.model,
         "input px": ref.input_px, "training": ref.training,
         "accuracy": num(ref.accuracy, 4), OPERATING_ACCURACY: "-", "auc": num(ref.auc, 4)}
        for ref in references
    ]
    full = summary[summary["fraction"] == 1.0]
    networks = {arm.label: backbone_tag(arm.backbone) for arm in protocol_arms(protocol) if arm.backbone}
    for _, arm in full.iterrows():
        rows.append({
            "kind": "this run", "source": protocol.name, "model": networks.get(arm["arm"], protocol.backbone.name),
            "input px": str(protocol.dataset.size), "training": f"{arm['arm']}, {arm['n_seeds']} seed(s)",
            "accuracy": _mean_sd(arm, "accuracy"), OPERATING_ACCURACY: _mean_sd(arm, "accuracy_op"),
            "auc": _mean_sd(arm, "auc"),
        })
    return pd.DataFrame(rows, columns=COLUMNS)


def _mean_sd(arm: pd.Series, metric: str) -> str:
    """'mean ± sd' of a metric over seeds; 'not stored' when no cell of the arm stored it."""
    if pd.isna(arm[f"{metric}_mean"]):
        return "not stored"
    return f"{num(arm[f'{metric}_mean'])} ± {num(arm[f'{metric}_std'])}"
