"""Reliability: failure kinds, retries and stops, fatal store errors, the run lock, pruning, kills, reproducibility."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from helpers.commands import PROJECT, study_command
from helpers.protocols import protocol_file_text, write_tiny_protocol

from study.cli import main
from study.core.errors import DataError, StudyError
from study.core.failures import FailureKind, FatalError, failure_kind
from study.execution.lifeline import still_running
from study.execution.executor_registry import EXECUTORS
from study.execution.scheduler import dispatch_order, run_sweep
from study.plan.cells import plan_cells
from study.protocol.schema import RunSpec, load_protocol
from study.runner.lock import RunLock
from study.store.results import ResultStore
from study.training import worker
from study.training.context import WorkerContext
from study.training.process import KILL_HOOK
from study.training.rows import cell_row
from study.training.train import TrainingFailed


def tiny_cells(tmp_path: Path):
    return plan_cells(load_protocol(write_tiny_protocol(tmp_path)), "fingerprint")


def context() -> WorkerContext:
    return WorkerContext(dataset={}, data_dir=None, cache_dir=None, threads=1)


def one_prediction(run_id: str) -> pd.DataFrame:
    """A done cell's predictions (one test image): a done row is stored with them."""
    return pd.DataFrame({"run_id": run_id, "image_id": ["x"], "label": [0], "predicted": [0], "prob_0": [1.0]})


def fake_run(outcomes: list):
    """A stand-in for the worker's training step: raises or succeeds in the order given, then succeeds."""
    calls = []

    def run(cell, context, started):
        calls.append(cell.run_id)
        outcome = outcomes.pop(0) if outcomes else None
        if isinstance(outcome, BaseException):
            raise outcome
        row = cell_row(cell, started)
        row.update(status="done", auc=0.9)
        return row, one_prediction(cell.run_id), None

    run.calls = calls
    return run


# ------------------------------------------------------------------------------------------- failure kinds
@pytest.mark.parametrize(
    "exc, kind",
    [
        (RuntimeError("worker lost"), FailureKind.RETRYABLE),
        (OSError(errno.EIO, "I/O error"), FailureKind.RETRYABLE),
        (ValueError("Input 0 is incompatible with the layer: expected shape"), FailureKind.DETERMINISTIC),
        (TypeError("unsupported operand"), FailureKind.DETERMINISTIC),
        (TrainingFailed("the training loss became nan in epoch 2"), FailureKind.DETERMINISTIC),
        (StudyError("bad settings"), FailureKind.DETERMINISTIC),
        (PermissionError(errno.EACCES, "Permission denied"), FailureKind.DETERMINISTIC),
        (OSError(errno.ENOSPC, "No space left on device"), FailureKind.FATAL),
        (KeyError("epochs"), FailureKind.DETERMINISTIC),  # a programming error fails again
        (AttributeError("'NoneType' object has no attribute 'trials'"), FailureKind.DETERMINISTIC),
        (FatalError("cannot write results"), FailureKind.FATAL),  # declared by the raising code
        (DataError("missing.png: no such file"), FailureKind.DETERMINISTIC),
        (type("Flaky", (StudyError,), {"failure": FailureKind.RETRYABLE})("try again"), FailureKind.RETRYABLE),
    ],
)
def test_failure_kinds(exc, kind):
    assert failure_kind(exc) is kind


def test_retryable_failure_is_tried_again_and_counts_attempts(tmp_path, monkeypatch):
    cells = tiny_cells(tmp_path)[:3]
    run = fake_run([RuntimeError("flaky"), RuntimeError("flaky again")])
    monkeypatch.setattr(worker, "_run", run)
    store = ResultStore(tmp_path / "results", "tiny")
    summary = run_sweep(cells, store, context(), jobs=1, policy=RunSpec(retries=2))
    stored = store.cells().set_index("run_id")
    assert summary.done == 3 and summary.failed == 0 and summary.retries == 2
    first = dispatch_order(cells)[0]  # the cell that met both errors
    assert stored.loc[first.run_id, "attempts"] == 3 and stored["attempts"].tolist().count(1) == 2
    assert "2 retries" in summary.line(1.0)


