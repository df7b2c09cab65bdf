"""The record of one training run, and JSON (de)serialisation of many runs."""

from __future__ import annotations

import contextlib
import dataclasses
import os
from pathlib import Path

HISTORY_KEYS = ("epoch", "accuracy", "val_accuracy", "loss", "val_loss")


@dataclasses.dataclass
class RunResult:
    """What one training run produced.

    Attributes:
        backbone: Backbone name (`"resnet50"`, `"vgg16"`, `"small_cnn"`).
        weights: Where the backbone weights came from (`"embedded"`,
            `"imagenet"`, `"none"` or a file path).
        strategy: `"feature_extraction"`, `"fine_tune"`, `"scratch"` or
            `"small_cnn"`.
        labels_per_class: Training examples per class.
        seed: Seed of the example sample, the initial weights and the
            shuffling.
        history: Per-epoch curves keyed by `HISTORY_KEYS`. Index 0 is the
            evaluation before any training (epoch 0).
        test_accuracy: Accuracy on the untouched test split after training.
        test_loss: Loss on the test split after training.
        wall_time_s: Seconds spent training and evaluating this run.
        trainable_params: Trainable parameter count of the final phase.
        non_trainable_params: Frozen parameter count of the final phase.
        phase_starts: Epochs (1-based) at which a later training phase
            begins, e.g. `[5]` when fine-tuning starts after 4 epochs of
            head training. Empty for single-phase runs.
        config: Everything else that identifies the run (image size,
            learning rates, freeze stage, classes, ...).
    """

    backbone: str
    weights: str
    strategy: str
    labels_per_class: int
    seed: int
    history: dict
    test_accuracy: float
    test_loss: float
    wall_time_s: float
    trainable_params: int
    non_trainable_params: int
    phase_starts: list = dataclasses.field(default_factory=list)
    config: dict = dataclasses.field(default_factory=dict)

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data):
        names = {field.name for field in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in names})


@contextlib.contextmanager
def atomic_output(path):
    """Yield a temporary path beside `path`; move it onto `path` only if the block succeeds.

    The temporary name keeps the file's suffixes (Keras checks `.weights.h5`)
    and starts with a dot. Whatever happens inside the block (an exception, an
    interrupt), no partial file is left at `path` or beside it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def atomic_write_text(path, text):
    """Write `text` to `path` so that a reader never sees a partial file."""
    with atomic_output(path) as temporary:
        temporary.write_text(text)
