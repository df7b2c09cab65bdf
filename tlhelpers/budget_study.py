"""Every arm trained by one protocol at five label budgets: the study that measures labels saved.

The arms and matched controls are those of `study` (feature extraction against
random features, fine-tuning against the same architecture from scratch, the
small CNN, pixels). What differs from `study` is how each arm is trained and
what is reported:

- every run follows `protocol.Protocol` (early stopping on validation with the
  best weights restored, full batches, precise BatchNormalization statistics),
  with a step cap no run should reach; runs stopped by the cap are flagged;
- each arm's learning rate is chosen once, on validation, from a small grid
  (`LEARNING_RATE_GRIDS`), with a seed whose runs are never reported
  (`SELECTION_SEED`) at `SELECTION_BUDGETS`;
- budgets 10, 25, 50, 100 and 250 labels per class, nested per seed, so that
  labels saved is read along each control's curve (`budgets.labels_saved`);
- on the cluttered garments the test split is the 300 images per class that
  the task's design (`docs/offline_design.py`) and the fixed-step study never
  looked at (`datasets.held_out_per_class`).

Runs are stored one by one in a `run_store.RunStore`, so the study is built in
pieces (`build(..., hours=2.5)`) and a rerun skips what is stored.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time

import numpy as np

from tlhelpers import datasets
from tlhelpers.protocol import Protocol
from tlhelpers.run_store import RunStore
from tlhelpers.study import ARMS, MATCHED_CONTROL, STUDY_DATASETS

# Adam learning rates tried per arm (per backbone for scratch: VGG16 has no BatchNormalization).
LEARNING_RATE_GRIDS = {
    "feature_extraction": (3e-4, 1e-3, 3e-3, 1e-2, 3e-2),
    "random_features": (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2),
    "fine_tune": (3e-5, 1e-4, 3e-4, 1e-3),
    "small_cnn": (3e-4, 1e-3, 3e-3, 1e-2),
    # MobileNetV2 from scratch chose 3e-3, the first grid's edge: extended by 1e-2, which it chose
    # too (best at 100 labels per class): extended by 3e-2, which it chose too: extended by 1e-1,
    # which it did not choose (3e-2 stays, inside the grid now). ResNet50 from scratch chose 3e-3, its
    # first grid's edge: extended by 1e-2, which it did not choose.
    "scratch": {"resnet50": (3e-4, 1e-3, 3e-3, 1e-2), "vgg16": (3e-5, 1e-4, 3e-4),
                "mobilenet_v2": (3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)},
}
# Learning rates are chosen on runs of this seed, which no table reports.
SELECTION_SEED = 1000
SELECTION_BUDGETS = (10, 100)
# The test images per class of the cluttered task that design choices were made on (the
# fixed-step study and `docs/offline_design.py` score on `subsample_per_class(test, 200)`).
DESIGN_TEST_PER_CLASS = 200
# The committed studies (`tlhelpers budget-study`): the report, and the store in its `runs/`.
STORE_FOLDER = datasets.DATA_DIR.parent / "docs" / "budget-study"


def study_folder(weights):
    """Where the committed study of a source lives."""
    return STORE_FOLDER if weights == "embedded" else STORE_FOLDER.with_name(f"budget-study-{weights}")


@dataclasses.dataclass(frozen=True)
class BudgetStudyConfig:
    """What the budget study runs.

    Attributes:
        backbones: Registry names with a source model for `weights`.
        arms: Keys of `study.ARMS`; the small CNN runs once (no backbone).
        labels_per_class: Label budgets, nested per seed.
        seeds: Reported seeds; each fixes the training images of every arm.
        dataset: The target task (`study.STUDY_DATASETS`).
        weights: The transfer arms' source: `"embedded"` or `"imagenet"`.
        image_size: Input side.
        validation_per_class: Validation images per class (early stopping and learning rates).
        protocol: The training rule; its `learning_rate` is left None (chosen per arm).
    """

    backbones: tuple = ("resnet50", "vgg16")
    arms: tuple = tuple(ARMS)
    labels_per_class: tuple = (10, 25, 50, 100, 250)
    seeds: tuple = (0, 1, 2, 3, 4)
    dataset: str = "embedded"
    weights: str = "embedded"
    image_size: int = 48
    validation_per_class: int = 50
    protocol: Protocol = Protocol()

    def __post_init__(self):
        unknown = sorted(set(self.arms) - set(ARMS))
        if unknown or not self.arms:
            raise ValueError(f"Received arms={list(self.arms)}. Expected any of: {', '.join(ARMS)}.")
        if self.dataset not in STUDY_DATASETS:
            raise ValueError(f"Received dataset={self.dataset!r}. Expected one of: {', '.join(STUDY_DATASETS)}.")
        if self.protocol.learning_rate is not None:
            raise ValueError(f"Received a protocol with learning_rate={self.protocol.learning_rate}. Expected "
                             "None: the study chooses each arm's rate on validation (LEARNING_RATE_GRIDS).")
        if sorted(set(self.labels_per_class)) != list(self.labels_per_class) or min(self.labels_per_class) < 1:
            raise ValueError(f"Received labels_per_class={list(self.labels_per_class)}. Expected increasing "
                             "integers >= 1.")


# The studies the command line builds: the shipped source models at 48 px, and genuine ImageNet
# MobileNetV2 on the same garments upsampled to 128 px (it needs its inputs near ImageNet's scale).
BUDGET_STUDIES = {"embedded": BudgetStudyConfig(),
                  "imagenet": BudgetStudyConfig(backbones=("mobilenet_v2",), weights="imagenet", image_size=128,
                                                arms=tuple(arm for arm in ARMS if arm != "small_cnn"))}


# A study that trains no small CNN of its own compares with the small CNN of this study, which ran on
# the same training, validation and test images (the small CNN has no source, so no weights differ).
SMALL_CNN_FROM = {"imagenet": "embedded"}


def borrowed_small_cnn(config):
    """`(groups, learning rates)` of the small CNN runs a study without its own takes from the study of
    `SMALL_CNN_FROM`, or `({}, {})`.

    Raises:
        ValueError: when the two studies do not share task, budgets, seeds and validation size.
    """
    if "small_cnn" in config.arms or config.weights not in SMALL_CNN_FROM:
        return {}, {}
    other = BUDGET_STUDIES[SMALL_CNN_FROM[config.weights]]
    shared = ("dataset", "labels_per_class", "seeds", "validation_per_class")
    differs = [name for name in shared if getattr(config, name) != getattr(other, name)]
    if differs:
        raise ValueError(f"Received a {config.weights} study whose {', '.join(differs)} differ from the "
                         f"{other.weights} study's. Expected the same images to compare with its small CNN; "
                         "add the small_cnn arm to this study instead.")
    groups, rates = stored_runs(dataclasses.replace(other, arms=("small_cnn",)), study_folder(other.weights) / "runs")
    return groups, rates


def learning_rate_grid(arm, backbone):
    """The learning rates tried for `arm` on `backbone` (scratch: the BatchNormalization networks' grid
    unless the backbone has its own)."""
    grid = LEARNING_RATE_GRIDS[arm]
    return grid.get(backbone, grid["resnet50"]) if isinstance(grid, dict) else grid


def arm_backbones(config, arm):
    """The backbones an arm runs with: the small CNN has its own architecture."""
    return ("small_cnn",) if arm == "small_cnn" else config.backbones


def source_fingerprint(config, arm, backbone):
    """What the transfer arm's weights are, so that a new source model never reuses stored runs."""
    if ARMS[arm][1] != "source":
        return None
    if config.weights == "embedded":
        from tlhelpers.shipped_sources import SHIPPED

        return {"embedded": SHIPPED[backbone][1]}
    from tlhelpers.registry import get_backbone

    spec = get_backbone(backbone)
    return {"imagenet": spec.imagenet_wheel.sha256 if spec.imagenet_wheel else spec.imagenet_md5}


