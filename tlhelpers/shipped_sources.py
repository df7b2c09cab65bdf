"""Source models trained once on Fashion-MNIST in clutter and shipped in `data/source_models/`.

The develop-model approach, done for the student: a ResNet50 and a VGG16 base
trained by `tlhelpers source-model --task clutter --retrain` with the recipe below, stored as
their base weights in float16 (`.npz`, one array per weight in Keras's
`get_weights()` order) with an md5 recorded here and in `data/README.md`.
Loading one builds the architecture at any input size and sets its weights:
a few seconds, on any machine, with no training at first use.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from tlhelpers.clutter import DEFAULT_CLUTTER, clutter_images, redraw_seed
from tlhelpers.datasets import (
    DATA_DIR, DEFAULT_SOURCE_CLASSES, ImageSet, load_embedded, resolve_classes, subsample_per_class,
)
from tlhelpers.downloads import file_digest
from tlhelpers.errors import SourceWeightsError
from tlhelpers.pipeline import make_dataset
from tlhelpers.registry import check_image_size, get_backbone
from tlhelpers.results import atomic_output, atomic_write_text
from tlhelpers.runtime import TimeEstimate, set_seed
from tlhelpers.source_models import build_source_model

SHIPPED_DIR = DATA_DIR / "source_models"
# The cluttered view the shipped models were trained on (the default target task's too).
SOURCE_CLUTTER = DEFAULT_CLUTTER
SOURCE_IMAGE_SIZE = 48

# The committed recipes. Every epoch sees the source pool in a fresh clutter
# draw (same garments, new places and fragments), which keeps a 10,000-image
# pool from being memorised. Adam with cosine decay; VGG16 (no BatchNormalization)
# needs the lower rate to leave chance at all.
RECIPES = {
    "resnet50": {"epochs": 12, "learning_rate": 1e-3, "batch_size": 64, "seed": 0},
    "vgg16": {"epochs": 10, "learning_rate": 1e-4, "batch_size": 64, "seed": 0},
}

# name -> (file name, md5 of the file, source-task test accuracy of the shipped
# float16 weights). Filled in when a model is trained and committed.
SHIPPED = {
    "resnet50": ("resnet50-clutter48.npz", "cd00ee2ed48c9c095ee90cabfd116684", 0.8224),
    "vgg16": ("vgg16-clutter48.npz", "bdca132d316e6186b5bc05b3a9c5ca65", 0.8736),
}


def uses_shipped(options):
    """Whether embedded-weights `options` name a shipped source model (`clutter` not given as None)."""
    return "clutter" not in options or options["clutter"] is not None


def shipped_path(backbone):
    """Where the shipped base weights of `backbone` live."""
    _entry(backbone)
    return SHIPPED_DIR / SHIPPED[backbone][0]


def _entry(backbone):
    if backbone not in SHIPPED:
        raise ValueError(f"Received backbone={backbone!r} for a shipped source model. Expected one "
                         f"of: {', '.join(SHIPPED) or '(none shipped yet)'}.")
    return SHIPPED[backbone]


def _restore_hint(backbone, name):
    return (f"Restore it with `git checkout -- data/source_models/{name}` or retrain it with "
            f"`tlhelpers source-model --task clutter --backbone {backbone} --retrain` (see data/README.md).")


def _check_file(backbone, path, check_md5):
    """Raise `SourceWeightsError` unless `path` exists and (with `check_md5`) has the shipped md5."""
    name = _entry(backbone)[0] if check_md5 else path.name
    if not path.is_file():
        raise SourceWeightsError(f"Shipped {backbone} source model not found at {path}. "
                                 f"{_restore_hint(backbone, name)}")
    if check_md5:
        expected, found = SHIPPED[backbone][1], file_digest(path, "md5")
        if found != expected:
            raise SourceWeightsError(
                f"Shipped {backbone} source model {path} has md5 {found}; expected {expected} "
                f"(truncated, changed or another version). {_restore_hint(backbone, name)}")


def check_shipped_file(backbone):
    """The path of `backbone`'s shipped file, after checking that it exists and has the committed md5
    (what `read_base_weights` checks, without reading the weights).

    Raises:
        SourceWeightsError: as `read_base_weights`.
    """
    path = shipped_path(backbone)
    _check_file(backbone, path, check_md5=True)
    return path


def shipped_info(backbone):
    """The provenance of `backbone`'s shipped source model (the `.json` beside it: source classes,
    clutter, recipe, source-task test accuracy per epoch, machine), with its `path` and `md5` checked.

    Raises:
        SourceWeightsError: as `read_base_weights`.
    """
    import json

    path = check_shipped_file(backbone)
    info = json.loads(path.with_suffix(".json").read_text())
    return {**info, "path": str(path), "md5": SHIPPED[backbone][1]}


def read_base_weights(backbone, path=None, check_md5=True):
    """The shipped base weights of `backbone` as float32 arrays, md5-checked.

    `path` reads another file of the same format (a retrained model); its md5
    is checked against the shipped one only when `check_md5` is true.

    Raises:
        SourceWeightsError: the file is missing, unreadable or has another md5,
            saying which file, which md5 was expected and how to restore it.
    """
    path = Path(path) if path is not None else shipped_path(backbone)
    _check_file(backbone, path, check_md5)
    try:
        with np.load(path, allow_pickle=False) as archive:
            return [archive[f"w{i:03d}"].astype(np.float32) for i in range(len(archive.files))]
    except Exception as error:  # zipfile and NumPy raise several kinds for a bad archive
        raise SourceWeightsError(f"Shipped {backbone} source model {path} cannot be read ({error}). "
                                 f"{_restore_hint(backbone, path.name)}") from error


def write_base_weights(weights, path):
    """Store base weights as float16 arrays `w000`, `w001`, ... in a compressed `.npz`.

    The archive is written to a temporary name and renamed, so an interrupted
    write never leaves a partial file under the final name.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as temporary:
        with open(temporary, "wb") as handle:
            np.savez_compressed(handle, **{f"w{i:03d}": np.asarray(w, np.float16)
                                           for i, w in enumerate(weights)})
    return path


