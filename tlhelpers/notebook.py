"""The first cell of every notebook: `from tlhelpers.notebook import setup; setup()`."""

from __future__ import annotations

import contextlib
import logging
import os
import sys


@contextlib.contextmanager
def _c_stderr_to_devnull():
    """Point file descriptor 2 at /dev/null for the block: what C++ code writes there is dropped
    (Python's own `sys.stderr` in Jupyter is a kernel stream and keeps working)."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(devnull)
        os.close(saved)


def setup(seed=0):
    """Quiet TensorFlow and seed everything, before the notebook's other imports.

    - TensorFlow's C++ logs are hidden. Its start-up lines (oneDNN, "Could not find cuda
      drivers") ignore `TF_CPP_MIN_LOG_LEVEL`, so TensorFlow is imported while the C++
      stderr points at /dev/null; the later ones (a failed `cuInit` on a machine without a
      GPU, "NodeDef mentions attribute ...") are errors that only `TF_CPP_MIN_LOG_LEVEL=3`
      hides, set unless already set (set it to 0 before `setup` to see every C++ line).
      Python warnings and exceptions still show. This works only before TensorFlow is first
      imported, so call `setup` first.
    - TensorFlow's Python warnings (retracing notices between results) are hidden.
    - Python, NumPy and TensorFlow are seeded with `seed` and TensorFlow's ops made
      deterministic (`runtime.set_seed`).

    Returns:
        The seed, so that a notebook can print or reuse it.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with _c_stderr_to_devnull():
        import tensorflow as tf  # after the C++ log level is set

        tf.config.list_logical_devices()  # the devices' start-up lines, while they are dropped

    from tlhelpers.runtime import set_seed

    # TensorFlow configures its Python logger when it is first asked for: ask for it, then quiet it.
    tf.get_logger().setLevel(logging.ERROR)
    set_seed(seed)
    return seed
