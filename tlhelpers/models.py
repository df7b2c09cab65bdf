"""Heads and the strategies that reuse a backbone: feature extraction, fine-tuning, scratch.

Every strategy returns a `StrategyModel`: a compiled Keras model plus a plain
description of what trains, with trainable and frozen parameter counts, so a
"fine-tuning" run that silently stays feature extraction shows in the numbers.
"""

from __future__ import annotations

import dataclasses

import keras

from tlhelpers.backbones import build_base
from tlhelpers.hub import check_hub_options
from tlhelpers.registry import check_image_size, get_backbone
from tlhelpers.runtime import compile_model

STRATEGIES = ("feature_extraction", "fine_tune", "scratch", "small_cnn")
# A head on frozen features has few, well-conditioned parameters (its input is
# layer-normalised) and tolerates a large step; 1e-3 left it far from converged
# after 10 epochs of a few batches each.
DEFAULT_LEARNING_RATES = {"feature_extraction": 1e-2, "fine_tune": 1e-4, "small_cnn": 1e-3}
# Default "freeze up to stage k" for fine-tuning: keep the generic early stages.
DEFAULT_FREEZE_STAGE = 3


@dataclasses.dataclass
class StrategyModel:
    """A compiled model and what it trains.

    Attributes:
        model: Compiled `keras.Model` from images to class probabilities.
        base: The backbone inside `model` (None for the small CNN).
        head: The head inside `model`.
        strategy: Strategy name.
        description: One sentence saying what is frozen and what trains.
        learning_rate: Adam learning rate it was compiled with.
        preprocess: The preprocessing its inputs need.
    """

    model: keras.Model
    base: object
    head: keras.Model
    strategy: str
    description: str
    learning_rate: float
    preprocess: object

    @property
    def trainable_params(self):
        return count_params(self.model.trainable_weights)

    @property
    def non_trainable_params(self):
        return count_params(self.model.non_trainable_weights)


def count_params(weights):
    """Number of scalars in a list of variables."""
    total = 0
    for weight in weights:
        size = 1
        for dim in weight.shape:
            size *= int(dim)
        total += size
    return total


def build_head(feature_shape, num_classes, pooling="avg", *, hidden_units=(), dropout=0.2, seed=0,
               name="head"):
    """Build a classification head with the functional API.

    Pooled features are layer-normalised first: backbone features come in
    arbitrary, small scales (a standard deviation of about 0.2-0.4 for the
    embedded source models), which makes a plain softmax layer slow to train.
    Dense and Dropout layers get explicit seeds, so the same head starts from
    the same weights whether it sits on a backbone or on cached features.

    Args:
        feature_shape: Shape of one backbone output: `(channels,)` for pooled
            features or `(height, width, channels)` for a feature map.
        num_classes: Output classes.
        pooling: For feature maps: `"avg"`, `"max"` or `"flatten"`.
        hidden_units: Sizes of optional hidden Dense layers (ReLU).
        dropout: Dropout rate before each Dense layer (0 disables).
        seed: Seed of the initial weights and dropout masks.
        name: Model name.

    Returns:
        A `keras.Model` from features to class probabilities.
    """
    poolers = {"avg": keras.layers.GlobalAveragePooling2D, "max": keras.layers.GlobalMaxPooling2D,
               "flatten": keras.layers.Flatten}
    inputs = keras.Input(tuple(feature_shape))
    x = inputs
    if len(feature_shape) == 3:
        if pooling not in poolers:
            raise ValueError(f"Received pooling={pooling!r}. Expected one of: {', '.join(poolers)}.")
        x = poolers[pooling]()(x)
    x = keras.layers.LayerNormalization(name="feature_norm")(x)
    for index, units in enumerate(list(hidden_units) + [num_classes]):
        if dropout:
            x = keras.layers.Dropout(dropout, seed=seed + index)(x)
        is_output = index == len(hidden_units)
        x = keras.layers.Dense(
            units,
            activation="softmax" if is_output else "relu",
            kernel_initializer=keras.initializers.GlorotUniform(seed=seed + index),
            name="predictions" if is_output else f"hidden_{index}",
        )(x)
    return keras.Model(inputs, x, name=name)


