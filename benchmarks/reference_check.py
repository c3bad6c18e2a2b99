"""Every arm of a protocol against an independent reference, at fraction 1, paired by seed.

Harness side: a derived copy of the protocol (named `<name>-reference`, `fractions: [1.0]`, the first N seeds with
--seeds, only the strategy entries of the --arms, without claims and the report's `confusion_fraction` and
`mcnemar`, which name fractions and strategies; everything else unchanged) runs through `study run`
in a fresh process; its done cells are read from the store. Run ids leave the protocol's name out, so a
--results-dir that already holds the protocol's cells adopts them instead of training again (default: a new
temporary folder, so the current harness trains every cell).

Reference side, on the same images, split and preprocessing (from the harness's data layer only), written from the
Keras and scikit-learn docs, never from study.models, study.training.train or study.training.features:
- `frozen` with a linear head: the linear probe. keras.applications backbone (include_top=False, pooling="avg")
  in inference mode gives features; a StandardScaler and sklearn LogisticRegression (class_weight "balanced"
  when train.class_weight is) fit the training features, with C chosen from 1e-4..1e2 (7 values, log grid) by
  validation AUC. It ignores train.augment and does not depend on the seed at fraction 1.
- Every other arm: a plain Keras loop as in Keras' transfer-learning and "training loop from scratch" guides.
  keras.applications backbone, cut at the last layer of block `at` for truncate; layers of the top `depth` blocks
  trainable; BatchNormalization layers `trainable = False` when the weights are pretrained and train.batchnorm is
  frozen (Keras 3 runs only those in inference mode under training=True), Keras' own batch norm otherwise
  (scratch: trainable, with the architecture's momentum, 0.999 in MobileNetV2, so a scratch reference of few
  steps is weak); optional flips and shifts; GlobalAveragePooling2D, the head's
  Dense relu + Dropout layers, Dense softmax. One optimizer per rate group (pretrained layers: lr_backbone,
  hidden head layers: lr_head, output layer: lr_output or lr_head): Adam (AdamW with weight decay) or SGD with
  momentum 0.9; Keras' cross-entropy with balanced per-sample class weights; the protocol's batch size and epochs;
  early stopping on the monitored validation metric with patience, the best epoch's weights restored.
  keras.utils.set_random_seed(seed) before building. Backbones outside keras.applications (cnn) get no reference.
The harness runs with its defaults (cores / train.threads workers, each cell with train.threads TensorFlow threads);
the reference runs in this process with the same train.threads threads, inter-op 1.

Reading the table: per arm, test AUC and accuracy mean ± sd over seeds on each side, the mean paired difference
harness - reference in AUC with its standard error (sd of the per-seed differences / sqrt(n)). The verdict is "ok"
when the harness is not worse than the reference by more than 2 standard errors, else "BELOW REFERENCE" (exit
code 1, also when an arm has no finished harness cell); with one seed a lower harness AUC cannot be judged.
Usage: python benchmarks/reference_check.py PROTOCOL --data-dir DIR [--results-dir DIR] [--seeds N]
       [--arms LABEL ...] [--out TABLE.csv]
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from study.data.sources import resolve_data_dir, source_fingerprint
from study.plan.cells import Cell, plan_cells
from study.protocol.arms import expand_arms
from study.protocol.blocks import BackboneInfo, backbone_info
from study.protocol.schema import Protocol, load_protocol
from study.store.results import ResultStore
from study.training.caches import load_for, preprocessed_images
from study.training.context import WorkerContext
from study.training.metrics import classification_metrics
from study.training.subsets import cell_indices

C_GRID = np.logspace(-4, 2, 7)
MONITORED = {"val_auc": "auc", "val_loss": "log_loss", "val_accuracy": "accuracy",
             "val_balanced_accuracy": "balanced_accuracy"}
PREDICT_BATCH = 256


# ------------------------------------------------------------------------------------------ harness side
def derived_protocol(path: str, seeds: int | None, arms: list[str] | None, folder: Path) -> Path:
    """The protocol at fraction 1 only (first `seeds` seeds, the strategy entries of `arms`), without claims,
    written under folder."""
    data = yaml.safe_load(Path(path).read_text())
    protocol = load_protocol(path)
    if protocol.tuning is not None and protocol.tuning.fraction not in (None, 1.0):
        print(f"{path}: tuning.fraction is {protocol.tuning.fraction}; this check runs fraction 1.0 only", file=sys.stderr)
        sys.exit(2)
    data["name"] = f"{protocol.name}-reference"
    data["fractions"] = [1.0]
    if seeds is not None:
        data["seeds"] = protocol.seed_list()[:seeds]
    if arms is not None:
        data["strategies"] = [entry for entry, spec in zip(data["strategies"], protocol.strategies)
                              if {arm.label for arm in expand_arms(spec, protocol)} & set(arms)]
    data.pop("claims", None)
    for key in ("confusion_fraction", "mcnemar"):  # they name fractions and strategies the copy may lack
        (data.get("report") or {}).pop(key, None)
    derived = folder / "protocol.yaml"
    derived.write_text(yaml.safe_dump(data, sort_keys=False))
    return derived


def run_harness(protocol: Path, results: Path, data_dir: str | None, report: Path) -> float:
    """`study run` on the derived protocol in a fresh process; its wall seconds."""
    command = [sys.executable, "-m", "study", "run", str(protocol), "--results-dir", str(results),
               "--report-dir", str(report), "--no-progress", *(["--data-dir", data_dir] if data_dir else [])]
    print("harness:", shlex.join(command), flush=True)
    clock = time.perf_counter()
    code = subprocess.run(command, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}).returncode
    if code:
        print(f"harness run exited with {code}; its finished cells are still compared", flush=True)
    return time.perf_counter() - clock


def planned_cells(protocol: Protocol, data_dir: Path | None, results: Path, arms: list[str] | None) -> list[Cell]:
    """The derived protocol's cells (with the values tuning chose, if it tuned), of the chosen arms."""
    chosen = ResultStore(results, protocol.name).tuning_records()
    cells = plan_cells(protocol, source_fingerprint(protocol.dataset, data_dir), chosen)
    return [cell for cell in cells if arms is None or cell.arm.label in arms]


