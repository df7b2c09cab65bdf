"""Training runs: seeded, evaluated before the first epoch and after every epoch."""

from __future__ import annotations

import contextlib
import gc
import time

import numpy as np
import tensorflow as tf

from tlhelpers import distribution, model_pool
from tlhelpers.features import cached_features
from tlhelpers.models import (
    DEFAULT_FREEZE_STAGE, build_head, build_strategy, check_head_rate_factor, count_params,
    strategy_learning_rate,
)
from tlhelpers.pipeline import make_dataset
from tlhelpers.protocol import (
    EarlyStopping, FixedSchedule, Protocol, precise_batchnorm, trainable_batchnorm_layers,
)
from tlhelpers.registry import check_image_size, get_backbone
from tlhelpers.results import HISTORY_KEYS, RunResult
from tlhelpers.runtime import compile_model, set_seed

# Evaluation has no gradients to average: larger batches run faster and give the same
# accuracy.
EVAL_BATCH_SIZE = 64
# A head on cached features takes about a millisecond per batch, so Keras's Python
# work per batch dominated its epochs: running 64 batches per call made an epoch
# of 16 training and 2 validation batches 0.080 -> 0.054 s (same numbers).
FEATURE_HEAD_STEPS_PER_EXECUTION = 64


def _feature_dataset(features, labels, batch_size, shuffle, seed, repeat=False):
    ds = tf.data.Dataset.from_tensor_slices((features, labels))
    if shuffle:
        ds = ds.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def fit_with_curves(model, train_ds, val_ds, epochs, history=None, verbose=1, steps_per_epoch=None):
    """Train `model` and append per-epoch curves to `history`.

    When `history` is None, the model is first evaluated on both splits
    before any training, which becomes epoch 0. Training accuracy at later
    epochs is Keras's running mean over the epoch (dropout active).
    `steps_per_epoch` makes an "epoch" that many gradient steps over the
    repeated training data (reshuffled on every pass), so that curves of
    different training-set sizes share one x-axis; None is one pass.

    Returns:
        The `history` dict keyed by `results.HISTORY_KEYS`.
    """
    if history is None:
        loss, accuracy = model.evaluate(train_ds, verbose=0)
        val_loss, val_accuracy = model.evaluate(val_ds, verbose=0)
        history = {"epoch": [0], "accuracy": [accuracy], "val_accuracy": [val_accuracy],
                   "loss": [loss], "val_loss": [val_loss]}
    if epochs <= 0:
        return history
    first = history["epoch"][-1] + 1
    if steps_per_epoch:
        train_ds = train_ds.repeat()
    fitted = model.fit(train_ds, validation_data=val_ds, epochs=epochs, steps_per_epoch=steps_per_epoch,
                       shuffle=False, verbose=verbose).history
    history["epoch"].extend(range(first, first + epochs))
    for key in HISTORY_KEYS[1:]:
        history[key].extend(float(v) for v in fitted[key])
    return history


def fit_protocol(model, train_ds, val_ds, protocol, train_eval_ds, bn_batches=None, verbose=1):
    """Train `model` under `protocol` (see `tlhelpers.protocol`) and restore its best weights.

    Args:
        train_ds: Endlessly repeated, full training batches, iterated by training alone: a shuffled
            dataset that anything else iterates too draws its next order from a shared generator, at a
            time that depends on prefetching threads, and the run stops being reproducible.
        train_eval_ds: The training images in a fixed order, for the training metrics before any
            training.
        bn_batches: Training image batches for re-estimating BatchNormalization
            statistics before every evaluation; None leaves them alone.

    Returns:
        `(history, stop)`: the curves keyed by `results.HISTORY_KEYS` (epoch i is
        after i * eval_every steps; 0 before training) and a dict with `best_step`,
        `stopped_step` and `stopped_by` (`"patience"` or `"cap"`).
    """
    if bn_batches is not None:
        precise_batchnorm(model, bn_batches)
    loss, accuracy = model.evaluate(train_eval_ds, verbose=0)
    val_loss, val_accuracy = model.evaluate(val_ds, verbose=0)
    history = {"epoch": [0], "accuracy": [accuracy], "val_accuracy": [val_accuracy],
               "loss": [loss], "val_loss": [val_loss]}
    stopper = EarlyStopping(protocol.patience, bn_batches, initial=(float(val_accuracy), -float(val_loss)))
    fitted = model.fit(train_ds, validation_data=val_ds, epochs=protocol.evaluations,
                       steps_per_epoch=protocol.eval_every, shuffle=False, verbose=verbose,
                       callbacks=[stopper]).history
    done = len(fitted["loss"])
    history["epoch"].extend(range(1, done + 1))
    for key in HISTORY_KEYS[1:]:
        history[key].extend(float(v) for v in fitted[key])
    by_patience = stopper.waited >= protocol.patience
    return history, {"best_step": stopper.best_index * protocol.eval_every,
                     "stopped_step": done * protocol.eval_every,
                     "stopped_by": "patience" if by_patience else "cap"}


