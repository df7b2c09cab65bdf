"""Transfer against matched controls on Fashion-MNIST in clutter, with a fair protocol.

Each transfer strategy has a control that differs from it in one thing only,
whether the weights came from the source task:

- feature extraction (source base frozen, new head) vs **random features**
  (the same frozen architecture with random weights, the same head);
- fine-tuning (source base, stages 1..k frozen) vs **scratch** (the same
  architecture from random weights, everything trained);

plus the small CNN as a right-sized baseline and a logistic regression on raw
pixels as the floor. Every arm at every label budget gets the same number of
gradient steps (`steps`), is evaluated on validation every `eval_every` steps
(so that "start" and "slope" mean the same steps at every budget) and is scored
on the test split after its last step: nothing is selected on test. Validation is drawn
from the end of each class's shuffled pool, so the training images of a budget
do not depend on the validation size. Differences are paired by seed (the same
training images for every arm) and called higher or lower only when their 95%
t-interval excludes zero.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from tlhelpers import datasets, probes

# arm -> (train_run strategy, weights); "source" is the study's `weights`.
ARMS = {
    "feature_extraction": ("feature_extraction", "source"),
    "random_features": ("feature_extraction", "none"),
    "fine_tune": ("fine_tune", "source"),
    "scratch": ("scratch", "none"),
    "small_cnn": ("small_cnn", "none"),
}
MATCHED_CONTROL = {"feature_extraction": "random_features", "fine_tune": "scratch"}
ARM_NAMES = {
    "feature_extraction": "feature extraction", "random_features": "random features (same head)",
    "fine_tune": "fine-tuning", "scratch": "same architecture from scratch", "small_cnn": "small CNN",
    "pixels": "pixels (logistic regression)",
    "fine_tune_head_x10": "fine-tuning, head at 10x the rate", "fine_tune_augmented": "fine-tuning, augmented",
}


@dataclasses.dataclass
class StudyConfig:
    """What a study runs.

    Attributes:
        backbones: Registry names with a shipped cluttered source model.
        arms: Keys of `ARMS`; pixels are always probed.
        labels_per_class: Label budgets.
        seeds: Seeds; each fixes the training images of every arm at a budget.
            Five: the initial slope (from a saturating fit) varies between
            seeds by a third of its size, and a 95% t-interval over 3 seeds is
            4.3 standard errors wide on each side, over 5 seeds 2.8.
        steps: Gradient steps per run (rounded up to whole evaluation intervals).
        eval_every: Gradient steps between evaluations on validation (the
            learning curves' x-axis); None evaluates after every pass over
            the training images (`steps` then rounds up to whole passes).
        batch_size: Training batch size.
        validation_per_class: Validation images per class (learning curves).
        test_per_class: Test images per class (a fixed subset of the test split).
        image_size: Input side (the canvas).
        freeze_stage: Fine-tuning freezes stages 1..k (None: the default, 3).
        dataset: The target task: `"embedded"` (the garments in clutter),
            `"embedded-clean"` (the same garments clean: pixels suffice),
            `"digits"` (dissimilar; 125 pool images per class, so budgets plus
            validation must stay within that, and the whole test split is
            used), `"clipart"` (drawings; the same with 28 to 72 pool images
            per class) or a photo dataset of `photos.PHOTO_DATASETS` (downloaded once).
        weights: The transfer arms' weights: `"embedded"` (the shipped source
            models) or `"imagenet"`.
    """

    backbones: tuple = ("resnet50", "vgg16")
    arms: tuple = tuple(ARMS)
    labels_per_class: tuple = (10, 100)
    seeds: tuple = (0, 1, 2, 3, 4)
    steps: int = 200
    eval_every: int | None = 20
    batch_size: int = 16
    validation_per_class: int = 50
    test_per_class: int = 200
    image_size: int = 48
    freeze_stage: int | None = None
    dataset: str = "embedded"
    weights: str = "embedded"


# The results store of the default study (`make study`), read by notebook 5.
STORE = datasets.DATA_DIR.parent / "docs" / "study" / "results.json"
STUDY_DATASETS = (*datasets.EMBEDDED_TASKS, *datasets.BUNDLED_DATASETS)
STUDY_WEIGHTS = ("embedded", "imagenet")
DATASET_TITLES = {"embedded": "Fashion-MNIST in clutter", "embedded-clean": "Fashion-MNIST, clean",
                  "digits": "digits", "clipart": "clip art"}


def epochs_for(labels_per_class, num_classes, steps, batch_size, eval_every=None):
    """Whole epochs that give at least `steps` gradient steps: of `eval_every` steps each, or
    of one pass over the training images when it is None."""
    per_epoch = eval_every or math.ceil(labels_per_class * num_classes / batch_size)
    return max(1, math.ceil(steps / per_epoch))


def load_splits(config):
    """`{(labels_per_class, seed): Splits}` of the study's target task."""
    validation, test_per_class = None, config.test_per_class
    if config.dataset in datasets.BUNDLED_DATASETS:
        pool, test = datasets.BUNDLED_DATASETS[config.dataset]()
        test_per_class = None
    elif config.dataset in datasets.EMBEDDED_TASKS:
        pool, test = datasets.load_embedded_task(config.dataset)
    else:
        from tlhelpers.photos import load_photo_dataset

        pool, test, validation = load_photo_dataset(config.dataset, (config.image_size,) * 2)
    return {(n, seed): datasets.make_splits(pool, test, n, config.validation_per_class, seed=seed,
                                            validation=validation, test_per_class=test_per_class, validation_last=True)
            for n in config.labels_per_class for seed in config.seeds}


