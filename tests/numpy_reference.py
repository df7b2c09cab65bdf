"""Independent float64 numpy forward passes of the two PyTorch ImageNet models `imagenet_ports` ports.

Written from the PyTorch definitions (torchvision's `mobilenet_v2` and the
`efficientnet_pytorch` EfficientNet-Lite0), not from the Keras port, so that
`test_imagenet_reference.py` catches a wrong port: a transposed kernel, the
wrong padding, a missing residual, a wrong BatchNormalization epsilon.
Everything stays in PyTorch's conventions: images are NCHW, kernels OIHW,
depthwise kernels (C, 1, kh, kw). The layer structure is read from the state
dict's key names and shapes; only what a state dict cannot say (the strides,
the padding rule, the epsilons, the preprocessing) is written here, each with
its source.
"""

from __future__ import annotations

import re

import numpy as np

# torchvision's MobileNetV2: `inverted_residual_setting` (t, c, n, s) =
# (1,16,1,1) (6,24,2,2) (6,32,3,2) (6,64,4,2) (6,96,3,1) (6,160,3,2) (6,320,1,1),
# so the first block of the stages with s=2 (features 2, 4, 7 and 14) has
# stride 2, as has the stem (features.0). Padding is symmetric, (k - 1) // 2.
MOBILENET_V2_STRIDE_2 = frozenset({2, 4, 7, 14})
MOBILENET_V2_EPSILON = 1e-5
# torchvision's ImageNet normalisation, applied to RGB scaled to [0, 1].
MOBILENET_V2_MEAN = (0.485, 0.456, 0.406)
MOBILENET_V2_STD = (0.229, 0.224, 0.225)

# EfficientNet-B0/Lite0 `blocks_args`: r1_k3_s11_o16, r2_k3_s22_o24, r2_k5_s22_o40,
# r3_k3_s22_o80, r3_k5_s11_o112, r4_k5_s22_o192, r1_k3_s11_o320, so the first block
# of stages 2, 3, 4 and 6 (blocks 1, 3, 5 and 11) has stride 2; stage 5 (block 8)
# changes the channels at stride 1. The stem has stride 2. Convolutions pad
# like TensorFlow's "SAME" (the checkpoint was converted from TensorFlow).
EFFICIENTNET_LITE0_STRIDE_2 = frozenset({1, 3, 5, 11})
EFFICIENTNET_LITE0_EPSILON = 1e-3
# EfficientNet-Lite's preprocessing: (x - 127) / 128 on 0-255 RGB.
EFFICIENTNET_LITE0_MEAN = 127.0
EFFICIENTNET_LITE0_STD = 128.0


# --- Layers (NCHW, float64) -------------------------------------------------

def symmetric_padding(kernel_size):
    """PyTorch's `padding=(k - 1) // 2` on both sides, as (before, after)."""
    return (kernel_size - 1) // 2, (kernel_size - 1) // 2


def same_padding(size, kernel_size, stride):
    """TensorFlow's "SAME" padding of one axis, as (before, after); the odd pixel goes after."""
    output_size = -(-size // stride)
    total = max((output_size - 1) * stride + kernel_size - size, 0)
    return total // 2, total - total // 2


def _pad(x, padding_h, padding_w):
    return np.pad(x, ((0, 0), (0, 0), padding_h, padding_w))


def conv2d(x, weight, stride, padding_h, padding_w):
    """A dense convolution (cross-correlation, as PyTorch) by im2col.

    Args:
        x: (N, C, H, W) input.
        weight: (O, C, kh, kw) kernel.
        stride: Stride of both spatial axes.
        padding_h, padding_w: (before, after) zero padding of each axis.

    Returns:
        The (N, O, H', W') output.
    """
    out_channels, in_channels, kh, kw = weight.shape
    if x.shape[1] != in_channels:
        raise ValueError(f"Received an input with {x.shape[1]} channels for a kernel of shape "
                         f"{weight.shape}. Expected {in_channels} channels.")
    if kh == kw == 1 and stride == 1 and padding_h == padding_w == (0, 0):
        # A pointwise convolution is a matrix product over the channels.
        n, c, h, w = x.shape
        return np.matmul(weight[:, :, 0, 0], x.reshape(n, c, h * w)).reshape(n, out_channels, h, w)
    x = _pad(x, padding_h, padding_w)
    # windows[n, c, i, j, di, dj] = x[n, c, i * stride + di, j * stride + dj]
    windows = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(2, 3))[:, :, ::stride, ::stride]
    return np.einsum("ncijab,ocab->noij", windows, weight, optimize=True)


