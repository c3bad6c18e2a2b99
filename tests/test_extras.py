"""The cluster executors are extras: without one, `--executor` names it in one line; a local run never imports them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.commands import PROJECT, study_command
from helpers.protocols import write_tiny_protocol

from study.store.results import ResultStore

CLUSTER_MODULES = ("ray", "dask", "distributed")

# put in front of the import system of every Python process started with it (workers too): records each import of
# a watched module, with the process's id
WATCHER = """\
import os
import sys


class Watch:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {watched!r}:
            with open({log!r}, "a") as log:
                log.write(f"{{name}} {{os.getpid()}}\\n")
        return None


sys.meta_path.insert(0, Watch())
"""


def dirs(tmp_path: Path) -> list[str]:
    return ["--results-dir", str(tmp_path / "results"), "--report-dir", str(tmp_path / "report")]


def with_sitecustomize(tmp_path: Path, text: str) -> dict:
    """An environment whose Python processes run text at startup (a sitecustomize.py first on PYTHONPATH)."""
    folder = tmp_path / "site"
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(text)
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(folder), os.environ.get("PYTHONPATH")]))}


@pytest.mark.parametrize("executor, package, missing", [
    ("ray", "Ray", ("ray",)),
    ("dask", "Dask", ("dask", "distributed")),
])
def test_a_cluster_executor_without_its_extra_is_one_line_and_leaves_the_store_alone(tmp_path, executor, package,
                                                                                     missing):
    # None in sys.modules: Python's own way of saying a module cannot be imported, as when it is not installed
    uninstalled = with_sitecustomize(tmp_path, f"import sys\nsys.modules.update(dict.fromkeys({missing!r}))\n")
    protocol = write_tiny_protocol(tmp_path)
    result = study_command("run", str(protocol), *dirs(tmp_path), "--executor", executor, env=uninstalled)
    assert result.returncode == 1
    assert result.stderr == f'error: --executor {executor} needs {package}: pip install "study[{executor}]"\n'
    assert result.stdout == ""
    assert sorted(path.name for path in tmp_path.iterdir()) == ["site", "tiny.yaml"]  # no results, no report


@pytest.mark.slow
def test_a_local_run_plan_status_and_report_never_import_the_cluster_packages(tmp_path):
    protocol = write_tiny_protocol(tmp_path, seeds=1, epochs=1)
    log = tmp_path / "imports.log"
    # keras is watched as well: its imports show that the watch reaches the worker processes
    env = with_sitecustomize(tmp_path, WATCHER.format(watched=(*CLUSTER_MODULES, "keras"), log=str(log)))
    commands = [["run", str(protocol), "--no-progress", *dirs(tmp_path)],
                *([command, str(protocol), *dirs(tmp_path)] for command in ("plan", "status", "report"))]
    code = (
        "import contextlib, os\nfrom study.cli import main\n"
        "with contextlib.suppress(SystemExit):\n    main(['--help'])\n"
        f"codes = [main(command) for command in {commands!r}]\n"
        "assert codes == [0, 0, 0, 0], codes\n"
        "print('driver', os.getpid())\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=PROJECT, env={**os.environ, **env},
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert set(ResultStore(tmp_path / "results", "tiny").cells()["status"]) == {"done"}
    driver = result.stdout.split()[-1]
    imports = [line.split() for line in log.read_text().splitlines()]
    assert {name.partition(".")[0] for name, _ in imports} == {"keras"}
    assert {pid for _, pid in imports} - {driver}  # keras, imported by a worker process that was watched too
