"""Connecting to a cluster: check that its address listens, then open the registered executor it names."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

from study.core.errors import StudyError, UsageError
from study.execution.cluster import CONNECT_SECONDS, Cluster
from study.execution.executor_registry import executor_kind


def check_listening(address: str) -> None:
    """Fail with one line when nothing accepts connections at address (host:port, with or without a scheme)."""
    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        host, port = None, None
    if not host or port is None:
        raise UsageError(f"--address {address}: expected HOST:PORT (for example tcp://10.0.0.5:8786 or 10.0.0.5:6379)")
    try:
        socket.create_connection((host, port), timeout=CONNECT_SECONDS).close()
    except OSError as exc:
        raise StudyError(f"--address {address}: nothing is listening there ({exc.strerror or exc}); start the "
                         "cluster first or check the address") from None


@contextmanager
def open_cluster(kind: str, address: str | None, jobs: int | None, cells: int, threads: int) -> Iterator[Cluster]:
    """A connected cluster of the registered executor `kind`: the one at address, or a local one of separate worker
    processes; each cell trains with `threads` TensorFlow threads."""
    if address is not None:
        check_listening(address)
    with executor_kind(kind).open(address, jobs, cells, threads) as cluster:
        assert isinstance(cluster, Cluster), f"--executor {kind} opens no cluster"  # a local run opens none
        yield cluster
