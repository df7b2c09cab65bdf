"""The experiment runner: strategies x labels per class x seeds x backbones.

`ExperimentConfig` holds every knob; `check_config` rejects invalid
combinations before anything trains; `run_experiment` prepares the data and
the source models once, then trains every run and returns `RunResult`s.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from pathlib import Path

from tlhelpers import datasets, model_pool
from tlhelpers.registry import BACKBONES, check_image_size, get_backbone, is_hub_name
from tlhelpers.distribution import check_distribute, make_strategy
from tlhelpers.models import STRATEGIES
from tlhelpers.photos import PHOTO_DATASETS, load_photo_dataset
from tlhelpers.protocol import FixedSchedule, Protocol
from tlhelpers.report import load_results, results_payload
from tlhelpers.results import atomic_write_text

SOURCE_TASKS = ("clutter", "clean")
DATASETS = (*datasets.EMBEDDED_TASKS, *datasets.BUNDLED_DATASETS, *PHOTO_DATASETS)


@dataclasses.dataclass
class ExperimentConfig:
    """Everything that defines an experiment (defaults: the main command's job).

    Attributes:
        backbones: Registry names.
        weights: `"embedded"`, `"imagenet"`, `"none"` or a weights file.
        strategies: Any of `models.STRATEGIES`.
        labels_per_class: Label budgets.
        seeds: One run per seed (sample, initial head weights, shuffling).
        epochs: None trains every run by `protocol`; a number trains that many
            epochs per run instead (both phases of fine-tuning together), with
            no early stopping.
        head_epochs: With `epochs`: head-only epochs before fine-tuning starts (0: one phase).
        protocol: The training rule when `epochs` is None: early stopping on
            validation with the best weights restored (see `tlhelpers.protocol`).
        freeze_stage: Fine-tuning freezes stages 1..k (None: the default, 3).
        image_size: Input side.
        dataset: `"embedded"` (Fashion-MNIST in clutter), `"embedded-clean"`,
            `"digits"`, `"clipart"` (128-px drawings, 28 to 72 pool images
            per class, so budgets plus validation must stay within that), a
            photo dataset of `photos.PHOTO_DATASETS` (downloaded once) or a
            folder of class subfolders.
        source_task: Which embedded source model `weights="embedded"` means:
            `"clutter"` (shipped in `data/source_models/`, trained on the source
            classes in clutter) or `"clean"` (trained on first use on the clean
            `source_classes` at 32 px, then cached).
        source_classes: Embedded classes the embedded source model is trained on.
        target_classes: Embedded classes of the target task (embedded datasets).
        validation_per_class: Validation examples per class from the training pool.
        test_per_class: Test on a fixed subset of this many examples per class
            (None: the whole test split). The default, 150 of the embedded
            test split's 500, shortens every run's final evaluation.
        batch_size: Training batch size (the global batch under a distribution strategy).
        distribute: `"none"`, `"mirrored"` or `"multi-worker"` (see `tlhelpers.distribution`).
    """

    backbones: tuple = ("resnet50",)
    weights: str = "embedded"
    # The baseline is the small CNN: ResNet50 from random weights stays near
    # chance with these budgets (notebook 2) and took 58% of the run's time.
    strategies: tuple = ("feature_extraction", "fine_tune", "small_cnn")
    labels_per_class: tuple = (10, 50)
    seeds: tuple = (0, 1)
    epochs: int | None = None
    head_epochs: int = 0
    freeze_stage: int | None = None
    image_size: int = 48
    dataset: str = "embedded"
    source_task: str = "clutter"
    source_classes: tuple = datasets.DEFAULT_SOURCE_CLASSES
    target_classes: tuple = datasets.DEFAULT_TARGET_CLASSES
    validation_per_class: int = 20
    test_per_class: int | None = 150
    batch_size: int = 16
    distribute: str = "none"
    protocol: Protocol = Protocol()

    def to_dict(self):
        return {key: list(value) if isinstance(value, tuple) else value
                for key, value in dataclasses.asdict(self).items()}


def _check_choices(name, values, allowed):
    unknown = [value for value in values if value not in allowed]
    if unknown or not values:
        raise ValueError(f"Received {name}={list(values)}. Expected one or more of: {', '.join(allowed)}.")


def check_config(config):
    """Reject invalid combinations before any training starts.

    Raises:
        ValueError: saying which option is wrong and why.
    """
    _check_choices("backbones", config.backbones, (*BACKBONES, *filter(is_hub_name, config.backbones)))
    _check_choices("strategies", config.strategies, STRATEGIES)
    check_distribute(config.distribute)
    for name in config.backbones:
        spec = get_backbone(name)
        check_image_size(spec, config.image_size)
        if spec.hub_handle is not None:
            from tlhelpers.hub import check_hub_options

            check_hub_options(spec, config.weights, config.strategies, config.freeze_stage)
    weights = config.weights
    if weights not in ("embedded", "imagenet", "none", "hub") and not Path(str(weights)).is_file():
        raise ValueError(f"Received weights={weights!r}. Expected 'embedded', 'imagenet', 'none', "
                         "'hub' (TF-Hub backbones) or the path of an existing weights file.")
    if weights == "none" and "fine_tune" in config.strategies:
        raise ValueError("Received weights='none' with fine_tune: fine-tuning random weights is training "
                         "from scratch. Use strategy 'scratch' (everything trained), or weights "
                         "'embedded' or 'imagenet'. With weights 'none', feature_extraction is the "
                         "random-features control: the same frozen architecture and head, random weights.")
    if any(int(n) < 1 for n in config.labels_per_class) or not config.labels_per_class:
        raise ValueError(f"Received labels_per_class={list(config.labels_per_class)}. "
                         "Expected one or more integers >= 1.")
    if config.epochs is None and config.head_epochs:
        raise ValueError(f"Received head_epochs={config.head_epochs} without epochs. Expected head-only epochs "
                         "only with a fixed number of epochs (the protocol trains fine-tuning in one phase).")
    if config.epochs is not None and config.epochs < 1:
        raise ValueError(f"Received epochs={config.epochs}. Expected an integer >= 1.")
    if config.epochs is not None and "fine_tune" in config.strategies and not 0 <= config.head_epochs < config.epochs:
        raise ValueError(f"Received head_epochs={config.head_epochs} with epochs={config.epochs}. "
                         "Expected 0 <= head_epochs < epochs so that fine-tuning gets an epoch.")
    if config.dataset not in DATASETS and not Path(config.dataset).is_dir():
        raise ValueError(f"Received dataset={config.dataset!r}. Expected one of: "
                         f"{', '.join(DATASETS)}, or an existing folder of class subfolders.")
    _check_choices("source_task", (config.source_task,), SOURCE_TASKS)
    source = datasets.resolve_classes(config.source_classes)
    if (weights == "embedded" and config.source_task == "clutter"
            and source != datasets.resolve_classes(datasets.DEFAULT_SOURCE_CLASSES)):
        raise ValueError(f"Received source_classes={list(config.source_classes)} with source_task 'clutter'. "
                         f"The shipped source models were trained on {list(datasets.DEFAULT_SOURCE_CLASSES)}; "
                         "other source classes need source_task 'clean' (trained on first use).")
    if config.dataset in datasets.EMBEDDED_TASKS:
        target = datasets.resolve_classes(config.target_classes)
        shared = sorted(set(source) & set(target))
        if shared and weights == "embedded":
            raise ValueError(
                "Source and target classes overlap: "
                f"{[datasets.EMBEDDED_CLASS_NAMES[i] for i in shared]}. The target task must use "
                "classes the source model has not seen.")


def load_task(config, verbose=1):
    """Return `(pool, test, validation)` of the configured target dataset."""
    if config.dataset in datasets.EMBEDDED_TASKS:
        pool, test = datasets.load_embedded_task(config.dataset, config.target_classes)
        return pool, test, None
    if config.dataset in datasets.BUNDLED_DATASETS:
        pool, test = datasets.BUNDLED_DATASETS[config.dataset]()
        return pool, test, None
    from tlhelpers.folders import load_image_folder

    size = check_image_size(get_backbone(config.backbones[0]), config.image_size)
    if config.dataset in PHOTO_DATASETS:
        return load_photo_dataset(config.dataset, size, verbose=bool(verbose))
    pool, test, validation, _ = load_image_folder(config.dataset, size, verbose=bool(verbose))
    return pool, test, validation


def plan(config):
    """The runs of an experiment, in order: `(backbone, labels_per_class, seed, strategy)`."""
    return list(itertools.product(config.backbones, config.labels_per_class, config.seeds,
                                  config.strategies))


def run_experiment(config=None, verbose=1, on_result=None):
    """Run every configured run and return their results.

    Data are loaded and split, and the source models are built (the shipped
    ones, or with `source_task="clean"` trained on first use), before the
    first run starts, so bad input fails early. A `small_cnn` run does not depend on the backbone and
    runs once per budget and seed.

    Args:
        config: An `ExperimentConfig` (default: the main command's job).
        verbose: 0 silent, 1 one line per run plus Keras progress bars,
            2 one line per run and per epoch.
        on_result: Called with each `RunResult` as it finishes.

    Returns:
        A list of `RunResult`.
    """
    from tlhelpers.training import train_run

    config = config or ExperimentConfig()
    check_config(config)
    pool, test, validation = load_task(config, verbose)
    splits = {(n, seed): datasets.make_splits(pool, test, int(n), config.validation_per_class, seed=seed,
                                              validation=validation, test_per_class=config.test_per_class)
              for n in config.labels_per_class for seed in config.seeds}
    weights_options = {"source_classes": config.source_classes, "verbose": verbose,
                       **({"clutter": None} if config.source_task == "clean" else {})}
    if config.weights in ("embedded", "imagenet") and set(config.strategies) - {"scratch", "small_cnn"}:
        for name in config.backbones:
            options = weights_options if config.weights == "embedded" else {}
            # Built through the pool, so the runs' frozen bases are this one.
            model_pool.frozen_base(name, config.weights, config.image_size, **options)
    runs = [run for run in plan(config)
            if run[3] != "small_cnn" or run[0] == config.backbones[0]]
    distribute = make_strategy(config.distribute)
    results = []
    for index, (backbone, n, seed, strategy) in enumerate(runs, start=1):
        if verbose:
            print(f"[{index}/{len(runs)}] {strategy} {backbone if strategy != 'small_cnn' else ''} "
                  f"labels_per_class={n} seed={seed}", flush=True)
        schedule = (dataclasses.replace(config.protocol, batch_size=config.batch_size) if config.epochs is None
                    else FixedSchedule(config.epochs, batch_size=config.batch_size,
                                       head_epochs=config.head_epochs if strategy == "fine_tune" else 0))
        result = train_run(
            splits[(n, seed)], strategy, backbone, config.weights, config.image_size, schedule, seed=seed,
            freeze_stage=config.freeze_stage,
            verbose=0 if verbose < 2 else 2, weights_options={**weights_options, "verbose": 0},
            distribute=distribute)
        if verbose:
            stopped = (f", best of {result.config['stopped_step']} steps at step {result.config['best_step']}"
                       if "best_step" in result.config else "")
            print(f"    test accuracy {result.test_accuracy:.3f} (validation "
                  f"{max(result.history['val_accuracy']) if stopped else result.history['val_accuracy'][-1]:.3f}"
                  f"{stopped}) in {result.wall_time_s:.0f} s", flush=True)
        results.append(result)
        if on_result:
            on_result(result)
    return results


def save_results(path, results, config):
    """Write results and their metrics as JSON (the `results.json` format)."""
    payload = results_payload(results, config.to_dict() if hasattr(config, "to_dict") else config)
    atomic_write_text(path, json.dumps(payload, indent=2))


__all__ = ["ExperimentConfig", "check_config", "load_task", "plan", "run_experiment", "save_results",
           "load_results"]
