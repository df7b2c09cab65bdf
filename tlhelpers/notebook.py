"""The first cell of every notebook: `from tlhelpers.notebook import setup; setup()`."""

from __future__ import annotations

import logging
import os


def setup(seed=0):
    """Quiet TensorFlow and seed everything, before the notebook's other imports.

    - TensorFlow's C++ start-up logs are hidden (`TF_CPP_MIN_LOG_LEVEL=2`, unless already
      set); this works only before TensorFlow is first imported, so call `setup` first.
    - TensorFlow's Python warnings (retracing notices between results) are hidden.
    - Python, NumPy and TensorFlow are seeded with `seed` and TensorFlow's ops made
      deterministic (`runtime.set_seed`).

    Returns:
        The seed, so that a notebook can print or reuse it.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf  # after the C++ log level is set

    from tlhelpers.runtime import set_seed

    # TensorFlow configures its Python logger when it is first asked for: ask for it, then quiet it.
    tf.get_logger().setLevel(logging.ERROR)
    set_seed(seed)
    return seed
