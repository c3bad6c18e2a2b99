"""A worker process's set-up: TensorFlow's thread counts, a loky worker kept alive, the CPU it runs on, and the
test hook that kills it."""

from __future__ import annotations

import functools
import os
import platform
import signal
import warnings

from study.core.backend import require_tensorflow
from study.plan.cells import Cell


def configure_tensorflow(threads: int) -> None:
    """Set oneDNN and thread counts before TensorFlow starts; later calls in the same process do nothing.

    Also keeps a loky worker process alive while its caches grow (see `keep_worker_process`).
    """
    require_tensorflow()
    keep_worker_process()
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # C++ notices; errors still surface as Python exceptions
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")  # retracing notices: every cell traces its own functions on purpose
    # Keras' note that MobileNet(V2) at sizes without their own file use the 224 px weights (docs/install.md)
    warnings.filterwarnings("ignore", message=r".*will be loaded as the default", category=UserWarning)
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(max(1, min(2, threads)))
    except RuntimeError:  # the runtime already started in this process; its settings stay
        pass


def keep_worker_process() -> None:
    """Stop loky from replacing this worker process because its memory grew.

    loky takes a worker whose memory grew by 300 MB since its first task for a leak and starts a new one, which
    would pay TensorFlow's import, the data and every tracing again; here the growth is the traced models and
    cached features that make later cells fast, and both are bounded (caches.MAX_TRAINERS, one feature array).
    """
    from joblib.externals.loky import process_executor

    process_executor._MAX_MEMORY_LEAK_SIZE = 1 << 62  # read by the worker's task loop after every task


@functools.lru_cache(maxsize=1)
def available_cores() -> int:
    """Cores this process may use (the affinity mask where the platform has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def cpu_model() -> str:
    """The CPU's model name and widest vector instructions: training from few images can differ between CPUs."""
    name, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    name = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                    break
    except OSError:  # not Linux: the platform's own description
        pass
    vector = next((ext for ext in ("avx512f", "avx2", "avx", "neon", "asimd") if ext in flags), None)
    return f"{name} ({vector})" if vector else name


KILL_HOOK = "STUDY_TEST_KILL_WORKER"  # a test hook, see die_if_asked


def die_if_asked(cell: Cell) -> None:
    """Test hook: SIGKILL this process, as the kernel's OOM killer would, when the environment variable
    STUDY_TEST_KILL_WORKER lists the run id of the cell (or of the trial's cell, `<unit>-trial<n>`), comma-separated.
    The tests use it to check that such a cell is stored failed and the sweep goes on."""
    if cell.run_id in os.environ.get(KILL_HOOK, "").split(","):
        os.kill(os.getpid(), signal.SIGKILL)