def depthwise_conv2d(x, weight, stride, padding_h, padding_w):
    """A depthwise convolution (PyTorch's `groups=channels`): one (kh, kw) kernel per channel.

    Args:
        x: (N, C, H, W) input.
        weight: (C, 1, kh, kw) kernel.
        stride: Stride of both spatial axes.
        padding_h, padding_w: (before, after) zero padding of each axis.

    Returns:
        The (N, C, H', W') output.
    """
    channels, multiplier, kh, kw = weight.shape
    if multiplier != 1 or x.shape[1] != channels:
        raise ValueError(f"Received an input with {x.shape[1]} channels for a depthwise kernel of "
                         f"shape {weight.shape}. Expected shape ({x.shape[1]}, 1, kh, kw).")
    x = _pad(x, padding_h, padding_w)
    out_h = (x.shape[2] - kh) // stride + 1
    out_w = (x.shape[3] - kw) // stride + 1
    out = np.zeros((x.shape[0], channels, out_h, out_w))
    # One shifted, strided slice per kernel tap: kh * kw vectorised multiply-adds.
    for di in range(kh):
        for dj in range(kw):
            tap = x[:, :, di:di + stride * (out_h - 1) + 1:stride, dj:dj + stride * (out_w - 1) + 1:stride]
            out += tap * weight[:, 0, di, dj][None, :, None, None]
    return out


def batch_norm(x, state_dict, prefix, epsilon):
    """Inference BatchNormalization with the running statistics stored under `prefix`."""
    gamma, beta, mean, var = (state_dict[f"{prefix}.{name}"].astype(np.float64)
                              for name in ("weight", "bias", "running_mean", "running_var"))
    scale = gamma / np.sqrt(var + epsilon)
    return x * scale[None, :, None, None] + (beta - mean * scale)[None, :, None, None]


def relu6(x):
    return np.clip(x, 0.0, 6.0)


def linear(x, state_dict, prefix):
    """PyTorch's `Linear`: x @ W.T + b."""
    out = x @ state_dict[f"{prefix}.weight"].astype(np.float64).T
    if f"{prefix}.bias" in state_dict:
        out = out + state_dict[f"{prefix}.bias"]
    return out


def _weight(state_dict, key):
    return state_dict[key].astype(np.float64)


def _is_depthwise(weight):
    return weight.shape[1] == 1 and weight.shape[2] > 1


def _indices(state_dict, pattern):
    """The sorted integers `N` of the keys matching `pattern` (a regex with one group)."""
    return sorted({int(match.group(1)) for key in state_dict if (match := re.match(pattern, key))})


def _check_images(images_nchw):
    images = np.asarray(images_nchw, dtype=np.float64)
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"Received images of shape {images.shape}. Expected (N, 3, H, W) RGB in 0-255.")
    return images


# --- MobileNetV2 (torchvision) ------------------------------------------------

def _mobilenet_conv(x, state_dict, conv_key, stride, bn_prefix, activation):
    weight = _weight(state_dict, conv_key)
    kh, kw = weight.shape[2:]
    conv = depthwise_conv2d if _is_depthwise(weight) else conv2d
    x = conv(x, weight, stride, symmetric_padding(kh), symmetric_padding(kw))
    x = batch_norm(x, state_dict, bn_prefix, MOBILENET_V2_EPSILON)
    return relu6(x) if activation else x


def _mobilenet_block(x, state_dict, index):
    """One `InvertedResidual` (`features.{index}.conv`), its layers read from the keys.

    `conv.K.0.weight` + `conv.K.1` is a Conv-BN-ReLU6 (the expansion, if any, then
    the depthwise convolution, the only one with stride); a plain `conv.K.weight`
    is the linear projection, followed by its BatchNormalization at `conv.K+1`.
    """
    prefix = f"features.{index}.conv"
    stride = 2 if index in MOBILENET_V2_STRIDE_2 else 1
    inputs = x
    for k in _indices(state_dict, rf"{re.escape(prefix)}\.(\d+)\."):
        if f"{prefix}.{k}.0.weight" in state_dict:
            weight = state_dict[f"{prefix}.{k}.0.weight"]
            x = _mobilenet_conv(x, state_dict, f"{prefix}.{k}.0.weight",
                                stride if _is_depthwise(weight) else 1, f"{prefix}.{k}.1", activation=True)
        elif state_dict.get(f"{prefix}.{k}.weight", np.zeros(0)).ndim == 4:
            x = _mobilenet_conv(x, state_dict, f"{prefix}.{k}.weight", 1, f"{prefix}.{k + 1}",
                                activation=False)
    if stride == 1 and x.shape == inputs.shape:
        x = x + inputs
    return x


