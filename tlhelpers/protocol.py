"""The training protocol: one rule that every arm, control or not, is trained by.

A run trains in intervals of `eval_every` gradient steps and is evaluated on
validation after each one. The best evaluation so far is the one with the
highest validation accuracy (ties: the lower validation loss); when `patience`
evaluations in a row bring no better one, the run stops and the weights of the
best evaluation are restored, and the test split is scored once, there. A run
that reaches `max_steps` first is recorded as stopped by its cap: it may still
have been improving, and a report flags it.

Training batches are drawn from the repeated, reshuffled training images, so
every batch holds `batch_size` images (batching before repeating leaves a short
batch at the end of every pass: 2 images in every fourth step at 10 labels per
class of 5 classes).

BatchNormalization layers that train (from-scratch networks) keep moving
averages of batch statistics that lag their weights; evaluated with stale
statistics a network that fits its training images can predict one class. With
`precise_bn`, before every evaluation the population statistics are estimated
again for the current weights: the mean of each layer's batch statistics over
fixed batches of training images, no weight changed (Wu and Johnson 2021,
"Rethinking batch in BatchNorm"). Frozen BatchNormalization layers (feature
extraction, fine-tuning) keep their source statistics and are left alone.

`FixedSchedule` is the other way `training.train_run` trains: a fixed number
of epochs without early stopping, the last weights scored on test (the
notebooks' demonstrations and `study.run_study`).
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np

MONITOR = "validation accuracy, ties broken by the lower validation loss"


@dataclasses.dataclass(frozen=True)
class Protocol:
    """How a run trains, stops and is evaluated.

    Attributes:
        eval_every: Gradient steps between evaluations on validation.
        max_steps: The cap: a run stops here even if it is still improving.
        patience: Evaluations without a better one before the run stops.
        batch_size: Training images per gradient step (every batch full).
        learning_rate: Adam's learning rate; None: the arm's default
            (`models.strategy_learning_rate`) or the one chosen on validation.
        precise_bn: Estimate BatchNormalization population statistics for
            the current weights before every evaluation.
        bn_images: At most this many training images (fixed per run) for
            those statistics.
        bn_batch_size: Images per batch for those statistics.
    """

    eval_every: int = 50
    max_steps: int = 4000
    patience: int = 10
    batch_size: int = 16
    learning_rate: float | None = None
    precise_bn: bool = True
    bn_images: int = 512
    bn_batch_size: int = 64

    def __post_init__(self):
        for name in ("eval_every", "max_steps", "patience", "batch_size", "bn_images", "bn_batch_size"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"Received {name}={value!r}. Expected an integer >= 1.")
        if self.max_steps < self.eval_every:
            raise ValueError(f"Received max_steps={self.max_steps} and eval_every={self.eval_every}. "
                             "Expected max_steps >= eval_every (at least one evaluation after training).")
        if self.learning_rate is not None and not self.learning_rate > 0:
            raise ValueError(f"Received learning_rate={self.learning_rate!r}. Expected None or a number > 0.")

    @property
    def evaluations(self):
        """The most evaluations after training starts (the cap in intervals)."""
        return self.max_steps // self.eval_every

    def to_dict(self):
        return dataclasses.asdict(self)

    def describe(self):
        """One paragraph for a reader: what a run under this protocol does."""
        rate = "the arm's own learning rate" if self.learning_rate is None else f"learning rate {self.learning_rate:g}"
        bn = ("BatchNormalization statistics that train are estimated again on up to "
              f"{self.bn_images} training images before every evaluation. " if self.precise_bn else "")
        return (f"Adam with {rate}, batches of {self.batch_size} images; evaluated on validation every "
                f"{self.eval_every} steps; stopped after {self.patience} evaluations without a better "
                f"{MONITOR}, or at {self.max_steps} steps; the best evaluation's weights are restored and "
                f"scored on test once. {bn}").strip()


@dataclasses.dataclass(frozen=True)
class FixedSchedule:
    """A fixed number of epochs without early stopping: the last weights are scored on test.

    Attributes:
        epochs: Training epochs (both phases together for fine-tuning).
        eval_every: Gradient steps per epoch (the curves' evaluation interval)
            over the repeated, reshuffled training images, so that runs with
            different label budgets are compared after the same steps; None:
            one pass over the training images.
        learning_rate: Adam's learning rate; None: the arm's default
            (`models.strategy_learning_rate`).
        batch_size: Training images per gradient step (the last batch of a
            pass may be short).
        head_epochs: Fine-tuning only: epochs of head-only training before the
            later stages are unfrozen (the two-phase recipe), counted inside
            `epochs`; 0: one phase.
    """

    epochs: int = 10
    eval_every: int | None = None
    learning_rate: float | None = None
    batch_size: int = 16
    head_epochs: int = 0

    def __post_init__(self):
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if not _is_integer(value) or value < 1:
                raise ValueError(f"Received {name}={value!r}. Expected an integer >= 1.")
        if self.eval_every is not None and (not _is_integer(self.eval_every) or self.eval_every < 1):
            raise ValueError(f"Received eval_every={self.eval_every!r}. Expected None (one pass over the training "
                             "images per epoch) or an integer >= 1 (gradient steps per epoch).")
        if self.learning_rate is not None and not self.learning_rate > 0:
            raise ValueError(f"Received learning_rate={self.learning_rate!r}. Expected None or a number > 0.")
        if not _is_integer(self.head_epochs) or not 0 <= self.head_epochs < self.epochs:
            raise ValueError(f"Received head_epochs={self.head_epochs!r} with epochs={self.epochs}. Expected "
                             "0 <= head_epochs < epochs: fine-tuning needs at least one epoch.")

    def to_dict(self):
        return dataclasses.asdict(self)

    def describe(self):
        """One sentence for a reader: what a run under this schedule does."""
        rate = "the arm's own learning rate" if self.learning_rate is None else f"learning rate {self.learning_rate:g}"
        steps = ("one pass over the training images" if self.eval_every is None
                 else f"{self.eval_every} steps")
        head = (f" (the first {self.head_epochs} of them head-only when fine-tuning)" if self.head_epochs else "")
        return (f"Adam with {rate}, batches of {self.batch_size} images, {self.epochs} epochs of {steps}{head} "
                "without early stopping; the last weights are scored on test.")


def _is_integer(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def trainable_batchnorm_layers(model):
    """The BatchNormalization layers of `model` (nested models included) that update their statistics
    in training mode."""
    return [layer for layer in model._flatten_layers(include_self=False)
            if isinstance(layer, keras.layers.BatchNormalization) and layer.trainable]


def precise_batchnorm(model, batches):
    """Set the moving statistics of every trainable BatchNormalization layer of `model` to the mean of its
    batch statistics over `batches` (equal-sized input arrays), without changing any weight.

    Each forward pass runs in training mode with momentum (i-1)/i for the i-th batch, so after the
    last batch the moving mean is the average of the batch means (and the same for the variances).

    Returns:
        The number of layers re-estimated (0: nothing to do, e.g. frozen or no BatchNormalization).
    """
    layers = trainable_batchnorm_layers(model)
    if not layers:
        return 0
    momenta = [layer.momentum for layer in layers]
    try:
        for index, images in enumerate(batches, start=1):
            for layer in layers:
                layer.momentum = (index - 1) / index
            model(images, training=True)
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
    return len(layers)


class EarlyStopping(keras.callbacks.Callback):
    """The protocol's stopping rule as a Keras callback for `fit` with `steps_per_epoch=eval_every`.

    Before each validation pass it re-estimates BatchNormalization statistics (when `bn_batches` is
    given); after it, it keeps the best weights (BatchNormalization statistics included) and stops
    after `patience` evaluations without a better one; at the end it restores the best weights.
    `best_index` is the best evaluation's index in the history (0: before training).
    """

    def __init__(self, patience, bn_batches=None, initial=None):
        super().__init__()
        self.patience = patience
        self.bn_batches = bn_batches
        self.best = None
        self.best_index = 0
        self.best_weights = None
        self.waited = 0
        self.index = 0
        if initial is not None:
            self.best = initial

    def on_test_begin(self, logs=None):
        if self.bn_batches is not None:
            precise_batchnorm(self.model, self.bn_batches)

    def on_train_begin(self, logs=None):
        self.best_weights = self.model.get_weights()

    def on_epoch_end(self, epoch, logs=None):
        self.index += 1
        score = (float(logs["val_accuracy"]), -float(logs["val_loss"]))
        if self.best is None or score > self.best:
            self.best, self.best_index, self.waited = score, self.index, 0
            self.best_weights = self.model.get_weights()
            return
        self.waited += 1
        if self.waited >= self.patience:
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.best_weights is not None:
            self.model.set_weights(self.best_weights)
