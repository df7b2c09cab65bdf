"""Benchmark 1: head training on cached features vs the frozen base in the graph.

Time per epoch of each (the difference between a short and a long run after a
warm-up run, so set-up and tracing cancel out), their ratio, and both test
accuracies after `ACCURACY_EPOCHS` epochs.
Default offline settings: ResNet50, the shipped source model, Fashion-MNIST in clutter at 48 px,
50 labels per class.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from common import machine, report, timed  # noqa: E402

# Both paths run this many epochs in one of their timed runs; its test accuracy is compared.
ACCURACY_EPOCHS = 8


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--labels-per-class", type=int, default=50)
    args = parser.parse_args()

    from tlhelpers import datasets, training
    from tlhelpers.protocol import FixedSchedule

    print(machine())
    pool, test = datasets.load_embedded_task("embedded")
    splits = datasets.make_splits(pool, test, args.labels_per_class, 20, seed=0, test_per_class=150)
    def run(epochs, cached):
        return timed(training.train_run, splits, "feature_extraction", args.backbone, "embedded", 48,
                     FixedSchedule(epochs), seed=0, use_feature_cache=cached, verbose=0)

    # An epoch on cached features takes milliseconds: its difference spans 40 epochs.
    spans = {True: (ACCURACY_EPOCHS, 48), False: (2, ACCURACY_EPOCHS)}
    per_epoch, accuracy = {}, {}
    for cached, (short, long) in spans.items():
        run(2, cached)  # Warm-up: builds, traces, fills the feature cache.
        times = {}
        for epochs in (short, long):
            result, times[epochs] = run(epochs, cached)
            if epochs == ACCURACY_EPOCHS:
                accuracy[cached] = result.test_accuracy
        per_epoch[cached] = (times[long] - times[short]) / (long - short)
    report(f"Feature extraction, {args.backbone}, {args.labels_per_class} labels per class, 48 px in clutter", [
        ("cached features: s per epoch", f"{per_epoch[True]:.3f}"),
        ("frozen base in the graph: s per epoch", f"{per_epoch[False]:.3f}"),
        ("speed-up (ratio)", f"{per_epoch[False] / per_epoch[True]:.1f}x"),
        ("test accuracy, cached / in the graph", f"{accuracy[True]:.3f} / {accuracy[False]:.3f}"),
    ], target="cached at least 20x faster per epoch, equal test accuracy")


if __name__ == "__main__":
    main()
