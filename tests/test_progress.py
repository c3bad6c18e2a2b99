"""The sweep's progress display: the ETA from the cells' expected seconds, corrected by the finished cells' observed
ones, and, on a terminal, the cells running."""

from __future__ import annotations

import os
import re
import select
import subprocess
import sys
import time

import pytest
from helpers.commands import PROJECT
from helpers.protocols import write_tiny_protocol

from study.runner.progress import remaining_seconds

STYLE = re.compile(r"\x1b\[[0-9;]*m")  # colours: inside a line
CURSOR = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")  # cursor moves and erasures: between the lines of a frame


def test_the_eta_is_the_expected_seconds_left_scaled_by_the_finished_cells_over_the_workers():
    # finished cells took 1.5 times their estimates: (40 -> 60) and (20 -> 30)
    finished = [(40.0, 60.0), (20.0, 30.0)]
    # waiting 100 and 50 s expected, 150 x 1.5 = 225; running 60 expected for 20 s: 60 x 1.5 - 20 = 70; 2 workers
    assert remaining_seconds([100.0, 50.0], [(60.0, 20.0)], finished, workers=2) == pytest.approx(147.5)
    # before any cell finished the estimates stand, unless a running cell has taken longer: 80 s of 60 expected
    assert remaining_seconds([100.0], [(60.0, 30.0)], [], workers=2) == pytest.approx((100 + 30) / 2)
    assert remaining_seconds([100.0], [(60.0, 80.0)], [], workers=2) == pytest.approx(100 * 80 / 60 / 2)
    # fewer cells left than workers: they run side by side, not spread over idle workers
    assert remaining_seconds([], [(30.0, 10.0)], [], workers=4) == pytest.approx(20.0)
    assert remaining_seconds([], [], finished, workers=2) == 0.0


def _run_in_terminal(arguments: list[str], timeout: float = 300) -> tuple[int, str]:
    """`python -m study ...` with a pseudo-terminal (160 columns wide) as its stdin, stdout and stderr; its exit status
    and everything it wrote there."""
    leader, follower = os.openpty()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TERM": "xterm", "COLUMNS": "160"}
    process = subprocess.Popen([sys.executable, "-m", "study", *arguments], cwd=PROJECT, env=env, stdin=follower,
                               stdout=follower, stderr=follower, close_fds=True)
    os.close(follower)
    chunks, deadline = [], time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if select.select([leader], [], [], 1.0)[0]:
                try:
                    chunk = os.read(leader, 65536)
                except OSError:  # the process closed the terminal
                    break
                if not chunk:
                    break
                chunks.append(chunk)
            elif process.poll() is not None:
                break
        return process.wait(timeout=max(1.0, deadline - time.monotonic())), b"".join(chunks).decode(errors="replace")
    finally:
        process.kill()
        os.close(leader)


@pytest.mark.integration
def test_on_a_terminal_the_bar_names_the_cells_running_and_always_shows_an_eta(tmp_path):
    protocol = write_tiny_protocol(tmp_path)  # 8 cells: scratch and finetune(depth=1) at fractions 0.5, 1, seeds 0, 1
    status, output = _run_in_terminal(["run", str(protocol), "--results-dir", str(tmp_path / "results"),
                                       "--report-dir", str(tmp_path / "report"), "--jobs", "2"])
    assert status == 0, output[-3000:]
    text = CURSOR.sub("\n", STYLE.sub("", output))
    lines = [line.strip() for line in re.split(r"[\r\n]+", text) if line.strip()]
    bars = [line for line in lines if line.startswith("cells") and "failed" in line]
    running = [line for line in lines if line.startswith("running: ")]
    assert bars and running, output[-3000:]
    cell = r"(scratch|finetune\(depth=1\)) f=(0\.5|1) s=[01]"
    assert all(re.fullmatch(rf"running: {cell}(, {cell})?", line) for line in running), running
    assert any(", " in line for line in running), "two workers never ran two cells at once"
    assert all(re.search(r" ETA \d+:\d\d:\d\d$", line) for line in bars), [line for line in bars if "-:--" in line]
    assert re.search(r"8/8 0 failed \d+:\d\d:\d\d ETA 0:00:00$", bars[-1]), bars[-1]
