"""Command line: `python -m tlhelpers run ...` (also the `tlhelpers` console script).

Commands:
    run           train an experiment headless and write a report directory
    study         transfer against matched controls on Fashion-MNIST in clutter, with a report
    budget-study  every arm trained by one protocol at five label budgets, built in pieces
    transferability  features copied stage by stage (Yosinski et al. 2014) on a five-stage CNN
    source-model  train (or load) an embedded source model and print its accuracy
    weights add   install a no-top ImageNet weights file into the Keras cache (checked)
    data add      install a photo dataset archive into the Keras cache (checked, extracted)
    predict       ImageNet's top classes for image files, with genuine weights that work offline
    doctor        show the caches, what is cached or missing, and which profiles are ready
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

from tlhelpers.registry import BACKBONES, KERAS_IMAGENET, WHEEL_IMAGENET
from tlhelpers.distribution import DISTRIBUTE_CHOICES
from tlhelpers.errors import TlhelpersError
from tlhelpers.models import STRATEGIES

EXIT_BAD_INPUT = 2


def _defaults():
    from tlhelpers.experiments import ExperimentConfig

    return ExperimentConfig()


def _classes(values):
    return tuple(value for value in values)


def _add_budget_arguments(parser, defaults, seeds_help):
    """`--labels-per-class` and `--seeds`, with defaults from a config object."""
    parser.add_argument("--labels-per-class", nargs="+", type=int, default=list(defaults.labels_per_class),
                        metavar="N", help="label budgets (default: %(default)s)")
    parser.add_argument("--seeds", nargs="+", type=int, default=list(defaults.seeds), metavar="S",
                        help=f"{seeds_help} (default: %(default)s)")


def build_parser():
    from tlhelpers.experiments import SOURCE_TASKS

    defaults = _defaults()
    parser = argparse.ArgumentParser(prog="tlhelpers", description="Transfer-learning experiments.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run an experiment and write a report directory")
    run.add_argument("--backbone", nargs="+", default=list(defaults.backbones), metavar="NAME",
                     help=f"one or more of: {', '.join(BACKBONES)}, or hub:<handle-or-path> for a TF-Hub "
                          "model or SavedModel folder (default: %(default)s)")
    run.add_argument("--weights", default=defaults.weights,
                     help="embedded, imagenet, none, hub (TF-Hub backbones), or a weights file "
                          "(default: %(default)s)")
    run.add_argument("--strategies", nargs="+", default=list(defaults.strategies), metavar="NAME",
                     help=f"one or more of: {', '.join(STRATEGIES)} (default: %(default)s)")
    _add_budget_arguments(run, defaults, "one run per seed")
    protocol = defaults.protocol
    run.add_argument("--max-steps", type=int, default=protocol.max_steps,
                     help="the protocol's step cap per run (default: %(default)s)")
    run.add_argument("--eval-every", type=int, default=protocol.eval_every,
                     help="gradient steps between evaluations on validation (default: %(default)s)")
    run.add_argument("--patience", type=int, default=protocol.patience,
                     help="stop after this many evaluations without a better validation accuracy; the "
                          "best evaluation's weights are restored (default: %(default)s)")
    run.add_argument("--epochs", type=int, default=None,
                     help="train exactly this many epochs (passes over the training images) instead, "
                          "without early stopping")
    run.add_argument("--head-epochs", type=int, default=defaults.head_epochs,
                     help="with --epochs: head-only epochs before fine-tuning (default: %(default)s)")
    run.add_argument("--freeze-stage", type=int, default=None,
                     help="fine-tuning freezes stages 1..k (default: 3)")
    run.add_argument("--image-size", type=int, default=defaults.image_size, help="default: %(default)s")
    run.add_argument("--dataset", default=defaults.dataset,
                     help="embedded (garments in clutter), embedded-clean, digits, clipart (128-px "
                          "drawings, 28 pool images in its smallest class), a photo dataset (cats_vs_dogs, "
                          "flowers; downloaded once), or a folder of class subfolders (default: %(default)s)")
    run.add_argument("--source-task", choices=SOURCE_TASKS, default=defaults.source_task,
                     help="weights 'embedded': the source model shipped for the garments in clutter, or "
                          "one trained on first use on the clean source classes (default: %(default)s)")
    run.add_argument("--source-classes", nargs="+", default=list(defaults.source_classes),
                     metavar="CLASS", help="embedded source classes, names or indices (other than the "
                                           "default: --source-task clean)")
    run.add_argument("--target-classes", nargs="+", default=None, metavar="CLASS",
                     help="embedded target classes, names or indices (embedded datasets only)")
    run.add_argument("--validation-per-class", type=int, default=defaults.validation_per_class,
                     help="validation examples per class, from the training pool (default: %(default)s)")
    run.add_argument("--test-per-class", type=int, default=defaults.test_per_class,
                     help="test on a fixed subset of N examples per class (default: %(default)s; 0 = all)")
    run.add_argument("--distribute", default=defaults.distribute, choices=DISTRIBUTE_CHOICES,
                     help="train on every GPU (mirrored) or on several machines configured by "
                          "TF_CONFIG (multi-worker) (default: %(default)s)")
    run.add_argument("--out", default="report", help="report directory (default: %(default)s)")
    run.add_argument("--quiet", action="store_true", help="no progress output")

    source = commands.add_parser("source-model", help="train or load an embedded source model")
    source.add_argument("--backbone", default="resnet50", choices=sorted(KERAS_IMAGENET))
    source.add_argument("--seed", type=int, default=0)
    source.add_argument("--task", choices=SOURCE_TASKS, default="clutter",
                        help="clutter: the source model shipped in data/source_models/ (what "
                             "weights 'embedded' uses); clean: a 32-px source model on the clean images, "
                             "trained on first use and cached (default: %(default)s)")
    source.add_argument("--retrain", action="store_true",
                        help="with --task clutter: train it again with the committed recipe and say "
                             "how close it lands to the shipped file")
    source.add_argument("--out", default=None,
                        help="with --retrain: folder for the new file (default: a folder in the "
                             "package cache; data/source_models replaces the shipped file)")

    from tlhelpers.study import ARMS, STUDY_DATASETS, StudyConfig

    study_defaults = StudyConfig()
    study = commands.add_parser("study", help="transfer against matched controls on Fashion-MNIST in clutter")
    study.add_argument("--backbone", nargs="+", default=list(study_defaults.backbones), metavar="NAME",
                       help="backbones with a shipped source model (default: %(default)s)")
    study.add_argument("--arms", nargs="+", default=list(study_defaults.arms), metavar="ARM",
                       help=f"any of: {', '.join(ARMS)} (default: all); pixels are always probed")
    _add_budget_arguments(study, study_defaults, "seeds, at least 2 for intervals")
    study.add_argument("--steps", type=int, default=study_defaults.steps,
                       help="gradient steps of every run (default: %(default)s)")
    study.add_argument("--eval-every", type=int, default=study_defaults.eval_every,
                       help="gradient steps between evaluations on validation, the learning curves' "
                            "x-axis (default: %(default)s)")
    study.add_argument("--dataset", choices=STUDY_DATASETS, default=study_defaults.dataset,
                       help="target task: embedded (garments in clutter), embedded-clean, digits, "
                            "clipart (default: %(default)s)")
    study.add_argument("--out", default="report-study", help="report directory (default: %(default)s)")
    study.add_argument("--quiet", action="store_true", help="no progress output")

    from tlhelpers.budget_study import BudgetStudyConfig

    budget_defaults = BudgetStudyConfig()
    budget = commands.add_parser("budget-study", help="every arm trained by one protocol at five label budgets "
                                                      "(resumable: stored runs are skipped)")
    budget.add_argument("--weights", choices=("embedded", "imagenet"), default="embedded",
                        help="the transfer arms' source: the shipped source models (ResNet50, VGG16 at 48 px) or "
                             "genuine ImageNet weights (MobileNetV2 at 128 px) (default: %(default)s)")
    budget.add_argument("--out", default=None,
                        help="report folder; its runs/ subfolder is the store (default: docs/budget-study, "
                             "or docs/budget-study-imagenet)")
    budget.add_argument("--hours", type=float, default=None,
                        help="start no new run after this many hours; run again to continue (default: all)")
    budget.add_argument("--arms", nargs="+", default=None, metavar="ARM",
                        help=f"train only these arms now, any of: {', '.join(budget_defaults.arms)} (default: all "
                             "of the study's); the report covers every stored run")
    budget.add_argument("--backbone", nargs="+", default=None, metavar="NAME",
                        help="train only these backbones now (default: all of the study's)")
    budget.add_argument("--report-only", action="store_true", help="write the report from the stored runs")
    budget.add_argument("--quiet", action="store_true", help="no progress output")

    from tlhelpers.transferability import ARMS as STAGE_ARMS
    from tlhelpers.transferability import TransferabilityConfig

    stage_defaults = TransferabilityConfig()
    stages = commands.add_parser("transferability",
                                 help="copy 1..5 stages of a source or target base, frozen or fine-tuned")
    stages.add_argument("--arms", nargs="+", default=list(stage_defaults.arms), choices=list(STAGE_ARMS),
                        metavar="ARM", help="arms at every k (default: all)")
    stages.add_argument("--stages", nargs="+", type=int, default=list(stage_defaults.stages), metavar="K",
                        help="numbers of copied stages (default: %(default)s)")
    stages.add_argument("--seeds", nargs="+", type=int, default=list(stage_defaults.seeds), metavar="SEED",
                        help="seeds, at least 2 for intervals (default: %(default)s)")
    stages.add_argument("--target-per-class", type=int, default=stage_defaults.target_per_class,
                        help="training images per target class (default: %(default)s)")
    stages.add_argument("--out", default="report-transferability",
                        help="report directory (default: %(default)s)")
    stages.add_argument("--quiet", action="store_true", help="no progress output")

    weights = commands.add_parser("weights", help="manage ImageNet weights in the Keras cache")
    weights_commands = weights.add_subparsers(dest="action", required=True)
    weights_add = weights_commands.add_parser("add", help="check and install a no-top weights file")
    weights_add.add_argument("file", help="e.g. resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5")

    data = commands.add_parser("data", help="manage photo datasets in the Keras cache")
    data_commands = data.add_subparsers(dest="action", required=True)
    data_add = data_commands.add_parser("add", help="check, install and extract a dataset archive")
    data_add.add_argument("name", help="registry name, e.g. flowers or cats_vs_dogs")
    data_add.add_argument("archive", help="the archive file, e.g. flower_photos.tgz")

    predict = commands.add_parser("predict", help="ImageNet's top classes for image files (offline)")
    predict.add_argument("images", nargs="+", metavar="IMAGE", help="JPEG, PNG, GIF or BMP files")
    predict.add_argument("--backbone", default=WHEEL_IMAGENET[0], metavar="NAME",
                         help=f"a backbone with offline ImageNet weights: {', '.join(WHEEL_IMAGENET)} "
                              "(default: %(default)s)")
    predict.add_argument("--top", type=int, default=5, help="classes per image (default: %(default)s)")

    commands.add_parser("doctor", help="show caches, cached files and profile readiness")
    return parser


def _config_from(args):
    from tlhelpers.datasets import EMBEDDED_TASKS
    from tlhelpers.experiments import ExperimentConfig

    if args.target_classes is not None and args.dataset not in EMBEDDED_TASKS:
        raise ValueError(f"Received --target-classes with --dataset {args.dataset}. Target classes "
                         "choose classes of the embedded dataset only.")
    defaults = ExperimentConfig()
    protocol = dataclasses.replace(defaults.protocol, max_steps=args.max_steps, eval_every=args.eval_every,
                                   patience=args.patience)
    return ExperimentConfig(
        backbones=tuple(args.backbone), weights=args.weights, strategies=tuple(args.strategies),
        labels_per_class=tuple(args.labels_per_class), seeds=tuple(args.seeds), epochs=args.epochs,
        head_epochs=args.head_epochs, freeze_stage=args.freeze_stage, image_size=args.image_size,
        dataset=args.dataset, source_task=args.source_task, source_classes=_classes(args.source_classes),
        target_classes=_classes(args.target_classes or defaults.target_classes),
        validation_per_class=args.validation_per_class, test_per_class=args.test_per_class or None,
        distribute=args.distribute, protocol=protocol)


def command_run(args):
    from tlhelpers.experiments import check_config, plan, run_experiment
    from tlhelpers.report import write_report

    config = _config_from(args)
    check_config(config)
    _fetch_downloads(config)
    verbose = 0 if args.quiet else 1
    if verbose:
        print(f"Running {len(plan(config))} runs: {', '.join(config.strategies)} x labels per class "
              f"{list(config.labels_per_class)} x seeds {list(config.seeds)} x {list(config.backbones)} "
              f"({config.weights} weights, {config.image_size}px, "
              + (f"{config.epochs} epochs" if config.epochs else
                 f"early stopping on validation every {config.protocol.eval_every} steps, at most "
                 f"{config.protocol.max_steps}") + ").", flush=True)
    started = time.perf_counter()
    results = run_experiment(config, verbose=verbose)
    paths = write_report(args.out, results, config.to_dict())
    if verbose:
        _print_report(started, args.out, paths)
    return 0


def _fetch_downloads(config):
    """Fetch the photo dataset and ImageNet weights a run needs, so that offline it fails now."""
    from tlhelpers.downloads import IMAGENET_BASE_URLS, fetch_imagenet_weights
    from tlhelpers.photos import PHOTO_DATASETS, fetch_photo_dataset

    if config.dataset in PHOTO_DATASETS:
        fetch_photo_dataset(config.dataset)
    if config.weights == "imagenet" and set(config.strategies) - {"scratch", "small_cnn"}:
        for name in filter(IMAGENET_BASE_URLS.__contains__, config.backbones):
            fetch_imagenet_weights(name)


def command_weights(args):
    from tlhelpers.downloads import add_weights_file

    owner, path = add_weights_file(args.file)
    what = "ImageNet's class index" if owner == "class index" else f"the ImageNet weights of {owner}"
    print(f"Installed {what} (md5 checked) at {path}")
    return 0


def command_data(args):
    from tlhelpers.photos import add_photo_archive

    folder = add_photo_archive(args.name, args.archive)
    print(f"Installed the photo dataset {args.name} (checked and extracted) at {folder}")
    return 0


def command_predict(args):
    from tlhelpers.registry import get_backbone

    if get_backbone(args.backbone).imagenet_wheel is None:
        raise ValueError(f"Received --backbone {args.backbone}, which has no ImageNet classifier offline. "
                         f"Expected one of: {', '.join(WHEEL_IMAGENET)}.")
    from tlhelpers.folders import read_image
    from tlhelpers.imagenet_ports import predict_top

    size = get_backbone(args.backbone).default_size
    images = [read_image(path, (size, size), square=True) for path in args.images]
    for path, classes in zip(args.images, predict_top(images, args.backbone, args.top)):
        print(path)
        for index, name, probability in classes:
            print(f"  {probability:6.3f}  {name} ({index})")
    return 0


def command_doctor(args):
    from tlhelpers.doctor import collect_status, format_status

    print("\n".join(format_status(collect_status())))
    return 0


def command_source_model(args):
    if args.out and not args.retrain:
        raise ValueError(f"Received --out {args.out} without --retrain. --out needs --retrain: it is "
                         "where a retrained source model is written.")
    if args.task == "clutter":
        return _shipped_source_model(args)
    if args.retrain:
        raise ValueError("Received --retrain with --task clean. The clean source model is trained on "
                         "first use; delete its cache file to train it again, or use --task clutter.")
    from tlhelpers.source_models import get_source_model

    _, info = get_source_model(args.backbone, seed=args.seed)
    print(f"{args.backbone} source model: source-task test accuracy {info['source_test_accuracy']:.3f}, "
          f"trained in {info['train_seconds']:.0f} s, cached at {info['path']}")
    return 0


def _require_two_seeds(seeds):
    if len(seeds) < 2:
        raise ValueError(f"Received --seeds {' '.join(map(str, seeds))}. Expected at least 2 seeds: "
                         "differences are judged by an interval over seeds.")


def _print_report(started, out, paths):
    print(f"Done in {time.perf_counter() - started:.0f} s. Report: {os.path.abspath(out)}")
    for name, path in paths.items():
        print(f"  {name}: {path}")


def command_study(args):
    from tlhelpers.study import StudyConfig, check_study_config, run_study, write_study_report

    config = StudyConfig(backbones=tuple(args.backbone), arms=tuple(args.arms),
                         labels_per_class=tuple(args.labels_per_class), seeds=tuple(args.seeds), steps=args.steps,
                         eval_every=args.eval_every,
                         dataset=args.dataset)
    _require_two_seeds(config.seeds)
    check_study_config(config)
    started = time.perf_counter()
    # Each finished run is appended here, so that an interrupted study keeps what it ran.
    partial = Path(args.out) / "runs-partial.jsonl"
    partial.parent.mkdir(parents=True, exist_ok=True)
    partial.unlink(missing_ok=True)

    def keep(result):
        with open(partial, "a") as handle:
            handle.write(json.dumps(result.to_dict()) + "\n")

    results, pixels = run_study(config, verbose=0 if args.quiet else 1, on_result=keep)
    paths = write_study_report(args.out, results, pixels, config)
    partial.unlink(missing_ok=True)
    if not args.quiet:
        _print_report(started, args.out, paths)
    return 0


def command_budget_study(args):
    from tlhelpers import budget_study

    config = budget_study.BUDGET_STUDIES[args.weights]
    out = Path(args.out or budget_study.study_folder(args.weights))
    backbones, arms = args.backbone or config.backbones, args.arms or config.arms
    _check_names("arms", arms, config.arms)
    _check_names("backbone", backbones, config.backbones)
    folder = out / "runs"
    started = time.perf_counter()
    if not args.report_only:
        counts = budget_study.build(config, folder, hours=args.hours, verbose=0 if args.quiet else 1,
                                    only=lambda spec: spec["arm"] in arms
                                    and spec["backbone"] in (*backbones, "small_cnn"))
        if not args.quiet:
            print(f"Trained {counts['trained']} runs; {counts['stored']} stored, {counts['pending']} of those "
                  "asked for still to run (run the same command again to continue).")
    paths = budget_study.write_report(config, folder, out)
    if not args.quiet:
        _print_report(started, out, paths)
    return 0


def _check_names(option, values, allowed):
    unknown = [value for value in values if value not in allowed]
    if unknown:
        raise ValueError(f"Received --{option} {' '.join(values)}. Expected any of: {', '.join(allowed)}.")


def command_transferability(args):
    from tlhelpers import transferability

    config = transferability.TransferabilityConfig(arms=tuple(args.arms), stages=tuple(args.stages),
                                                   seeds=tuple(args.seeds), target_per_class=args.target_per_class)
    _require_two_seeds(config.seeds)
    transferability.check_config(config)
    started = time.perf_counter()
    rows = transferability.run_transferability(config, verbose=0 if args.quiet else 1)
    paths = transferability.write_report(args.out, rows, config)
    if not args.quiet:
        _print_report(started, args.out, paths)
    return 0


def _shipped_source_model(args):
    from tlhelpers import shipped_sources
    from tlhelpers.paths import display_path, resolve_cache_dir

    if not args.retrain:
        path = shipped_sources.check_shipped_file(args.backbone)
        _, md5, accuracy = shipped_sources.SHIPPED[args.backbone]
        print(f"{args.backbone} source model (clutter): {display_path(path)}, md5 {md5} (checked), "
              f"source-task test accuracy {accuracy:.3f}")
        return 0
    out = args.out or resolve_cache_dir() / "retrained_source_models"
    recipe = shipped_sources.RECIPES[args.backbone]
    print(f"Retraining the {args.backbone} source model: {recipe['epochs']} epochs over the cluttered "
          f"source task; each epoch's time is printed as it ends.", flush=True)
    info = shipped_sources.retrain(args.backbone, out, verbose=2)
    print(f"{args.backbone} source model retrained in {info['train_seconds']:.0f} s: source-task test "
          f"accuracy {info['source_test_accuracy']:.3f}, md5 {info['md5']}, written to "
          f"{display_path(Path(out) / info['file'])}")
    compared = info.get("compared_to_shipped")
    if compared:
        same = "the same file" if compared["same_file"] else (
            f"not the same file (largest weight difference {compared['max_abs_weight_difference']:.3g})")
        print(f"Against the shipped file: {same}; accuracy {compared['accuracy_difference']:+.3f} "
              f"(shipped {compared['shipped_source_test_accuracy']:.3f}).")
    return 0


def main(argv=None):
    """Entry point; returns the exit code (2 for bad input, with one clear message)."""
    args = build_parser().parse_args(argv)
    commands = {"run": command_run, "study": command_study, "budget-study": command_budget_study,
                "transferability": command_transferability, "source-model": command_source_model, "weights": command_weights,
                "data": command_data, "predict": command_predict, "doctor": command_doctor}
    try:
        return commands[args.command](args)
    # Every error a user can cause: the package's own, a bad argument, an unreadable file.
    except (TlhelpersError, ValueError, OSError) as error:
        if args.debug:
            raise
        print(f"tlhelpers: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
