"""MedMNIST files: the table of official files, which file a size reads, and the verified download (from a local
HTTP server)."""

from __future__ import annotations

import functools
import hashlib
import re
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from helpers.commands import study_command, unreachable_url
from helpers.medmnist import fake_npz
from helpers.protocols import protocol_file_text

from study.core.errors import DataError
from study.data.medmnist_files import find_medmnist, user_cache
from study.data.medmnist_table import FLAGS, SIZES, URL_VAR, Flag, file_name, file_url
from study.data.sources import load_dataset, source_fingerprint
from study.protocol.schema import MedmnistSpec
from study.store.results import ResultStore

FLAG_NAMES = ["pathmnist", "chestmnist", "dermamnist", "octmnist", "pneumoniamnist", "retinamnist", "breastmnist",
              "bloodmnist", "tissuemnist", "organamnist", "organcmnist", "organsmnist"]


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def served(tmp_path, monkeypatch) -> Path:
    """A folder served over HTTP on 127.0.0.1, made the MedMNIST download address; files put in it are fetched."""
    folder = tmp_path / "served"
    folder.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv(URL_VAR, f"http://127.0.0.1:{server.server_port}")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    yield folder
    server.shutdown()
    server.server_close()
    thread.join()


def _trust(monkeypatch, flag: str, native: int, path: Path) -> None:
    """Make the table's MD5 of flag at native size that of path (a fake file)."""
    known = FLAGS[flag]
    monkeypatch.setitem(FLAGS, flag, Flag({**known.md5, native: _md5(path)}, known.labels, known.multi_label))


# ------------------------------------------------------------------------------------------------------ table
def test_table_lists_every_2d_dataset_with_an_md5_per_official_file():
    assert list(FLAGS) == FLAG_NAMES
    for flag, known in FLAGS.items():
        assert sorted(known.md5) == list(SIZES) == [28, 64, 128, 224]
        assert all(re.fullmatch(r"[0-9a-f]{32}", md5) for md5 in known.md5.values()), flag
        assert len(known.labels) >= 2
    assert len({md5 for known in FLAGS.values() for md5 in known.md5.values()}) == 48
    assert [flag for flag, known in FLAGS.items() if known.multi_label] == ["chestmnist"]
    assert FLAGS["breastmnist"].labels == ("malignant", "normal, benign")


def test_file_names_and_urls_are_the_official_ones(monkeypatch):
    monkeypatch.delenv(URL_VAR, raising=False)
    assert [file_name("breastmnist", native) for native in SIZES] == [
        "breastmnist.npz", "breastmnist_64.npz", "breastmnist_128.npz", "breastmnist_224.npz"]
    assert file_url("breastmnist_64.npz") == "https://zenodo.org/records/10519652/files/breastmnist_64.npz?download=1"
    monkeypatch.setenv(URL_VAR, "http://mirror.example/medmnist/")
    assert file_url("breastmnist.npz") == "http://mirror.example/medmnist/breastmnist.npz?download=1"


@pytest.mark.integration
def test_the_real_breastmnist_file_is_the_official_one(breastmnist_dir):
    assert _md5(breastmnist_dir / "breastmnist.npz") == FLAGS["breastmnist"].md5[28] == "750601b1f35ba3300ea97c75c52ff8f6"


# ------------------------------------------------------------------------------------------- which file is read
@pytest.mark.parametrize("on_disk, size, read", [
    ([28], 28, 28), ([28], 64, 28), ([28], 300, 28),
    ([28, 64], 64, 64), ([28, 64], 28, 28), ([28, 64], 48, 64), ([28, 64], 100, 64),
    ([28, 128, 224], 64, 128), ([28, 128, 224], 160, 224), ([28, 128], 224, 128), ([224], 28, 224),
])
def test_size_reads_the_smallest_file_at_least_as_large_else_the_largest(tmp_path, on_disk, size, read):
    for native in on_disk:
        fake_npz(tmp_path / file_name("breastmnist", native), native)
    found = find_medmnist("breastmnist", size, tmp_path)
    assert found.path == tmp_path / file_name("breastmnist", read) and found.native == read


def test_native_file_is_read_without_resizing_and_named_in_the_dataset(tmp_path):
    fake_npz(tmp_path / "breastmnist.npz", 28, seed=1)
    native = np.load(fake_npz(tmp_path / "breastmnist_64.npz", 64, seed=2))
    dataset = load_dataset(MedmnistSpec(source="medmnist", name="breastmnist", size=64), tmp_path, tmp_path / "cache")
    np.testing.assert_array_equal(dataset.images[:6, ..., 0], native["train_images"])
    assert dataset.source_file == "breastmnist_64.npz (64 px)"
    cached = load_dataset(MedmnistSpec(source="medmnist", name="breastmnist", size=64), tmp_path, tmp_path / "cache")
    assert cached.source_file == "breastmnist_64.npz (64 px)"
    small = load_dataset(MedmnistSpec(source="medmnist", name="breastmnist", size=28), tmp_path, None)
    assert small.source_file == "breastmnist.npz (28 px)"