def run_spec(config, arm, backbone, labels_per_class, seed, learning_rate):
    """Everything a run's result depends on: its store key."""
    return {"arm": arm, "backbone": backbone, "labels_per_class": int(labels_per_class), "seed": int(seed),
            "learning_rate": float(learning_rate), "dataset": config.dataset, "image_size": config.image_size,
            "validation_per_class": config.validation_per_class, "test": test_description(config),
            "source": source_fingerprint(config, arm, backbone),
            "protocol": {k: v for k, v in config.protocol.to_dict().items() if k != "learning_rate"}}


def test_description(config):
    if config.dataset == "embedded":
        return f"held out: all but the {DESIGN_TEST_PER_CLASS} per class used for design choices"
    return "whole test split"


def selection_specs(config):
    """The learning-rate selection runs: every grid value of every arm at `SELECTION_BUDGETS`."""
    budgets = [n for n in SELECTION_BUDGETS if n <= max(config.labels_per_class)] or [min(config.labels_per_class)]
    return [run_spec(config, arm, backbone, n, SELECTION_SEED, rate)
            for arm in config.arms for backbone in arm_backbones(config, arm)
            for rate in learning_rate_grid(arm, backbone) for n in budgets]


def selection_results(config, store):
    """`[(spec, RunResult or None)]` of every learning-rate selection run, in `selection_specs` order."""
    return [(spec, store.get(spec)) for spec in selection_specs(config)]


def choose_learning_rates(config, store, selection=None):
    """`{(arm, backbone): learning rate}` for every arm whose selection runs are all stored: the grid
    value with the highest best validation accuracy, averaged over the selection budgets (ties: the
    smaller rate). Arms still being selected are left out.

    `selection`: `selection_results(config, store)` when the caller already has it."""
    scores, incomplete = {}, set()
    for spec, result in selection if selection is not None else selection_results(config, store):
        key = (spec["arm"], spec["backbone"])
        if result is None:
            incomplete.add(key)
            continue
        best = max(result.history["val_accuracy"])
        scores.setdefault(key, {}).setdefault(spec["learning_rate"], []).append(best)
    return {key: min(rates, key=lambda rate: (-np.mean(rates[rate]), rate))
            for key, rates in scores.items() if key not in incomplete}


def main_specs(config, learning_rates):
    """The reported runs, cheapest arms first, then by budget and seed."""
    order = ("feature_extraction", "random_features", "small_cnn", "fine_tune", "scratch")
    arms = sorted(config.arms, key=order.index)
    return [run_spec(config, arm, backbone, n, seed, learning_rates[arm, backbone])
            for arm in arms for backbone in arm_backbones(config, arm) if (arm, backbone) in learning_rates
            for n in config.labels_per_class for seed in config.seeds]


