"""Where the package keeps files: its cache folder, the Keras cache, and paths as printed."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "TLHELPERS_CACHE"


def resolve_cache_dir(directory=None):
    """The package cache: `directory`, else `$TLHELPERS_CACHE`, else `~/.cache/tlhelpers`."""
    chosen = directory or os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "tlhelpers"
    return Path(chosen)


def keras_cache_dir():
    """The folder where Keras keeps downloaded weights (`$KERAS_HOME/models`)."""
    # Keras reads KERAS_HOME once, at import; ask it rather than the environment.
    from keras.src.backend import config

    return Path(os.path.expanduser(config.keras_home())) / "models"


def display_path(path):
    """`path` with the home folder written as `~` (keeps user names out of logs and notebooks)."""
    home = str(Path.home())
    text = str(path)
    return "~" + text[len(home):] if text.startswith(home + os.sep) else text
