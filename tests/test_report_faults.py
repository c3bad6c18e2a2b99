"""A report folder that is full or read-only, and a results folder that is read-only, on real filesystems: tmpfs
mounts and read-only bind mounts (root), else folders without write permission (any other user)."""

from __future__ import annotations

import functools
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from helpers.commands import PROJECT, study_command
from helpers.protocols import write_tiny_protocol

from study.report.render.document import Document, Section
from study.report.render.output_folder import write_document
from study.runner.lock import RunLock

PAGE = 4096  # tmpfs charges each file whole pages
FULL = "No space left on device"


@functools.cache
def can_mount() -> bool:
    """Whether this process may mount filesystems (root with the right to)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    with tempfile.TemporaryDirectory() as folder:
        tried = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", folder], capture_output=True,
                               check=False)
        if tried.returncode:
            return False
        subprocess.run(["umount", folder], check=True)
    return True


@pytest.fixture
def mounts():
    """mount(options, source, target): a mount removed when the test ends."""
    made: list[Path] = []

    def mount(*args: str) -> None:
        if not can_mount():
            pytest.skip("needs to mount filesystems (root)")
        subprocess.run(["mount", *args], check=True, capture_output=True)
        if "remount" not in args[1]:  # a remount changes a mount already listed
            made.append(Path(args[-1]))

    try:
        yield mount
    finally:
        for target in reversed(made):
            subprocess.run(["umount", str(target)], check=True)


@pytest.fixture
def read_only(mounts):
    """read_only(folder): folder (and all under it) cannot be written, by a read-only bind mount of it onto itself
    (root), else by taking away write permission."""
    changed: list[Path] = []

    def make(folder: Path) -> None:
        if can_mount():
            mounts("--bind", str(folder), str(folder))
            mounts("-o", "remount,bind,ro", str(folder))
        elif os.geteuid() != 0:
            for path in [folder, *folder.rglob("*")]:
                path.chmod(path.stat().st_mode & ~0o222)
                changed.append(path)
        else:
            pytest.skip("root, and cannot mount: no way to make a folder read-only")

    try:
        yield make
    finally:
        for path in changed:
            path.chmod(path.stat().st_mode | 0o200)


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A folder holding tiny.yaml, results/ with every cell of one real run, and the run's report/."""
    root = tmp_path_factory.mktemp("finished")
    protocol = write_tiny_protocol(root, seeds=1, epochs=1)
    done = study_command("run", str(protocol), *dirs(root), "--jobs", "1", "--no-progress")
    assert done.returncode == 0, done.stderr
    return root


@pytest.fixture
def study(finished, tmp_path) -> Path:
    """A copy of the finished run."""
    shutil.copytree(finished, tmp_path / "study", symlinks=True)
    return tmp_path / "study"


def dirs(root: Path, results: Path | None = None, report: Path | None = None) -> list[str]:
    return ["--results-dir", str(results or root / "results"), "--report-dir", str(report or root / "report")]


def files(folder: Path) -> dict[str, bytes]:
    """Every file under folder by its relative path, with its bytes."""
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def hidden(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir() if path.name.startswith("."))


def error_line(result: subprocess.CompletedProcess, folder: Path, reason: str) -> None:
    """The command failed with one line on stderr naming the report folder and the reason."""
    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if not line.startswith("[")]  # progress lines of cells
    assert lines == [(f"error: cannot write the report in {folder / 'tiny'}: {reason}; free space or choose "
                      "another --report-dir, then run `study report`")], result.stderr


def drop_one_cell(results: Path) -> str:
    """Delete one stored cell (so that a run trains it again); its run id."""
    cell = min((results / "tiny" / "cells").iterdir())
    cell.unlink()
    return cell.stem