def test_retries_are_bounded_then_the_cell_is_stored_failed(tmp_path, monkeypatch):
    cells = tiny_cells(tmp_path)[:1]
    monkeypatch.setattr(worker, "_run", fake_run([RuntimeError("flaky")] * 5))
    store = ResultStore(tmp_path / "results", "tiny")
    summary = run_sweep(cells, store, context(), jobs=1, policy=RunSpec(retries=1))
    row = store.cells().iloc[0]
    assert summary.failed == 1 and row["status"] == "failed" and row["attempts"] == 2
    assert row["failure"] == "retryable" and row["error"] == "RuntimeError: flaky"


def test_deterministic_failure_is_stored_without_retry(tmp_path, monkeypatch):
    cells = tiny_cells(tmp_path)[:2]
    run = fake_run([TrainingFailed("the training loss became nan in epoch 1; lower the learning rate")])
    monkeypatch.setattr(worker, "_run", run)
    store = ResultStore(tmp_path / "results", "tiny")
    summary = run_sweep(cells, store, context(), jobs=1, policy=RunSpec(retries=3))
    assert len(run.calls) == 2 and summary.failed == 1 and summary.done == 1
    failed = store.cells().query("status == 'failed'").iloc[0]
    assert failed["failure"] == "deterministic" and failed["attempts"] == 1
    assert failed["error"].startswith("TrainingFailed: the training loss became nan")


def test_consecutive_failures_stop_the_sweep(tmp_path, monkeypatch):
    cells = tiny_cells(tmp_path)
    monkeypatch.setattr(worker, "_run", fake_run([ValueError("bad shape")] * 8))
    store = ResultStore(tmp_path / "results", "tiny")
    summary = run_sweep(cells, store, context(), jobs=1, policy=RunSpec(retries=0, max_consecutive_failures=3))
    assert summary.failed == 3 and len(store.cells()) == 3
    assert summary.stopped.startswith("3 cells failed in a row (run.max_consecutive_failures: 3)")


def test_a_success_resets_the_consecutive_count(tmp_path, monkeypatch):
    cells = tiny_cells(tmp_path)
    outcomes = [ValueError("x"), ValueError("x"), None, ValueError("x"), ValueError("x"), None, None, None]
    monkeypatch.setattr(worker, "_run", fake_run(outcomes))
    summary = run_sweep(cells, ResultStore(tmp_path / "r", "tiny"), context(), jobs=1,
                        policy=RunSpec(retries=0, max_consecutive_failures=3))
    assert summary.stopped is None and summary.failed == 4 and summary.done == 4


def test_disk_full_in_a_cell_stops_the_sweep(tmp_path, monkeypatch):
    cells = tiny_cells(tmp_path)
    monkeypatch.setattr(worker, "_run", fake_run([None, OSError(errno.ENOSPC, "No space left on device")]))
    store = ResultStore(tmp_path / "results", "tiny")
    summary = run_sweep(cells, store, context(), jobs=1, policy=RunSpec(max_consecutive_failures=None))
    assert summary.done == 1 and summary.failed == 1 and "failed fatally" in summary.stopped
    assert "No space left on device" in summary.stopped


def test_a_dying_executor_stops_the_sweep_keeping_what_finished(tmp_path, monkeypatch):
    from study.execution import scheduler

    cells = tiny_cells(tmp_path)

    def dying(todo, context, jobs, retries, cluster=None):
        row = cell_row(todo[0], datetime.now())
        yield {**row, "status": "done"}, one_prediction(row["run_id"]), None
        raise RuntimeError("A worker process managed by the executor was unexpectedly terminated.\nSIGKILL(-9)")

    monkeypatch.setattr(scheduler, "execute", dying)
    store = ResultStore(tmp_path / "results", "tiny")
    summary = run_sweep(cells, store, context(), jobs=2)
    assert summary.done == 1 and len(store.cells()) == 1 and "\n" not in summary.stopped
    assert summary.stopped.startswith("the worker processes failed (RuntimeError: A worker process managed by")


