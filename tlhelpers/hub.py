"""TF-Hub backbones under Keras 3: a layer around `tensorflow_hub.load`, and local exports.

`hub.KerasLayer` is a tf_keras layer and cannot sit in a Keras 3 model.
`HubFeatureVector` is a Keras 3 layer around the object `tensorflow_hub.load`
returns (a TF-Hub handle or a local SavedModel folder). It tracks the
SavedModel's own variables, so they count in `trainable_weights` /
`non_trainable_weights`, follow `layer.trainable`, and are updated by the
optimizer when the layer trains.

A registry name `"hub:<handle-or-path>"` (see `registry.get_backbone`) makes
such a layer usable as a backbone by every strategy that needs no stages:
feature extraction and whole-layer fine-tuning.

Exporting a Keras base in the TF-Hub convention is `tlhelpers.hub_export`
(`export_feature_vector`, `example_feature_vector`).
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

import keras

from tlhelpers.errors import HubUnavailableError  # noqa: F401  (raised here; importable from here)
from tlhelpers.registry import HUB_DEFAULT_SIZE

# The weights argument means nothing for a TF-Hub model (it carries its own
# weights); these values are accepted so that the usual profiles work unchanged.
HUB_WEIGHTS = ("hub", "embedded", "imagenet")


def tfhub_cache_dir():
    """The folder where `tensorflow_hub` keeps downloaded models.

    `$TFHUB_CACHE_DIR` when set, else `tfhub_modules` in the system's
    temporary folder (the library's default).
    """
    return Path(os.environ.get("TFHUB_CACHE_DIR") or Path(tempfile.gettempdir()) / "tfhub_modules")


def is_url(handle):
    """Whether `handle` is a web address (as opposed to a local folder)."""
    return bool(re.match(r"^[a-z][a-z0-9+.-]*://", str(handle))) and not str(handle).startswith("file://")


def load_hub_object(handle):
    """`tensorflow_hub.load(handle)`, with a clear error when the handle cannot be resolved.

    Raises:
        HubUnavailableError: a local folder that is not a SavedModel, or a web
            handle that could not be downloaded (offline).
    """
    import tensorflow_hub

    handle = str(handle)
    if not is_url(handle) and not (Path(handle) / "saved_model.pb").is_file():
        raise HubUnavailableError(
            f"Received handle={handle!r}. Expected a TF-Hub / Kaggle model address "
            "(https://...) or a folder holding a SavedModel (with saved_model.pb). Check the "
            "path, or export one with tlhelpers.hub_export.export_feature_vector.")
    try:
        return tensorflow_hub.load(handle)
    except OSError as error:  # urllib's URLError (no network, no DNS) is an OSError.
        if not is_url(handle):
            raise
        raise HubUnavailableError(
            f"Could not download the TF-Hub model {handle} ({str(error)[:160]}). TF-Hub caches "
            f"downloads in $TFHUB_CACHE_DIR (here: {tfhub_cache_dir()}). On a machine without "
            "internet, copy that folder from an online machine and set TFHUB_CACHE_DIR, download "
            "and extract the model and pass its folder as hub:<path>, or use the offline example "
            "tlhelpers.hub_export.example_feature_vector()."
        ) from None


def _call_endpoint(loaded):
    """How to call a loaded SavedModel.

    Returns:
        `(function, input_spec, accepts_training, concrete_functions)`.

    Raises:
        ValueError: no endpoint that takes one image batch and returns one tensor.
    """
    for function in (getattr(loaded, "__call__", None), getattr(loaded, "serve", None)):
        concrete = list(getattr(function, "concrete_functions", []))
        if concrete:
            args, _ = concrete[0].structured_input_signature
            accepts_training = any(len(c.structured_input_signature[0]) > 1
                                   or "training" in c.structured_input_signature[1] for c in concrete)
            return function, args[0] if args else None, accepts_training, concrete
    signatures = getattr(loaded, "signatures", {})
    signature = signatures.get("serving_default")
    if signature is not None:
        inputs = signature.structured_input_signature[1]
        outputs = list(signature.structured_outputs)
        if len(inputs) == 1 and len(outputs) == 1:
            (input_name, spec), output_name = next(iter(inputs.items())), outputs[0]

            def call_signature(images):
                return signature(**{input_name: images})[output_name]

            return call_signature, spec, False, [signature]
        raise ValueError(f"The SavedModel's 'serving_default' signature takes {sorted(inputs)} and "
                         f"returns {outputs}. Expected one image input and one output.")
    raise ValueError(
        "The SavedModel has neither a __call__ function (TF-Hub convention), a 'serve' endpoint "
        f"(keras.Model.export) nor a 'serving_default' signature. Found: {sorted(signatures)}.")


def _variables_of(loaded, concrete_functions):
    """`(variable, trainable)` pairs of a loaded SavedModel, each variable once."""
    if hasattr(loaded, "variables"):
        trainable_ids = {id(v) for v in getattr(loaded, "trainable_variables", [])}
        return [(v, id(v) in trainable_ids) for v in loaded.variables]
    # No variable lists saved: take those the call reads, as they were saved.
    seen, pairs = set(), []
    for concrete in concrete_functions:
        for variable in concrete.variables:
            if id(variable) not in seen:
                seen.add(id(variable))
                pairs.append((variable, variable.trainable))
    return pairs


class HubFeatureVector(keras.layers.Layer):
    """A Keras 3 layer around a TF-Hub model or a local SavedModel.

    The loaded model's variables become the layer's weights: frozen with
    `layer.trainable = False` (feature extraction), updated by the optimizer
    with `layer.trainable = True` (fine-tuning). Recompile after changing
    `trainable`, as for any Keras layer.

    Args:
        handle: A TF-Hub / Kaggle model address or a SavedModel folder,
            loaded with `tensorflow_hub.load`.
        trainable: Whether the model's variables train.
        use_training_mode: When True and the SavedModel's call accepts a
            `training` argument, a trainable layer runs in training mode
            during `fit` (batch statistics, dropout). The default, False,
            always runs it in inference mode: BatchNormalization statistics
            stay fixed while its weights are fine-tuned, the same choice the
            `fine_tune` strategy makes for Keras backbones.
        **kwargs: Standard layer arguments (`name`, `dtype`).

    Raises:
        HubUnavailableError: the handle cannot be loaded.
        ValueError: the SavedModel has no callable endpoint.
    """

    def __init__(self, handle, trainable=False, use_training_mode=False, **kwargs):
        super().__init__(trainable=trainable, **kwargs)
        self.handle = str(handle)
        self.use_training_mode = bool(use_training_mode)
        self._loaded = load_hub_object(self.handle)
        self._function, self.input_spec_of_model, self.accepts_training, concrete = _call_endpoint(
            self._loaded)
        for variable, is_trainable in _variables_of(self._loaded, concrete):
            # Wrapping keeps the SavedModel's own tf.Variable (the function reads
            # it); the name drops ":0" and "/", which Keras variable names and
            # optimizer slot names do not accept.
            self._track_variable(keras.Variable(
                initializer=variable, trainable=is_trainable, dtype=variable.dtype,
                shape=variable.shape, name=re.sub(r"[^A-Za-z0-9_.-]", "_", variable.name.split(":")[0])))
        self._build_at_init()

    def expected_image_size(self):
        """`(height, width)` the SavedModel requires, or None if it takes any size."""
        spec = self.input_spec_of_model
        if spec is None or spec.shape.rank != 4 or None in tuple(spec.shape[1:3]):
            return None
        return tuple(int(d) for d in spec.shape[1:3])

    def call(self, inputs, training=None):
        if self.accepts_training:
            run_training = bool(training) and self.trainable and self.use_training_mode
            return self._function(inputs, training=run_training)
        return self._function(inputs)

    def get_config(self):
        return {**super().get_config(), "handle": self.handle,
                "use_training_mode": self.use_training_mode}


def hub_model_name(handle):
    """A Keras model name for a handle: its last path part plus a short hash of the whole handle."""
    tail = re.sub(r"[^A-Za-z0-9]+", "_", str(handle).rstrip("/").split("/")[-1])[:32]
    return f"hub_{tail}_{hashlib.md5(str(handle).encode()).hexdigest()[:8]}"


def build_hub_base(handle, weights="hub", image_size=HUB_DEFAULT_SIZE, pooling="avg", trainable=False,
                   **unused_options):
    """A Keras model from images in [0, 1] to features, around a `HubFeatureVector`.

    Args:
        handle: TF-Hub / Kaggle address or SavedModel folder.
        weights: `"hub"`, `"embedded"` or `"imagenet"`: all mean the model's
            own weights. `None`/`"none"` is rejected: a TF-Hub model has no
            random-weights version.
        image_size: Input side or `(height, width)`.
        pooling: For a model that returns a feature map: `"avg"`, `"max"` or
            None. Feature vectors are returned unchanged.
        trainable: Initial `trainable` of the TF-Hub layer.
        **unused_options: Options of other weight sources (ignored).

    Returns:
        A `keras.Model` whose layers are the input and the TF-Hub layer
        (plus a pooling layer for feature maps).

    Raises:
        ValueError: random weights requested, or an image size the SavedModel
            does not accept.
        HubUnavailableError: the handle cannot be loaded.
    """
    if weights in (None, "none"):
        raise ValueError(
            f"Received weights={weights!r} for the TF-Hub backbone {handle}. A TF-Hub model carries "
            "its own trained weights and has no random-weights version. Use weights='hub' (or the "
            "profile's 'embedded' / 'imagenet', which mean the same here), or train a registry "
            "backbone such as 'resnet50' from scratch.")
    if weights not in HUB_WEIGHTS:
        raise ValueError(f"Received weights={weights!r} for the TF-Hub backbone {handle}. Expected "
                         f"one of: {', '.join(HUB_WEIGHTS)} (the model's own weights).")
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    layer = HubFeatureVector(handle, trainable=trainable, name="hub_feature_vector")
    expected = layer.expected_image_size()
    if expected is not None and expected != size:
        raise ValueError(f"Received image_size={image_size} for the TF-Hub backbone {handle}. This "
                         f"SavedModel only accepts {expected[0]}x{expected[1]} images: pass "
                         f"image_size={expected[0]}.")
    inputs = keras.Input((*size, 3))
    features = layer(inputs)
    if len(features.shape) == 4 and pooling in ("avg", "max"):
        pool = keras.layers.GlobalAveragePooling2D if pooling == "avg" else keras.layers.GlobalMaxPooling2D
        features = pool()(features)
    return keras.Model(inputs, features, name=hub_model_name(handle))


def check_hub_options(spec, weights, strategies, freeze_stage=None):
    """Reject what a TF-Hub backbone cannot do, before anything is loaded or trained.

    Raises:
        ValueError: random weights, the `scratch` strategy, or a freeze stage
            other than None/0 for fine-tuning (the TF-Hub model is one layer).
    """
    if weights in (None, "none"):
        raise ValueError(f"Received weights={weights!r} with the TF-Hub backbone {spec.name}. A TF-Hub "
                         "model has no random-weights version: use weights='hub' (or 'embedded').")
    if "scratch" in strategies:
        raise ValueError(f"Received strategy 'scratch' with the TF-Hub backbone {spec.name}. Training "
                         "from scratch needs the architecture with random weights, which a TF-Hub "
                         "model does not provide. Use 'feature_extraction' or 'fine_tune', or a "
                         "registry backbone ('resnet50', 'vgg16') for scratch.")
    if "fine_tune" in strategies and freeze_stage not in (None, 0):
        raise ValueError(f"Received freeze_stage={freeze_stage} with the TF-Hub backbone {spec.name}. "
                         "A TF-Hub model is one layer without stages: fine-tuning trains all of it. "
                         "Expected freeze_stage None or 0.")