def pixel_accuracies(splits):
    """`{(labels_per_class, seed): test accuracy}` of logistic regression on raw pixels."""
    from tlhelpers.features import linear_probe

    return {key: linear_probe(probes.pixel_features(s.train), s.train.labels,
                              probes.pixel_features(s.test), s.test.labels)
            for key, s in splits.items()}


def check_study_config(config):
    """Return `config` after rejecting unknown arms and backbones without a shipped source model.

    Raises:
        ValueError: saying what was received and what is allowed.
    """
    if config.steps < 1 or (config.eval_every is not None and not 1 <= config.eval_every <= config.steps):
        raise ValueError(f"Received steps={config.steps} and eval_every={config.eval_every}. Expected steps >= 1 "
                         "and eval_every from 1 to steps (or None: after every pass over the training images).")
    unknown = sorted(set(config.arms) - set(ARMS))
    if unknown or not config.arms:
        raise ValueError(f"Received arms={list(config.arms)}. Expected any of: {', '.join(ARMS)}.")
    from tlhelpers.photos import PHOTO_DATASETS

    if config.dataset not in (*STUDY_DATASETS, *PHOTO_DATASETS):
        raise ValueError(f"Received dataset={config.dataset!r}. Expected one of: "
                         f"{', '.join((*STUDY_DATASETS, *PHOTO_DATASETS))}.")
    if config.weights not in STUDY_WEIGHTS:
        raise ValueError(f"Received weights={config.weights!r}. Expected one of: {', '.join(STUDY_WEIGHTS)}.")
    if config.weights == "embedded" and set(config.arms) & {"feature_extraction", "fine_tune"}:
        from tlhelpers.shipped_sources import shipped_path

        for backbone in config.backbones:
            shipped_path(backbone)
    return config


def run_study(config=None, verbose=1, on_result=None):
    """Run every arm for every backbone, budget and seed.

    Returns:
        `(results, pixels)`: a list of `RunResult` (`config["arm"]` names the
        arm) and `pixel_accuracies` of the same splits.
    """
    from tlhelpers.protocol import FixedSchedule
    from tlhelpers.shipped_sources import SOURCE_CLUTTER
    from tlhelpers.training import train_run

    config = check_study_config(config or StudyConfig())
    splits = load_splits(config)
    runs = [(backbone, n, seed, arm) for backbone in config.backbones for n in config.labels_per_class
            for seed in config.seeds for arm in config.arms
            if arm != "small_cnn" or backbone == config.backbones[0]]
    results = []
    for index, (backbone, n, seed, arm) in enumerate(runs, start=1):
        strategy, weights = ARMS[arm]
        weights = config.weights if weights == "source" else weights
        task = splits[n, seed]
        epochs = epochs_for(n, len(task.class_names), config.steps, config.batch_size, config.eval_every)
        schedule = FixedSchedule(epochs, eval_every=config.eval_every, batch_size=config.batch_size)
        result = train_run(task, strategy, backbone, weights, config.image_size, schedule, seed=seed,
                           freeze_stage=config.freeze_stage, verbose=0,
                           weights_options={"clutter": SOURCE_CLUTTER, "verbose": 0})
        result.config["arm"] = arm
        if arm == "random_features":
            result.weights = "random"
        if verbose:
            print(f"[{index}/{len(runs)}] {arm} {backbone if arm != 'small_cnn' else ''} labels_per_class={n} "
                  f"seed={seed}: test accuracy {result.test_accuracy:.3f} after {result.config['steps']} steps "
                  f"({result.wall_time_s:.0f} s)", flush=True)
        results.append(result)
        if on_result:
            on_result(result)
    return results, pixel_accuracies(splits)