def freeze_up_to(base, stage_ends, stage, freeze_batchnorm=True):
    """Freeze every layer of `base` up to and including the end of stage `stage`.

    Stage 0 freezes nothing; stage `len(stage_ends)` freezes the whole base.
    BatchNormalization layers are frozen too unless `freeze_batchnorm=False`
    (only for demonstrating the pitfall): `training=False` alone does not stop
    their moving statistics from changing once the base is trainable (Keras 3
    on TensorFlow).
    """
    if not 0 <= stage <= len(stage_ends):
        raise ValueError(f"Received freeze_stage={stage}. Expected 0..{len(stage_ends)}.")
    base.trainable = True
    names = [layer.name for layer in base.layers]
    last_frozen = names.index(stage_ends[stage - 1]) if stage else -1
    for index, layer in enumerate(base.layers):
        is_batchnorm = isinstance(layer, keras.layers.BatchNormalization)
        layer.trainable = index > last_frozen and not (freeze_batchnorm and is_batchnorm)


def batchnorm_statistics(base):
    """Copies of every BatchNormalization layer's moving mean, keyed by layer name."""
    return {layer.name: layer.moving_mean.numpy().copy() for layer in base.layers
            if isinstance(layer, keras.layers.BatchNormalization)}


def strategy_learning_rate(strategy, backbone="resnet50", learning_rate=None):
    """The Adam learning rate a strategy trains with.

    `learning_rate` when given, else the strategy's default
    (`DEFAULT_LEARNING_RATES`; scratch: the backbone's own, see `BackboneSpec`).
    """
    if learning_rate:
        return learning_rate
    if strategy == "scratch":
        return get_backbone(backbone).scratch_learning_rate
    return DEFAULT_LEARNING_RATES[strategy]


def augmentation(seed=0):
    """What `augment=True` puts in front of a model: a random horizontal flip and a random shift
    of up to 10% of the side in each direction, active only in training (`training=True`)."""
    return keras.Sequential([keras.layers.RandomFlip("horizontal", seed=seed),
                             keras.layers.RandomTranslation(0.1, 0.1, seed=seed)], name="augmentation")


def build_small_cnn(image_size, num_classes, seed=0, dropout=0.2, augment=False):
    """A small plain CNN (three conv blocks) trained from scratch as a baseline."""
    inputs = keras.Input((*image_size, 3))
    x = augmentation(seed)(inputs) if augment else inputs
    x = keras.layers.Rescaling(1.0 / 255)(x)
    for index, filters in enumerate((32, 64, 128)):
        init = keras.initializers.HeUniform(seed=seed + 100 + index)
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu", kernel_initializer=init)(x)
        x = keras.layers.MaxPooling2D()(x) if index < 2 else x
    head = build_head(tuple(x.shape[1:]), num_classes, dropout=dropout, seed=seed)
    return keras.Model(inputs, head(x), name="small_cnn"), head


