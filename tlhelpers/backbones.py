"""Backbones: a registry of Keras applications and where their weights come from.

Each entry says how to build the convolutional base, which preprocessing it
expects, its input sizes, the layers where its stages end (so that "freeze up
to stage k" is one argument) and the ImageNet weights file Keras downloads.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import keras


class WeightsUnavailableError(RuntimeError):
    """Weights could not be obtained (offline, missing file); the message says how to fix it."""


@dataclasses.dataclass(frozen=True)
class BackboneSpec:
    """Everything the package needs to know about one backbone.

    Attributes:
        name: Registry name.
        builder: The `keras.applications` constructor.
        preprocess: Its `preprocess_input` (takes float RGB 0-255).
        min_size: Smallest input side Keras accepts without the top.
        default_size: Input side of the ImageNet profile.
        stage_ends: Names of the layers where stage 1, 2, ... ends.
        imagenet_file: File name of the no-top ImageNet weights in the Keras cache.
        imagenet_md5: Its md5, as published with Keras.
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
    ),
}


HUB_PREFIX = "hub:"


def is_hub_name(name):
    """Whether `name` asks for a TF-Hub backbone (`"hub:<handle-or-path>"`)."""
    return isinstance(name, str) and name.startswith(HUB_PREFIX)


def get_backbone(name):
    """Return the `BackboneSpec` registered as `name`, or the spec of a `"hub:..."` name.

    Raises:
        ValueError: for an unknown name, listing the known ones.
    """
    if is_hub_name(name):
        from tlhelpers.hub import hub_backbone

        return hub_backbone(name)
    if name not in BACKBONES:
        raise ValueError(f"Received backbone={name!r}. Expected one of: {', '.join(BACKBONES)}, "
                         f"or {HUB_PREFIX}<handle-or-path> for a TF-Hub model.")
    return BACKBONES[name]


def keras_cache_dir():
    """The folder where Keras keeps downloaded weights (`$KERAS_HOME/models`)."""
    # Keras reads KERAS_HOME once, at import; ask it rather than the environment.
    from keras.src.backend import config

    return Path(os.path.expanduser(config.keras_home())) / "models"


def check_image_size(spec, image_size):
    """Return `(height, width)` after checking it against the backbone's minimum."""
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if len(size) != 2 or min(size) < spec.min_size:
        raise ValueError(
            f"Received image_size={image_size} for {spec.name}. Expected (height, width) "
            f"of at least {spec.min_size} pixels each."
        )
    return size


def build_base(name, weights=None, image_size=32, pooling="avg", **embedded_options):
    """Build a backbone's convolutional base (no classifier).

    Args:
        name: Registry name, e.g. `"resnet50"`, or `"hub:<handle-or-path>"`
            for a TF-Hub model (see `hub.build_hub_base`: it brings its own
            weights and rejects random ones).
        weights: `None` or `"none"` (random), `"imagenet"` (Keras download and
            cache), `"embedded"` (a source model developed in this project on
            the embedded source classes: by default the one trained on
            Fashion-MNIST in clutter and shipped in `data/source_models/`) or
            a path to a weights file.
        image_size: Input side or `(height, width)`.
        pooling: `"avg"`, `"max"` or `None` (feature map), as in Keras.
        **embedded_options: For `"embedded"`: `clutter=None` picks the clean
            source model trained on first use, with `source_classes`, `seed`,
            `recipe`, `cache_dir`, `verbose` (see `source_models.load_source_base`).

    Returns:
        A `keras.Model` named after the backbone.

    Raises:
        ValueError: unknown name or weights, too small an image size.
        WeightsUnavailableError: ImageNet weights neither cached nor downloadable.
    """
    spec = get_backbone(name)
    size = check_image_size(spec, image_size)
    if spec.hub_handle is not None:
        from tlhelpers.hub import build_hub_base

        return build_hub_base(spec.hub_handle, weights, size, pooling)
    input_shape = (*size, 3)
    if weights in (None, "none"):
        return spec.builder(include_top=False, weights=None, input_shape=input_shape, pooling=pooling)
    if weights == "embedded":
        from tlhelpers.source_models import load_source_base

        return load_source_base(name, image_size=size, pooling=pooling, **embedded_options)
    if weights == "imagenet":
        return _build_imagenet(spec, input_shape, pooling)
    if isinstance(weights, (str, os.PathLike)) and Path(weights).is_file():
        return spec.builder(include_top=False, weights=str(weights), input_shape=input_shape,
                            pooling=pooling)
    raise ValueError(
        f"Received weights={weights!r}. Expected 'imagenet', 'embedded', None/'none' or the "
        "path of an existing weights file."
    )


def weights_file_version(name, weights, **embedded_options):
    """A version of the file `build_base(name, weights, ...)` reads its weights from.

    `"imagenet"` for ImageNet weights (hash-checked downloads never change),
    `source_models.file_version` of the embedded source model or of a weights
    path, and None for random weights, TF-Hub bases and files that do not exist
    yet (an embedded source model before its first use).
    """
    from tlhelpers.source_models import file_version, source_model_path, uses_shipped

    if get_backbone(name).hub_handle is not None or weights in (None, "none"):
        return None
    if weights == "imagenet":
        return "imagenet"
    if weights == "embedded" and uses_shipped(embedded_options):
        from tlhelpers.shipped_sources import SHIPPED, shipped_path

        if name not in SHIPPED:
            return None
        path = shipped_path(name)
    elif weights == "embedded":
        options = {k: v for k, v in embedded_options.items() if k not in ("verbose", "clutter")}
        path = source_model_path(name, **options)
    else:
        path = Path(weights)
    return file_version(path) if path.is_file() else None


def _build_imagenet(spec, input_shape, pooling):
    """Build with ImageNet weights fetched through `downloads` (hash-checked, mirror-aware).

    Offline and not cached, `downloads.DownloadError` (a `WeightsUnavailableError`)
    names the file, its md5, the cache folder and how to provide it by hand.
    """
    from tlhelpers.downloads import fetch_imagenet_weights

    try:
        path = fetch_imagenet_weights(spec.name, cache_dir=keras_cache_dir().parent)
    except WeightsUnavailableError as error:
        raise type(error)(f"{error} Without a download, weights='embedded' runs the offline "
                          "profile.") from None
    return spec.builder(include_top=False, weights=str(path), input_shape=input_shape, pooling=pooling)
