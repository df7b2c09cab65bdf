"""Benchmark 5: `optimizers.FusedAdam` against Keras's own Adam on the default training runs.

For ResNet50 fine-tuning and from scratch on Fashion-MNIST in clutter (48 px,
batch 16, 10 labels per class), each optimizer in turn, `ROUNDS` times: a
fresh compile, a first `fit` of `WARMUP` steps (tracing included) and a
timed `fit` of `STEPS` steps. Prints the median seconds per step, the first
fit's seconds, and what that makes of a 200-step study run.
"""

from __future__ import annotations

import argparse
import os
import statistics

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from common import machine, report, timed  # noqa: E402

ROUNDS, WARMUP, STEPS, RUN_STEPS = 3, 4, 40, 200


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--strategies", nargs="+", default=["fine_tune", "scratch"])
    args = parser.parse_args()

    from tlhelpers import datasets, models, runtime
    from tlhelpers.pipeline import make_dataset

    print(machine())
    pool, test = datasets.load_embedded_task("embedded")
    splits = datasets.make_splits(pool, test, 10, 20, seed=0, test_per_class=20)
    for strategy in args.strategies:
        built = models.build_strategy(strategy, args.backbone, "embedded" if strategy == "fine_tune" else "none",
                                      5, (48, 48))
        rate = models.strategy_learning_rate(strategy, args.backbone)
        train = make_dataset(splits.train, (48, 48), built.preprocess, 16, shuffle=True).repeat()
        per_step, first = {True: [], False: []}, {True: [], False: []}
        for _ in range(ROUNDS):
            for fused in (True, False):
                runtime.compile_model(built.model, rate, fused_adam=fused)
                _, seconds = timed(built.model.fit, train, steps_per_epoch=WARMUP, epochs=1, verbose=0)
                first[fused].append(seconds)
                _, seconds = timed(built.model.fit, train, steps_per_epoch=STEPS, epochs=1, verbose=0)
                per_step[fused].append(seconds / STEPS)
        step = {fused: statistics.median(values) for fused, values in per_step.items()}
        start = {fused: statistics.median(values) for fused, values in first.items()}
        run = {fused: start[fused] + step[fused] * (RUN_STEPS - WARMUP) for fused in (True, False)}
        report(f"{args.backbone} {strategy}: FusedAdam vs keras.optimizers.Adam ({ROUNDS} rounds, median)", [
            ("s per step, fused / Keras", f"{step[True]:.3f} / {step[False]:.3f} "
                                          f"(ratio {step[True] / step[False]:.2f})"),
            (f"first fit of {WARMUP} steps (tracing), fused / Keras", f"{start[True]:.1f} / {start[False]:.1f} s"),
            (f"a {RUN_STEPS}-step run's training, fused / Keras", f"{run[True]:.0f} / {run[False]:.0f} s "
                                                                  f"(ratio {run[True] / run[False]:.2f})"),
        ])


if __name__ == "__main__":
    main()