def test_a_report_that_fills_the_disk_leaves_the_last_one_whole(study, mounts):
    report = study / "report"
    before = files(report / "tiny")
    used = sum(-(-len(data) // PAGE) * PAGE for data in before.values())
    shutil.rmtree(report)
    report.mkdir()
    mounts("-t", "tmpfs", "-o", f"size={used * 3 // 2}", "tmpfs", str(report))  # room for one report, not two
    for name, data in before.items():
        (report / "tiny" / name).parent.mkdir(parents=True, exist_ok=True)
        (report / "tiny" / name).write_bytes(data)
    failed = study_command("report", str(study / "tiny.yaml"), *dirs(study))
    error_line(failed, report, FULL)
    assert failed.stdout == ""
    assert files(report / "tiny") == before and hidden(report) == []


def kill_while_building(protocol: Path, report: Path) -> None:
    """Start `study report` and kill it (SIGKILL) as soon as its hidden folder appears (tried again when a build
    finishes before it is seen)."""
    command = [sys.executable, "-m", "study", "report", str(protocol), *dirs(protocol.parent)]
    for _ in range(5):
        process = subprocess.Popen(command, cwd=PROJECT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while process.poll() is None and not list(report.glob(".tiny.*.building")):
            time.sleep(0.001)
        process.kill()
        if process.wait() == -signal.SIGKILL:
            return
    pytest.fail("every report finished before it could be killed")


def test_a_killed_report_leaves_the_last_one_and_the_next_cleans_up(study):
    report = study / "report"
    before = files(report / "tiny")
    other = report / ".tiny2.1-0123456789ab.building"  # another protocol's build, going on
    other.mkdir()
    kill_while_building(study / "tiny.yaml", report)
    assert files(report / "tiny") == before
    assert len(hidden(report)) == 2  # the killed build's folder is left...
    rebuilt = study_command("report", str(study / "tiny.yaml"), *dirs(study))
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert hidden(report) == [other.name]  # ... and the next build removes it
    assert sorted(files(report / "tiny")) == sorted(before)


def unwritable_folder(study: Path, mounts, read_only, fault: str) -> Path:
    """A report folder that is a full tmpfs or a read-only view."""
    target = study / "elsewhere"
    target.mkdir()
    if fault == "full":
        mounts("-t", "tmpfs", "-o", "size=64k", "tmpfs", str(target))
    else:
        read_only(target)
    return target


@pytest.mark.parametrize("fault", ["full", "read-only"])
def test_report_into_a_full_or_read_only_folder_is_one_line(study, mounts, read_only, fault):
    target = unwritable_folder(study, mounts, read_only, fault)
    stored = files(study / "results")
    failed = study_command("report", str(study / "tiny.yaml"), *dirs(study, report=target))
    error_line(failed, target, FULL if fault == "full" else "Read-only file system")
    assert files(study / "results") == stored and list(target.iterdir()) == []


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["full", "read-only"])
def test_run_into_a_full_or_read_only_report_folder_keeps_its_cells(study, mounts, read_only, fault):
    target = unwritable_folder(study, mounts, read_only, fault)
    run_id = drop_one_cell(study / "results")
    failed = study_command("run", str(study / "tiny.yaml"), *dirs(study, report=target), "--jobs", "2",
                           "--no-progress")  # workers write TensorFlow's start-up lines to their logs
    error_line(failed, target, FULL if fault == "full" else "Read-only file system")
    summary = failed.stdout.splitlines()[-1]
    assert re.fullmatch(rf"1 done, 0 failed, 3 skipped in \d+ s; results in {re.escape(str(study))}/results/tiny",
                        summary), failed.stdout
    assert (study / "results" / "tiny" / "cells" / f"{run_id}.parquet").is_file()
    assert list(target.iterdir()) == []
    if fault == "full":  # once there is room, the next run writes the report and trains nothing
        mounts("-o", "remount,size=4m", str(target))
        healed = study_command("run", str(study / "tiny.yaml"), *dirs(study, report=target), "--no-progress")
        assert healed.returncode == 0, healed.stderr
        assert "0 done, 0 failed, 4 skipped" in healed.stdout and (target / "tiny" / "index.html").is_file()


def test_reading_commands_work_on_a_read_only_store(study, read_only):
    results = study / "results"
    commands = {command: study_command(command, str(study / "tiny.yaml"), *dirs(study))
                for command in ("status", "plan", "report", "compare")}
    shutil.rmtree(results / ".cache")  # plan would cache the decoded images, were the store writable
    read_only(results)
    stored = files(results)
    for command, writable in commands.items():
        result = study_command(command, str(study / "tiny.yaml"), *dirs(study))
        assert (result.returncode, result.stderr) == (0, ""), f"{command}: {result.stderr}"
        assert result.stdout == writable.stdout, command
    assert files(results) == stored and (study / "report" / "tiny" / "index.html").is_file()


def test_status_on_a_read_only_view_sees_the_run_writing(study, mounts):
    view = study / "view"
    view.mkdir()
    mounts("--bind", str(study / "results"), str(view))
    mounts("-o", "remount,bind,ro", str(view))
    lock = RunLock(study / "results" / "tiny")
    lock.acquire()
    try:
        status = study_command("status", str(study / "tiny.yaml"), *dirs(study, results=view))
    finally:
        lock.release()
    assert status.returncode == 0, status.stderr
    assert f"a run is writing these results now (pid {os.getpid()} on" in status.stdout


def test_a_report_folder_that_is_a_link_is_replaced_by_each_build(tmp_path):
    """The first build swaps the link out for a folder; the link (not its target) goes, and later builds work."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "kept.txt").write_text("not the report's")
    (tmp_path / "report").mkdir()
    out = tmp_path / "report" / "tiny"
    out.symlink_to(elsewhere)
    document = Document("tiny", [Section("Results", ["No finished cells."])])
    for _ in range(2):
        write_document(document, out)
        assert (out / "index.html").is_file() and not out.is_symlink()
        assert sorted(path.name for path in (tmp_path / "report").iterdir()) == ["tiny"]
    assert (elsewhere / "kept.txt").read_text() == "not the report's"
