"""Local worker processes: joblib's reusable loky pool, a task run alone in a fresh process, and worker deaths.

Every worker process ends with the driver (`lifeline.end_with_parent`). When one dies (the kernel's OOM killer,
a segfault), loky breaks the pool: every task in flight fails with the same TerminatedWorkerError and nothing
says whose worker died. `LocalPool` therefore runs each task that was in flight again, one after another, alone
in a fresh process of its own: a task whose process dies there too is certainly one that kills its worker, and is
given up (`WorkerLost`, with the exit status and peak memory of that process); the others finish. The remaining
tasks go on in a fresh pool.

Given a log folder (the sweep's `results/<name>/logs/`), each worker process writes its standard output and error
there, one file per process (`worker-<pid>.log`): TensorFlow's C++ and absl start-up lines, oneDNN's notice and any
warning stay out of the terminal, which shows only the progress and one-line errors. What a cell's failure or a
worker's death means comes back to the driver as a result (a failed row, `WorkerLost`), never through that output.
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import sys
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from study.core.failures import WorkerLost
from study.execution.executor import Executor
from study.execution.lifeline import end_with_parent

if TYPE_CHECKING:
    from study.training.context import WorkerContext

log = logging.getLogger(__name__)

IDLE_WORKER_SECONDS = 300  # joblib's default: a worker idle this long exits


def worker_pool(jobs: int, log_dir: str | None = None):
    """The reusable pool of `jobs` loky worker processes (started clean, never forking TensorFlow), each ending with
    this process and writing its output to log_dir (when given); the sweep, the tuning trials and single tasks
    share it."""
    from joblib.externals.loky import get_reusable_executor

    _quiet_resource_trackers()
    return get_reusable_executor(max_workers=jobs, timeout=IDLE_WORKER_SECONDS, initializer=start_worker,
                                 initargs=(os.getpid(), log_dir), env=_thread_limits(jobs))


TRACKER_WARNINGS = "ignore:resource_tracker:UserWarning"


def _quiet_resource_trackers() -> None:
    """Keep the resource trackers' shutdown warning off the terminal. loky's and multiprocessing's tracker
    processes, started with the pool, outlive a driver that was killed or interrupted, then unlink the semaphores
    it left and warn "resource_tracker: There appear to be N leaked semlock objects": nothing is lost, and they
    take their warning filters from the environment they inherit from this process."""
    filters = os.environ.get("PYTHONWARNINGS", "")
    if TRACKER_WARNINGS not in filters.split(","):
        os.environ["PYTHONWARNINGS"] = ",".join(filter(None, [filters, TRACKER_WARNINGS]))


def start_worker(parent_pid: int, log_dir: str | None) -> None:
    """A worker process's set-up, before any task: end with the parent, write output to log_dir (when given)."""
    end_with_parent(parent_pid)
    if log_dir:
        write_output_to(log_dir)


def log_file(log_dir: str, pid: int) -> Path:
    """The output file of worker process pid."""
    return Path(log_dir) / f"worker-{pid}.log"


def write_output_to(log_dir: str) -> None:
    """Point this process's file descriptors 1 and 2 at its file in log_dir (appended), before TensorFlow is
    imported, so that what its C++ side prints lands there too. Where the file cannot be opened, output stays."""
    try:
        Path(log_dir).mkdir(parents=True, exist_ok=True)
        fd = os.open(log_file(log_dir, os.getpid()), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    except OSError as exc:
        log.warning("worker output stays on the terminal: cannot write %s (%s)", log_dir, exc.strerror or exc)
        return
    sys.stdout.flush()
    sys.stderr.flush()
    for target in (1, 2):
        os.dup2(fd, target)
    os.close(fd)


THREAD_LIMITS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
                 "VECLIB_MAXIMUM_THREADS", "NUMBA_NUM_THREADS", "NUMEXPR_NUM_THREADS")


