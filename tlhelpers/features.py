"""Feature cache: run a frozen base once, train heads on the stored features.

Cached features are keyed by everything that changes them: the base's
architecture and exact weights (a fingerprint of every weight), the input
size, the preprocessing and the exact examples. Files are written atomically.
"""

from __future__ import annotations

import hashlib

import numpy as np
import tensorflow as tf

from tlhelpers.pipeline import make_dataset
from tlhelpers.results import atomic_output
from tlhelpers.paths import resolve_cache_dir


def weights_fingerprint(model):
    """md5 of every weight of `model`: two bases with equal fingerprints compute the same features."""
    digest = hashlib.md5()
    for weight in model.weights:
        digest.update(np.asarray(weight.numpy()).tobytes())
    return digest.hexdigest()


def feature_key(base, data, image_size, preprocess, fingerprint=None):
    """Cache key of the features of `data` under `base` (`fingerprint`: its known `weights_fingerprint`)."""
    digest = hashlib.sha256()
    for part in (base.name, fingerprint or weights_fingerprint(base), repr(tuple(image_size)),
                 getattr(preprocess, "__module__", ""), getattr(preprocess, "__qualname__", repr(preprocess)),
                 str(base.output.shape)):
        digest.update(part.encode())
    digest.update(np.ascontiguousarray(data.images).tobytes())
    digest.update(np.ascontiguousarray(data.labels).tobytes())
    return digest.hexdigest()[:24]


def forward_function(base):
    """`base(x, training=False)` as one traced function for every batch size.

    Traced once per base and kept on it. Keras's `predict` traces its own
    function again for a second batch shape (the example sets of a run have
    different sizes), which cost about 2.7 s per base for ResNet50 on 2 CPU
    cores; the features are the same to the bit.
    """
    forward = getattr(base, "_tlhelpers_forward", None)
    if forward is None:
        spec = tf.TensorSpec((None, *base.inputs[0].shape[1:]), base.inputs[0].dtype)
        forward = tf.function(lambda images: base(images, training=False), input_signature=[spec])
        base._tlhelpers_forward = forward
    return forward


def extract_features(base, data, image_size, preprocess, *, batch_size=128):
    """Run `base` over every example of `data` (in order) and return a float32 array.

    Under a `tf.distribute` strategy Keras's `predict` spreads the batches over
    the replicas; otherwise one traced function (`forward_function`) runs them.
    """
    dataset = make_dataset(data, image_size, preprocess, batch_size).map(lambda x, y: x)
    if tf.distribute.has_strategy():
        return base.predict(dataset, verbose=0).astype(np.float32)
    forward = forward_function(base)
    return np.concatenate([forward(images).numpy() for images in dataset]).astype(np.float32)


def cached_features(base, data, image_size, preprocess, *, cache_dir=None, batch_size=128, fingerprint=None):
    """Features of `data`, read from the cache or computed and stored atomically.

    Args:
        base: A frozen backbone with pooling (its output is one vector per image).
        data: An `ImageSet`.
        image_size: `(height, width)`.
        preprocess: The backbone's preprocessing.
        cache_dir: Package cache folder (see `paths.resolve_cache_dir`).
        batch_size: Batch size of the forward pass.
        fingerprint: `weights_fingerprint(base)` when already known.

    Returns:
        `(features, hit)`: a float32 array `(len(data), ...)` and whether it
        came from the cache.
    """
    folder = resolve_cache_dir(cache_dir) / "features"
    path = folder / f"{feature_key(base, data, image_size, preprocess, fingerprint)}.npy"
    if path.is_file():
        return np.load(path), True
    features = extract_features(base, data, image_size, preprocess, batch_size=batch_size)
    with atomic_output(path) as temporary, open(temporary, "wb") as handle:
        np.save(handle, features)
    return features, False


def linear_probe(train_features, train_labels, test_features, test_labels, *, return_predictions=False):
    """Test accuracy of a logistic-regression classifier on fixed features.

    A quick measure of how linearly separable the classes already are in a
    backbone's feature space, before any network training.

    Returns:
        The test accuracy, or `(accuracy, predicted test labels)` with `return_predictions`.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    classifier.fit(train_features, train_labels)
    predictions = classifier.predict(test_features)
    accuracy = float(np.mean(predictions == np.asarray(test_labels)))
    return (accuracy, predictions) if return_predictions else accuracy


def project_2d(features):
    """The first two principal components of `features` (standardised), shape `(N, 2)`."""
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    return PCA(n_components=2, svd_solver="full").fit_transform(StandardScaler().fit_transform(features))
