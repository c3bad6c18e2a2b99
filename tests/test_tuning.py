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
from helpers.commands import PROJECT, study_command
from helpers.protocols import protocol_file_text

from study.core.errors import StudyError
from study.data.sources import source_fingerprint
from study.plan.cells import plan_cells, plan_units
from study.protocol.schema import load_protocol, parse_protocol
from study.store.results import ResultStore
from study.training import caches, worker
from study.training.context import WorkerContext
from study.training.trial import TrialTask, evaluate_trial
from study.tuning.phase import open_search, run_tuning


def context_for(protocol, tmp_path) -> WorkerContext:
    return WorkerContext(dataset=protocol.dataset.model_dump(), data_dir=None, cache_dir=str(tmp_path / "cache"),
                         threads=1)


def default_score(protocol, unit, context) -> float:
    """The validation score of the protocol's own (bad) learning rate, measured like a trial."""
    search = open_search(unit, protocol, context.cache_dir)  # any writable root: only its trial cell is used
    values = {"lr_head": unit.base.arm.lr_head}
    task = TrialTask(unit.key, -1, search.trial_cell(-1, values), protocol.tuning_metric())
    outcome = evaluate_trial(context, task)
    assert outcome.state == "complete", outcome.error
    return outcome.value


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["optuna", "keras_tuner"])
def test_tuning_beats_a_bad_default_learning_rate(engine, tmp_path):
    protocol = parse_protocol(protocol_file_text("tuning_bad_default_lr", name=f"bad-{engine}", engine=engine, trials=5))
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
    assert cells[0].arm.lr_head == record["values"]["lr_head"] == cells[0].settings.tuned.chosen()["lr_head"]


def test_a_trial_trains_the_arm_with_its_own_network_and_output_layer_rate(tmp_path):
    """A strategy's own backbone and lr.output reach its trials as they reach its cells."""
    protocol = parse_protocol(protocol_file_text("tuning_bad_default_lr", name="own", engine="optuna", trials=2).replace(
        "  - {name: scratch}",
        "  - {name: scratch, backbone: {name: cnn, weights: none, width: 4}, lr: {head: 1.0e-3, output: 0.02}}"))
    unit, = plan_units(protocol, source_fingerprint(protocol.dataset, None))
    task = open_search(unit, protocol, tmp_path).ask()
    arm = task.cell.arm
    assert arm.label == "scratch[cnn-4]" == unit.label and arm.backbone.width == 4 and arm.lr_output == 0.02
    assert arm.lr_head == task.cell.settings.arm.lr_head != 1.0e-3  # the trial's own value
    assert task.cell.settings.backbone.width == 4


class Guarded(np.ndarray):
    """An array whose forbidden rows raise when anything reads them."""

    forbidden = np.array([], dtype=np.int64)

    def __array_finalize__(self, obj) -> None:
        self.forbidden = getattr(obj, "forbidden", Guarded.forbidden)

    def __getitem__(self, key):
        rows = np.arange(self.shape[0])[key[0] if isinstance(key, tuple) else key]
        if np.isin(rows, self.forbidden).any():
            raise AssertionError("the test split was read")
        return np.asarray(self)[key]


def guard(array: np.ndarray, forbidden: np.ndarray) -> Guarded:
    guarded = array.view(Guarded)
    guarded.forbidden = forbidden
    return guarded


@pytest.mark.slow
def test_tuning_never_reads_the_test_split(tmp_path, monkeypatch):
    text = protocol_file_text("tuning_bad_default_lr", name="guarded", engine="optuna", trials=2).replace(
        "  - {name: scratch}", "  - {name: scratch}\n  - {name: finetune, depth: [1]}")
    protocol = parse_protocol(text)
    fingerprint = source_fingerprint(protocol.dataset, None)
    real_load, real_inputs = caches.load_for, caches.model_inputs
    test_rows = []

    def load_for(context, seed):  # test labels raise when read
        dataset = real_load(context, seed)
        test_rows[:] = np.flatnonzero(dataset.split == "test")
        return dataclasses.replace(dataset, labels=guard(dataset.labels, np.array(test_rows)))

    def model_inputs(cell, context, dataset, images):  # so do the test images the model would see
        return guard(real_inputs(cell, context, dataset, images), np.array(test_rows))

    monkeypatch.setattr(caches, "load_for", load_for)
    monkeypatch.setattr(caches, "model_inputs", model_inputs)
    store = ResultStore(tmp_path / "results", protocol.name)
    context = context_for(protocol, tmp_path)
    outcomes = []
    choices = run_tuning(protocol, store, plan_units(protocol, fingerprint), context, jobs=1,
                         on_trial=lambda unit, outcome: outcomes.append(outcome))
    assert len(test_rows) > 0 and len(choices) == 2 and len(outcomes) == 4
    assert [o.error for o in outcomes if o.state == "failed"] == []
    assert all(o.parts == ("train", "val") for o in outcomes if o.state == "complete")
    # the guard is real: a sweep cell, which evaluates on test, trips it
    row, _, _ = worker.run_cell(plan_cells(protocol, fingerprint, choices)[0], context)
    assert row["status"] == "failed" and "the test split was read" in row["error"]


