"""The two data/weights profiles the notebooks and the command line switch between."""

from __future__ import annotations

import os

PROFILE_ENV = "TLHELPERS_PROFILE"
PROFILES = {
    # Runs anywhere, no download: the source models shipped in data/source_models/
    # (trained on five Fashion-MNIST classes in clutter), target task = the other
    # five classes in clutter on the same 48x48 canvas.
    "offline": {"weights": "embedded", "image_size": 48, "dataset": "embedded"},
    # The pretrained-model approach: ImageNet weights (downloaded once, about
    # 95 MB for ResNet50 and 59 MB for VGG16) on the flower photos (229 MB,
    # 5 classes) at ImageNet's resolution. On a CPU, a smaller image_size
    # (e.g. 96) shortens every run.
    "imagenet": {"weights": "imagenet", "image_size": 224, "dataset": "flowers"},
}


def get_profile(name=None):
    """Settings of a profile: `name`, else `$TLHELPERS_PROFILE`, else `"offline"`.

    Returns:
        A dict with `name`, `weights`, `image_size` and `dataset`.

    Raises:
        ValueError: for an unknown profile name.
    """
    name = name or os.environ.get(PROFILE_ENV) or "offline"
    if name not in PROFILES:
        raise ValueError(f"Received profile={name!r}. Expected one of: {', '.join(PROFILES)}.")
    return {"name": name, **PROFILES[name]}


def load_target_task(profile, image_size=None, verbose=False):
    """The profile's target task as `(pool, test)` `ImageSet`s.

    Offline: the embedded dataset's default target classes in clutter (48x48
    grey canvases; see `datasets.load_embedded_task`). ImageNet: the profile's photo dataset at
    `image_size` (default: the profile's), fetched on first use.

    Raises:
        DownloadError: a photo dataset that is neither cached nor downloadable.
    """
    if profile["dataset"] == "embedded":
        from tlhelpers import datasets

        return datasets.load_embedded_task(profile["dataset"])
    from tlhelpers.photos import load_photo_dataset

    size = image_size or profile["image_size"]
    pool, test, _ = load_photo_dataset(profile["dataset"], (size, size), verbose=verbose)
    return pool, test
