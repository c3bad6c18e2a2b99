"""Dataset sources: the entry points that open a protocol's source, fingerprint it, load it and describe them."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from study.core.errors import DataError
from study.data.cache import cache_file, read_cache, write_cache
from study.data.datadir import ENV_VAR, resolve_data_dir
from study.data.dataset import Dataset
from study.data.images import IMAGE_SUFFIXES
from study.data.source_registry import SOURCES, source_class
from study.data.data_source import DataSource

__all__ = ["ENV_VAR", "IMAGE_SUFFIXES", "describe_sources", "load_dataset", "resolve_data_dir", "source_fingerprint"]

log = logging.getLogger(__name__)


def source_fingerprint(spec, data_dir: Path | None) -> str:
    """sha256 of the source's content (file bytes, labels, groups, split) and the decoding rules, not the size."""
    return _open(spec, data_dir).fingerprint()


def load_dataset(spec, data_dir: Path | None, cache_dir: Path | None = None) -> Dataset:
    """Decode the source at spec.size with spec.resize, or read the arrays cached for its fingerprint, size and
    filter."""
    source = _open(spec, data_dir)
    fingerprint = source.fingerprint()
    cache = None if cache_dir is None else cache_file(cache_dir, fingerprint, spec.size, spec.resize)
    if cache is not None and (cached := read_cache(cache, fingerprint)) is not None:
        log.info("%s dataset: %d images from cache %s", spec.source, len(cached), cache)
        if cached.skipped and spec.on_bad_file != "skip":
            raise DataError(f"{cached.skipped[0]}; replace or remove the file, or set dataset.on_bad_file: skip")
        cached.source_file = source.source_file
        return cached
    started = time.perf_counter()
    dataset = source.load(spec.size, spec.resize, fingerprint)
    log.info("%s dataset: decoded %d images at %d px (%s, %d channel(s)) in %.1f s", spec.source, len(dataset),
             spec.size, spec.resize, dataset.channels, time.perf_counter() - started)
    if cache is not None:
        write_cache(cache, dataset)
    dataset.source_file = source.source_file
    return dataset


def describe_sources() -> str:
    """What each source is and where it looks for files (the `study datasets` command): the data directory, each
    registered source's description beside its name, and what happens to every source's images."""
    current = os.environ.get(ENV_VAR) or "not set"
    width = max(len(name) for name in SOURCES) + 2
    entries = "\n".join(describe_source(source, width) for source in SOURCES.values())
    return f"""\
Data directory: --data-dir DIR, else ${ENV_VAR} (now: {current}); relative dataset paths are read from it.

{entries}

Images are decoded once, resized to size x size with the resize filter (default bilinear; non-square images are
stretched) and cached per source fingerprint, size and filter. A file that cannot be decoded, or a CSV row whose file is missing, stops the run
naming it; with dataset.on_bad_file: skip it is left out, listed in results/<name>/dataset.json and counted. Sources without a split get a stratified, group-aware one (val_fraction,
test_fraction, split_seed; with resplit: true, one per seed). Every class needs validation and test images in every
seed's split, the source's own included."""


def describe_source(source: type[DataSource], width: int) -> str:
    """The source's name in a column of width, its description beside it and indented below."""
    first, *rest = source.description().splitlines()
    return "\n".join([f"{source.name:<{width}}{first}", *(" " * width + line for line in rest)])


def _open(spec, data_dir: Path | None) -> DataSource:
    """The opened source the spec names, its relative paths read from data_dir."""
    return source_class(spec.source).open(spec, None if data_dir is None else Path(data_dir).expanduser())
