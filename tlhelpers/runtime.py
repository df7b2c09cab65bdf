"""Seeding, compiling and timing Keras training: what source-model and target training share."""

from __future__ import annotations

import time

import keras
import tensorflow as tf

from tlhelpers.optimizers import FusedAdam


def set_seed(seed):
    """Seed Python, NumPy and TensorFlow and make TensorFlow ops deterministic.

    Same seed, same machine (thread count, oneDNN settings): same numbers.
    """
    keras.utils.set_random_seed(int(seed))
    tf.config.experimental.enable_op_determinism()


class TimeEstimate(keras.callbacks.Callback):
    """Print how long a long training will take on this machine, measured from its first steps.

    The first `skip` batches (tracing, warm-up) are not timed; after `measure`
    more, one line says the seconds per step and the minutes left for the
    `total_steps` of the run.
    """

    def __init__(self, total_steps, what="training", skip=2, measure=8, print_fn=print):
        super().__init__()
        self.total_steps, self.what, self.skip, self.measure = total_steps, what, skip, measure
        self.print_fn, self.seen, self.started = print_fn, 0, None

    def on_train_batch_end(self, batch, logs=None):
        self.seen += 1
        if self.seen == self.skip:
            self.started = time.perf_counter()
        elif self.started is not None and self.seen == self.skip + self.measure:
            per_step = (time.perf_counter() - self.started) / self.measure
            left = per_step * (self.total_steps - self.seen)
            self.print_fn(f"{self.what}: {per_step:.2f} s per step on this machine (measured over steps "
                          f"{self.skip + 1}-{self.seen}); about {left / 60:.0f} min left for the remaining "
                          f"{self.total_steps - self.seen} of {self.total_steps} steps.", flush=True)


def compile_model(model, learning_rate, steps_per_execution=1, fused_adam=True, rate_factors=None):
    """Compile with Adam and sparse cross-entropy (call again after any `trainable` change).

    `learning_rate` is a number or a Keras learning-rate schedule.
    `steps_per_execution` > 1 runs that many batches per call into the traced
    function (same batches, same updates, less Python work per batch).
    `fused_adam` uses `optimizers.FusedAdam` (same rule, one kernel per
    variable, faster on CPU); False uses Keras's own Adam.
    `rate_factors` (`{variable path: factor}`, needs `fused_adam`): those
    variables train at `factor` times `learning_rate`.

    The optimizer's slots and the metrics' variables are created here, as Keras
    does under a distribution strategy, not inside the first training and
    evaluation steps: a `tf.function` that creates variables is traced twice,
    which for ResNet50 on 2 CPU cores cost 11 s per new model.
    """
    if rate_factors and not fused_adam:
        raise ValueError(f"Received rate_factors for {len(rate_factors)} variables with fused_adam=False. "
                         "Expected fused_adam=True: per-variable rates are FusedAdam's.")
    optimizer = (FusedAdam(learning_rate, rate_factors) if fused_adam
                 else keras.optimizers.Adam(learning_rate))
    model.compile(optimizer=optimizer,
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                  steps_per_execution=steps_per_execution)
    images = keras.KerasTensor(model.inputs[0].shape, model.inputs[0].dtype)
    model._symbolic_build(data_batch=(images, keras.KerasTensor((None,), "int32")))