def _thread_limits(jobs: int) -> dict[str, str]:
    """The thread limits joblib gives its loky workers: OpenMP, BLAS and the like at cores / jobs unless set, and
    TBB's schedulers coordinating between processes (ENABLE_IPC) unless set."""
    from joblib import cpu_count

    limits = {name: os.environ.get(name, str(max(cpu_count() // jobs, 1))) for name in THREAD_LIMITS}
    return limits if "ENABLE_IPC" in os.environ else {**limits, "ENABLE_IPC": "1"}


@dataclass(eq=False)
class PoolTask:
    """A task in the pool: its future, and what it runs (to run it again alone when its worker died)."""

    future: Future
    function: Any
    item: Any

    def worker_died(self) -> bool:
        """Whether the task failed because a worker process of its pool died."""
        from joblib.externals.loky.process_executor import TerminatedWorkerError

        return isinstance(self.future.exception(), TerminatedWorkerError)


class LocalPool(Executor):
    """`jobs` fresh local worker processes (joblib's reusable loky pool, shared by every LocalPool of as many jobs and
    started at the first item), their output in the context's log folder."""

    def __init__(self, jobs: int):
        self.jobs = jobs
        self.pool: Any | None = None  # loky's reusable executor, started at the first item
        self.log_dir: str | None = None

    def submit(self, function, context: WorkerContext, item) -> PoolTask:
        self.pool = self.pool or worker_pool(self.jobs, context.log_dir)
        self.log_dir = context.log_dir
        task = partial(function, context)
        return PoolTask(self.pool.submit(task, item), task, item)

    def wait_any(self, handles: list[PoolTask]) -> list[PoolTask]:
        """The finished tasks, those whose worker died last: when one died, the pool broke, and every task in flight
        failed with it or had finished; the pool is then shut down (a lost task runs alone with no other worker
        left) and the next task starts a fresh one."""
        by_future = {task.future: task for task in handles}
        done, _ = wait(by_future, return_when=FIRST_COMPLETED)
        if any(by_future[future].worker_died() for future in done):
            done, _ = wait(by_future)
            self._shut_down(wait=True)
            lost = sum(by_future[future].worker_died() for future in done)
            log.warning("a worker process died; running the %d task(s) it took down again, each alone in a fresh "
                        "process", lost)
        return sorted((by_future[future] for future in done), key=PoolTask.worker_died)

    def outcome(self, handle: PoolTask):
        """What the task returned; a task whose worker died runs again alone, and is given up when it dies there too."""
        if not handle.worker_died():
            return handle.future.result()
        outcome = run_alone(handle.function, handle.item, self.log_dir)
        if isinstance(outcome, ProcessDeath):
            return WorkerLost(f"its worker process died twice, the second time running it alone in a fresh process: "
                              f"{outcome.describe()}", attempts=2)
        return outcome

    def cancel(self, handles: list) -> None:
        """Kill the workers and the tasks they run."""
        self._shut_down(wait=False, kill_workers=True)

    def close(self) -> None:
        """End the pool's workers (`map_unordered` of `study.execution.local` leaves them to the next call)."""
        self._shut_down(wait=True)

    def _shut_down(self, **options) -> None:
        """Shut the pool down with loky's options, when it was started; the next item starts a fresh one."""
        if self.pool is not None:
            self.pool.shutdown(**options)
            self.pool = None


@dataclass(frozen=True)
class ProcessDeath:
    """How a process died: its exit status, its peak resident memory and the file holding its output, if any."""

    exit_code: int  # negative: killed by signal -exit_code
    peak_rss: int  # bytes
    output: Path | None = None

    def describe(self) -> str:
        """One line: the signal or exit code, "likely out of memory" for SIGKILL, the peak resident memory, and
        where its output is."""
        memory = f"peak resident memory {self.peak_rss / 2**20:.0f} MiB"
        if self.output is not None:
            memory += f" (its output: {self.output})"
        if self.exit_code >= 0:
            return f"exited with code {self.exit_code}; {memory}"
        number = -self.exit_code
        name = signal.Signals(number).name if number in signal.valid_signals() else f"signal {number}"
        if number == signal.SIGKILL:
            return f"killed by SIGKILL, likely out of memory (the kernel's OOM killer sends SIGKILL); {memory}"
        return f"killed by {name} (signal {number}); {memory}"


def run_alone(function, item, log_dir: str | None = None):
    """function(item) alone in a fresh process that ends with this one, its output in log_dir (when given): what it
    returned (an exception it raised is raised here), or the ProcessDeath of a process that died first.

    The process is this one's own child, reaped here with wait4, which gives its exit status and peak memory."""
    task_in, task_out = os.pipe()
    result_in, result_out = os.pipe()
    for fd in (task_in, result_out):
        os.set_inheritable(fd, True)
    command = [sys.executable, "-m", "study.execution.pool", str(os.getpid()), str(task_in), str(result_out), log_dir or ""]
    pid = os.posix_spawn(sys.executable, command, {**os.environ, **_thread_limits(1)})
    os.close(task_in)
    os.close(result_out)
    try:
        _send(task_out, function, item)
        with open(result_in, "rb") as stream:
            payload = stream.read()
    except BaseException:  # interrupted: the process must not outlive its task
        os.kill(pid, signal.SIGKILL)
        os.wait4(pid, 0)
        raise
    _, status, usage = os.wait4(pid, 0)
    sent = _whole(payload)
    if sent is None:
        scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
        output = log_file(log_dir, pid) if log_dir else None
        return ProcessDeath(os.waitstatus_to_exitcode(status), usage.ru_maxrss * scale, output)
    returned, value = sent
    if not returned:
        raise value
    return value


def _whole(payload: bytes) -> tuple | None:
    """What the process sent back, or None when it died before sending all of it (once sent, a crash while the
    interpreter exits loses nothing)."""
    try:
        return pickle.loads(payload)
    except (EOFError, pickle.UnpicklingError):
        return None


def _send(fd: int, function, item) -> None:
    """Write the task to the pipe of run_alone's process (in vain when the process died before reading it)."""
    from joblib.externals.loky.backend.reduction import (
        dumps,  # loky's pickler, as the pool's
    )

    try:
        with open(fd, "wb") as stream:
            stream.write(dumps(sys.path))  # where to import the function from, as loky gives its workers
            stream.write(dumps((function, item)))
    except BrokenPipeError:
        pass


def _serve(parent_pid: int, task_fd: int, result_fd: int, log_dir: str) -> None:
    """The process of run_alone: read the task, run it, send back what it returned or raised."""
    from joblib.externals.loky.backend.reduction import (
        dumps,  # loky's pickler, as the pool's
    )

    start_worker(parent_pid, log_dir)
    with open(task_fd, "rb") as stream:
        sys.path[:] = pickle.load(stream)
        function, item = pickle.load(stream)
    try:
        outcome = (True, function(item))
    except Exception as exc:  # raised again in the driver, as the pool would
        outcome = (False, exc)
    with open(result_fd, "wb") as stream:
        stream.write(dumps(outcome))


if __name__ == "__main__":
    parent_pid, task_fd, result_fd = map(int, sys.argv[1:4])
    _serve(parent_pid, task_fd, result_fd, sys.argv[4])
