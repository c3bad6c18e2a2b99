"""Which MedMNIST file a protocol reads: the best one on disk for its size, else a verified download."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from study.core.errors import DataError
from study.data.datadir import ENV_VAR
from study.data.medmnist_table import FLAGS, SIZES, file_name, file_url

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MedmnistFile:
    """A MedMNIST .npz file on disk and the side, in pixels, of the images it holds."""

    path: Path
    native: int

    def describe(self) -> str:
        return f"{self.path.name} ({self.native} px)"


def user_cache() -> Path:
    """Where MedMNIST files are kept when no data directory is set (~/.cache/study/medmnist on Linux)."""
    import pooch

    return Path(pooch.os_cache("study")) / "medmnist"


def find_medmnist(flag: str, size: int, data_dir: Path | None) -> MedmnistFile:
    """The file of flag to resize to size px, in the data directory (without one, the user cache).

    A file on disk always wins over a download: the smallest native size >= size, else the largest on disk (the 28 px
    file for a protocol that only has that one). With none on disk, the native file of size (28, 64, 128, 224) is
    downloaded, or the 28 px file for other sizes."""
    folder = data_dir if data_dir is not None else user_cache()
    on_disk = {native: folder / file_name(flag, native) for native in SIZES
               if (folder / file_name(flag, native)).is_file()}
    if on_disk:
        native = min((native for native in on_disk if native >= size), default=max(on_disk))
        return MedmnistFile(on_disk[native], native)
    return fetch_medmnist(flag, size if size in SIZES else 28, data_dir)


def fetch_medmnist(flag: str, native: int, data_dir: Path | None) -> MedmnistFile:
    """The file of flag at a native size in the data directory (without one, the user cache), downloaded there when
    absent."""
    folder = data_dir if data_dir is not None else user_cache()
    path = folder / file_name(flag, native)
    return MedmnistFile(path if path.is_file() else _download(flag, native, folder, data_dir is None), native)


def _download(flag: str, native: int, folder: Path, in_cache: bool) -> Path:
    """Fetch the file into folder and check its MD5 (a file that fails the check is not kept)."""
    import pooch
    import requests

    name, md5 = file_name(flag, native), FLAGS[flag].md5[native]
    url = file_url(name)
    log.info("downloading %s to %s", url, folder)
    pooch.get_logger().setLevel(logging.WARNING)  # its own line per download would precede an error's one line
    try:
        path = Path(pooch.retrieve(url, known_hash=f"md5:{md5}", fname=name, path=folder))
        path.chmod(0o644)  # pooch's temporary file is private; a data directory is often shared
        return path
    except ValueError:
        why = f"the downloaded file's MD5 is not {md5}, so it was not kept"
    except (requests.ConnectionError, requests.Timeout) as exc:
        why = f"no connection: {type(exc).__name__}"
    except OSError as exc:  # requests' HTTP errors too
        why = " ".join(f"{type(exc).__name__}: {exc}".split())
    if in_cache:
        where = (f"{folder} (the user cache, used while no data directory is set), or in a folder you pass as "
                 f"--data-dir DIR or set in {ENV_VAR}")
    else:
        where = f"{folder} (the data directory: --data-dir or {ENV_VAR})"
    raise DataError(f"MedMNIST file {name} is not in {folder} and could not be fetched ({why}): download {url} "
                    f"and put it in {where}")
