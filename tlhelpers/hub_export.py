"""Export a Keras base as a TF-Hub image feature vector (a SavedModel folder).

`export_feature_vector` writes a Keras base in the calling convention of
TF-Hub image feature vectors (float RGB in [0, 1], one vector per image, an
optional `training` argument); `example_feature_vector` does it once for the
embedded source model, so the TF-Hub route (`tlhelpers.hub`) runs offline.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import keras
import tensorflow as tf

from tlhelpers.backbones import build_base
from tlhelpers.features import weights_fingerprint
from tlhelpers.paths import display_path, resolve_cache_dir
from tlhelpers.registry import BACKBONES

EXPORT_FORMAT = 1


def export_feature_vector(base, path, *, preprocess=None, overwrite=False):
    """Export a Keras base as a SavedModel in the TF-Hub image feature-vector convention.

    The exported function takes float RGB images in [0, 1] of the base's
    input size, scales them to 0-255, applies `preprocess` and runs the
    base: `hub.load(path)(images, training=False)` returns one feature
    vector per image. The folder is written beside `path` and renamed into
    place, so an interrupted export leaves nothing that loads.

    Args:
        base: A Keras model whose output is one vector per image (e.g.
            `build_base("resnet50", "embedded", 48, pooling="avg")`).
        path: Destination folder.
        preprocess: The base's preprocessing of 0-255 RGB (default: the
            registry's for `base.name`, e.g. ResNet50's `preprocess_input`).
        overwrite: Replace an existing export at `path`.

    Returns:
        `path` as a `Path`.

    Raises:
        ValueError: no `preprocess` given for a base that is not in the
            registry, or a base whose output is not one vector per image.
        FileExistsError: `path` exists and `overwrite` is False.
    """

    path = Path(path)
    if preprocess is None:
        if base.name not in BACKBONES:
            raise ValueError(f"Received a base named {base.name!r} and preprocess=None. Expected a "
                             f"base named one of {', '.join(BACKBONES)} or an explicit preprocess "
                             "function (float RGB 0-255 in, model input out).")
        preprocess = BACKBONES[base.name].preprocess
    if len(base.output.shape) != 2:
        raise ValueError(f"Received a base with output shape {tuple(base.output.shape)}. Expected one "
                         "vector per image: build it with pooling='avg' or 'max'.")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists. Pass overwrite=True to replace it.")

    @tf.function
    def feature_vector(images, training=False):
        return base(preprocess(images * 255.0), training=training)

    spec = tf.TensorSpec((None, *base.input.shape[1:]), tf.float32, name="images")
    for training in (False, True):
        feature_vector.get_concrete_function(spec, training=training)
    # The attributes of TF-Hub's reusable SavedModels: the call (traced in both
    # modes), all variables, those fine-tuning may change (by how they were
    # created, whatever `trainable` the base has now) and regularisation losses.
    # Keras's own export builds its archive on the same trackable object.
    root = tf.__internal__.tracking.AutoTrackable()
    root.variables = list(base.weights)
    root.trainable_variables = [w for w in base.weights if getattr(w, "value", w).trainable]
    root.regularization_losses = []
    root.__call__ = feature_vector
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".tmp-{path.name}-", dir=path.parent))
    try:
        tf.saved_model.save(root, str(temporary))
        if path.exists():
            shutil.rmtree(path)
        os.replace(temporary, path)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    return path


def example_feature_vector(backbone="resnet50", image_size=48, cache_dir=None, verbose=0,
                           **embedded_options):
    """The embedded source model's base as a local TF-Hub feature vector (exported on first use).

    This is the offline stand-in for a published TF-Hub image feature
    vector: the same calling convention, produced from the source model this
    project ships (see `shipped_sources`). The export is cached under
    `<package cache>/hub/`, keyed by the base's exact weights.

    Args:
        backbone: Registry name of the embedded source model.
        image_size: Input side of the exported model.
        cache_dir: Package cache folder (see `paths.resolve_cache_dir`).
        verbose: 0 silent, 1 say where the export is.
        **embedded_options: Passed to `backbones.build_base` for
            `weights="embedded"` (`clutter=None`: the clean source model).

    Returns:
        The SavedModel folder, to use as `"hub:" + str(path)`.
    """
    base = build_base(backbone, "embedded", image_size, pooling="avg", cache_dir=cache_dir,
                      verbose=verbose, **embedded_options)
    identity = {"format": EXPORT_FORMAT, "backbone": backbone, "image_size": list(base.input.shape[1:3]),
                "weights": weights_fingerprint(base), "keras": keras.__version__}
    key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
    path = resolve_cache_dir(cache_dir) / "hub" / f"{backbone}-embedded-{image_size}px-{key}"
    if not (path / "saved_model.pb").is_file():
        export_feature_vector(base, path, overwrite=True)
    if verbose:
        print(f"Embedded {backbone} feature vector (TF-Hub format): {display_path(path)}")
    return path
