"""Reuse of built, compiled models between training runs of one process.

Keras traces a model's training and evaluation functions the first time they
run. For ResNet50 on 2 CPU cores that takes 15-50 s per model, often longer
than the training itself at small label budgets. Runs that differ only in
seed, label budget or data build the same graph, so the pool keeps one
compiled model per configuration and, for each new run, loads the state of a
new model into it: every variable (weights, BatchNormalization statistics,
dropout seed states) is assigned and the optimizer is reset. The traced
functions survive, and the run computes what a new model would. A transfer
model's new state needs no build either: its base starts from its weights
file, which a pooled frozen base holds, and its head from the seed
(`transfer_state`).
"""

from __future__ import annotations

import collections
import os

import numpy as np
import tensorflow as tf

from tlhelpers.backbones import build_base, weights_file_version
from tlhelpers.registry import check_image_size, get_backbone
from tlhelpers.features import weights_fingerprint
from tlhelpers.models import build_head

# Each ResNet50 entry holds about 300 MB (weights and Adam's two slots).
POOL_SIZE = 4
# Frozen bases of feature extraction on cached features. Building ResNet50 takes
# 2.5-3.3 s on 2 CPU cores and fingerprinting its weights 0.5 s: with the
# features cached, that was most of a run.
BASE_POOL_SIZE = 2

_pool = collections.OrderedDict()
_bases = collections.OrderedDict()


def clear():
    """Forget every pooled model and frozen base (the next run of each configuration builds again)."""
    _pool.clear()
    _bases.clear()


def pooled_keys():
    """The configurations currently pooled, least recently used first."""
    return list(_pool)


def copy_state(source, target):
    """Assign every variable of `source` to the same variable of `target` (a keras.Model).

    `source` is a keras.Model or a list of variables in the order of
    `target.variables` (see `transfer_state`).

    Raises:
        ValueError: if the two do not have the same variables.
    """
    values = list(getattr(source, "variables", source))
    pairs = list(zip(values, target.variables))
    if len(values) != len(target.variables) or any(tuple(a.shape) != tuple(b.shape) for a, b in pairs):
        name = getattr(source, "name", f"a list of {len(values)} variables")
        raise ValueError(f"Cannot copy the state of {name!r} into model {target.name!r}: their variables "
                         "differ. Expected two models built from the same configuration.")
    for a, b in pairs:
        b.assign(a)


def reset_optimizer(model, learning_rate):
    """Zero the optimizer's step counter and slots; keep its learning rate at `learning_rate`."""
    optimizer = model.optimizer
    for variable in optimizer.variables:
        variable.assign(np.zeros(variable.shape, dtype=variable.dtype))
    optimizer.learning_rate = learning_rate


def acquire(key, build, state=None, learning_rate=None, fresh_state=None):
    """A compiled `StrategyModel` for configuration `key`, in the state of a fresh build.

    Args:
        key: Hashable description of everything that changes the graph
            (strategy, backbone, weights, input size, classes, freezing,
            head options, distribution strategy; not the learning rate).
        build: Builds a new `StrategyModel` for this configuration (seeded
            by the caller); `build(compile=False)` may skip compiling, for a
            model whose state is only copied.
        state: A model whose state the run should start from instead of a
            fresh build (the head-trained model in two-phase fine-tuning).
        learning_rate: The run's learning rate; a pooled model trained with
            another one is reused with this one.
        fresh_state: Returns the variables of a new model of this
            configuration without building one, or None when only a build
            gives them (see `transfer_state`).

    Returns:
        The pooled `StrategyModel`, ready to train.
    """
    if key in _pool:
        _pool.move_to_end(key)
        entry = _pool[key]
        if state is None:
            state = (fresh_state and fresh_state()) or build(compile=False).model
        copy_state(state, entry.model)
        # The learning rate is an optimizer variable, not part of the traced graph.
        entry.learning_rate = learning_rate or entry.learning_rate
        reset_optimizer(entry.model, entry.learning_rate)
        return entry
    entry = build()
    if state is not None:
        copy_state(state, entry.model)
    _pool[key] = entry
    while len(_pool) > POOL_SIZE:
        _pool.popitem(last=False)
    return entry


def frozen_base(backbone, weights, image_size, reuse=True, **weights_options):
    """`(base, fingerprint)`: an average-pooled base and its `features.weights_fingerprint`.

    With `reuse`, a base whose weights come from a file (ImageNet, an embedded
    source model, a weights path) is built once per process and reused while
    `backbones.weights_file_version` of that file is unchanged; random weights
    and TF-Hub bases are built on every call. Other arguments as in
    `backbones.build_base`.
    """
    size = check_image_size(get_backbone(backbone), image_size)

    def build():
        base = build_base(backbone, weights, size, pooling="avg", **weights_options)
        return base, weights_fingerprint(base)

    if not reuse:
        return build()
    # A weights path is keyed by the file it names; other values ("embedded", "hub"...) as given.
    is_path = isinstance(weights, (str, os.PathLike)) and os.path.isfile(weights)
    # None is the default of every option but `clutter` (None there: the clean source model).
    options = {k: v for k, v in weights_options.items() if k != "verbose" and (v is not None or k == "clutter")}
    key = (backbone, os.path.realpath(weights) if is_path else str(weights), size,
           repr(sorted(options.items())))
    version = weights_file_version(backbone, weights, **options)
    known = _bases.get(key)
    if known is not None and version is not None and known[0] == version:
        _bases.move_to_end(key)
        return known[1], known[2]
    base, fingerprint = build()
    if version is None:
        # An embedded source model trained by this build exists only now.
        version = weights_file_version(backbone, weights, **options)
    _bases.pop(key, None)
    if version is not None:
        _bases[key] = (version, base, fingerprint)
        while len(_bases) > BASE_POOL_SIZE:
            _bases.popitem(last=False)
    return base, fingerprint


def transfer_state(backbone, weights, image_size, num_classes, hidden_units=(), dropout=0.2, seed=0,
                   **weights_options):
    """The variables of a new transfer model (`models.build_strategy` without augmentation), unbuilt.

    Such a model is its base followed by its head. The base starts from its
    weights file, whose values the pooled frozen base (`frozen_base`) holds;
    the head starts from its seed (`models.build_head`), whatever was built
    before. Building a ResNet50 strategy model only to read these took
    1.5-2 s on 2 CPU cores.

    Returns:
        A list of variables in the order of the model's, or None for weights
        that are not read from a file (random, TF-Hub) or inside a
        `tf.distribute` strategy: then only a build gives them.
    """
    if tf.distribute.has_strategy() or weights_file_version(backbone, weights, **weights_options) is None:
        return None
    base, _ = frozen_base(backbone, weights, image_size, **weights_options)
    head = build_head(tuple(base.output.shape[1:]), num_classes, "avg", hidden_units=hidden_units,
                      dropout=dropout, seed=seed)
    return [*base.variables, *head.variables]