def check_shipped_task(backbone, clutter=SOURCE_CLUTTER, source_classes=DEFAULT_SOURCE_CLASSES, recipe=None,
                       seed=0, **ignored):
    """Raise unless a source model of `backbone` was shipped for this cluttered source task.

    `ignored` takes `cache_dir` and `verbose`, which do not apply to a shipped file.

    Raises:
        ValueError: for another clutter spec, other source classes, a recipe or
            another seed, saying what is shipped and how to get the clean
            source model trained on first use instead.
    """
    _entry(backbone)
    if clutter != SOURCE_CLUTTER or resolve_classes(source_classes) != resolve_classes(DEFAULT_SOURCE_CLASSES):
        raise ValueError(
            f"Received clutter={clutter} and source_classes={list(source_classes)}. The shipped {backbone} "
            f"source model was trained on clutter={SOURCE_CLUTTER} with source classes "
            f"{list(DEFAULT_SOURCE_CLASSES)}; train another with shipped_sources.train_source, or pass "
            "clutter=None for the clean source model trained on first use.")
    if recipe is not None or seed not in (None, 0):
        raise ValueError(
            f"Received recipe={recipe!r} and seed={seed!r} for the shipped {backbone} source model, which "
            f"was trained once with shipped_sources.RECIPES[{backbone!r}] and seed 0. A recipe or seed of "
            "your own applies to the clean source model trained on first use: pass clutter=None too.")


def build_source_base(backbone, image_size=SOURCE_IMAGE_SIZE, pooling="avg", weights=None):
    """The backbone's base at `image_size`, with the shipped weights (or `weights` given)."""
    spec = get_backbone(backbone)
    size = check_image_size(spec, image_size)
    base = spec.builder(include_top=False, weights=None, input_shape=(*size, 3), pooling=pooling)
    base.set_weights(read_base_weights(backbone) if weights is None else weights)
    return base


def source_task(clutter=SOURCE_CLUTTER, classes=DEFAULT_SOURCE_CLASSES, examples_per_class=None):
    """The cluttered source task: `(pool, test)` of the source classes (a seeded subset of
    `examples_per_class` per class of both, when given: for quick checks)."""
    pool, test = load_embedded(classes, clutter=clutter)
    return _subset(pool, examples_per_class), _subset(test, examples_per_class)


def _subset(data, examples_per_class):

    return subsample_per_class(data, examples_per_class) if examples_per_class else data


def _redrawn_pool(clean_pool, clutter, draw, examples_per_class):
    """The source pool in the `draw`-th clutter view: what `source_task` gives for
    `redraw_seed(clutter, draw)`, without loading and cluttering the test split again."""
    drawn = ImageSet(clutter_images(clean_pool.images, redraw_seed(clutter, draw)), clean_pool.labels,
                     clean_pool.class_names)
    return _subset(drawn, examples_per_class)


