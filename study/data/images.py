"""Image decoding: image files and arrays to uint8 grey or RGB pixels at size x size."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from study.core.errors import DataError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
_HIGH_DEPTH_MODES = {"I", "F", "I;16", "I;16L", "I;16B", "I;16N"}
FILTERS = {  # dataset.resize: Pillow's resampling filters
    "bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC, "lanczos": Image.Resampling.LANCZOS,
    "nearest": Image.Resampling.NEAREST, "box": Image.Resampling.BOX, "hamming": Image.Resampling.HAMMING,
}


def read_images(paths: list[Path], size: int, resize: str = "bilinear", skip_bad: bool = False,
                decode: Callable[[Path], np.ndarray] | None = None) -> tuple[np.ndarray, dict[int, str]]:
    """The readable files as one uint8 N x size x size x C array (C 1 or 3), and {index: "path: why"} of the
    files that could not be read: with skip_bad they are left out, else the first one raises DataError.

    - grey stays one channel, and so does RGB with R == G == B everywhere (BUSI); if any image is truly colour,
      every image becomes RGB;
    - palette and RGBA images become RGB (alpha dropped); 16-bit, 32-bit and float images are min-max scaled to
      0..255 per image; EXIF orientation is applied;
    - every image is resized to size x size with the `resize` filter (a name of FILTERS); a non-square image is
      stretched (no crop, no padding).

    decode reads one file as uint8 H x W x C or raises DataError (default: decode_image, for image files).
    """
    decode = decode or decode_image
    results = _parallel(lambda path: _try_read(path, size, resize, decode), paths)
    bad = {index: str(result) for index, result in enumerate(results) if isinstance(result, DataError)}
    if bad and not skip_bad:
        raise DataError(f"{next(iter(bad.values()))}; replace or remove the file, or set dataset.on_bad_file: skip")
    arrays = [result for result in results if not isinstance(result, DataError)]
    if not arrays:
        raise DataError(f"none of the {len(paths)} image files could be read (first: {next(iter(bad.values()))})")
    colour = sum(array.shape[2] == 3 for array in arrays)
    if 0 < colour < len(arrays):
        log.info("%d of %d images are colour: the grey ones become RGB too", colour, len(arrays))
    return np.stack([np.repeat(a, 3, axis=2) if colour and a.shape[2] == 1 else a for a in arrays]), bad


def is_grey(rgb: np.ndarray) -> bool:
    """Whether R == G == B at every pixel of an ... x 3 array."""
    return bool((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all())


def resize_all(images: np.ndarray, size: int, resize: str = "bilinear") -> np.ndarray:
    """N x H x W x C uint8 images resized to N x size x size x C (with the `resize` filter, stretched)."""
    if images.shape[1:3] == (size, size):
        return images
    return np.stack(_parallel(lambda pixels: _resize(pixels, size, resize), images))


def _parallel(function: Callable, items: Iterable) -> list:
    with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
        return list(pool.map(function, items))


def decode_image(path: Path) -> np.ndarray:
    """One image file as uint8 H x W x C (C 1 or 3); DataError naming it when it cannot be read."""
    try:
        with Image.open(path) as image:
            image.load()
            return _to_uint8(ImageOps.exif_transpose(image))
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"cannot read image {path}: {exc}") from None


def _try_read(path: Path, size: int, resize: str, decode: Callable[[Path], np.ndarray]) -> np.ndarray | DataError:
    """One file decoded and resized to uint8 size x size x C, or the DataError that names it."""
    try:
        pixels = decode(path)
    except DataError as exc:
        return exc
    return _resize(pixels, size, resize)


def _to_uint8(image: Image.Image) -> np.ndarray:
    if image.mode in _HIGH_DEPTH_MODES:
        values = np.asarray(image, dtype=np.float64)
        low, high = float(values.min()), float(values.max())
        scaled = (values - low) * (255.0 / (high - low)) if high > low else np.zeros_like(values)
        return np.round(scaled).astype(np.uint8)[..., None]
    if image.mode in ("1", "L", "LA", "La"):
        return np.asarray(image.convert("L"))[..., None]
    if image.mode in ("P", "PA"):
        image = image.convert("RGBA")
    rgb = np.asarray(image.convert("RGB"))
    return rgb[..., :1] if is_grey(rgb) else rgb


def _resize(pixels: np.ndarray, size: int, resize: str) -> np.ndarray:
    if pixels.shape[:2] == (size, size):
        return pixels
    image = Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels)
    resized = image.resize((size, size), FILTERS[resize])
    return np.asarray(resized).reshape(size, size, pixels.shape[2])
