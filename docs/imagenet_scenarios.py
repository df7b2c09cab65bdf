"""The genuine ImageNet MobileNetV2 under the budget study's protocol on the other targets, and the
cluttered garments at 160 px.

1. Clip art, the clean garments and the digits: feature extraction against random features,
   fine-tuning against the same network from scratch, 10 labels per class, 5 seeds, every run under
   the ImageNet budget study's protocol and image size (128 px), each arm with the learning rate that
   study chose on the cluttered garments' validation split (`budget_study.scenario_runs`; no rate is
   chosen on these targets). Runs are kept in `docs/imagenet-scenarios/runs/<target>/`, so a rerun
   continues where an interrupted one stopped. Report: `docs/imagenet-scenarios/summary.md`. The
   digits are the course's case where ImageNet features do not beat raw pixels (notebooks 5 and 8):
   whether fine-tuning falls below the same network from scratch there is negative transfer in its
   usual sense.
2. Two changes to fine-tuning's recipe on the cluttered garments, clip art and the clean garments:
   the head at ten times the base's learning rate, and random flips and shifts
   (`budget_study.RECIPES`), the same 5 seeds, kept beside the runs above (the cluttered garments' in
   `docs/imagenet-scenarios/runs/embedded/`).
3. The cluttered garments at 160 px: feature extraction and random features, the whole budget study
   (its own learning-rate selection, 5 budgets, 5 seeds) at a larger input side. Store and report:
   `docs/budget-study-imagenet-160px/`.

Usage: `.venv/bin/python docs/imagenet_scenarios.py [--report-only]`
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import time
from pathlib import Path

from tlhelpers import budget_study, curves
from tlhelpers.plots import backbone_name
from tlhelpers.results import atomic_write_text
from tlhelpers.study import ARM_NAMES, DATASET_TITLES

from imagenet_transfer import machine  # docs/imagenet_transfer.py, beside this script

HERE = Path(__file__).resolve().parent
FOLDER = HERE / "imagenet-scenarios"
TARGETS = ("clipart", "embedded-clean", "digits")
ARMS = ("feature_extraction", "random_features", "fine_tune", "scratch")
SEEDS = (0, 1, 2, 3, 4)
BUDGET = 10
BACKBONE = "mobilenet_v2"
PAIRS = [((arm, BACKBONE), (control, BACKBONE)) for arm, control in
         (("fine_tune", "scratch"), ("fine_tune", "feature_extraction"), ("feature_extraction", "random_features"))]
STUDY = budget_study.BUDGET_STUDIES["imagenet"]
RECIPE_TARGETS = (STUDY.dataset, "clipart", "embedded-clean")
LARGER = dataclasses.replace(STUDY, image_size=160, arms=("feature_extraction", "random_features"))
LARGER_FOLDER = budget_study.STORE_FOLDER.with_name("budget-study-imagenet-160px")


def scenario_groups(target, train=True):
    """`{(arm, backbone, budget): [RunResult in seed order]}` of one target (the cluttered garments: the
    study's own runs). `train=False` reads only what is stored."""
    if target == STUDY.dataset:
        return budget_study.stored_runs(STUDY, budget_study.study_folder(STUDY.weights) / "runs")[0]
    found = budget_study.scenario_runs(STUDY, target, ARMS, BUDGET, SEEDS, verbose=int(train),
                                       folder=FOLDER / "runs" / target, train=train)
    return {(arm, backbone, BUDGET): runs for (arm, backbone), runs in found.items() if runs}


def recipe_rows(target, train=True):
    """Markdown rows of plain fine-tuning and each recipe on `target`, and their paired differences
    (Holm-corrected over the target's comparisons). `train=False` reads only what is stored."""
    groups = budget_study.recipe_groups(STUDY, target, SEEDS, FOLDER / "runs" / target, BUDGET, train)
    rows = [run_row(target, name, groups[name, BACKBONE, BUDGET]) for name in ("fine_tune", *budget_study.RECIPES)
            if (name, BACKBONE, BUDGET) in groups]
    return rows, budget_study.metric_comparisons(groups, budget_study.recipe_pairs(BACKBONE), BUDGET,
                                                 metrics=("test_accuracy",))


def interval(runs):
    """Mean test accuracy of `runs` with its 95% interval over seeds, as text (one seed has none)."""
    summary = curves.aggregate([r.test_accuracy for r in runs])
    if len(runs) < 2:
        return f"{summary['mean']:.3f} (one seed: no interval)"
    return curves.interval_text(summary["mean"], summary["ci_low"], summary["ci_high"])


def run_row(target, name, runs, rate=False, backbone=None):
    """A Markdown row of one arm's runs: the target (and `backbone`, when given), mean test accuracy with
    its interval, the seeds, the learning rate (with `rate`), the stopping steps and each seed's accuracy."""
    steps = [r.config["stopped_step"] for r in runs]
    used = f"{runs[0].config['learning_rate_used']:g} | " if rate else ""
    model = f"{backbone_name(backbone)} | " if backbone else ""
    return (f"| {DATASET_TITLES[target]} | {model}{ARM_NAMES[name]} | {interval(runs)} | {len(runs)} | {used}"
            f"{min(steps)} to {max(steps)} | " + ", ".join(f"{r.test_accuracy:.3f}" for r in runs) + " |")


def arm_rows(target, groups):
    """Markdown rows: each arm's mean test accuracy with its interval, the seeds, rate and stopping steps."""
    return [run_row(target, arm, groups[arm, BACKBONE, BUDGET], rate=True) for arm in ARMS
            if groups.get((arm, BACKBONE, BUDGET))]


def difference_row(target, row, backbone=False):
    """A Markdown row of one Holm-corrected paired difference (`budget_study.metric_comparisons`), with the
    row's backbone in its own column when `backbone`."""
    model = f"{backbone_name(row['backbone'])} | " if backbone else ""
    return (f"| {DATASET_TITLES[target]} | {model}{ARM_NAMES[row['arm']]} - {ARM_NAMES[row['control']]} | "
            f"{curves.interval_text(row['difference'], row['ci_low'], row['ci_high'], signed=True)} | "
            f"{row['p_holm']:.3g} | {row['verdict']} |")


def summary(elapsed=None):
    """The text of `summary.md`, made from the stores (nothing is trained); `elapsed`: the last call's
    wall time in seconds."""
    lines = ["# The genuine ImageNet MobileNetV2 on clip art, the clean garments and the digits, every arm "
             "trained by the study's rule", "",
             f"Generated by `docs/imagenet_scenarios.py`. MobileNetV2 with its ImageNet weights at "
             f"{STUDY.image_size} px, {BUDGET} labels per class, seeds {list(SEEDS)}. Every run follows the "
             "ImageNet budget study's protocol (early stopping on validation accuracy, best weights "
             "restored, precise BatchNormalization statistics). Each arm uses the learning rate the study "
             "chose on the cluttered garments' validation split; none was chosen on these targets. Clip art "
             "validates on 18 images per class (its smallest class has 28), the clean garments and the "
             f"digits (10 classes) on {STUDY.validation_per_class}. The cluttered garments' rows are the "
             "study's own runs (`docs/budget-study-imagenet/`).", "",
             "| target | arm | test accuracy (95% interval) | seeds | learning rate | stopped at step | per seed |",
             "|---|---|---|---:|---:|---|---|"]
    comparisons = []
    for target in (STUDY.dataset, *TARGETS):
        groups = scenario_groups(target, train=False)
        lines += arm_rows(target, groups)
        comparisons += [(target, row) for row in budget_study.metric_comparisons(groups, PAIRS, BUDGET,
                                                                                 metrics=("test_accuracy",))]
    lines += ["", "Paired differences of test accuracy (same training images per seed), Holm-corrected over "
              "the three comparisons of each target:", "",
              "| target | arm - control | difference (95% interval) | p (Holm) | verdict |", "|---|---|---|---:|---|"]
    lines += [difference_row(target, r) for target, r in comparisons]
    rows, differences = [], []
    for target in RECIPE_TARGETS:
        found, compared = recipe_rows(target, train=False)
        rows += found
        differences += [difference_row(target, r) for r in compared]
    lines += ["", "## Two changes to fine-tuning's recipe", "",
              "Fine-tuning as above (base at the study's 1e-4, stages 4 and 5 and the head trained) against the "
              "same runs with the head at ten times that rate (1e-3, the rate the study chose for a head on "
              "frozen features) and against the same runs with random horizontal flips and shifts of up to 10% "
              "(`budget_study.RECIPES`); the same seeds, training images and protocol. The cluttered garments' "
              "plain fine-tuning rows are the study's runs.", "",
              "| target | recipe | test accuracy (95% interval) | seeds | stopped at step | per seed |",
              "|---|---|---|---:|---|---|", *rows, "",
              "Paired differences of test accuracy with plain fine-tuning, Holm-corrected over each target's "
              "two:", "",
              "| target | recipe - control | difference (95% interval) | p (Holm) | verdict |",
              "|---|---|---|---:|---|", *differences]
    larger = budget_study.stored_runs(LARGER, LARGER_FOLDER / "runs")[0]
    lines += ["", f"## The cluttered garments at {LARGER.image_size} px", "",
              f"Feature extraction and random features at {LARGER.image_size} px, the whole budget study "
              "(learning rates chosen on validation with the selection seed, every budget, every seed): "
              "`docs/budget-study-imagenet-160px/summary.md`. At 10 labels per class:", ""]
    for arm in LARGER.arms:
        runs = larger.get((arm, BACKBONE, BUDGET), [])
        if runs:
            lines.append(f"- {ARM_NAMES[arm]}: {interval(runs)}, {len(runs)} seeds, rate "
                         f"{runs[0].config['learning_rate_used']:g}")
    lines += ["", "## How it was made", "",
              "- command: `TF_CPP_MIN_LOG_LEVEL=3 .venv/bin/python docs/imagenet_scenarios.py`",
              f"- machine: {machine()}, Python {platform.python_version()}"]
    lines += [f"- wall time of the last call: {elapsed / 60:.0f} min" if elapsed else "- report only"]
    return "\n".join(lines) + "\n"


def report(elapsed=None):
    """Write `summary.md` (`summary`) and return its path."""
    atomic_write_text(FOLDER / "summary.md", summary(elapsed))
    return FOLDER / "summary.md"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--report-only", action="store_true", help="train nothing; write the reports")
    args = parser.parse_args()
    started = time.monotonic()
    if not args.report_only:
        print(budget_study.build(LARGER, LARGER_FOLDER / "runs"), flush=True)
        for target in TARGETS:
            scenario_groups(target)
        for target in RECIPE_TARGETS:
            recipe_rows(target)
    budget_study.write_report(LARGER, LARGER_FOLDER / "runs")
    print(report(None if args.report_only else time.monotonic() - started))


if __name__ == "__main__":
    main()
