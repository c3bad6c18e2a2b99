"""Cells on real Dask and Ray clusters: the same results as local workers, a lost worker, bad addresses."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from helpers.commands import PROJECT, study_command
from helpers.protocols import protocol_file_text, write_tiny_protocol

from study.execution.executor_registry import EXECUTORS
from study.execution.remote import writable_cache_dir
from study.store.results import ResultStore

SMOKE = PROJECT / "protocols" / "smoke.yaml"
COMPARED = ["run_id", "status", "n_train", "epochs", "best_epoch", "monitor_value", "accuracy", "balanced_accuracy",
            "auc", "f1_macro", "log_loss", "trainable_params", "settings_json"]
# a Ray cluster started here serves this machine only: Ray then uses the loopback address
LOOPBACK_RAY = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


def dirs(root: Path) -> list[str]:
    return ["--results-dir", str(root / "results"), "--report-dir", str(root / "report"), "--no-progress"]


def run_driver(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """`study run ...` in a fresh process that fails when the driver imports TensorFlow or Keras."""
    code = (
        "import sys; from study.cli import main\n"
        f"code = main({['run', *args]!r})\n"
        "assert not {'tensorflow', 'keras'} & set(sys.modules), 'the driver imported tensorflow'\n"
        "raise SystemExit(code)\n"
    )
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    return subprocess.run([sys.executable, "-c", code], cwd=PROJECT, env=full_env, capture_output=True, text=True,
                          timeout=600)


def stored(root: Path, protocol: str) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """The compared columns of every stored cell, and every cell's predictions."""
    store = ResultStore(root / "results", protocol)
    cells = store.cells().sort_values("run_id")[COMPARED].reset_index(drop=True)
    return cells, {run_id: store.predictions(run_id) for run_id in cells["run_id"]}


def assert_same_results(ours: Path, local: tuple[pd.DataFrame, dict]) -> None:
    """The smoke protocol's cells and predictions under ours equal the local executor's, to the last bit."""
    cells, predictions = stored(ours, "smoke")
    assert len(cells) == len(local[0]) and set(cells["status"]) == {"done"}
    pd.testing.assert_frame_equal(cells, local[0], check_exact=True)
    for run_id, expected in local[1].items():
        pd.testing.assert_frame_equal(predictions[run_id], expected, check_exact=True)


@pytest.fixture(scope="module")
def local_smoke(tmp_path_factory) -> tuple[pd.DataFrame, dict]:
    """The smoke protocol's results with the local executor (two worker processes, as the clusters below)."""
    root = tmp_path_factory.mktemp("local")
    result = study_command("run", str(SMOKE), *dirs(root), "--jobs", "2")
    assert result.returncode == 0, result.stderr
    return stored(root, "smoke")


@pytest.fixture
def dask_cluster():
    """A real LocalCluster of two worker processes (one thread each) and a client to watch it."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with Client(cluster) as client:
            yield cluster, client


@pytest.fixture
def ray_address(monkeypatch):
    """A real local Ray cluster of two CPUs, started in this process; its address."""
    for name, value in LOOPBACK_RAY.items():
        monkeypatch.setenv(name, value)
    import ray

    context = ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield context.address_info["gcs_address"]
    finally:
        ray.shutdown()


def kill_a_busy_worker(client, cells_dir: Path, driver: subprocess.Popen) -> int:
    """After the first stored cell, SIGKILL a worker process while it has a cell; its pid."""
    deadline = time.monotonic() + 300
    while not list(cells_dir.glob("*.parquet")):
        assert driver.poll() is None and time.monotonic() < deadline, "the sweep ended before a cell was stored"
        time.sleep(0.2)
    while True:
        busy = [worker for worker, keys in client.processing().items() if keys]
        if busy:
            break
        assert driver.poll() is None and time.monotonic() < deadline, "no worker had a cell to lose"
        time.sleep(0.1)
    pid = client.run(os.getpid, workers=busy[:1])[busy[0]]
    os.kill(pid, signal.SIGKILL)
    return pid


def tensorflow_settings() -> dict:
    """What a worker process's TensorFlow runs with (None where this process never imported it)."""
    if "tensorflow" not in sys.modules:
        return {}
    import tensorflow as tf

    return {"onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS"),
            "threads": tf.config.threading.get_intra_op_parallelism_threads()}


