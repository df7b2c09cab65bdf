"""The notebooks as files: nbval markers as cell tags, and stored outputs a student can read.

These read the `.ipynb` JSON only; executing the notebooks is the nbval check of `make test`.
"""

import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))
TAGS = {"nbval-check-output", "nbval-ignore-output"}
# TensorFlow's C++ log lines (absl format), which `notebooks/tidy_outputs.py` refuses.
LOG_LINE = re.compile(r"^([IWEF]\d{4} \d\d:\d\d:\d+\.\d+ |WARNING: All log messages before absl|WARNING:tensorflow:)",
                      re.MULTILINE)


def code_cells(path):
    return [cell for cell in json.loads(path.read_text())["cells"] if cell["cell_type"] == "code"]


def output_text(cell):
    return "".join("".join(output.get("text", "")) for output in cell.get("outputs", []))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_markers_are_tags_and_every_check_prints(path):
    cells = code_cells(path)
    for cell in cells:
        source, tags = "".join(cell["source"]), set(cell["metadata"].get("tags", []))
        assert "NBVAL_" not in source, f"{path.name}: use the tags {sorted(TAGS)}, not comment markers"
        assert len(tags & TAGS) <= 1, f"{path.name}: a cell is both checked and ignored"
    checked = [cell for cell in cells if "nbval-check-output" in cell["metadata"].get("tags", [])]
    assert checked, f"{path.name} has no checked cell"
    assert all(output_text(cell).strip() for cell in checked), f"{path.name}: a checked cell prints nothing"


def test_the_log_pattern_matches_both_formats():
    assert LOG_LINE.search("x\nI0000 00:00:1796137161.318494   23200 port.cc:153] oneDNN custom operations")
    assert LOG_LINE.search("W1201 12:03:04.123456 1 cpu.cc:1] slow")
    assert LOG_LINE.search("WARNING:tensorflow:5 out of the last 35 calls to <function ...> triggered tf.function retracing.")
    assert not LOG_LINE.search("Epoch 1/3 I0000 is not at the start of a line")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_stored_outputs_hold_no_tensorflow_log_lines(path):
    for cell in code_cells(path):
        assert not LOG_LINE.search(output_text(cell)), f"{path.name}: a TensorFlow log line in a stored output"


def test_tidy_refuses_a_notebook_whose_run_logged_and_stores_the_kernel_name(tmp_path):
    import importlib.util

    import nbformat

    spec = importlib.util.spec_from_file_location("tidy_outputs", NOTEBOOKS[0].parent / "tidy_outputs.py")
    tidy_outputs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tidy_outputs)
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# title"), nbformat.v4.new_code_cell(
        "x = 1", outputs=[nbformat.v4.new_output("stream", name="stderr", text="E0000 00:00:1796.5 1 cuda.cc:52] x\n")])])
    path = tmp_path / "n.ipynb"
    nbformat.write(notebook, path)
    with pytest.raises(SystemExit, match="1 TensorFlow log line.* cell c1"):
        tidy_outputs.tidy(path)
    notebook.cells[1].outputs[0].text = "a line a student may read\n"
    nbformat.write(notebook, path)
    tidy_outputs.tidy(path)
    assert nbformat.read(path, as_version=4).metadata["kernelspec"] == tidy_outputs.KERNELSPEC


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_every_notebook_starts_with_the_setup_helper(path):
    first = "".join(code_cells(path)[0]["source"])
    assert first.startswith("from tlhelpers.notebook import setup\n\nsetup(seed=")
    assert "TF_CPP_MIN_LOG_LEVEL" not in first and "logging.getLogger" not in first


def test_setup_quiets_tensorflow_and_seeds(monkeypatch):
    import logging

    import numpy as np

    from tlhelpers.notebook import setup

    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    assert setup(seed=3) == 3
    first = np.random.rand(3)
    setup(seed=3)
    assert np.array_equal(first, np.random.rand(3))
    import os

    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "3"
    assert logging.getLogger("tensorflow").level == logging.ERROR


def test_after_setup_tensorflow_writes_nothing_to_stderr_and_python_warnings_still_show():
    """What a student sees in JupyterLab, whose kernel forwards the process's C++ stderr into the
    cell: TensorFlow's start-up lines, the failed cuInit of a machine without a GPU, a tf.data
    pipeline and a model's first step all stay silent; a Python warning still reaches stderr."""
    import os
    import subprocess
    import sys

    code = ("from tlhelpers.notebook import setup\n"
            "setup()\n"
            "import warnings\n"
            "import numpy as np\n"
            "import tensorflow as tf\n"
            "ds = tf.data.Dataset.from_tensor_slices(np.zeros((32, 8), 'float32')).map(lambda x: x * 2).batch(8)\n"
            "model = tf.keras.Sequential([tf.keras.Input((8,)), tf.keras.layers.Dense(2)])\n"
            "model.predict(ds, verbose=0)\n"
            "warnings.warn('still shown')\n")
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parent.parent)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().splitlines() == ["<string>:9: UserWarning: still shown",
                                                "  warnings.warn('still shown')"] or \
        done.stderr.strip().splitlines() == ["<string>:9: UserWarning: still shown"], done.stderr


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_stored_kernel_is_the_one_jupyterlab_opens_it_with(path):
    """JupyterLab marks a notebook modified on opening when its stored kernel name differs from the
    installed kernel's; `notebooks/tidy_outputs.py` stores the venv's."""
    from jupyter_client.kernelspec import KernelSpecManager

    installed = KernelSpecManager().get_kernel_spec("python3")
    stored = json.loads(path.read_text())["metadata"]["kernelspec"]
    assert (stored["name"], stored["display_name"]) == ("python3", installed.display_name), \
        f"{path.name}: run notebooks/tidy_outputs.py on it"