@functools.lru_cache(maxsize=4)
def _task(dataset):
    """`(pool, test)` of a target task, loaded once per process (every run and every pixel probe of a
    study splits the same arrays; `make_splits` only indexes them)."""
    pool, test = (datasets.BUNDLED_DATASETS[dataset]() if dataset in datasets.BUNDLED_DATASETS
                  else datasets.load_embedded_task(dataset))
    if dataset == "embedded":
        test = datasets.held_out_per_class(test, DESIGN_TEST_PER_CLASS)
    return pool, test


def load_splits(config, labels_per_class, seed):
    """The `Splits` of one budget and seed (validation from the end of each class's pool)."""
    pool, test = _task(config.dataset)
    return datasets.make_splits(pool, test, labels_per_class, config.validation_per_class, seed=seed,
                                validation_last=True)


def train_spec(config, spec, verbose=0):
    """Train the run that `spec` describes under the study's protocol."""
    from tlhelpers.shipped_sources import SOURCE_CLUTTER
    from tlhelpers.training import train_run

    strategy, weights = ARMS[spec["arm"]]
    weights = config.weights if weights == "source" else weights
    splits = load_splits(config, spec["labels_per_class"], spec["seed"])
    protocol = dataclasses.replace(config.protocol, learning_rate=spec["learning_rate"])
    backbone = "resnet50" if spec["backbone"] == "small_cnn" else spec["backbone"]
    result = train_run(splits, strategy, backbone, weights, config.image_size, protocol=protocol,
                       seed=spec["seed"], verbose=verbose,
                       weights_options={"clutter": SOURCE_CLUTTER, "verbose": 0}, **spec.get("recipe", {}))
    result.config["arm"] = spec["arm"]
    if spec["arm"] == "random_features":
        result.weights = "random"
    return result


def train_fixed_steps(config, spec, steps, eval_every=20):
    """Train the run `spec` describes by the fixed-step rule instead of the study's protocol: the same
    images, seed and learning rate, `steps` gradient steps (rounded up to whole evaluation intervals),
    the last weights scored on test."""
    from tlhelpers.protocol import FixedSchedule

    schedule = FixedSchedule(math.ceil(steps / eval_every), eval_every=eval_every,
                             batch_size=config.protocol.batch_size)
    return train_spec(dataclasses.replace(config, protocol=schedule), spec)


def build(config, folder, hours=None, verbose=1, only=None):
    """Train every run of the study that `folder` does not hold yet: first the learning-rate
    selection runs, then the reported runs with the chosen rates.

    Args:
        config: A `BudgetStudyConfig`.
        folder: The `RunStore` folder (one JSON file per run).
        hours: Start no new run after this many hours (None: run everything); a
            rerun continues where this one stopped.
        verbose: 1 prints one line per run.
        only: Optional predicate on a spec: train only the runs it accepts (e.g. one arm).

    Returns:
        `{"trained": n, "stored": n, "pending": n}` after this call.
    """
    store = RunStore(folder)
    started = time.monotonic()
    trained = 0

    def pending(specs):
        return [spec for spec in specs if (only is None or only(spec)) and store.get(spec) is None]

    def run(specs, label):
        nonlocal trained
        todo = pending(specs)
        for index, spec in enumerate(todo, start=1):
            if hours is not None and time.monotonic() - started > hours * 3600:
                return False
            result = train_spec(config, spec)
            store.put(spec, result)
            trained += 1
            if verbose:
                print(f"[{label} {index}/{len(todo)}] {spec['arm']} {spec['backbone']} "
                      f"{spec['labels_per_class']}/class seed {spec['seed']} lr {spec['learning_rate']:g}: "
                      f"test {result.test_accuracy:.3f}, best step {result.config['best_step']}, stopped at "
                      f"{result.config['stopped_step']} ({result.config['stopped_by']}), "
                      f"{result.wall_time_s:.0f} s", flush=True)
        return True

    if run(selection_specs(config), "selection"):
        run(main_specs(config, choose_learning_rates(config, store)), "study")
    rates = choose_learning_rates(config, store)
    remaining = pending(selection_specs(config)) + pending(main_specs(config, rates))
    return {"trained": trained, "stored": len(store.items()), "pending": len(remaining)}


def stored_runs(config, folder, selection=None):
    """`({(arm, backbone, labels_per_class): [RunResult in seed order]}, learning rates)` of the reported
    runs stored so far (arms whose learning rate is chosen); `selection` as in `choose_learning_rates`."""
    store = RunStore(folder)
    rates = choose_learning_rates(config, store, selection)
    groups = {}
    for spec in main_specs(config, rates):
        result = store.get(spec)
        if result is not None:
            groups.setdefault((spec["arm"], spec["backbone"], spec["labels_per_class"]), []).append(result)
    return groups, rates


def accuracies(groups, arm, backbone, seeds):
    """`{budget: [test accuracy per seed]}` of one arm, only budgets where every seed is stored."""
    out = {}
    for (name, bb, n), runs in groups.items():
        if name == arm and bb == backbone and sorted(r.seed for r in runs) == sorted(seeds):
            out[n] = [r.test_accuracy for r in sorted(runs, key=lambda r: r.seed)]
    return dict(sorted(out.items()))


