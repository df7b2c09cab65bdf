"""Training under tf.distribute: MirroredStrategy over two logical CPU devices."""

import json
import os
import subprocess
import sys

import pytest

from tlhelpers import distribution

# Runs in a fresh process: logical devices must be configured before TensorFlow starts.
SCRIPT = """
import json, sys
from tlhelpers import datasets, distribution, training
from tlhelpers.protocol import FixedSchedule
devices = distribution.split_cpu(2)
pool, test = datasets.load_embedded(datasets.DEFAULT_TARGET_CLASSES)
splits = datasets.make_splits(pool, test, labels_per_class=20, validation_per_class=10, seed=0,
                              test_per_class=60)
mirrored = distribution.make_strategy("mirrored", devices)
out = {"replicas": mirrored.num_replicas_in_sync}
runs = {"feature_extraction": dict(protocol=FixedSchedule(3), use_feature_cache=False),
        "fine_tune": dict(protocol=FixedSchedule(3, head_epochs=1), freeze_stage=4)}
for strategy, options in runs.items():
    for name, distribute in (("single", None), ("mirrored", mirrored)):
        result = training.train_run(splits, strategy, "vgg16", weights=None, seed=0, verbose=0,
                                    distribute=distribute, **options)
        out[f"{strategy}/{name}"] = {"test_accuracy": result.test_accuracy,
                                     "initial_val_loss": result.history["val_loss"][0],
                                     "trainable": result.trainable_params}
print("RESULT" + json.dumps(out))
"""

# Replicas see the same examples per step and average their gradients, but Keras
# creates the distributed dataset's iterators differently, so the per-epoch shuffle
# order differs from the single-device run: results agree statistically, not bit
# for bit. Measured here: 0.817 vs 0.750 (feature extraction) and 0.370 vs 0.273
# (fine-tuning random weights) on 60 test examples per class.
TOLERANCE = 0.12


def test_mirrored_strategy_matches_one_device():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.split("RESULT", 1)[1])
    assert out["replicas"] == 2
    for strategy in ("feature_extraction", "fine_tune"):
        single, mirrored = out[f"{strategy}/single"], out[f"{strategy}/mirrored"]
        # Same initial model and evaluation on both: identical before training.
        assert mirrored["initial_val_loss"] == pytest.approx(single["initial_val_loss"], abs=1e-5)
        assert mirrored["trainable"] == single["trainable"]
        assert abs(mirrored["test_accuracy"] - single["test_accuracy"]) <= TOLERANCE, (strategy, out)
    # Frozen random VGG16 features with a trained head are well above chance (0.2) either way.
    assert out["feature_extraction/mirrored"]["test_accuracy"] > 0.5, out


def test_distribute_names_are_checked(monkeypatch):
    assert distribution.make_strategy("none") is None
    with pytest.raises(ValueError, match="Expected one of: none, mirrored, multi-worker"):
        distribution.check_distribute("horovod")
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="without TF_CONFIG"):
        distribution.check_distribute("multi-worker")
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ValueError, match="not JSON"):
        distribution.check_distribute("multi-worker")


def test_names_resolve_to_one_strategy_per_process():
    assert distribution.resolve("none") is None and distribution.resolve(None) is None
    mirrored = distribution.make_strategy("mirrored")
    assert distribution.resolve("mirrored") is mirrored
    assert distribution.resolve(mirrored) is mirrored
    assert mirrored.num_replicas_in_sync >= 1