def harness_cells(results: Path, name: str, run_ids: set[str]) -> pd.DataFrame:
    """Arm, seed, test AUC and accuracy of the stored done cells of the planned run ids at fraction 1."""
    cells = ResultStore(results, name).cells()
    columns = ["arm", "seed", "auc", "accuracy"]
    if "fraction" not in cells:
        return pd.DataFrame(columns=columns)
    keep = (cells["status"] == "done") & cells["run_id"].isin(run_ids) & (cells["fraction"] == 1.0)
    return cells.loc[keep, columns]


# ---------------------------------------------------------------------------------------- reference side
def keras_backbone(settings: dict, input_shape: tuple, pooling: str | None = None):
    """The keras.applications network of the settings, headless, with its ImageNet, random or file weights."""
    import keras

    backbone = settings["backbone"]
    weights = None if backbone["weights"] == "none" else backbone["weights"]
    constructor = getattr(keras.applications, backbone_info(backbone["name"]).keras_class)
    return constructor(include_top=False, weights=weights, input_shape=input_shape, pooling=pooling)


def block_of_layers(model, info: BackboneInfo) -> dict[str, int]:
    """Layer name -> block: the first block whose last layer does not come before it in model.layers."""
    position = {layer.name: index for index, layer in enumerate(model.layers)}
    ends = [position[block.last_layer] for block in info.blocks]
    return {layer.name: next(b for b, end in enumerate(ends) if end >= index)
            for index, layer in enumerate(model.layers)}