def controls_of(arm):
    """The controls labels saved is measured against for a transfer arm: its matched control and the
    small CNN."""
    return (MATCHED_CONTROL[arm], "small_cnn")


def pixel_accuracies(config):
    """`{budget: [test accuracy per seed]}` of logistic regression on raw pixels (the floor; seconds)."""
    from tlhelpers import probes
    from tlhelpers.features import linear_probe

    out = {}
    for n in config.labels_per_class:
        out[n] = []
        for seed in config.seeds:
            s = load_splits(config, n, seed)
            out[n].append(linear_probe(probes.pixel_features(s.train), s.train.labels,
                                       probes.pixel_features(s.test), s.test.labels))
    return out


def analyse(config, folder, pixels=None):
    """Everything the report states, computed from the stored runs (complete groups only).

    Returns:
        A dict: `learning_rates`, `table` (one row per arm, backbone and budget), `comparisons`
        (Holm-corrected family), `labels_saved` (per transfer arm and control) and `flags`
        (runs stopped by their cap, runs that predict one class).
    """
    from tlhelpers.budgets import comparison_family, labels_saved, protocol_metrics
    from tlhelpers.curves import aggregate

    selection_runs = selection_results(config, RunStore(folder))
    groups, rates = stored_runs(config, folder, selection_runs)
    borrowed, borrowed_rates = borrowed_small_cnn(config)
    groups, rates = {**groups, **borrowed}, {**rates, **borrowed_rates}
    table, flags = [], []
    for (arm, backbone, n), runs in sorted(groups.items(), key=lambda item: (item[0][1], item[0][0], item[0][2])):
        metrics = [protocol_metrics(r) for r in runs]
        stats = aggregate([r.test_accuracy for r in runs])
        table.append({"arm": arm, "backbone": backbone, "labels_per_class": n, "seeds": len(runs),
                      "test_accuracy": stats["mean"], "ci_low": stats["ci_low"], "ci_high": stats["ci_high"],
                      **{key: float(np.mean([m[key] for m in metrics]))
                         for key in ("start", "steps_to_90", "best_validation", "best_step")},
                      "largest_stop": max(m["stopped_step"] for m in metrics),
                      "stopped_by_cap": sum(m["stopped_by"] == "cap" for m in metrics)})
        flags += [{"arm": arm, "backbone": backbone, "labels_per_class": n, "seed": r.seed,
                   "problem": "stopped by its cap" if m["stopped_by"] == "cap" else "predicts one class"}
                  for r, m in zip(runs, metrics)
                  if m["stopped_by"] == "cap" or r.config.get("test_classes_predicted", 2) < 2]
    pairs, saved = [], []
    for backbone in config.backbones:
        for arm, control in MATCHED_CONTROL.items():
            if arm not in config.arms:
                continue
            arm_acc = accuracies(groups, arm, backbone, config.seeds)
            for other in controls_of(arm) + (("pixels",) if pixels else ()):
                other_acc = (pixels if other == "pixels" else
                             accuracies(groups, other, "small_cnn" if other == "small_cnn" else backbone,
                                        config.seeds))
                for n in sorted(set(arm_acc) & set(other_acc)):
                    pairs.append(({"backbone": backbone, "arm": arm, "control": other, "labels_per_class": n,
                                   "metric": "test_accuracy"}, arm_acc[n], other_acc[n]))
                if other != "pixels" and min(config.labels_per_class) in arm_acc and len(other_acc) >= 2:
                    found = labels_saved({min(arm_acc): arm_acc[min(arm_acc)]}, other_acc)
                    saved.append({"backbone": backbone, "arm": arm, "control": other,
                                  **dataclasses.asdict(found), "text": found.describe()})
    selection = [{"arm": spec["arm"], "backbone": spec["backbone"], "learning_rate": spec["learning_rate"],
                  "labels_per_class": spec["labels_per_class"], "best_validation": max(result.history["val_accuracy"]),
                  "stopped_by": result.config["stopped_by"]}
                 for spec, result in selection_runs if result is not None]
    return {"protocol": config.protocol.to_dict(), "protocol_text": config.protocol.describe(),
            "selection": selection, "small_cnn_from": SMALL_CNN_FROM.get(config.weights) if borrowed else None,
            "learning_rates": [{"arm": a, "backbone": b, "learning_rate": r,
                                "grid_edge": r in (min(learning_rate_grid(a, b)), max(learning_rate_grid(a, b)))}
                               for (a, b), r in (rates or {}).items()],
            "table": table, "comparisons": comparison_family(pairs) if pairs else [],
            "labels_saved": saved, "flags": flags}


def _interval(row, digits=3):
    from tlhelpers import curves

    return curves.interval_text(row["test_accuracy"], row["ci_low"], row["ci_high"], digits)


