"""Embedded source models: the develop-model approach, cached on disk.

A source model is a backbone (same architecture as the ImageNet one) trained
in this project on the embedded dataset's source task. It is trained
deterministically on first use and cached with an atomic write under a user
cache directory, keyed by everything that changes its weights.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from pathlib import Path

import keras

from tlhelpers.datasets import (
    DEFAULT_SOURCE_CLASSES, EMBEDDED_CLASS_NAMES, EMBEDDED_FILE, load_embedded, make_splits, resolve_classes,
)
from tlhelpers.paths import display_path, resolve_cache_dir
from tlhelpers.pipeline import make_dataset
from tlhelpers.registry import check_image_size, get_backbone
from tlhelpers.results import atomic_output, atomic_write_text
from tlhelpers.runtime import TimeEstimate, compile_model, set_seed

SOURCE_IMAGE_SIZE = 32
# Per-backbone recipes, measured on 2 CPU cores (see README "Embedded source models").
# Adam with a cosine-decayed learning rate: a constant 1e-3 made ResNet50's last
# epoch swing (0.85 test accuracy); decaying it settles the weights.
RECIPES = {
    "resnet50": {"epochs": 3, "learning_rate": 1e-3, "schedule": "cosine", "batch_size": 64,
                 "examples_per_class": None},
    "vgg16": {"epochs": 3, "learning_rate": 1e-4, "schedule": "cosine", "batch_size": 64,
              "examples_per_class": None},
}


def _once_per_file_version(memo, path, compute):
    """`compute()`, remembered in `memo` until `file_version(path)` changes.

    `memo` keeps one entry per file. The version is read after `compute()`,
    which may create the file (a source model trained on first use).
    """
    known = memo.get(str(path))
    if known is not None and Path(path).is_file() and known[0] == file_version(path):
        return known[1]
    value = compute()
    memo[str(path)] = (file_version(path), value)
    return value


def file_version(path):
    """Modification and status-change times, size and inode of `path`.

    Writing, replacing or touching the file changes at least one of them (the
    status-change time cannot be set back, unlike the modification time).
    """
    stat = Path(path).stat()
    return stat.st_mtime_ns, stat.st_ctime_ns, stat.st_size, stat.st_ino


# md5 of files hashed in this process. The embedded data file is 10.9 MB and
# every source-model key includes its md5.
_FILE_MD5 = {}


def _file_md5(path):
    return _once_per_file_version(_FILE_MD5, path, lambda: hashlib.md5(Path(path).read_bytes()).hexdigest())


def source_key(backbone, image_size, source_classes, seed, recipe):
    """A short hash of everything that changes a source model's weights."""
    identity = {
        "format": 1,
        "backbone": backbone,
        "image_size": list(image_size),
        "source_classes": list(source_classes),
        "seed": seed,
        "recipe": recipe,
        "dataset_md5": _file_md5(EMBEDDED_FILE),
        "keras": keras.__version__,
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def build_source_model(backbone, image_size, num_classes):
    """The source architecture: the backbone's base with average pooling and a softmax layer."""
    spec = get_backbone(backbone)
    base = spec.builder(include_top=False, weights=None, input_shape=(*image_size, 3), pooling="avg")
    inputs = keras.Input((*image_size, 3))
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="source_classifier")(base(inputs))
    return keras.Model(inputs, outputs, name=f"{backbone}_source")