def train_source(backbone, recipe=None, clutter=SOURCE_CLUTTER, classes=DEFAULT_SOURCE_CLASSES,
                 image_size=SOURCE_IMAGE_SIZE, verbose=1):
    """Train a source model on the cluttered source task with a fresh clutter draw per epoch.

    Returns:
        `(model, base, info)`: the source model (base and source classifier),
        its base, and a dict with the recipe, the source-task test accuracy
        per epoch and of the float16 weights that are shipped, and timing.
    """
    import keras

    spec = get_backbone(backbone)
    size = check_image_size(spec, image_size)
    recipe = dict(RECIPES[backbone] if recipe is None else recipe)
    subset = recipe.get("examples_per_class")
    pool, test = source_task(clutter, classes, subset)
    clean_pool = load_embedded(classes)[0] if recipe["epochs"] > 1 else None
    set_seed(recipe["seed"])
    model = build_source_model(backbone, size, len(pool.class_names))
    base = model.get_layer(backbone)
    steps_per_epoch = -(-len(pool) // recipe["batch_size"])
    schedule = keras.optimizers.schedules.CosineDecay(
        recipe["learning_rate"], decay_steps=recipe["epochs"] * steps_per_epoch)
    model.compile(keras.optimizers.Adam(schedule), "sparse_categorical_crossentropy", metrics=["accuracy"])
    test_ds = make_dataset(test, size, spec.preprocess, 256)
    curve, started = [], time.perf_counter()
    # Timed once, in the first epoch: the whole recipe's steps.
    estimate = TimeEstimate(recipe["epochs"] * steps_per_epoch, f"Retraining the {backbone} source model")
    for epoch in range(recipe["epochs"]):
        drawn = _redrawn_pool(clean_pool, clutter, epoch, subset) if epoch else pool
        train_ds = make_dataset(drawn, size, spec.preprocess, recipe["batch_size"], shuffle=True,
                                seed=recipe["seed"] + epoch)
        model.fit(train_ds, epochs=epoch + 1, initial_epoch=epoch, shuffle=False, verbose=verbose,
                  callbacks=[estimate] if verbose else [])
        curve.append(round(float(model.evaluate(test_ds, verbose=0)[1]), 4))
        if verbose:
            print(f"epoch {epoch + 1}/{recipe['epochs']}: source-task test accuracy {curve[-1]:.3f} "
                  f"({time.perf_counter() - started:.0f} s)", flush=True)
    # What is shipped is the float16 rounding: measure that.
    base.set_weights([np.asarray(w, np.float16).astype(np.float32) for w in base.get_weights()])
    shipped_accuracy = round(float(model.evaluate(test_ds, verbose=0)[1]), 4)
    info = {
        "backbone": backbone, "image_size": list(size), "source_classes": list(pool.class_names),
        "clutter": clutter.to_dict(), "recipe": recipe, "test_accuracy_per_epoch": curve,
        "source_test_accuracy": shipped_accuracy, "train_seconds": round(time.perf_counter() - started, 1),
        "train_examples_per_epoch": len(pool),
    }
    return model, base, info


def _cpu_model():
    """The CPU model name (Linux), else the machine type."""
    import platform

    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def retrain(backbone, out_dir, verbose=1):
    """Train `backbone`'s source model with the committed recipe and write it to `out_dir`.

    Writes `<backbone>-clutter48.npz` (float16 base weights) and a `.json` of
    provenance next to it. When a shipped file exists, the returned info also
    says how close the new weights and accuracy are to it.

    Returns:
        The info dict (also in the `.json`).
    """
    import json

    import keras
    import tensorflow as tf


    _, base, info = train_source(backbone, verbose=verbose)
    name = f"{backbone}-clutter{SOURCE_IMAGE_SIZE}.npz"
    path = write_base_weights(base.get_weights(), Path(out_dir) / name)
    info.update({"file": name, "md5": file_digest(path, "md5"), "bytes": path.stat().st_size,
                 "keras": keras.__version__, "tensorflow": tf.__version__,
                 "machine": _cpu_model()})
    if backbone in SHIPPED and shipped_path(backbone).is_file() and shipped_path(backbone) != path:
        shipped = read_base_weights(backbone)
        new = [w.astype(np.float32) for w in base.get_weights()]
        info["compared_to_shipped"] = {
            "same_file": info["md5"] == SHIPPED[backbone][1],
            "max_abs_weight_difference": float(max(np.max(np.abs(a - b)) for a, b in zip(shipped, new))),
            "shipped_source_test_accuracy": SHIPPED[backbone][2],
            "accuracy_difference": round(info["source_test_accuracy"] - SHIPPED[backbone][2], 4),
        }
    atomic_write_text(path.with_suffix(".json"), json.dumps(info, indent=2))
    return info