def _by_arm(results, backbone, arm, labels_per_class):
    """Runs of one arm, backbone and budget in seed order (the small CNN has no backbone)."""
    chosen = [r for r in results if r.config.get("arm") == arm and r.labels_per_class == labels_per_class
              and (arm == "small_cnn" or r.backbone == backbone)]
    return sorted(chosen, key=lambda r: r.seed)


def comparison(results, pixels, backbone, arm, control, labels_per_class, key="test_accuracy"):
    """Paired comparison of `arm` with `control` at one budget.

    `key` is `"test_accuracy"` or a curve metric of `curves.run_metrics`
    (`"start"`, `"slope"`, `"asymptote"`) on validation accuracy.

    Returns:
        A dict with both means, the mean difference, its 95% interval and the verdict.
    """
    from tlhelpers.curves import run_metrics

    def values(name):
        if name == "pixels":
            return [pixels[labels_per_class, seed] for seed in sorted({s for _, s in pixels})]
        runs = _by_arm(results, backbone, name, labels_per_class)
        return [getattr(run_metrics(r), key) if key != "test_accuracy" else r.test_accuracy for r in runs]

    return _paired_row(values(arm), values(control), arm=arm, control=control, labels_per_class=labels_per_class,
                       metric=key)


def source_comparison(runs, other_runs, labels_per_class, names):
    """Paired comparison of the same arm from two sources, e.g. feature extraction on ImageNet
    MobileNetV2 and on the shipped ResNet50, run by two studies with the same target, budgets,
    seeds and splits (a seed draws the same training images in both).

    Args:
        runs, other_runs: `run_study` results of one arm each.
        labels_per_class: The budget to compare at.
        names: `(name, other_name)`, how `sentence` calls the two.

    Returns:
        A `comparison`-shaped dict on test accuracy.
    """
    first, second = (sorted((r for r in group if r.labels_per_class == labels_per_class), key=lambda r: r.seed)
                     for group in (runs, other_runs))
    seeds = [[r.seed for r in chosen] for chosen in (first, second)]
    if seeds[0] != seeds[1]:
        raise ValueError(f"Received seeds {seeds[0]} and {seeds[1]}. Expected the same seeds for both sources.")
    return _paired_row([r.test_accuracy for r in first], [r.test_accuracy for r in second], arm=names[0],
                       control=names[1], labels_per_class=labels_per_class, metric="test_accuracy")


def _paired_row(a, b, **fields):
    """The paired difference of two equally long, seed-ordered lists as a comparison row."""
    if len(a) != len(b) or len(a) < 2:
        raise ValueError(f"Received {len(a)} runs of {fields['arm']} and {len(b)} of {fields['control']} at "
                         f"{fields['labels_per_class']} labels per class. Expected the same seeds for both, "
                         "at least 2.")
    mean, low, high = probes.paired_difference(a, b)
    return {**fields, "arm_mean": float(np.mean(a)), "control_mean": float(np.mean(b)),
            "difference": mean, "ci_low": low, "ci_high": high, "verdict": probes.verdict(a, b)}


def labels_saved(results, pixels, backbone, arm, control):
    """The smallest budget at which `control` reaches `arm`'s mean test accuracy at the smallest
    budget run, or None when it does not within the budgets run."""
    budgets = sorted({r.labels_per_class for r in results})
    target = np.mean([r.test_accuracy for r in _by_arm(results, backbone, arm, budgets[0])])
    for n in budgets:
        runs = _by_arm(results, backbone, control, n)
        if runs and np.mean([r.test_accuracy for r in runs]) >= target:
            return n
    return None


def sentence(row):
    """One sentence for a `comparison` row, with its interval; "no clear difference" unless it excludes 0."""
    arm, control = (ARM_NAMES.get(row[side], row[side]) for side in ("arm", "control"))
    what = {"test_accuracy": "test accuracy", "start": "start", "slope": "initial slope",
            "asymptote": "asymptote"}[row["metric"]]
    interval = f"{row['difference']:+.3f}, 95% interval {row['ci_low']:+.3f} to {row['ci_high']:+.3f}"
    if row["verdict"] == "no clear difference":
        return (f"At {row['labels_per_class']} labels per class, {arm} and {control} show no clear "
                f"difference in {what} ({interval}).")
    return (f"At {row['labels_per_class']} labels per class, {arm} has a {row['verdict']} {what} than "
            f"{control} ({row['arm_mean']:.3f} vs {row['control_mean']:.3f}; {interval}).")


