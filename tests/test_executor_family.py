"""Every registered executor keeps the same promises, checked on real workers with tiny functions: each item comes
back, outcomes come as they finish, at most `jobs` run at once, the function's exception reaches the driver, a killed
worker comes back as WorkerLost, and closing stops the work and lets every worker process go."""

from __future__ import annotations

import importlib
import importlib.util
import os
import signal
import sys
import time
from pathlib import Path

import psutil
import pytest

from study.core.failures import WorkerLost
from study.execution.in_process import InProcess
from study.execution.executor_registry import EXECUTORS
from study.training.context import WorkerContext

# each registered executor, opened as `study run` opens it without --address; local twice: this process and a pool
OPENED = [pytest.param((name, jobs), id=f"{name}-{jobs}", marks=[] if name == "local" else pytest.mark.integration)
          for name in EXECUTORS for jobs in ([1, 2] if name == "local" else [2])]
WITH_WORKER_PROCESSES = [param for param in OPENED if param.id != "local-1"]  # local-1 runs in the driver itself


@pytest.fixture(scope="module", params=OPENED)
def executor(request, tmp_path_factory):
    """A registered executor of `jobs` workers, shared by the module's tests; on closing, every process that ran an
    item (see `started`) ends."""
    name, jobs = request.param
    if name != "local":
        _travel_by_value()
    opened = EXECUTORS[name].open(None, jobs, cells=jobs, threads=1)
    opened.scratch = tmp_path_factory.mktemp(f"{name}-{jobs}")
    with opened:
        yield opened
    workers = {int(path.read_text()) for path in opened.scratch.glob("*/started-*")} - {os.getpid()}
    assert not _still_running(workers, seconds=30), f"{name}: worker processes outlived close()"


def _travel_by_value() -> None:
    """Send this module's functions to cluster workers by value: the tests folder is not on their path."""
    for pickler in ("cloudpickle", "ray.cloudpickle"):
        if importlib.util.find_spec(pickler.split(".")[0]) is not None:
            importlib.import_module(pickler).register_pickle_by_value(sys.modules[__name__])


def _still_running(pids: set[int], seconds: float) -> set[int]:
    deadline = time.monotonic() + seconds
    while True:
        running = {pid for pid in pids if _alive(pid)}
        if not running or time.monotonic() > deadline:
            return running
        time.sleep(0.2)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.fixture
def context(executor, request) -> WorkerContext:
    """A context whose cache folder is the test's scratch folder, which every worker shares (one machine)."""
    scratch = executor.scratch / request.node.name.split("[")[0]
    scratch.mkdir()
    return WorkerContext(dataset={}, data_dir=None, cache_dir=str(scratch), threads=1)


def task(context: WorkerContext, item: tuple[str, float]) -> tuple[str, int, int]:
    """Mark the item started (with this pid), sleep, count the items running meanwhile; its name, pid and that
    count. The name "raise" raises ValueError; "deadly" SIGKILLs its own process."""
    name, seconds = item
    scratch = Path(context.cache_dir)
    (scratch / f"started-{name}").write_text(str(os.getpid()))
    running = scratch / f"running-{name}"
    running.touch()
    time.sleep(seconds)
    at_once = len(list(scratch.glob("running-*")))
    running.unlink()
    if name == "raise":
        raise ValueError("raised in the worker")
    if name == "deadly":
        os.kill(os.getpid(), signal.SIGKILL)
    (scratch / f"finished-{name}").touch()
    return name, os.getpid(), at_once


def items(*names: str, seconds: float = 0.2) -> list[tuple[str, float]]:
    return [(name, seconds) for name in names]


def test_every_item_comes_back_with_what_it_returned(executor, context):
    names = [f"item{index}" for index in range(6)]
    outcomes = dict(executor.map_unordered(task, items(*names), context))
    assert sorted(outcomes) == sorted(items(*names))
    assert [outcome[0] for _, outcome in sorted(outcomes.items())] == sorted(names)