def build_strategy(strategy, backbone="resnet50", weights="embedded", num_classes=5, image_size=32, *,
                   freeze_stage=None, learning_rate=None, hidden_units=(), dropout=0.2, seed=0,
                   augment=False, freeze_batchnorm=True, head_rate_factor=1.0, compile=True, **weights_options):
    """Build a compiled model for one strategy.

    Args:
        strategy: `"feature_extraction"` (base frozen, head trains),
            `"fine_tune"` (stages up to `freeze_stage` frozen, later stages and
            the head train, BatchNormalization frozen), `"scratch"` (same
            architecture, random weights, everything trains) or `"small_cnn"`.
            A `"hub:..."` backbone is one layer without stages: feature
            extraction, or fine-tuning of the whole layer (in inference mode,
            so its BatchNormalization statistics stay fixed); no scratch.
        backbone: Registry name (ignored by `"small_cnn"`) or `"hub:<handle-or-path>"`.
        weights: Weight source for the transfer strategies (see
            `backbones.build_base`). `"scratch"` always uses random weights.
        num_classes: Target classes.
        image_size: Input side or `(height, width)`.
        freeze_stage: For `"fine_tune"`: freeze stages 1..k (default 3).
        learning_rate: Adam learning rate; defaults per strategy (fine-tuning
            1e-4; scratch uses the backbone's own).
        hidden_units, dropout, seed: Head options (see `build_head`).
        augment: Add random flips and shifts in front of the base.
        freeze_batchnorm: For `"fine_tune"`: keep BatchNormalization frozen
            (the default; False only to demonstrate the statistics drift).
        head_rate_factor: For `"fine_tune"`: the new head trains at this
            multiple of `learning_rate`, the unfrozen base at the rate itself
            (discriminative learning rates); 1: one rate for every layer.
        compile: False leaves the model uncompiled (a model whose weights are
            only read, for example by `model_pool`).
        **weights_options: Passed on for `weights="embedded"`.

    Returns:
        A `StrategyModel`.

    Raises:
        ValueError: unknown strategy, bad freeze stage, or what a TF-Hub
            backbone cannot do (scratch, a freeze stage, random weights).
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"Received strategy={strategy!r}. Expected one of: {', '.join(STRATEGIES)}.")
    check_head_rate_factor(strategy, head_rate_factor)
    spec = get_backbone(backbone)
    size = check_image_size(spec, image_size)
    rate = strategy_learning_rate(strategy, backbone, learning_rate)
    if strategy == "small_cnn":
        model, head = build_small_cnn(size, num_classes, seed, dropout, augment)
        if compile:
            compile_model(model, rate)
        return StrategyModel(model, None, head, strategy, "A small CNN; every layer trains from random "
                             "weights.", rate, lambda x: x)
    if spec.hub_handle is not None:
        check_hub_options(spec, weights, (strategy,), freeze_stage)
    base = build_base(backbone, None if strategy == "scratch" else weights, size, pooling=None,
                      **weights_options)
    head = build_head(tuple(base.output.shape[1:]), num_classes, "avg", hidden_units=hidden_units,
                      dropout=dropout, seed=seed)
    inputs = keras.Input((*size, 3))
    x = inputs
    if augment:
        x = augmentation(seed)(x)
    if strategy == "scratch":
        features = base(x)
        description = f"{backbone} with random weights; every layer trains."
    elif strategy == "feature_extraction":
        base.trainable = False
        features = base(x, training=False)
        description = f"{backbone} ({weights} weights) frozen; only the head trains."
    elif spec.hub_handle is not None:
        # Per layer: `base.trainable = True` on a model that already reports
        # True returns early (Keras 3 on TensorFlow) and leaves the frozen
        # TF-Hub layer frozen.
        for layer in base.layers:
            layer.trainable = True
        features = base(x, training=False)
        description = (f"{backbone} fine-tuned as one layer (all its variables train, in inference "
                       "mode: BatchNormalization statistics fixed) together with the head.")
    else:
        stage = DEFAULT_FREEZE_STAGE if freeze_stage is None else freeze_stage
        freeze_up_to(base, spec.stage_ends, stage, freeze_batchnorm)
        features = base(x, training=False)
        frozen_to = spec.stage_ends[stage - 1] if stage else "nothing"
        description = (f"{backbone} ({weights} weights) frozen up to stage {stage} ({frozen_to}); "
                       "later stages and the head train; BatchNormalization "
                       f"{'frozen' if freeze_batchnorm else 'NOT frozen (its statistics drift)'}.")
    # A "hub:<path>" name holds slashes, which Keras model names cannot; its base has a clean name.
    model_name = base.name if spec.hub_handle is not None else backbone
    model = keras.Model(inputs, head(features), name=f"{model_name}_{strategy}")
    factors = None
    if head_rate_factor != 1:
        factors = {variable.path: head_rate_factor for variable in head.trainable_weights}
        description += f" The head learns at {head_rate_factor:g} times the base's rate."
    if compile:
        compile_model(model, rate, rate_factors=factors)
    return StrategyModel(model, base, head, strategy, description, rate, spec.preprocess)


def check_head_rate_factor(strategy, head_rate_factor):
    """Raise unless `head_rate_factor` is a number > 0, and 1 for every strategy but fine-tuning (where
    the head and the base are the only two parts that train)."""
    if not isinstance(head_rate_factor, (int, float)) or isinstance(head_rate_factor, bool) \
            or not head_rate_factor > 0:
        raise ValueError(f"Received head_rate_factor={head_rate_factor!r}. Expected a number > 0 "
                         "(10: the head learns ten times as fast as the base; 1: one rate).")
    if head_rate_factor != 1 and strategy != "fine_tune":
        raise ValueError(f"Received head_rate_factor={head_rate_factor!r} with strategy={strategy!r}. "
                         "Expected 1: a separate head rate is for \"fine_tune\", where a pretrained base "
                         "trains beside a new head.")