def best_transfer_arm(results, backbone, labels_per_class):
    """The transfer arm with the highest mean test accuracy at a budget."""
    means = {arm: np.mean([r.test_accuracy for r in _by_arm(results, backbone, arm, labels_per_class)])
             for arm in MATCHED_CONTROL if _by_arm(results, backbone, arm, labels_per_class)}
    return max(means, key=means.get) if means else None


def study_rows(results, pixels):
    """Every comparison the reading makes, as `comparison` rows with a `backbone` field."""
    rows = []
    backbones = list(dict.fromkeys(r.backbone for r in results if r.config.get("arm") != "small_cnn"))
    arms_run = {r.config.get("arm") for r in results}
    for backbone in backbones:
        for n in sorted({r.labels_per_class for r in results}):
            pairs = [(arm, control, metric) for arm, control in MATCHED_CONTROL.items()
                     if {arm, control} <= arms_run for metric in ("test_accuracy", "start", "slope")]
            pairs += [(arm, "pixels", "test_accuracy") for arm in MATCHED_CONTROL if arm in arms_run]
            pairs += [(arm, "small_cnn", "test_accuracy") for arm in MATCHED_CONTROL
                      if {arm, "small_cnn"} <= arms_run]
            rows.extend({"backbone": backbone, **comparison(results, pixels, backbone, arm, control, n, metric)}
                        for arm, control, metric in pairs)
    return rows


def reading(results, pixels, rows=None):
    """Markdown, one heading and one bullet list per backbone, generated from the runs: every
    direction stated is decided by a paired interval; negative transfer only against the
    matched control. `rows` are `study_rows(results, pixels)` when already computed."""
    rows = study_rows(results, pixels) if rows is None else rows
    budgets = sorted({r.labels_per_class for r in results})
    paragraphs = []
    for backbone in dict.fromkeys(row["backbone"] for row in rows):
        text = [sentence(row) for row in rows if row["backbone"] == backbone]
        negative = [row for row in rows if row["backbone"] == backbone and row["verdict"] == "lower"
                    and MATCHED_CONTROL.get(row["arm"]) == row["control"] and row["metric"] == "test_accuracy"]
        text += [f"That is negative transfer at {row['labels_per_class']} labels per class: "
                 f"{ARM_NAMES[row['arm']]} does worse than its matched control." for row in negative]
        best = best_transfer_arm(results, backbone, budgets[0])
        if best and len(budgets) > 1:
            for control in ("scratch", "small_cnn", "random_features"):
                if not _by_arm(results, backbone, control, budgets[0]):
                    continue
                found = labels_saved(results, pixels, backbone, best, control)
                name = ARM_NAMES[control][0].upper() + ARM_NAMES[control][1:]
                goal = f"the accuracy of {ARM_NAMES[best]} at {budgets[0]} labels per class"
                text.append(f"{name} reaches {goal} with {found} labels per class." if found else
                            f"{name} does not reach {goal} within the budgets run (up to {budgets[-1]}).")
        paragraphs.append(f"### {backbone}\n\n" + "\n".join(f"- {line}" for line in text))
    return "\n\n".join(paragraphs)


def summary_table(results, pixels):
    """Markdown table: test accuracy mean and 95% interval per backbone, arm and budget."""
    from tlhelpers.curves import aggregate, interval_text
    from tlhelpers.plots import backbone_name

    lines = ["| backbone | arm | labels/class | seeds | steps | test accuracy (95% interval) |",
             "|---|---|---:|---:|---:|---|"]
    groups = {}
    for r in results:
        groups.setdefault((r.backbone, r.config.get("arm"), r.labels_per_class), []).append(r)
    for n in sorted({key[0] for key in pixels}):
        values = [v for (budget, _), v in sorted(pixels.items()) if budget == n]
        groups.setdefault(("-", "pixels", n), values)
    for (backbone, arm, n), runs in sorted(groups.items(), key=lambda item: (item[0][0], item[0][2])):
        values = [r if isinstance(r, float) else r.test_accuracy for r in runs]
        stats = aggregate(values)
        steps = runs[0].config["steps"] if not isinstance(runs[0], float) else "-"
        lines.append(f"| {backbone_name(backbone)} | {ARM_NAMES[arm]} | {n} | {len(values)} | {steps} | "
                     f"{interval_text(stats['mean'], stats['ci_low'], stats['ci_high'])} |")
    return "\n".join(lines)


