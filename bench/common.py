"""What every benchmark prints: the machine, and figures in one format."""

from __future__ import annotations

import os
import platform
import time


def machine():
    """One line: CPU model, cores, Python, TensorFlow and Keras versions."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            model = next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    import keras
    import tensorflow as tf

    return (f"machine: {model}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"TensorFlow {tf.__version__}, Keras {keras.__version__}")


def timed(function, *args, **kwargs):
    """`(result, seconds)` of one call."""
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - started


def report(title, rows, target=None):
    """Print a titled table of `(label, value)` rows and the target, if any."""
    print(f"\n## {title}")
    for label, value in rows:
        print(f"  {label:<48} {value}")
    if target:
        print(f"  target: {target}")