def test_unwritable_store_stops_the_sweep_with_one_line(tmp_path, monkeypatch):
    cells = tiny_cells(tmp_path)
    monkeypatch.setattr(worker, "_run", fake_run([]))
    store = ResultStore(tmp_path / "results", "tiny")
    store.put(cell_row(cells[0], datetime.now(timezone.utc)) | {"run_id": "earlier", "status": "done"}, None)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pq, "write_table", full)
    summary = run_sweep(cells, store, context(), jobs=1)
    assert summary.done == 0 and summary.stopped.startswith(f"cannot write results in {store.predictions_dir}")
    assert "the disk is full" in summary.stopped and "\n" not in summary.stopped
    assert not [path for path in store.root.rglob("*") if path.suffix == ".tmp"]


def test_read_only_results_exit_1_with_one_line(tmp_path, monkeypatch, capsys):
    protocol = write_tiny_protocol(tmp_path)

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(os, "mkdir", read_only)
    code = main(["run", str(protocol), "--results-dir", str(tmp_path / "results"), "--jobs", "1"])
    error = capsys.readouterr().err.strip()
    assert code == 1 and error.startswith(f"error: cannot write results in {tmp_path / 'results' / 'tiny'}: it is")
    assert "--results-dir" in error and len(error.splitlines()) == 1


