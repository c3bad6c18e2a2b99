"""`study predict`: a kept model applied to new images, read and preprocessed exactly as its cell's images were."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from study.core.errors import DataError, StudyError
from study.data.image_files import image_files
from study.data.images import IMAGE_SUFFIXES, read_images
from study.store.models import model_info


def predict_images(model_path: Path, images: Path) -> pd.DataFrame:
    """Per image file under `images` (a folder, searched recursively, or one file): its path, the probability of each
    class (a column per class name) and the predicted class. The images are decoded, resized with the cell's filter
    to its size and preprocessed for its backbone, as the training images were."""
    from study.training.process import available_cores
    from study.training.models.backbones import preprocess
    from study.training.process import configure_tensorflow
    from study.training.train import predictor

    info = model_info(model_path)
    paths = _image_paths(Path(images))
    pixels, unreadable = read_images(paths, info["size"], info["resize"], skip_bad=True)
    if unreadable:
        raise DataError(next(iter(unreadable.values())))
    configure_tensorflow(available_cores())
    import keras

    try:
        model = keras.saving.load_model(model_path, compile=False)
    except Exception as exc:  # a truncated or garbage file: Keras raises what its zip or HDF5 reader raised
        raise StudyError(f"cannot read the kept model {model_path} ({' '.join(str(exc).split())[:300]}); `study run "
                         "--keep-models best|all` trains its cell again") from None
    probabilities = predictor(model)(preprocess(info["backbone"], pixels, info["weights"]))
    classes = info["class_names"]
    frame = pd.DataFrame(probabilities, columns=classes)
    frame.insert(0, "path", [str(path) for path in paths])
    frame["predicted"] = [classes[index] for index in probabilities.argmax(axis=1)]
    return frame


def _image_paths(images: Path) -> list[Path]:
    """The image files of a folder (recursively, hidden files left out), or the one file given."""
    if images.is_file():
        return [images]
    if not images.is_dir():
        raise DataError(f"image folder {images} not found")
    paths = image_files(images)
    if not paths:
        raise DataError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) in {images}")
    return paths
