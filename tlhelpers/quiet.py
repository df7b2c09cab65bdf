"""Importing TensorFlow without its start-up log lines, for the notebooks and the command line.

TensorFlow's C++ code writes log lines to file descriptor 2 while it loads, some before it reads
`TF_CPP_MIN_LOG_LEVEL`, so that setting cannot hide them: absl's "All log messages before
absl::InitializeLog() ...", "oneDNN custom operations are on", "Could not find cuda drivers",
"failed call to cuInit" when the devices are first listed on a machine without a GPU, "Unable to
register cuDNN factory" on some GPU builds. None is a problem, yet a student sees them in red under
the first cell. `import_tensorflow` drops those log lines and lets every other line through, so an
import that fails still shows why.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile

# A line of TensorFlow's C++ logging (`I0000 00:00:1796653669.225485    2385 port.cc:153] ...`, with
# I, W, E or F for its severity), or absl's notice that such lines go to stderr.
LOG_LINE = re.compile(rb"^[IWEF]\d{4} [\d:.]+\s+\d+ [\w./-]+:\d+\]|^WARNING: All log messages before absl::")


def drop_log_lines(text, write):
    """Pass the lines of `text` (bytes) to `write`, except TensorFlow's log lines (`LOG_LINE`)."""
    kept = b"".join(line for line in text.splitlines(keepends=True) if not LOG_LINE.match(line))
    if kept:
        write(kept)


def _write_all(fd, data):
    while data:
        data = data[os.write(fd, data):]


@contextlib.contextmanager
def log_lines_dropped():
    """For the block, what is written to file descriptor 2 (where C++ code writes) goes to a temporary
    file; at the end of the block its lines pass through `drop_log_lines` to the real stderr.

    A file rather than a pipe: C++ code that writes a lot while it holds Python's lock could never
    drain a pipe, and a child process that inherits a pipe would hold the block open. Python's own
    `sys.stderr` is flushed first; in Jupyter it is a kernel stream and is not touched. With
    `TF_CPP_MIN_LOG_LEVEL=0` nothing is dropped.
    """
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0":
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            drop_log_lines(captured.read(), lambda kept: _write_all(2, kept))


def import_tensorflow(log_level="3", list_devices=True):
    """Import TensorFlow with its start-up log lines dropped; `TF_CPP_MIN_LOG_LEVEL` is set to
    `log_level` unless already set.

    `list_devices` also initialises the devices inside the block, which writes the rest of the
    start-up lines (the notebooks); after that, devices can no longer be configured
    (`distribution.split_cpu`), so the command line leaves them alone. Works only before TensorFlow is
    first imported. Returns the `tensorflow` module.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", log_level)
    with log_lines_dropped():
        import tensorflow as tf

        if list_devices:
            tf.config.list_logical_devices()
    return tf