def test_a_native_file_on_disk_changes_the_fingerprint_only_where_it_is_read(tmp_path):
    fake_npz(tmp_path / "breastmnist.npz", 28)
    at = {size: MedmnistSpec(source="medmnist", name="breastmnist", size=size) for size in (28, 64)}
    before = {size: source_fingerprint(spec, tmp_path) for size, spec in at.items()}
    assert before[28] == before[64]  # one file, resized: run ids of 64 px protocols stay as they were
    fake_npz(tmp_path / "breastmnist_64.npz", 64)
    assert source_fingerprint(at[28], tmp_path) == before[28]
    assert source_fingerprint(at[64], tmp_path) != before[64]  # another file: another dataset


@pytest.mark.slow
def test_a_run_stores_the_file_its_cells_read(tmp_path):
    fake_npz(tmp_path / "data" / "breastmnist.npz", 28, counts=(24, 8, 8))
    protocol = tmp_path / "tiny.yaml"
    protocol.write_text(protocol_file_text("tiny", seeds=1, epochs=1).replace(
        "{source: synthetic, classes: 2, per_class: 30, size: 16}", "{source: medmnist, name: breastmnist, size: 16}"))
    result = study_command("run", str(protocol), "--results-dir", str(tmp_path / "results"), "--report-dir",
                           str(tmp_path / "report"), "--data-dir", str(tmp_path / "data"), "--jobs", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    store = ResultStore(tmp_path / "results", "tiny")
    assert set(store.cells()["source_file"]) == {"breastmnist.npz (28 px)"}
    assert store.dataset_info()["source_file"] == "breastmnist.npz (28 px)"
    assert "read from breastmnist.npz (28 px)" in (tmp_path / "report" / "tiny" / "report.md").read_text()


# -------------------------------------------------------------------------------------------------- download
def test_download_into_the_data_dir_checks_the_md5(served, tmp_path, monkeypatch):
    source = fake_npz(served / "breastmnist_64.npz", 64)
    _trust(monkeypatch, "breastmnist", 64, source)
    dataset = load_dataset(MedmnistSpec(source="medmnist", name="breastmnist", size=64), tmp_path / "data", None)
    assert (tmp_path / "data" / "breastmnist_64.npz").read_bytes() == source.read_bytes()
    assert len(dataset) == 12 and dataset.source_file == "breastmnist_64.npz (64 px)"
    assert dataset.class_names == ["malignant", "normal, benign"]


def test_other_sizes_download_the_28_px_file(served, tmp_path, monkeypatch):
    _trust(monkeypatch, "pneumoniamnist", 28, fake_npz(served / "pneumoniamnist.npz", 28))
    dataset = load_dataset(MedmnistSpec(source="medmnist", name="pneumoniamnist", size=40), tmp_path / "data", None)
    assert [path.name for path in (tmp_path / "data").iterdir()] == ["pneumoniamnist.npz"]
    assert dataset.images.shape == (12, 40, 40, 1) and dataset.class_names == ["normal", "pneumonia"]


def test_without_a_data_dir_the_download_goes_to_the_user_cache(served, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "home" / ".cache"))
    assert tmp_path / "home" in user_cache().parents
    _trust(monkeypatch, "breastmnist", 28, fake_npz(served / "breastmnist.npz", 28))
    load_dataset(MedmnistSpec(source="medmnist", name="breastmnist", size=28), None, None)
    assert (user_cache() / "breastmnist.npz").read_bytes() == (served / "breastmnist.npz").read_bytes()


def test_a_download_with_the_wrong_md5_is_refused_and_not_kept(served, tmp_path):
    fake_npz(served / "breastmnist.npz", 28)  # not the official file: the table's MD5 does not match
    with pytest.raises(DataError) as caught:
        load_dataset(MedmnistSpec(source="medmnist", name="breastmnist", size=28), tmp_path / "data", None)
    message = str(caught.value)
    assert f"MD5 is not {FLAGS['breastmnist'].md5[28]}, so it was not kept" in message and "\n" not in message
    assert not list((tmp_path / "data").iterdir())  # neither the file nor a partial download


def test_offline_the_error_names_the_file_the_folder_and_the_url(tmp_path, monkeypatch):
    base = unreachable_url()
    monkeypatch.setenv(URL_VAR, base)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    url = f"{base}/breastmnist_128.npz?download=1"
    with pytest.raises(DataError) as caught:
        load_dataset(MedmnistSpec(source="medmnist", name="breastmnist", size=128), tmp_path, None)
    message = str(caught.value)
    assert message == (f"MedMNIST file breastmnist_128.npz is not in {tmp_path} and could not be fetched (no "
                       f"connection: ConnectionError): download {url} and put it in {tmp_path} (the data directory: "
                       "--data-dir or STUDY_DATA_DIR)")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "home" / ".cache"))
    with pytest.raises(DataError, match=r"put it in .*user cache.*--data-dir DIR or set in STUDY_DATA_DIR"):
        source_fingerprint(MedmnistSpec(source="medmnist", name="breastmnist", size=128), None)