def _bn_batches(model, data, size, preprocess, protocol, seed):
    """Fixed batches of training images for `protocol.precise_batchnorm`, or None when `model` has no
    BatchNormalization layer that trains (nothing to re-estimate)."""
    if not protocol.precise_bn or not trainable_batchnorm_layers(model):
        return None
    order = np.random.default_rng(seed).permutation(len(data))[:protocol.bn_images]
    batch = min(protocol.bn_batch_size, len(order))
    # Equal-sized batches, so that the mean of the batch statistics weighs every image the same.
    order = order[:len(order) // batch * batch]
    ds = make_dataset(data.subset(order), size, preprocess, batch)
    return [images for images, _ in ds]


def train_run(splits, strategy, backbone="resnet50", weights="embedded", image_size=32, protocol=None, *,
              seed=0, freeze_stage=None, hidden_units=(), dropout=0.2, use_feature_cache=True, augment=False,
              head_rate_factor=1.0, cache_dir=None, verbose=1, weights_options=None, reuse_models=True,
              distribute=None):
    """Train one strategy on one task and record its learning curves.

    Args:
        splits: A `datasets.Splits` (train, validation, test).
        strategy: `"feature_extraction"`, `"fine_tune"`, `"scratch"` or `"small_cnn"`.
        backbone: Registry name.
        weights: Weight source for transfer strategies (see `backbones.build_base`).
        image_size: Input side or `(height, width)`.
        protocol: How the run trains, which sets its steps, evaluation
            interval, learning rate and batch size: a `protocol.Protocol`
            (early stopping on validation with the best weights restored, full
            batches and, for networks whose BatchNormalization trains, precise
            statistics) or a `protocol.FixedSchedule` (a fixed number of
            epochs without early stopping, the last weights scored; for
            `"fine_tune"` optionally head-only epochs first). None: `Protocol()`.
        seed: Seed of initial weights, dropout and shuffling.
        freeze_stage: For `"fine_tune"`: freeze stages 1..k.
        hidden_units, dropout: Head options.
        use_feature_cache: Feature extraction without augmentation trains the
            head on cached features instead of running the base every epoch.
        augment: Random flips and shifts (the base then runs in the graph).
        head_rate_factor: For `"fine_tune"`: the head learns at this multiple
            of the learning rate, the unfrozen base at the rate itself
            (discriminative learning rates); 1: one rate.
        cache_dir: Package cache folder.
        verbose: 0 silent, 1 progress bars, 2 one line per epoch.
        weights_options: Extra options for `weights="embedded"`.
        reuse_models: Reuse the compiled model of an earlier run with the same
            configuration in this process (see `model_pool`), and for feature
            extraction on cached features the frozen base (see
            `model_pool.frozen_base`); the numbers are those of a new model,
            only building and Keras's tracing are saved.
        distribute: A `tf.distribute.Strategy` (e.g. `MirroredStrategy` over
            several GPUs, `MultiWorkerMirroredStrategy` across machines) under
            which the model is built and trained, or its name (`"none"`,
            `"mirrored"`, `"multi-worker"`; see `tlhelpers.distribution`);
            None trains on one device.

    Returns:
        A `RunResult`.
    """
    protocol = Protocol() if protocol is None else protocol
    check_head_rate_factor(strategy, head_rate_factor)
    if isinstance(protocol, FixedSchedule):
        epochs, eval_every, head_epochs = protocol.epochs, protocol.eval_every, protocol.head_epochs
    elif isinstance(protocol, Protocol):
        epochs, eval_every, head_epochs = protocol.evaluations, protocol.eval_every, 0
    else:
        raise ValueError(_protocol_type_error(protocol))
    learning_rate, batch_size = protocol.learning_rate, protocol.batch_size
    # The early-stopping rule; None under a fixed schedule.
    stopping = protocol if isinstance(protocol, Protocol) else None
    spec = get_backbone(backbone)
    size = check_image_size(spec, image_size)
    num_classes = len(splits.class_names)
    weights_options = dict(weights_options or {}, cache_dir=cache_dir)
    if weights != "embedded":
        weights_options = {}
    distribute = distribution.resolve(distribute)
    # Keras models hold reference cycles: free the previous run's before building new ones
    # (measured: peak memory after 9 ResNet50 runs 3.59 GB without, 3.08 GB with).
    gc.collect()
    started = time.perf_counter()
    set_seed(seed)
    phase_starts, stop = [], {}
    repeat = stopping is not None
    if strategy == "feature_extraction" and use_feature_cache and not augment:
        with _scope(distribute):
            built = _feature_head(splits, backbone, weights, size, hidden_units, dropout, seed,
                                  learning_rate, cache_dir, weights_options,
                                  reuse_base=reuse_models)
        features = built.pop("features")
        datasets = [_feature_dataset(f, d.labels, batch_size if i == 0 else EVAL_BATCH_SIZE, i == 0, seed,
                                     repeat and i == 0)
                    for i, (f, d) in enumerate(zip(features, (splits.train, splits.validation, splits.test)))]
        model, trainable, frozen = built["model"], built["trainable"], built["frozen"]
        if stopping is not None:
            history, stop = fit_protocol(model, datasets[0], datasets[1], stopping,
                                         _feature_dataset(features[0], splits.train.labels, EVAL_BATCH_SIZE,
                                                          False, seed), verbose=verbose)
        else:
            history = fit_with_curves(model, datasets[0], datasets[1], epochs, verbose=verbose,
                                      steps_per_epoch=eval_every)
    else:
        def build(kind=strategy, rate=learning_rate, compile=True):
            return build_strategy(kind, backbone, weights, num_classes, size, freeze_stage=freeze_stage,
                                  learning_rate=rate, hidden_units=hidden_units, dropout=dropout, seed=seed,
                                  augment=augment, head_rate_factor=head_rate_factor if kind == "fine_tune" else 1,
                                  compile=compile,
                                  **weights_options)

        def fresh_state(kind=strategy):
            # A new transfer model's variables without building one (see model_pool.transfer_state).
            if augment or kind not in ("feature_extraction", "fine_tune"):
                return None
            return model_pool.transfer_state(backbone, weights, size, num_classes, hidden_units, dropout,
                                             seed, **weights_options)

        acquire = model_pool.acquire if reuse_models else _fresh
        # What changes the graph: not the learning rate (an optimizer variable; the head's factor is
        # traced into the step), and the default freeze stage is the same graph as naming it.
        stage = (DEFAULT_FREEZE_STAGE if freeze_stage is None else freeze_stage) if strategy == "fine_tune" else None
        key = (strategy, backbone, str(weights), size, num_classes, stage, tuple(hidden_units), dropout,
               augment, head_rate_factor, repr(sorted(weights_options.items())), id(distribute))
        history = None
        rate = strategy_learning_rate(strategy, backbone, learning_rate)
        with _scope(distribute):
            if strategy == "fine_tune" and head_epochs:
                # Phase one trains the head on the frozen base (a feature-extraction model with
                # the same layers); phase two starts from its state with the later stages unfrozen.
                def build_head_phase(compile=True):
                    return build("feature_extraction", None, compile)

                head_phase = acquire(("head_phase", *key), build_head_phase,
                                     learning_rate=strategy_learning_rate("feature_extraction"),
                                     fresh_state=lambda: fresh_state("feature_extraction"))
                datasets = _image_datasets(splits, size, head_phase.preprocess, batch_size, seed)
                history = fit_with_curves(head_phase.model, datasets[0], datasets[1], head_epochs,
                                          verbose=verbose, steps_per_epoch=eval_every)
                built = acquire(key, build, state=head_phase.model, learning_rate=rate)
                phase_starts = [head_epochs + 1]
            else:
                built = acquire(key, build, learning_rate=rate, fresh_state=fresh_state)
                datasets = _image_datasets(splits, size, built.preprocess, batch_size, seed, repeat)
        model = built.model
        if stopping is not None:
            history, stop = fit_protocol(model, datasets[0], datasets[1], stopping,
                                         make_dataset(splits.train, size, built.preprocess, EVAL_BATCH_SIZE),
                                         _bn_batches(model, splits.train, size, built.preprocess, stopping, seed),
                                         verbose)
        else:
            history = fit_with_curves(model, datasets[0], datasets[1],
                                      epochs - (head_epochs if phase_starts else 0), history, verbose, eval_every)
        trainable, frozen = built.trainable_params, built.non_trainable_params
    test_loss, test_accuracy, classes_predicted = _score(model, datasets[2], splits.test.labels)
    return RunResult(
        backbone="small_cnn" if strategy == "small_cnn" else backbone,
        weights="none" if strategy in ("scratch", "small_cnn") else str(weights),
        strategy=strategy, labels_per_class=int(np.bincount(splits.train.labels).min()), seed=seed,
        history={key: [float(v) for v in values] for key, values in history.items()},
        test_accuracy=float(test_accuracy), test_loss=float(test_loss),
        wall_time_s=round(time.perf_counter() - started, 2),
        trainable_params=int(trainable), non_trainable_params=int(frozen), phase_starts=phase_starts,
        config={"image_size": list(size), "epochs": epochs,
                "steps": stop.get("stopped_step", epochs * (eval_every or -(-len(splits.train) // batch_size))),
                "eval_every": eval_every, "head_epochs": head_epochs,
                "freeze_stage": freeze_stage, "learning_rate": learning_rate, "batch_size": batch_size,
                "hidden_units": list(hidden_units), "dropout": dropout, "augment": augment,
                **({"head_rate_factor": head_rate_factor} if head_rate_factor != 1 else {}),
                "feature_cache": strategy == "feature_extraction" and use_feature_cache and not augment,
                "classes": list(splits.class_names), "test_classes_predicted": classes_predicted,
                **({"protocol": stopping.to_dict(), **stop,
                    "learning_rate_used": strategy_learning_rate(strategy, backbone, learning_rate)}
                   if stopping is not None else {})},
    )


def _protocol_type_error(protocol):
    """What `train_run` says about a `protocol` that is neither a `Protocol` nor a `FixedSchedule`."""
    hint = ""
    if isinstance(protocol, (int, np.integer)) and not isinstance(protocol, bool) and protocol >= 1:
        hint = f" The fixed schedule of {protocol} epochs is FixedSchedule(epochs={protocol})."
    return (f"Received protocol={protocol!r}. Expected a protocol.Protocol (early stopping on validation), a "
            f"protocol.FixedSchedule (a fixed number of epochs without early stopping) or None (Protocol()).{hint}")


def _score(model, test_ds, labels):
    """`(loss, accuracy, classes predicted)` on the test split in one pass; a network that predicts one
    class for every image has learnt nothing its accuracy would show."""
    probabilities = np.asarray(model.predict(test_ds, verbose=0), dtype=np.float64)
    predicted = probabilities.argmax(axis=1)
    # Keras's sparse cross-entropy clips probabilities to [1e-7, 1 - 1e-7] the same way.
    picked = np.clip(probabilities[np.arange(len(labels)), labels], 1e-7, 1 - 1e-7)
    return float(-np.log(picked).mean()), float(np.mean(predicted == labels)), int(len(np.unique(predicted)))


def _image_datasets(splits, size, preprocess, batch_size, seed, repeat=False):
    """Train (shuffled; endlessly repeated before batching when `repeat`), validation and test pipelines;
    evaluation uses larger batches."""
    return [make_dataset(data, size, preprocess, batch_size if index == 0 else EVAL_BATCH_SIZE,
                         shuffle=index == 0, seed=seed, repeat=repeat and index == 0)
            for index, data in enumerate((splits.train, splits.validation, splits.test))]


def _fresh(key, build, state=None, learning_rate=None, fresh_state=None):
    """`model_pool.acquire` without the pool: always a new model (and new traced functions)."""
    built = build()
    if state is not None:
        model_pool.copy_state(state, built.model)
    return built


def _scope(distribute):
    """`distribute.scope()`, or a no-op context without a distribution strategy."""
    return distribute.scope() if distribute is not None else contextlib.nullcontext()


def _feature_head(splits, backbone, weights, size, hidden_units, dropout, seed, learning_rate,
                  cache_dir, weights_options, reuse_base):
    """Feature extraction on cached features: the frozen base runs once per example set.

    `reuse_base` takes the base from `model_pool.frozen_base` (built once per
    process); never under a distribution strategy, whose variables differ.
    """
    spec = get_backbone(backbone)
    base, fingerprint = model_pool.frozen_base(backbone, weights, size,
                                               reuse=reuse_base and not tf.distribute.has_strategy(),
                                               **weights_options)
    features = [cached_features(base, data, size, spec.preprocess, cache_dir=cache_dir, fingerprint=fingerprint)[0]
                for data in (splits.train, splits.validation, splits.test)]
    set_seed(seed)
    head = build_head(features[0].shape[1:], len(splits.class_names), "avg", hidden_units=hidden_units,
                      dropout=dropout, seed=seed)
    compile_model(head, strategy_learning_rate("feature_extraction", backbone, learning_rate),
                  steps_per_execution=FEATURE_HEAD_STEPS_PER_EXECUTION)
    return {"model": head, "features": features, "trainable": count_params(head.trainable_weights),
            "frozen": count_params(base.weights)}
