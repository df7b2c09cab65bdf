"""Benchmark 5: the source models at first use: loading the shipped ones, training the clean ones.

First the time `build_base(backbone, "embedded", 48)` takes with the shipped
source model (md5 check, float16 file, building the architecture): what every
user pays, nothing trained. Then, unless `--shipped-only`, it trains each
backbone's clean 32-px source model (`--source-task clean`, trained on first
use) with its recipe into an empty, temporary cache (the real cache is not
touched) and prints the training throughput, the time and the source-task
test accuracy it reached: 10-15 minutes per backbone on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from common import machine, report, timed  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", nargs="+", default=["resnet50", "vgg16"])
    parser.add_argument("--shipped-only", action="store_true", help="only time loading the shipped models")
    args = parser.parse_args()

    from tlhelpers.backbones import build_base
    from tlhelpers.source_models import RECIPES, get_source_model

    print(machine())
    for name in args.backbones:
        timed(build_base, name, "embedded", 48)  # the first build in a process also loads Keras's code
        _, seconds = timed(build_base, name, "embedded", 48)
        report(f"{name} shipped source model (data/source_models/)", [
            ("build_base(..., 'embedded', 48), md5 check included", f"{seconds:.1f} s"),
        ])
    for name in [] if args.shipped_only else args.backbones:
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