def reference_model(settings: dict, input_shape: tuple, n_classes: int):
    """The arm's Keras model and its trainable variables by rate group (backbone, hidden head, output)."""
    import keras

    arm, train = settings["arm"], settings["train"]
    info = backbone_info(settings["backbone"]["name"])
    base = keras_backbone(settings, input_shape)
    block_of = block_of_layers(base, info)
    kept = len(info.blocks)
    if arm["truncate_at"] is not None:
        kept = arm["truncate_at"] + 1
        base = keras.Model(base.input, base.get_layer(info.blocks[arm["truncate_at"]].last_layer).output)
    trained = kept if arm["depth"] == "all" else min(int(arm["depth"]), kept)
    frozen_bn = settings["backbone"]["weights"] != "none" and train["batchnorm"] == "frozen"
    for layer in base.layers:
        layer.trainable = block_of[layer.name] >= kept - trained
        if frozen_bn and isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False
    inputs = keras.Input(input_shape)
    x = inputs
    if train["augment"]:
        x = keras.layers.RandomTranslation(0.05, 0.05)(keras.layers.RandomFlip("horizontal")(x))
    x = keras.layers.GlobalAveragePooling2D()(base(x))
    hidden = []
    if arm["head"]["kind"] == "mlp":
        for units in arm["head"]["units"]:
            hidden.append(keras.layers.Dense(units, activation="relu"))
            x = keras.layers.Dropout(arm["head"]["dropout"])(hidden[-1](x))
    output = keras.layers.Dense(n_classes, activation="softmax")
    model = keras.Model(inputs, output(x))
    groups = (base.trainable_variables, [v for layer in hidden for v in layer.trainable_variables],
              output.trainable_variables)
    return model, groups


def optimizer(train: dict, rate: float):
    """Adam (AdamW with weight decay) or SGD with momentum 0.9, as train.optimizer says."""
    import keras

    if train["optimizer"] == "sgd":
        return keras.optimizers.SGD(rate, momentum=0.9, weight_decay=train["weight_decay"] or None)
    if train["weight_decay"]:
        return keras.optimizers.AdamW(rate, weight_decay=train["weight_decay"])
    return keras.optimizers.Adam(rate)


def sample_weights(labels: np.ndarray, mode: str) -> np.ndarray:
    """Per-image loss weights: sklearn's balanced class weights, or ones."""
    from sklearn.utils.class_weight import compute_class_weight

    if mode == "none":
        return np.ones(len(labels), dtype="float32")
    classes = np.unique(labels)
    weight = dict(zip(classes, compute_class_weight("balanced", classes=classes, y=labels)))
    return np.array([weight[label] for label in labels], dtype="float32")


def probabilities(model, x: np.ndarray) -> np.ndarray:
    """Softmax outputs in inference mode as float64 rows summing to one."""
    p = model.predict(x, batch_size=PREDICT_BATCH, verbose=0).astype("float64")
    return p / p.sum(axis=1, keepdims=True)


def train_step(model, groups: list[tuple[list, object]]):
    """One traced gradient step on a weighted batch, each variable group with its own optimizer."""
    import keras
    import tensorflow as tf

    loss_fn = keras.losses.SparseCategoricalCrossentropy()
    variables = [v for group, _ in groups for v in group]

    @tf.function
    def step(x, y, w):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True), sample_weight=w)
            loss += sum(model.losses)
        gradients = tape.gradient(loss, variables)
        start = 0
        for group, opt in groups:
            opt.apply_gradients(zip(gradients[start:start + len(group)], group))
            start += len(group)
        return loss

    return step


def keras_loop(cell: Cell, data: dict, n_classes: int) -> np.ndarray:
    """Train the arm's model with early stopping on validation; test probabilities of the best epoch."""
    import keras
    import tensorflow as tf

    settings = cell.settings.as_dict()  # the plain record, read independently of the harness's code
    arm, train = settings["arm"], settings["train"]
    (x, y), (xv, yv), (xt, _) = data["train"], data["val"], data["test"]
    keras.utils.set_random_seed(cell.seed)
    model, (backbone, hidden, output) = reference_model(settings, x.shape[1:], n_classes)
    rates = (arm["lr_backbone"], arm["lr_head"], arm.get("lr_output") or arm["lr_head"])
    groups = [(group, optimizer(train, rate)) for group, rate in zip((backbone, hidden, output), rates) if group]
    for group, opt in groups:
        opt.build(group)
    step = train_step(model, groups)
    batches = (tf.data.Dataset.from_tensor_slices((x, y.astype("int32"), sample_weights(y, train["class_weight"])))
               .shuffle(len(x), seed=cell.seed).batch(train["batch_size"]))
    stopping = train["early_stopping"] or {"monitor": "val_loss", "patience": train["epochs"]}
    sign = -1.0 if stopping["monitor"] == "val_loss" else 1.0
    best, best_epoch, best_weights = -math.inf, 0, None
    for epoch in range(1, train["epochs"] + 1):
        for xb, yb, wb in batches:
            step(xb, yb, wb)
        value = sign * classification_metrics(yv, probabilities(model, xv))[MONITORED[stopping["monitor"]]]
        if value > best:
            best, best_epoch, best_weights = value, epoch, model.get_weights()
        elif epoch - best_epoch >= stopping["patience"]:
            break
    model.set_weights(best_weights)
    return probabilities(model, xt)