def _budget_table(table, budgets, seeds, suffix, cell):
    """Markdown rows: one per backbone and arm, one column per budget, `cell(row)` in each; a budget
    with fewer than `seeds` seeds stored says how many it has."""
    from tlhelpers.plots import backbone_name
    from tlhelpers.study import ARM_NAMES

    def text(row):
        partial = f" ({row['seeds']} of {seeds} seeds)" if row["seeds"] < seeds else ""
        return cell(row) + partial

    cells = {(r["backbone"], r["arm"], r["labels_per_class"]): r for r in table}
    lines = ["| backbone | arm | " + " | ".join(f"{n}{suffix}" for n in budgets) + " |",
             "|---|---|" + "---|" * len(budgets)]
    for backbone, arm in dict.fromkeys((r["backbone"], r["arm"]) for r in table):
        lines.append(f"| {backbone_name(backbone)} | {ARM_NAMES[arm]} | " + " | ".join(
            text(cells[backbone, arm, n]) if (backbone, arm, n) in cells else "not run yet" for n in budgets) + " |")
    return lines


def test_set_note(config):
    """What the intervals over seeds leave out: the sampling error of the one test set every run is
    scored on (its size read from the data)."""
    from tlhelpers.budgets import test_sampling_halfwidth

    test = _task(config.dataset)[1]
    images, classes = len(test), len(np.unique(test.labels))
    middle, high = (test_sampling_halfwidth(accuracy, images) for accuracy in (0.5, 0.8))
    return (f"Every run is scored on the same {images:,} test images ({images // classes} per class), so an "
            "interval over seeds says how much the seed moves a result on this test set; it leaves out the "
            f"test set's own sampling error: a binomial 95% half-width of ±{middle:.3f} for an accuracy near "
            f"0.5 (±{high:.3f} near 0.8). A paired difference is scored on the same images, so its sampling "
            "error is smaller when the two arms miss the same images; the runs store the classes they predict, "
            "not each prediction, so that error is not estimated here.")


def report_markdown(config, analysis):
    """The study's `summary.md`: protocol, learning rates, accuracy by budget, stopping, labels saved and
    the Holm-corrected comparisons."""
    from tlhelpers.plots import backbone_name
    from tlhelpers.study import ARM_NAMES

    budgets = list(config.labels_per_class)
    lines = ["# Every arm trained by one protocol, at five label budgets", "",
             f"Target: {config.dataset}; test: {test_description(config)}; seeds {list(config.seeds)}.", "",
             "## Protocol", "", analysis["protocol_text"], ""]
    if analysis.get("small_cnn_from"):
        other = BUDGET_STUDIES[analysis["small_cnn_from"]]
        lines += [f"The small CNN is the one of the {analysis['small_cnn_from']} study (trained at "
                  f"{other.image_size} px on the same training, validation and test images): it has no source.", ""]
    lines += ["## Learning rates chosen on validation", "",
              "A small grid of rates per arm (`budget_study.LEARNING_RATE_GRIDS`, extended past any rate first "
              f"chosen at its edge); each arm's rate is chosen on seed {SELECTION_SEED} (never reported) by the "
              f"best validation accuracy, averaged over {list(SELECTION_BUDGETS)} labels per class. A rate at the "
              "edge of its grid may not be the best one: the grid should be extended past it.", "",
              "| arm | backbone | learning rate | at the grid's edge |", "|---|---|---:|---|"]
    lines += [f"| {ARM_NAMES[row['arm']]} | {backbone_name(row['backbone'])} | {row['learning_rate']:g} | "
              f"{'yes' if row['grid_edge'] else 'no'} |" for row in analysis["learning_rates"]]
    lines += ["", "Best validation accuracy of each selection run (a run marked * reached its step cap: "
              "it was still improving, so its rate may be underrated):", "",
              "| arm | backbone | learning rate | " + " | ".join(f"{n}/class" for n in SELECTION_BUDGETS) + " |",
              "|---|---|---:|" + "---:|" * len(SELECTION_BUDGETS)]
    grid = {}
    for row in analysis["selection"]:
        mark = "*" if row["stopped_by"] == "cap" else ""
        grid.setdefault((row["arm"], row["backbone"], row["learning_rate"]), {})[row["labels_per_class"]] = (
            f"{row['best_validation']:.3f}{mark}")
    lines += [f"| {ARM_NAMES[arm]} | {backbone_name(backbone)} | {rate:g} | "
              + " | ".join(cells.get(n, "-") for n in SELECTION_BUDGETS) + " |"
              for (arm, backbone, rate), cells in grid.items()]
    lines += ["", "## Test accuracy (mean over seeds, 95% t-interval)", "", test_set_note(config), ""]
    lines += _budget_table(analysis["table"], budgets, len(config.seeds), "/class", _interval)
    lines += ["", "## Stopping", "",
              "Mean step of the best evaluation (restored) / largest step any seed reached; runs stopped by "
              "their cap are flagged below.", ""]
    lines += _budget_table(analysis["table"], budgets, len(config.seeds), "/class",
                           lambda row: f"{row['best_step']:.0f} / {row['largest_stop']}")
    lines += ["", "Flagged runs: " + ("none." if not analysis["flags"] else "; ".join(
        f"{f['arm']} {f['backbone']} {f['labels_per_class']}/class seed {f['seed']}: {f['problem']}"
        for f in analysis["flags"]) + "."), ""]
    lines += ["## Labels saved", "",
              f"Labels per class a control needs to reach the transfer arm's mean test accuracy at "
              f"{budgets[0]} labels per class (log-interpolated between budgets; 95% bootstrap interval over "
              "seeds).", ""]
    lines += labels_saved_table(analysis["labels_saved"]).splitlines()
    lines += ["", "## Curve metrics (validation, means over seeds)", "",
              f"Start: validation accuracy after the first {config.protocol.eval_every} steps (Torrey and "
              "Shavlik's start is the accuracy before any target training; with a new head that is chance "
              "for every arm here). Steps to 90%: until validation accuracy first reaches 90% of the run's "
              "best. Best: the best validation accuracy, whose weights the run keeps.", ""]
    lines += _budget_table(analysis["table"], budgets, len(config.seeds), "/class: start, steps to 90%, best",
                           "{start:.3f}, {steps_to_90:.0f}, {best_validation:.3f}".format_map)
    lines += ["", f"## Comparisons ({len(analysis['comparisons'])}, Holm-corrected together)", "",
              "A verdict is \"higher\" or \"lower\" only when Holm's adjusted p-value of the paired t-test "
              "over seeds is below 0.05; the interval beside it is the uncorrected 95% t-interval.", ""]
    lines += comparison_table(analysis["comparisons"]).splitlines()
    return "\n".join(lines) + "\n"


