"""Datasets: the embedded Fashion-MNIST subset, scikit-learn's digits, the clip-art subset, image folders.

Every loader returns `ImageSet`s of uint8 images shaped `(N, H, W, C)`, so
the rest of the package never sees file formats. `make_splits` turns a pool
of labelled examples into a stratified, seeded train / validation sample and
leaves the test split untouched.
"""

from __future__ import annotations

import dataclasses
import zipfile
import zlib
from pathlib import Path

import numpy as np

from tlhelpers.errors import DataError  # noqa: F401  (raised here; importable from here)

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
EMBEDDED_FILE = DATA_DIR / "fashion_mnist_subset.npz"
EMBEDDED_CLASS_NAMES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
DEFAULT_SOURCE_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat")
DEFAULT_TARGET_CLASSES = ("Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
DIGITS_SIZE = 28
CLIPART_FILE = DATA_DIR / "clipart_subset.npz"
CLIPART_CLASS_NAMES = ("mammals", "birds", "fruit", "vehicles", "hardware")
CLIPART_REBUILD = ("Rebuild it with `python data/build_clipart_subset.py` (it needs Debian's "
                   "`openclipart-png` package; see data/README.md).")


@dataclasses.dataclass
class ImageSet:
    """Images with integer labels.

    Attributes:
        images: uint8 array `(N, H, W, C)` with C = 1 (grey) or 3 (RGB).
        labels: int array `(N,)` with values in `0 .. len(class_names) - 1`.
        class_names: Name of each label index.
    """

    images: np.ndarray
    labels: np.ndarray
    class_names: tuple

    def __len__(self):
        return len(self.labels)

    def subset(self, index):
        """Return the examples at `index` as a new ImageSet."""
        return ImageSet(self.images[index], self.labels[index], self.class_names)

    def counts(self):
        """Examples per class, in label order."""
        return np.bincount(self.labels, minlength=len(self.class_names))


@dataclasses.dataclass
class Splits:
    """Train / validation / test splits of one task.

    Attributes:
        train: Sampled training examples (`labels_per_class` of each class).
        validation: Examples for learning curves, drawn from the training
            pool and disjoint from `train`; never from the test split.
        test: The untouched test split (or its fixed per-class subset).
        class_names: Names of the task's classes.
        skipped: `(path, reason)` for every file a folder loader skipped.
    """

    train: ImageSet
    validation: ImageSet
    test: ImageSet
    class_names: tuple
    skipped: list = dataclasses.field(default_factory=list)


def resolve_classes(classes, class_names=EMBEDDED_CLASS_NAMES):
    """Turn class names or indices into a tuple of indices into `class_names`.

    Raises:
        DataError: for unknown names, out-of-range indices or repeats.
    """
    indices = []
    for item in classes:
        if isinstance(item, str) and not item.isdigit():
            if item not in class_names:
                raise DataError(
                    f"Received class {item!r}. Expected one of: {', '.join(class_names)} "
                    f"(or an index 0..{len(class_names) - 1})."
                )
            indices.append(class_names.index(item))
        else:
            index = int(item)
            if not 0 <= index < len(class_names):
                raise DataError(
                    f"Received class index {index}. Expected 0..{len(class_names) - 1}."
                )
            indices.append(index)
    if len(set(indices)) != len(indices):
        raise DataError(f"Received repeated classes: {list(classes)}. Each class may appear once.")
    if len(indices) < 2:
        raise DataError(f"Received {len(indices)} class(es). A task needs at least 2.")
    return tuple(indices)


def _select_classes(images, labels, indices, class_names):
    """Keep the examples of `indices`, relabelled 0..k-1 in that order."""
    mapping = np.full(len(class_names), -1)
    mapping[list(indices)] = np.arange(len(indices))
    keep = np.isin(labels, indices)
    return ImageSet(
        images[keep][..., None],
        mapping[labels[keep]].astype(np.int64),
        tuple(class_names[i] for i in indices),
    )


def load_embedded(classes=DEFAULT_TARGET_CLASSES, clutter=None):
    """Load the embedded Fashion-MNIST subset restricted to `classes`.

    Args:
        classes: Class names or indices (0-9); label i of the result is
            `classes[i]`.
        clutter: None for the clean images, or a `tlhelpers.clutter.ClutterSpec`
            for the cluttered view (see `tlhelpers.clutter`). The pool is
            cluttered only with fragments of the pool, the test split only with
            fragments of the test split, both only from `classes`.

    Returns:
        `(pool, test)`: the training pool (2,000 per class) and the test split
        (500 per class), 28x28x1 uint8 (canvas x canvas x 1 in clutter).
    """
    indices = resolve_classes(classes)
    if not EMBEDDED_FILE.is_file():
        raise DataError(
            f"Embedded dataset not found at {EMBEDDED_FILE}. Rebuild it with "
            "`python data/build_fashion_subset.py` (see data/README.md)."
        )
    with np.load(EMBEDDED_FILE, allow_pickle=False) as archive:
        arrays = {key: archive[key] for key in ("x_train", "y_train", "x_test", "y_test")}
    pool = _select_classes(arrays["x_train"], arrays["y_train"], indices, EMBEDDED_CLASS_NAMES)
    test = _select_classes(arrays["x_test"], arrays["y_test"], indices, EMBEDDED_CLASS_NAMES)
    if clutter is not None:
        from tlhelpers.clutter import clutter_images

        pool_clutter, test_clutter = _split_clutter(clutter)
        pool.images = clutter_images(pool.images, pool_clutter)
        test.images = clutter_images(test.images, test_clutter)
    return pool, test


def _split_clutter(clutter):
    """`(pool's, test split's)` clutter of `load_embedded`: the test split gets views of its own."""
    from tlhelpers.clutter import TEST_SEED_OFFSET, redraw_seed

    return clutter, redraw_seed(clutter, TEST_SEED_OFFSET)


# The embedded target tasks by name (an experiment's `dataset`): the garments in
# clutter (`clutter.DEFAULT_CLUTTER`, the task the shipped source models were
# trained on; the default) and the same garments clean (an easy target: pixels suffice).
EMBEDDED_TASKS = ("embedded", "embedded-clean")


def load_embedded_task(name="embedded", classes=DEFAULT_TARGET_CLASSES):
    """`(pool, test)` of an embedded target task of `EMBEDDED_TASKS` restricted to `classes`.

    Raises:
        ValueError: for another name.
    """
    if name not in EMBEDDED_TASKS:
        raise ValueError(f"Received dataset={name!r}. Expected one of: {', '.join(EMBEDDED_TASKS)}.")
    from tlhelpers.clutter import DEFAULT_CLUTTER

    return load_embedded(classes, clutter=DEFAULT_CLUTTER if name == "embedded" else None)


def garment_places(classes=DEFAULT_TARGET_CLASSES):
    """Where each garment of `load_embedded_task("embedded", classes)` lies on its canvas: `(pool,
    test)`, each `(N, 2)` top-left corners `(y, x)` of a 28x28 square, in the order of the images."""
    from tlhelpers.clutter import DEFAULT_CLUTTER, garment_offsets

    pool, test = load_embedded(classes)
    side = pool.images.shape[1]
    return tuple(garment_offsets(len(split), side, spec)
                 for split, spec in zip((pool, test), _split_clutter(DEFAULT_CLUTTER)))


def load_digits(test_fraction=0.3, seed=0):
    """Load scikit-learn's 8x8 digits in the embedded format (28x28 grey uint8).

    A dissimilar target task: handwritten digits instead of clothing. The 0-16
    intensities are scaled to 0-255 and the images upsampled to 28x28.

    Returns:
        `(pool, test)` with a seeded, stratified test split.
    """
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    small = (bunch.images * (255.0 / 16.0)).astype(np.float32)[..., None]
    import tensorflow as tf

    large = tf.image.resize(small, (DIGITS_SIZE, DIGITS_SIZE), method="bilinear").numpy()
    data = ImageSet(
        np.clip(np.rint(large), 0, 255).astype(np.uint8),
        bunch.target.astype(np.int64),
        tuple(str(d) for d in range(10)),
    )
    return stratified_split(data, test_fraction, seed)


def load_clipart():
    """Load the vendored clip-art subset: public-domain drawings of five classes, 128x128 RGB.

    A dissimilar target task with few examples: mammals, birds, fruit,
    vehicles and computer hardware from Debian's `openclipart-png`, each
    drawing centred on white (`data/README.md`). The test split is fixed and
    holds whole near-duplicate groups, so no drawing in it has a near-copy in
    the pool (near-copies within the pool may still fall in both the training
    and the validation draw of `make_splits`).

    Returns:
        `(pool, test)`: the training pool (28 to 72 images per class) and the
        test split (16 to 43 per class), uint8 `(N, 128, 128, 3)`.

    Raises:
        DataError: if `CLIPART_FILE` is missing, unreadable or not the
            expected arrays, saying how to rebuild it.
    """
    if not CLIPART_FILE.is_file():
        raise DataError(f"Clip-art dataset not found at {CLIPART_FILE}. {CLIPART_REBUILD}")
    try:
        with np.load(CLIPART_FILE, allow_pickle=False) as archive:
            images, labels, is_test = archive["images"], archive["labels"], archive["is_test"]
            class_names = tuple(str(name) for name in archive["class_names"])
    except (OSError, EOFError, KeyError, ValueError, zipfile.BadZipFile, zlib.error) as error:
        raise DataError(f"Clip-art dataset at {CLIPART_FILE} is unreadable ({type(error).__name__}: "
                        f"{error}). {CLIPART_REBUILD}") from error
    if (class_names != CLIPART_CLASS_NAMES or images.dtype != np.uint8 or images.ndim != 4
            or images.shape[-1] != 3 or labels.shape != (len(images),) or is_test.shape != labels.shape
            or is_test.dtype != bool or not np.isin(labels, range(len(class_names))).all()):
        raise DataError(f"Clip-art dataset at {CLIPART_FILE} holds images {images.shape} {images.dtype}, "
                        f"{labels.size} labels and classes {list(class_names)}; expected uint8 RGB images "
                        f"with one label and test flag each, classes {list(CLIPART_CLASS_NAMES)}. "
                        f"{CLIPART_REBUILD}")
    data = ImageSet(images, labels.astype(np.int64), class_names)
    return data.subset(~is_test), data.subset(is_test)


# Target tasks shipped with the package or its dependencies, by name (an
# experiment's `dataset`): loaders that take no argument and return `(pool, test)`.
BUNDLED_DATASETS = {"digits": load_digits, "clipart": load_clipart}


def stratified_split(data, test_fraction, seed):
    """Hold out `test_fraction` of every class, seeded; returns `(pool, test)`."""
    if not 0.0 < test_fraction < 1.0:
        raise DataError(f"Received test_fraction={test_fraction}. Expected a value in (0, 1).")
    rng = np.random.default_rng(seed)
    test_index = []
    for label in range(len(data.class_names)):
        members = rng.permutation(np.flatnonzero(data.labels == label))
        test_index.extend(members[: max(1, int(round(test_fraction * len(members))))])
    is_test = np.zeros(len(data), dtype=bool)
    is_test[test_index] = True
    return data.subset(~is_test), data.subset(is_test)


def make_splits(pool, test, labels_per_class, validation_per_class=100, *, seed=0, validation=None,
                test_per_class=None, validation_last=False):
    """Sample a stratified training set and a validation set from `pool`.

    Per class, the pool is shuffled with `seed`; the first
    `validation_per_class` examples become validation, the next
    `labels_per_class` training. With the same seed a smaller budget is a
    subset of a larger one, so label-budget curves compare like with like.
    With `validation_last`, training takes the first `labels_per_class` and
    validation the last `validation_per_class`, so that neither depends on the
    other's size (the protocol of the cluttered task; the clean notebooks'
    stored outputs were made with the first order).

    Args:
        pool: Training pool (an ImageSet).
        test: Test split; returned untouched.
        labels_per_class: Training examples per class.
        validation_per_class: Validation examples per class taken from the
            pool. Ignored when `validation` is given.
        seed: Sampling seed.
        validation: A ready validation split (e.g. a folder's `validation/`).
        test_per_class: Evaluate on this many test examples per class (a
            fixed subset, the same for every seed and budget) to save time;
            None keeps the whole test split.
        validation_last: Draw validation from the end of each class's
            shuffled pool instead of the front (see above).

    Returns:
        A `Splits`.

    Raises:
        DataError: if a class has too few examples, naming the class and counts.
    """
    if int(labels_per_class) < 1:
        raise DataError(f"Received labels_per_class={labels_per_class}. Expected an integer >= 1.")
    held_out = 0 if validation is not None else int(validation_per_class)
    rng = np.random.default_rng(seed)
    train_index, validation_index = [], []
    for label, name in enumerate(pool.class_names):
        members = rng.permutation(np.flatnonzero(pool.labels == label))
        needed = held_out + labels_per_class
        if len(members) < needed:
            raise DataError(
                f"Class {name!r} has {len(members)} training examples; requested "
                f"labels_per_class={labels_per_class} plus {held_out} validation examples "
                f"per class ({needed}). Lower labels_per_class (at most "
                f"{max(len(members) - held_out, 0)}) or validation_per_class."
            )
        if validation_last:
            train_index.extend(members[:labels_per_class])
            validation_index.extend(members[len(members) - held_out:])
        else:
            validation_index.extend(members[:held_out])
            train_index.extend(members[held_out:needed])
    train = pool.subset(np.sort(np.asarray(train_index, dtype=np.int64)))
    if validation is None:
        validation = pool.subset(np.sort(np.asarray(validation_index, dtype=np.int64)))
    if test_per_class is not None:
        test = subsample_per_class(test, test_per_class)
    return Splits(train, validation, test, pool.class_names)


def subsample_per_class(data, per_class, seed=0):
    """The first `per_class` examples of each class after a seeded shuffle (all if fewer)."""
    return data.subset(_per_class_order(data, seed, slice(None, per_class)))


def held_out_per_class(data, used_per_class, seed=0):
    """The examples that `subsample_per_class(data, used_per_class, seed)` leaves out: a confirmation
    set for results whose design was chosen on that subset."""
    return data.subset(_per_class_order(data, seed, slice(used_per_class, None)))


def _per_class_order(data, seed, part):
    """Sorted indices of `part` of each class's examples after a seeded shuffle."""
    rng = np.random.default_rng(seed)
    index = [rng.permutation(np.flatnonzero(data.labels == label))[part]
             for label in range(len(data.class_names))]
    return np.sort(np.concatenate(index)).astype(np.int64)