def finished_and_running(database, study_name) -> tuple[int, int]:
    """Trials of a study that ended and that are running now (0, 0 before the study exists)."""
    import optuna
    from optuna.trial import TrialState

    if not database.exists():
        return 0, 0
    try:
        study = optuna.load_study(study_name=study_name, storage=f"sqlite:///{database}")
    except Exception:  # not created yet, or the database is being set up
        return 0, 0
    trials = study.get_trials(deepcopy=False)
    ended = {TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL}
    return sum(t.state in ended for t in trials), sum(t.state == TrialState.RUNNING for t in trials)


@pytest.mark.integration
def test_tuning_killed_by_sigkill_resumes_with_exactly_the_budget(tmp_path):
    import optuna
    from optuna.trial import TrialState

    budget = 4
    path = tmp_path / "killed.yaml"
    path.write_text(protocol_file_text("tuning_bad_default_lr", name="killed", engine="optuna", trials=budget).replace(
        "  - {name: scratch}", "  - {name: scratch}\n  - {name: finetune, depth: [1]}"))
    protocol = load_protocol(path)
    unit, other = plan_units(protocol, source_fingerprint(protocol.dataset, None))
    database = tmp_path / "results" / "killed" / "tuning" / "optuna-killed-once.db"
    dirs = ["--results-dir", str(tmp_path / "results"), "--report-dir", str(tmp_path / "report")]
    command = [sys.executable, "-m", "study", "run", str(path), *dirs, "--jobs", "2", "--no-progress"]
    process = subprocess.Popen(command, cwd=PROJECT, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
                               start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 400
    finished, running = 0, 0
    while time.time() < deadline and not (finished >= 2 and running >= 1) and process.poll() is None:
        time.sleep(0.1)
        finished, running = finished_and_running(database, unit.name)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert 2 <= finished < budget and running >= 1, "the kill should land mid-search, during a trial"
    assert ResultStore(tmp_path / "results", "killed").tuning_records() == {}

    resumed = study_command("run", str(path), *dirs, "--jobs", "2")
    assert resumed.returncode == 0, resumed.stderr
    study = optuna.load_study(study_name=unit.name, storage=f"sqlite:///{database}")
    trials = study.get_trials(deepcopy=False)
    interrupted = [t for t in trials if t.user_attrs.get("interrupted")]
    counted = [t for t in trials if not t.user_attrs.get("interrupted")]
    assert len(interrupted) >= 1 and all(t.state == TrialState.FAIL for t in interrupted)
    assert len(counted) == budget and {t.state for t in counted} <= {TrialState.COMPLETE, TrialState.PRUNED}
    requeued = {t.user_attrs.get("requeued_from") for t in counted} - {None}
    assert requeued == {t.number for t in interrupted}, "interrupted values run again"
    records = ResultStore(tmp_path / "results", "killed").tuning_records()
    assert records[unit.key]["complete"] + records[unit.key]["pruned"] == budget
    assert records[unit.key]["best_value"] == study.best_value
    assert records[other.key]["complete"] + records[other.key]["pruned"] == budget

    cells = ResultStore(tmp_path / "results", "killed").cells().set_index("arm")
    assert len(cells) == 2 and set(cells["status"]) == {"done"}
    assert cells.loc["scratch", "tuned_lr_head"] == cells.loc["scratch", "lr_head"] == study.best_params["lr_head"]
    assert set(cells["tuning_trials"]) == {budget} and set(cells["tuning_engine"]) == {"optuna"}
    report = (tmp_path / "report" / "killed" / "report.md").read_text()
    assert "## Tuning" in report and report.count(f"{budget} of {budget}") == 2

    code = ("import sys; from study.cli import main\n"
            f"main(['status', {str(path)!r}, '--results-dir', {str(tmp_path / 'results')!r}])\n"
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'tensorflow imported'\n")
    status = subprocess.run([sys.executable, "-c", code], cwd=PROJECT, capture_output=True, text=True)
    assert status.returncode == 0, status.stderr
    assert "2 of 2 tuned" in status.stdout and "total: 2 done, 0 failed, 0 pending" in status.stdout


def test_a_search_whose_every_trial_fails_says_why(tmp_path):
    from dataclasses import replace

    protocol = parse_protocol(protocol_file_text("tuning_bad_default_lr", name="no-data", engine="optuna", trials=2))
    units = plan_units(protocol, source_fingerprint(protocol.dataset, None))
    unreadable = replace(context_for(protocol, tmp_path), dataset={**protocol.dataset.model_dump(), "classes": 0})
    with pytest.raises(StudyError, match=r"none of its 2 trials completed \(2 failed.*; the last trial failed with "
                                         r"ValidationError"):
        run_tuning(protocol, ResultStore(tmp_path / "results", protocol.name), units, unreadable, jobs=1)
