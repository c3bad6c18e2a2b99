"""Hostile protocol files: every one fails in one line naming the file, exit 2, in bounded time and memory."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time

import pytest
from helpers.commands import PROJECT

from study.core.errors import ProtocolError
from study.protocol.reading import MAX_BYTES, MAX_VALUES
from study.protocol.schema import load_protocol, parse_protocol

HEAD = ("name: bomb\ndataset: {source: synthetic, classes: 2, per_class: 10, size: 16}\n"
        "backbone: {name: cnn, weights: none, width: 4}\nstrategies: [{name: scratch}]\nseeds: 1\n")
ALIAS_BOMB = "".join(  # 9 levels of 9 aliases: 9^9 values in 317 bytes
    [f"a0: &a0 [{', '.join(['x'] * 9)}]\n"]
    + [f"a{level}: &a{level} [{', '.join([f'*a{level - 1}'] * 9)}]\n" for level in range(1, 9)])
MEMORY = 2**30  # `study validate` of a valid synthetic protocol runs in 700 MB of address space
TEXTS = {
    "unknown_key_bomb.yaml": HEAD + "fractions: [1.0]\n" + ALIAS_BOMB,
    "fractions_bomb.yaml": HEAD + ALIAS_BOMB + "fractions: *a8\n",
    "alias_loop.yaml": HEAD + "fractions: &loop [*loop]\n",
    "deep.yaml": HEAD + "fractions: " + "[" * 100_000 + "\n",
    "flat.yaml": HEAD + "fractions: [" + ",".join(["x"] * (MAX_BYTES // 2 - 200)) + "]\n",
    "sexagesimal.yaml": HEAD + "fractions: [1" + ":1" * 300_000 + "]\n",
}


def _limited() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))


def validate_bounded(path) -> tuple[int, list[str]]:
    """`study validate path` in a fresh process held to MEMORY: its exit code and stderr lines."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run([sys.executable, "-m", "study", "validate", str(path)], cwd=PROJECT, env=env,
                            capture_output=True, text=True, timeout=60, preexec_fn=_limited, check=False)
    return result.returncode, result.stderr.splitlines()


@pytest.mark.parametrize("name", sorted(TEXTS))
def test_a_hostile_file_fails_in_one_line_in_bounded_time_and_memory(tmp_path, name):
    path = tmp_path / name
    path.write_text(TEXTS[name])
    code, lines = validate_bounded(path)
    assert code == 2 and len(lines) == 1 and lines[0].startswith(f"error: {path}:"), lines[-3:]


def test_a_huge_file_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "huge.yaml"
    with path.open("wb") as file:
        file.truncate(200 * 2**20)  # sparse: 200 MiB of NUL bytes that cost no disk
    started = time.monotonic()
    code, lines = validate_bounded(path)
    assert code == 2 and lines == [f"error: {path}: 200 MiB, larger than a protocol may be (1 MiB)"]
    assert time.monotonic() - started < 30


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    path = tmp_path / "fifo.yaml"
    os.mkfifo(path)
    code, lines = validate_bounded(path)
    assert code == 2 and lines == [f"error: {path}: not a regular file, not a protocol file"]


def test_aliases_within_the_bound_load_and_errors_point_at_their_lines():
    few = "".join(ALIAS_BOMB.splitlines(keepends=True)[:2])  # 9 + 81 values
    with pytest.raises(ProtocolError, match=r"^bomb\.yaml:7: a0: unknown field$"):
        parse_protocol(HEAD + "fractions: [1.0]\n" + few, "bomb.yaml")
    shared = HEAD.replace("classes: 2", "classes: &two 2").replace("seeds: 1", "seeds: *two")
    assert parse_protocol(shared + "fractions: [1.0]\n", "ok.yaml").seed_list() == [0, 1]
    with pytest.raises(ProtocolError, match=rf"^bomb\.yaml: more than {MAX_VALUES} values"):
        parse_protocol(HEAD + "fractions: [1.0]\n" + ALIAS_BOMB, "bomb.yaml")


@pytest.mark.parametrize("content, message", [
    (b"\xff\xfe" + (HEAD + "fractions: [1.0]\n").encode("utf-16-le"), None),  # UTF-16 with its BOM loads
    (b"\xef\xbb\xbf" + (HEAD + "fractions: [1.0]\n").encode(), None),
    ((HEAD + "# caf\xe9\nfractions: [1.0]\n").encode("latin-1"),
     ":6: not UTF-8 text (byte 0xe9 at offset 168); save the protocol as UTF-8"),
    ((HEAD + "fractions: [1.0]\n").encode() + b"\0\0", ":7: not valid YAML: unacceptable character #x0000"),
    (bytes(range(256)) * 4, ":2: not UTF-8 text (byte 0x80 at offset 128); save the protocol as UTF-8"),
    (b"", ":1: a protocol is a mapping of fields (name, dataset, ...), got NoneType"),
    (HEAD.replace("seeds: 1", "seeds: 2020-13-45").encode() + b"fractions: [1.0]\n",
     ":5: not valid YAML: month must be in 1..12"),
    (HEAD.replace("seeds: 1", "seeds: " + "9" * 5000).encode() + b"fractions: [1.0]\n",
     ":5: not valid YAML: an integer of more than 4300 characters"),
    (HEAD.replace("seeds: 1", "seeds: " + "x" * 100_000).encode() + b"fractions: [1.0]\n",
     ":5: seeds: expected a valid integer, got 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx..."),
])
def test_any_bytes_load_or_fail_in_one_line_naming_the_file(tmp_path, content, message):
    path = tmp_path / "protocol.yaml"
    path.write_bytes(content)
    if message is None:
        assert load_protocol(path).name == "bomb"
        return
    with pytest.raises(ProtocolError) as error:
        load_protocol(path)
    assert str(error.value) == f"{path}{message}"


def test_a_folder_is_not_a_protocol(tmp_path):
    with pytest.raises(ProtocolError, match=rf"^{tmp_path}: a folder, not a protocol file$"):
        load_protocol(tmp_path)
