"""Processes that end with the driver, however it dies (`kill -9` included).

Worker processes whose code is ours (loky workers, a cell run alone) watch their parent with `end_with_parent`.
A local Ray cluster's own processes (raylet's agents outlive a killed driver by a minute) are ended by a reaper
process that the driver starts with `reap_when_gone`. Dask's LocalCluster workers already end with the process
that started them (distributed watches the parent through a pipe).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

POLL_SECONDS = 0.5


def end_with_parent(parent_pid: int) -> None:
    """Kill this process soon after its parent (parent_pid) dies: a daemon thread polls for the parent's death.

    A watchdog rather than prctl(PR_SET_PDEATHSIG): Linux sends that signal when the thread that started the
    process ends, and loky starts replacement workers from a thread of its own.
    """
    threading.Thread(target=_watch, args=(parent_pid,), name="study-lifeline", daemon=True).start()


def _watch(parent_pid: int) -> None:
    while os.getppid() == parent_pid:  # an orphan is handed to init (or a subreaper): its parent pid changes
        time.sleep(POLL_SECONDS)
    os.kill(os.getpid(), signal.SIGKILL)


def reap_when_gone() -> None:
    """Start a reaper process that kills the processes this one started, once this one has died."""
    subprocess.Popen([sys.executable, "-m", "study.execution.lifeline", str(os.getpid())], stdin=subprocess.DEVNULL,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _reap(parent_pid: int) -> None:
    """Keep the parent's descendants in view while it lives; then SIGKILL those still running, and theirs."""
    import psutil

    known: dict[int, psutil.Process] = {}  # pid -> process, kept while it runs: caught even if orphaned at the end
    while os.getppid() == parent_pid:
        known = {pid: process for pid, process in known.items() if process.is_running()} | _descendants(parent_pid)
        time.sleep(POLL_SECONDS)
    for process in known.values():
        try:
            for victim in [*process.children(recursive=True), process]:
                victim.kill()  # psutil refuses a pid that another process reuses now
        except psutil.Error:  # ended meanwhile
            continue


def still_running(processes: list) -> list:
    """The psutil processes still running; a zombie has ended (it only waits for its parent to read its status)."""
    import psutil

    running = []
    for process in processes:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                running.append(process)
        except psutil.NoSuchProcess:
            continue
    return running


def _descendants(pid: int) -> dict:
    """The processes below pid by pid, this one excepted (none when pid has ended)."""
    import psutil

    try:
        return {process.pid: process for process in psutil.Process(pid).children(recursive=True)
                if process.pid != os.getpid()}
    except psutil.NoSuchProcess:
        return {}


if __name__ == "__main__":
    _reap(int(sys.argv[1]))
