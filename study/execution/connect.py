"""Connecting to a cluster: check that its packages are installed and its address listens, then open a Dask or Ray
cluster of worker processes."""

from __future__ import annotations

import importlib.util
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

from study.core.errors import StudyError, UsageError
from study.execution.cluster import CONNECT_SECONDS, Cluster

EXECUTORS = ("local", "dask", "ray")
# each cluster executor's name in messages and the modules of the extra (pyproject.toml) that installs it
PACKAGES = {"dask": ("Dask", ("dask", "distributed")), "ray": ("Ray", ("ray", "psutil"))}


def require_packages(kind: str) -> None:
    """Raise a one-line StudyError when the extra of the cluster executor `kind` is not installed; import nothing."""
    name, modules = PACKAGES[kind]
    if any(importlib.util.find_spec(module) is None for module in modules):
        raise StudyError(f'--executor {kind} needs {name}: pip install "study[{kind}]"')


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
    """A connected Dask or Ray cluster: the one at address, or a local one of separate worker processes; each cell
    trains with `threads` TensorFlow threads."""
    if address is not None:
        check_listening(address)
    if kind == "dask":
        from study.execution.dask import DaskCluster

        cluster = DaskCluster.connect(address, jobs, cells, threads)
    elif kind == "ray":
        from study.execution.ray import RayCluster

        cluster = RayCluster.connect(address, jobs, cells, threads)
    else:
        raise UsageError(f"--executor {kind}: expected one of {', '.join(EXECUTORS)}")
    try:
        yield cluster
    finally:
        cluster.close()