def train_source_model(backbone, source_classes=DEFAULT_SOURCE_CLASSES, seed=0, recipe=None,
                       image_size=SOURCE_IMAGE_SIZE, verbose=1):
    """Train a source model on the embedded source task.

    Returns:
        `(model, info)`; `info` holds the source-task test accuracy and timing.
    """
    spec = get_backbone(backbone)
    size = check_image_size(spec, image_size)
    recipe = dict(RECIPES[backbone] if recipe is None else recipe)
    pool, test = load_embedded(source_classes)
    if recipe.get("examples_per_class"):
        pool = make_splits(pool, test, recipe["examples_per_class"], 0, seed=seed).train
    set_seed(seed)
    model = build_source_model(backbone, size, len(pool.class_names))
    train_ds = make_dataset(pool, size, spec.preprocess, recipe["batch_size"], shuffle=True, seed=seed)
    learning_rate = recipe["learning_rate"]
    if recipe.get("schedule") == "cosine":
        learning_rate = keras.optimizers.schedules.CosineDecay(
            learning_rate, decay_steps=recipe["epochs"] * len(train_ds))
    # Keras's own Adam: the cached source models were trained with it, and a
    # fused kernel (different rounding) would make a retrained model differ.
    compile_model(model, learning_rate, fused_adam=False)
    test_ds = make_dataset(test, size, spec.preprocess, 256)
    started = time.perf_counter()
    estimate = [TimeEstimate(recipe["epochs"] * len(train_ds), f"Training the {backbone} source model")]
    model.fit(train_ds, epochs=recipe["epochs"], shuffle=False, verbose=verbose,
              callbacks=estimate if verbose else [])
    train_seconds = time.perf_counter() - started
    _, accuracy = model.evaluate(test_ds, verbose=0)
    info = {
        "backbone": backbone,
        "image_size": list(size),
        "source_classes": list(pool.class_names),
        "seed": seed,
        "recipe": recipe,
        "source_test_accuracy": round(float(accuracy), 4),
        "train_seconds": round(train_seconds, 1),
        "train_examples": len(pool),
    }
    return model, info


def source_model_path(backbone, source_classes=DEFAULT_SOURCE_CLASSES, seed=0, recipe=None,
                      image_size=SOURCE_IMAGE_SIZE, cache_dir=None):
    """Where the source model of these options is (or will be) cached: a `.weights.h5` path."""
    size, names, recipe = _resolve_options(backbone, source_classes, recipe, image_size)
    return _cache_path(backbone, size, names, seed, recipe, cache_dir)


def _cache_path(backbone, size, names, seed, recipe, cache_dir):
    key = source_key(backbone, size, names, seed, recipe)
    return resolve_cache_dir(cache_dir) / "source_models" / f"{backbone}-{size[0]}px-{key}.weights.h5"


def _resolve_options(backbone, source_classes, recipe, image_size):
    """`(size, class names, recipe)`: the options in the form the key and training use."""
    size = check_image_size(get_backbone(backbone), image_size)
    names = tuple(EMBEDDED_CLASS_NAMES[i] for i in resolve_classes(source_classes))
    return size, names, dict(RECIPES[backbone] if recipe is None else recipe)


def _info_path(weights_path):
    return weights_path.with_name(weights_path.name.replace(".weights.h5", ".json"))


def _is_cached(weights_path):
    # The info file is written last, so its presence means the weights are complete.
    return _info_path(weights_path).is_file() and weights_path.is_file()


def get_source_model(backbone, *, source_classes=DEFAULT_SOURCE_CLASSES, seed=0, recipe=None,
                     image_size=SOURCE_IMAGE_SIZE, cache_dir=None, verbose=1):
    """Load a cached source model, training and caching it on first use.

    Args:
        backbone: Registry name.
        source_classes: Names or indices of the embedded source classes.
        seed: Training seed.
        recipe: Training recipe; default `RECIPES[backbone]`.
        image_size: Input side the source model is trained at.
        cache_dir: Cache folder (default: `$TLHELPERS_CACHE` or `~/.cache/tlhelpers`).
        verbose: 0 silent, 1 progress bars and messages.

    Returns:
        `(model, info)`: the full source model (base and source classifier)
        and its metadata, including `source_test_accuracy` and `path`.
    """
    size, names, recipe = _resolve_options(backbone, source_classes, recipe, image_size)
    weights_path = _cache_path(backbone, size, names, seed, recipe, cache_dir)
    info_path = _info_path(weights_path)
    if not _is_cached(weights_path):
        with _training_lock(weights_path, verbose):
            # Another process (a notebook run in parallel) may have trained it meanwhile.
            if not _is_cached(weights_path):
                return _train_and_cache(backbone, names, seed, recipe, size, weights_path, verbose)
    model = build_source_model(backbone, size, len(names))
    model.load_weights(weights_path)
    info = json.loads(info_path.read_text())
    if verbose:
        print(f"Loaded embedded {backbone} source model from {display_path(weights_path)} "
              f"(source-task test accuracy {info['source_test_accuracy']:.3f}).")
    return model, {**info, "path": str(weights_path)}


