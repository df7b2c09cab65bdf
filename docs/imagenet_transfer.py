"""Feature extraction on ImageNet MobileNetV2 against the same architecture with random weights.

The acceptance numbers of the offline ImageNet backbones: for each target, the
study's two feature-extraction arms (`study.run_study` with arms
`feature_extraction` on `weights="imagenet"` and its matched control
`random_features`, the same frozen architecture with random weights and the
same default head), every seed, one label budget, the study's defaults for
everything else. Differences are paired by seed (the same training images for
both arms) with a 95% t-interval over seeds (`study.comparison`).

The one deviation from `StudyConfig`'s defaults: validation images per class
are capped so that budget plus validation fit the smallest class of the pool
(clip art has 28 pool images in its smallest class). Validation only draws the
learning curves: training images are drawn first (`validation_last`) and test
accuracy is taken after the last step, so the cap moves no test number.

Run from the project root:
`TF_CPP_MIN_LOG_LEVEL=3 .venv/bin/python docs/imagenet_transfer.py`
writes `docs/imagenet-transfer.json` and `docs/imagenet-transfer.md`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from tlhelpers import datasets, model_pool, probes, study  # noqa: E402
from tlhelpers.curves import aggregate  # noqa: E402
from tlhelpers.features import cached_features, linear_probe  # noqa: E402
from tlhelpers.registry import get_backbone  # noqa: E402
from tlhelpers.report import results_payload  # noqa: E402
from tlhelpers.results import atomic_write_text  # noqa: E402
from tlhelpers.runtime import set_seed  # noqa: E402

BACKBONE = "mobilenet_v2"
ARM, CONTROL = "feature_extraction", study.MATCHED_CONTROL["feature_extraction"]
# The acceptance targets for the ImageNet arm's mean test accuracy (digits: none,
# the case where ImageNet is not expected to help).
TARGETS = {"embedded-clean": 0.88, "embedded": 0.65, "clipart": 0.65}
OUT = Path(__file__).with_name("imagenet-transfer")


def smallest_class(dataset):
    """Pool images in the smallest class of a study dataset."""
    if dataset in datasets.BUNDLED_DATASETS:
        pool, _ = datasets.BUNDLED_DATASETS[dataset]()
    else:
        pool, _ = datasets.load_embedded_task(dataset)
    return int(np.bincount(pool.labels).min())


def study_config(dataset, labels_per_class, seeds, image_size):
    """The study of one target: both feature-extraction arms, the defaults otherwise."""
    default = study.StudyConfig()
    validation = min(default.validation_per_class, smallest_class(dataset) - labels_per_class)
    return study.StudyConfig(backbones=(BACKBONE,), arms=(ARM, CONTROL), labels_per_class=(labels_per_class,),
                             seeds=tuple(seeds), image_size=image_size, dataset=dataset, weights="imagenet",
                             validation_per_class=validation)


def feature_diagnostics(config):
    """The frozen features each arm's head was trained on, probed without the head.

    Per arm and seed: the base as `train_run` gets it (`set_seed(seed)`, then
    `model_pool.frozen_base`: random weights are drawn anew from the seed), its
    cached features (`hit` says the run's own features were found again), their
    scale (mean absolute value on the test split) and `features.linear_probe`
    (standardised logistic regression), which does not depend on the scale.
    """
    spec, size = get_backbone(BACKBONE), (config.image_size,) * 2
    n, splits = config.labels_per_class[0], study.load_splits(config)
    found = {}
    for arm in config.arms:
        weights = config.weights if study.ARMS[arm][1] == "source" else study.ARMS[arm][1]
        for seed in config.seeds:
            task = splits[n, seed]
            set_seed(seed)
            base, fingerprint = model_pool.frozen_base(BACKBONE, weights, size)
            (train, hit), (test, _) = (cached_features(base, data, size, spec.preprocess, fingerprint=fingerprint)
                                       for data in (task.train, task.test))
            found.setdefault(arm, {})[str(seed)] = {
                "probe_accuracy": linear_probe(train, task.train.labels, test, task.test.labels),
                "mean_abs_feature": float(np.mean(np.abs(test))), "cache_hit": bool(hit)}
    a, b = ([found[arm][str(seed)]["probe_accuracy"] for seed in config.seeds] for arm in (ARM, CONTROL))
    mean, low, high = probes.paired_difference(a, b)
    return {"per_seed": found, "probe_difference": {"difference": mean, "ci_low": low, "ci_high": high,
                                                     "verdict": probes.interval_verdict(low, high)},
            "probe_summary": {ARM: aggregate(a), CONTROL: aggregate(b)}}


def run_target(config):
    """Run one target's study; returns its JSON entry."""
    n = config.labels_per_class[0]
    results, pixels = study.run_study(config)
    accuracy = {arm: {r.seed: r.test_accuracy for r in results if r.config["arm"] == arm} for arm in config.arms}
    row = study.comparison(results, pixels, BACKBONE, ARM, CONTROL, n)
    classes = len(results[0].config["classes"])
    return {
        "dataset": config.dataset,
        "config": dataclasses.asdict(config),
        "chance": 1.0 / classes,
        "test_accuracy": {arm: {str(seed): acc for seed, acc in values.items()} for arm, values in accuracy.items()},
        "pixels": {str(seed): pixels[n, seed] for seed in config.seeds},
        "summary": {arm: aggregate(list(values.values())) for arm, values in accuracy.items()},
        "pixels_summary": aggregate([pixels[n, seed] for seed in config.seeds]),
        "paired_difference": row,
        "pixels_difference": study.comparison(results, pixels, BACKBONE, ARM, "pixels", n),
        "features": feature_diagnostics(config),
        "runs": results_payload(results, dataclasses.asdict(config))["runs"],
    }


def reached(entry):
    """Whether the issue's target holds: the mean at or above it and the paired interval above zero."""
    target = TARGETS.get(entry["dataset"])
    if target is None:
        return None
    return entry["summary"][ARM]["mean"] >= target and entry["paired_difference"]["verdict"] == "higher"


def _difference(row):
    return f"{row['difference']:+.3f} ({row['ci_low']:+.3f} to {row['ci_high']:+.3f}), {row['verdict']}"


def _mean_pm(summary):
    return f"{summary['mean']:.3f} ± {summary['ci_high'] - summary['mean']:.3f}"


def markdown(entries, command, machine, wall_time_s):
    """The report: one table row per target, the command, machine, wall time and a generated reading."""
    lines = ["# ImageNet MobileNetV2 against random weights: feature extraction",
             "",
             f"Generated by `docs/imagenet_transfer.py`. Backbone `{BACKBONE}`, arms `{ARM}` "
             f"(`weights=\"imagenet\"`) and `{CONTROL}` (the same frozen architecture with random weights, "
             "the same default head), through `tlhelpers.study.run_study`; every other setting is "
             "`StudyConfig`'s default except validation images per class (capped to fit the smallest "
             "class; validation draws the curves only). Means over seeds with 95% t half-intervals; "
             "the difference is paired by seed (same training images).",
             "",
             "| target | labels/class | seeds | ImageNet | random weights | paired difference "
             "(95% interval) | verdict | issue target | reached | pixels | ImageNet - pixels (95% interval) |",
             "|---|---:|---:|---:|---:|---|---|---:|---|---:|---|"]
    for entry in entries:
        row, summary = entry["paired_difference"], entry["summary"]
        target = TARGETS.get(entry["dataset"])
        status = reached(entry)
        lines.append(
            f"| {study.DATASET_TITLES.get(entry['dataset'], entry['dataset'])} (`{entry['dataset']}`) "
            f"| {row['labels_per_class']} | {len(entry['config']['seeds'])} | {_mean_pm(summary[ARM])} "
            f"| {_mean_pm(summary[CONTROL])} "
            f"| {row['difference']:+.3f} ({row['ci_low']:+.3f} to {row['ci_high']:+.3f}) | {row['verdict']} "
            f"| {'-' if target is None else f'>= {target:.2f}'} "
            f"| {'-' if status is None else ('yes' if status else 'no')} "
            f"| {_mean_pm(entry['pixels_summary'])} | {_difference(entry['pixels_difference'])} |")
    lines += ["", "Per-seed test accuracy (ImageNet / random weights):", ""]
    for entry in entries:
        pairs = ", ".join(f"seed {seed}: {entry['test_accuracy'][ARM][seed]:.3f} / "
                          f"{entry['test_accuracy'][CONTROL][seed]:.3f}" for seed in entry["test_accuracy"][ARM])
        lines.append(f"- `{entry['dataset']}` (chance {entry['chance']:.3f}; validation "
                     f"{entry['config']['validation_per_class']}/class, {entry['config']['steps']} steps): {pairs}")
    lines += ["", "Diagnostic: the same frozen features (each run's own, found again in the feature cache), "
              "probed by `features.linear_probe` (standardised logistic regression, so the features' scale "
              "does not matter), and their scale (mean absolute feature on the test split):", "",
              "| target | ImageNet probe | random-weights probe | paired difference (95% interval) | verdict "
              "| mean abs feature, ImageNet | mean abs feature, random |",
              "|---|---:|---:|---|---|---:|---:|"]
    for entry in entries:
        diag, scale = entry["features"], {}
        for arm in (ARM, CONTROL):
            scale[arm] = np.mean([seed["mean_abs_feature"] for seed in diag["per_seed"][arm].values()])
        row = diag["probe_difference"]
        lines.append(f"| `{entry['dataset']}` | {_mean_pm(diag['probe_summary'][ARM])} "
                     f"| {_mean_pm(diag['probe_summary'][CONTROL])} "
                     f"| {row['difference']:+.3f} ({row['ci_low']:+.3f} to {row['ci_high']:+.3f}) | {row['verdict']} "
                     f"| {scale[ARM]:.3g} | {scale[CONTROL]:.3g} |")
    lines += ["", "## Reading", "", reading(entries), "",
              "## How it was made", "",
              f"- command: `{command}`",
              f"- machine: {machine}",
              f"- wall time: {wall_time_s / 60:.1f} min ({wall_time_s:.0f} s), every target in one process; "
              f"the machine was shared (load average {os.getloadavg()[0]:.1f} at the end)", ""]
    return "\n".join(lines)


def reading(entries):
    """One paragraph from the numbers: each target's paired sentence and whether its target holds."""
    text = []
    for entry in entries:
        title = study.DATASET_TITLES.get(entry["dataset"], entry["dataset"])
        sentence = study.sentence(entry["paired_difference"]).replace("feature extraction", "ImageNet feature "
                                                                      "extraction", 1)
        text.append(f"On {title}: {sentence}")
        target, status = TARGETS.get(entry["dataset"]), reached(entry)
        if status is not None:
            mean, low, high = (entry["summary"][ARM][key] for key in ("mean", "ci_low", "ci_high"))
            text.append(f"The issue's target ({target:.2f} mean, and above the control) is "
                        f"{'reached' if status else 'not reached'} (ImageNet mean {mean:.3f}, 95% interval "
                        f"{low:.3f} to {high:.3f}{', which straddles the target' if low < target <= high else ''}).")
        text.append(f"Against raw pixels (logistic regression on the same training images): "
                    f"ImageNet - pixels {_difference(entry['pixels_difference'])}.")
        low = [f"{arm} seed {seed}" for arm in (ARM, CONTROL) for seed, acc in entry["test_accuracy"][arm].items()
               if acc <= entry["chance"] + 0.05]
        if low:
            text.append(f"Runs at or within 0.05 above chance ({entry['chance']:.2f}): {', '.join(low)}.")
        diag = entry["features"]
        scale = max(seed["mean_abs_feature"] for seed in diag["per_seed"][CONTROL].values())
        if scale < 1e-6:
            probe = diag["probe_summary"][CONTROL]["mean"]
            text.append(f"The random-weights features are tiny (mean absolute value at most {scale:.1g}), so "
                        f"the default head barely moves its logits from its biases; a standardised linear probe of "
                        f"the same features reaches {probe:.3f}, and ImageNet's probe difference is "
                        f"{diag['probe_difference']['difference']:+.3f} "
                        f"({diag['probe_difference']['ci_low']:+.3f} to {diag['probe_difference']['ci_high']:+.3f}, "
                        f"{diag['probe_difference']['verdict']}).")
    return " ".join(text)


def machine():
    """`lscpu`'s model name and the core count."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        model = next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        model = platform.processor() or "unknown CPU"
    return f"{model}, {os.cpu_count()} cores, no GPU"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--labels-per-class", type=int, default=10)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--datasets", nargs="+", default=["embedded-clean", "embedded", "clipart"],
                        choices=study.STUDY_DATASETS)
    parser.add_argument("--out", type=Path, default=OUT,
                        help="path stem: writes STEM.json and STEM.md (default docs/imagenet-transfer)")
    args = parser.parse_args(argv)
    command = "TF_CPP_MIN_LOG_LEVEL=3 .venv/bin/python " + shlex.join(["docs/imagenet_transfer.py", *sys.argv[1:]])
    started = time.perf_counter()
    entries = []
    for dataset in args.datasets:
        config = study_config(dataset, args.labels_per_class, args.seeds, args.image_size)
        print(f"== {dataset}: {config.validation_per_class} validation/class", flush=True)
        entries.append(run_target(config))
        row = entries[-1]["paired_difference"]
        print(f"   ImageNet {row['arm_mean']:.3f}, random {row['control_mean']:.3f}, difference "
              f"{row['difference']:+.3f} ({row['ci_low']:+.3f} to {row['ci_high']:+.3f}): {row['verdict']}",
              flush=True)
        wall = time.perf_counter() - started
        payload = {"command": command, "machine": machine(), "wall_time_s": round(wall, 1),
                   "backbone": BACKBONE, "arms": [ARM, CONTROL], "targets": TARGETS, "datasets": entries}
        # Written after every target, so that an interrupted run keeps what it measured.
        atomic_write_text(args.out.with_suffix(".json"), json.dumps(payload, indent=2))
        atomic_write_text(args.out.with_suffix(".md"), markdown(entries, command, payload["machine"], wall))
    return 0


if __name__ == "__main__":
    sys.exit(main())