def labels_saved_table(rows):
    """A Markdown table of `analyse(...)["labels_saved"]` rows."""
    from tlhelpers.plots import backbone_name
    from tlhelpers.study import ARM_NAMES

    lines = ["| backbone | transfer arm | its accuracy | control | control reaches it at |", "|---|---|---:|---|---|"]
    lines += [f"| {backbone_name(r['backbone'])} | {ARM_NAMES[r['arm']]} | {r['target']:.3f} | {ARM_NAMES[r['control']]} | "
              f"{r['text']} |" for r in rows]
    return "\n".join(lines)


# The curve metrics in the course's words (start, slope, asymptote) with what each one measures.
METRIC_NAMES = {"start": "start", "steps_to_90": "slope (steps to 90% of its best)",
                "best_validation": "asymptote (best validation accuracy)", "test_accuracy": "test accuracy"}


def comparison_table(rows):
    """A Markdown table of Holm-corrected comparisons (`analyse`, `metric_comparisons`,
    `scenario_comparisons`) in a reader's names: a column for the target and the metric only when they
    vary between rows."""
    from tlhelpers import curves
    from tlhelpers.plots import backbone_name
    from tlhelpers.study import ARM_NAMES, DATASET_TITLES

    extra = [key for key in ("dataset", "metric") if len({r.get(key) for r in rows}) > 1]
    lines = ["| " + "".join(f"{key} | " for key in extra) + "backbone | labels/class | arm - control | "
             "difference (95% interval) | p | p (Holm) | verdict |",
             "|" + "---|" * len(extra) + "---|---:|---|---|---:|---:|---|"]
    for r in rows:
        cells = [DATASET_TITLES.get(r.get("dataset"), r.get("dataset")) if key == "dataset"
                 else METRIC_NAMES.get(r.get(key), r.get(key)) for key in extra]
        digits = 0 if r.get("metric") == "steps_to_90" else 3
        lines.append("| " + "".join(f"{cell} | " for cell in cells)
                     + f"{backbone_name(r['backbone'])} | {r['labels_per_class']} | "
                     f"{ARM_NAMES[r['arm']]} - {ARM_NAMES[r['control']]} | "
                     f"{curves.interval_text(r['difference'], r['ci_low'], r['ci_high'], digits, signed=True)} | "
                     f"{r['p']:.3g} | {r['p_holm']:.3g} | {r['verdict']} |")
    return "\n".join(lines)


def write_report(config, folder, out_dir=None):
    """Write `summary.md`, `analysis.json` and `budget_curves.png` for the stored runs in `folder`
    (into `out_dir`, default `folder`'s parent).

    Returns:
        `{name: path}` of the files written.
    """
    import json
    from pathlib import Path

    from tlhelpers.report import _save_figure
    from tlhelpers.results import atomic_write_text

    out_dir = Path(out_dir or Path(folder).parent)
    analysis = analyse(config, folder, pixel_accuracies(config))
    paths = {"summary": out_dir / "summary.md", "analysis": out_dir / "analysis.json",
             "figure": out_dir / "budget_curves.png"}
    atomic_write_text(paths["analysis"], json.dumps(analysis, indent=1) + "\n")
    atomic_write_text(paths["summary"], report_markdown(config, analysis))
    _save_figure(budget_figure(config, analysis), paths["figure"])
    return paths


def budget_figure(config, analysis):
    """The report's figure: one panel per backbone (its arms with the small CNN), titled as a reader
    names the model ("ResNet50 (garment source)"); a budget is drawn once all its seeds are stored (the
    summary's tables show the others)."""
    from matplotlib.figure import Figure

    from tlhelpers import plots
    from tlhelpers.study import ARM_NAMES

    complete = [r for r in analysis["table"] if r["seeds"] == len(config.seeds)]
    backbones = [b for b in config.backbones if any(r["backbone"] == b for r in complete)]
    figure = Figure(figsize=(6.5 * max(1, len(backbones)), 4.8))
    for index, backbone in enumerate(backbones, start=1):
        rows = [r for r in complete if r["backbone"] in (backbone, "small_cnn")]
        names = {arm: ARM_NAMES[arm] for arm in ARMS if any(r["arm"] == arm for r in rows)}
        plots.plot_budget_curves(rows, names, ax=figure.add_subplot(1, len(backbones), index),
                                 title=plots.model_title(backbone, config.weights))
    figure.tight_layout()
    return figure