def mobilenet_v2_logits(state_dict, images_nchw):
    """ImageNet logits of torchvision's MobileNetV2, in float64.

    Args:
        state_dict: `{name: array}` of torchvision's `mobilenet_v2` (PyTorch layout).
        images_nchw: (N, 3, H, W) RGB images with values in 0-255; the
            normalisation (x / 255 - mean) / std is applied here.

    Returns:
        (N, 1000) float64 logits.
    """
    x = _check_images(images_nchw) / 255.0
    mean, std = (np.array(values)[None, :, None, None] for values in (MOBILENET_V2_MEAN, MOBILENET_V2_STD))
    x = (x - mean) / std
    features = _indices(state_dict, r"features\.(\d+)\.")
    for index in features:
        if f"features.{index}.0.weight" in state_dict:
            # A Conv-BN-ReLU6: the stem (features.0, stride 2) or the last 1x1 (features.18).
            stride = 2 if index == features[0] else 1
            x = _mobilenet_conv(x, state_dict, f"features.{index}.0.weight", stride,
                                f"features.{index}.1", activation=True)
        else:
            x = _mobilenet_block(x, state_dict, index)
    x = x.mean(axis=(2, 3))
    # The classifier is Sequential(Dropout, Linear): the Linear is the key with a 2-D weight.
    (classifier,) = [key[:-len(".weight")] for key, value in state_dict.items()
                     if key.startswith("classifier.") and key.endswith(".weight") and value.ndim == 2]
    return linear(x, state_dict, classifier)


# --- EfficientNet-Lite0 (efficientnet_pytorch naming) --------------------------------

def _same_conv(x, weight, stride):
    kh, kw = weight.shape[2:]
    conv = depthwise_conv2d if _is_depthwise(weight) else conv2d
    return conv(x, weight, stride, same_padding(x.shape[2], kh, stride), same_padding(x.shape[3], kw, stride))


def _efficientnet_block(x, state_dict, index):
    """One MBConv block without squeeze-excite: [expand 1x1], depthwise kxk, project 1x1, [skip]."""
    prefix = f"_blocks.{index}"
    stride = 2 if index in EFFICIENTNET_LITE0_STRIDE_2 else 1
    inputs = x
    if f"{prefix}._se_reduce.weight" in state_dict:
        raise ValueError(f"{prefix} has a squeeze-excite layer; EfficientNet-Lite has none.")
    if f"{prefix}._expand_conv.weight" in state_dict:
        x = _same_conv(x, _weight(state_dict, f"{prefix}._expand_conv.weight"), 1)
        x = relu6(batch_norm(x, state_dict, f"{prefix}._bn0", EFFICIENTNET_LITE0_EPSILON))
    x = _same_conv(x, _weight(state_dict, f"{prefix}._depthwise_conv.weight"), stride)
    x = relu6(batch_norm(x, state_dict, f"{prefix}._bn1", EFFICIENTNET_LITE0_EPSILON))
    x = _same_conv(x, _weight(state_dict, f"{prefix}._project_conv.weight"), 1)
    x = batch_norm(x, state_dict, f"{prefix}._bn2", EFFICIENTNET_LITE0_EPSILON)
    if stride == 1 and x.shape == inputs.shape:
        # Drop-connect is the identity at inference.
        x = x + inputs
    return x


def efficientnet_lite0_logits(state_dict, images_nchw):
    """ImageNet logits of EfficientNet-Lite0 (efficientnet_pytorch key names), in float64.

    Args:
        state_dict: `{name: array}` with keys `_conv_stem`, `_bn0`, `_blocks.i.*`,
            `_conv_head`, `_bn1`, `_fc` (PyTorch layout).
        images_nchw: (N, 3, H, W) RGB images with values in 0-255; the
            normalisation (x - 127) / 128 is applied here.

    Returns:
        (N, 1000) float64 logits.
    """
    x = (_check_images(images_nchw) - EFFICIENTNET_LITE0_MEAN) / EFFICIENTNET_LITE0_STD
    x = _same_conv(x, _weight(state_dict, "_conv_stem.weight"), 2)
    x = relu6(batch_norm(x, state_dict, "_bn0", EFFICIENTNET_LITE0_EPSILON))
    for index in _indices(state_dict, r"_blocks\.(\d+)\."):
        x = _efficientnet_block(x, state_dict, index)
    x = _same_conv(x, _weight(state_dict, "_conv_head.weight"), 1)
    x = relu6(batch_norm(x, state_dict, "_bn1", EFFICIENTNET_LITE0_EPSILON))
    x = x.mean(axis=(2, 3))
    # Dropout before `_fc` is the identity at inference.
    return linear(x, state_dict, "_fc")


REFERENCES = {
    "mobilenet_v2": mobilenet_v2_logits,
    "efficientnet_lite0": efficientnet_lite0_logits,
}
