"""Feature cache: run a frozen base once, train heads on the stored features.

Cached features are keyed by everything that changes them: the base's
architecture and exact weights (a fingerprint of every weight), the input
size, the preprocessing and the exact examples. Files are written atomically.
"""

from __future__ import annotations

import collections
import hashlib
from pathlib import Path

import numpy as np

from tlhelpers.backbones import build_base, get_backbone
from tlhelpers.pipeline import make_dataset
from tlhelpers.results import atomic_output
from tlhelpers.source_models import file_version, resolve_cache_dir, source_model_path

# Frozen bases of feature-extraction runs in this process, one per configuration.
# Building ResNet50 takes 2.5-3.3 s on 2 CPU cores and fingerprinting its
# weights 0.5 s: with the features cached, that was most of a run.
_BASES = collections.OrderedDict()
BASE_POOL_SIZE = 2


def weights_fingerprint(model):
    """md5 of every weight of `model`: two bases with equal fingerprints compute the same features."""
    digest = hashlib.md5()
    for weight in model.weights:
        digest.update(np.asarray(weight.numpy()).tobytes())
    return digest.hexdigest()


def frozen_base(backbone, weights, image_size, **weights_options):
    """`(base, fingerprint)`: an average-pooled base and its `weights_fingerprint`.

    A base whose weights come from a file (ImageNet, an embedded source model,
    a path) is built once per process and reused until that file is written
    again; random weights and TF-Hub bases are built anew on every call.
    Arguments as in `backbones.build_base`.
    """
    key = (backbone, str(weights), tuple(image_size), repr(sorted(weights_options.items())))
    version = _weights_file_version(backbone, weights, weights_options)
    known = _BASES.get(key)
    if known is not None and version is not None and known[0] == version:
        _BASES.move_to_end(key)
        return known[1], known[2]
    base = build_base(backbone, weights, image_size, pooling="avg", **weights_options)
    entry = (_weights_file_version(backbone, weights, weights_options), base, weights_fingerprint(base))
    if entry[0] is not None:
        _BASES[key] = entry
        while len(_BASES) > BASE_POOL_SIZE:
            _BASES.popitem(last=False)
    return entry[1], entry[2]


def _weights_file_version(backbone, weights, weights_options):
    """The version of the file `build_base` reads the weights from; None when there is none."""
    if get_backbone(backbone).hub_handle is not None or weights in (None, "none"):
        return None
    if weights == "imagenet":
        return "imagenet"  # hash-checked downloads: the content never changes
    if weights == "embedded":
        options = {k: v for k, v in weights_options.items() if k != "verbose"}
        path = source_model_path(backbone, **options)
    else:
        path = Path(weights)
    return file_version(path) if path.is_file() else None


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


def extract_features(base, data, image_size, preprocess, batch_size=128):
    """Run `base` over every example of `data` (in order) and return a float32 array."""
    dataset = make_dataset(data, image_size, preprocess, batch_size).map(lambda x, y: x)
    return base.predict(dataset, verbose=0).astype(np.float32)


def cached_features(base, data, image_size, preprocess, cache_dir=None, batch_size=128, fingerprint=None):
    """Features of `data`, read from the cache or computed and stored atomically.

    Args:
        base: A frozen backbone with pooling (its output is one vector per image).
        data: An `ImageSet`.
        image_size: `(height, width)`.
        preprocess: The backbone's preprocessing.
        cache_dir: Package cache folder (see `source_models.resolve_cache_dir`).
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
    features = extract_features(base, data, image_size, preprocess, batch_size)
    with atomic_output(path) as temporary, open(temporary, "wb") as handle:
        np.save(handle, features)
    return features, False


def linear_probe(train_features, train_labels, test_features, test_labels):
    """Test accuracy of a logistic-regression classifier on fixed features.

    A quick measure of how linearly separable the classes already are in a
    backbone's feature space, before any network training.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    classifier.fit(train_features, train_labels)
    return float(classifier.score(test_features, test_labels))


def project_2d(features):
    """The first two principal components of `features` (standardised), shape `(N, 2)`."""
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    return PCA(n_components=2, svd_solver="full").fit_transform(StandardScaler().fit_transform(features))