def recheck(config, folder, arms, labels_per_class, seed, tolerance, steps=None):
    """Train stored runs again and compare them with the store.

    Args:
        config: The study the runs belong to.
        folder: Its store.
        arms: The arms to recompute (each with every backbone of the study).
        labels_per_class, seed: Which of their runs.
        tolerance: The largest difference still "the same" (other CPU kinds round differently).
        steps: None trains each run to its end and compares test accuracy. A number of steps (a
            multiple of the protocol's `eval_every`) trains only the beginning of each run and compares
            every validation accuracy measured by then: a long run's start, checked in seconds.

    Returns:
        `[(spec, stored RunResult, recomputed RunResult, within tolerance)]`.

    Raises:
        ValueError: when a run to recompute is not in the store.
    """
    if steps is not None and (steps < config.protocol.eval_every or steps % config.protocol.eval_every):
        raise ValueError(f"Received steps={steps!r}. Expected None or a positive multiple of the protocol's "
                         f"eval_every ({config.protocol.eval_every}).")
    short = dataclasses.replace(config.protocol, max_steps=steps or config.protocol.max_steps)
    store = RunStore(folder)
    rates = choose_learning_rates(config, store)
    sample = dataclasses.replace(config, arms=tuple(arms), labels_per_class=(labels_per_class,), seeds=(seed,))
    out = []
    for spec in main_specs(sample, rates):
        stored = store.get(spec)
        if stored is None:
            raise ValueError(f"Received a recheck of {spec['arm']} {spec['backbone']} at {labels_per_class} labels "
                             f"per class, seed {seed}, which {folder} does not hold. Expected a stored run: "
                             "build the study first (tlhelpers budget-study).")
        if steps is None:
            fresh = train_spec(config, spec)
            out.append((spec, stored, fresh, abs(fresh.test_accuracy - stored.test_accuracy) <= tolerance))
            continue
        fresh = train_spec(dataclasses.replace(config, protocol=short), spec)
        now, then = fresh.history["val_accuracy"], stored.history["val_accuracy"][:len(fresh.history["val_accuracy"])]
        out.append((spec, stored, fresh, len(now) == len(then)
                    and all(abs(a - b) <= tolerance for a, b in zip(now, then))))
    return out


def scenario_validation(config, dataset, labels_per_class):
    """Validation images per class of a scenario: the study's, or what `dataset`'s smallest pool class
    leaves next to `labels_per_class` training images when that is fewer (and at least one)."""
    room = int(np.bincount(_task(dataset)[0].labels).min()) - labels_per_class
    return min(config.validation_per_class, room) if room >= 1 else config.validation_per_class


def scenario_runs(config, dataset, arms=("feature_extraction", "random_features"), labels_per_class=10,
                  seeds=(0, 1, 2), verbose=1, folder=None, recipe=None, train=True):
    """Arms of a committed study trained now on another target, with the learning rates the study chose
    on its own target (no selection on the new one), under the same protocol and image size.

    Validation images per class are the study's, fewer when the target's smallest class cannot hold
    them next to the training images (clip art: 28 pool images in its smallest class).

    Args:
        config: A study of `BUDGET_STUDIES` (its backbones may be narrowed); its store gives the rates.
        dataset: The other target (`study.STUDY_DATASETS`).
        arms, labels_per_class, seeds: What to train.
        verbose: 1 prints one line per run.
        folder: Optional `RunStore` folder: a run it holds is read instead of trained, a new run is kept
            in it as soon as it ends (a long scenario built in pieces).
        recipe: Extra `training.train_run` options for every run (for example `{"augment": True}` or
            `{"head_rate_factor": 10.0}`), kept in each run's store key; None: the study's own recipe.
        train: False trains nothing: runs `folder` does not hold are left out.

    Returns:
        `{(arm, backbone): [RunResult in seed order]}`.
    """
    rates = choose_learning_rates(config, RunStore(study_folder(config.weights) / "runs"))
    other = dataclasses.replace(config, dataset=dataset, arms=tuple(arms), labels_per_class=(labels_per_class,),
                                seeds=tuple(seeds),
                                validation_per_class=scenario_validation(config, dataset, labels_per_class))
    store = RunStore(folder) if folder is not None else None
    groups = {}
    for spec in main_specs(other, rates):
        if recipe:
            spec["recipe"] = dict(sorted(recipe.items()))
        result = store.get(spec) if store is not None else None
        if result is None:
            if not train:
                continue
            result = train_spec(other, spec)
            if store is not None:
                store.put(spec, result)
        groups.setdefault((spec["arm"], spec["backbone"]), []).append(result)
        if verbose:
            print(f"{dataset}: {spec['arm']} {spec['backbone']} {recipe or ''} seed {spec['seed']}: test "
                  f"{result.test_accuracy:.3f}, stopped at step {result.config['stopped_step']}", flush=True)
    return groups


