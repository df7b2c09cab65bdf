"""Benchmark 2: feature extraction through the data pipeline vs predict on tensors in memory.

Both run the same frozen base over the same images; the raw side gets them
already resized and preprocessed, so the ratio is the pipeline's overhead.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from common import machine, report, timed  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", nargs="+", default=["resnet50", "vgg16"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[32, 224])
    parser.add_argument("--images", type=int, default=None,
                        help="images per measurement (default: 1000 at 32 px, 128 at 224 px)")
    parser.add_argument("--repeats", type=int, default=5,
                        help="paired timed passes of the two (default: %(default)s)")
    args = parser.parse_args()

    import numpy as np

    from tlhelpers import datasets
    from tlhelpers.backbones import build_base, get_backbone
    from tlhelpers.features import extract_features
    from tlhelpers.pipeline import to_model_input

    print(machine())
    _, test = datasets.load_embedded()
    for name in args.backbones:
        spec = get_backbone(name)
        for size in args.sizes:
            count = args.images or (1000 if size <= 64 else 128)
            data = test.subset(np.arange(count))
            base = build_base(name, None, size)
            ready = to_model_input(data.images, (size, size), spec.preprocess).numpy()
            measure = {
                "raw": lambda: base.predict(ready, batch_size=128, verbose=0),
                "piped": lambda: extract_features(base, data, (size, size), spec.preprocess),
            }
            for run in measure.values():
                run()  # A first pass traces and warms caches.
            # This machine's speed moves by tens of percent from one minute to the next:
            # each repeat times the two back to back (in alternating order) and the
            # ratio reported is the median of the repeats' ratios.
            ratios, seconds = [], {kind: float("inf") for kind in measure}
            for repeat in range(args.repeats):
                pair = {}
                for kind in (("raw", "piped") if repeat % 2 == 0 else ("piped", "raw")):
                    pair[kind] = timed(measure[kind])[1]
                    seconds[kind] = min(seconds[kind], pair[kind])
                ratios.append(pair["raw"] / pair["piped"])
            raw, piped = seconds["raw"], seconds["piped"]
            report(f"{name} at {size} px, {count} images", [
                ("predict on tensors in memory: images/s", f"{count / raw:.1f}"),
                ("project pipeline (uint8 -> resize -> preprocess): images/s", f"{count / piped:.1f}"),
                ("pipeline / raw throughput (median of paired repeats)", f"{np.median(ratios):.0%}"),
                ("  range over the repeats", f"{min(ratios):.0%}-{max(ratios):.0%}"),
            ], target="at least 90%")


if __name__ == "__main__":
    main()
