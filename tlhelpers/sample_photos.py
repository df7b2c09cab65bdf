"""Sample photos that ship inside installed wheels (scikit-image, scikit-learn), for ImageNet demos and tests.

The photos are read with PIL straight from the package folders, found with
`importlib` without importing the packages: `skimage.data`'s own loaders are
not used because some of them fetch files over the network. Each photo is
centre-cropped to a square and resized, the usual ImageNet evaluation view.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import NamedTuple

import numpy as np

from tlhelpers.errors import DataError


class SamplePhoto(NamedTuple):
    """Where one sample photo lives: a top-level package and a file inside its folder."""

    package: str
    file: str


# name -> (package, file relative to the package folder). The subjects, for the
# ImageNet demos: chelsea is a cat, coffee a cup of espresso, astronaut Eileen
# Collins, rocket a space shuttle on its launch pad, motorcycle a parked
# motorcycle, china a Chinese temple, flower a close-up of daisy-like flowers.
SAMPLE_PHOTOS = {
    "chelsea": SamplePhoto("skimage", "data/chelsea.png"),
    "coffee": SamplePhoto("skimage", "data/coffee.png"),
    "astronaut": SamplePhoto("skimage", "data/astronaut.png"),
    "rocket": SamplePhoto("skimage", "data/rocket.jpg"),
    "motorcycle": SamplePhoto("skimage", "data/motorcycle_left.png"),
    "china": SamplePhoto("sklearn", "datasets/images/china.jpg"),
    "flower": SamplePhoto("sklearn", "datasets/images/flower.jpg"),
}

# Top-level package -> the name `pip install` knows it by.
DISTRIBUTIONS = {"skimage": "scikit-image", "sklearn": "scikit-learn"}


def sample_photo_path(name):
    """The file of the sample photo `name` inside its installed package.

    Args:
        name: A key of `SAMPLE_PHOTOS`.

    Returns:
        The `Path` of the photo.

    Raises:
        ValueError: `name` is not a sample photo.
        DataError: the package that ships the photo is not installed, or the
            file is missing from it.
    """
    if name not in SAMPLE_PHOTOS:
        raise ValueError(f"Received: name={name!r}. Expected one of: {', '.join(SAMPLE_PHOTOS)}.")
    package, file = SAMPLE_PHOTOS[name]
    install = f"`pip install {DISTRIBUTIONS.get(package, package)}`"
    # `find_spec` of a top-level package locates its folder without importing it.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"Sample photo {name!r} ships with the package {package!r}, which is not "
                        f"installed. Install it with {install}.")
    path = Path(next(iter(spec.submodule_search_locations))) / file
    if not path.is_file():
        raise DataError(f"Sample photo {name!r} not found at {path}: the installed {package!r} does not "
                        f"ship {file}. Reinstall it with {install}.")
    return path


def center_square(image, image_size):
    """Crop the centre square of a PIL image and resize it to `image_size` (bilinear, antialiased)."""
    from PIL import Image

    width, height = image.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    square = image.crop((left, top, left + side, top + side))
    # Pillow's bilinear resize widens its filter when it shrinks, so it antialiases.
    return square.resize((image_size, image_size), Image.Resampling.BILINEAR)


def load_sample_photos(names=None, image_size=224):
    """Load sample photos as centre-cropped squares.

    Args:
        names: Names from `SAMPLE_PHOTOS` (one name or a sequence), or None
            for all of them, in registry order.
        image_size: Side of the square output, in pixels.

    Returns:
        A dict name -> uint8 array of shape (image_size, image_size, 3), RGB.

    Raises:
        ValueError: an unknown name or a bad `image_size`.
        DataError: a package or a photo file is missing or unreadable (the
            message names the package to install).
    """
    from PIL import Image, UnidentifiedImageError

    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) or image_size < 1:
        raise ValueError(f"Received: image_size={image_size!r}. Expected a positive integer.")
    if names is None:
        names = list(SAMPLE_PHOTOS)
    elif isinstance(names, str):
        names = [names]
    paths = {name: sample_photo_path(name) for name in names}
    photos = {}
    for name, path in paths.items():
        try:
            with Image.open(path) as image:
                square = center_square(image.convert("RGB"), int(image_size))
            photos[name] = np.asarray(square, dtype=np.uint8)
        except (OSError, UnidentifiedImageError) as error:
            package = SAMPLE_PHOTOS[name].package
            raise DataError(f"Sample photo {name!r} at {path} could not be read ({error}). Reinstall "
                            f"`{DISTRIBUTIONS.get(package, package)}`.") from None
    return photos
