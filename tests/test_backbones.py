"""Backbone registry, weight sources, heads and strategies (random weights, small inputs)."""

import time

import keras
import numpy as np
import pytest

from tlhelpers import backbones, models, paths
from tlhelpers.backbones import WeightsUnavailableError, build_base, get_backbone

BACKBONES = sorted(backbones.BACKBONES)


@pytest.mark.parametrize("name", BACKBONES)
def test_registry_entry_matches_the_real_model(name):
    spec = get_backbone(name)
    base = build_base(name, weights=None, image_size=32, pooling=None)
    layer_names = [layer.name for layer in base.layers]
    assert all(stage in layer_names for stage in spec.stage_ends)
    # Stages end in order along the network.
    positions = [layer_names.index(stage) for stage in spec.stage_ends]
    assert positions == sorted(positions)
    assert spec.default_size == 224 and spec.min_size == 32
    assert callable(spec.preprocess)


@pytest.mark.parametrize("name, channels", [("resnet50", 2048), ("vgg16", 512), ("mobilenet_v2", 1280),
                                            ("efficientnet_lite0", 1280)])
def test_pooled_output_shape(name, channels):
    base = build_base(name, weights=None, image_size=(32, 48), pooling="avg")
    assert base.output.shape[1:] == (channels,)


def test_unknown_backbone():
    with pytest.raises(ValueError, match=r"Received backbone='resnet5'. Expected one of: resnet50, vgg16, mobilenet_v2"):
        get_backbone("resnet5")


def test_bad_weights_and_size():
    with pytest.raises(ValueError, match="Received weights='imagenett'"):
        build_base("vgg16", weights="imagenett")
    with pytest.raises(ValueError, match="at least 32"):
        build_base("vgg16", weights=None, image_size=16)


def test_weights_from_a_file(tmp_path):
    original = build_base("vgg16", weights=None, image_size=32)
    path = tmp_path / "vgg16_notop.weights.h5"
    original.save_weights(path)
    loaded = build_base("vgg16", weights=str(path), image_size=32)
    np.testing.assert_array_equal(loaded.get_layer("block1_conv1").kernel.numpy(),
                                  original.get_layer("block1_conv1").kernel.numpy())


def test_offline_imagenet_error_is_fast_and_helpful():
    spec = get_backbone("vgg16")
    if (paths.keras_cache_dir() / spec.imagenet_file).exists():
        pytest.skip("ImageNet weights are cached on this machine")
    started = time.perf_counter()
    try:
        build_base("vgg16", weights="imagenet", image_size=32)
    except WeightsUnavailableError as error:
        message = str(error)
    else:
        pytest.skip("this machine is online: the download worked")
    assert time.perf_counter() - started < 30
    assert spec.imagenet_file in message
    assert str(paths.keras_cache_dir()) in message
    assert "weights='embedded'" in message


def test_head_pools_maps_and_accepts_vectors():
    head = models.build_head((2, 2, 8), num_classes=3, hidden_units=(4,), dropout=0.5, seed=1)
    assert head.output.shape[1:] == (3,)
    assert any(isinstance(layer, keras.layers.GlobalAveragePooling2D) for layer in head.layers)
    vector_head = models.build_head((8,), num_classes=3, hidden_units=(4,), dropout=0.5, seed=1)
    # Same seeds, same starting weights whether fed maps or vectors.
    for a, b in zip(head.get_weights(), vector_head.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="pooling='median'"):
        models.build_head((2, 2, 8), 3, pooling="median")


def head_params(feature_size, classes=5):
    # Layer normalisation (scale and offset per feature) and the softmax layer.
    return 2 * feature_size + feature_size * classes + classes


@pytest.mark.parametrize("name, features", [("resnet50", 2048), ("vgg16", 512)])
def test_trainable_counts_per_strategy(name, features):
    built = {s: models.build_strategy(s, name, weights=None, num_classes=5, image_size=32)
             for s in ("feature_extraction", "fine_tune", "scratch")}
    for strategy, sm in built.items():
        assert sm.model.output.shape[1:] == (5,)
        assert sm.model.optimizer is not None, "strategy models come compiled"
        assert strategy in sm.description or sm.description
    total = built["scratch"].trainable_params + built["scratch"].non_trainable_params
    assert built["feature_extraction"].trainable_params == head_params(features)
    assert built["feature_extraction"].non_trainable_params == total - head_params(features)
    assert head_params(features) < built["fine_tune"].trainable_params < built["scratch"].trainable_params
    assert built["fine_tune"].trainable_params + built["fine_tune"].non_trainable_params == total


@pytest.mark.parametrize("name", BACKBONES)
def test_freeze_stage_sweep_is_monotone_and_bn_stays_frozen(name):
    spec = get_backbone(name)
    counts = []
    for stage in range(spec.num_stages + 1):
        sm = models.build_strategy("fine_tune", name, weights=None, image_size=32, freeze_stage=stage)
        counts.append(sm.trainable_params)
        assert all(not layer.trainable for layer in sm.base.layers
                   if isinstance(layer, keras.layers.BatchNormalization))
        names = [layer.name for layer in sm.base.layers]
        if stage:
            end = names.index(spec.stage_ends[stage - 1])
            assert not any(layer.trainable_weights for layer in sm.base.layers[: end + 1])
    assert counts == sorted(counts, reverse=True) and len(set(counts)) == len(counts)
    assert counts[-1] == head_params(sm.base.output.shape[-1])


def test_bad_strategy_and_stage():
    with pytest.raises(ValueError, match="Received strategy='finetune'"):
        models.build_strategy("finetune", "vgg16", weights=None)
    with pytest.raises(ValueError, match=r"freeze_stage=9. Expected 0..5"):
        models.build_strategy("fine_tune", "vgg16", weights=None, freeze_stage=9)


def test_small_cnn_trains_everything():
    sm = models.build_strategy("small_cnn", num_classes=4, image_size=32)
    assert sm.model.output.shape[1:] == (4,)
    assert sm.non_trainable_params == 0 and sm.trainable_params > 50_000


@pytest.mark.parametrize("strategy, backbone", [("small_cnn", "resnet50"), ("scratch", "vgg16")])
def test_augment_puts_random_flips_and_shifts_in_front_in_training_only(strategy, backbone):
    plain = models.build_strategy(strategy, backbone, None, 5, 32, seed=0, compile=False)
    augmented = models.build_strategy(strategy, backbone, None, 5, 32, seed=0, augment=True, compile=False)
    assert "augmentation" not in [layer.name for layer in plain.model.layers]
    layer = augmented.model.get_layer("augmentation")
    assert [type(inner).__name__ for inner in layer.layers] == ["RandomFlip", "RandomTranslation"]
    images = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    np.testing.assert_array_equal(np.asarray(layer(images, training=False)), images)
    assert not np.allclose(np.asarray(layer(images, training=True)), images)
    assert augmented.trainable_params == plain.trainable_params


@pytest.mark.parametrize("name", BACKBONES)
def test_stage_k_ends_at_stride_two_to_the_k(name):
    # Notebook 1 draws the end of stages 1 and 4 at 128 px: 64x64 and 8x8 positions for ResNet50.
    spec = get_backbone(name)
    base = build_base(name, weights=None, image_size=64, pooling=None)
    sizes = [base.get_layer(stage).output.shape[1:3] for stage in spec.stage_ends]
    assert [tuple(size) for size in sizes] == [(64 // 2 ** k, 64 // 2 ** k) for k in range(1, len(sizes) + 1)]
