"""The package type-checks: mypy with the project's configuration (pyproject.toml's [tool.mypy]) finds no error."""

from __future__ import annotations

import subprocess
import sys

import pytest
from helpers.commands import PROJECT


@pytest.mark.slow
def test_mypy_finds_no_error():
    result = subprocess.run([sys.executable, "-m", "mypy", "--config-file", "pyproject.toml"], cwd=PROJECT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