def test_cli_reports_the_stop_and_counts_failures(tmp_path, monkeypatch, capsys):
    protocol = write_tiny_protocol(tmp_path)
    protocol.write_text(protocol.read_text() + "run: {retries: 0, max_consecutive_failures: 2}\n")
    monkeypatch.setattr(worker, "_run", fake_run([ValueError("bad shape")] * 8))
    code = main(["run", str(protocol), "--results-dir", str(tmp_path / "results"), "--jobs", "1", "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 1 and "0 done, 2 failed, 0 skipped" in out
    assert "error: the sweep stopped: 2 cells failed in a row (run.max_consecutive_failures: 2)" in err
    assert err.count("failed: ") >= 2 and "ValueError: bad shape" in err
    assert main(["status", str(protocol), "--results-dir", str(tmp_path / "results")]) == 0
    assert "ValueError: bad shape [deterministic, 1 attempt(s)]" in capsys.readouterr().out


def test_run_options_do_not_change_run_ids(tmp_path):
    protocol = write_tiny_protocol(tmp_path)
    before = [cell.run_id for cell in plan_cells(load_protocol(protocol), "fp")]
    protocol.write_text(protocol.read_text().replace("size: 16}", "size: 16, on_bad_file: skip}")
                        + "run: {retries: 4, max_consecutive_failures: null}\n")
    assert [cell.run_id for cell in plan_cells(load_protocol(protocol), "fp")] == before


# ------------------------------------------------------------------------------------------------ the lock
HOLDER = textwrap.dedent("""\
    import sys, time
    from pathlib import Path
    from study.runner.lock import RunLock
    lock = RunLock(Path(sys.argv[1]))
    lock.acquire()
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
    lock.release()
""")


def hold_lock(root: Path, seconds: float) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-c", HOLDER, str(root), str(seconds)], cwd=PROJECT,
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "held"
    return process


def test_second_run_is_refused_naming_the_holder(tmp_path):
    holder = hold_lock(tmp_path, 60)
    try:
        with pytest.raises(StudyError, match=rf"another `study run` is writing these results \(pid {holder.pid} on "
                                             rf".+ since 20\d\d-.+\); .*--wait"):
            RunLock(tmp_path).acquire()
        assert f"pid {holder.pid}" in RunLock(tmp_path).held_elsewhere()
    finally:
        holder.kill()
        holder.wait()


def test_lock_of_a_killed_run_is_taken_over(tmp_path):
    holder = hold_lock(tmp_path, 60)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    stale = json.loads((tmp_path / ".lock.holder").read_text())
    assert stale["pid"] == holder.pid  # the killed run's holder file is still there ...
    assert RunLock(tmp_path).held_elsewhere() is None  # ... but nobody holds the lock
    lock = RunLock(tmp_path)
    lock.acquire()
    assert json.loads((tmp_path / ".lock.holder").read_text())["pid"] == os.getpid()
    lock.release()
    assert not (tmp_path / ".lock.holder").exists()


def test_a_lock_outliving_its_recorded_holder_is_explained(tmp_path):
    holder = hold_lock(tmp_path, 60)
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    info = json.loads((tmp_path / ".lock.holder").read_text())
    (tmp_path / ".lock.holder").write_text(json.dumps({**info, "pid": int(ended.stdout)}))
    try:
        with pytest.raises(StudyError, match=rf"pid {int(ended.stdout)} on .*which has ended: a process it started"):
            RunLock(tmp_path).acquire()
    finally:
        holder.kill()
        holder.wait()


def test_wait_blocks_until_the_holder_ends(tmp_path):
    holder = hold_lock(tmp_path, 1.5)
    waited = []
    started = time.monotonic()
    lock = RunLock(tmp_path)
    lock.acquire(wait=True, on_wait=waited.append)
    assert time.monotonic() - started > 0.5 and f"pid {holder.pid}" in waited[0]
    lock.release()
    holder.wait()


def test_cli_run_refused_while_locked(tmp_path, capsys):
    protocol = write_tiny_protocol(tmp_path)
    holder = hold_lock(tmp_path / "results" / "tiny", 60)
    try:
        code = main(["run", str(protocol), "--results-dir", str(tmp_path / "results")])
    finally:
        holder.kill()
        holder.wait()
    out, err = capsys.readouterr()
    assert code == 1 and f"(pid {holder.pid} on" in err and len(err.strip().splitlines()) == 1
    assert out == ""  # the refusal alone: no "N cells, M to run" before it


# ----------------------------------------------------------------------------------- protocol changes, prune
def test_prune_lists_then_deletes_only_stale_results(tmp_path, capsys):
    protocol = write_tiny_protocol(tmp_path)
    args = ["--results-dir", str(tmp_path / "results")]
    store = ResultStore(tmp_path / "results", "tiny")
    old = cell_row(tiny_cells(tmp_path)[0], datetime.now(timezone.utc))
    store.put(old | {"run_id": "old-settings", "status": "done"},
              pd.DataFrame({"run_id": ["old-settings"], "image_id": ["a"], "label": [0], "predicted": [0],
                            "prob_0": [1.0]}))
    assert main(["status", str(protocol), *args]) == 0
    assert "1 stored results are not planned by this protocol" in capsys.readouterr().out

    assert main(["prune", str(protocol), *args]) == 0
    assert "nothing deleted (add --yes" in capsys.readouterr().out and len(store.cells()) == 1
    assert main(["prune", str(protocol), *args, "--yes"]) == 0
    assert "deleted 1 stored results" in capsys.readouterr().out
    assert store.cells().empty and store.predictions("old-settings") is None


# --------------------------------------------------------------------------------------- fractions and data
def test_fraction_too_small_for_a_class_is_a_protocol_error(tmp_path, capsys):
    protocol = write_tiny_protocol(tmp_path)
    protocol.write_text(protocol.read_text().replace("fractions: [0.5, 1.0]", "fractions: [0.02, 1.0]"))
    code = main(["plan", str(protocol), "--results-dir", str(tmp_path / "results")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith(f"error: {protocol}:7: fractions: fraction 0.02 leaves class 'class_0' with no image")
    assert "at least 0.0264 " in err and len(err.splitlines()) == 1  # 0.5 / 19 images; 0.0263 x 19 rounds to 0
    protocol.write_text(protocol.read_text().replace("fractions: [0.02, 1.0]", "fractions: [0.0264, 1.0]"))
    assert main(["plan", str(protocol), "--results-dir", str(tmp_path / "results")]) == 0


def test_skipped_files_are_counted_in_dataset_json_and_every_row(tmp_path, monkeypatch, capsys):
    import numpy as np
    from PIL import Image

    for label in ("a", "b"):
        (tmp_path / "set" / label).mkdir(parents=True)
        for i in range(6):
            noise = np.random.default_rng(i).integers(0, 256, (20, 20), dtype=np.uint8)
            Image.fromarray(noise).save(tmp_path / "set" / label / f"img ({i}).png")
    (tmp_path / "set" / "b" / "torn (7).png").write_bytes(b"\x89PNG\r\n\x1a\n torn")
    protocol = tmp_path / "folder.yaml"
    protocol.write_text(write_tiny_protocol(tmp_path).read_text()
                        .replace("{source: synthetic, classes: 2, per_class: 30, size: 16}",
                                 f"{{source: folder, path: {tmp_path / 'set'}, size: 16, on_bad_file: skip}}")
                        .replace("[0.5, 1.0]", "[1.0]") + "run: {retries: 0, max_consecutive_failures: 1}\n")
    monkeypatch.setattr(worker, "_run", fake_run([ValueError("stop after one")]))
    code = main(["run", str(protocol), "--results-dir", str(tmp_path / "results"), "--jobs", "1", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1 and "note: skipped 1 unreadable or missing image files" in err
    info = json.loads((tmp_path / "results" / "tiny" / "dataset.json").read_text())
    assert info["images"] == 12 and info["skipped_files"] == 1 and "torn (7).png" in info["skipped"][0]
    assert ResultStore(tmp_path / "results", "tiny").cells()["skipped_files"].tolist() == [1]


# ------------------------------------------------------------------------------------ kills, reproducibility
@pytest.mark.integration
@pytest.mark.parametrize("driver_only", [False, True], ids=["process-group", "driver-alone"])
def test_random_sigkills_mid_sweep_lose_and_duplicate_nothing(tmp_path, driver_only):
    import importlib.util

    spec = importlib.util.spec_from_file_location("torture", PROJECT / "benchmarks" / "torture.py")
    torture = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(torture)
    counts = torture.torture(tmp_path, kills=2, min_delay=0.0, max_delay=2.0, seed=1, seeds=1, after_a_cell=True,
                             driver_only=driver_only)
    assert counts["kills"] + counts["finished_before_kill"] == 2 and counts["cells"] == 8
    assert counts["kills_mid_sweep"] == counts["kills"] and counts["orphans"] == 0


@pytest.mark.slow
def test_same_protocol_and_seed_give_identical_metrics_in_separate_runs(tmp_path):
    protocol = write_tiny_protocol(tmp_path, seeds=1, epochs=3)
    runs = []
    for name in ("first", "second"):
        result = study_command("run", str(protocol), "--results-dir", str(tmp_path / name), "--report-dir",
                               str(tmp_path / f"report-{name}"), "--jobs", "2", "--no-progress")
        assert result.returncode == 0, result.stderr
        runs.append(ResultStore(tmp_path / name, "tiny"))
    columns = ["run_id", "n_train", "epochs", "best_epoch", "monitor_value", "accuracy", "balanced_accuracy", "auc",
               "f1_macro", "log_loss", "trainable_params", "settings_json", "tensorflow_version", "numpy_version"]
    first, second = (store.cells().sort_values("run_id")[columns].reset_index(drop=True) for store in runs)
    assert len(first) == 4
    pd.testing.assert_frame_equal(first, second, check_exact=True)
    for run_id in first["run_id"]:
        pd.testing.assert_frame_equal(runs[0].predictions(run_id), runs[1].predictions(run_id), check_exact=True)


# ------------------------------------------------------------------------------ orphans and worker deaths
LOOPBACK_RAY = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}  # a local Ray cluster on the loopback address
TUNED = protocol_file_text("tuned_scratch")


def start_driver(tmp_path: Path, protocol: Path, *args: str) -> subprocess.Popen:
    """`study run PROTOCOL --jobs 2` in its own session, its output in tmp_path/driver.log."""
    command = [sys.executable, "-m", "study", "run", str(protocol), "--results-dir", str(tmp_path / "results"),
               "--report-dir", str(tmp_path / "report"), "--jobs", "2", "--no-progress", *args]
    with open(tmp_path / "driver.log", "wb") as log:
        return subprocess.Popen(command, cwd=PROJECT, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **LOOPBACK_RAY},
                                start_new_session=True, stdout=log, stderr=log)


def wait_for(condition, driver: subprocess.Popen, tmp_path: Path, what: str, seconds: float = 300) -> None:
    """Wait until condition() holds, failing when the driver ends first or after `seconds`."""
    deadline = time.monotonic() + seconds
    while not condition():
        log = (tmp_path / "driver.log").read_text()
        assert driver.poll() is None, f"the run ended before a {what}: {log[-2000:]}"
        assert time.monotonic() < deadline, f"no {what} after {seconds} s"
        time.sleep(0.1)


def kill_driver_alone(driver: subprocess.Popen) -> list[str]:
    """SIGKILL the driver, not its process group; the processes of its run (recorded before the kill) that still
    run 10 s later, which are then killed."""
    import psutil

    run = psutil.Process(driver.pid).children(recursive=True)
    assert len(run) >= 2, "the run should have started its worker processes"
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    deadline = time.monotonic() + 10
    while still_running(run) and time.monotonic() < deadline:
        time.sleep(0.1)
    survivors = still_running(run)
    for process in survivors:
        process.kill()
    return [" ".join(process.cmdline())[:120] for process in survivors]


@pytest.mark.integration
@pytest.mark.parametrize("executor", ["local", "dask", "ray"])
def test_a_driver_killed_alone_mid_sweep_takes_every_process_of_its_run_with_it(tmp_path, executor):
    protocol = write_tiny_protocol(tmp_path, seeds=6, epochs=20)
    cells = ResultStore(tmp_path / "results", "tiny").cells_dir
    driver = start_driver(tmp_path, protocol, "--executor", executor)
    try:
        wait_for(lambda: cells.is_dir() and any(cells.glob("*.parquet")), driver, tmp_path, "stored cell")
        assert kill_driver_alone(driver) == []
    finally:
        driver.kill()
    assert 1 <= len(list(cells.glob("*.parquet"))) < 24, "the kill should land mid-sweep"


@pytest.mark.integration
def test_a_driver_killed_alone_mid_tuning_takes_its_trial_workers_with_it(tmp_path):
    protocol = tmp_path / "tuned.yaml"
    protocol.write_text(TUNED.replace("trials: 4", "trials: 40").replace("epochs: 3", "epochs: 20"))
    driver = start_driver(tmp_path, protocol)
    try:
        wait_for(lambda: "[tuning]" in (tmp_path / "driver.log").read_text(), driver, tmp_path, "finished trial")
        assert kill_driver_alone(driver) == []
    finally:
        driver.kill()


def _die_when_told(item: str) -> tuple[str, int]:
    """A task that SIGKILLs its own process for the item "deadly", and returns (item, pid) for the others."""
    time.sleep(0.3)
    if item == "deadly":
        os.kill(os.getpid(), signal.SIGKILL)
    return item, os.getpid()


@pytest.mark.integration
def test_a_task_that_kills_its_worker_is_given_up_alone_and_the_others_finish():
    from study.core.failures import WorkerLost
    from study.execution.pool import LocalPool

    outcomes = dict(LocalPool(2).map_unordered(_die_with, ["a", "deadly", "b", "c", "d"], context()))
    lost = outcomes.pop("deadly")
    assert isinstance(lost, WorkerLost) and lost.attempts == 2
    assert lost.reason.startswith("its worker process died twice, the second time running it alone in a fresh "
                                  "process: killed by SIGKILL, likely out of memory")
    assert "peak resident memory" in lost.reason
    assert {item: returned for item, (returned, _) in outcomes.items()} == {"a": "a", "b": "b", "c": "c", "d": "d"}


def _die_with(context, item):
    return _die_when_told(item)


@pytest.mark.parametrize("jobs", [1, 2])
def test_map_unordered_gives_each_item_its_outcome_here_and_in_worker_processes(jobs):
    from study.core.failures import WorkerLost
    from study.execution.local import map_unordered

    outcomes = dict(map_unordered(_die_with, ["a", "b", "c"] + (["deadly"] if jobs > 1 else []), context(), jobs))
    if jobs > 1:
        lost = outcomes.pop("deadly")
        assert isinstance(lost, WorkerLost) and lost.attempts == 2 and "killed by SIGKILL" in lost.reason
    assert {item: returned for item, (returned, _) in outcomes.items()} == {"a": "a", "b": "b", "c": "c"}
    assert {pid == os.getpid() for _, pid in outcomes.values()} == {jobs == 1}  # jobs 1: in this process


@pytest.mark.parametrize("exit_code, words", [(-9, "killed by SIGKILL, likely out of memory"),
                                              (-11, "killed by SIGSEGV (signal 11)"), (3, "exited with code 3")])
def test_a_dead_process_is_described_by_signal_or_exit_code_and_peak_memory(exit_code, words):
    from study.execution.pool import ProcessDeath

    described = ProcessDeath(exit_code, 300 * 2**20).describe()
    assert described.startswith(words) and described.endswith("; peak resident memory 300 MiB")


def victim(protocol: Path, index: int = 1):
    """The cell at index of a protocol (the test hook names it by run id)."""
    from study.data.sources import source_fingerprint

    loaded = load_protocol(protocol)
    return plan_cells(loaded, source_fingerprint(loaded.dataset, None))[index]


LOST = {  # how each registered executor's stored error begins for a cell that kills every worker running it
    "local": "WorkerLost: its worker process died twice, the second time running it alone in a fresh process: "
             "killed by SIGKILL, likely out of memory",
    "dask": "WorkerLost: the Dask scheduler gave up on it, the worker processes running it died",
    "ray": "WorkerLost: Ray gave up on it, the worker processes running it died",
}


@pytest.mark.integration
@pytest.mark.parametrize("executor", EXECUTORS)
def test_a_cell_that_kills_its_worker_is_stored_failed_and_the_sweep_goes_on(tmp_path, executor):
    protocol = write_tiny_protocol(tmp_path, seeds=1)
    deadly = victim(protocol)
    result = study_command("run", str(protocol), "--results-dir", str(tmp_path / "results"), "--report-dir",
                           str(tmp_path / "report"), "--jobs", "2", "--no-progress", "--executor", executor,
                           env={KILL_HOOK: deadly.run_id, **LOOPBACK_RAY}, timeout=600)
    assert result.returncode == 1, result.stderr
    assert "3 done, 1 failed, 0 skipped" in result.stdout and "the sweep stopped" not in result.stderr
    cells = ResultStore(tmp_path / "results", "tiny").cells().set_index("run_id")
    lost = cells.loc[deadly.run_id]
    assert lost["status"] == "failed" and lost["failure"] == "deterministic", lost["error"]
    assert lost["error"].startswith(LOST[executor]), lost["error"]
    output = f"(its output: {tmp_path / 'results' / 'tiny' / 'logs' / 'worker-'}"
    assert executor != "local" or ("peak resident memory" in lost["error"] and lost["attempts"] == 2
                                   and output in lost["error"])
    assert set(cells.drop(deadly.run_id)["status"]) == {"done"} and len(cells) == 4
    assert f"failed: {deadly.arm.label} fraction=0.5 seed=0: WorkerLost: " in result.stderr


@pytest.mark.integration
def test_a_trial_that_kills_its_worker_counts_as_failed_and_tuning_goes_on(tmp_path, monkeypatch):
    from study.data.sources import source_fingerprint
    from study.execution.pool import worker_pool
    from study.plan.cells import plan_units
    from study.protocol.schema import parse_protocol
    from study.tuning.phase import run_tuning

    protocol = parse_protocol(TUNED)
    unit = plan_units(protocol, source_fingerprint(protocol.dataset, None))[0]
    monkeypatch.setenv(KILL_HOOK, f"{unit.name}-trial1")
    worker_pool(2).shutdown(wait=True)  # workers started by an earlier test would not see the hook
    store = ResultStore(tmp_path / "results", protocol.name)
    context = WorkerContext(dataset=protocol.dataset.model_dump(), data_dir=None,
                                   cache_dir=str(tmp_path / "cache"), threads=1)
    outcomes = []
    choices = run_tuning(protocol, store, [unit], context, jobs=2, on_trial=lambda unit, outcome: outcomes.append(outcome))
    by_number = {outcome.number: outcome for outcome in outcomes}
    assert sorted(by_number) == [0, 1, 2, 3] and by_number[1].state == "failed"
    assert by_number[1].error.startswith("WorkerLost: its worker process died twice")
    record = choices[unit.key]
    assert record["failed"] == 1 and record["complete"] + record["pruned"] == 3 and record["complete"] >= 1
