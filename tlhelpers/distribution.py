"""Training on several devices or machines with TensorFlow's `tf.distribute`.

The names below are what the command line (`--distribute`) and the
notebooks' `DISTRIBUTE` parameter accept; `train_run(distribute=...)` takes
the strategy object itself:

    none          one device (the default)
    mirrored      every GPU of this machine (MirroredStrategy; one CPU if none)
    multi-worker  several machines, each running the same command, configured
                  through the `TF_CONFIG` environment variable
                  (MultiWorkerMirroredStrategy)

With a strategy, the batch size is the global batch: each of N replicas
sees batch_size / N examples per step and the gradients are averaged, so the
numbers match one device up to floating-point order (and the per-replica
statistics of any BatchNormalization layer that trains).
"""

from __future__ import annotations

import functools
import json
import os

DISTRIBUTE_CHOICES = ("none", "mirrored", "multi-worker")


def check_distribute(name):
    """Raise `ValueError` unless `name` is usable here (known, and TF_CONFIG set for multi-worker)."""
    if name not in DISTRIBUTE_CHOICES:
        raise ValueError(f"Received distribute={name!r}. Expected one of: {', '.join(DISTRIBUTE_CHOICES)}.")
    if name == "multi-worker":
        config = os.environ.get("TF_CONFIG")
        if not config:
            raise ValueError(
                "Received distribute='multi-worker' without TF_CONFIG. Expected TF_CONFIG to describe "
                'the cluster, e.g. {"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
                '"task": {"type": "worker", "index": 0}}, set on every machine with its own index.')
        try:
            json.loads(config)
        except json.JSONDecodeError as error:
            raise ValueError(f"Received TF_CONFIG that is not JSON ({error}). Expected the cluster "
                             "description as a JSON object.") from None


def make_strategy(name="none", devices=None):
    """The `tf.distribute.Strategy` for `name`, or None for one device.

    The same name gives the same strategy object within a process, so runs
    under it can reuse their compiled models (see `model_pool`).

    Args:
        name: One of `DISTRIBUTE_CHOICES`.
        devices: For `"mirrored"`: device names (default: every GPU, else the CPU).

    Returns:
        A strategy, or None for `"none"`.

    Raises:
        ValueError: unknown name, or `"multi-worker"` without a valid `TF_CONFIG`.
    """
    check_distribute(name)
    if name == "none":
        return None
    return _strategy(name, tuple(devices) if devices else None)


@functools.lru_cache(maxsize=None)
def _strategy(name, devices):
    """One strategy object per name and devices (multi-worker may only be created once)."""
    import tensorflow as tf

    if name == "mirrored":
        return tf.distribute.MirroredStrategy(list(devices) if devices else None)
    return tf.distribute.MultiWorkerMirroredStrategy()


def resolve(distribute):
    """A strategy object from `distribute`: a name (see `make_strategy`), a strategy, or None."""
    return make_strategy(distribute) if isinstance(distribute, str) else distribute


def split_cpu(num_devices=2):
    """Present the CPU as `num_devices` logical devices (call before TensorFlow starts).

    Lets `MirroredStrategy` be tried, and tested, on a machine without GPUs.

    Returns:
        The logical CPU device names, e.g. `["/cpu:0", "/cpu:1"]`.
    """
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(num_devices)])
    return [f"/cpu:{index}" for index in range(num_devices)]
