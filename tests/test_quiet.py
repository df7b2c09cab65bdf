import os
import subprocess
import sys
from pathlib import Path

from tlhelpers import quiet

ROOT = Path(__file__).resolve().parent.parent


def test_notices_are_dropped_even_split_across_chunks_and_every_other_line_passes():
    written = []
    chunks = [b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
              b"I0000 port.cc:153] oneDNN custom oper", b"ations are on. You may see...\nnative: a real problem\n",
              b"E0000 cuda_platform.cc:52] failed call to cuInit: UNKNOWN ERROR (303)\nunfinished"]
    quiet.drop_notices(chunks, written.append)
    assert b"".join(written) == b"native: a real problem\nunfinished"


def run_python(code, **env):
    environment = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    environment.update(env)
    return subprocess.run([sys.executable, "-c", code], env=environment, capture_output=True, text=True,
                          cwd=ROOT, timeout=120)


FAILING_IMPORT = ("import os\n"
                  "from tlhelpers.quiet import notices_dropped\n"
                  "with notices_dropped():\n"
                  "    os.write(2, b'I0000 port.cc] oneDNN custom operations are on.\\n')\n"
                  "    os.write(2, b'native: cannot open libexample.so\\n')\n"
                  "    raise ImportError('libexample.so')\n")


def test_an_import_that_fails_under_the_filter_still_shows_why_and_level_0_shows_everything():
    failed = run_python(FAILING_IMPORT)
    assert failed.returncode == 1
    assert "native: cannot open libexample.so" in failed.stderr and "ImportError: libexample.so" in failed.stderr
    assert "oneDNN" not in failed.stderr
    assert "oneDNN custom operations are on" in run_python(FAILING_IMPORT, TF_CPP_MIN_LOG_LEVEL="0").stderr


def test_importing_tensorflow_quietly_writes_nothing_to_stderr():
    done = run_python("from tlhelpers.quiet import import_tensorflow\n"
                      "tf = import_tensorflow()\n"
                      "print(tf.reduce_sum(tf.ones(3)).numpy())\n")
    assert done.returncode == 0 and done.stdout.strip() == "3.0"
    assert done.stderr == ""