def _train_and_cache(backbone, names, seed, recipe, size, weights_path, verbose):
    if verbose:
        print(f"Training the embedded {backbone} source model on {', '.join(names)} "
              f"({recipe['epochs']} epochs at {size[0]}x{size[1]}; first use only: how long it takes on "
              f"this machine is printed after its first steps). It will be cached in "
              f"{display_path(weights_path.parent)}.")
    model, info = train_source_model(backbone, names, seed, recipe, size, verbose)
    with atomic_output(weights_path) as temporary:
        model.save_weights(temporary)
    atomic_write_text(_info_path(weights_path), json.dumps(info, indent=2))
    if verbose:
        print(f"Source model ready: source-task test accuracy {info['source_test_accuracy']:.3f} "
              f"after {info['train_seconds']:.0f} s of training.")
    return model, {**info, "path": str(weights_path)}


@contextlib.contextmanager
def _training_lock(weights_path, verbose):
    """Hold `<model>.lock` so that processes needing the same source model train it once.

    Parallel notebook checks start several processes at once; the second to
    ask waits for the first one's training and then loads its model. The
    holder removes the lock file when done: a process that still waits on it
    and one that creates a new one both check the cache again once they hold
    their lock. Without `fcntl` (Windows) there is no lock: at worst two
    processes train the same model, and the atomic writes keep the cache whole.
    """
    try:
        import fcntl
    except ImportError:
        yield
        return
    weights_path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = weights_path.with_name(weights_path.name.replace(".weights.h5", ".lock"))
    with open(lock_path, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if verbose:
                print(f"Another process is training the embedded source model {weights_path.name}; "
                      "waiting for it.")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            lock_path.unlink(missing_ok=True)
            fcntl.flock(handle, fcntl.LOCK_UN)


def load_source_base(backbone, image_size=SOURCE_IMAGE_SIZE, pooling="avg", **options):
    """The convolutional base of an embedded source model, at any input size.

    Convolution weights do not depend on the input size, so a base trained at
    one size can be rebuilt at another and given the same weights.

    Args:
        backbone: Registry name.
        image_size: Input `(height, width)` of the returned base.
        pooling: `"avg"`, `"max"` or `None`.
        **options: For `get_source_model` (`source_classes`, `seed`,
            `recipe`, `cache_dir`, `verbose`); `clutter` may be given as None
            (the clean source model is this one; the shipped cluttered ones
            are `shipped_sources.build_source_base`).
    """
    options.pop("clutter", None)
    spec = get_backbone(backbone)
    size = check_image_size(spec, image_size)
    base = spec.builder(include_top=False, weights=None, input_shape=(*size, 3), pooling=pooling)
    base.set_weights(_trained_base_weights(backbone, **options))
    return base


# Base weights of source models read in this process. Reading the file builds a
# whole source model (1.5 s for ResNet50 on 2 cores), and training runs rebuild
# their base once per run.
_BASE_WEIGHTS = {}


def _trained_base_weights(backbone, verbose=1, **options):
    """The trained base's weights (NumPy arrays), read from the cache once per file version."""
    def read():
        model, _ = get_source_model(backbone, verbose=verbose, **options)
        return model.get_layer(backbone).get_weights()

    return _once_per_file_version(_BASE_WEIGHTS, source_model_path(backbone, **options), read)
