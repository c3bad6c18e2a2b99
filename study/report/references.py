"""Published test numbers for public datasets, and a run's best numbers beside them.

The references are the MedMNIST benchmarks' published figures (official splits, whole training split). They use
other models, resolutions and training budgets than a run of this harness, so the comparison places numbers side by
side and labels them; it never tests one against the other.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from study.protocol.arms import backbone_tag, protocol_arms
from study.protocol.schema import Protocol
from study.report.tables import num


@dataclass(frozen=True)
class Reference:
    source: str
    model: str
    size: int | None  # input px; None: the same at every resolution
    training: str
    accuracy: float | None
    auc: float | None


_MEDMNIST_V2 = "MedMNIST v2 (Yang et al. 2023)"
_MEDMNIST_PLUS = "MedMNIST+ (Doerrich et al. 2024)"
_V2_TRAINING = "from scratch, 100 epochs, Adam 1e-3, model chosen by validation AUC"
_PLUS_END_TO_END = "ImageNet-pretrained, end-to-end, AdamW 1e-4, early stopping on validation loss, 3 seeds"

REFERENCES: dict[str, list[Reference]] = {
    "breastmnist": [
        Reference(_MEDMNIST_V2, "ResNet-18", 28, _V2_TRAINING, 0.863, 0.901),
        Reference(_MEDMNIST_PLUS, "ResNet-18", 28, _PLUS_END_TO_END, 0.8397, None),
        Reference(_MEDMNIST_PLUS, "ResNet-18", 224, _PLUS_END_TO_END, 0.8718, None),
        Reference(_MEDMNIST_PLUS, "ResNet-18", None,
                  "ImageNet-pretrained linear probe (equals the majority class, 114/156: degenerate)", 0.7308, None),
    ],
    "pneumoniamnist": [
        Reference(_MEDMNIST_V2, "ResNet-18", 28, _V2_TRAINING, 0.854, 0.944),
        Reference(_MEDMNIST_V2, "ResNet-50", 224, _V2_TRAINING, 0.884, 0.962),
    ],
    "retinamnist": [Reference(_MEDMNIST_V2, "ResNet-18", 28, _V2_TRAINING, 0.524, 0.717)],
}

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
         "input px": "any" if ref.size is None else str(ref.size), "training": ref.training,
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
