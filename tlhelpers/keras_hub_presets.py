"""EfficientNet-Lite0's genuine ImageNet weights as a KerasHub preset: a local folder for `Backbone.from_preset`.

KerasHub (`keras-hub`) is the maintained library of pretrained Keras models. A
preset is a folder (`config.json`, `metadata.json`, `model.weights.h5`) that
`keras_hub.models.Backbone.from_preset(folder)` loads, the same call that
fetches a published one from a handle such as
`"kaggle://keras/efficientnet/keras/efficientnet_lite0_ra_imagenet"`.

That published Lite0 holds other weights (trained in PyTorch for timm) in
another convention: KerasHub's original EfficientNet block (`"v1"`) pads every
depthwise convolution by `kernel // 2` on each side, the stem by one pixel,
and BatchNormalization uses epsilon 1e-5. The genuine weights of
`imagenet_ports` were trained in TensorFlow with `"same"` padding and epsilon
1e-3. Where the input side is even, a stride-2 `"same"` convolution pads less
before than after (0 and 1 pixels for a 3x3 kernel, 1 and 2 for 5x5), so the
symmetric padding shifts the sampling grid by one pixel. `LITE0_CONFIG` gets
every detail right with options alone: the `"unfused"` block (`MBConvBlock`,
whose depthwise convolution pads `"same"`) for the six stages with an
expansion; `"v1"` for the first stage, which has stride 1 (symmetric padding
is `"same"` there) and no expansion (where `MBConvBlock` would widen the 1x1
projection to the depthwise kernel's size); a `"same"` stem, epsilon 1e-3,
ReLU6 and no squeeze-excitation.

`keras_hub` is imported inside the functions, so the package imports without it.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np

from tlhelpers import imagenet_ports
from tlhelpers.errors import WeightsUnavailableError
from tlhelpers.registry import get_backbone

# keras-hub needs tensorflow-text outside Windows. Version 2.21.0 does not import beside TensorFlow
# 2.21.0 (undefined symbol icudt77_dat, tensorflow/text#1541; KerasHub then runs without it); 2.21.1 does.
KERAS_HUB_REQUIREMENT = "keras-hub==0.32.0 tensorflow-text==2.21.1"
BACKBONE = "efficientnet_lite0"
PRESET_FILES = ("config.json", "metadata.json", "model.weights.h5")

# `keras_hub.models.EfficientNetBackbone` arguments that reproduce `architectures.EfficientNetLite0`.
LITE0_CONFIG = dict(
    stackwise_width_coefficients=[1.0] * 7,
    stackwise_depth_coefficients=[1.0] * 7,
    stackwise_kernel_sizes=[3, 3, 5, 3, 5, 5, 3],
    stackwise_num_repeats=[1, 2, 2, 3, 3, 4, 1],
    stackwise_input_filters=[32, 16, 24, 40, 80, 112, 192],
    stackwise_output_filters=[16, 24, 40, 80, 112, 192, 320],
    stackwise_expansion_ratios=[1, 6, 6, 6, 6, 6, 6],
    stackwise_strides=[1, 2, 2, 2, 1, 2, 1],
    stackwise_squeeze_and_excite_ratios=[0] * 7,
    stackwise_block_types=["v1"] + ["unfused"] * 6,
    min_depth=None,
    use_depth_divisor_as_min_depth=True,
    cap_round_filter_decrease=True,
    include_stem_padding=False,
    stem_conv_padding="same",
    # The port has no drop-connect either, so fine-tuning one is fine-tuning the other.
    dropout=0.0,
    activation="relu6",
    batch_norm_momentum=0.99,
    batch_norm_epsilon=1e-3,
    num_features=1280,
)

# One block's layers with weights, in the same order on each side: expansion, depthwise convolution
# and projection, each followed by its BatchNormalization. The port names them after the PyTorch
# file (`architectures`), KerasHub's "v1" block by layer name, its `MBConvBlock` by attribute.
PORT_BLOCK_PARTS = ("_expand_conv", "_bn0", "_depthwise_conv", "_bn1", "_project_conv", "_bn2")
V1_BLOCK_PARTS = ("expand_conv", "expand_bn", "dwconv", "dwconv_bn", "project", "project_bn")
UNFUSED_BLOCK_PARTS = ("conv1", "bn1", "depthwise", "bn2", "output_conv", "bn3")


class FeatureDifference(NamedTuple):
    """Largest absolute differences between two bases' outputs on the same images."""

    feature_map: float
    pooled: float


def require_keras_hub():
    """Import `keras_hub`.

    Raises:
        WeightsUnavailableError: `keras-hub` is not installed; says what to install.
    """
    try:
        with warnings.catch_warnings():
            # In Jupyter without ipywidgets, tqdm warns on import that its progress bars fall back to
            # text. KerasHub's downloaders import it; a local preset downloads nothing.
            warnings.filterwarnings("ignore", message="IProgress not found")
            import keras_hub
    except ImportError:
        raise WeightsUnavailableError(f"KerasHub presets need the PyPI package keras-hub, which is not "
                                      f"installed. Install it with `pip install {KERAS_HUB_REQUIREMENT}`.") from None
    return keras_hub


def build_lite0_backbone(**overrides):
    """A `keras_hub.models.EfficientNetBackbone` of `LITE0_CONFIG` (with `overrides`), random weights."""
    return require_keras_hub().models.EfficientNetBackbone(**{**LITE0_CONFIG, **overrides})