def pooled_features(settings: dict, images: np.ndarray, memo: dict) -> np.ndarray:
    """Global-average-pooled backbone outputs of every image in inference mode, computed once per network."""
    key = repr(settings["backbone"]), images.shape
    if key not in memo:
        memo[key] = keras_backbone(settings, images.shape[1:], pooling="avg").predict(
            images, batch_size=PREDICT_BATCH, verbose=0)
    return memo[key]


def linear_probe(cell: Cell, features: np.ndarray, labels: np.ndarray, parts: dict) -> np.ndarray:
    """Logistic regression on pooled features, C chosen by validation AUC; test probabilities."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    weight = "balanced" if cell.settings.train.class_weight == "balanced" else None
    (x, y), (xv, yv) = ((features[parts[p]], labels[parts[p]]) for p in ("train", "val"))
    fits = [make_pipeline(StandardScaler(), LogisticRegression(C=c, class_weight=weight, max_iter=5000)).fit(x, y)
            for c in C_GRID]
    best = max(fits, key=lambda fit: classification_metrics(yv, fit.predict_proba(xv))["auc"])
    return best.predict_proba(features[parts["test"]]).astype("float64")


def reference_cell(cell: Cell, context: WorkerContext, memo: dict) -> dict:
    """Test metrics of the reference implementation for one cell, on the harness's data."""
    dataset = load_for(context, cell.seed)
    images = preprocessed_images(context, cell.settings.backbone.name, cell.settings.backbone.weights)
    parts = cell_indices(dataset, cell.fraction, cell.seed)
    n_classes = len(dataset.class_names)
    clock = time.perf_counter()
    if cell.arm.strategy == "frozen" and cell.arm.head.kind == "linear":
        p = linear_probe(cell, pooled_features(cell.settings.as_dict(), images, memo), dataset.labels, parts)
    else:
        data = {part: (images[index], dataset.labels[index]) for part, index in parts.items()}
        p = keras_loop(cell, data, n_classes)
    scores = classification_metrics(dataset.labels[parts["test"]], p)
    print(f"reference {cell.describe()}: auc {scores['auc']:.3f} accuracy {scores['accuracy']:.3f} "
          f"({time.perf_counter() - clock:.0f} s)", flush=True)
    return {"arm": cell.arm.label, "seed": cell.seed, "auc": scores["auc"], "accuracy": scores["accuracy"]}


def has_reference(cell: Cell) -> bool:
    """Whether the cell's network is a keras.applications model."""
    return backbone_info(cell.settings.backbone.name).keras_class is not None


# ------------------------------------------------------------------------------------------------ table
def arm_row(arm: str, harness: pd.DataFrame, reference: pd.DataFrame) -> dict:
    """One arm's means, sds, paired AUC difference, its standard error and the verdict."""
    paired = harness.merge(reference, on="seed", suffixes=("_h", "_r"))
    diff = paired["auc_h"] - paired["auc_r"]
    se = diff.std() / math.sqrt(len(diff)) if len(diff) > 1 else math.nan
    row = {"arm": arm, "seeds": len(paired)}
    for side, frame in (("harness", harness), ("reference", reference)):
        for metric in ("auc", "accuracy"):
            row[f"{side}_{metric}_mean"], row[f"{side}_{metric}_sd"] = frame[metric].mean(), frame[metric].std()
    row["auc_diff"], row["auc_diff_se"] = diff.mean(), se
    row["verdict"] = verdict(len(reference), len(paired), diff.mean(), se)
    return row


