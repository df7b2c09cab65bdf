"""EfficientNet-Lite0's ImageNet weights as a local KerasHub preset: saved, loaded with
`Backbone.from_preset`, and giving the port's features within 1e-4."""

import importlib.util
import sys

import numpy as np
import pytest

from tlhelpers import keras_hub_presets
from tlhelpers.errors import WeightsUnavailableError
from tlhelpers.sample_photos import load_sample_photos

TOLERANCE = 1e-4
needs_keras_hub = pytest.mark.skipif(
    importlib.util.find_spec("keras_hub") is None,
    reason=f"keras-hub is not installed (`pip install {keras_hub_presets.KERAS_HUB_REQUIREMENT}`)")


def photos(image_size):
    return np.stack(list(load_sample_photos(["chelsea", "coffee", "rocket"], image_size=image_size).values()))


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def preset(tmp_path_factory, cache):
    return keras_hub_presets.save_lite0_preset(tmp_path_factory.mktemp("presets") / "lite0", cache_dir=cache)


@needs_keras_hub
def test_the_preset_loads_with_from_preset_and_gives_the_ports_features(preset, cache):
    import keras_hub

    assert sorted(path.name for path in preset.iterdir()) == sorted(keras_hub_presets.PRESET_FILES)
    backbone = keras_hub.models.Backbone.from_preset(str(preset))  # what an online user calls with a handle
    assert isinstance(backbone, keras_hub.models.EfficientNetBackbone)
    assert backbone.count_params() == keras_hub_presets.port_base(cache).count_params() == 3_413_024
    difference = keras_hub_presets.feature_difference(backbone, photos(224), cache_dir=cache)
    assert difference.feature_map < TOLERANCE and difference.pooled < TOLERANCE


@needs_keras_hub
def test_a_preset_with_one_transposed_kernel_fails_the_agreement(preset, cache, tmp_path):
    backbone = keras_hub_presets.load_preset_backbone(preset)
    layer = backbone.get_layer("block1a_dwconv")
    kernel = layer.get_weights()[0]
    flipped = kernel.transpose(1, 0, 2, 3)  # rows and columns of every 3x3 filter swapped
    assert not np.array_equal(flipped, kernel)
    layer.set_weights([flipped])
    backbone.save_to_preset(str(tmp_path / "transposed"))
    loaded = keras_hub_presets.load_preset_backbone(tmp_path / "transposed")
    difference = keras_hub_presets.feature_difference(loaded, photos(224), cache_dir=cache)
    assert difference.pooled > 100 * TOLERANCE


@needs_keras_hub
def test_symmetric_depthwise_padding_matches_only_at_odd_input_sizes(cache):
    """KerasHub's "v1" block pads by kernel // 2 on each side: TensorFlow's "same" at odd sides, one
    pixel off at even ones, which is why LITE0_CONFIG uses "unfused" blocks after the first stage."""
    backbone = keras_hub_presets.build_lite0_backbone(stackwise_block_types=["v1"] * 7)
    keras_hub_presets.copy_port_weights(backbone, keras_hub_presets.port_base(cache))
    assert keras_hub_presets.feature_difference(backbone, photos(225), cache_dir=cache).pooled < TOLERANCE
    assert keras_hub_presets.feature_difference(backbone, photos(224), cache_dir=cache).pooled > 100 * TOLERANCE


@needs_keras_hub
def test_copying_into_another_architecture_is_refused(cache):
    port = keras_hub_presets.port_base(cache)
    with pytest.raises(ValueError, match="top_conv expects shapes"):
        keras_hub_presets.copy_port_weights(keras_hub_presets.build_lite0_backbone(num_features=1024), port)
    squeeze_excite = keras_hub_presets.build_lite0_backbone(stackwise_squeeze_and_excite_ratios=[0.25] * 7)
    with pytest.raises(ValueError, match="Copied .* of the backbone's"):
        keras_hub_presets.copy_port_weights(squeeze_excite, port)


@needs_keras_hub
def test_a_folder_without_a_preset_is_refused(tmp_path):
    with pytest.raises(WeightsUnavailableError, match="not a KerasHub preset folder.*save_lite0_preset"):
        keras_hub_presets.load_preset_backbone(tmp_path)


def test_without_keras_hub_the_error_names_the_install_command(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "keras_hub", None)  # makes `import keras_hub` raise ImportError
    with pytest.raises(WeightsUnavailableError, match="pip install keras-hub==0.32.0 tensorflow-text=="):
        keras_hub_presets.save_lite0_preset(tmp_path / "lite0")
    with pytest.raises(WeightsUnavailableError, match="pip install keras-hub"):
        keras_hub_presets.load_preset_backbone(tmp_path)
