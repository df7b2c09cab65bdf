"""The first cell of every notebook: `from tlhelpers.notebook import setup; setup()`."""

from __future__ import annotations

import logging


def setup(seed=0):
    """Quiet TensorFlow and seed everything, before the notebook's other imports.

    - TensorFlow's C++ logs are hidden: its start-up notices (oneDNN, "Could not find cuda
      drivers"), which ignore `TF_CPP_MIN_LOG_LEVEL`, are dropped while it loads
      (`quiet.import_tensorflow`), and the later ones (a failed `cuInit` on a machine without
      a GPU, "NodeDef mentions attribute ...") are errors that only `TF_CPP_MIN_LOG_LEVEL=3`
      hides, set unless already set (set it to 0 before `setup` to see every C++ line).
      Any other line TensorFlow writes while it loads still shows, and so do Python warnings
      and exceptions. This works only before TensorFlow is first imported, so call `setup`
      first.
    - TensorFlow's Python warnings (retracing notices between results) are hidden.
    - Python, NumPy and TensorFlow are seeded with `seed` and TensorFlow's ops made
      deterministic (`runtime.set_seed`).

    Returns:
        The seed, so that a notebook can print or reuse it.
    """
    from tlhelpers.quiet import import_tensorflow

    tf = import_tensorflow(log_level="3")

    from tlhelpers.runtime import set_seed

    # TensorFlow configures its Python logger when it is first asked for: ask for it, then quiet it.
    tf.get_logger().setLevel(logging.ERROR)
    set_seed(seed)
    return seed
