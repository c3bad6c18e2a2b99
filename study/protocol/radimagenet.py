"""RadImageNet's pretrained weights: which backbones have a file, its name, and the preprocessing it was trained with.

RadImageNet (Mei et al., "RadImageNet: An Open Radiologic Deep Learning Research Dataset for Effective Transfer
Learning", Radiology: Artificial Intelligence 2022, https://github.com/BMEII-AI/RadImageNet) publishes headless Keras
.h5 files for four keras.applications networks. Its fine-tuning scripts (e.g. acl/acl_train.py) build each network
with `weights=` the file, `include_top=False` and `pooling='avg'`, and feed it images through an ImageDataGenerator
with `preprocessing_function=imagenet_utils.preprocess_input` (mode "caffe": BGR less ImageNet's mean) and
`rescale=1./255`, which Keras applies after that function: the mode "radimagenet" below, the same for all four.
"""

from __future__ import annotations

from study.protocol.blocks import backbone_info

RADIMAGENET = "radimagenet"  # the `backbone.weights` shorthand
RADIMAGENET_PREPROCESSING = "radimagenet"  # (BGR less ImageNet's mean) / 255
RADIMAGENET_DOWNLOAD = "https://drive.google.com/drive/folders/1Es7cK1hv7zNHJoUW0tI0e6nLFVYTqPqK"
# The file of each backbone as RadImageNet's download folder names it (its scripts spell "-notop" with a hyphen).
RADIMAGENET_FILES = {
    "densenet121": "RadImageNet-DenseNet121_notop.h5",
    "inceptionresnetv2": "RadImageNet-IRV2_notop.h5",
    "inceptionv3": "RadImageNet-InceptionV3_notop.h5",
    "resnet50": "RadImageNet-ResNet50_notop.h5",
}


def preprocessing_mode(backbone: str, weights: str) -> str:
    """How a backbone's input is scaled with these initial weights: RadImageNet's for its files, else the entry's."""
    return RADIMAGENET_PREPROCESSING if weights == RADIMAGENET else backbone_info(backbone).preprocessing
