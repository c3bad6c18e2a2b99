"""DICOM pixel data to uint8: the modality LUT (rescale slope and intercept), the VOI LUT or window, MONOCHROME1
inverted."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from study.core.errors import DataError


def dicom_pixels(path: Path) -> np.ndarray:
    """One single-frame DICOM image as uint8 H x W x 1 (monochrome) or H x W x 3 (8-bit colour); DataError naming
    the file when it cannot be decoded."""
    import pydicom

    try:
        header = pydicom.dcmread(path)
        pixels = header.pixel_array  # colour YBR comes back as RGB
    except Exception as exc:  # pydicom raises many kinds on damaged files or missing decoders
        raise DataError(f"cannot read DICOM image {path}: {' '.join(str(exc).split())}") from None
    kind = header.get("PhotometricInterpretation", "")
    if kind in ("MONOCHROME1", "MONOCHROME2"):
        return monochrome(header, pixels)[..., None]
    if pixels.ndim == 3 and pixels.shape[2] == 3 and pixels.dtype == np.uint8:
        return pixels
    raise DataError(f"DICOM image {path}: photometric interpretation {kind!r} with {pixels.dtype} samples is not "
                    "supported (MONOCHROME1, MONOCHROME2 or 8-bit colour)")


def monochrome(header, pixels: np.ndarray) -> np.ndarray:
    """Grey levels 0..255 of stored monochrome pixels: the modality LUT (rescale slope and intercept), then the
    VOI LUT or the first window, whose output range maps to 0..255; without either, the image's own range does.
    MONOCHROME1 (low values white) is inverted, so that white is high in every image."""
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    values = apply_modality_lut(pixels, header)
    if _has_voi(header):
        values = apply_voi_lut(values, header).astype(np.float64)
        low, high = _voi_range(header)
    else:
        values = values.astype(np.float64)
        low, high = float(values.min()), float(values.max())
    scaled = (values - low) * (255.0 / (high - low)) if high > low else np.zeros_like(values)
    grey = np.round(np.clip(scaled, 0, 255)).astype(np.uint8)
    return 255 - grey if header.PhotometricInterpretation == "MONOCHROME1" else grey


def _has_voi(header) -> bool:
    return bool(header.get("VOILUTSequence")) or ("WindowCenter" in header and "WindowWidth" in header)


def _voi_range(header) -> tuple[float, float]:
    """The output range of the VOI transform apply_voi_lut applies: its LUT's (0 to 2^bits - 1), else what the
    window maps the lowest and highest values to."""
    from pydicom.pixels import apply_windowing

    if header.get("VOILUTSequence"):
        return 0.0, float(2 ** header.VOILUTSequence[0].LUTDescriptor[2] - 1)
    low, high = apply_windowing(np.array([-np.inf, np.inf]), header)
    return float(low), float(high)
