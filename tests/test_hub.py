"""TF-Hub backbones: the Keras 3 layer on locally exported SavedModels, strategies, runs, CLI."""

import json
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from tlhelpers import hub, hub_export, models, training
from tlhelpers.backbones import build_base, get_backbone
from tlhelpers.experiments import ExperimentConfig, check_config
from tlhelpers.models import count_params
from tlhelpers.protocol import FixedSchedule


def centre(images):
    """Preprocessing of the tiny test base: 0-255 to [-1, 1]."""
    return images / 127.5 - 1.0


def tiny_base(seed=0):
    """A small base with a convolution and BatchNormalization, one vector per image."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(8, 3, strides=2, name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU()(x)
    outputs = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, outputs, name="tiny")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """`(base, path)`: the tiny base and its TF-Hub-style export."""
    base = tiny_base()
    path = hub_export.export_feature_vector(base, tmp_path_factory.mktemp("hub") / "tiny", preprocess=centre)
    return base, path


def images01(count=8, seed=0):
    return np.random.default_rng(seed).uniform(size=(count, 32, 32, 3)).astype("float32")


def model_on(layer, num_classes=3):
    inputs = keras.Input((32, 32, 3))
    outputs = keras.layers.Dense(num_classes, activation="softmax")(layer(inputs, training=False))
    model = keras.Model(inputs, outputs)
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    return model


def snapshot(layer):
    return {w.path: w.numpy().copy() for w in layer.weights}


def test_exported_resnet50_matches_the_model_used_directly(tmp_path):
    base = build_base("resnet50", weights=None, image_size=32, pooling="avg")
    path = hub_export.export_feature_vector(base, tmp_path / "resnet50")
    layer = hub.HubFeatureVector(path)
    x = images01(4)
    direct = base(get_backbone("resnet50").preprocess(x * 255.0), training=False).numpy()
    np.testing.assert_allclose(layer(x).numpy(), direct, atol=1e-5)
    assert layer.accepts_training and layer.expected_image_size() == (32, 32)
    # Frozen by default: every variable is tracked, none trains.
    assert layer.trainable_weights == []
    assert count_params(layer.non_trainable_weights) == base.count_params()
    assert not any(":" in w.name or "/" in w.name for w in layer.weights)


def test_frozen_layer_changes_nothing_in_fit(tiny):
    layer = hub.HubFeatureVector(tiny[1], trainable=False)
    model = model_on(layer)
    assert count_params(model.trainable_weights) == 8 * 3 + 3  # the Dense layer only
    before = snapshot(layer)
    model.fit(images01(16), np.arange(16) % 3, epochs=2, batch_size=8, verbose=0)
    for path, value in snapshot(layer).items():
        np.testing.assert_array_equal(value, before[path])


def test_trainable_layer_is_updated_by_adam(tiny):
    layer = hub.HubFeatureVector(tiny[1], trainable=True)
    assert count_params(layer.trainable_weights) == 3 * 3 * 3 * 8 + 8 + 2 * 8  # conv, BN scale/offset
    model = model_on(layer)
    x = images01(16)
    features_before = layer(x).numpy()
    before = snapshot(layer)
    model.fit(x, np.arange(16) % 3, epochs=2, batch_size=8, verbose=0)
    after = snapshot(layer)
    changed = {path for path in after if not np.array_equal(after[path], before[path])}
    assert any("conv" in path for path in changed) and any("gamma" in path for path in changed)
    # Inference mode by default: the moving statistics stay as exported.
    assert not any("moving" in path for path in changed)
    # The updates land in the SavedModel's own variables: its outputs change.
    assert not np.allclose(layer(x).numpy(), features_before)


def test_training_mode_updates_batchnorm_statistics_when_asked(tiny):
    layer = hub.HubFeatureVector(tiny[1], trainable=True, use_training_mode=True)
    model = model_on(layer)
    before = snapshot(layer)
    model.fit(images01(16), np.arange(16) % 3, epochs=1, batch_size=8, verbose=0)
    after = snapshot(layer)
    assert any("moving_mean" in p and not np.array_equal(after[p], before[p]) for p in after)


def test_keras_export_serve_endpoint(tmp_path):
    base = tiny_base(seed=1)
    base.export(str(tmp_path / "exported"), verbose=False)
    layer = hub.HubFeatureVector(tmp_path / "exported", trainable=True)
    x = images01(4) * 255.0
    np.testing.assert_allclose(layer(x).numpy(), base(x).numpy(), atol=1e-5)
    assert not layer.accepts_training
    assert count_params(layer.trainable_weights) == 3 * 3 * 3 * 8 + 8 + 2 * 8


def test_savedmodel_with_only_a_serving_signature(tmp_path):
    base = tiny_base(seed=2)
    module = tf.Module()
    module.base_variables = list(base.weights)
    serve = tf.function(lambda images: {"features": base(images, training=False)})
    signature = serve.get_concrete_function(tf.TensorSpec((None, 32, 32, 3), tf.float32, name="images"))
    tf.saved_model.save(module, str(tmp_path / "signature"), signatures=signature)
    layer = hub.HubFeatureVector(tmp_path / "signature", trainable=True)
    x = images01(4)
    np.testing.assert_allclose(layer(x).numpy(), base(x).numpy(), atol=1e-5)
    assert count_params(layer.trainable_weights) == 3 * 3 * 3 * 8 + 8 + 2 * 8
    assert count_params(layer.weights) == base.count_params()


def test_feature_extraction_and_fine_tuning_runs(tiny, splits, cache_dir):
    name = f"hub:{tiny[1]}"
    options = dict(backbone=name, weights="hub", seed=0, verbose=0)
    schedule = FixedSchedule(2, batch_size=8)
    head = 2 * 8 + 8 * 5 + 5  # layer normalisation and softmax on 8 features
    hub_params = tiny[0].count_params()
    cached = training.train_run(splits, "feature_extraction", protocol=schedule, **options)
    in_graph = training.train_run(splits, "feature_extraction", protocol=schedule, use_feature_cache=False, **options)
    assert cached.config["feature_cache"] and cached.history["epoch"] == [0, 1, 2]
    assert (cached.trainable_params, cached.non_trainable_params) == (head, hub_params)
    assert (in_graph.trainable_params, in_graph.non_trainable_params) == (head, hub_params)
    np.testing.assert_allclose(cached.history["val_loss"], in_graph.history["val_loss"], atol=1e-4)
    one_phase = training.train_run(splits, "fine_tune", protocol=schedule, **options)
    two_phase = training.train_run(splits, "fine_tune", protocol=FixedSchedule(2, batch_size=8, head_epochs=1),
                                   **options)
    moving_statistics = 2 * 8
    for result in (one_phase, two_phase):
        assert result.trainable_params == head + hub_params - moving_statistics
        assert result.non_trainable_params == moving_statistics
    assert two_phase.phase_starts == [2] and two_phase.history["epoch"] == [0, 1, 2]
    assert one_phase.weights == "hub" and one_phase.backbone == name


def test_what_a_hub_backbone_cannot_do(tiny):
    name = f"hub:{tiny[1]}"
    with pytest.raises(ValueError, match="strategy 'scratch'"):
        models.build_strategy("scratch", name, weights="hub", image_size=32)
    with pytest.raises(ValueError, match="freeze_stage=2"):
        models.build_strategy("fine_tune", name, weights="hub", image_size=32, freeze_stage=2)
    assert models.build_strategy("fine_tune", name, "hub", image_size=32, freeze_stage=0).trainable_params
    with pytest.raises(ValueError, match="weights='none'.*no random-weights version"):
        build_base(name, weights="none", image_size=32)
    with pytest.raises(ValueError, match=r"image_size=\(48, 48\).*only accepts 32x32"):
        build_base(name, weights="hub", image_size=48)
    with pytest.raises(ValueError, match="Expected 'hub:' followed by"):
        get_backbone("hub:")
    with pytest.raises(hub.HubUnavailableError, match="saved_model.pb"):
        hub.HubFeatureVector(tiny[1].parent / "missing")
    for changes, message in [({"weights": "none", "strategies": ("feature_extraction",)}, "no random"),
                             ({"strategies": ("scratch",)}, "strategy 'scratch'")]:
        with pytest.raises(ValueError, match=message):
            check_config(ExperimentConfig(backbones=(name,), **changes))
    check_config(ExperimentConfig(backbones=(name,), weights="hub", strategies=("feature_extraction",)))


def test_offline_url_handle_fails_fast_with_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / "tfhub"))
    handle = "https://tfhub.dev/tlhelpers-test/no-such-model/1"
    started = time.perf_counter()
    with pytest.raises(hub.HubUnavailableError) as error:
        hub.HubFeatureVector(handle)
    assert time.perf_counter() - started < 30
    message = str(error.value)
    assert handle in message and "TFHUB_CACHE_DIR" in message and str(tmp_path / "tfhub") in message


def test_command_line_offline_hub_url_prints_one_line_and_exits_2(tmp_path, monkeypatch, capsys, cache_dir):
    from tlhelpers import cli

    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / "tfhub"))
    handle = "https://tfhub.dev/tlhelpers-test/no-such-model/1"
    code = cli.main(["run", "--backbone", f"hub:{handle}", "--weights", "hub", "--strategies",
                     "feature_extraction", "--labels-per-class", "2", "--seeds", "0", "--epochs", "1",
                     "--quiet", "--out", str(tmp_path / "report")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("tlhelpers: error: ") and err.count("\n") == 1, err
    assert handle in err and "Traceback" not in err
    assert not (tmp_path / "report").exists()


def test_export_is_atomic_and_does_not_overwrite(tmp_path, monkeypatch):
    base = tiny_base()
    path = tmp_path / "exports" / "tiny"
    real_save = tf.saved_model.save

    def interrupted(obj, export_dir, *args, **kwargs):
        real_save(obj, export_dir, *args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(tf.saved_model, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        hub_export.export_feature_vector(base, path, preprocess=centre)
    assert list(path.parent.iterdir()) == []
    monkeypatch.setattr(tf.saved_model, "save", real_save)
    hub_export.export_feature_vector(base, path, preprocess=centre)
    assert (path / "saved_model.pb").is_file()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        hub_export.export_feature_vector(base, path, preprocess=centre)
    with pytest.raises(ValueError, match="preprocess=None"):
        hub_export.export_feature_vector(base, tmp_path / "other")


def test_command_line_run_with_a_hub_backbone(tiny, tmp_path, cache_dir):
    out = tmp_path / "report"
    name = f"hub:{tiny[1]}"
    command = [sys.executable, "-m", "tlhelpers", "run", "--backbone", name, "--weights", "hub",
               "--strategies", "feature_extraction", "--labels-per-class", "5", "--seeds", "0",
               "--epochs", "1", "--head-epochs", "0", "--validation-per-class", "5",
               "--test-per-class", "20", "--image-size", "32", "--out", str(out)]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-2000:]
    payload = json.loads((out / "results.json").read_text())
    (run,) = payload["runs"]
    assert run["backbone"] == name and run["strategy"] == "feature_extraction"
    assert run["non_trainable_params"] == tiny[0].count_params()