def test_outcomes_come_as_items_finish(executor, context):
    order = [item[0] for item, _ in executor.map_unordered(task, [("slow", 3.0), ("quick", 0.0)], context)]
    assert order == (["slow", "quick"] if executor.jobs == 1 else ["quick", "slow"])


def test_at_most_jobs_items_run_at_once_and_the_next_is_taken_when_one_finishes(executor, context):
    taken: list[str] = []

    def generated():
        for index in range(2 * executor.jobs + 1):
            taken.append(f"item{index}")
            yield f"item{index}", 0.5

    outcomes = executor.map_unordered(task, generated(), context)
    first = next(outcomes)
    assert len(taken) == executor.jobs, "nothing is taken beyond the free workers"
    rest = list(outcomes)
    assert max(at_once for _, (_, _, at_once) in [first, *rest]) <= executor.jobs


def test_an_exception_the_function_raises_is_raised_in_the_driver(executor, context):
    with pytest.raises(ValueError, match="raised in the worker"):
        list(executor.map_unordered(task, items("raise"), context))


@pytest.mark.parametrize("executor", WITH_WORKER_PROCESSES, indirect=True)
def test_a_killed_worker_comes_back_as_worker_lost_and_the_others_finish(executor, context):
    outcomes = dict(executor.map_unordered(task, items("a", "deadly", "b", "c"), context))
    lost = outcomes.pop(("deadly", 0.2))
    assert isinstance(lost, WorkerLost) and lost.reason and lost.attempts >= 1
    assert sorted(name for name, _, _ in outcomes.values()) == ["a", "b", "c"]


def test_closing_the_outcomes_stops_the_work(executor, context):
    taken: list[str] = []

    def generated():
        for index in range(4 * executor.jobs):
            taken.append(f"item{index}")
            yield f"item{index}", 1.0 if index else 0.0

    outcomes = executor.map_unordered(task, generated(), context)
    next(outcomes)
    outcomes.close()
    time.sleep(2.5)  # longer than an item: one still running would have finished by now
    scratch = Path(context.cache_dir)
    started = {path.name.removeprefix("started-") for path in scratch.glob("started-*")}
    finished = {path.name.removeprefix("finished-") for path in scratch.glob("finished-*")}
    assert started <= set(taken) and len(taken) <= executor.jobs + 1, "nothing is taken after closing"
    assert len(finished) <= len(taken), finished


def test_the_local_executor_runs_one_job_here_and_more_in_worker_processes():
    from study.execution.pool import LocalPool

    assert isinstance(EXECUTORS["local"].open(None, 1, cells=1, threads=1), InProcess)
    with EXECUTORS["local"].open(None, 3, cells=1, threads=1) as pool:
        assert isinstance(pool, LocalPool) and pool.jobs == 3


def test_an_executor_whose_extra_is_missing_says_how_to_install_it():
    from dataclasses import replace

    from study.core.errors import StudyError

    missing = replace(EXECUTORS["dask"], packages=("no_such_module_here",))
    with pytest.raises(StudyError, match=r'^--executor dask needs Dask: pip install "study\[dask\]"$'):
        missing.require_packages()
    for kind in EXECUTORS.values():
        kind.require_packages()  # every extra is installed for the tests


def thread_limits(context: WorkerContext, name: str) -> str | None:
    return os.environ.get(name)


def test_local_worker_processes_get_joblibs_thread_limits(monkeypatch):
    from joblib import cpu_count

    from study.execution.pool import LocalPool

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv("MKL_NUM_THREADS", "7")
    with LocalPool(2) as pool:
        context = WorkerContext(dataset={}, data_dir=None, cache_dir=None, threads=1)
        found = dict(pool.map_unordered(thread_limits, ["OMP_NUM_THREADS", "MKL_NUM_THREADS"], context))
    assert found == {"OMP_NUM_THREADS": str(max(cpu_count() // 2, 1)), "MKL_NUM_THREADS": "7"}
