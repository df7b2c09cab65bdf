"""Importing TensorFlow without its start-up notices, for the notebooks and the command line.

TensorFlow's C++ code writes a few lines to file descriptor 2 while it loads, before it
reads `TF_CPP_MIN_LOG_LEVEL`, so that setting cannot hide them: absl's "All log messages
before absl::InitializeLog() ...", "oneDNN custom operations are on" and "Could not find
cuda drivers"; listing the devices adds "failed call to cuInit" on a machine without a GPU.
None is a problem, yet a student sees them in red under the first cell.
`import_tensorflow` lets every other line through as it arrives, so an import that fails
still shows why.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading

# Lines holding one of these are dropped while TensorFlow loads.
START_UP_NOTICES = (
    "All log messages before absl::InitializeLog() is called are written to STDERR",
    "oneDNN custom operations are on",
    "Could not find cuda drivers",
    # Written when the devices are first listed, on every machine without a GPU.
    "failed call to cuInit",
)


def drop_notices(chunks, write, notices=START_UP_NOTICES):
    """Pass the lines of `chunks` (bytes, split anywhere) to `write`, except those holding a notice.

    Whole lines are written as soon as they end; an unfinished last line is written at the end.
    """
    pending = b""
    for chunk in chunks:
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if not any(notice.encode() in line for notice in notices):
                write(line + b"\n")
    if pending and not any(notice.encode() in pending for notice in notices):
        write(pending)


def _chunks(fd):
    while chunk := os.read(fd, 65536):
        yield chunk


@contextlib.contextmanager
def notices_dropped(notices=START_UP_NOTICES):
    """For the block, file descriptor 2 (where C++ code writes) runs through `drop_notices`.

    Python's own `sys.stderr` is flushed first; in Jupyter it is a kernel stream and is not
    touched. Set `TF_CPP_MIN_LOG_LEVEL=0` to see every line.
    """
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0":
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    read_end, write_end = os.pipe()
    forward = threading.Thread(
        target=drop_notices, args=(_chunks(read_end), lambda line: os.write(saved, line), notices),
        daemon=True)
    forward.start()
    os.dup2(write_end, 2)
    os.close(write_end)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)  # closes the pipe's last write end: the thread reads to its end and stops
        forward.join()
        os.close(read_end)
        os.close(saved)


def import_tensorflow(log_level="3"):
    """Import TensorFlow (and list its devices, which writes the rest of the start-up lines) with the
    start-up notices dropped; `TF_CPP_MIN_LOG_LEVEL` is set to `log_level` unless already set.

    Works only before TensorFlow is first imported. Returns the `tensorflow` module.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", log_level)
    with notices_dropped():
        import tensorflow as tf

        tf.config.list_logical_devices()
    return tf
