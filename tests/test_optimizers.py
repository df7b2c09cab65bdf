"""The fused Adam: Keras's update rule in one kernel per variable."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tlhelpers import models
from tlhelpers.optimizers import FusedAdam


def _train(optimizer, steps=30):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 6)).astype("float32"), rng.integers(0, 3, 64)
    model.fit(x, y, batch_size=8, epochs=steps // 8, shuffle=False, verbose=0)
    return [w.numpy() for w in model.trainable_weights], model


def test_fused_adam_follows_keras_adam():
    schedule = lambda: keras.optimizers.schedules.CosineDecay(1e-2, decay_steps=40)
    fused, model = _train(FusedAdam(schedule()))
    reference, _ = _train(keras.optimizers.Adam(schedule()))
    assert type(model.optimizer) is FusedAdam
    for a, b in zip(fused, reference):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def _update_ops(optimizer):
    variables = [keras.Variable(np.ones((4, 4), "float32")) for _ in range(10)]
    optimizer.build(variables)

    @tf.function
    def step():
        optimizer.apply([tf.ones((4, 4))] * 10, variables)

    return len(step.get_concrete_function().graph.get_operations())


def test_fused_adam_traces_far_fewer_operations():
    fused, keras_adam = _update_ops(FusedAdam(1e-3)), _update_ops(keras.optimizers.Adam(1e-3))
    assert fused * 2 < keras_adam, (fused, keras_adam)


def test_compile_model_chooses_the_optimizer():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="softmax")])
    models.compile_model(model, 1e-3)
    assert type(model.optimizer) is FusedAdam
    models.compile_model(model, 1e-3, fused_adam=False)
    assert type(model.optimizer) is keras.optimizers.Adam


def _first_step_sizes(optimizer):
    """The largest change of each layer's kernel after one step of `optimizer` from the same start."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="relu", name="body"),
                              keras.layers.Dense(3, activation="softmax", name="top")], name="net")
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    before = {w.path: w.numpy() for w in model.trainable_weights}
    rng = np.random.default_rng(0)
    model.train_on_batch(rng.normal(size=(16, 6)).astype("float32"), rng.integers(0, 3, 16))
    return {w.path: float(np.abs(w.numpy() - before[w.path]).max()) for w in model.trainable_weights
            if w.path.endswith("kernel")}


def test_rate_factors_give_chosen_variables_their_own_rate():
    plain = _first_step_sizes(FusedAdam(1e-3))
    factored = _first_step_sizes(FusedAdam(1e-3, rate_factors={"net/top/kernel": 10.0, "net/top/bias": 10.0}))
    # Adam's first step moves every weight with a gradient by about the rate itself.
    assert plain["net/body/kernel"] == pytest.approx(1e-3, rel=1e-3)
    assert plain["net/top/kernel"] == pytest.approx(1e-3, rel=1e-3)
    assert factored["net/body/kernel"] == pytest.approx(plain["net/body/kernel"], rel=1e-6)
    assert factored["net/top/kernel"] == pytest.approx(10 * plain["net/top/kernel"], rel=1e-3)


def test_rate_factors_survive_the_optimizer_config():
    optimizer = FusedAdam(1e-3, rate_factors={"top/kernel": 10})
    again = FusedAdam.from_config(optimizer.get_config())
    assert again.rate_factors == {"top/kernel": 10.0}
    with pytest.raises(ValueError, match="Expected a factor > 0"):
        FusedAdam(1e-3, rate_factors={"top/kernel": 0})
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="softmax")])
    with pytest.raises(ValueError, match="fused_adam=True"):
        models.compile_model(model, 1e-3, fused_adam=False, rate_factors={"dense/kernel": 10})