# Changes to fine-tuning's recipe, each a set of `training.train_run` options (`recipe_runs`). The head
# at ten times the base's rate: the ImageNet study chose 1e-3 for a head on frozen features and 1e-4 for
# fine-tuning on the cluttered garments' validation split, so the head keeps its own rate.
RECIPES = {"fine_tune_head_x10": {"head_rate_factor": 10.0}, "fine_tune_augmented": {"augment": True}}


def recipe_runs(config, dataset, recipes=tuple(RECIPES), labels_per_class=10, seeds=(0, 1, 2), verbose=1,
                folder=None, train=True):
    """Fine-tuning with changes to its recipe (`RECIPES`) on a target: `scenario_runs` of the
    `"fine_tune"` arm, each recipe's options added, the study's rate for the base.

    Returns:
        `{(recipe, backbone): [RunResult in seed order]}`.
    """
    unknown = sorted(set(recipes) - set(RECIPES))
    if unknown:
        raise ValueError(f"Received recipes={list(recipes)}. Expected any of: {', '.join(RECIPES)}.")
    return {(name, backbone): runs for name in recipes
            for (_, backbone), runs in scenario_runs(config, dataset, ("fine_tune",), labels_per_class, seeds,
                                                     verbose, folder, RECIPES[name], train).items()}


def recipe_groups(config, dataset, seeds, folder, labels_per_class=10, train=True):
    """Plain fine-tuning and each of `RECIPES` on `dataset`, keyed for `metric_comparisons` with
    `recipe_pairs`: `{(arm or recipe, backbone, labels_per_class): [RunResult in seed order]}`.

    Plain fine-tuning on the study's own target is the study's run; on another target, the scenario's
    (`scenario_runs`). `folder` holds the recipe runs and the other targets' runs; `train=False` trains
    nothing and leaves out what is missing.
    """
    if dataset == config.dataset:
        stored = stored_runs(config, study_folder(config.weights) / "runs")[0]
        plain = {(arm, backbone): [r for r in runs if r.seed in seeds]
                 for (arm, backbone, n), runs in stored.items() if arm == "fine_tune" and n == labels_per_class}
    else:
        plain = scenario_runs(config, dataset, ("fine_tune",), labels_per_class, seeds, 0, folder, train=train)
    found = {**plain, **recipe_runs(config, dataset, tuple(RECIPES), labels_per_class, seeds, 0, folder, train)}
    return {(arm, backbone, labels_per_class): runs for (arm, backbone), runs in found.items() if runs}


def recipe_pairs(backbone):
    """`metric_comparisons` pairs: each recipe of `RECIPES` against plain fine-tuning."""
    return [((name, backbone), ("fine_tune", backbone)) for name in RECIPES]


def scenario_comparisons(scenarios):
    """Each transfer arm against its matched control and against pixels, on every target, Holm-corrected
    together.

    Args:
        scenarios: `{dataset: (groups, pixels)}`: `scenario_runs` groups (any sources merged) and the
            pixel floor's test accuracy per seed.
    """
    from tlhelpers.budgets import comparison_family

    pairs = []
    for dataset, (groups, pixels) in scenarios.items():
        for (arm, backbone), runs in groups.items():
            if arm not in MATCHED_CONTROL:
                continue
            accuracy = [r.test_accuracy for r in runs]
            others = {"pixels": pixels}
            if (MATCHED_CONTROL[arm], backbone) in groups:
                others[MATCHED_CONTROL[arm]] = [r.test_accuracy for r in groups[MATCHED_CONTROL[arm], backbone]]
            pairs += [({"dataset": dataset, "backbone": backbone, "arm": arm, "control": control,
                        "labels_per_class": runs[0].labels_per_class}, accuracy, values)
                      for control, values in others.items()]
    return comparison_family(pairs)


def metric_comparisons(groups, pairs, labels_per_class, metrics=("start", "steps_to_90", "best_validation")):
    """Curve metrics (`budgets.protocol_metrics`) of arms against others at one budget, Holm-corrected
    together.

    Args:
        groups: `{(arm, backbone, labels_per_class): [RunResult in seed order]}` (`stored_runs`).
        pairs: `[((arm, backbone), (control, backbone)), ...]`; each pair is compared on the seeds both
            sides hold at the budget, and skipped when they share fewer than two (a store built in pieces
            reports what is paired so far).
        labels_per_class: The budget.
        metrics: Keys of `protocol_metrics`, or `"test_accuracy"`.
    """
    from tlhelpers.budgets import comparison_family, protocol_metrics

    rows = []
    for (arm, backbone), (control, other) in pairs:
        a, b = groups.get((arm, backbone, labels_per_class)) or [], groups.get((control, other, labels_per_class)) or []
        common = {r.seed for r in a} & {r.seed for r in b}
        if len(common) < 2:
            continue
        a, b = ([{**protocol_metrics(r), "test_accuracy": r.test_accuracy}
                 for r in sorted(runs, key=lambda r: r.seed) if r.seed in common] for runs in (a, b))
        rows += [({"backbone": backbone, "arm": arm, "control": control, "control_backbone": other,
                   "labels_per_class": labels_per_class, "metric": metric},
                  [m[metric] for m in a], [m[metric] for m in b]) for metric in metrics]
    return comparison_family(rows)
