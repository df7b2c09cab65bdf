"""Your own images: a folder with one subfolder per class.

Layouts understood:
    root/<class>/**/<image>                       (a test split is held out)
    root/train/<class>/..., root/test/<class>/... (and optionally validation/)

Every file is decoded once, up front. Files that are not images, or that fail
to decode (truncated JPEG, empty file, garbage with an image extension), are
skipped and reported instead of crashing training in the middle of an epoch.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from tlhelpers.datasets import DataError, ImageSet, stratified_split

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp")
SPLIT_NAMES = ("train", "validation", "test")


def _class_files(class_dir):
    """All files below `class_dir`, nested folders included, in sorted order."""
    found = []
    for folder, subfolders, files in os.walk(class_dir):
        subfolders.sort()
        found.extend(Path(folder) / name for name in sorted(files))
    return found


# The first bytes of each format `tf.io.decode_image` reads.
IMAGE_SIGNATURES = ((b"\xff\xd8\xff", "JPEG"), (b"\x89PNG\r\n\x1a\n", "PNG"), (b"GIF8", "GIF"), (b"BM", "BMP"))


def image_format(data):
    """The image format whose signature `data` starts with, or None."""
    return next((name for signature, name in IMAGE_SIGNATURES if data.startswith(signature)), None)


def _decode(path, image_size, square=False):
    """Decode and resize one file (its centre square with `square`); return (array, None) or (None, reason)."""
    import tensorflow as tf

    if path.suffix.lower() not in IMAGE_EXTENSIONS:
        return None, "not an image file (extension)"
    data = path.read_bytes()
    if not data:
        return None, "empty file"
    kind = image_format(data)
    if kind is None:
        return None, "not an image: its first bytes are not those of a JPEG, PNG, GIF or BMP file"
    try:
        image = tf.io.decode_image(data, channels=3, expand_animations=False)
        if square:
            height, width = int(image.shape[0]), int(image.shape[1])
            side = min(height, width)
            image = tf.image.crop_to_bounding_box(image, (height - side) // 2, (width - side) // 2, side, side)
        image = tf.image.resize(image, image_size, antialias=True)
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError):
        return None, f"truncated or damaged {kind}: it starts like one but does not decode"
    return np.clip(np.rint(image.numpy()), 0, 255).astype(np.uint8), None


def read_image(path, image_size=(224, 224), square=False):
    """One image file as a uint8 RGB array of `image_size`, e.g. a new image to predict.

    With `square=True` the centre square is cropped before resizing (the usual
    ImageNet evaluation view), so a wide photo is not squashed.

    Raises:
        DataError: the file is missing or not a readable image, with the reason.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"Received image path {str(path)!r}: no such file.")
    image, reason = _decode(path, image_size, square)
    if image is None:
        raise DataError(f"Received image file {str(path)!r}: {reason}. Expected a JPEG, PNG, GIF or BMP image.")
    return image


def write_image_folder(data, root):
    """Write an `ImageSet` as PNG files, `root/<class>/<index>.png` ("/" in a class name becomes "-").

    The layout `load_image_folder` reads: a folder of your own images made from any task.

    Returns:
        `root` as a `Path`.
    """
    import tensorflow as tf

    root = Path(root)
    for index, (image, label) in enumerate(zip(data.images, data.labels)):
        folder = root / data.class_names[label].replace("/", "-")
        folder.mkdir(parents=True, exist_ok=True)
        tf.io.write_file(str(folder / f"{index:05d}.png"), tf.io.encode_png(np.asarray(image, np.uint8)))
    return root


def read_class_folders(root, image_size=(224, 224), *, class_names=None, verbose=True):
    """Decode every image below `root/<class>/`.

    Args:
        root: Folder with one subfolder per class.
        image_size: `(height, width)` every image is resized to.
        class_names: Expected classes (used for test/validation folders so
            that labels agree with the training folder); default: the sorted
            subfolder names.
        verbose: Show a progress bar.

    Returns:
        `(ImageSet, skipped)` where `skipped` lists `(path, reason)`.

    Raises:
        DataError: missing or empty folder, a class without any valid image,
            class folders that differ from `class_names`.
    """
    from keras.utils import Progbar

    root = Path(root)
    if not root.is_dir():
        raise DataError(f"Image folder {str(root)!r} does not exist or is not a folder.")
    found = tuple(sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")))
    if not found:
        raise DataError(
            f"Image folder {str(root)!r} has no class subfolders. Expected one subfolder "
            "per class, e.g. root/cats/*.jpg and root/dogs/*.jpg."
        )
    if class_names is not None and tuple(class_names) != found:
        raise DataError(
            f"Class folders in {str(root)!r} are {list(found)}; expected the same classes "
            f"as the training folder: {list(class_names)}."
        )
    files = [(label, path) for label, name in enumerate(found) for path in _class_files(root / name)]
    progress = Progbar(len(files), unit_name="file") if verbose and len(files) > 200 else None
    images, labels, skipped = [], [], []
    for count, (label, path) in enumerate(files, start=1):
        image, reason = _decode(path, tuple(image_size))
        if image is None:
            skipped.append((str(path), reason))
        else:
            images.append(image)
            labels.append(label)
        if progress is not None:
            progress.update(count)
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=len(found))
    empty = [name for name, count in zip(found, counts) if count == 0]
    if empty:
        raise DataError(
            f"Class folder(s) {empty} in {str(root)!r} contain no readable image "
            f"({len(skipped)} file(s) skipped). Each class needs at least one image "
            f"with extension {', '.join(IMAGE_EXTENSIONS)}."
        )
    data = ImageSet(np.stack(images), np.asarray(labels, dtype=np.int64), found)
    return data, skipped


def load_image_folder(root, image_size=(224, 224), *, test_fraction=0.2, seed=0, verbose=True):
    """Load a folder of class subfolders, with or without train/test splits.

    If `root` has `train/` and `test/` subfolders (and optionally
    `validation/`), those splits are used. Otherwise a seeded, stratified
    `test_fraction` of every class is held out as the test split.

    Returns:
        `(pool, test, validation, skipped)`: `validation` is None unless the
        folder provides one; `skipped` lists `(path, reason)` of every file
        that was not used.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"Image folder {str(root)!r} does not exist or is not a folder.")
    has_splits = (root / "train").is_dir() and (root / "test").is_dir()
    if not has_splits:
        data, skipped = read_class_folders(root, image_size, verbose=verbose)
        pool, test = stratified_split(data, test_fraction, seed)
        validation = None
    else:
        pool, skipped = read_class_folders(root / "train", image_size, verbose=verbose)
        test, more = read_class_folders(root / "test", image_size, class_names=pool.class_names, verbose=verbose)
        skipped += more
        validation = None
        if (root / "validation").is_dir():
            validation, more = read_class_folders(
                root / "validation", image_size, class_names=pool.class_names, verbose=verbose
            )
            skipped += more
    if skipped and verbose:
        print(f"Skipped {len(skipped)} file(s) that are not readable images:")
        for path, reason in skipped[:10]:
            print(f"  {path}: {reason}")
        if len(skipped) > 10:
            print(f"  ... and {len(skipped) - 10} more (see the returned list).")
    return pool, test, validation, skipped
