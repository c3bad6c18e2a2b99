"""Protocol text, read and parsed within bounds: any file, however hostile, costs little time and memory and fails
in one line naming it.

A protocol file is a regular file of at most 1 MiB, in UTF-8 (or UTF-8, UTF-16 or UTF-32 with a byte order mark).
Its YAML may nest and use aliases, as long as its values, each alias counted as the values it stands for, stay
within 100000: a few hundred bytes of aliases can stand for billions.
"""

from __future__ import annotations

import codecs
import os
import re
import stat
from pathlib import Path
from typing import Any

import yaml

from study.core.errors import ProtocolError

MAX_BYTES = 2**20
MAX_VALUES = 100_000
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def read_protocol_text(path: str | Path) -> str:
    """The text of a protocol file, refused in one line when it is no regular file, too large or not text."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # a FIFO opens without waiting for a writer
        try:
            info = os.fstat(fd)
            mode, size = info.st_mode, info.st_size
            if not stat.S_ISREG(mode):
                kind = "a folder" if stat.S_ISDIR(mode) else "not a regular file"
                raise ProtocolError(f"{path}: {kind}, not a protocol file")
            if size > MAX_BYTES:
                raise ProtocolError(f"{path}: {_mib(size)}, larger than a protocol may be ({_mib(MAX_BYTES)})")
            raw = b""
            while len(raw) <= MAX_BYTES and (chunk := os.read(fd, MAX_BYTES + 1 - len(raw))):
                raw += chunk
        finally:
            os.close(fd)
    except OSError as exc:
        raise ProtocolError(f"{path}: cannot read protocol ({exc.strerror})") from None
    if len(raw) > MAX_BYTES:  # it grew since
        raise ProtocolError(f"{path}: larger than a protocol may be ({_mib(MAX_BYTES)})")
    return _decoded(raw, path)


def _mib(size: int) -> str:
    return f"{size / 2**20:.3g} MiB"


def _decoded(raw: bytes, path: Path) -> str:
    """UTF-8 text, or text in the encoding its byte order mark names."""
    encoding = next((name for bom, name in _BOMS if raw.startswith(bom)), "utf-8")
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1 if encoding == "utf-8" else 1
        raise ProtocolError(f"{path}:{line}: not {encoding.upper().removesuffix('-SIG')} text (byte "
                            f"0x{raw[exc.start]:02x} at offset {exc.start}); save the protocol as UTF-8") from None


def parse_yaml(text: str, filename: str) -> tuple[yaml.Node | None, Any]:
    """The document composed (for error lines) and loaded (None, None when empty); a YAML error, a document nested
    past Python's recursion limit or standing for more than MAX_VALUES values is a ProtocolError naming the file."""
    loader = None
    try:
        loader = _Loader(text)
        node = loader.get_single_node()
        if node is None:
            return None, None
        _check_size(node, filename)
        return node, loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise ProtocolError(f"{filename}:{mark.line + 1 if mark else 1}: not valid YAML: "
                            f"{_one_line(exc.problem or exc.context)}") from None
    except yaml.reader.ReaderError as exc:
        raise ProtocolError(f"{filename}:{text.count(chr(10), 0, exc.position) + 1}: not valid YAML: unacceptable "
                            f"character #x{exc.character:04x}") from None
    except _TooMany:
        raise _too_many(filename) from None
    except RecursionError:
        raise ProtocolError(f"{filename}: not valid YAML: nested too deeply") from None
    finally:
        if loader is not None:
            loader.dispose()


def _one_line(text: str | None) -> str:
    return " ".join(str(text).split())[:200]


def _check_size(root: yaml.Node, filename: str) -> None:
    """Refuse a document that, aliases expanded, holds more than MAX_VALUES values, or an alias inside the node it
    names. Counts each node once, so the cost follows the file, not the expansion."""
    sizes: dict[int, int] = {}
    inside: set[int] = set()

    def size(node: yaml.Node) -> int:
        if id(node) in sizes:
            return sizes[id(node)]
        if id(node) in inside:
            raise ProtocolError(f"{filename}:{node.start_mark.line + 1}: an alias refers to a node that holds it")
        inside.add(id(node))
        children = node.value if isinstance(node, yaml.SequenceNode) else (
            [part for pair in node.value for part in pair] if isinstance(node, yaml.MappingNode) else [])
        total = 1
        for child in children:
            total = min(total + size(child), MAX_VALUES + 1)
        inside.discard(id(node))
        sizes[id(node)] = total
        return total

    if size(root) > MAX_VALUES:
        raise _too_many(filename)


def _too_many(filename: str) -> ProtocolError:
    return ProtocolError(f"{filename}: more than {MAX_VALUES} values (an alias counted as the values it stands for); "
                         "a protocol holds far fewer")


class _TooMany(Exception):
    """Composing passed MAX_VALUES nodes."""


class _Loader(yaml.SafeLoader):
    """The safe loader, stopping after MAX_VALUES nodes, placing a value its type cannot hold (a date 2020-13-45) at
    its line, and refusing integers longer than Python converts from text: a sexagesimal one (1:2:3...) would
    take time growing with the square of its length."""

    composed = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self.composed += 1
        if self.composed > MAX_VALUES:
            raise _TooMany
        return super().compose_node(parent, index)

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError) as exc:
            raise yaml.constructor.ConstructorError(None, None, str(exc), node.start_mark) from None

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        if len(node.value) > 4300:
            raise yaml.constructor.ConstructorError(None, None, "an integer of more than 4300 characters",
                                                    node.start_mark)
        return super().construct_yaml_int(node)


_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)
# YAML 1.2 reads 1e-3 as a number; YAML 1.1 (PyYAML) as text, which a strict protocol field would then refuse
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9]+(?:\.[0-9]*)?[eE][-+]?[0-9]+$"),
                              list("-+0123456789"))