# ------------------------------------------------------------------------------------ existing clusters
@pytest.mark.integration
def test_dask_cluster_survives_a_killed_worker_and_matches_local(tmp_path, local_smoke, dask_cluster):
    cluster, client = dask_cluster
    command = [sys.executable, "-m", "study", "run", str(SMOKE), *dirs(tmp_path), "--executor", "dask",
               "--address", cluster.scheduler_address]
    driver = subprocess.Popen(command, cwd=PROJECT, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        killed = kill_a_busy_worker(client, tmp_path / "results" / "smoke" / "cells", driver)
        out, err = driver.communicate(timeout=600)
    finally:
        driver.kill()
    assert driver.returncode == 0, err
    assert f"running on the dask cluster at {cluster.scheduler_address} (2 cell(s) at a time)" in out
    assert "16 done, 0 failed, 0 skipped" in out  # the lost cell ran again, and came back once
    assert_same_results(tmp_path, local_smoke)

    client.wait_for_workers(2, timeout=60)  # the nanny replaced the killed process
    pids = client.run(os.getpid)
    assert killed not in pids.values()
    settings = [found for found in client.run(tensorflow_settings).values() if found]
    assert settings and all(found == {"onednn": "1", "threads": 1} for found in settings)


@pytest.mark.integration
def test_a_killed_driver_leaves_the_cluster_it_was_given_running(tmp_path, dask_cluster):
    cluster, client = dask_cluster
    workers = client.run(os.getpid)
    command = [sys.executable, "-m", "study", "run", str(write_tiny_protocol(tmp_path, seeds=4, epochs=10)),
               *dirs(tmp_path), "--executor", "dask", "--address", cluster.scheduler_address]
    driver = subprocess.Popen(command, cwd=PROJECT, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while not list((tmp_path / "results" / "tiny" / "cells").glob("*.parquet")):
            assert driver.poll() is None and time.monotonic() < deadline, "no cell was stored"
            time.sleep(0.2)
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait()
        time.sleep(5)  # longer than the lifeline's poll: a process that watched the driver would have ended
    finally:
        driver.kill()
    assert client.run(os.getpid) == workers, "the cluster's workers are the same processes, still running"


@pytest.mark.integration
def test_feature_map_comes_back_from_a_dask_worker_as_computed_here(tmp_path, dask_cluster):
    from study.execution.dask import DaskCluster
    from study.execution.local import run_task
    from study.plan.cells import network_settings
    from study.protocol.schema import load_protocol
    from study.training.context import WorkerContext
    from study.training.feature_map import feature_map

    protocol = load_protocol(write_tiny_protocol(tmp_path))
    context = WorkerContext(dataset=protocol.dataset.model_dump(), data_dir=None, cache_dir=str(tmp_path / "cache"),
                            threads=1)
    settings = network_settings(protocol)
    remote = run_task(feature_map, context, settings, jobs=2, cluster=DaskCluster(dask_cluster[1], None, jobs=2))
    here = run_task(feature_map, context, settings, jobs=1)
    assert remote.keys() == here.keys() and remote["features"].shape == (60, here["features"].shape[1])
    for name, array in here.items():
        assert (remote[name] == array).all(), name


@pytest.mark.integration
def test_ray_cluster_matches_local(tmp_path, local_smoke, ray_address):
    result = run_driver(str(SMOKE), *dirs(tmp_path), "--executor", "ray", "--address", ray_address, env=LOOPBACK_RAY)
    assert result.returncode == 0, result.stderr
    assert "running on the ray cluster at" in result.stdout and "(2 cell(s) at a time)" in result.stdout
    assert "16 done, 0 failed, 0 skipped" in result.stdout
    assert_same_results(tmp_path, local_smoke)


# ------------------------------------------------------------------------------ clusters started by run
LOOPBACK = {"dask": "tcp://127.0.0.1:", "ray": "127.0.0.1:"}  # where each cluster executor started here listens


@pytest.mark.integration
@pytest.mark.parametrize("executor", [name for name in EXECUTORS if name != "local"])
def test_without_address_a_local_cluster_runs_the_cells(tmp_path, executor):
    where = LOOPBACK[executor]
    protocol = write_tiny_protocol(tmp_path, seeds=1)
    result = run_driver(str(protocol), *dirs(tmp_path), "--executor", executor, "--jobs", "2")
    assert result.returncode == 0, result.stderr
    assert f"running on the {executor} cluster at {where}" in result.stdout  # on the loopback address only
    assert "4 done, 0 failed, 0 skipped" in result.stdout
    assert "INFO" not in result.stderr  # the cluster's own logging stays quiet without -v


# ------------------------------------------------------------------------------------------ bad input
def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("executor, address, code, message", [
    ("dask", "tcp://127.0.0.1:{port}", 1, "nothing is listening there"),
    ("ray", "127.0.0.1:{port}", 1, "nothing is listening there"),
    ("dask", "scheduler-without-port", 2, "expected HOST:PORT"),  # usage errors exit 2
    ("local", "127.0.0.1:{port}", 2, "--address needs --executor dask or --executor ray"),
])
def test_bad_address_is_one_line_and_leaves_the_store_alone(tmp_path, executor, address, code, message):
    protocol = write_tiny_protocol(tmp_path)
    address = address.format(port=closed_port())
    started = time.monotonic()
    result = study_command("run", str(protocol), *dirs(tmp_path), "--executor", executor, "--address", address)
    assert result.returncode == code
    error = result.stderr.strip()
    assert error.startswith("error: ") and message in error and len(error.splitlines()) == 1
    assert time.monotonic() - started < 60
    assert not (tmp_path / "results" / "tiny").exists()


def test_a_worker_that_cannot_write_the_cache_folder_uses_its_own(tmp_path):
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    assert writable_cache_dir(str(tmp_path / "shared" / ".cache")) == str(tmp_path / "shared" / ".cache")
    own = writable_cache_dir(str(blocked / ".cache"))
    assert own != str(blocked / ".cache") and Path(own).is_absolute()
    assert writable_cache_dir(None) is None


def test_a_worker_reading_other_data_than_the_driver_fails_its_cells(tmp_path):
    from study.plan.cells import plan_cells
    from study.protocol.schema import load_protocol
    from study.training.context import WorkerContext
    from study.training.worker import run_cell

    protocol = load_protocol(write_tiny_protocol(tmp_path))
    cell = plan_cells(protocol, "fingerprint")[0]
    context = WorkerContext(dataset=protocol.dataset.model_dump(), data_dir=str(tmp_path), cache_dir=None, threads=1,
                            fingerprint="the driver's files")
    row, predictions, _ = run_cell(cell, context)
    assert row["status"] == "failed" and predictions is None and row["failure"] == "deterministic"
    assert row["error"].startswith("DataError: the dataset this worker (") and str(tmp_path) in row["error"]
    assert "differs from the driver's" in row["error"]


# ------------------------------------------------------------------------------------ tuning on a cluster
def tune_on(cluster, tmp_path: Path) -> set[int]:
    """Tune a protocol's one arm through the cluster, within its budget; the pids of the processes that ran trials."""
    from study.data.sources import source_fingerprint
    from study.plan.cells import plan_units
    from study.protocol.schema import parse_protocol
    from study.training.context import WorkerContext
    from study.tuning.phase import run_tuning

    protocol = parse_protocol(protocol_file_text("tuned_scratch", name=f"tuned-{cluster.kind}"))
    units = plan_units(protocol, source_fingerprint(protocol.dataset, None))
    store = ResultStore(tmp_path / "results", protocol.name)
    context = WorkerContext(dataset=protocol.dataset.model_dump(), data_dir=None, cache_dir=str(tmp_path / "cache"),
                            threads=1)
    outcomes = []
    choices = run_tuning(protocol, store, units, context, jobs=2, cluster=cluster,
                         on_trial=lambda unit, outcome: outcomes.append(outcome))
    record = choices[units[0].key]
    assert len(outcomes) == 4 and record["complete"] + record["pruned"] + record["failed"] == 4, record
    assert record["complete"] >= 1 and store.tuning_records()[units[0].key] == record
    return {int(outcome.worker.rsplit(":", 1)[1]) for outcome in outcomes}


@pytest.mark.integration
def test_tuning_trials_run_on_the_dask_workers(tmp_path, dask_cluster):
    from study.execution.dask import DaskCluster

    _, client = dask_cluster
    ran = tune_on(DaskCluster(client, None, jobs=2), tmp_path)
    assert ran <= set(client.run(os.getpid).values()), "every trial ran in a Dask worker process"


@pytest.mark.integration
def test_tuning_trials_run_on_the_ray_workers(tmp_path, ray_address):
    import psutil

    from study.execution.ray import RayCluster

    ran = tune_on(RayCluster(ray_address, jobs=2, threads=1), tmp_path)
    titles = [" ".join(psutil.Process(pid).cmdline()) for pid in ran]  # Ray keeps its idle workers
    assert titles and all(title.startswith("ray::") for title in titles), titles
