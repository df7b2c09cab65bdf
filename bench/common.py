"""What every benchmark prints: the machine, and figures in one format."""

from __future__ import annotations

import os
import platform
import time

# The instruction-set kinds of oneDNN told apart here, best first, each with the
# /proc/cpuinfo flag that marks it (sse4_1 is the flag of oneDNN's SSE41).
ISA_FLAGS = (("avx512f", "AVX512"), ("avx2", "AVX2"), ("sse4_1", "SSE41"))


def _cpuinfo_field(name):
    """The value of the first `name : value` line of /proc/cpuinfo, or None."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                key, _, value = line.partition(":")
                if key.strip() == name:
                    return value.strip()
    except OSError:
        pass
    return None


def cpu_model():
    """The CPU model: /proc/cpuinfo's "model name", else platform.processor() (or the machine type)."""
    return _cpuinfo_field("model name") or platform.processor() or platform.machine() or "unknown"


def cpu_line():
    """One line: the CPU model and the instruction set oneDNN will use.

    oneDNN takes the best kind the CPU offers unless the environment variable
    ONEDNN_MAX_CPU_ISA caps it (`make check-notebooks-avx2` sets it to AVX2);
    when it is set its value is printed, with the CPU's own best kind beside it
    (oneDNN uses the lower of the two).
    The CPU's kind is the best of AVX512 (flag avx512f), AVX2 (avx2) and SSE41
    (sse4_1) among the /proc/cpuinfo flags; "unknown" without that file.
    Example: `CPU: Intel(R) Xeon(R) Processor; oneDNN ISA: AVX512 (ONEDNN_MAX_CPU_ISA unset)`.
    """
    flags = _cpuinfo_field("flags")
    if flags is None:
        best = "unknown"
    else:
        present = set(flags.split())
        best = next((kind for flag, kind in ISA_FLAGS if flag in present), "none of AVX512/AVX2/SSE41")
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA", "").strip()
    if cap:
        isa = f"{cap} (ONEDNN_MAX_CPU_ISA={cap}; the CPU offers {best})"
    else:
        isa = f"{best} (ONEDNN_MAX_CPU_ISA unset)"
    return f"CPU: {cpu_model()}; oneDNN ISA: {isa}"


def machine():
    """Two lines: `cpu_line()`, then the CPU model, cores, Python, TensorFlow and Keras versions."""
    import keras
    import tensorflow as tf

    return (f"{cpu_line()}\n"
            f"machine: {cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
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