def write_study_report(out_dir, results, pixels, config):
    """Write `results.json`, `summary.md` and `label_budget.png` of a study into `out_dir`.

    Returns:
        `{name: path}` of the files written.
    """
    import json
    from pathlib import Path

    from matplotlib.figure import Figure

    from tlhelpers import plots
    from tlhelpers.report import _save_figure, results_payload
    from tlhelpers.results import atomic_write_text

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = results_payload(results, dataclasses.asdict(config))
    payload["pixels"] = [{"labels_per_class": n, "seed": seed, "test_accuracy": value}
                         for (n, seed), value in sorted(pixels.items())]
    payload["comparisons"] = rows = study_rows(results, pixels)
    payload["store"] = store_key(config)
    paths = {"results": out_dir / "results.json", "summary": out_dir / "summary.md",
             "label_budget": out_dir / "label_budget.png", "learning_curves": out_dir / "learning_curves.png"}
    atomic_write_text(paths["results"], json.dumps(payload, indent=2))
    atomic_write_text(paths["summary"], f"# Transfer against matched controls ({DATASET_TITLES[config.dataset]})\n\n"
                      + summary_table(results, pixels) + "\n\n## Reading\n\n" + reading(results, pixels, rows) + "\n")
    figure = Figure(figsize=(9, 5.5))
    plots.plot_label_budget(payload["summary"], ax=figure.add_subplot())
    _save_figure(figure, paths["label_budget"])
    # Validation curves at the smallest budget, one panel per backbone (the small CNN in each).
    smallest = min(config.labels_per_class)
    backbones = [b for b in config.backbones if any(r.backbone == b for r in results)] or ["small_cnn"]
    figure = Figure(figsize=(7 * len(backbones), 4.8))
    for index, backbone in enumerate(backbones, start=1):
        ax = figure.add_subplot(1, len(backbones), index)
        # In the order of ARMS, so that each arm has the same colour in every panel.
        shown = sorted((r for r in results if r.labels_per_class == smallest and r.backbone in (backbone, "small_cnn")),
                       key=lambda r: list(ARMS).index(r.config["arm"]))
        plots.plot_learning_curves(shown, ax=ax)
        ax.set_title(f"{plots.backbone_name(backbone)}, {smallest} labels per class")
    _save_figure(figure, paths["learning_curves"])
    return paths


def load_study(path):
    """Read a study's `results.json`: `(results, pixels, config)`, e.g. to write its report again."""
    return _read_study(path)[:3]


def _read_study(path):
    """`(results, pixels, config, store key or None)` of a study's `results.json`; configuration
    fields the file predates have their default value."""
    import json

    from tlhelpers.results import RunResult

    payload = json.loads(open(path).read())
    results = [RunResult.from_dict(run) for run in payload["runs"]]
    pixels = {(row["labels_per_class"], row["seed"]): row["test_accuracy"] for row in payload["pixels"]}
    fields = {f.name for f in dataclasses.fields(StudyConfig)}
    config = StudyConfig(**{k: tuple(v) if isinstance(v, list) else v
                            for k, v in payload["config"].items() if k in fields})
    return results, pixels, config, payload.get("store")


class StoreMismatchError(datasets.DataError):
    """Stored study results were made with another configuration, source model or library version."""


def store_key(config):
    """What stored results depend on besides the runs: the md5 of each shipped source model used
    and the library version."""
    from tlhelpers import __version__
    from tlhelpers.shipped_sources import SHIPPED

    uses_sources = config.weights == "embedded" and bool(set(config.arms) & {"feature_extraction", "fine_tune"})
    return {"sources": {b: SHIPPED[b][1] for b in config.backbones if uses_sources and b in SHIPPED},
            "tlhelpers": __version__}


def load_store(path, config):
    """`(results, pixels)` of the stored study at `path` (a `results.json`), after checking that it was
    made with `config`, the shipped source models' md5s and this library version.

    Expensive runs (fine-tuning, scratch) are read from such a store in the notebooks instead of
    being trained again every time; `make study` writes it.

    Raises:
        StoreMismatchError: saying which field differs and how to make the store again.
    """
    from pathlib import Path

    path = Path(path)
    if not path.is_file():
        raise StoreMismatchError(f"No stored study at {path}. Make it with `make study` "
                                 f"(or `tlhelpers study --out {path.parent}`).")
    results, pixels, stored_config, stored = _read_study(path)
    expected = {"config": dataclasses.asdict(config), **store_key(config)}
    found = {"config": dataclasses.asdict(stored_config), **(stored or {})}
    for field in ("config", "sources", "tlhelpers"):
        if found.get(field) != expected[field]:
            raise StoreMismatchError(
                f"Stored study {path} has {field}={found.get(field)}; expected {expected[field]}. "
                f"Make it again with `tlhelpers study --out {path.parent}` (same options), or load "
                "the configuration it was made with.")
    return results, pixels
