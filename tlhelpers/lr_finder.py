"""A learning-rate range test (Smith, 2017; fastai's `lr_find`): a few training steps at exponentially
growing learning rates, the loss of each, and the model put back exactly as it was.

The loss falls once the rate is large enough to move the weights and rises again when steps
overshoot. A rate somewhat below the one where the smoothed loss is lowest (a tenth of it, fastai's
rule of thumb) is a first guess, found in seconds; a few full runs on validation then decide
(`budget_study` chooses rates that way).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np


@dataclasses.dataclass(frozen=True)
class RangeTest:
    """What a range test measured.

    Attributes:
        rates: The learning rate of each step, growing exponentially.
        losses: The training loss of each step's batch.
        smoothed: `losses` smoothed by a bias-corrected exponential moving average.
        lowest: The rate where `smoothed` is lowest.
        suggestion: `lowest / 10`.
        stopped: `"diverged"` when the loss exceeded `diverge` times its lowest smoothed value, else
            `"end"`.
    """

    rates: np.ndarray
    losses: np.ndarray
    smoothed: np.ndarray
    lowest: float
    suggestion: float
    stopped: str

    def smoothed_at(self, rate):
        """The smoothed loss at `rate`, interpolated in log rate; None outside the rates tested."""
        if not self.rates[0] <= rate <= self.rates[-1]:
            return None
        return float(np.interp(math.log(rate), np.log(self.rates), self.smoothed))


def lr_range_test(model, batches, start=1e-7, stop=1.0, steps=60, smoothing=0.9, diverge=4.0):
    """Train `model` for up to `steps` batches at rates from `start` to `stop`, then restore it.

    Args:
        model: A compiled Keras model whose optimizer's `learning_rate` is a variable (e.g.
            `runtime.compile_model`).
        batches: An iterable of `(inputs, labels)` batches, at least `steps` of them (e.g.
            `pipeline.make_dataset(..., shuffle=True, repeat=True)`).
        start, stop: The first and the last rate.
        steps: Steps from `start` to `stop`.
        smoothing: Weight of the past in the moving average.
        diverge: Stop when a batch's loss exceeds this multiple of the lowest smoothed loss.

    Returns:
        A `RangeTest`. The model's weights and its optimizer's state (moments, step count, rate) are
        the same as before the call.

    Raises:
        ValueError: `start`, `stop` or `steps` that make no range.
    """
    if not 0 < start < stop or steps < 3:
        raise ValueError(f"Received start={start}, stop={stop}, steps={steps}. Expected 0 < start < stop "
                         "and at least 3 steps.")
    rates = start * (stop / start) ** (np.arange(steps) / (steps - 1))
    weights = model.get_weights()
    optimizer_state = [variable.numpy() for variable in model.optimizer.variables]
    losses, smoothed, average = [], [], 0.0
    stopped = "end"
    try:
        for rate, (inputs, labels) in zip(rates, batches):
            model.optimizer.learning_rate.assign(rate)
            loss = float(model.train_on_batch(inputs, labels, return_dict=True)["loss"])
            average = smoothing * average + (1 - smoothing) * loss
            losses.append(loss)
            smoothed.append(average / (1 - smoothing ** len(losses)))
            if not math.isfinite(loss) or loss > diverge * min(smoothed):
                stopped = "diverged"
                break
    finally:
        model.set_weights(weights)
        for variable, value in zip(model.optimizer.variables, optimizer_state):
            variable.assign(value)
    if len(losses) < 3:
        raise ValueError(f"Received {len(losses)} batches before the loss diverged or the batches ran out. "
                         "Expected at least 3: start lower or give more batches.")
    tested = rates[:len(losses)]
    lowest = float(tested[int(np.argmin(smoothed))])
    return RangeTest(rates=tested, losses=np.array(losses), smoothed=np.array(smoothed), lowest=lowest,
                     suggestion=lowest / 10, stopped=stopped)
