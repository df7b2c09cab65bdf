"""Benchmark 5: training the embedded source models (images per second, time to accuracy).

Trains each backbone's source model with its recipe into an empty, temporary
cache (the real cache is not touched) and prints the training throughput, the
time and the source-task test accuracy it reached. Takes 10-15 minutes per
backbone on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from common import machine, report  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", nargs="+", default=["resnet50", "vgg16"])
    args = parser.parse_args()

    from tlhelpers.source_models import RECIPES, get_source_model

    print(machine())
    for name in args.backbones:
        recipe = RECIPES[name]
        with tempfile.TemporaryDirectory() as cache:
            _, info = get_source_model(name, cache_dir=cache, verbose=0)
        images = recipe["epochs"] * info["train_examples"]
        report(f"{name} source model ({recipe['epochs']} epochs, {images} training images seen)", [
            ("training time", f"{info['train_seconds']:.0f} s"),
            ("training throughput: images/s", f"{images / info['train_seconds']:.1f}"),
            ("source-task test accuracy", f"{info['source_test_accuracy']:.3f}"),
        ])


if __name__ == "__main__":
    main()
