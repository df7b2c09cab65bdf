"""The offline design study behind `docs/offline-design.md`: which offline task shows transfer.

Part 1 (`--part candidates`) screens candidate tasks (clean images, and clutter
of several canvas sizes and densities) with a small-CNN source, which trains
in a minute or two: for each, a linear probe of source features, of random
features of the same CNN and of raw pixels, at 2-50 labels per class over 3
seeds. Part 2 (`--part shipped`) probes the shipped ResNet50 and VGG16 source
models stage by stage against random weights of the same architecture and
pixels, on the chosen task.

Run from the project root: `.venv/bin/python docs/offline_design.py --part all`.
Results go to `docs/offline-design-results.json` (one entry per table), and
their Markdown tables to `docs/offline-design-tables.md`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from tlhelpers import datasets, probes  # noqa: E402
from tlhelpers.clutter import ClutterSpec  # noqa: E402

RESULTS = Path(__file__).with_name("offline-design-results.json")
TABLES = Path(__file__).with_name("offline-design-tables.md")
BUDGETS = (2, 5, 10, 20, 50)
SEEDS = (0, 1, 2)
# Per target class: the probe draws its budgets from this many pool images and
# scores on this many test images (1,000 in all).
PROBE_POOL_PER_CLASS, PROBE_TEST_PER_CLASS = 200, 200
CANDIDATES = {
    "clean 28px": None,
    "clutter 40px, 4 fragments": ClutterSpec(canvas_size=40, fragments=4),
    "clutter 48px, 6 fragments": ClutterSpec(canvas_size=48, fragments=6),
    "clutter 48px, 12 fragments": ClutterSpec(canvas_size=48, fragments=12),
}


def probe_task(clutter):
    """The target pool and test images the probe uses: `(pool, test)` subsets of the target task."""
    pool, test = datasets.load_embedded(datasets.DEFAULT_TARGET_CLASSES, clutter=clutter)
    return (datasets.subsample_per_class(pool, PROBE_POOL_PER_CLASS),
            datasets.subsample_per_class(test, PROBE_TEST_PER_CLASS))


def small_cnn_features(clutter, seed, train):
    """GAP features of the course's small CNN on the probe's target images: the CNN trained
    5 epochs on the source task (`train`), or its random initialisation.

    Returns:
        `((pool_features, test_features), seconds, source_test_accuracy)`.
    """
    import keras

    from tlhelpers.models import build_small_cnn
    from tlhelpers.pipeline import make_dataset
    from tlhelpers.training import set_seed

    side = clutter.canvas_size if clutter else 28
    size = (side, side)

    def identity(x):  # the small CNN rescales its inputs itself
        return x

    set_seed(seed)
    model, _ = build_small_cnn(size, 5, seed=seed)
    seconds, accuracy = 0.0, None
    if train:
        pool, test = datasets.load_embedded(datasets.DEFAULT_SOURCE_CLASSES, clutter=clutter)
        model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
        started = time.perf_counter()
        model.fit(make_dataset(pool, size, identity, 128, shuffle=True, seed=seed), epochs=5, verbose=0)
        seconds = time.perf_counter() - started
        accuracy = float(model.evaluate(make_dataset(test, size, identity, 256), verbose=0)[1])
    feature_map = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)][-1].output
    features = keras.Model(model.inputs, keras.layers.GlobalAveragePooling2D()(feature_map))
    return ([features.predict(make_dataset(d, size, identity, 256), verbose=0) for d in probe_task(clutter)],
            seconds, accuracy)


def part_candidates(results):
    for name, clutter in CANDIDATES.items():
        (source_train, source_test), seconds, accuracy = small_cnn_features(clutter, 0, True)
        (random_train, random_test), _, _ = small_cnn_features(clutter, 1, False)
        pool, test = probe_task(clutter)
        y, yt = pool.labels, test.labels
        arms = {"pixels": (probes.pixel_features(pool), probes.pixel_features(test)),
                "random small CNN": (random_train, random_test),
                "source small CNN": (source_train, source_test)}
        rows = probes.probe_arms(arms, y, yt, BUDGETS, SEEDS)
        results[f"candidate: {name}"] = {
            "clutter": clutter.to_dict() if clutter else None,
            "source": {"model": "small_cnn", "epochs": 5, "train_seconds": round(seconds, 1),
                       "source_test_accuracy": round(accuracy, 4)},
            "rows": [vars(row) for row in rows]}
        _report(f"candidate: {name}", results)


def probe_targets():
    """The targets the shipped sources are probed on: `{name: (pool, test)}` (probe-sized subsets)."""
    from tlhelpers.shipped_sources import SOURCE_CLUTTER

    digits_pool, digits_test = datasets.load_digits()
    return {"clutter": probe_task(SOURCE_CLUTTER), "clean": probe_task(None),
            "digits": (datasets.subsample_per_class(digits_pool, PROBE_POOL_PER_CLASS),
                       datasets.subsample_per_class(digits_test, PROBE_TEST_PER_CLASS))}


def part_shipped(results):
    from tlhelpers.backbones import get_backbone
    from tlhelpers.shipped_sources import SOURCE_IMAGE_SIZE, build_source_base

    size = (SOURCE_IMAGE_SIZE, SOURCE_IMAGE_SIZE)
    for backbone in ("resnet50", "vgg16"):
        spec = get_backbone(backbone)
        bases = {"random": spec.builder(include_top=False, weights=None, input_shape=(*size, 3), pooling=None),
                 "source": build_source_base(backbone, SOURCE_IMAGE_SIZE, pooling=None)}
        for target, (pool, test) in probe_targets().items():
            # Every target is shown at the canvas size (clean and digit images are resized).
            arms = {"pixels": (probes.pixel_features(pool), probes.pixel_features(test))}
            for label, base in bases.items():
                train_features, test_features = (
                    probes.stage_features(base, spec.stage_ends, d, size, spec.preprocess, stages=(2, 3, 4, 5))
                    for d in (pool, test))
                for stage in (2, 3, 4, 5):
                    arms[f"{label} stage {stage}"] = (train_features[stage], test_features[stage])
            rows = probes.probe_arms(arms, pool.labels, test.labels, BUDGETS, SEEDS)
            key = f"shipped: {backbone} on the {target} target"
            results[key] = {"rows": [vars(row) for row in rows]}
            _report(key, results)


def tables(key, entry):
    """The Markdown of one study entry: its probe table and the paired differences."""
    rows = [probes.ProbeRow(**row) for row in entry["rows"]]
    lines = [f"### {key}", ""]
    if entry.get("source"):
        source = entry["source"]
        lines += [f"Small-CNN source: {source['epochs']} epochs, test accuracy "
                  f"{source['source_test_accuracy']:.3f} on its own task.", ""]
    lines += [probes.probe_table(rows), ""]
    pairs = ([("source small CNN", "random small CNN"), ("source small CNN", "pixels")] if entry.get("source")
             else [(f"source stage {k}", f"random stage {k}") for k in (2, 3, 4, 5)] + [("source stage 5", "pixels")])
    lines += ["Paired differences over the seeds (mean, 95% interval):", "",
              "| difference | " + " | ".join(f"{b}/class" for b in BUDGETS) + " |",
              "|---|" + "---:|" * len(BUDGETS)]
    cell = {(row.arm, row.labels_per_class): row.accuracies for row in rows}
    for a, b in pairs:
        parts = []
        for budget in BUDGETS:
            mean, low, high = probes.paired_difference(cell[a, budget], cell[b, budget])
            parts.append(f"{mean:+.3f} ({low:+.3f} to {high:+.3f})")
        lines.append(f"| {a} - {b} | " + " | ".join(parts) + " |")
    return "\n".join(lines) + "\n"


def _report(key, results):
    print("\n" + tables(key, results[key]), flush=True)
    RESULTS.write_text(json.dumps(results, indent=1))
    TABLES.write_text("# Offline design study: the tables\n\nWritten by `docs/offline_design.py` from "
                      f"`{RESULTS.name}`; read with [offline-design.md](offline-design.md).\n\n"
                      + "\n".join(tables(k, v) for k, v in results.items()))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("candidates", "shipped", "all", "tables"), default="all",
                        help="tables: rewrite the tables from the stored results without running anything")
    args = parser.parse_args(argv)
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    if args.part == "tables":
        _report(next(iter(results)), results)
    if args.part in ("candidates", "all"):
        part_candidates(results)
    if args.part in ("shipped", "all"):
        part_shipped(results)


if __name__ == "__main__":
    main()