def weight_pairs(backbone):
    """`(KerasHub layer, name of the port's layer)` for every layer of `backbone` with weights."""
    pairs = [(backbone.get_layer("stem_conv"), "_conv_stem"), (backbone.get_layer("stem_bn"), "_bn0")]
    index = 0
    for stack, repeats in enumerate(backbone.stackwise_num_repeats):
        # Without an expansion (ratio 1) a block starts at its depthwise convolution.
        first = 0 if backbone.stackwise_expansion_ratios[stack] != 1 else 2
        for repeat in range(repeats):
            name = f"block{stack + 1}{chr(ord('a') + repeat)}_"
            if backbone.stackwise_block_types[stack] == "v1":
                layers = [backbone.get_layer(name + part) for part in V1_BLOCK_PARTS[first:]]
            else:
                block = backbone.get_layer(name)
                layers = [getattr(block, part) for part in UNFUSED_BLOCK_PARTS[first:]]
            pairs += zip(layers, [f"_blocks_{index}_{part}" for part in PORT_BLOCK_PARTS[first:]])
            index += 1
    return pairs + [(backbone.get_layer("top_conv"), "_conv_head"), (backbone.get_layer("top_bn"), "_bn1")]


def copy_port_weights(backbone, port):
    """Copy the weights of an `architectures.EfficientNetLite0` base into a KerasHub backbone (in place).

    Raises:
        ValueError: shapes differ, or a weight on either side is left out.
    """
    pairs = weight_pairs(backbone)
    for layer, port_name in pairs:
        arrays = port.get_layer(port_name).get_weights()
        expected = [tuple(weight.shape) for weight in layer.weights]
        if [array.shape for array in arrays] != expected:
            raise ValueError(f"KerasHub layer {layer.name} expects shapes {expected}; the port's {port_name} "
                             f"has {[array.shape for array in arrays]}. Expected a backbone of LITE0_CONFIG.")
        layer.set_weights(arrays)
    copied = sum(len(layer.weights) for layer, _ in pairs)
    left_out = {layer.name for layer in port.layers if layer.weights} - {name for _, name in pairs}
    if copied != len(backbone.weights) or left_out:
        raise ValueError(f"Copied {copied} of the backbone's {len(backbone.weights)} weights; port layers "
                         f"left out: {sorted(left_out) or 'none'}. Expected a backbone of LITE0_CONFIG.")
    return backbone


def port_base(cache_dir=None):
    """The package's own EfficientNet-Lite0 base with its ImageNet weights, any input size, no pooling."""
    return imagenet_ports.build_imagenet_base(BACKBONE, (None, None, 3), None, cache_dir)


def save_lite0_preset(folder, cache_dir=None):
    """Save EfficientNet-Lite0 with its genuine ImageNet weights as a local KerasHub preset.

    Args:
        folder: Where to write the preset (created; its preset files are replaced).
        cache_dir: The package cache holding the converted weights (default `$TLHELPERS_CACHE`).

    Returns:
        The preset folder, a `Path`: load it with `load_preset_backbone` or
        `keras_hub.models.Backbone.from_preset`. Inputs are RGB 0-255 images
        preprocessed with `registry.get_backbone("efficientnet_lite0").preprocess`.

    Raises:
        WeightsUnavailableError: keras-hub or the weights' wheel is not installed.
    """
    backbone = copy_port_weights(build_lite0_backbone(), port_base(cache_dir))
    folder = Path(folder)
    backbone.save_to_preset(str(folder))
    return folder


def load_preset_backbone(folder):
    """`keras_hub.models.Backbone.from_preset(folder)`, with a clear error for a folder without a preset.

    Args:
        folder: A local preset folder, or a KerasHub handle (`"kaggle://..."`, which needs the network).

    Raises:
        WeightsUnavailableError: keras-hub is not installed, or `folder` holds no preset.
    """
    keras_hub = require_keras_hub()
    if "://" not in str(folder) and not (Path(folder) / "config.json").is_file():
        raise WeightsUnavailableError(f"{folder} is not a KerasHub preset folder (no config.json). Expected "
                                      f"the files {', '.join(PRESET_FILES)}; make them with save_lite0_preset.")
    return keras_hub.models.Backbone.from_preset(str(folder))


def feature_difference(backbone, images, cache_dir=None):
    """How far a Lite0 backbone's features are from the package's own port, on the same images.

    Args:
        backbone: A model that maps preprocessed images to Lite0's final feature map.
        images: RGB 0-255, `(N, height, width, 3)`.
        cache_dir: The package cache holding the port's converted weights.

    Returns:
        A `FeatureDifference`: the largest absolute difference of the final
        feature maps and of their global averages.

    Raises:
        ValueError: the backbone's features do not have the port's shape.
    """
    inputs = get_backbone(BACKBONE).preprocess(np.asarray(images, dtype=np.float32))
    expected = port_base(cache_dir).predict(inputs, verbose=0)
    found = np.asarray(backbone.predict(inputs, verbose=0))
    if found.shape != expected.shape:
        raise ValueError(f"The backbone gives features of shape {found.shape}; the port {expected.shape}.")
    return FeatureDifference(float(np.abs(found - expected).max()),
                             float(np.abs(found.mean(axis=(1, 2)) - expected.mean(axis=(1, 2))).max()))
