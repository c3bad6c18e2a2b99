"""DICOM files written with pydicom, for the tests of the DICOM source and of `study init`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import (
    ExplicitVRLittleEndian,
    SecondaryCaptureImageStorage,
    generate_uid,
)


def write_dicom(path: Path, pixels: np.ndarray, patient: str = "p0", photometric: str = "MONOCHROME2",
                frames: int = 1, **tags) -> Path:
    """A single- (or multi-) frame monochrome DICOM file of uint8 or uint16 pixels (frames x) rows x columns."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    header = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    header.SOPClassUID, header.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    header.PatientID, header.Modality = patient, "OT"
    header.StudyInstanceUID, header.SeriesInstanceUID = generate_uid(), generate_uid()
    bits = pixels.dtype.itemsize * 8
    header.Rows, header.Columns = pixels.shape[-2:]
    header.SamplesPerPixel, header.PhotometricInterpretation = 1, photometric
    header.BitsAllocated, header.BitsStored, header.HighBit, header.PixelRepresentation = bits, bits, bits - 1, 0
    if frames > 1:
        header.NumberOfFrames = frames
    for name, value in tags.items():
        setattr(header, name, value)
    header.PixelData = pixels.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    header.save_as(path, enforce_file_format=True)
    return path
