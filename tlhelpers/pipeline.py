"""tf.data pipelines that turn ImageSets into what a backbone expects.

This is the one place where images are resized, grey is turned into RGB and a
backbone's own `preprocess_input` is applied.
"""

from __future__ import annotations

import tensorflow as tf


def to_model_input(images, image_size, preprocess):
    """Cast, resize, grey->RGB and preprocess a batch of uint8 images.

    Args:
        images: uint8 tensor `(N, H, W, C)`, C = 1 or 3, values 0-255.
        image_size: `(height, width)` the model expects.
        preprocess: The backbone's preprocessing; receives float RGB 0-255.

    Returns:
        A float32 tensor `(N, height, width, 3)`.
    """
    x = tf.cast(images, tf.float32)
    if x.shape[-1] == 1:
        x = tf.image.grayscale_to_rgb(x)
    if tuple(x.shape[1:3]) != tuple(image_size):
        x = tf.image.resize(x, image_size, method="bilinear")
    return preprocess(x)


def make_dataset(data, image_size, preprocess, batch_size=64, shuffle=False, seed=0, repeat=False):
    """Build a batched, prefetched `tf.data.Dataset` of `(inputs, labels)`.

    Args:
        data: An `ImageSet`.
        image_size: `(height, width)`.
        preprocess: The backbone's preprocessing (see `to_model_input`).
        batch_size: Batch size.
        shuffle: Reshuffle every epoch; the order depends only on `seed`.
        seed: Shuffle seed.
        repeat: Repeat the (reshuffled) images endlessly before batching, so
            that every batch is full (batching first leaves a short batch at
            the end of every pass).

    Returns:
        A `tf.data.Dataset`.
    """
    ds = tf.data.Dataset.from_tensor_slices((data.images, data.labels))
    if shuffle:
        ds = ds.shuffle(len(data), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    ds = ds.batch(batch_size)
    ds = ds.map(
        lambda x, y: (to_model_input(x, image_size, preprocess), y),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    return ds.prefetch(tf.data.AUTOTUNE)
