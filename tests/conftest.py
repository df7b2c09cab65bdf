"""Shared fixtures: a private package cache and small image folders."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    """A private, empty package cache for one test."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("TLHELPERS_CACHE", str(folder))
    return folder


def write_png(path, value=128, size=(12, 10)):
    """Write a small valid PNG image."""
    import tensorflow as tf

    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(value)
    pixels = rng.integers(0, 256, size=(*size, 3), dtype=np.uint8)
    path.write_bytes(tf.io.encode_png(pixels).numpy())


def write_jpeg(path, value=128, size=(16, 16)):
    """Write a small valid JPEG image and return its bytes."""
    import tensorflow as tf

    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.full((*size, 3), value, dtype=np.uint8)
    data = tf.io.encode_jpeg(pixels).numpy()
    path.write_bytes(data)
    return data
