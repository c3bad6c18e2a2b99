"""The atomic writer: a file is present whole or not at all, and no temporary file outlives a write."""

import os
import threading

import pytest

from study.core.atomic_files import write_atomic


def test_bytes_and_writer_forms_write_the_file(tmp_path):
    assert write_atomic(tmp_path / "a.bin", b"bytes") == tmp_path / "a.bin"
    write_atomic(tmp_path / "b.bin", lambda stream: stream.write(b"from a writer"))
    assert (tmp_path / "a.bin").read_bytes() == b"bytes"
    assert (tmp_path / "b.bin").read_bytes() == b"from a writer"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a.bin", "b.bin"]  # no .tmp left


def test_replaces_an_existing_file_and_creates_its_folder(tmp_path):
    path = tmp_path / "new" / "folder" / "x.json"
    write_atomic(path, b"first")
    write_atomic(path, b"second")
    assert path.read_bytes() == b"second"
    assert [p.name for p in path.parent.iterdir()] == ["x.json"]


@pytest.mark.parametrize("error", [ValueError("bad value"), KeyboardInterrupt()])
def test_a_writer_that_fails_midway_leaves_the_old_file_and_no_temporary_file(tmp_path, error):
    path = tmp_path / "x.parquet"
    path.write_bytes(b"the old content")

    def half_then_fail(stream):
        stream.write(b"half of the new")
        raise error

    with pytest.raises(type(error), match=str(error) or None):
        write_atomic(path, half_then_fail)
    assert path.read_bytes() == b"the old content"
    assert [p.name for p in tmp_path.iterdir()] == ["x.parquet"]


def test_a_failed_first_write_leaves_no_file(tmp_path):
    def part_then_fail(stream):
        stream.write(b"part")
        raise RuntimeError("disk gone")

    with pytest.raises(RuntimeError, match="disk gone"):
        write_atomic(tmp_path / "x.npz", part_then_fail)
    assert list(tmp_path.iterdir()) == []


def test_the_file_gets_the_permissions_of_any_new_file(tmp_path):
    umask = os.umask(0o022)
    try:
        write_atomic(tmp_path / "shared.npz", b"data")
    finally:
        os.umask(umask)
    assert (tmp_path / "shared.npz").stat().st_mode & 0o777 == 0o644


def test_a_reader_sees_one_whole_version_or_the_other(tmp_path):
    path = tmp_path / "big.bin"
    versions = [bytes([value]) * 2**20 for value in (1, 2)]
    write_atomic(path, versions[0])
    done = threading.Event()

    def write_many():
        for step in range(40):
            write_atomic(path, versions[step % 2])
        done.set()

    writer = threading.Thread(target=write_many)
    writer.start()
    seen = []
    while not done.is_set():
        seen.append(path.read_bytes())
    writer.join()
    assert seen and all(content in versions for content in seen)
    assert [p.name for p in tmp_path.iterdir()] == ["big.bin"]
