"""Photo datasets of the online profile: a registry of archives fetched once into the Keras cache.

Each entry says where the archive comes from (origins tried in order), how
to check it (published hash or size), which classes it holds with how many
images, and where the class folders sit inside the extracted archive. The
archive is fetched and extracted by `tlhelpers.downloads` (hash-checked,
nothing partial left behind); the images are decoded by `tlhelpers.folders`,
which skips unreadable files.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from tlhelpers import downloads
from tlhelpers.datasets import DataError
from tlhelpers.folders import IMAGE_EXTENSIONS, load_image_folder, read_class_folders


@dataclasses.dataclass(frozen=True)
class PhotoDataset:
    """One downloadable photo dataset.

    Attributes:
        name: Registry name (also a `--dataset` value).
        origins: Download URLs, tried in order.
        archive: File name in the Keras `datasets/` cache.
        sha256: Published sha256 of the archive, or None if none is published.
        size: Archive size in bytes.
        class_names: Class folder names, sorted.
        images_per_class: Split folder -> images per class (same order as
            `class_names`); the split `""` means the class folders sit
            directly in `root`.
        root: Folder inside the extracted archive that holds the splits or classes.
        test_split: Split folder used as the test split (None: a seeded,
            stratified `test_fraction` of every class is held out).
        source: Where the facts above come from.
    """

    name: str
    origins: tuple
    archive: str
    sha256: str | None
    size: int
    class_names: tuple
    images_per_class: dict
    root: str
    test_split: str | None
    source: str

    @property
    def num_images(self):
        return sum(sum(counts) for counts in self.images_per_class.values())


PHOTO_DATASETS = {
    "cats_vs_dogs": PhotoDataset(
        name="cats_vs_dogs",
        # The 3,000-image subset of Kaggle's Dogs vs. Cats used by the TensorFlow
        # transfer-learning tutorial. The first origin is the download.tensorflow.org
        # bucket that current code using the tutorial's archive points to; the
        # mledu-datasets address is the tutorial's original one.
        origins=(
            "https://storage.googleapis.com/download.tensorflow.org/example_images/"
            "cats_and_dogs_filtered.zip",
            "https://storage.googleapis.com/mledu-datasets/cats_and_dogs_filtered.zip",
        ),
        archive="cats_and_dogs_filtered.zip",
        # No sha256 or md5 of this archive is published anywhere we could find, so
        # none is stored (never a guessed one); the size, reported identically by
        # downloads in 2021 and 2025 (wget "Length: 68606236"), and the file counts
        # per class folder, checked after extraction, guard it instead.
        sha256=None,
        size=68_606_236,
        class_names=("cats", "dogs"),
        images_per_class={"train": (1000, 1000), "validation": (500, 500)},
        root="cats_and_dogs_filtered",
        test_split="validation",
        source="TensorFlow docs, tutorials/images/transfer_learning (2,000 train and 1,000 "
               "validation files, 2 classes)",
    ),
    "flowers": PhotoDataset(
        name="flowers",
        origins=("https://storage.googleapis.com/download.tensorflow.org/example_images/"
                 "flower_photos.tgz",),
        archive="flower_photos.tgz",
        # tensorflow/datasets, tensorflow_datasets/url_checksums/tf_flowers.txt.
        sha256="4c54ace7911aaffe13a365c34f650e71dd5bf1be0a58b464e5a7183e3e595d9c",
        size=228_813_984,
        class_names=("daisy", "dandelion", "roses", "sunflowers", "tulips"),
        images_per_class={"": (633, 898, 641, 699, 799)},
        root="flower_photos",
        test_split=None,
        source="TensorFlow flower photos (tf_flowers), 3,670 photos, CC-BY 2.0 (LICENSE.txt "
               "in the archive)",
    ),
}


def get_photo_dataset(name):
    """Return the `PhotoDataset` registered as `name`.

    Raises:
        ValueError: for an unknown name, listing the known ones.
    """
    if name not in PHOTO_DATASETS:
        raise ValueError(f"Received photo dataset {name!r}. Expected one of: "
                         f"{', '.join(PHOTO_DATASETS)}.")
    return PHOTO_DATASETS[name]


def check_layout(spec, extracted):
    """Check that an extracted archive holds the expected class folders and image counts.

    Raises:
        DataError: a folder is missing or a class has a different number of images.
    """
    for split, counts in spec.images_per_class.items():
        folder = Path(extracted) / spec.root / split
        for class_name, expected in zip(spec.class_names, counts):
            class_dir = folder / class_name
            found = sum(1 for path in class_dir.rglob("*")
                        if path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS)
            if found != expected:
                raise DataError(f"{class_dir.relative_to(extracted)} has {found} images, expected "
                                f"{expected}: this is not the {spec.name} archive the registry "
                                "describes")


def _add_command(spec):
    return f"data add {spec.name} {spec.archive}"


def fetch_photo_dataset(name, cache_dir=None):
    """Fetch and extract a registry dataset once; return the folder holding its splits or classes.

    Raises:
        ValueError: unknown name.
        DownloadError: not cached and not downloadable (the message says how
            to provide it by hand).
    """
    spec = get_photo_dataset(name)
    extracted = downloads.fetch(
        spec.archive, spec.origins, file_hash=spec.sha256, size=spec.size, extract=True,
        cache_dir=cache_dir, what=f"the photo dataset {spec.name!r}", add_command=_add_command(spec),
        validate=lambda folder: check_layout(spec, folder))
    return Path(extracted) / spec.root


def cached_photo_dataset(name, cache_dir=None):
    """The extracted folder of a registry dataset if it is cached and correct, else None."""
    spec = get_photo_dataset(name)
    extracted = downloads.cached_file(spec.archive, "datasets", spec.sha256, spec.size, extract=True,
                                      cache_dir=cache_dir)
    return None if extracted is None else Path(extracted) / spec.root


def add_photo_archive(name, archive, cache_dir=None):
    """Install a registry dataset's archive from a local file, checked and extracted.

    Returns:
        The folder holding its splits or classes.

    Raises:
        ValueError: unknown name, or the archive's hash, size or contents
            differ from the registry (nothing is left in the cache).
    """
    spec = get_photo_dataset(name)
    extracted = downloads.install_file(archive, spec.archive, "datasets", spec.sha256, spec.size,
                                       extract=True, cache_dir=cache_dir,
                                       validate=lambda folder: check_layout(spec, folder))
    return Path(extracted) / spec.root


def load_photo_dataset(name, image_size=(224, 224), test_fraction=0.2, seed=0, cache_dir=None,
                       verbose=True):
    """Load a registry photo dataset, fetching and extracting it on first use.

    Args:
        name: Registry name, e.g. `"flowers"`.
        image_size: `(height, width)` every image is resized to.
        test_fraction: Held-out share of every class when the archive has no test split.
        seed: Seed of that held-out split.
        cache_dir: Keras cache root (default: `$KERAS_HOME` or `~/.keras`).
        verbose: Progress bar and the list of skipped files.

    Returns:
        `(pool, test, validation)` `ImageSet`s, as `experiments.load_task`
        returns them; `validation` is None (runs draw it from the pool).

    Raises:
        ValueError: unknown name.
        DownloadError: not cached and not downloadable.
    """
    spec = get_photo_dataset(name)
    root = fetch_photo_dataset(name, cache_dir)
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if spec.test_split is None:
        pool, test, _, _ = load_image_folder(root, size, test_fraction=test_fraction, seed=seed, verbose=verbose)
        return pool, test, None
    pool_split = next(split for split in spec.images_per_class if split != spec.test_split)
    pool, skipped = read_class_folders(root / pool_split, size, verbose=verbose)
    test, more = read_class_folders(root / spec.test_split, size, class_names=pool.class_names, verbose=verbose)
    if verbose and skipped + more:
        print(f"Skipped {len(skipped + more)} file(s) of {name} that are not readable images.")
    return pool, test, None
