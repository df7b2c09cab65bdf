"""Training runs, two-phase fine-tuning, BatchNormalization, feature cache, source-model cache."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from tlhelpers import backbones, features, models, paths, runtime, source_models, training
from tlhelpers.backbones import build_base, get_backbone
from tlhelpers.models import build_strategy
from tlhelpers.pipeline import make_dataset
from tlhelpers.protocol import FixedSchedule

TINY_RECIPE = {"epochs": 1, "learning_rate": 1e-4, "batch_size": 8, "examples_per_class": 4}


def test_run_records_epoch_zero_and_every_epoch(splits, cache_dir):
    result = training.train_run(splits, "scratch", "vgg16", weights=None, protocol=FixedSchedule(2, batch_size=8),
                                seed=0, verbose=0)
    assert result.history["epoch"] == [0, 1, 2]
    assert all(len(result.history[k]) == 3 for k in ("accuracy", "val_accuracy", "loss", "val_loss"))
    assert 0.0 <= result.test_accuracy <= 1.0
    assert result.labels_per_class == 4 and result.weights == "none"
    assert result.wall_time_s > 0 and result.phase_starts == []
    assert result.trainable_params > 14_000_000
    # A fixed schedule records its options, not a protocol.
    config = result.config
    assert (config["epochs"], config["eval_every"], config["head_epochs"], config["learning_rate"],
            config["batch_size"], config["steps"]) == (2, None, 0, None, 8, 2 * -(-len(splits.train) // 8))
    assert "protocol" not in config and "best_step" not in config


def test_same_seed_same_numbers(splits, cache_dir):
    runs = [training.train_run(splits, "small_cnn", protocol=FixedSchedule(2, batch_size=8), seed=seed, verbose=0)
            for seed in (1, 1, 2)]
    assert runs[0].history == runs[1].history
    assert runs[0].test_accuracy == runs[1].test_accuracy
    assert runs[0].history != runs[2].history


def test_two_phase_fine_tuning(splits, cache_dir):
    result = training.train_run(splits, "fine_tune", "vgg16", weights=None,
                                protocol=FixedSchedule(3, batch_size=8, head_epochs=1), freeze_stage=4, seed=0,
                                verbose=0)
    assert result.history["epoch"] == [0, 1, 2, 3]
    assert result.phase_starts == [2]
    # The reported counts are those of the fine-tuning phase, not of head training.
    assert result.trainable_params > 512 * 5 + 5
    with pytest.raises(ValueError, match="head_epochs=3 with epochs=3"):
        training.train_run(splits, "fine_tune", "vgg16", weights=None, protocol=FixedSchedule(3, head_epochs=3))


def test_fine_tuning_keeps_batchnorm_statistics_and_early_stages(splits):
    training.set_seed(0)
    sm = build_strategy("fine_tune", "resnet50", weights=None, num_classes=5, image_size=32,
                        freeze_stage=3)
    bn = sm.base.get_layer("conv5_block1_1_bn")
    early = sm.base.get_layer("conv2_block1_1_conv")
    late = sm.base.get_layer("conv5_block1_1_conv")
    before = {"mean": bn.moving_mean.numpy().copy(), "early": early.kernel.numpy().copy(),
              "late": late.kernel.numpy().copy()}
    x = np.random.default_rng(0).normal(size=(16, 32, 32, 3)).astype("float32") * 50
    sm.model.fit(x, np.arange(16) % 5, epochs=1, batch_size=8, verbose=0)
    np.testing.assert_array_equal(bn.moving_mean.numpy(), before["mean"])
    np.testing.assert_array_equal(early.kernel.numpy(), before["early"])
    assert not np.array_equal(late.kernel.numpy(), before["late"])


def test_unfrozen_batchnorm_would_drift():
    """The pitfall the fine-tune strategy avoids: trainable BN updates its statistics despite training=False."""
    training.set_seed(0)
    sm = build_strategy("fine_tune", "resnet50", weights=None, num_classes=5, image_size=32,
                        freeze_stage=3, freeze_batchnorm=False)
    before = models.batchnorm_statistics(sm.base)
    assert "not frozen" in sm.description.lower()
    x = np.random.default_rng(0).normal(size=(16, 32, 32, 3)).astype("float32") * 50
    sm.model.fit(x, np.arange(16) % 5, epochs=1, batch_size=8, verbose=0)
    after = models.batchnorm_statistics(sm.base)
    assert not np.array_equal(after["conv5_block1_1_bn"], before["conv5_block1_1_bn"])
    # Stages 1-3 stay frozen, BatchNormalization included.
    np.testing.assert_array_equal(after["conv2_block1_1_bn"], before["conv2_block1_1_bn"])


def test_cached_features_match_the_frozen_base_in_the_graph(splits, cache_dir):
    kwargs = dict(backbone="vgg16", weights=None, protocol=FixedSchedule(3, batch_size=8), seed=4, verbose=0,
                  hidden_units=(16,), dropout=0.3)
    in_graph = training.train_run(splits, "feature_extraction", use_feature_cache=False, **kwargs)
    cached = training.train_run(splits, "feature_extraction", use_feature_cache=True, **kwargs)
    assert cached.config["feature_cache"] and not in_graph.config["feature_cache"]
    for key in ("val_accuracy", "val_loss", "loss"):
        np.testing.assert_allclose(cached.history[key], in_graph.history[key], atol=1e-4)
    assert abs(cached.test_accuracy - in_graph.test_accuracy) < 1e-6
    assert cached.trainable_params == in_graph.trainable_params


def test_feature_cache_hit_miss_and_key(splits, cache_dir):
    spec = get_backbone("vgg16")
    training.set_seed(0)
    base = build_base("vgg16", weights=None, image_size=32, pooling="avg")
    first, hit = features.cached_features(base, splits.train, (32, 32), spec.preprocess)
    assert not hit and first.shape == (20, 512)
    again, hit = features.cached_features(base, splits.train, (32, 32), spec.preprocess)
    assert hit and np.array_equal(first, again)
    files = list((cache_dir / "features").glob("*.npy"))
    assert len(files) == 1
    # Other examples, another input size or other weights: another entry.
    features.cached_features(base, splits.validation, (32, 32), spec.preprocess)
    features.cached_features(build_base("vgg16", None, 48, "avg"), splits.train, (48, 48), spec.preprocess)
    other = build_base("vgg16", weights=None, image_size=32, pooling="avg")
    _, hit = features.cached_features(other, splits.train, (32, 32), spec.preprocess)
    assert not hit
    assert len(list((cache_dir / "features").glob("*.npy"))) == 4
    assert not list((cache_dir / "features").glob(".tmp*"))


def test_features_of_every_batch_size_come_from_one_trace_and_equal_predict(splits):
    spec = get_backbone("vgg16")
    training.set_seed(0)
    base = build_base("vgg16", weights=None, image_size=32, pooling="avg")
    sets = (splits.train, splits.validation, splits.test)
    # Batches of 16 and of 4 (20 and 100 examples): Keras's predict would trace twice.
    extracted = [features.extract_features(base, data, (32, 32), spec.preprocess, batch_size=16)
                 for data in sets]
    assert features.forward_function(base).experimental_get_tracing_count() == 1
    for data, values in zip(sets, extracted):
        images = make_dataset(data, (32, 32), spec.preprocess, 16).map(lambda x, y: x)
        np.testing.assert_array_equal(values, base.predict(images, verbose=0))


def test_source_model_trained_once_then_loaded(cache_dir, monkeypatch, capsys):
    model, info = source_models.get_source_model("vgg16", recipe=TINY_RECIPE, seed=0)
    assert "Training the embedded vgg16 source model" in capsys.readouterr().out
    assert info["train_examples"] == 20 and 0 <= info["source_test_accuracy"] <= 1
    saved = json.loads(next((cache_dir / "source_models").glob("*.json")).read_text())
    assert saved["recipe"] == TINY_RECIPE

    def no_training(*args, **kwargs):
        raise AssertionError("a cached source model must not be retrained")

    monkeypatch.setattr(source_models, "train_source_model", no_training)
    again, _ = source_models.get_source_model("vgg16", recipe=TINY_RECIPE, seed=0)
    for a, b in zip(model.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(a, b)
    base = build_base("vgg16", "embedded", 48, recipe=TINY_RECIPE, seed=0, verbose=0, clutter=None)
    np.testing.assert_array_equal(base.get_layer("block1_conv1").kernel.numpy(),
                                  model.get_layer("vgg16").get_layer("block1_conv1").kernel.numpy())
    # Anything that changes the weights changes the key: a miss, so training is attempted.
    for changed in ({"seed": 1}, {"recipe": {**TINY_RECIPE, "epochs": 2}},
                    {"source_classes": ["Dress", "Coat"]}, {"image_size": 48}):
        options = {"recipe": TINY_RECIPE, "seed": 0, **changed}
        with pytest.raises(AssertionError, match="must not be retrained"):
            source_models.get_source_model("vgg16", **options)


def test_processes_asking_at_once_train_a_source_model_once(cache_dir):
    # What parallel notebook checks do on an empty cache: two processes need the same model.
    script = ("from tlhelpers import source_models; "
              f"source_models.get_source_model('vgg16', recipe={TINY_RECIPE!r})")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    processes = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, text=True, env=env) for _ in range(2)]
    outputs = [process.communicate(timeout=600)[0] for process in processes]
    assert [process.returncode for process in processes] == [0, 0], outputs
    assert sum("Training the embedded vgg16" in out for out in outputs) == 1, outputs
    assert sum("Loaded embedded vgg16" in out for out in outputs) == 1, outputs
    assert sorted(path.suffix for path in (cache_dir / "source_models").iterdir()) == [".h5", ".json"]


def test_source_base_weights_are_read_once_per_file_version(cache_dir, monkeypatch):
    source_models.get_source_model("vgg16", recipe=TINY_RECIPE, verbose=0)
    reads = []
    real_get = source_models.get_source_model
    monkeypatch.setattr(source_models, "get_source_model", lambda *a, **k: reads.append(1) or real_get(*a, **k))
    first = build_base("vgg16", "embedded", 32, recipe=TINY_RECIPE, verbose=0, clutter=None)
    second = build_base("vgg16", "embedded", 48, recipe=TINY_RECIPE, verbose=0, clutter=None)
    assert len(reads) == 1
    for a, b in zip(first.get_weights(), second.get_weights()):
        np.testing.assert_array_equal(a, b)
    # A source model written again (a new modification time) is read again.
    path = source_models.source_model_path("vgg16", recipe=TINY_RECIPE)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    build_base("vgg16", "embedded", 32, recipe=TINY_RECIPE, verbose=0, clutter=None)
    assert len(reads) == 2


def test_data_file_md5_is_computed_once_per_file_version(tmp_path, monkeypatch):
    path = tmp_path / "data.npz"
    path.write_bytes(b"one")
    reads = []
    real_read = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda self: reads.append(self) or real_read(self))
    assert source_models._file_md5(path) == source_models._file_md5(path) == hashlib.md5(b"one").hexdigest()
    assert len(reads) == 1
    path.write_bytes(b"two!")
    assert source_models._file_md5(path) == hashlib.md5(b"two!").hexdigest()
    assert len(reads) == 2


def test_interrupted_save_leaves_nothing_that_loads(cache_dir, monkeypatch):
    real_save = keras.Model.save_weights

    def interrupted(self, path, *args, **kwargs):
        real_save(self, path, *args, **kwargs)
        with open(path, "r+b") as handle:
            handle.truncate(1000)
        raise KeyboardInterrupt

    monkeypatch.setattr(keras.Model, "save_weights", interrupted)
    with pytest.raises(KeyboardInterrupt):
        source_models.get_source_model("vgg16", recipe=TINY_RECIPE, verbose=0)
    assert list((cache_dir / "source_models").iterdir()) == []
    monkeypatch.setattr(keras.Model, "save_weights", real_save)
    _, info = source_models.get_source_model("vgg16", recipe=TINY_RECIPE, verbose=0)
    assert (cache_dir / "source_models").is_dir() and info["path"].endswith(".weights.h5")


def test_cache_dir_argument_overrides_environment(tmp_path, cache_dir):
    chosen = tmp_path / "elsewhere"
    source_models.get_source_model("vgg16", recipe=TINY_RECIPE, cache_dir=chosen, verbose=0)
    assert list((chosen / "source_models").glob("*.weights.h5"))
    assert not cache_dir.exists()
    assert paths.resolve_cache_dir() == cache_dir


def test_reused_model_gives_the_numbers_of_a_new_one(splits, cache_dir):
    from tlhelpers import model_pool

    model_pool.clear()
    options = dict(strategy="fine_tune", backbone="vgg16", weights=None,
                   protocol=FixedSchedule(2, batch_size=8, head_epochs=1), freeze_stage=4, verbose=0)
    fresh = training.train_run(splits, seed=0, reuse_models=False, **options)
    assert model_pool.pooled_keys() == []
    first = training.train_run(splits, seed=0, **options)
    other = training.train_run(splits, seed=1, **options)
    again = training.train_run(splits, seed=0, **options)
    # One pooled model per phase, reused by the later runs.
    assert len(model_pool.pooled_keys()) == 2
    assert first.history == fresh.history == again.history
    assert first.test_accuracy == fresh.test_accuracy == again.test_accuracy
    assert other.history != first.history
    assert again.trainable_params == fresh.trainable_params


def test_feature_extraction_builds_its_frozen_base_once_per_weights_file(splits, cache_dir, monkeypatch):
    from tlhelpers import model_pool

    model_pool.clear()
    builds = []
    real_build = model_pool.build_base
    monkeypatch.setattr(model_pool, "build_base", lambda *a, **k: builds.append(a[:2]) or real_build(*a, **k))
    options = dict(strategy="feature_extraction", backbone="vgg16", weights="embedded",
                   protocol=FixedSchedule(2, batch_size=8), verbose=0,
                   weights_options={"recipe": TINY_RECIPE, "verbose": 0, "clutter": None})
    fresh = training.train_run(splits, seed=0, reuse_models=False, **options)
    assert len(builds) == 1
    first = training.train_run(splits, seed=0, **options)
    other = training.train_run(splits, seed=1, **options)
    again = training.train_run(splits, seed=0, **options)
    assert len(builds) == 2
    assert first.history == fresh.history == again.history
    assert first.test_accuracy == fresh.test_accuracy == again.test_accuracy
    assert first.non_trainable_params == fresh.non_trainable_params
    assert other.history != first.history
    # The reused base computes the same features as a new one.
    for path in (cache_dir / "features").glob("*.npy"):
        path.unlink()
    assert training.train_run(splits, seed=0, **options).history == fresh.history
    assert len(builds) == 2
    # A source model written again gives a new base; random weights are never reused.
    path = source_models.source_model_path("vgg16", recipe=TINY_RECIPE)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert training.train_run(splits, seed=0, **options).history == first.history
    assert len(builds) == 3
    random_options = dict(options, weights=None, weights_options=None)
    training.train_run(splits, seed=0, **random_options)
    training.train_run(splits, seed=0, **random_options)
    assert len(builds) == 5


def test_a_reused_transfer_model_starts_from_its_weights_file_without_a_new_model(splits, cache_dir,
                                                                                  monkeypatch):
    from tlhelpers import model_pool

    model_pool.clear()
    options = dict(backbone="vgg16", weights="embedded", freeze_stage=4, verbose=0,
                   weights_options={"recipe": TINY_RECIPE, "verbose": 0, "clutter": None})
    schedule = FixedSchedule(2, batch_size=8)
    configurations = [dict(strategy="fine_tune", protocol=FixedSchedule(2, batch_size=8, head_epochs=1)),
                      dict(strategy="fine_tune", protocol=schedule),
                      dict(strategy="feature_extraction", protocol=schedule, use_feature_cache=False)]
    fresh = {(index, seed): training.train_run(splits, seed=seed, reuse_models=False, **options, **configuration)
             for index, configuration in enumerate(configurations) for seed in (0, 1)}
    builds, bases = [], []
    real_build, real_base = training.build_strategy, model_pool.build_base
    monkeypatch.setattr(training, "build_strategy", lambda *a, **k: builds.append(a[0]) or real_build(*a, **k))
    monkeypatch.setattr(model_pool, "build_base", lambda *a, **k: bases.append(a[0]) or real_base(*a, **k))
    for index, configuration in enumerate(configurations):
        for seed in (0, 1, 0):
            run = training.train_run(splits, seed=seed, **options, **configuration)
            assert run.history == fresh[index, seed].history
            assert run.test_accuracy == fresh[index, seed].test_accuracy
    # One model per graph: the head phase, fine-tuning (with or without a head phase) and
    # in-graph feature extraction; the reused runs take their bases' values from one frozen base.
    assert builds == ["feature_extraction", "fine_tune", "feature_extraction"]
    assert bases == ["vgg16"]


def test_an_experiment_builds_its_base_once_for_every_transfer_run(cache_dir, monkeypatch):
    from tlhelpers import model_pool
    from tlhelpers.experiments import ExperimentConfig, run_experiment

    model_pool.clear()
    builds, bases = [], []
    real_build, real_base = training.build_strategy, backbones.build_source_base
    monkeypatch.setattr(training, "build_strategy", lambda *a, **k: builds.append(a[0]) or real_build(*a, **k))
    # The shipped source model's base, as build_base makes it for weights="embedded".
    monkeypatch.setattr(backbones, "build_source_base", lambda *a, **k: bases.append(a[0]) or real_base(*a, **k))
    config = ExperimentConfig(backbones=("vgg16",), strategies=("feature_extraction", "fine_tune"),
                              labels_per_class=(3,), seeds=(0, 1), epochs=2, head_epochs=1,
                              validation_per_class=3, test_per_class=10)
    results = run_experiment(config, verbose=0)
    assert [r.strategy for r in results] == ["feature_extraction", "fine_tune"] * 2
    # One frozen base, built before the first run and served from the pool to feature
    # extraction and to the reused fine-tuning run; one model per phase.
    assert builds == ["feature_extraction", "fine_tune"]
    assert bases == ["vgg16"] * 3


def test_a_weights_file_written_again_is_not_served_from_the_pool(splits, cache_dir, tmp_path):
    from tlhelpers import model_pool

    model_pool.clear()
    path = tmp_path / "base.weights.h5"
    training.set_seed(0)
    base = build_base("vgg16", None, 32, "avg")
    base.save_weights(path)
    options = dict(strategy="feature_extraction", backbone="vgg16", weights=str(path),
                   protocol=FixedSchedule(2, batch_size=8), seed=0, verbose=0)
    before = training.train_run(splits, **options)
    base.set_weights([w * 0.5 for w in base.get_weights()])
    base.save_weights(path)
    after = training.train_run(splits, **options)
    assert after.history == training.train_run(splits, reuse_models=False, **options).history
    assert after.history != before.history


def test_copy_state_refuses_different_models():
    from tlhelpers import model_pool

    small = models.build_small_cnn((32, 32), 5)[0]
    other = models.build_small_cnn((32, 32), 3)[0]
    with pytest.raises(ValueError, match="variables differ"):
        model_pool.copy_state(small, other)


def test_pool_shares_graphs_across_learning_rates_and_default_freeze_stage(splits, cache_dir):
    from tlhelpers import model_pool

    model_pool.clear()
    options = dict(strategy="fine_tune", backbone="vgg16", weights=None, seed=0, verbose=0)
    schedule, faster_schedule = FixedSchedule(1, batch_size=8), FixedSchedule(1, batch_size=8, learning_rate=1e-3)
    training.train_run(splits, protocol=schedule, freeze_stage=None, **options)
    named = training.train_run(splits, protocol=schedule, freeze_stage=models.DEFAULT_FREEZE_STAGE, **options)
    faster = training.train_run(splits, protocol=faster_schedule, **options)
    assert len(model_pool.pooled_keys()) == 1
    assert named.config["freeze_stage"] == models.DEFAULT_FREEZE_STAGE
    # The reused model trains with the run's own learning rate: same numbers as a new model.
    fresh = training.train_run(splits, protocol=faster_schedule, reuse_models=False, **options)
    assert faster.history == fresh.history and faster.test_accuracy == fresh.test_accuracy
    assert faster.history != named.history


def test_training_and_evaluation_are_traced_once():
    # Keras creates optimizer slots and metric variables inside the first traced step
    # unless they exist already; a tf.function that creates variables is traced twice.
    traces = []

    def counted(x):
        traces.append(1)  # Python side effect: runs once per trace, not per step.
        return x

    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(keras.layers.Lambda(counted)(inputs)))
    models.compile_model(model, 1e-2)
    assert model.optimizer.built
    data = tf.data.Dataset.from_tensor_slices((np.ones((8, 4), "float32"), np.zeros(8, "int32"))).batch(4)
    traces.clear()
    model.fit(data, epochs=2, verbose=0)
    model.evaluate(data, verbose=0)
    assert len(traces) == 2, f"{len(traces)} traces of the model: expected one for training, one for evaluation"


def test_a_long_training_says_how_long_it_takes_from_its_first_steps():
    """First-use training prints an estimate measured on this machine, not a constant."""
    import keras

    lines = []
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile("sgd", "mse")
    estimate = runtime.TimeEstimate(total_steps=40, what="Training it", skip=2, measure=3,
                                     print_fn=lambda text, **kwargs: lines.append(text))
    model.fit(np.zeros((40, 4)), np.zeros((40, 2)), batch_size=1, epochs=1, verbose=0, callbacks=[estimate])
    assert len(lines) == 1, lines
    assert lines[0].startswith("Training it: ") and "s per step on this machine (measured over steps 3-5)" in lines[0]
    assert "remaining 35 of 40 steps" in lines[0]


def test_the_head_trains_at_the_rate_asked_for():
    # Feature extraction's head: its documented default, or the rate given, and nothing else.
    for asked, expected in ((None, models.DEFAULT_LEARNING_RATES["feature_extraction"]), (3e-4, 3e-4)):
        built = models.build_strategy("feature_extraction", "resnet50", None, 5, 32, learning_rate=asked, seed=0)
        assert built.learning_rate == pytest.approx(expected)
        assert float(built.model.optimizer.learning_rate) == pytest.approx(expected)


def test_discriminative_rates_train_the_head_faster(splits, cache_dir):
    """`head_rate_factor`: the head's first Adam step is that many times the base's; a pooled model
    compiled with another factor is not reused (the factor is traced into the step)."""
    def first_step(factor):
        keras.utils.set_random_seed(0)
        built = build_strategy("fine_tune", "resnet50", weights=None, num_classes=5, image_size=32, freeze_stage=4,
                               learning_rate=1e-4, head_rate_factor=factor)
        parts = {"head": built.head.trainable_weights,
                 "base": [w for w in built.base.trainable_weights if w.path.endswith("kernel")]}
        before = {name: [w.numpy() for w in weights] for name, weights in parts.items()}
        images, labels = next(iter(make_dataset(splits.train, (32, 32), built.preprocess, 8)))
        built.model.train_on_batch(images, labels)
        return {name: max(float(np.abs(w.numpy() - b).max()) for w, b in zip(weights, before[name]))
                for name, weights in parts.items()}

    one, ten = first_step(1), first_step(10)
    assert one["head"] == pytest.approx(one["base"], rel=1e-2)
    assert ten["head"] == pytest.approx(10 * ten["base"], rel=1e-2)
    with pytest.raises(ValueError, match="head_rate_factor=10 with strategy='scratch'"):
        build_strategy("scratch", "resnet50", num_classes=5, image_size=32, head_rate_factor=10)
    with pytest.raises(ValueError, match="Expected a number > 0"):
        training.train_run(splits, "fine_tune", "vgg16", weights=None, head_rate_factor=-1)
    options = dict(strategy="fine_tune", backbone="vgg16", weights=None, freeze_stage=4, seed=0, verbose=0,
                   protocol=FixedSchedule(1, batch_size=8, learning_rate=1e-4))
    same, faster = (training.train_run(splits, head_rate_factor=f, **options) for f in (1, 10))
    assert faster.config["head_rate_factor"] == 10 and "head_rate_factor" not in same.config
    assert faster.history["loss"] != same.history["loss"]
