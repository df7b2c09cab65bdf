"""The learning-rate range test: rates, losses, a suggestion, and the model put back as it was."""

import numpy as np
import pytest

from tlhelpers import lr_finder
from tlhelpers.runtime import compile_model, set_seed


def tiny_model():
    import keras

    set_seed(0)
    inputs = keras.Input((8,))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(keras.layers.Dense(16, activation="relu")(inputs)))
    compile_model(model, 1e-3)
    return model


def batches(count=200, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, (3, 8)).astype("float32")
    for _ in range(count):
        labels = rng.integers(0, 3, 16)
        yield centres[labels] + rng.normal(0, 1, (16, 8)).astype("float32"), labels


def test_the_range_test_finds_where_the_loss_falls_and_restores_the_model():
    model = tiny_model()
    weights = [w.copy() for w in model.get_weights()]
    state = [v.numpy().copy() for v in model.optimizer.variables]
    found = lr_finder.lr_range_test(model, batches(), start=1e-5, stop=10.0, steps=80)
    assert all((a == b).all() for a, b in zip(weights, model.get_weights()))
    assert all((a == v.numpy()).all() for a, v in zip(state, model.optimizer.variables))
    ratios = found.rates[1:] / found.rates[:-1]
    assert np.allclose(ratios, ratios[0]) and found.rates[0] == pytest.approx(1e-5)
    # The loss falls from its start (a separable task) once the rate is large enough to learn.
    assert found.smoothed.min() < 0.5 * found.smoothed[0]
    assert found.lowest > 1e-3 and found.suggestion == pytest.approx(found.lowest / 10)
    assert found.smoothed_at(found.lowest) == pytest.approx(found.smoothed.min())
    assert found.smoothed_at(100.0) is None


def test_a_range_that_overshoots_stops_as_diverged_and_bad_ranges_are_refused():
    found = lr_finder.lr_range_test(tiny_model(), batches(), start=1e-3, stop=1e4, steps=60)
    assert found.stopped == "diverged" and len(found.rates) < 60
    with pytest.raises(ValueError, match="start=1.0, stop=0.1"):
        lr_finder.lr_range_test(tiny_model(), batches(), start=1.0, stop=0.1)
    with pytest.raises(ValueError, match="Received 2 batches"):
        lr_finder.lr_range_test(tiny_model(), batches(2), steps=10)