def verdict(n_reference: int, n_paired: int, diff: float, se: float) -> str:
    """ok, BELOW REFERENCE, or why no judgement is possible."""
    if n_reference == 0:
        return "no reference"
    if n_paired == 0:
        return "BELOW REFERENCE (no harness cell)"
    if diff >= 0:
        return "ok"
    if math.isnan(se):
        return "needs 2+ seeds"
    return "ok" if diff >= -2 * se else "BELOW REFERENCE"


def show(table: pd.DataFrame) -> None:
    """Print the table with mean ± sd columns."""
    pm = lambda mean, sd: f"{mean:.3f} ± {sd:.3f}" if not math.isnan(sd) else f"{mean:.3f}"  # noqa: E731
    shown = pd.DataFrame({
        "arm": table["arm"], "seeds": table["seeds"],
        "harness AUC": [pm(m, s) for m, s in zip(table["harness_auc_mean"], table["harness_auc_sd"])],
        "reference AUC": [pm(m, s) for m, s in zip(table["reference_auc_mean"], table["reference_auc_sd"])],
        "diff (h - r)": [pm(m, s).replace("±", "se") for m, s in zip(table["auc_diff"], table["auc_diff_se"])],
        "harness acc": [pm(m, s) for m, s in zip(table["harness_accuracy_mean"], table["harness_accuracy_sd"])],
        "reference acc": [pm(m, s) for m, s in zip(table["reference_accuracy_mean"], table["reference_accuracy_sd"])],
        "verdict": table["verdict"],
    })
    print(shown.to_string(index=False))


# ------------------------------------------------------------------------------------------------- main
def configure_tensorflow(threads: int) -> None:
    """Thread counts for this process's TensorFlow, before it starts; Keras' notices about the 224 px
    MobileNet weights file (used at other sizes) and retracing silenced."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.get_logger().setLevel("ERROR")  # retracing notices of predict on validation and test shapes
    warnings.filterwarnings("ignore", message=r".*will be loaded as the default", category=UserWarning)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("protocol")
    parser.add_argument("--data-dir", default=os.environ.get("STUDY_DATA_DIR"))
    parser.add_argument("--results-dir", help="harness results (default: a new temporary folder)")
    parser.add_argument("--seeds", type=int, help="compare the first N seeds of the protocol")
    parser.add_argument("--arms", nargs="+", help="arm labels to compare (default: every arm)")
    parser.add_argument("--out", help="write the table as CSV here")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="reference-check-"))
    results = Path(args.results_dir) if args.results_dir else work / "results"
    print("command:", shlex.join([sys.executable, *sys.argv]))
    print(f"load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}; "
          f"{len(os.sched_getaffinity(0))} cores usable")

    derived_path = derived_protocol(args.protocol, args.seeds, args.arms, work)
    protocol: Protocol = load_protocol(derived_path)
    data_dir = resolve_data_dir(args.data_dir)
    print(f"seeds: {protocol.seed_list()}")
    harness_wall = run_harness(derived_path, results, str(data_dir) if data_dir else None, work / "report")
    cells = planned_cells(protocol, data_dir, results, args.arms)
    harness = harness_cells(results, protocol.name, {cell.run_id for cell in cells})

    threads = protocol.train.threads  # the harness's cells train with as many
    configure_tensorflow(threads)
    context = WorkerContext(protocol.dataset.model_dump(), str(data_dir) if data_dir else None,
                            str(results / ".cache"), threads=threads)
    memo: dict = {}
    clock = time.perf_counter()
    reference = pd.DataFrame([reference_cell(cell, context, memo) for cell in cells if has_reference(cell)],
                             columns=["arm", "seed", "auc", "accuracy"])
    reference_wall = time.perf_counter() - clock

    labels = list(dict.fromkeys(cell.arm.label for cell in cells))
    table = pd.DataFrame([arm_row(arm, harness[harness["arm"] == arm], reference[reference["arm"] == arm])
                          for arm in labels])
    print(f"\nwall: harness {harness_wall:.0f} s, reference {reference_wall:.0f} s; load average at end: "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    show(table)
    if args.out:
        table.to_csv(args.out, index=False)
    sys.exit(1 if table["verdict"].str.startswith("BELOW").any() else 0)


if __name__ == "__main__":
    main()
