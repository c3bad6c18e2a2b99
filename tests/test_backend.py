"""TensorFlow comes with the extra cpu or gpu: without it, `study run` stops with one line that names them before it
trains anything, and a dry run still works."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from helpers.commands import PROJECT
from helpers.protocols import write_tiny_protocol

from study.core.backend import MISSING_TENSORFLOW, require_tensorflow
from study.core.errors import StudyError
from study.store.results import ResultStore
from study.training.process import configure_tensorflow

# `python -m study` in a process where `import tensorflow` fails, as after `pip install -e .` with neither extra
WITHOUT_TENSORFLOW = "import sys; sys.modules['tensorflow'] = None; from study.cli import main; sys.exit(main())"


def run_without_tensorflow(tmp_path, *extra: str) -> subprocess.CompletedProcess:
    protocol = write_tiny_protocol(tmp_path)
    args = ["run", str(protocol), "--results-dir", str(tmp_path / "results"), "--report-dir",
            str(tmp_path / "report"), "--no-progress", *extra]
    return subprocess.run([sys.executable, "-c", WITHOUT_TENSORFLOW, *args], cwd=PROJECT, capture_output=True,
                          text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})


def test_run_without_tensorflow_stops_with_one_line_before_any_cell(tmp_path):
    done = run_without_tensorflow(tmp_path)
    assert done.returncode == 1
    assert done.stderr == "error: TensorFlow is not installed: pip install 'study[cpu]' or 'study[gpu]'\n"
    assert ResultStore(tmp_path / "results", "tiny").cells().empty


def test_a_dry_run_needs_no_tensorflow(tmp_path):
    done = run_without_tensorflow(tmp_path, "--dry-run")
    assert done.returncode == 0, done.stderr
    assert "would run" in done.stdout


def test_a_worker_without_tensorflow_fails_with_the_same_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow", None)
    with pytest.raises(StudyError, match="^TensorFlow is not installed"):
        configure_tensorflow(1)
    assert str(pytest.raises(StudyError, require_tensorflow).value) == MISSING_TENSORFLOW


def test_tensorflow_is_found_here():
    require_tensorflow()
