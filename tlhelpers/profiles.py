"""The two data/weights profiles the notebooks and the command line switch between."""

from __future__ import annotations

import os

PROFILE_ENV = "TLHELPERS_PROFILE"
PROFILES = {
    # Runs anywhere, no download: source models developed on the embedded source task.
    "offline": {"weights": "embedded", "image_size": 32},
    # The pretrained-model approach: ImageNet weights (downloaded once, about
    # 95 MB for ResNet50 and 59 MB for VGG16). 96 px keeps a CPU run short.
    "imagenet": {"weights": "imagenet", "image_size": 96},
}


def get_profile(name=None):
    """Settings of a profile: `name`, else `$TLHELPERS_PROFILE`, else `"offline"`.

    Returns:
        A dict with `name`, `weights` and `image_size`.

    Raises:
        ValueError: for an unknown profile name.
    """
    name = name or os.environ.get(PROFILE_ENV) or "offline"
    if name not in PROFILES:
        raise ValueError(f"Received profile={name!r}. Expected one of: {', '.join(PROFILES)}.")
    return {"name": name, **PROFILES[name]}
