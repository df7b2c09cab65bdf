import os
import subprocess
import sys
import time
from pathlib import Path

from tlhelpers import quiet

ROOT = Path(__file__).resolve().parent.parent
START_UP = (b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
            b"I0000 00:00:1796653669.225485    2385 port.cc:153] oneDNN custom operations are on.\n"
            b"I0000 00:00:1796653669.226138    2385 cudart_stub.cc:31] Could not find cuda drivers.\n"
            b"E0000 00:00:1796653806.068647    3387 cuda_platform.cc:52] failed call to cuInit: (303)\n"
            b"E0000 00:00:1796653806.068650    3387 cuda_fft.cc:467] Unable to register cuFFT factory\n")


def test_tensorflow_log_lines_are_dropped_and_every_other_line_passes():
    written = []
    quiet.drop_log_lines(START_UP + b"native: a real problem\nE0000 is not a log line\nunfinished", written.append)
    assert b"".join(written) == b"native: a real problem\nE0000 is not a log line\nunfinished"
    quiet.drop_log_lines(START_UP, written.append)
    assert len(written) == 1


def run_python(code, **env):
    environment = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    environment.update(env)
    return subprocess.run([sys.executable, "-c", code], env=environment, capture_output=True, text=True,
                          cwd=ROOT, timeout=120)


FAILING_IMPORT = ("import os\n"
                  "from tlhelpers.quiet import log_lines_dropped\n"
                  "with log_lines_dropped():\n"
                  f"    os.write(2, {START_UP!r})\n"
                  "    os.write(2, b'native: cannot open libexample.so\\n')\n"
                  "    raise ImportError('libexample.so')\n")


def test_an_import_that_fails_under_the_filter_still_shows_why_and_level_0_shows_everything():
    failed = run_python(FAILING_IMPORT)
    assert failed.returncode == 1
    assert "native: cannot open libexample.so" in failed.stderr and "ImportError: libexample.so" in failed.stderr
    assert "oneDNN" not in failed.stderr and "absl" not in failed.stderr and "cuInit" not in failed.stderr
    assert "oneDNN custom operations are on" in run_python(FAILING_IMPORT, TF_CPP_MIN_LOG_LEVEL="0").stderr


def test_much_native_output_or_a_child_process_does_not_hold_the_block():
    """C++ code that writes a lot while it holds Python's lock, and a child that inherits stderr."""
    code = ("import ctypes, subprocess, time\n"
            "from tlhelpers.quiet import log_lines_dropped\n"
            "with log_lines_dropped():\n"
            "    ctypes.PyDLL(None).write(2, b'x' * 299999 + b'\\n', 300000)\n"
            "    child = subprocess.Popen(['sleep', '20'])\n"
            "    started = time.monotonic()\n"
            "print(round(time.monotonic() - started))\n"
            "child.kill()\n")
    done = run_python(code)
    assert done.returncode == 0 and done.stdout.strip() == "0", done.stdout
    assert done.stderr == "x" * 299999 + "\n"


def test_importing_tensorflow_quietly_writes_nothing_to_stderr():
    done = run_python("from tlhelpers.quiet import import_tensorflow\n"
                      "tf = import_tensorflow()\n"
                      "print(tf.reduce_sum(tf.ones(3)).numpy())\n")
    assert done.returncode == 0 and done.stdout.strip() == "3.0"
    assert done.stderr == ""
