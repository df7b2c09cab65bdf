"""Linear probes with matched controls: how much a base's features are worth on a target.

A probe trains logistic regression on fixed features of a few labelled target
examples and scores it on the test split. Comparing source weights with
**random weights of the same architecture** (and raw pixels as the floor) at
each stage and label budget, seed by seed, tells whether what the source
learned transfers, and from which depth. Differences are paired by seed (the
same examples for every arm) and judged by a 95% t-interval.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass
class ProbeRow:
    """One arm at one label budget.

    Attributes:
        arm: e.g. `"source/stage5"`, `"random/stage5"`, `"pixels"`.
        labels_per_class: Training examples per class.
        accuracies: Test accuracy per seed, in seed order.
    """

    arm: str
    labels_per_class: int
    accuracies: list

    @property
    def mean(self):
        return float(np.mean(self.accuracies))


def stage_features(base, stage_ends, data, image_size, preprocess, stages=None, batch_size=128):
    """Globally average-pooled outputs of the chosen stages of `base` for every image of `data`.

    Args:
        base: A Keras base built with `pooling=None` or `"avg"`.
        stage_ends: Layer names where stage 1, 2, ... end (`BackboneSpec.stage_ends`).
        data: An `ImageSet`.
        image_size: `(height, width)` the base takes.
        preprocess: The backbone's preprocessing.
        stages: 1-based stages to return (default: all).

    Returns:
        `{stage: float32 array (N, channels)}`.
    """
    import keras

    from tlhelpers.pipeline import make_dataset

    stages = tuple(stages or range(1, len(stage_ends) + 1))
    outputs = [keras.layers.GlobalAveragePooling2D()(base.get_layer(stage_ends[s - 1]).output) for s in stages]
    extractor = keras.Model(base.inputs, outputs)
    values = extractor.predict(make_dataset(data, image_size, preprocess, batch_size), verbose=0)
    values = values if isinstance(values, (list, tuple)) else [values]
    return {stage: np.asarray(v, np.float32) for stage, v in zip(stages, values)}


def pixel_features(data):
    """Raw pixels scaled to 0-1, one row per image (the floor every learned feature must beat)."""
    return data.images.reshape(len(data), -1).astype(np.float32) / 255.0


def budget_index(labels, labels_per_class, seed):
    """Seeded choice of `labels_per_class` examples of every class; a smaller budget is a prefix
    of a larger one for the same seed."""
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:labels_per_class]
                           for c in np.unique(labels)])


def probe(train_features, train_labels, test_features, test_labels, budgets, seeds):
    """Probe accuracy for every budget and seed: `{budget: [accuracy per seed]}`."""
    from tlhelpers.features import linear_probe

    return {budget: [linear_probe(train_features[index], train_labels[index], test_features, test_labels)
                     for index in (budget_index(train_labels, budget, seed) for seed in seeds)]
            for budget in budgets}


def probe_arms(arms, train_labels, test_labels, budgets=(2, 5, 10, 20, 50), seeds=(0, 1, 2)):
    """Probe each arm `{name: (train_features, test_features)}`; returns a list of `ProbeRow`s."""
    rows = []
    for name, (train_features, test_features) in arms.items():
        scores = probe(train_features, train_labels, test_features, test_labels, budgets, seeds)
        rows.extend(ProbeRow(name, budget, values) for budget, values in scores.items())
    return rows


def paired_difference(a, b, confidence=0.95):
    """Mean of `a - b` over paired seeds with its t-interval: `(mean, low, high)`."""
    from tlhelpers.curves import aggregate

    summary = aggregate(np.asarray(a, float) - np.asarray(b, float), confidence)
    return summary["mean"], summary["ci_low"], summary["ci_high"]


def interval_verdict(low, high, margin=0.0):
    """`"higher"` / `"lower"` when the interval `low..high` of a difference lies above `margin` /
    below `-margin`, else `"no clear difference"`."""
    if low > margin:
        return "higher"
    if high < -margin:
        return "lower"
    return "no clear difference"


def verdict(a, b, margin=0.0, confidence=0.95):
    """`interval_verdict` of the paired difference `a - b` over seeds."""
    _, low, high = paired_difference(a, b, confidence)
    return interval_verdict(low, high, margin)


def probe_table(rows, arms=None):
    """A Markdown table: one row per arm, one column per budget, mean accuracy over seeds."""
    arms = arms or list(dict.fromkeys(row.arm for row in rows))
    budgets = sorted({row.labels_per_class for row in rows})
    cell = {(row.arm, row.labels_per_class): row.mean for row in rows}
    lines = ["| arm | " + " | ".join(f"{b}/class" for b in budgets) + " |",
             "|---|" + "---:|" * len(budgets)]
    for arm in arms:
        lines.append(f"| {arm} | " + " | ".join(f"{cell[arm, b]:.3f}" if (arm, b) in cell else "-"
                                                for b in budgets) + " |")
    return "\n".join(lines)
