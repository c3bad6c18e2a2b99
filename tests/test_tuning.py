"""Tuning with the real engines on the synthetic source: it beats a bad default, never touches the test split,
resumes after SIGKILL with exactly the budgeted trials, and its choices reach the cells and the report."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import PROJECT, study_command
from study import worker
from study.data.sources import source_fingerprint
from study.plan import plan_cells, plan_units
from study.protocol import load_protocol, parse_protocol
from study.store import ResultStore
from study.tuning.phase import open_search, run_tuning
from study.tuning.trial import TrialTask, evaluate_trial
from study.worker import WorkerContext

BAD_DEFAULT = """\
name: {name}
dataset: {{source: synthetic, classes: 2, per_class: 40, size: 32, noise: 0.2}}
backbone: {{name: cnn, weights: none, width: 8}}
strategies:
  - {{name: scratch}}
fractions: [1.0]
seeds: 1
train: {{epochs: 6, batch_size: 16, lr: {{backbone: 1.0e-6, head: 1.0e-6}}, early_stopping: {{monitor: val_auc, patience: 6}}}}
tuning: {{engine: {engine}, trials: {trials}, space: {{lr_head: {{low: 1.0e-6, high: 1.0e-1}}}}}}
"""


def context_for(protocol, tmp_path) -> WorkerContext:
    return WorkerContext(dataset=protocol.dataset.model_dump(), data_dir=None, cache_dir=str(tmp_path / "cache"),
                         threads=1)


def default_score(protocol, unit, context) -> float:
    """The validation score of the protocol's own (bad) learning rate, measured like a trial."""
    search = open_search(unit, protocol, context.cache_dir)  # any writable root: only its trial cell is used
    values = {"lr_head": unit.base["arm"]["lr_head"]}
    task = TrialTask(unit.key, -1, search.trial_cell(-1, values), protocol.tuning_metric())
    outcome = evaluate_trial(task, context)
    assert outcome.state == "complete", outcome.error
    return outcome.value


@pytest.mark.parametrize("engine", ["optuna", "keras_tuner"])
def test_tuning_beats_a_bad_default_learning_rate(engine, tmp_path):
    protocol = parse_protocol(BAD_DEFAULT.format(name=f"bad-{engine}", engine=engine, trials=5))
    fingerprint = source_fingerprint(protocol.dataset, None)
    units = plan_units(protocol, fingerprint)
    store = ResultStore(tmp_path / "results", protocol.name)
    context = context_for(protocol, tmp_path)
    trained = []
    choices = run_tuning(protocol, store, units, context, jobs=1, on_trial=lambda unit, outcome: trained.append(outcome))
    record = choices[units[0].key]
    assert len(trained) == 5 and record["complete"] + record["pruned"] + record["failed"] == 5
    assert record["engine"] == engine and record["trials"] == 5
    assert record["values"]["lr_head"] > 1e-4, record
    bad = default_score(protocol, units[0], context)
    assert record["metric"] == "val_auc" and record["best_value"] > bad + 0.2, (record["best_value"], bad)
    assert store.tuning_records()[units[0].key] == record
    again = run_tuning(protocol, store, units, context, jobs=1, on_trial=lambda unit, outcome: trained.append(outcome))
    assert again == choices and len(trained) == 5, "a tuned unit is not tuned again"
    cells = plan_cells(protocol, fingerprint, choices)
    assert cells[0].arm.lr_head == record["values"]["lr_head"] == cells[0].settings["tuned"]["values"]["lr_head"]
