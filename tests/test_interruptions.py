"""Signals and noise: SIGTERM ends a run as Ctrl-C does, and no library's shutdown warning reaches the terminal."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers.commands import PROJECT
from helpers.protocols import write_tiny_protocol

from study import commands
from study.cli import INTERRUPTED, main
from study.execution.lifeline import still_running
from study.store.results import ResultStore


def test_sigterm_ends_a_command_in_one_line_with_status_143(monkeypatch, capsys):
    def terminated(args) -> int:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises before this ends
        return 0

    monkeypatch.setattr(commands, "cmd_status", terminated)
    before = signal.getsignal(signal.SIGTERM)
    assert main(["status", "any.yaml"]) == 143
    assert capsys.readouterr().err == INTERRUPTED + "\n"
    assert signal.getsignal(signal.SIGTERM) is before


def test_an_unreadable_stray_file_is_warned_of_once(tmp_path, caplog):
    store = ResultStore(tmp_path, "tiny")
    store.cells_dir.mkdir(parents=True)
    (store.cells_dir / "stray.parquet").write_bytes(b"")
    with caplog.at_level(logging.WARNING, logger="study.store.results"):
        store.statuses()
        store.cells()
        store.statuses()
        store.conform_files()
    assert len(caplog.records) == 1 and "stray.parquet: unreadable" in caplog.records[0].getMessage()
    (store.cells_dir / "stray.parquet").write_bytes(b"damaged again, another way")
    with caplog.at_level(logging.WARNING, logger="study.store.results"):
        store.statuses()
        store.cells()
    assert len(caplog.records) == 2  # a file damaged again (a notebook's long process) is told again, once


def start_driver(tmp_path: Path, protocol: Path) -> subprocess.Popen:
    """`study run PROTOCOL --jobs 2` in its own session, its output in tmp_path/driver.log."""
    command = [sys.executable, "-m", "study", "run", str(protocol), "--results-dir", str(tmp_path / "results"),
               "--report-dir", str(tmp_path / "report"), "--jobs", "2", "--no-progress"]
    with open(tmp_path / "driver.log", "wb") as log:
        return subprocess.Popen(command, cwd=PROJECT, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
                                start_new_session=True, stdout=log, stderr=log)


@pytest.mark.slow
@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGKILL, -signal.SIGKILL)])
def test_a_signalled_run_keeps_its_cells_leaves_no_process_and_prints_no_library_warning(tmp_path, signum, code):
    import psutil

    protocol = write_tiny_protocol(tmp_path, seeds=6, epochs=20)
    cells = ResultStore(tmp_path / "results", "tiny").cells_dir
    driver = start_driver(tmp_path, protocol)
    try:
        deadline = time.monotonic() + 300
        while not (cells.is_dir() and any(cells.glob("*.parquet"))):
            assert driver.poll() is None and time.monotonic() < deadline, (tmp_path / "driver.log").read_text()
            time.sleep(0.1)
        run = psutil.Process(driver.pid).children(recursive=True)  # workers and resource trackers
        os.kill(driver.pid, signum)  # the driver alone, as `kill` or a scheduler sends it
        assert driver.wait(timeout=60) == code
        deadline = time.monotonic() + 15
        while still_running(run) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert still_running(run) == []
    finally:
        driver.kill()
    log = (tmp_path / "driver.log").read_text()
    assert "resource_tracker" not in log and "Warning" not in log and "Traceback" not in log, log
    if signum == signal.SIGTERM:
        assert log.splitlines()[-1] == INTERRUPTED
    assert 1 <= len(list(cells.glob("*.parquet"))) < 24
